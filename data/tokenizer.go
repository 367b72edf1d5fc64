package data

// Tokenizers (files tokenizer*.go, sentencepiece*.go, spm*.go, hf*.go,
// bpe*.go, pretok*.go):
//
//   - SentencePiece .model (sentencepiece.go): the ModelProto is read with a
//     protowire decoder; BPE (merge by piece score, highest first, leftmost
//     on ties) and Unigram (Viterbi, sentencepiece's float arithmetic)
//     reproduce spm_encode, including the precompiled normalization
//     charsmap (nmt_nfkc, nfkc_cf), whitespace options, user-defined and
//     control pieces, byte fallback and unknown-run fusion. Checked against
//     spm_encode/spm_decode on 1,623 lines for 7 models (make_golden.py).
//   - Hugging Face tokenizer.json BPE (hf.go): byte-level (GPT-2, Llama-3,
//     Qwen2, GPT-4o and DeepSeek split regexes, whose look-ahead Go's
//     regexp lacks, run by hand-written scanners checked against Python's
//     regex module) and SentencePiece-style (Metaspace or Prepend+Replace,
//     byte fallback), added tokens, template post-processing. The
//     normalizers (hf_norm.go: NFC/NFD/NFKC/NFKD, Lowercase, Strip,
//     StripAccents, Replace, Prepend, Sequence) follow HF's Rust code,
//     down to its Unicode 9.0 normalization tables; checked against
//     tokenizers 0.23.2 on Qwen3's real tokenizer.json and every normalizer
//     type (make_hf_normalizer_ids.js). tokenizer_config.json's specials
//     win: "bos_token": null means no BOS.
//   - Byte-level BPE training (bpe_train.go) writing tokenizer.json and
//     tokenizer_config.json.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// Tokenizer turns text into token ids and back. Implementations are safe for
// concurrent use by multiple goroutines once loaded.
//
// Encode never adds BOS/EOS or other template tokens: it gives the ids of
// the text alone, like `spm_encode` and HF's encode(add_special_tokens=False).
// Callers that build training documents prepend BOS() / append EOS()
// themselves, so every tokenizer kind behaves the same way.
type Tokenizer interface {
	// Encode returns the ids of text (no BOS/EOS added). Special tokens
	// written literally in text (HF added tokens, SentencePiece
	// user-defined symbols) are recognised; SentencePiece control symbols
	// such as <s> are never produced from text.
	Encode(text string) []int
	// Decode returns the text of ids; special/control tokens decode to "".
	Decode(ids []int) string
	// VocabSize is the number of ids, including added and special tokens.
	VocabSize() int
	// Special token ids; -1 when the tokenizer has none.
	BOS() int
	EOS() int
	PAD() int
	UNK() int
	// Identity is a short stable string naming the tokenizer (kind and a
	// hash of its file), recorded in manifests and score files.
	Identity() string
}

// LoadTokenizer loads a tokenizer from path: a tokenizer.json (HF), a
// SentencePiece .model file, or a directory holding (in this order of
// preference) tokenizer.json, tokenizer.model, GPT-2's vocab.json +
// merges.txt, or a single *.model file. A file's kind is recognised by
// content (JSON or protobuf), not by name.
func LoadTokenizer(path string) (Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if st.IsDir() {
		for _, name := range []string{"tokenizer.json", "tokenizer.model"} {
			p := filepath.Join(path, name)
			if _, err := os.Stat(p); err == nil {
				return LoadTokenizer(p)
			}
		}
		// GPT-2 slow-tokenizer / Megatron GPT2BPETokenizer files.
		v, m := filepath.Join(path, "vocab.json"), filepath.Join(path, "merges.txt")
		if _, err := os.Stat(v); err == nil {
			if _, err := os.Stat(m); err == nil {
				return LoadGPT2Files(v, m)
			}
		}
		// NeMo/Megatron checkpoints name the SentencePiece file after the
		// tokenizer (e.g. nemotron_2_256k.model): take it when it is the only one.
		if ms, _ := filepath.Glob(filepath.Join(path, "*.model")); len(ms) == 1 {
			return LoadTokenizer(ms[0])
		}
		return nil, fmt.Errorf("tokenizer: %s holds no tokenizer.json, tokenizer.model, vocab.json+merges.txt or single *.model", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if looksJSON(b) {
		t, err := LoadHFTokenizer(path)
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	t, err := ParseSentencePiece(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func looksJSON(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// shortHash names file contents in Identity strings.
func shortHash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:6])
}

// TokenString returns the vocabulary string of id (the piece or token as
// stored, e.g. "▁the" or "Ġthe"), or "" when the tokenizer cannot say.
func TokenString(t Tokenizer, id int) string {
	switch t := t.(type) {
	case *HFTokenizer:
		return t.Token(id)
	case *SentencePiece:
		if id >= 0 && id < len(t.Pieces) {
			return t.Pieces[id].Piece
		}
	}
	return ""
}
