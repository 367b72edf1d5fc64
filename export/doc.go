// Package export writes a checkpoint in the forms other tools load: a clean
// Hugging Face directory in a chosen dtype (HF) and a GGUF file for
// llama.cpp (GGUF). Both read any minitron checkpoint, a distill or train
// checkpoint included (its optimizer.bin and trainer_state.json are left
// behind), and publish their output only when it is complete.
package export
