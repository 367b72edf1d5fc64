package data

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// synthSPModel builds a BPE ModelProto with n pieces (Nemotron's is 256k):
// <unk> <s> </s>, 256 byte pieces, then random ▁-prefixed words scored by rank.
func synthSPModel(n int) []byte {
	piece := func(s string, score float32, typ PieceType) []byte {
		var p []byte
		p = protowire.AppendTag(p, 1, protowire.BytesType)
		p = protowire.AppendString(p, s)
		p = protowire.AppendTag(p, 2, protowire.Fixed32Type)
		p = protowire.AppendFixed32(p, mathFloat32bits(score))
		p = protowire.AppendTag(p, 3, protowire.VarintType)
		p = protowire.AppendVarint(p, uint64(typ))
		return p
	}
	var b []byte
	add := func(p []byte) {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
	}
	add(piece("<unk>", 0, PieceUnknown))
	add(piece("<s>", 0, PieceControl))
	add(piece("</s>", 0, PieceControl))
	for i := 0; i < 256; i++ {
		add(piece(fmt.Sprintf("<0x%02X>", i), 0, PieceByte))
	}
	r := rand.New(rand.NewSource(1))
	seen := map[string]bool{}
	letters := "abcdefghijklmnopqrstuvwxyz"
	for k := 0; len(seen) < n-259; k++ {
		w := ""
		if r.Intn(2) == 0 {
			w = "▁"
		}
		for j := 0; j < 1+r.Intn(9); j++ {
			w += string(letters[r.Intn(26)])
		}
		if seen[w] {
			continue
		}
		seen[w] = true
		add(piece(w, -float32(len(seen)), PieceNormal))
	}
	var ts []byte
	ts = protowire.AppendTag(ts, 3, protowire.VarintType)
	ts = protowire.AppendVarint(ts, uint64(SPBPE))
	ts = protowire.AppendTag(ts, 35, protowire.VarintType)
	ts = protowire.AppendVarint(ts, 1)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, ts)
	return b
}

// BenchmarkLoadSentencePiece256k: parse + build tables for a 256k-piece
// model (the size of Nemotron's tokenizer).
func BenchmarkLoadSentencePiece256k(b *testing.B) {
	m := synthSPModel(256000)
	b.SetBytes(int64(len(m)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ParseSentencePiece(m); err != nil {
			b.Fatal(err)
		}
	}
}

func mathFloat32bits(f float32) uint32 { return math.Float32bits(f) }
