package reproduce

// tinyRunConfig is the smallest run of the whole pipeline: a 2-layer,
// 32-wide teacher on a few hundred tokens, one student size, one seed, 1-2
// steps a run. It finishes in seconds on the CPU and in about a minute on the CUDA
// emulator; its numbers mean nothing.
func tinyRunConfig() Config {
	return Config{
		Name:              "tiny",
		GoDirs:            []string{"sort"},
		TokenizerBytes:    64 << 10,
		Vocab:             300,
		TrainSplit:        0.7,
		OpticksTrainSplit: 0.9,
		Teacher:           Arch{Layers: 2, Hidden: 32, Heads: 4, KVHeads: 2, FFN: 64},
		SeqLen:            32,
		Batch:             1,
		OpticksWeight:     0.2,
		TeacherTokens:     64,
		TeacherLR:         3e-3,
		StudentTokens:     32,
		StudentLR:         2e-3,
		LongMultiple:      2,
		StudentFractions:  []float64{0.5},
		Seeds:             1,
		CalibSamples:      2,
		ValEvery:          1,
		ValBatches:        1,
		EvalTokens:        32,
		MCItems:           2,
		MCContext:         2,
		MCChoices:         2,
		Seed:              1,
	}
}
