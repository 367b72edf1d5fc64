package distill

import (
	"math"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
)

// Optim is the optimizer every engine applies: AdamW (Adam with decoupled
// weight decay, Loshchilov & Hutter: the update torch.optim.AdamW performs)
// after clipping the global gradient norm. Engines apply it per tensor with
// the scalars Scalars computes and the kernels' rule (kernels.AdamWStep and
// its CUDA twin).
type Optim struct {
	Beta1, Beta2, Eps, WeightDecay float64
	// DecayAll applies weight decay to norms, biases and embeddings too
	// (torch's default); when false they are excluded (model.NoDecay).
	DecayAll bool
	// Clip is the largest global gradient norm; 0 means no clipping.
	Clip float64
}

// DefaultOptim is torch's AdamW defaults (β 0.9/0.999, ε 1e-8) with no
// weight decay and no clipping.
func DefaultOptim() Optim { return Optim{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8} }

// Scalars are the AdamW scalars of the step-th update (1-based, counting
// this one) at learning rate lr for tensor t.
func (o Optim) Scalars(lr float64, step int, t model.TensorInfo) kernels.AdamWScalars {
	bc1 := 1 - math.Pow(o.Beta1, float64(step))
	bc2 := 1 - math.Pow(o.Beta2, float64(step))
	decay := float32(1 - lr*o.WeightDecay)
	if model.NoDecay(t) && !o.DecayAll {
		decay = 1
	}
	return kernels.AdamWScalars{B1: float32(o.Beta1), B2: float32(o.Beta2), Decay: decay,
		Step: float32(lr / bc1), RBC2: float32(1 / math.Sqrt(bc2)), Eps: float32(o.Eps)}
}

// ClipScale is the factor the gradients are multiplied by before the update
// for a global norm of norm, as torch.nn.utils.clip_grad_norm_ computes it;
// 1 when no clipping applies.
func (o Optim) ClipScale(norm float64) float32 {
	if o.Clip > 0 && norm > o.Clip {
		return float32(o.Clip / (norm + 1e-6))
	}
	return 1
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
