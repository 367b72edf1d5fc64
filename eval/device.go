package eval

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/minitron-dev/minitron/model"
)

// DeviceOptions configure a DeviceLM (NewDeviceLM), the LM that runs a
// model on GPU 0 in a CUDA build.
type DeviceOptions struct {
	// MaxLen is the window; 0 means the config's max_position_embeddings
	// (as ModelLM.MaxLen).
	MaxLen int
	// Rows is the most sequences one device forward pass takes; 0 picks
	// as many as fit MemBudget at the current sequence capacity (at most
	// 64).
	Rows int
	// Seq fixes the longest sequence the device buffers hold; 0 sizes them
	// for the longest sequence seen so far (rounded up to a power of two,
	// at most MaxLength), growing them when a longer one comes, which
	// uploads the weights again.
	Seq int
	// MemBudget bounds the activation memory (bytes) the automatic Rows
	// plans for; 0 means 8 GiB.
	MemBudget int64
	// EOS are the ids generation stops on; nil means the model's EOS.
	EOS []int
	// NoTF32 runs f32 matrix products in full f32 instead of TF32 tensor
	// cores (the default on Ampere and newer): slower, closer to the CPU.
	NoTF32 bool
	// BF16 keeps the weight matrices (linear layers, embedding) on the
	// GPU in bf16 only (gpu.Options.WeightsBF16): half their f32
	// memory, bf16 products with f32 accumulation.
	BF16 bool
}

// deviceRow is one sequence of a device forward pass: a continuation
// scored after its context, the input (ctx+cont)[:-1], whose position
// first predicts cont[0].
type deviceRow struct {
	req, cont int
	ids       []int32
	first     int
	target    []int
}

// scoreRows turns score requests into device rows, one per continuation,
// with the checks of ModelLM.Score: non-empty context and continuations,
// context+longest continuation-1 within the window, ids in the vocabulary.
func scoreRows(reqs []ScoreRequest, maxLen, vocab int) ([]deviceRow, error) {
	var rows []deviceRow
	for ri, r := range reqs {
		if _, err := r.check(maxLen); err != nil {
			return nil, err
		}
		for ci, c := range r.Continuations {
			ids := make([]int32, 0, len(r.Context)+len(c)-1)
			for _, seq := range [][]int{r.Context, c[:len(c)-1]} {
				for _, id := range seq {
					if id < 0 || id >= vocab {
						return nil, fmt.Errorf("score: token id %d outside the vocabulary [0,%d)", id, vocab)
					}
					ids = append(ids, int32(id))
				}
			}
			if last := c[len(c)-1]; last < 0 || last >= vocab {
				return nil, fmt.Errorf("score: token id %d outside the vocabulary [0,%d)", last, vocab)
			}
			rows = append(rows, deviceRow{req: ri, cont: ci, ids: ids, first: len(r.Context) - 1, target: c})
		}
	}
	return rows, nil
}

// bucketLen is the padded length a row of n tokens runs at: n rounded up
// to a multiple of max(16, nextPow2(n)/8), so rows of one pass waste at
// most ~1/8 of their positions on padding while lengths that differ a
// little still share a pass; at most capacity.
func bucketLen(n, capacity int) int {
	q := 16
	if p := nextPow2(n) / 8; p > q {
		q = p
	}
	return min((n+q-1)/q*q, capacity)
}

// nextPow2 is the smallest power of two ≥ n (1 for n ≤ 1).
func nextPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}

// devicePass is one device forward pass: rows (indices into the row list)
// right-padded to T tokens.
type devicePass struct {
	T    int
	rows []int
}

// planPasses orders rows longest first and cuts them into passes of at
// most maxRows rows that share a bucket length, so short rows do not pay
// for a long one's positions.
func planPasses(rows []deviceRow, maxRows, capacity int) []devicePass {
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(rows[b].ids) - len(rows[a].ids) })
	var passes []devicePass
	for _, i := range order {
		T := bucketLen(len(rows[i].ids), capacity)
		if n := len(passes); n > 0 && passes[n-1].T == T && len(passes[n-1].rows) < maxRows {
			passes[n-1].rows = append(passes[n-1].rows, i)
			continue
		}
		passes = append(passes, devicePass{T: T, rows: []int{i}})
	}
	return passes
}

// passInputs are the padded inputs and targets of a pass: pad id 0, target
// -1 (none) everywhere but the continuation positions.
func passInputs(rows []deviceRow, p devicePass) (ids, targets [][]int32) {
	ids, targets = make([][]int32, len(p.rows)), make([][]int32, len(p.rows))
	for k, ri := range p.rows {
		r := rows[ri]
		ids[k] = make([]int32, p.T)
		copy(ids[k], r.ids)
		targets[k] = make([]int32, p.T)
		for t := range targets[k] {
			targets[k][t] = -1
		}
		for i, id := range r.target {
			targets[k][r.first+i] = int32(id)
		}
	}
	return ids, targets
}

// autoRows is how many rows of seq tokens fit budget bytes of the device
// inference model's activations (gpu with train = false: one layer's
// buffers shared by all layers, the logits, and one sequence's attention
// scores at a time), between 1 and 64; bf16 adds the bf16 copies of the
// linear layers' inputs.
func autoRows(c *model.Config, seq int, budget int64, bf16 bool) int {
	if budget <= 0 {
		budget = 8 << 30
	}
	H, F := int64(c.HiddenSize), int64(c.IntermediateSize)
	W := int64(c.QDim() + 2*c.KVDim())
	uw := F
	if c.GatedMLP() {
		uw = 2 * F
	}
	perRow := 4 * int64(seq) * (3*H + W + int64(c.QDim()) + uw + int64(c.VocabSize) + 5)
	if bf16 {
		perRow += 2 * int64(seq) * (H + int64(c.QDim()) + F)
	}
	scores := 4 * int64(c.NumHeads) * int64(seq) * int64(seq)
	return int(max(1, min(64, (budget-scores)/perRow)))
}
