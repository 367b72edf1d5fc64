package data

import "fmt"

// idxTestTok is a test-only byte tokenizer: ids 0..255 are bytes, 256 is EOS,
// 257 BOS. It keeps the dataset tests independent of the real tokenizers.
type idxTestTok struct{ bos bool }

func (t idxTestTok) Encode(s string) []int {
	out := make([]int, 0, len(s)+1)
	if t.bos {
		out = append(out, 257)
	}
	for i := 0; i < len(s); i++ {
		out = append(out, int(s[i]))
	}
	return out
}

func (idxTestTok) Decode(ids []int) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && id < 256 {
			b = append(b, byte(id))
		}
	}
	return string(b)
}

func (idxTestTok) VocabSize() int { return 258 }
func (idxTestTok) BOS() int       { return 257 }
func (idxTestTok) EOS() int       { return 256 }
func (idxTestTok) PAD() int       { return -1 }
func (idxTestTok) UNK() int       { return -1 }
func (t idxTestTok) Identity() string {
	return fmt.Sprintf("test-bytes(bos=%v)", t.bos)
}
