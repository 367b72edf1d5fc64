// Package eval measures language models the way lm-evaluation-harness does,
// so numbers from minitron line up with published tables:
//
//   - perplexity over a Megatron indexed dataset or a text file, with
//     lm-eval's rolling windows and, for text, word perplexity and bits per
//     byte (as its wikitext task reports them);
//   - multiple-choice tasks (hellaswag, winogrande, arc_easy/arc_challenge,
//     mmlu) scored by the summed log-likelihood of each choice, reporting
//     acc and acc_norm with standard errors;
//   - gsm8k by greedy generation with stop strings and lm-eval's strict and
//     flexible answer extraction;
//   - xlsum by greedy summaries scored with ROUGE-1/2/L F1 (rouge-score's
//     tokenisation, optional Porter stemming);
//   - humaneval and mbpp by greedy or sampled completions executed in a
//     sandbox (Sandbox: a python3 process per sample in its own directory
//     under time, memory, process and file limits, and as root in new
//     network, mount and PID namespaces), reported as unbiased pass@k;
//     ScoreCodeSamples scores completions produced elsewhere;
//   - side-by-side reports of several models (markdown and JSON) and loss
//     curve plots of training runs.
//
// Task files are read in each dataset's original format (jsonl, or MMLU's
// per-subject csv files); prompts, few-shot layout, continuation
// tokenization and metrics follow lm-eval's task definitions, and few-shot
// examples are drawn by lm-eval's seeded sampler (PyRandom reproduces
// CPython's random module) or its first_n. Generation tasks can resume
// from a partial-results file (Runner.Partial). The model is
// reached through the small LM interface, so the scoring code can be tested
// against any implementation; NewLM builds the one to use for a model, on
// the CPU (ModelLM) or on GPU 0 (DeviceLM), for the CLI and the reproduce
// pipeline alike. Long runs report progress through a callback
// (PPLOptions.Progress, Runner.Progress); drawing it is the caller's job.
package eval
