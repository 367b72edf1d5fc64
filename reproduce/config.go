package reproduce

import (
	"fmt"

	"github.com/minitron-dev/minitron/model"
)

// Arch is a nemotron decoder shape.
type Arch struct {
	Layers  int `json:"layers"`
	Hidden  int `json:"hidden"`
	Heads   int `json:"heads"`
	KVHeads int `json:"kv_heads"`
	FFN     int `json:"ffn"`
}

func (a Arch) String() string {
	return fmt.Sprintf("%d layers, hidden %d, %d heads (%d KV groups), FFN %d", a.Layers, a.Hidden, a.Heads, a.KVHeads, a.FFN)
}

// Config sizes one reproduction. Everything a stage's result depends on is
// in here, so the stage keys are hashes of (parts of) it.
type Config struct {
	Name string `json:"name"`

	// GoDirs restricts the Go corpus to these directories under
	// $GOROOT/src (empty: every .go file, the built-in go-src corpus).
	GoDirs []string `json:"go_dirs,omitempty"`
	// TokenizerBytes caps the Go text the tokenizer is trained on (the
	// whole Opticks book is always added).
	TokenizerBytes int64 `json:"tokenizer_bytes"`
	Vocab          int   `json:"vocab"`
	// TrainSplit is the fraction of Go documents used for training; the
	// rest are held out for validation and the multiple-choice tasks.
	// OpticksTrainSplit likewise for the book's ~4 KB pieces.
	TrainSplit        float64 `json:"train_split"`
	OpticksTrainSplit float64 `json:"opticks_train_split"`

	Teacher Arch `json:"teacher"`
	SeqLen  int  `json:"seq_len"`
	Batch   int  `json:"batch"` // sequences per optimizer step
	// OpticksWeight is the share of Opticks in the training blend.
	OpticksWeight float64 `json:"opticks_weight"`

	TeacherTokens int64   `json:"teacher_tokens"`
	TeacherLR     float64 `json:"teacher_lr"` // also the from-scratch baselines' LR
	StudentTokens int64   `json:"student_tokens"`
	StudentLR     float64 `json:"student_lr"` // retraining a pruned student (KD or CE)
	// LongMultiple: the from-scratch "many tokens" baseline of the first
	// student trains on this many times StudentTokens.
	LongMultiple int `json:"long_multiple"`

	// StudentFractions of the teacher's non-embedding parameters. The
	// first size also gets the many-tokens baseline and the
	// distillation-loss ablation.
	StudentFractions []float64 `json:"student_fractions"`
	// Seeds is how many times every trained student arm runs, seed i
	// (1-based) with Seed+i−1: its data order and, for the from-scratch
	// baselines, its initialisation and, for random pruning, the kept
	// channels. Seed i of every arm sees the same data order, so arms are
	// compared by paired differences. The teacher (and so the importance
	// scores and the pruned checkpoints) is trained once and shared.
	Seeds int `json:"seeds"`

	CalibSamples int `json:"calib_samples"`
	ValEvery     int `json:"val_every"` // validations per run (curve points)
	ValBatches   int `json:"val_batches"`

	EvalTokens int `json:"eval_tokens"` // held-out tokens per corpus for perplexity
	MCItems    int `json:"mc_items"`    // items per multiple-choice task
	MCContext  int `json:"mc_context"`  // context lines per item
	MCChoices  int `json:"mc_choices"`

	Seed uint64 `json:"seed"`
}

