package model

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"
)

// RandomSource is a TensorSource of deterministic random weights for cfg:
// every tensor of ExpectedTensors (plus nemotron's norm biases). Values are
// computed from (seed, tensor name, element index) on demand, so any range of
// any tensor can be produced without materialising the model, and the result
// does not depend on how it is read.
//
// Init: matrices and biases ~ N(0, Std²); norm weights are their identity
// value (1 for RMSNorm, 0 for LayerNorm1P whose gain is w+1) plus the same
// noise, so tests notice a norm weight that is ignored or misapplied.
type RandomSource struct {
	cfg   *Config
	seed  uint64
	dtype DType
	// Std is the standard deviation of the noise (default 0.02, HF's
	// initializer_range).
	Std   float64
	infos map[string]TensorInfo
	names []string
}

// NewRandomSource describes cfg's tensors, reported with dtype dt (F32 if
// empty).
func NewRandomSource(cfg *Config, dt DType, seed uint64) *RandomSource {
	if dt == "" {
		dt = F32
	}
	r := &RandomSource{cfg: cfg, seed: seed, dtype: dt, Std: 0.02, infos: map[string]TensorInfo{}}
	for _, t := range append(ExpectedTensors(cfg), OptionalTensors(cfg)...) {
		t.DType = dt
		r.infos[t.Name] = t
		r.names = append(r.names, t.Name)
	}
	slices.Sort(r.names)
	return r
}

// Info implements TensorSource.
func (r *RandomSource) Info(name string) (TensorInfo, bool) {
	t, ok := r.infos[name]
	t.Shape = slices.Clone(t.Shape)
	return t, ok
}

// Names implements TensorSource.
func (r *RandomSource) Names() []string { return slices.Clone(r.names) }

// ReadF32 implements TensorSource.
func (r *RandomSource) ReadF32(name string, dst []float32) error {
	t, ok := r.infos[name]
	if !ok {
		return fmt.Errorf("random source: no tensor %q", name)
	}
	if len(dst) != t.NumElements() {
		return fmt.Errorf("random source: tensor %q has %d elements, dst has %d", name, t.NumElements(), len(dst))
	}
	return r.ReadF32Range(name, 0, dst)
}

// ReadF32Range implements RangeReader.
func (r *RandomSource) ReadF32Range(name string, off int, dst []float32) error {
	t, ok := r.infos[name]
	if !ok {
		return fmt.Errorf("random source: no tensor %q", name)
	}
	n := t.NumElements()
	if off < 0 || off > n || len(dst) > n-off {
		return fmt.Errorf("random source: tensor %q: range [%d, %d) outside its %d elements", name, off, off+len(dst), n)
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	key := h.Sum64() ^ splitmix(r.seed)
	var base float32
	if strings.HasSuffix(name, "layernorm.weight") || name == "model.norm.weight" {
		if r.cfg.Family != Nemotron {
			base = 1
		}
	}
	if strings.HasSuffix(name, "self_attn.q_norm.weight") || strings.HasSuffix(name, "self_attn.k_norm.weight") {
		base = 1 // qwen3's per-head RMSNorm
	}
	// Irwin–Hall: the sum of four 16-bit uniforms from one 64-bit hash is
	// close to normal (mean 2, variance 1/3) and far cheaper than
	// Box–Muller, which matters when writing multi-GB checkpoints.
	scale := float32(r.Std * math.Sqrt(3) / 65536)
	parallelChunks(len(dst), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			x := splitmix(key + uint64(off+i)*0x9e3779b97f4a7c15)
			s := int32(x&0xffff) + int32(x>>16&0xffff) + int32(x>>32&0xffff) + int32(x>>48) - 2*65535
			dst[i] = base + float32(s)*scale
		}
	})
	return nil
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// RandomCheckpoint writes a random-init checkpoint for cfg into dir (see
// RandomSource), in dtype dt, sharded above shardBytes (0: one file). It
// streams in chunks, so a checkpoint far bigger than RAM can be written.
func RandomCheckpoint(dir string, cfg *Config, dt DType, seed uint64, shardBytes int64) error {
	if dt == "" {
		dt = F32
	}
	return SaveCheckpoint(dir, cfg, NewRandomSource(cfg, dt, seed), SaveOptions{
		DType: dt, ShardBytes: shardBytes,
		Metadata: map[string]string{"minitron_init": fmt.Sprintf("random seed=%d", seed)},
	})
}
