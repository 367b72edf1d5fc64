package data

import (
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// PieceType is a SentencePiece piece's type (sentencepiece_model.proto).
type PieceType int

// Piece types, with the proto's numbers.
const (
	PieceNormal      PieceType = 1
	PieceUnknown     PieceType = 2
	PieceControl     PieceType = 3
	PieceUserDefined PieceType = 4
	PieceUnused      PieceType = 5
	PieceByte        PieceType = 6
)

// SPModelType is TrainerSpec.model_type.
type SPModelType int

// Model types, with the proto's numbers.
const (
	SPUnigram SPModelType = 1
	SPBPE     SPModelType = 2
	SPWord    SPModelType = 3
	SPChar    SPModelType = 4
)

// SPPiece is one vocabulary entry of a .model file.
type SPPiece struct {
	Piece string
	Score float32
	Type  PieceType
}

// SPTrainerSpec holds the TrainerSpec fields that encoding depends on.
type SPTrainerSpec struct {
	ModelType               SPModelType
	VocabSize               int
	ByteFallback            bool
	TreatWhitespaceAsSuffix bool
	UnkID, BOSID, EOSID     int
	PadID                   int
	UnkSurface              string
}

// SPNormalizerSpec is the NormalizerSpec of a .model file.
type SPNormalizerSpec struct {
	Name                   string
	PrecompiledCharsmap    []byte
	AddDummyPrefix         bool
	RemoveExtraWhitespaces bool
	EscapeWhitespaces      bool
}

// SentencePiece is a SentencePiece .model tokenizer (BPE or Unigram). It
// reproduces spm_encode's ids: the normalizer applies the model's
// precompiled charsmap (nmt_nfkc, nfkc_cf, identity = none, or custom
// rules) and the whitespace options (add_dummy_prefix,
// remove_extra_whitespaces, escape_whitespaces) exactly as sentencepiece's
// normalizer.cc does; user-defined pieces are matched greedily and never
// normalized or merged; control pieces are never produced from text.
// treat_whitespace_as_suffix and the WORD/CHAR model types are rejected.
type SentencePiece struct {
	Pieces     []SPPiece
	Trainer    SPTrainerSpec
	Normalizer SPNormalizerSpec

	pieces   map[string]int // NORMAL, USER_DEFINED, UNUSED
	reserved map[string]int // CONTROL, UNKNOWN, BYTE
	user     *prefixTrie    // USER_DEFINED pieces
	charsMap *charsMap      // nil for identity normalization
	trie     *prefixTrie    // pieces (unigram lattice)
	unkID    int
	byteIDs  [256]int
	minScore float32
	maxScore float32
	bos, eos int
	pad      int
	identity string

	// chunked: no piece has ▁ after a non-▁ character, so BPE never merges
	// across the start of a ▁ run and each such chunk can be encoded (and
	// cached) on its own with the same result.
	chunked bool
	cache   spCache
}

const spaceSymbol = "\u2581"

// LoadSentencePiece reads a SentencePiece .model file.
func LoadSentencePiece(path string) (*SentencePiece, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sp, err := ParseSentencePiece(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sp, nil
}

// ParseSentencePiece parses the bytes of a SentencePiece .model file (a
// serialized ModelProto).
func ParseSentencePiece(b []byte) (*SentencePiece, error) {
	sp := &SentencePiece{
		Trainer: SPTrainerSpec{ModelType: SPUnigram, UnkID: 0, BOSID: 1, EOSID: 2, PadID: -1,
			UnkSurface: " \u2047 "},
		Normalizer: SPNormalizerSpec{AddDummyPrefix: true, RemoveExtraWhitespaces: true, EscapeWhitespaces: true},
	}
	err := walkProto(b, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
		switch num {
		case 1:
			p, err := parsePiece(data)
			if err != nil {
				return fmt.Errorf("pieces[%d]: %w", len(sp.Pieces), err)
			}
			sp.Pieces = append(sp.Pieces, p)
		case 2:
			if err := parseTrainerSpec(data, &sp.Trainer); err != nil {
				return fmt.Errorf("trainer_spec: %w", err)
			}
		case 3:
			if err := parseNormalizerSpec(data, &sp.Normalizer); err != nil {
				return fmt.Errorf("normalizer_spec: %w", err)
			}
		}
		return nil
	}, map[protowire.Number]protowire.Type{1: protowire.BytesType, 2: protowire.BytesType, 3: protowire.BytesType})
	if err != nil {
		return nil, fmt.Errorf("not a SentencePiece model: %w", err)
	}
	if err := sp.init(); err != nil {
		return nil, err
	}
	sp.identity = "spm-" + sp.kindName() + ":" + shortHash(b)
	return sp, nil
}

func (sp *SentencePiece) kindName() string {
	switch sp.Trainer.ModelType {
	case SPBPE:
		return "bpe"
	case SPUnigram:
		return "unigram"
	}
	return fmt.Sprint(int(sp.Trainer.ModelType))
}

// walkProto calls f for every field of a message. want, when it names a
// field, is the wire type that field must have.
func walkProto(b []byte, f func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error,
	want map[protowire.Number]protowire.Type) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if w, ok := want[num]; ok && w != typ {
			return fmt.Errorf("field %d has wire type %d, want %d", num, typ, w)
		}
		var v uint64
		var data []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			v = uint64(x)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			data, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v, data); err != nil {
			return err
		}
	}
	return nil
}