// FullConfig is the default run, sized to finish within half an hour on
// two cores: an 8-layer teacher whose embedding is a fifth of its
// parameters (vocabulary 2048), 13 claims over 3 seeds of every trained
// arm. The trades that fit it in (640K teacher tokens, 32K retraining
// tokens per run, a 4× rather than 6× many-tokens baseline, 12K held-out
// tokens, 100 task items of 4 context lines scored on seed 1) are stated
// in the report.
func FullConfig() Config {
	return Config{
		Name:              "full",
		TokenizerBytes:    8 << 20,
		Vocab:             2048,
		TrainSplit:        0.98,
		OpticksTrainSplit: 0.9,
		Teacher:           Arch{Layers: 8, Hidden: 192, Heads: 4, KVHeads: 2, FFN: 768},
		SeqLen:            128,
		Batch:             8,
		OpticksWeight:     0.2,
		TeacherTokens:     640_000,
		TeacherLR:         2e-3,
		StudentTokens:     32_000,
		StudentLR:         1e-3,
		LongMultiple:      4,
		StudentFractions:  []float64{0.5, 0.25},
		Seeds:             3,
		CalibSamples:      64,
		ValEvery:          6,
		ValBatches:        2,
		EvalTokens:        12_000,
		MCItems:           100,
		MCContext:         4,
		MCChoices:         4,
		Seed:              1,
	}
}

// QuickConfig runs the same pipeline on tiny sizes (about a minute): the CI
// smoke test of the whole flow, not a result.
func QuickConfig() Config {
	return Config{
		Name:              "quick",
		GoDirs:            []string{"strings", "sort", "unicode/utf8", "bufio"},
		TokenizerBytes:    512 << 10,
		Vocab:             512,
		TrainSplit:        0.8,
		OpticksTrainSplit: 0.8,
		Teacher:           Arch{Layers: 8, Hidden: 48, Heads: 4, KVHeads: 2, FFN: 192},
		SeqLen:            64,
		Batch:             4,
		OpticksWeight:     0.2,
		TeacherTokens:     24_576,
		TeacherLR:         3e-3,
		StudentTokens:     2_048,
		StudentLR:         2e-3,
		LongMultiple:      4,
		StudentFractions:  []float64{0.5, 0.25},
		Seeds:             3,
		CalibSamples:      8,
		ValEvery:          2,
		ValBatches:        2,
		EvalTokens:        512,
		MCItems:           8,
		MCContext:         3,
		MCChoices:         4,
		Seed:              1,
	}
}

func (c Config) validate() error {
	switch {
	case c.Vocab < 300:
		return fmt.Errorf("vocab %d: want at least 300 (256 bytes + specials + merges)", c.Vocab)
	case c.SeqLen <= 0 || c.Batch <= 0:
		return fmt.Errorf("seq len %d and batch %d must be positive", c.SeqLen, c.Batch)
	case c.TeacherTokens <= 0 || c.StudentTokens <= 0:
		return fmt.Errorf("token budgets must be positive")
	case len(c.StudentFractions) == 0:
		return fmt.Errorf("no student sizes")
	case c.Seeds < 1:
		return fmt.Errorf("seeds %d: want at least 1 (3 or more for verdicts)", c.Seeds)
	case !(c.TrainSplit > 0 && c.TrainSplit < 1) || !(c.OpticksTrainSplit > 0 && c.OpticksTrainSplit < 1):
		return fmt.Errorf("train splits %v, %v: want fractions in (0,1)", c.TrainSplit, c.OpticksTrainSplit)
	}
	for _, f := range c.StudentFractions {
		if !(f > 0 && f < 1) {
			return fmt.Errorf("student fraction %v: want (0,1)", f)
		}
	}
	_, err := c.teacherConfig()
	return err
}

// teacherConfig is the teacher's model config: nemotron with the
// tokenizer's EOS (id 0) as BOS and EOS.
func (c Config) teacherConfig() (*model.Config, error) {
	a := c.Teacher
	cfg, err := model.SyntheticConfig(model.Nemotron, a.Layers, a.Hidden, a.Heads, a.KVHeads, a.FFN, c.Vocab)
	if err != nil {
		return nil, err
	}
	cfg.MaxPositionEmbeddings = 4 * c.SeqLen
	cfg.BOSTokenID = 0
	cfg.EOSTokenIDs = []int{0}
	cfg.TorchDType = "float32"
	return cfg, cfg.Validate()
}
