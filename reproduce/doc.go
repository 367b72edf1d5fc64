// Package reproduce runs the Minitron paper in miniature on the built-in
// corpora: train a tokenizer and a teacher, score importance, prune two
// students, distill them, train the paper's baselines and the
// distillation-loss ablation, every trained arm over Config.Seeds seeds,
// evaluate everything and write REPORT.md. Each claim is decided on the
// paired difference over seeds with its standard error (PairedDiff,
// Decide: held, not held or inconclusive). Each stage writes its outputs
// into its own directory and a completion marker; a re-run skips finished
// stages.
//
// Run does the whole job for a Config (FullConfig is `minitron reproduce`,
// QuickConfig its --quick smoke test). The work itself is done by the
// library packages — data (tokenizer training, corpus preparation,
// samplers), distill (training and distillation), importance, prune and
// eval, each through its library entry point (importance.Run, prune.Run,
// distill.Run, eval.NewLM) as a user of the packages would call it — so
// this package only sequences them, caches their results (RunStage,
// StageKey) and reports (Table, Claims, ClaimsTable). It sits above the
// stage libraries and below the CLI: no library package imports it.
//
// Options.Device device.CUDA (a binary built with -tags minitron_cuda)
// runs the compute stages — training and distillation, importance scoring,
// evaluation — on GPU 0 through the same libraries' device paths. Their
// stage keys then include the device and TF32 setting (the CPU's keys are
// those of runs made before devices existed), their markers name the GPU,
// and a run directory holds one device's run: a run on the other device is
// refused rather than reusing or overwriting its stages.
package reproduce
