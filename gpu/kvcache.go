//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"

	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// KVCache holds every layer's rotated keys and values on the device for
// up to Cap positions of up to Rows sequences, so that InferCached runs
// only the new tokens (greedy decoding: one token's forward per step), as
// model.KVCache on the CPU. All rows share one length (Len): they are
// extended together. It keeps every position (a sliding window is a mask
// in attention, as on the CPU), so Cap bounds the whole sequence.
//
// Layout: one pool block [layers][Rows][Cap][k | v], each position a row of
// 2·KVDim floats (keys then values), so a sequence's keys are rows of
// stride 2·KVDim for the attention kernel (KSeqRows = Cap) and one gather
// per sequence stores both.
type KVCache struct {
	Rows, Cap int

	m      *Model
	n      int      // filled positions
	kv     cuda.Buf // [L][Rows][Cap][2·KVD]
	layer  int      // floats per layer: Rows·Cap·2·KVD
	maxT   int      // the most new tokens a call takes: min(Cap, model Seq)
	pos    cuda.Buf // [Rows·maxT] absolute positions of the call's rows (int32)
	gather cuda.Buf // [Rows·maxT·2·KVHeads] head rows of k|v in the fused qkv buffer (int32)
	cos    cuda.Buf // RoPE tables [Cap, rot/2] (rotary models)
	sin    cuda.Buf
	host   []int32
	owned  []cuda.Buf
}

// NewKVCache allocates a cache for rows ≤ Batch sequences of up to
// capacity positions: layers·rows·capacity·2·KVDim floats in the device's
// pool (Bytes), plus RoPE tables of capacity rows. Free returns them.
// The positions may go past the model's Seq (which bounds only the tokens
// of one InferCached call); attention's reference kernel bounds them at
// about 12k (its shared memory).
func (m *Model) NewKVCache(rows, capacity int) (*KVCache, error) {
	c := m.Cfg
	if rows <= 0 || capacity <= 0 {
		return nil, fmt.Errorf("gpu: kv cache: rows %d and capacity %d must be positive", rows, capacity)
	}
	if rows > m.Batch {
		return nil, fmt.Errorf("gpu: kv cache: %d rows, the model runs at most %d (its batch)", rows, m.Batch)
	}
	kvd := c.KVDim()
	kc := &KVCache{Rows: rows, Cap: capacity, m: m, layer: rows * capacity * 2 * kvd, maxT: min(capacity, m.Seq)}
	ok := false
	defer func() {
		if !ok {
			kc.Free()
		}
	}()
	alloc := func(n int) (cuda.Buf, error) {
		b, err := m.d.Alloc(n)
		if err == nil {
			kc.owned = append(kc.owned, b)
		}
		return b, err
	}
	var err error
	if kc.kv, err = alloc(c.NumLayers * kc.layer); err != nil {
		return nil, fmt.Errorf("gpu: kv cache of %d×%d positions: %w", rows, capacity, err)
	}
	if kc.pos, err = alloc(rows * kc.maxT); err != nil {
		return nil, err
	}
	// Token r's keys and values are heads NumHeads…NumHeads+2·KVHeads−1
	// of its fused qkv row (NumHeads+2·KVHeads heads of HeadDim): as rows
	// of a [tokens·heads, HeadDim] table, the embedding lookup copies them
	// (a load and a store) into consecutive cache rows.
	heads, g := c.NumHeads+2*c.NumKVHeads, 2*c.NumKVHeads
	ids := make([]int32, rows*kc.maxT*g)
	for r := range rows * kc.maxT {
		for j := range g {
			ids[r*g+j] = int32(r*heads + c.NumHeads + j)
		}
	}
	if kc.gather, err = alloc(len(ids)); err != nil {
		return nil, err
	}
	if err := m.d.CopyFromInt32(kc.gather, ids); err != nil {
		return nil, err
	}
	if c.RotaryDim() > 0 {
		cos, sin := m.arch.RopeTables(capacity)
		var err error
		if kc.cos, err = alloc(len(cos)); err != nil {
			return nil, err
		}
		if kc.sin, err = alloc(len(sin)); err != nil {
			return nil, err
		}
		if err := firstErr(m.d.CopyFrom(kc.cos, cos), m.d.CopyFrom(kc.sin, sin)); err != nil {
			return nil, err
		}
	}
	kc.host = make([]int32, rows*kc.maxT)
	ok = true
	return kc, nil
}

// Len is the number of filled positions.
func (kc *KVCache) Len() int { return kc.n }

// Reset empties the cache for reuse (nothing is cleared: the next call
// overwrites).
func (kc *KVCache) Reset() { kc.n = 0 }

