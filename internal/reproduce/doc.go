// Package reproduce runs the Minitron paper in miniature on the built-in
// corpora: train a tokenizer and a teacher, score importance, prune two
// students, distill them, train the paper's baselines, evaluate everything
// and write REPORT.md. Each stage writes its outputs into its own directory
// and a completion marker; a re-run skips finished stages.
package reproduce
