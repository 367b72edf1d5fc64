package importance

import (
	"fmt"
	"math"
	"strings"
)

// SeqAgg reduces one sample's per-token activation magnitudes over the
// sequence to one number per channel.
type SeqAgg string

// BatchAgg reduces the per-sample numbers over the calibration samples.
type BatchAgg string

const (
	SeqMean SeqAgg = "mean" // mean_t m_t
	SeqL2   SeqAgg = "l2"   // sqrt(Σ_t m_t²)
	SeqVar  SeqAgg = "var"  // population variance of m_t over t

	BatchL2   BatchAgg = "l2"   // sqrt(Σ_s v_s²)
	BatchMean BatchAgg = "mean" // mean_s v_s
	BatchVar  BatchAgg = "var"  // population variance of v_s over s
)

// Aggregation picks one of the nine batch × sequence reductions. The zero
// value is not valid; DefaultAggregation is the paper's best (batch L2,
// sequence mean), which is also what NVIDIA's Megatron code computes:
// mean|x| over the sequence, sum of squares over samples, square root.
type Aggregation struct {
	Batch BatchAgg `json:"batch"`
	Seq   SeqAgg   `json:"seq"`
}

// DefaultAggregation is batch=L2, sequence=mean.
var DefaultAggregation = Aggregation{Batch: BatchL2, Seq: SeqMean}

func (a Aggregation) String() string { return "batch=" + string(a.Batch) + ",seq=" + string(a.Seq) }

// Validate reports an unknown reduction.
func (a Aggregation) Validate() error {
	switch a.Seq {
	case SeqMean, SeqL2, SeqVar:
	default:
		return fmt.Errorf("unknown sequence aggregation %q (want mean, l2 or var)", a.Seq)
	}
	switch a.Batch {
	case BatchL2, BatchMean, BatchVar:
	default:
		return fmt.Errorf("unknown batch aggregation %q (want l2, mean or var)", a.Batch)
	}
	return nil
}

// ParseAggregation builds an Aggregation from flag values (case-insensitive).
func ParseAggregation(batch, seq string) (Aggregation, error) {
	a := Aggregation{Batch: BatchAgg(strings.ToLower(batch)), Seq: SeqAgg(strings.ToLower(seq))}
	return a, a.Validate()
}

// Accumulator streams activation statistics for n channels (heads, neurons
// or embedding channels) over samples and reduces them with an Aggregation.
// Memory is O(n) whatever the number of samples.
//
// For each sample s and channel c it takes the magnitudes m[t][c] ≥ 0 of
// the sample's T tokens (|x| for neurons and channels, the L2 norm over
// head_dim for heads), reduces them over t with Seq to v[s][c], and keeps
// Σ_s v and Σ_s v² in float64; Scores applies Batch to those.
type Accumulator struct {
	agg     Aggregation
	n       int
	samples int
	sum     []float64 // Σ_s v[s][c]
	sumSq   []float64 // Σ_s v[s][c]²
	s1, s2  []float64 // per-sample scratch: Σ_t m, Σ_t m²
}

// NewAccumulator makes an accumulator for n channels.
func NewAccumulator(n int, agg Aggregation) *Accumulator {
	return &Accumulator{agg: agg, n: n, sum: make([]float64, n), sumSq: make([]float64, n),
		s1: make([]float64, n), s2: make([]float64, n)}
}

// Len is the number of channels.
func (a *Accumulator) Len() int { return a.n }

// Samples is the number of samples added so far.
func (a *Accumulator) Samples() int { return a.samples }

// AddBatch adds B samples of T tokens each; x is row-major [B·T][n] and its
// entries are made non-negative with |·| (so raw activations can be passed).
func (a *Accumulator) AddBatch(x []float32, B, T int) {
	if len(x) != B*T*a.n {
		panic(fmt.Sprintf("importance: AddBatch got %d values, want %d×%d×%d", len(x), B, T, a.n))
	}
	for b := 0; b < B; b++ {
		a.addSample(x[b*T*a.n:(b+1)*T*a.n], T)
	}
}

func (a *Accumulator) addSample(x []float32, T int) {
	s1, s2 := a.s1, a.s2
	clear(s1)
	clear(s2)
	for t := 0; t < T; t++ {
		row := x[t*a.n : (t+1)*a.n]
		for c, v := range row {
			m := math.Abs(float64(v))
			s1[c] += m
			s2[c] += m * m
		}
	}
	ft := float64(T)
	for c := range s1 {
		var v float64
		switch a.agg.Seq {
		case SeqMean:
			v = s1[c] / ft
		case SeqL2:
			v = math.Sqrt(s2[c])
		case SeqVar:
			mu := s1[c] / ft
			v = math.Max(0, s2[c]/ft-mu*mu)
		}
		a.sum[c] += v
		a.sumSq[c] += v * v
	}
	a.samples++
}

// Merge adds b's samples into a (same n and aggregation), so batches can
// be scored in parallel or across runs.
func (a *Accumulator) Merge(b *Accumulator) {
	for c := range a.sum {
		a.sum[c] += b.sum[c]
		a.sumSq[c] += b.sumSq[c]
	}
	a.samples += b.samples
}

// Scores reduces the samples seen so far; all zeros before any sample.
func (a *Accumulator) Scores() []float64 {
	out := make([]float64, a.n)
	if a.samples == 0 {
		return out
	}
	ns := float64(a.samples)
	for c := range out {
		switch a.agg.Batch {
		case BatchL2:
			out[c] = math.Sqrt(a.sumSq[c])
		case BatchMean:
			out[c] = a.sum[c] / ns
		case BatchVar:
			mu := a.sum[c] / ns
			out[c] = math.Max(0, a.sumSq[c]/ns-mu*mu)
		}
	}
	return out
}

// HeadNorms turns attention output rows [rows][nHeads·headDim] (the input
// of o_proj) into per-head L2 norms [rows][nHeads], written to dst (grown
// if short) and returned.
func HeadNorms(dst, x []float32, rows, nHeads, headDim int) []float32 {
	if cap(dst) < rows*nHeads {
		dst = make([]float32, rows*nHeads)
	}
	dst = dst[:rows*nHeads]
	for r := 0; r < rows; r++ {
		for h := 0; h < nHeads; h++ {
			seg := x[(r*nHeads+h)*headDim : (r*nHeads+h+1)*headDim]
			var s float64
			for _, v := range seg {
				s += float64(v) * float64(v)
			}
			dst[r*nHeads+h] = float32(math.Sqrt(s))
		}
	}
	return dst
}
