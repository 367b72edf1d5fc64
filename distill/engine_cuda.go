//go:build minitron_cuda || minitron_cudaemu

package distill

import (
	"errors"
	"fmt"

	"github.com/minitron-dev/minitron/model/kernels/cuda"
	"github.com/minitron-dev/minitron/gpu"
)

// checkCUDA names the first setting the device trainer (gpu) cannot
// run, so that --device cuda never silently trains something else.
func checkCUDA(c *Config) error {
	l := c.Losses
	switch {
	case c.TopKCache != "" && l.TopK > 0:
		return errors.New("--device cuda: --top-k-cache is not used on the device (the teacher runs there each step); drop it or use --device cpu")
	}
	return nil
}

// cudaEngine runs each optimizer step with gpu on GPU 0: student,
// teacher (for the KL), gradients and AdamW moments live on the device.
// The CPU trainer it wraps is the host mirror that checkpoints are written
// from (Sync downloads into it) and that resumed runs were loaded into.
type cudaEngine struct {
	host    *Trainer
	d       *cuda.Device
	s, t    *gpu.Model
	g       *gpu.Trainer
	offs    []int
	closers []func()
}

func newCUDAEngine(c *Config, tr *Trainer) (_ Engine, err error) {
	if err := checkCUDA(c); err != nil {
		return nil, err
	}
	e := &cudaEngine{host: tr, offs: tr.offs}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.d, err = cuda.Open(0); err != nil {
		return nil, fmt.Errorf("--device cuda: %w", err)
	}
	e.closers = append(e.closers, func() { e.d.Close() })
	if c.NoTF32 {
		if err = e.d.SetTF32(false); err != nil {
			return nil, fmt.Errorf("--device cuda: %w", err)
		}
	}
	hs := tr.S
	if e.s, err = gpu.NewModel(e.d, hs.Cfg, hs, hs.Batch, hs.Seq, true); err != nil {
		return nil, fmt.Errorf("--device cuda: student: %w", err)
	}
	e.closers = append(e.closers, e.s.Free)
	if c.BF16 {
		if err = e.s.EnableBF16(); err != nil {
			return nil, fmt.Errorf("--device cuda --bf16: student: %w", err)
		}
	}
	if tr.Teacher != nil {
		// The teacher runs on the device too: its weights go up once. It
		// only infers, so with --bf16 its weight matrices are stored in
		// bf16 alone (the products --bf16 means, without f32 masters).
		if e.t, err = gpu.NewModelOpts(e.d, tr.Teacher.Cfg, tr.Teacher.Source(),
			gpu.Options{Batch: hs.Batch, Seq: hs.Seq, WeightsBF16: c.BF16}); err != nil {
			return nil, fmt.Errorf("--device cuda: teacher: %w", err)
		}
		e.closers = append(e.closers, e.t.Free)
	}
	l := hs.st.losses
	o := tr.Opt
	var pairs []gpu.Pair
	for _, p := range l.Intermediate {
		pairs = append(pairs, gpu.Pair{Student: p.Student, Teacher: p.Teacher})
	}
	e.g, err = gpu.NewTrainer(e.s, e.t, gpu.Losses{CE: l.CE, KL: l.KL, ReverseKL: l.ReverseKL, TopK: l.TopK, Temperature: l.Temperature, Intermediate: pairs},
		gpu.Optim{Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: o.WeightDecay, DecayAll: o.DecayAll, Clip: tr.Clip})
	if err != nil {
		return nil, fmt.Errorf("--device cuda: %w", err)
	}
	e.closers = append(e.closers, e.g.Free)
	// Resumed: the host optimizer holds the checkpoint's moments.
	e.g.Step = o.Step
	for j, p := range hs.Params {
		if p.Name != isProjName {
			continue
		}
		// the intermediate loss's projection: trained on the device, outside
		// the model's arena
		var m1, m2 []float32
		if o.Step > 0 {
			lo, hi := e.offs[j], e.offs[j]+len(p.Data)
			m1, m2 = o.M[lo:hi], o.V[lo:hi]
		}
		if err := e.g.SetISProjection(p.Data, m1, m2); err != nil {
			return nil, fmt.Errorf("--device cuda: %w", err)
		}
	}
	if o.Step > 0 {
		for j, p := range hs.Params {
			if p.Name == isProjName {
				continue
			}
			lo, hi := e.offs[j], e.offs[j]+len(p.Data)
			if err := e.g.WriteMoments(p.Name, o.M[lo:hi], o.V[lo:hi]); err != nil {
				return nil, fmt.Errorf("--device cuda: optimizer state: %w", err)
			}
		}
	}
	return e, nil
}

