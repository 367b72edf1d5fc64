package data

import (
	"encoding/binary"
	"fmt"
)

// charsMap is a SentencePiece precompiled_charsmap: a darts-clone double
// array trie over UTF-8 input whose values index NUL-terminated
// replacement strings (how nmt_nfkc, nfkc_cf and custom rule TSVs are
// stored in a .model file). Blob layout: u32 LE trie size in bytes, the
// trie units (u32 LE each), then the replacement strings.
type charsMap struct {
	units      []uint32
	normalized []byte
}

func parseCharsMap(blob []byte) (*charsMap, error) {
	if len(blob) <= 4 {
		return nil, fmt.Errorf("precompiled_charsmap: %d bytes, too short", len(blob))
	}
	n := int(binary.LittleEndian.Uint32(blob))
	if n >= len(blob)-4+1 || n%4 != 0 || n == 0 {
		return nil, fmt.Errorf("precompiled_charsmap: trie size %d does not fit the %d-byte blob", n, len(blob))
	}
	cm := &charsMap{units: make([]uint32, n/4), normalized: blob[4+n:]}
	for i := range cm.units {
		cm.units[i] = binary.LittleEndian.Uint32(blob[4+4*i:])
	}
	return cm, nil
}

func dartsHasLeaf(u uint32) bool  { return (u>>8)&1 == 1 }
func dartsValue(u uint32) uint32  { return u & (1<<31 - 1) }
func dartsLabel(u uint32) uint32  { return u & (1<<31 | 0xFF) }
func dartsOffset(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }

// longest returns the replacement for the longest rule matching a prefix
// of s and that prefix's length; n == 0 when no rule matches. Corrupt
// tries end the search instead of panicking.
func (cm *charsMap) longest(s string) (repl string, n int) {
	units := cm.units
	pos := uint32(0)
	u := units[0]
	pos ^= dartsOffset(u)
	bestVal := -1
	for i := 0; i < len(s); i++ {
		c := uint32(s[i])
		pos ^= c
		if int(pos) >= len(units) {
			break
		}
		u = units[pos]
		if dartsLabel(u) != c {
			break
		}
		pos ^= dartsOffset(u)
		if dartsHasLeaf(u) {
			if int(pos) >= len(units) {
				break
			}
			bestVal, n = int(dartsValue(units[pos])), i+1
		}
	}
	if bestVal < 0 || bestVal >= len(cm.normalized) {
		return "", 0
	}
	end := bestVal
	for end < len(cm.normalized) && cm.normalized[end] != 0 {
		end++
	}
	return string(cm.normalized[bestVal:end]), n
}
