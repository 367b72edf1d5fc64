package eval

import (
	"math"
	"math/bits"
)

// PyRandom is CPython's random.Random: the MT19937 generator seeded as
// random.Random(int) seeds it (init_by_array over the integer's 32-bit
// words), with the methods lm-eval's few-shot sampler uses implemented as
// CPython 3 does, so the same seed draws the same examples.
type PyRandom struct {
	mt  [624]uint32
	idx int
}

// NewPyRandom is random.Random(seed).
func NewPyRandom(seed int64) *PyRandom {
	r := &PyRandom{}
	// random_seed: the absolute value's 32-bit words, least significant
	// first; zero is one word 0.
	n := uint64(seed)
	if seed < 0 {
		n = uint64(-seed) // -MinInt64 wraps to itself, which is its |value|
	}
	key := []uint32{uint32(n)}
	if hi := uint32(n >> 32); hi != 0 {
		key = append(key, hi)
	}
	r.initByArray(key)
	return r
}

func (r *PyRandom) initGenrand(s uint32) {
	r.mt[0] = s
	for i := 1; i < 624; i++ {
		r.mt[i] = 1812433253*(r.mt[i-1]^(r.mt[i-1]>>30)) + uint32(i)
	}
	r.idx = 624
}

func (r *PyRandom) initByArray(key []uint32) {
	r.initGenrand(19650218)
	i, j := 1, 0
	mt := &r.mt
	for k := max(624, len(key)); k > 0; k-- {
		mt[i] = (mt[i] ^ ((mt[i-1] ^ (mt[i-1] >> 30)) * 1664525)) + key[j] + uint32(j)
		i++
		j++
		if i >= 624 {
			mt[0] = mt[623]
			i = 1
		}
		if j >= len(key) {
			j = 0
		}
	}
	for k := 623; k > 0; k-- {
		mt[i] = (mt[i] ^ ((mt[i-1] ^ (mt[i-1] >> 30)) * 1566083941)) - uint32(i)
		i++
		if i >= 624 {
			mt[0] = mt[623]
			i = 1
		}
	}
	mt[0] = 0x80000000
}

// Uint32 is genrand_uint32.
func (r *PyRandom) Uint32() uint32 {
	const upper, lower = 0x80000000, 0x7fffffff
	mag := [2]uint32{0, 0x9908b0df}
	mt := &r.mt
	if r.idx >= 624 {
		var kk int
		for kk = 0; kk < 624-397; kk++ {
			y := (mt[kk] & upper) | (mt[kk+1] & lower)
			mt[kk] = mt[kk+397] ^ (y >> 1) ^ mag[y&1]
		}
		for ; kk < 623; kk++ {
			y := (mt[kk] & upper) | (mt[kk+1] & lower)
			mt[kk] = mt[kk+(397-624)] ^ (y >> 1) ^ mag[y&1]
		}
		y := (mt[623] & upper) | (mt[0] & lower)
		mt[623] = mt[396] ^ (y >> 1) ^ mag[y&1]
		r.idx = 0
	}
	y := mt[r.idx]
	r.idx++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

// Random is random.random(): 53 random bits in [0, 1).
func (r *PyRandom) Random() float64 {
	a, b := r.Uint32()>>5, r.Uint32()>>6
	return (float64(a)*67108864.0 + float64(b)) * (1.0 / 9007199254740992.0)
}

// GetRandBits is random.getrandbits(k) for 0 ≤ k ≤ 64: 32-bit words
// least significant first, the last one's top bits kept.
func (r *PyRandom) GetRandBits(k int) uint64 {
	if k <= 32 {
		if k == 0 {
			return 0
		}
		return uint64(r.Uint32() >> (32 - k))
	}
	lo := uint64(r.Uint32())
	hi := uint64(r.Uint32() >> (64 - k))
	return lo | hi<<32
}

// randBelow is _randbelow_with_getrandbits: rejection sampling of
// bit_length(n) bits.
func (r *PyRandom) randBelow(n int) int {
	k := bits.Len64(uint64(n))
	v := r.GetRandBits(k)
	for v >= uint64(n) {
		v = r.GetRandBits(k)
	}
	return int(v)
}

// Sample is random.sample(range(n), k): k distinct indices in selection
// order, by CPython's two strategies (a partial shuffle of a pool for
// small n, rejection from a set for large n) chosen as CPython chooses.
func (r *PyRandom) Sample(n, k int) []int {
	if k < 0 || k > n {
		panic("PyRandom.Sample: sample larger than population or is negative")
	}
	out := make([]int, k)
	setsize := 21
	if k > 5 {
		setsize += int(math.Pow(4, math.Ceil(math.Log(float64(k*3))/math.Log(4))))
	}
	if n <= setsize {
		pool := make([]int, n)
		for i := range pool {
			pool[i] = i
		}
		for i := 0; i < k; i++ {
			j := r.randBelow(n - i)
			out[i] = pool[j]
			pool[j] = pool[n-i-1]
		}
		return out
	}
	selected := map[int]bool{}
	for i := 0; i < k; i++ {
		j := r.randBelow(n)
		for selected[j] {
			j = r.randBelow(n)
		}
		selected[j] = true
		out[i] = j
	}
	return out
}

// Shuffle is random.shuffle over n elements, swapping through swap.
func (r *PyRandom) Shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, r.randBelow(i+1))
	}
}
