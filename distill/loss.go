package distill

import (
	"fmt"

	"github.com/minitron-dev/minitron/model"
)

// Losses weights the logit losses of a training step. Any weighted mix is
// allowed; plain training is CE = 1, the paper's distillation KL = 1.
type Losses struct {
	CE          float64 `yaml:"ce" json:"ce"`                   // cross-entropy on the next-token labels
	KL          float64 `yaml:"kl" json:"kl"`                   // forward KL(teacher‖student)
	ReverseKL   float64 `yaml:"reverse_kl" json:"reverse_kl"`   // KL(student‖teacher)
	Temperature float64 `yaml:"temperature" json:"temperature"` // τ for both KLs; 0 means 1
	TopK        int     `yaml:"top_k" json:"top_k"`             // >0: forward KL on the teacher's top-k logits only

	// Intermediate adds the cosine loss on these (student, teacher)
	// post-norm hidden-state pairs through one shared learned projection,
	// weighted dynamically (α = L_logits/L_is).
	Intermediate []LayerPair `yaml:"intermediate" json:"intermediate,omitempty"`
	// TeacherHidden is the teacher's hidden size (the projection's output);
	// Run sets it from the teacher.
	TeacherHidden int `yaml:"-" json:"-"`
}

// Tau is the KL temperature τ (Temperature, or 1 when unset).
func (l Losses) Tau() float32 {
	if l.Temperature <= 0 {
		return 1
	}
	return float32(l.Temperature)
}

// OrDefault is l, or when it weights no logit term, forward KL with a
// teacher and cross-entropy without.
func (l Losses) OrDefault(teacher bool) Losses {
	if l.CE == 0 && l.KL == 0 && l.ReverseKL == 0 {
		if teacher {
			l.KL = 1
		} else {
			l.CE = 1
		}
	}
	return l
}

// NeedsTeacher reports whether any weighted loss reads teacher logits.
func (l Losses) NeedsTeacher() bool { return l.KL != 0 || l.ReverseKL != 0 || len(l.Intermediate) > 0 }

// Validate checks the weights and their combinations.
func (l Losses) Validate() error {
	if l.CE < 0 || l.KL < 0 || l.ReverseKL < 0 {
		return fmt.Errorf("loss weights must be ≥ 0 (ce %g, kl %g, reverse_kl %g)", l.CE, l.KL, l.ReverseKL)
	}
	if l.CE == 0 && l.KL == 0 && l.ReverseKL == 0 {
		return fmt.Errorf("no loss selected: set a positive weight for ce, kl or reverse_kl")
	}
	if l.TopK < 0 {
		return fmt.Errorf("top_k must be ≥ 0, got %d", l.TopK)
	}
	if l.TopK > 0 && l.ReverseKL != 0 {
		return fmt.Errorf("reverse KL needs the full teacher distribution; it cannot be combined with top_k")
	}
	return nil
}

// LayerPair names a (student, teacher) pair of post-norm hidden states for
// the intermediate-state loss. Layer k < NumLayers is input_layernorm's
// output of layer k (the normalised residual stream entering it); k =
// NumLayers is the final norm's output.
type LayerPair struct {
	Student int `yaml:"student" json:"student"`
	Teacher int `yaml:"teacher" json:"teacher"`
}

// ISProjName is the shared learned projection student hidden → teacher
// hidden [Ht, Hs]. It is trained with the student (AdamW, decayed like any
// matrix) but is not part of the student's Hugging Face checkpoint: the
// optimizer state carries it.
const ISProjName = "distill.is_proj.weight"

// ISProjInit is the projection's initial value: the identity on the shared
// leading channels, so a pruned student's channels start aligned with the
// teacher's.
func ISProjInit(ht, hs int) []float32 {
	w := make([]float32, ht*hs)
	for i := 0; i < min(ht, hs); i++ {
		w[i*hs+i] = 1
	}
	return w
}

