package data

import (
	"strings"
	"sync"
)

// bpeMerges holds BPE merge rules keyed by the ids of the pair: the merge
// with the lowest rank applies first (HF tokenizers, GPT-2 merges.txt).
type bpeMerges map[uint64]bpeMerge

type bpeMerge struct {
	rank int32
	id   int32 // id of the merged token
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// applyMerges merges adjacent symbols in place, lowest rank first and, among
// equal ranks, leftmost first — the order HF's priority queue produces.
// Words are short after pre-tokenization, so a quadratic scan is fast; long
// runs use a linked list with a heap.
func (m bpeMerges) applyMerges(syms []int) []int {
	if len(syms) > 64 {
		return m.applyMergesHeap(syms)
	}
	for len(syms) > 1 {
		best, bestRank, bestID := -1, int32(1<<31-1), int32(0)
		for i := 0; i+1 < len(syms); i++ {
			if mg, ok := m[pairKey(syms[i], syms[i+1])]; ok && mg.rank < bestRank {
				best, bestRank, bestID = i, mg.rank, mg.id
			}
		}
		if best < 0 {
			break
		}
		syms[best] = int(bestID)
		syms = append(syms[:best+1], syms[best+2:]...)
	}
	return syms
}

// applyMergesHeap is applyMerges for long words: O(n log n).
func (m bpeMerges) applyMergesHeap(syms []int) []int {
	n := len(syms)
	prev := make([]int, n)
	next := make([]int, n)
	alive := make([]bool, n)
	for i := range syms {
		prev[i], next[i], alive[i] = i-1, i+1, true
	}
	next[n-1] = -1
	h := newPriorityQueue(func(x, y *mergeCand) bool { // lowest rank, then leftmost
		if x.rank != y.rank {
			return x.rank < y.rank
		}
		return x.pos < y.pos
	})
	push := func(i int) {
		j := next[i]
		if i < 0 || j < 0 {
			return
		}
		if mg, ok := m[pairKey(syms[i], syms[j])]; ok {
			h.push(mergeCand{rank: mg.rank, pos: i, left: syms[i], right: syms[j], id: mg.id})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(i)
	}
	for h.len() > 0 {
		c := h.pop()
		i := c.pos
		if !alive[i] || syms[i] != c.left {
			continue
		}
		j := next[i]
		if j < 0 || syms[j] != c.right {
			continue
		}
		syms[i] = int(c.id)
		alive[j] = false
		next[i] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = i
		}
		if prev[i] >= 0 {
			push(prev[i])
		}
		push(i)
	}
	out := syms[:0]
	for i := 0; i >= 0; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}

type mergeCand struct {
	rank        int32
	pos         int
	left, right int
	id          int32
}

// wordCache memoizes word → ids. Pre-tokenized text repeats words heavily,
// so this makes encoding several times faster. It is reset when full rather
// than evicting, which keeps it simple and bounded.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]int
}

const wordCacheMax = 1 << 17

func (c *wordCache) get(w string) ([]int, bool) {
	c.mu.RLock()
	ids, ok := c.m[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int) {
	if len(w) > 256 {
		return
	}
	w = strings.Clone(w) // w may be a slice of a whole document; don't pin it
	c.mu.Lock()
	if c.m == nil || len(c.m) >= wordCacheMax {
		c.m = make(map[string][]int, 1024)
	}
	c.m[w] = ids
	c.mu.Unlock()
}
