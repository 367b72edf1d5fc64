package distill

import (
	"math"
	"sort"

	"github.com/minitron-dev/minitron/model/kernels"
)

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter), the
// update torch.optim.AdamW performs, fused over all parameters and applied
// in place. Its moments live in two arenas the size of the student's.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	// DecayAll applies weight decay to norms, biases and embeddings too
	// (torch's default); when false they are excluded.
	DecayAll bool

	Step int       // updates done
	M, V []float32 // first and second moments, arena layout
}

// NewAdamW makes an optimizer for n parameters with torch's defaults
// (β 0.9/0.999, ε 1e-8) and the given weight decay.
func NewAdamW(n int, weightDecay float64) *AdamW {
	return &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay,
		M: make([]float32, n), V: make([]float32, n)}
}

// Update applies one step at learning rate lr. grads[i] is the gradient of
// params[i]; param data and moments are windows of the arena starting at
// offs[i]. The whole arena is split evenly over the kernel workers (the
// parameters differ in size by 1000×, so splitting each one alone would
// leave the small ones serial).
func (o *AdamW) Update(params []*Param, grads [][]float32, offs []int, lr float64) {
	o.Step++
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	bc1 := 1 - math.Pow(o.Beta1, float64(o.Step))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.Step))
	stepSize := float32(lr / bc1)
	rbc2 := float32(1 / math.Sqrt(bc2))
	eps := float32(o.Eps)
	total := offs[len(offs)-1] + len(params[len(params)-1].Data)
	kernels.ParallelFor(total, 1<<15, func(lo, hi int) {
		// first parameter overlapping [lo, hi)
		i := sort.Search(len(offs), func(i int) bool { return offs[i]+len(params[i].Data) > lo })
		for ; i < len(params) && offs[i] < hi; i++ {
			p := params[i]
			a, z := max(lo, offs[i]), min(hi, offs[i]+len(p.Data))
			decay := float32(1 - lr*o.WeightDecay)
			if p.NoDecay && !o.DecayAll {
				decay = 1
			}
			w, g := p.Data[a-offs[i]:z-offs[i]], grads[i][a-offs[i]:z-offs[i]]
			kernels.AdamWStep(w, g, o.M[a:z], o.V[a:z], b1, b2, decay, stepSize, rbc2, eps)
		}
	})
}

// GradNorm is the global L2 norm of grads. Each tensor's sum of squares
// is computed on one goroutine and they are added in order, so the result
// does not depend on the number of workers.
func GradNorm(grads [][]float32) float64 {
	parts := make([]float64, len(grads))
	kernels.ParallelFor(len(grads), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			parts[i] = kernels.SumSquares(grads[i])
		}
	})
	var s float64
	for _, p := range parts {
		s += p
	}
	return math.Sqrt(s)
}

// ClipGrads scales grads so their global norm is at most maxNorm (as
// torch.nn.utils.clip_grad_norm_ does) and returns the norm before clipping.
func ClipGrads(grads [][]float32, maxNorm float64) float64 {
	n := GradNorm(grads)
	if maxNorm > 0 && n > maxNorm {
		c := float32(maxNorm / (n + 1e-6))
		kernels.ParallelFor(len(grads), 1, func(lo, hi int) {
			for _, g := range grads[lo:hi] {
				for i := range g {
					g[i] *= c
				}
			}
		})
	}
	return n
}

// Schedule is linear warmup from 0 to LR over Warmup steps, then cosine
// decay to MinLR at Steps.
type Schedule struct {
	LR, MinLR     float64
	Warmup, Steps int
}

// At is the learning rate of step s (0-based).
func (sc Schedule) At(s int) float64 {
	if sc.Warmup > 0 && s < sc.Warmup {
		return sc.LR * float64(s+1) / float64(sc.Warmup)
	}
	span := sc.Steps - sc.Warmup
	if span <= 0 {
		return sc.LR
	}
	f := float64(s-sc.Warmup) / float64(span)
	if f > 1 {
		f = 1
	}
	return sc.MinLR + 0.5*(sc.LR-sc.MinLR)*(1+math.Cos(math.Pi*f))
}