func parsePiece(b []byte) (SPPiece, error) {
	p := SPPiece{Type: PieceNormal}
	err := walkProto(b, func(num protowire.Number, _ protowire.Type, v uint64, data []byte) error {
		switch num {
		case 1:
			p.Piece = string(data)
		case 2:
			p.Score = math.Float32frombits(uint32(v))
		case 3:
			p.Type = PieceType(int32(v))
		}
		return nil
	}, map[protowire.Number]protowire.Type{1: protowire.BytesType, 2: protowire.Fixed32Type, 3: protowire.VarintType})
	return p, err
}

func parseTrainerSpec(b []byte, t *SPTrainerSpec) error {
	vi := protowire.VarintType
	return walkProto(b, func(num protowire.Number, _ protowire.Type, v uint64, data []byte) error {
		switch num {
		case 3:
			t.ModelType = SPModelType(int32(v))
		case 4:
			t.VocabSize = int(int32(v))
		case 24:
			t.TreatWhitespaceAsSuffix = v != 0
		case 35:
			t.ByteFallback = v != 0
		case 40:
			t.UnkID = int(int32(v))
		case 41:
			t.BOSID = int(int32(v))
		case 42:
			t.EOSID = int(int32(v))
		case 43:
			t.PadID = int(int32(v))
		case 44:
			t.UnkSurface = string(data)
		}
		return nil
	}, map[protowire.Number]protowire.Type{3: vi, 4: vi, 24: vi, 35: vi, 40: vi, 41: vi, 42: vi, 43: vi, 44: protowire.BytesType})
}

func parseNormalizerSpec(b []byte, n *SPNormalizerSpec) error {
	vi := protowire.VarintType
	return walkProto(b, func(num protowire.Number, _ protowire.Type, v uint64, data []byte) error {
		switch num {
		case 1:
			n.Name = string(data)
		case 2:
			n.PrecompiledCharsmap = append([]byte(nil), data...)
		case 3:
			n.AddDummyPrefix = v != 0
		case 4:
			n.RemoveExtraWhitespaces = v != 0
		case 5:
			n.EscapeWhitespaces = v != 0
		}
		return nil
	}, map[protowire.Number]protowire.Type{1: protowire.BytesType, 2: protowire.BytesType, 3: vi, 4: vi, 5: vi})
}