func (e *cudaEngine) TrainStep(micro [][][]int32, skipNonFinite bool) (StepMetrics, error) {
	tr := e.host
	if len(micro) != tr.Accum {
		return StepMetrics{}, fmt.Errorf("step needs %d micro-batches, got %d", tr.Accum, len(micro))
	}
	gm, err := e.g.TrainStepAccum(micro, tr.Sched.At(tr.Step))
	var nf *gpu.NonFiniteError
	if errors.As(err, &nf) {
		m := stepMetrics(gm)
		if !skipNonFinite {
			return m, fmt.Errorf("%w (use --skip-nonfinite to skip such steps)", err)
		}
		// Nothing was updated on the device: count the step, as the CPU
		// trainer does, without an AdamW step.
		m.Skipped = true
		tr.Step++
		return m, nil
	}
	if err != nil {
		return StepMetrics{}, fmt.Errorf("step %d (cuda): %w", tr.Step+1, err)
	}
	tr.Step++
	return stepMetrics(gm), nil
}

func stepMetrics(gm gpu.StepMetrics) StepMetrics {
	return StepMetrics{Step: gm.Step, LR: gm.LR, Loss: gm.Loss, CE: gm.CE, KL: gm.KL, RKL: gm.RKL,
		IS: gm.IS, ISAlpha: gm.ISAlpha, GradNorm: gm.GradNorm}
}

func (e *cudaEngine) Evaluate(batches [][][]int32) (StepMetrics, error) {
	var m StepMetrics
	if len(batches) == 0 {
		return m, fmt.Errorf("no validation batches")
	}
	l := e.host.S.st.losses
	n := float64(len(batches))
	for _, mb := range batches {
		ce, kl, err := e.g.Evaluate(mb)
		if err != nil {
			return m, fmt.Errorf("validation (cuda): %w", err)
		}
		m.CE += ce / n
		m.KL += kl / n
		m.Loss += (l.CE*ce + l.KL*kl) / n
	}
	return m, nil
}

func (e *cudaEngine) StepsDone() int { return e.host.Step }

// Sync downloads the weights and the AdamW moments into the host Student
// and optimizer, which the checkpoint is then written from exactly as on
// the CPU path.
func (e *cudaEngine) Sync() error {
	hs, o := e.host.S, e.host.Opt
	for j, p := range hs.Params {
		lo, hi := e.offs[j], e.offs[j]+len(p.Data)
		if p.Name == isProjName {
			if err := e.g.ISProjection(p.Data, o.M[lo:hi], o.V[lo:hi]); err != nil {
				return fmt.Errorf("--device cuda: downloading the intermediate projection: %w", err)
			}
			continue
		}
		if err := e.s.ReadParam(p.Name, p.Data); err != nil {
			return fmt.Errorf("--device cuda: downloading weights: %w", err)
		}
		if err := e.g.ReadMoments(p.Name, o.M[lo:hi], o.V[lo:hi]); err != nil {
			return fmt.Errorf("--device cuda: downloading optimizer state: %w", err)
		}
	}
	o.Step = e.g.Step
	return nil
}

func (e *cudaEngine) Close() error {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
	return nil
}
