package distill

import "github.com/minitron-dev/minitron/comm"

// The device engines' parity tests (engine_cuda_test.go) are in package
// distill_test, since they import package gpu, which imports distill; they
// share these fixtures.
var (
	TinyConfig         = tinyConfig
	Corpus             = corpus
	Sampler            = sampler
	CheckNonFiniteLoss = testNonFiniteLoss
	BiasRunConfig      = biasRunConfig
)

// SetDataParallel makes tr train data-parallel over c at ZeRO stage (the
// engine built with EngineConfig.Zero = stage); StepParallel then runs a
// step from this rank's micro-batches of the n in the step.
func SetDataParallel(tr *Trainer, c comm.Communicator, stage int) (err error) {
	tr.dp, err = newDataParallel(c, tr.Engine, stage)
	return err
}

func StepParallel(tr *Trainer, local [][][]int32, n int) (StepMetrics, error) {
	return tr.stepParallel(local, n, false)
}

var MasterFileName = masterName