// init builds the lookup tables and checks the model the way
// sentencepiece's ModelInterface::InitializePieces does.
func (sp *SentencePiece) init() error {
	if len(sp.Pieces) == 0 {
		return fmt.Errorf("no pieces")
	}
	switch sp.Trainer.ModelType {
	case SPBPE, SPUnigram:
	default:
		return fmt.Errorf("model_type %d not supported (only UNIGRAM=1 and BPE=2)", sp.Trainer.ModelType)
	}
	if sp.Trainer.TreatWhitespaceAsSuffix {
		return fmt.Errorf("treat_whitespace_as_suffix not supported")
	}
	if len(sp.Normalizer.PrecompiledCharsmap) > 0 {
		cm, err := parseCharsMap(sp.Normalizer.PrecompiledCharsmap)
		if err != nil {
			return fmt.Errorf("normalizer_spec %q: %w", sp.Normalizer.Name, err)
		}
		sp.charsMap = cm
	}
	sp.pieces = make(map[string]int, len(sp.Pieces))
	sp.reserved = map[string]int{}
	sp.unkID = -1
	// sentencepiece starts max_score_ at FLT_MIN (the smallest normal
	// float), so a unigram model's max score is never below it.
	sp.minScore, sp.maxScore = math.MaxFloat32, 1.17549435e-38
	var user []string
	byteFound := 0
	for b := range sp.byteIDs {
		sp.byteIDs[b] = -1
	}
	for i, p := range sp.Pieces {
		if p.Piece == "" {
			return fmt.Errorf("pieces[%d] is empty", i)
		}
		if strings.IndexByte(p.Piece, 0) >= 0 {
			return fmt.Errorf("pieces[%d] contains a NUL byte", i)
		}
		target := sp.reserved
		switch p.Type {
		case PieceNormal, PieceUserDefined, PieceUnused:
			target = sp.pieces
		case PieceUnknown, PieceControl, PieceByte:
		default:
			return fmt.Errorf("pieces[%d] %q has unknown type %d", i, p.Piece, p.Type)
		}
		if _, dup := target[p.Piece]; dup {
			return fmt.Errorf("piece %q is defined twice", p.Piece)
		}
		target[p.Piece] = i
		switch p.Type {
		case PieceUserDefined:
			user = append(user, p.Piece)
		case PieceUnknown:
			if sp.unkID >= 0 {
				return fmt.Errorf("more than one UNKNOWN piece")
			}
			sp.unkID = i
		case PieceByte:
			if !sp.Trainer.ByteFallback {
				return fmt.Errorf("byte piece %q found although byte_fallback is false", p.Piece)
			}
			b, ok := parseByteToken(p.Piece)
			if !ok {
				return fmt.Errorf("byte piece %q is invalid", p.Piece)
			}
			if sp.byteIDs[b] < 0 {
				byteFound++
			}
			sp.byteIDs[b] = i
		case PieceNormal:
			sp.minScore = min(sp.minScore, p.Score)
			sp.maxScore = max(sp.maxScore, p.Score)
		}
	}
	if sp.unkID < 0 {
		return fmt.Errorf("no UNKNOWN piece")
	}
	if sp.Trainer.ByteFallback && byteFound != 256 {
		return fmt.Errorf("byte_fallback is set but there are %d byte pieces, not 256", byteFound)
	}
	sp.user = newPrefixTrie()
	for _, u := range user {
		sp.user.insert(u, sp.pieces[u])
	}
	if sp.Trainer.ModelType == SPUnigram {
		sp.trie = newPrefixTrie()
		for s, id := range sp.pieces {
			sp.trie.insert(s, id)
		}
	}
	// trainer_spec ids of -1 (or out of range) mean "none".
	special := func(id int) int {
		if id >= 0 && id < len(sp.Pieces) {
			return id
		}
		return -1
	}
	sp.bos = special(sp.Trainer.BOSID)
	sp.eos = special(sp.Trainer.EOSID)
	sp.pad = special(sp.Trainer.PadID)
	if sp.Trainer.ModelType == SPBPE && sp.Normalizer.EscapeWhitespaces {
		sp.chunked = true
		for p := range sp.pieces {
			if strings.Contains(strings.TrimLeft(p, spaceSymbol), spaceSymbol) {
				sp.chunked = false
				break
			}
		}
	}
	return nil
}

