package data

import "fmt"

// SentencePiece is a SentencePiece .model tokenizer.
type SentencePiece struct{}

// ParseSentencePiece parses the bytes of a SentencePiece .model file.
func ParseSentencePiece(b []byte) (*SentencePiece, error) {
	return nil, fmt.Errorf("sentencepiece .model not supported yet")
}
