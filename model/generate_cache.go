package model

import "fmt"

// KVCache holds the rotated keys and the values of every layer for a batch
// of sequences being extended token by token. Len is how many positions are
// filled; Cap how many fit.
type KVCache struct {
	Batch, Cap, Len int
	k, v            [][]float32 // per layer [Batch, Cap, nKV·hd]
	kvd             int
}

// NewKVCache allocates a cache for batch sequences of up to capacity tokens
// (2·layers·batch·capacity·nKV·hd floats).
func (m *Model) NewKVCache(batch, capacity int) (*KVCache, error) {
	c := m.Cfg
	if batch <= 0 || capacity <= 0 {
		return nil, fmt.Errorf("kv cache: batch %d and capacity %d must be positive", batch, capacity)
	}
	if err := c.CheckPositions(0, capacity); err != nil {
		return nil, fmt.Errorf("kv cache: %w", err)
	}
	kvd := c.KVDim()
	kc := &KVCache{Batch: batch, Cap: capacity, kvd: kvd,
		k: make([][]float32, c.NumLayers), v: make([][]float32, c.NumLayers)}
	for l := range kc.k {
		kc.k[l] = make([]float32, batch*capacity*kvd)
		kc.v[l] = make([]float32, batch*capacity*kvd)
	}
	return kc, nil
}

// Reset empties the cache for reuse.
func (kc *KVCache) Reset() { kc.Len = 0 }

// store copies the new keys and values of layer l (from the fused qkv buffer
// [B·T, ld]: k at column qd, v at qd+kvd) to positions start… .
func (kc *KVCache) store(l int, qkv []float32, qd, ld, B, T, start int) {
	kvd := kc.kvd
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			src := qkv[(b*T+t)*ld:]
			dst := (b*kc.Cap + start + t) * kvd
			copy(kc.k[l][dst:dst+kvd], src[qd:qd+kvd])
			copy(kc.v[l][dst:dst+kvd], src[qd+kvd:qd+2*kvd])
		}
	}
}