// VocabSize, BOS, EOS, PAD, UNK and Identity implement Tokenizer; the
// special ids come from the trainer spec (-1 when disabled).
func (sp *SentencePiece) VocabSize() int   { return len(sp.Pieces) }
func (sp *SentencePiece) BOS() int         { return sp.bos }
func (sp *SentencePiece) EOS() int         { return sp.eos }
func (sp *SentencePiece) PAD() int         { return sp.pad }
func (sp *SentencePiece) UNK() int         { return sp.unkID }
func (sp *SentencePiece) Identity() string { return sp.identity }

// PieceToID returns the id of piece, or UNK() when it has none.
func (sp *SentencePiece) PieceToID(piece string) int {
	if id, ok := sp.reserved[piece]; ok {
		return id
	}
	if id, ok := sp.pieces[piece]; ok {
		return id
	}
	return sp.unkID
}

// Normalize applies the normalizer spec: the charsmap rules and the
// whitespace options. User-defined pieces pass through untouched.
func (sp *SentencePiece) Normalize(text string) string {
	ns := &sp.Normalizer
	if text == "" {
		return ""
	}
	// One normalization unit: a user-defined piece, else the longest
	// charsmap rule, else one UTF-8 char (malformed bytes become U+FFFD,
	// consuming one byte).
	prefix := func(s string) (string, int) {
		if n, _ := sp.user.longestPrefix(s); n > 0 {
			return s[:n], n
		}
		if sp.charsMap != nil {
			if repl, n := sp.charsMap.longest(s); n > 0 {
				return repl, n
			}
		}
		r, w := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && w <= 1 {
			return "\uFFFD", 1
		}
		return s[:w], w
	}
	if ns.RemoveExtraWhitespaces {
		for text != "" {
			p, n := prefix(text)
			if p != " " {
				break
			}
			text = text[n:]
		}
	}
	if text == "" {
		return ""
	}
	var out strings.Builder
	out.Grow(len(text) * 3 / 2)
	space := " "
	if ns.EscapeWhitespaces {
		space = spaceSymbol
	}
	if ns.AddDummyPrefix {
		out.WriteString(space)
	}
	isPrevSpace := ns.RemoveExtraWhitespaces
	for text != "" {
		p, n := prefix(text)
		for isPrevSpace && strings.HasPrefix(p, " ") {
			p = p[1:]
		}
		if p != "" {
			if ns.EscapeWhitespaces && strings.IndexByte(p, ' ') >= 0 {
				for k := 0; k < len(p); k++ {
					if p[k] == ' ' {
						out.WriteString(spaceSymbol)
					} else {
						out.WriteByte(p[k])
					}
				}
			} else {
				out.WriteString(p)
			}
			isPrevSpace = p[len(p)-1] == ' '
		}
		text = text[n:]
		if !ns.RemoveExtraWhitespaces {
			isPrevSpace = false
		}
	}
	s := out.String()
	if ns.RemoveExtraWhitespaces {
		for strings.HasSuffix(s, space) {
			s = s[:len(s)-len(space)]
		}
	}
	return s
}

// Encode returns the ids spm_encode gives for text (no BOS/EOS).
func (sp *SentencePiece) Encode(text string) []int {
	norm := sp.Normalize(text)
	if norm == "" {
		return nil
	}
	e := spEmitter{sp: sp, ids: make([]int, 0, len(norm)/3+1)}
	switch {
	case sp.Trainer.ModelType != SPBPE:
		e.emit(sp.encodeUnigram(norm))
	case !sp.chunked:
		e.emit(sp.encodeBPE(norm))
	default:
		// Chunks start before every ▁ run that follows another character
		// (see SentencePiece.chunked); each is encoded once and cached.
		start := 0
		for i := 0; i < len(norm); {
			if i > start && strings.HasPrefix(norm[i:], spaceSymbol) && !strings.HasSuffix(norm[:i], spaceSymbol) {
				e.emit(sp.chunkSegs(norm[start:i]))
				start = i
				i += len(spaceSymbol)
				continue
			}
			_, w := utf8.DecodeRuneInString(norm[i:])
			i += w
		}
		e.emit(sp.chunkSegs(norm[start:]))
	}
	return e.ids
}

