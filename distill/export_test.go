package distill

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
