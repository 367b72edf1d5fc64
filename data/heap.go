package data

// priorityQueue is a binary heap whose top is the element that comes first
// by before. The BPE encoder, SentencePiece's BPE and the BPE trainer each
// order their merge candidates differently but share this one heap.
type priorityQueue[T any] struct {
	a      []T
	before func(x, y *T) bool
}

func newPriorityQueue[T any](before func(x, y *T) bool) *priorityQueue[T] {
	return &priorityQueue[T]{before: before}
}

func (h *priorityQueue[T]) len() int { return len(h.a) }

func (h *priorityQueue[T]) push(x T) {
	h.a = append(h.a, x)
	for i := len(h.a) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.before(&h.a[i], &h.a[p]) {
			break
		}
		h.a[i], h.a[p] = h.a[p], h.a[i]
		i = p
	}
}

func (h *priorityQueue[T]) pop() T {
	top := h.a[0]
	last := len(h.a) - 1
	h.a[0] = h.a[last]
	h.a = h.a[:last]
	for i := 0; ; {
		l, r, s := 2*i+1, 2*i+2, i
		if l < len(h.a) && h.before(&h.a[l], &h.a[s]) {
			s = l
		}
		if r < len(h.a) && h.before(&h.a[r], &h.a[s]) {
			s = r
		}
		if s == i {
			break
		}
		h.a[i], h.a[s] = h.a[s], h.a[i]
		i = s
	}
	return top
}