// spEmitter is SentencePieceProcessor's post-processing of the model's
// pieces: unknown pieces become bytes with byte_fallback, else runs of
// unknowns fuse into one id.
type spEmitter struct {
	sp      *SentencePiece
	ids     []int
	prevUnk bool
}

func (e *spEmitter) emit(segs []spSeg) {
	sp := e.sp
	for _, s := range segs {
		isUnk := s.id == sp.unkID
		switch {
		case isUnk && sp.Trainer.ByteFallback:
			for k := 0; k < len(s.piece); k++ {
				e.ids = append(e.ids, sp.byteIDs[s.piece[k]])
			}
		case isUnk && e.prevUnk:
		default:
			e.ids = append(e.ids, s.id)
		}
		e.prevUnk = isUnk
	}
}

// encodeBPEChunked is Encode's chunked BPE as one segment list (tests).
func (sp *SentencePiece) encodeBPEChunked(norm string) []spSeg {
	if !sp.chunked {
		return sp.encodeBPE(norm)
	}
	var out []spSeg
	start := 0
	for i := 0; i < len(norm); {
		if i > start && strings.HasPrefix(norm[i:], spaceSymbol) && !strings.HasSuffix(norm[:i], spaceSymbol) {
			out = append(out, sp.chunkSegs(norm[start:i])...)
			start = i
			i += len(spaceSymbol)
			continue
		}
		_, w := utf8.DecodeRuneInString(norm[i:])
		i += w
	}
	return append(out, sp.chunkSegs(norm[start:])...)
}

// chunkSegs returns the BPE segments of one chunk, from the cache when seen.
func (sp *SentencePiece) chunkSegs(chunk string) []spSeg {
	if chunk == "" {
		return nil
	}
	if segs, ok := sp.cache.get(chunk); ok {
		return segs
	}
	if len(chunk) <= 256 {
		// Segments point into their chunk: encode a copy so the cache does
		// not pin the whole normalized document.
		chunk = strings.Clone(chunk)
	}
	segs := sp.encodeBPE(chunk)
	sp.cache.put(chunk, segs)
	return segs
}

// spCache memoizes chunk → segments, reset when full (like wordCache).
type spCache struct {
	mu sync.RWMutex
	m  map[string][]spSeg
}

func (c *spCache) get(w string) ([]spSeg, bool) {
	c.mu.RLock()
	s, ok := c.m[w]
	c.mu.RUnlock()
	return s, ok
}

