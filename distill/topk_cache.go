package distill

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"

	"github.com/minitron-dev/minitron/internal/atomicfile"

	"github.com/minitron-dev/minitron/model"
)

// TopKCache stores the teacher's top-k logits per micro-batch on disk, so a
// teacher runs once over data that several students (an architecture
// search) or several epochs distil on. Entries are keyed by a hash of the
// micro-batch's tokens; the directory's meta.json pins the teacher's
// architecture and k, and a mismatch is an error rather than silently wrong
// targets.
type TopKCache struct {
	dir        string
	k, rows    int
	idx        []int32
	val        []float32
	hits, miss int
}

type topKMeta struct {
	K       int             `json:"k"`
	Teacher json.RawMessage `json:"teacher_config"`
	Rows    int             `json:"rows"`
}

// OpenTopKCache opens or creates the cache directory for this teacher, k
// and micro-batch shape.
func OpenTopKCache(dir string, teacher *model.Model, k, seqLen, micro int) (*TopKCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("top-k cache: %w", err)
	}
	tc, err := teacher.Cfg.MarshalJSON()
	if err != nil {
		return nil, err
	}
	meta := topKMeta{K: k, Teacher: tc, Rows: seqLen * micro}
	want, _ := json.Marshal(meta)
	mp := filepath.Join(dir, "meta.json")
	have, err := os.ReadFile(mp)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := atomicfile.WriteFile(mp, want, nil); err != nil {
			return nil, fmt.Errorf("top-k cache: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("top-k cache: %w", err)
	default:
		var m topKMeta
		if json.Unmarshal(have, &m) != nil || m.K != k || m.Rows != meta.Rows || string(compactJSON(m.Teacher)) != string(compactJSON(tc)) {
			return nil, fmt.Errorf("top-k cache %s was made for another teacher, k or batch shape (%s); use a new directory", dir, mp)
		}
	}
	rows := seqLen * micro
	return &TopKCache{dir: dir, k: k, rows: rows, idx: make([]int32, rows*k), val: make([]float32, rows*k)}, nil
}

func compactJSON(b []byte) []byte {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return b
	}
	out, _ := json.Marshal(v)
	return out
}

func (c *TopKCache) path(tokens [][]int32) string {
	h := fnv.New128a()
	var b [4]byte
	for _, row := range tokens {
		for _, t := range row {
			binary.LittleEndian.PutUint32(b[:], uint32(t))
			h.Write(b[:])
		}
	}
	return filepath.Join(c.dir, fmt.Sprintf("%x.topk", h.Sum(nil)))
}

// Lookup returns the cached top-k of a micro-batch (ok false on a miss).
func (c *TopKCache) Lookup(tokens [][]int32) ([]int32, []float32, bool, error) {
	b, err := os.ReadFile(c.path(tokens))
	if errors.Is(err, os.ErrNotExist) {
		c.miss++
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	n := c.rows * c.k
	if len(b) != 8*n {
		c.miss++ // a torn write from a killed run: recompute and overwrite
		return nil, nil, false, nil
	}
	for i := 0; i < n; i++ {
		c.idx[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		c.val[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*(n+i):]))
	}
	c.hits++
	return c.idx, c.val, true, nil
}

// Store writes a micro-batch's top-k atomically.
func (c *TopKCache) Store(tokens [][]int32, idx []int32, val []float32) error {
	n := c.rows * c.k
	b := make([]byte, 8*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(idx[i]))
		binary.LittleEndian.PutUint32(b[4*(n+i):], math.Float32bits(val[i]))
	}
	if err := atomicfile.WriteFile(c.path(tokens), b, nil); err != nil {
		return fmt.Errorf("top-k cache: %w", err)
	}
	return nil
}

// Stats reports cache hits and misses so far.
func (c *TopKCache) Stats() (hits, misses int) { return c.hits, c.miss }