// CheckPairs checks intermediate-state pairs against the student's and the
// teacher's depth (layer L is the final norm).
func CheckPairs(pairs []LayerPair, student, teacher *model.Config) error {
	if len(pairs) == 0 {
		return nil
	}
	if teacher == nil {
		return fmt.Errorf("intermediate-state loss needs a teacher")
	}
	seen := map[int]bool{}
	for _, p := range pairs {
		if p.Student < 0 || p.Student > student.NumLayers {
			return fmt.Errorf("intermediate pair %d→%d: student layer %d outside 0..%d (layers, or %d for the final norm)",
				p.Student, p.Teacher, p.Student, student.NumLayers, student.NumLayers)
		}
		if p.Teacher < 0 || p.Teacher > teacher.NumLayers {
			return fmt.Errorf("intermediate pair %d→%d: teacher layer %d outside 0..%d (layers, or %d for the final norm)",
				p.Student, p.Teacher, p.Teacher, teacher.NumLayers, teacher.NumLayers)
		}
		if seen[p.Teacher] {
			return fmt.Errorf("intermediate pairs: teacher layer %d used twice", p.Teacher)
		}
		seen[p.Teacher] = true
	}
	return nil
}

// NeedsFullTeacher reports whether a loss needs the teacher's full logits
// (not only its top-k).
func (l Losses) NeedsFullTeacher() bool {
	return l.ReverseKL != 0 || (l.KL != 0 && l.TopK == 0) || len(l.Intermediate) > 0
}

// TermKind is one logit loss.
type TermKind int

const (
	TermCE  TermKind = iota // cross-entropy on the next-token labels
	TermKL                  // forward KL(teacher‖student), on the top-k logits when Losses.TopK > 0
	TermRKL                 // reverse KL(student‖teacher)
)

// Term is one weighted logit loss of a step. Engines compute the terms in
// the order given, the first writing the logits' gradient and the others
// adding to it, each scaled by its weight.
type Term struct {
	Kind   TermKind
	Weight float64
}

// TrainTerms are the logit losses a training step computes: those with a
// non-zero weight, CE then forward KL then reverse KL.
func (l Losses) TrainTerms() []Term {
	var t []Term
	if l.CE != 0 {
		t = append(t, Term{TermCE, l.CE})
	}
	if l.KL != 0 {
		t = append(t, Term{TermKL, l.KL})
	}
	if l.ReverseKL != 0 {
		t = append(t, Term{TermRKL, l.ReverseKL})
	}
	return t
}

// EvalTerms are the losses a validation pass reports whatever their
// weights: the LM loss always, the forward KL when there are teacher
// logits (full or top-k), the reverse KL when there are full ones.
func (l Losses) EvalTerms(teacher, fullTeacher bool) []Term {
	t := []Term{{TermCE, l.CE}}
	if teacher || fullTeacher {
		t = append(t, Term{TermKL, l.KL})
	}
	if fullTeacher {
		t = append(t, Term{TermRKL, l.ReverseKL})
	}
	return t
}

// Parts are one micro-batch's losses as an engine computed them (means over
// its tokens); Loss is their mix (Mix).
type Parts struct {
	CE, KL, RKL float64
	IS          float64 // intermediate-state cosine loss (with Losses.Intermediate)
	ISAlpha     float64 // its dynamic weight α
	Loss        float32
}

// Set records term k's mean value.
func (p *Parts) Set(k TermKind, v float64) {
	switch k {
	case TermCE:
		p.CE = v
	case TermKL:
		p.KL = v
	case TermRKL:
		p.RKL = v
	}
}

// Get is term k's recorded value.
func (p *Parts) Get(k TermKind) float64 {
	return [...]float64{TermCE: p.CE, TermKL: p.KL, TermRKL: p.RKL}[k]
}

// MixLogits is the weighted sum of terms' values in p, accumulated in
// float64 in term order and rounded to float32: the logit loss L_logits
// that α reads and the loss the step reports.
func MixLogits(terms []Term, p Parts) float32 {
	var total float64
	for _, t := range terms {
		total += t.Weight * p.Get(t.Kind)
	}
	return float32(total)
}

// ISWeight is the paper's dynamic weight of the intermediate-state loss, α =
// L_logits/L_is, recomputed every micro-batch and held constant for the
// gradient so that both terms contribute equally (0 when L_is vanishes).
func ISWeight(logits, is float32) float32 {
	if is > 1e-12 {
		return logits / is
	}
	return 0
}

// Mix is the micro-batch's loss: L_logits + α·L_is, where α and L_is are
// those recorded in p (0 without an intermediate-state loss).
func Mix(terms []Term, p Parts) float32 {
	return MixLogits(terms, p) + float32(p.ISAlpha)*float32(p.IS)
}