func (c *spCache) put(w string, s []spSeg) {
	if len(w) > 256 {
		return
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= wordCacheMax {
		c.m = make(map[string][]spSeg, 1024)
	}
	c.m[w] = s
	c.mu.Unlock()
}

type spSeg struct {
	piece string
	id    int
}

// Decode inverts Encode as spm_decode does: control pieces vanish, byte
// pieces are reassembled (invalid UTF-8 → U+FFFD per byte), ▁ becomes a
// space, leading ▁ of the text are dropped (only the first one when
// remove_extra_whitespaces is off), and <unk> decodes to the model's
// unk_surface (" ⁇ " by default).
func (sp *SentencePiece) Decode(ids []int) string {
	var out strings.Builder
	var pend []byte
	flush := func() {
		if len(pend) == 0 {
			return
		}
		s := string(pend)
		if !utf8.ValidString(s) {
			var sb strings.Builder
			for len(s) > 0 {
				r, w := utf8.DecodeRuneInString(s)
				if r == utf8.RuneError && w <= 1 {
					sb.WriteString("\uFFFD")
				} else {
					sb.WriteString(s[:w])
				}
				s = s[w:]
			}
			s = sb.String()
		}
		out.WriteString(s)
		pend = pend[:0]
	}
	// Leading ▁ handling as sentencepiece_processor.cc: while nothing has
	// been written, a piece's leading ▁ is the dummy prefix (or an extra
	// space) and is dropped; without remove_extra_whitespaces only the
	// first one is.
	ns := &sp.Normalizer
	isBosWS, bosWSSeen := true, false
	for _, id := range ids {
		if id < 0 || id >= len(sp.Pieces) {
			continue
		}
		p := sp.Pieces[id]
		if p.Type == PieceByte {
			if b, ok := parseByteToken(p.Piece); ok {
				pend = append(pend, b)
			}
			continue
		}
		flush()
		if bosWSSeen || out.Len() > 0 {
			isBosWS = false
		}
		consumed := false
		switch p.Type {
		case PieceControl:
		case PieceUnknown:
			out.WriteString(sp.Trainer.UnkSurface)
		default:
			s := p.Piece
			if isBosWS && (ns.AddDummyPrefix || ns.RemoveExtraWhitespaces) {
				s, consumed = strings.CutPrefix(s, spaceSymbol)
				if ns.RemoveExtraWhitespaces {
					consumed = false
				}
			}
			out.WriteString(strings.ReplaceAll(s, spaceSymbol, " "))
		}
		bosWSSeen = consumed
	}
	flush()
	return out.String()
}

// encodeBPE follows sentencepiece's bpe::Model::Encode: characters (and
// user-defined pieces, which never merge) as symbols, then repeatedly merge
// the adjacent pair whose concatenation is the highest-scoring piece,
// leftmost on ties; UNUSED pieces are split back into their parts.
func (sp *SentencePiece) encodeBPE(norm string) []spSeg {
	type symbol struct {
		start, end int // byte range in norm
		prev, next int
		freeze     bool
	}
	syms := make([]symbol, 0, len(norm))
	for i := 0; i < len(norm); {
		n, found := sp.user.longestPrefix(norm[i:])
		if !found {
			_, n = utf8.DecodeRuneInString(norm[i:])
		}
		syms = append(syms, symbol{start: i, end: i + n, prev: len(syms) - 1, next: len(syms) + 1, freeze: found})
		i += n
	}
	syms[len(syms)-1].next = -1
	h := newPriorityQueue(func(x, y *spPair) bool { // highest score, leftmost on ties
		if x.score != y.score {
			return x.score > y.score
		}
		return x.left < y.left
	})
	var revMerge map[string][2]string // only UNUSED pieces need it
	addPair := func(l, r int) {
		if l < 0 || r < 0 || syms[l].freeze || syms[r].freeze {
			return
		}
		piece := norm[syms[l].start:syms[r].end]
		id, ok := sp.pieces[piece]
		if !ok {
			return
		}
		h.push(spPair{left: l, right: r, score: sp.Pieces[id].Score, size: len(piece)})
		if sp.Pieces[id].Type == PieceUnused {
			if revMerge == nil {
				revMerge = map[string][2]string{}
			}
			revMerge[piece] = [2]string{norm[syms[l].start:syms[l].end], norm[syms[r].start:syms[r].end]}
		}
	}
	for i := 1; i < len(syms); i++ {
		addPair(i-1, i)
	}
	for h.len() > 0 {
		top := h.pop()
		l, r := &syms[top.left], &syms[top.right]
		if l.start == l.end || r.start == r.end || (l.end-l.start)+(r.end-r.start) != top.size || l.next != top.right {
			continue
		}
		l.end = r.end
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = top.left
		}
		r.start, r.end = 0, 0
		addPair(l.prev, top.left)
		addPair(top.left, l.next)
	}
	var out []spSeg
	var reseg func(w string)
	reseg = func(w string) {
		id := sp.PieceToID(w)
		if id < 0 || sp.Pieces[id].Type != PieceUnused {
			out = append(out, spSeg{w, id})
			return
		}
		p, ok := revMerge[w]
		if !ok {
			out = append(out, spSeg{w, id})
			return
		}
		reseg(p[0])
		reseg(p[1])
	}
	for i := 0; i >= 0; i = syms[i].next {
		reseg(norm[syms[i].start:syms[i].end])
	}
	return out
}

