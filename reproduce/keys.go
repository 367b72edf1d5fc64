package reproduce

import (
	"fmt"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/prune"
)

// The stage keys, one function per stage kind, so that a test can pin them:
// a CPU run's keys must stay what they were before devices existed, or
// every existing run directory would be recomputed.

// deviceKey is what a stage whose numbers depend on the device adds to its
// key off the CPU: the device and whether f32 products used TF32 (which
// changes the numbers). The CPU adds nothing.
type deviceKey struct {
	Device string `json:"device"`
	TF32   bool   `json:"tf32"`
}

// withDevice appends d's key part to parts when d is not the CPU.
func withDevice(d devSpec, parts ...any) []any {
	if !d.cuda() {
		return parts
	}
	return append(parts, deviceKey{Device: device.CUDA.String(), TF32: !d.noTF32})
}

func tokenizerKey(c Config) string {
	return StageKey("tokenizer/1", c.GoDirs, c.TokenizerBytes, c.Vocab)
}

func dataKey(c Config, tokKey string) string {
	return StageKey("data/2", tokKey, c.GoDirs, c.TrainSplit, c.OpticksTrainSplit)
}

func tasksKey(c Config, dataKey string) string {
	return StageKey("tasks/1", dataKey, c.MCItems, c.MCContext, c.MCChoices, c.Seed)
}

// trainKey is a training run's key (teacher, retrained student, baseline).
func trainKey(c Config, d devSpec, s trainSpec) string {
	ups := s.upstreams
	if s.seed != 0 {
		ups = append(append([]string{}, ups...), fmt.Sprintf("seed=%d", s.seed))
	}
	return StageKey(withDevice(d, "train/1", s.name, s.student != "", s.cfg, s.teacher != "", s.losses, s.lr, s.tokens,
		c.SeqLen, c.Batch, c.OpticksWeight, c.ValEvery, c.ValBatches, c.Seed, ups)...)
}

func importanceKey(c Config, d devSpec, teacherKey string) string {
	return StageKey(withDevice(d, "importance/1", teacherKey, c.CalibSamples, c.SeqLen, c.Seed)...)
}

// Pruning runs on the CPU in every run; its inputs' keys (scores, teacher)
// carry the device.

func pruneWidthKey(scoresKey string, wt prune.Target) string {
	return StageKey("prune/1", scoresKey, wt)
}

func pruneDepthKey(scoresKey string, layers int) string {
	return StageKey("prune-depth/1", scoresKey, layers)
}

// pruneRandomKey: seed draws the kept channels (Config.seedOf).
func pruneRandomKey(teacherKey string, wt prune.Target, seed uint64) string {
	return StageKey("prune-random/1", teacherKey, wt, seed)
}

// evalKey is an evaluation's key; modelKey is the key of the stage that
// made the model.
func evalKey(c Config, d devSpec, modelKey, dataKey, tasksKey string) string {
	return StageKey(withDevice(d, "eval/2", modelKey, dataKey, tasksKey, c.EvalTokens, c.SeqLen)...)
}