// Truncate keeps the first n positions (drops a continuation to score the
// next one after the same context).
func (kc *KVCache) Truncate(n int) error {
	if n < 0 || n > kc.n {
		return fmt.Errorf("gpu: kv cache: truncate to %d positions, it holds %d", n, kc.n)
	}
	kc.n = n
	return nil
}

// CopyRow copies the filled positions of row src into row dst in every
// layer: a context run once in one row then serves several rows (each
// continuation of a multiple-choice request).
func (kc *KVCache) CopyRow(dst, src int) error {
	if dst < 0 || dst >= kc.Rows || src < 0 || src >= kc.Rows {
		return fmt.Errorf("gpu: kv cache: copy row %d to row %d of %d", src, dst, kc.Rows)
	}
	if kc.kv.IsNil() {
		return fmt.Errorf("gpu: kv cache: copy row %d to row %d: the cache was freed", src, dst)
	}
	if dst == src || kc.n == 0 {
		return nil
	}
	w := 2 * kc.m.Cfg.KVDim()
	for l := range kc.m.Cfg.NumLayers {
		base := kc.kv.Slice(l*kc.layer, (l+1)*kc.layer)
		from, to := src*kc.Cap*w, dst*kc.Cap*w
		if err := kc.m.d.CopyBuf(base.Slice(to, to+kc.n*w), base.Slice(from, from+kc.n*w)); err != nil {
			return err
		}
	}
	return nil
}

// Bytes is the device memory the keys and values take.
func (kc *KVCache) Bytes() int64 { return 4 * int64(kc.kv.N) }

// Free returns the cache's buffers to the pool.
func (kc *KVCache) Free() {
	for _, b := range kc.owned {
		kc.m.d.Free(b)
	}
	kc.owned, kc.kv = nil, cuda.Buf{}
}

// InferCached runs the B' ≤ Rows rows of the SetInputs batch (T new tokens
// each) at positions Len()…Len()+T−1 after the cached ones, stores their
// keys and values and advances Len by T. Logits and TokenLogProbs are as
// after Infer, for the B'·T new rows; o's hooks see those rows. Use the
// same o.Skip on every call of a cache (a skipped layer stores nothing).
// A call that fails leaves Len where it was.
func (m *Model) InferCached(kc *KVCache, o *InferOptions) error {
	if kc == nil || kc.m != m {
		return fmt.Errorf("gpu: InferCached: the cache belongs to another model")
	}
	if kc.kv.IsNil() {
		return fmt.Errorf("gpu: InferCached: the cache was freed")
	}
	B, T := m.activeB, m.activeT
	if B > kc.Rows {
		return fmt.Errorf("gpu: InferCached: %d input sequences, the cache holds %d", B, kc.Rows)
	}
	if kc.n+T > kc.Cap {
		return fmt.Errorf("gpu: kv cache full: %d positions held + %d new exceed its capacity %d", kc.n, T, kc.Cap)
	}
	for b := range B {
		for t := range T {
			kc.host[b*T+t] = int32(kc.n + t)
		}
	}
	if err := m.d.CopyFromInt32(kc.pos, kc.host[:B*T]); err != nil {
		return err
	}
	m.cache = kc
	defer func() { m.cache = nil }()
	if err := m.forward(o, false); err != nil {
		return err
	}
	kc.n += T
	return nil
}

// store copies layer l's new keys and values (rotated, in the fused qkv
// buffer of B·T rows) to positions Len()… of each sequence.
func (kc *KVCache) store(qkv cuda.Buf, l, B, T int) error {
	c := kc.m.Cfg
	hd, kvd := c.HeadDim, c.KVDim()
	g := 2 * c.NumKVHeads
	table := qkv.Slice(0, B*T*(c.QDim()+2*kvd))
	base := kc.kv.Slice(l*kc.layer, (l+1)*kc.layer)
	for b := range B {
		row := b*kc.Cap + kc.n
		out := base.Slice(row*2*kvd, (row+T)*2*kvd)
		if err := kc.m.d.Embedding(out, table, kc.gather.Slice(b*T*g, (b+1)*T*g), T*g, hd); err != nil {
			return err
		}
	}
	return nil
}

// attention is attention's reference kernel for the T new queries of each
// sequence (in the fused qkv buffer) over its Len()+T cached keys.
func (kc *KVCache) attention(out, qkv cuda.Buf, dims kernels.AttnDims, l int) error {
	kvd := kc.m.Cfg.KVDim()
	base := kc.kv.Slice(l*kc.layer, (l+1)*kc.layer)
	dims.Tk = kc.n + dims.Tq
	dims.LdK, dims.LdV, dims.KSeqRows = 2*kvd, 2*kvd, kc.Cap
	return kc.m.d.Attention(out, qkv, base, base.Off(kvd), dims, cuda.Buf{})
}
