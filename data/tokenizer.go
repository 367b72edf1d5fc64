package data

// Tokenizer turns text into token ids and back. Implementations are safe for
// concurrent use by multiple goroutines once loaded.
type Tokenizer interface {
	// Encode returns the ids of text. Special tokens are added only as the
	// tokenizer's own post-processing rules say (e.g. a BOS for SentencePiece
	// models configured so); callers that need raw ids use EncodeRaw.
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