type spPair struct {
	left, right int
	score       float32
	size        int
}

// encodeUnigram is sentencepiece's unigram::Model::EncodeOptimized: a
// Viterbi pass over all vocabulary pieces starting at each character, with
// an UNK node where no single-character piece exists. The float32/float64
// mix reproduces sentencepiece's arithmetic so that near-ties resolve the
// same way.
func (sp *SentencePiece) encodeUnigram(norm string) []spSeg {
	type best struct {
		id       int
		score    float32
		startsAt int
	}
	n := len(norm)
	bp := make([]best, n+1)
	for i := range bp {
		bp[i].startsAt = -1
	}
	unkScore := sp.minScore - 10
	for start := 0; start < n; {
		_, mblen := utf8.DecodeRuneInString(norm[start:])
		till := bp[start].score
		hasSingle := false
		sp.trie.prefixes(norm[start:], func(length, id int) {
			if sp.Pieces[id].Type == PieceUnused {
				return
			}
			var score float64
			if sp.Pieces[id].Type == PieceUserDefined {
				score = float64(length)*float64(sp.maxScore) - 0.1
			} else {
				score = float64(sp.Pieces[id].Score)
			}
			cand := score + float64(till)
			t := &bp[start+length]
			if t.startsAt == -1 || cand > float64(t.score) {
				t.score = float32(cand)
				t.startsAt = start
				t.id = id
			}
			if length == mblen {
				hasSingle = true
			}
		})
		if !hasSingle {
			t := &bp[start+mblen]
			cand := unkScore + till
			if t.startsAt == -1 || cand > t.score {
				t.score = cand
				t.startsAt = start
				t.id = sp.unkID
			}
		}
		start += mblen
	}
	var out []spSeg
	for end := n; end > 0; {
		b := bp[end]
		out = append(out, spSeg{norm[b.startsAt:end], b.id})
		end = b.startsAt
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// prefixTrie is a byte trie mapping strings to ids, for prefix searches.
// Edges live in one map keyed by (node, byte), which stays compact for
// 256k-piece vocabularies where a map per node would not.
type prefixTrie struct {
	ids   []int32    // node → id, -1 when no string ends there
	root  [256]int32 // children of the root (0: none), the busiest lookups
	edges map[uint64]int32
}

func newPrefixTrie() *prefixTrie {
	return &prefixTrie{ids: []int32{-1}, edges: map[uint64]int32{}}
}

func (t *prefixTrie) child(cur int32, c byte) (int32, bool) {
	if cur == 0 {
		nx := t.root[c]
		return nx, nx != 0
	}
	nx, ok := t.edges[uint64(cur)<<8|uint64(c)]
	return nx, ok
}

func (t *prefixTrie) insert(s string, id int) {
	cur := int32(0)
	for i := 0; i < len(s); i++ {
		nx, ok := t.child(cur, s[i])
		if !ok {
			t.ids = append(t.ids, -1)
			nx = int32(len(t.ids) - 1)
			if cur == 0 {
				t.root[s[i]] = nx
			} else {
				t.edges[uint64(cur)<<8|uint64(s[i])] = nx
			}
		}
		cur = nx
	}
	t.ids[cur] = int32(id)
}

// prefixes calls f for every stored string that is a prefix of s, shortest first.
func (t *prefixTrie) prefixes(s string, f func(length, id int)) {
	cur := int32(0)
	for i := 0; i < len(s); i++ {
		nx, ok := t.child(cur, s[i])
		if !ok {
			return
		}
		cur = nx
		if id := t.ids[cur]; id >= 0 {
			f(i+1, int(id))
		}
	}
}

// longestPrefix returns the length of the longest stored prefix of s.
func (t *prefixTrie) longestPrefix(s string) (int, bool) {
	if t == nil || len(t.ids) == 1 {
		return 0, false
	}
	best := 0
	t.prefixes(s, func(length, _ int) { best = length })
	return best, best > 0
}
