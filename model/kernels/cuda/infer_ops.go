//go:build minitron_cuda || minitron_cudaemu

package cuda

import (
	"fmt"
	"math/bits"
	"unsafe"
)

// Reductions for evaluation, importance scoring and distillation on the
// device (csrc/infer.cu): each returns only its small result, so the
// logits or activations they read never leave the GPU.

// DownloadInt32 copies the first len(host) elements of b (an int32 buffer:
// ids, targets, TokenLogProbs' argmax, TopK's idx) to host.
func (d *Device) DownloadInt32(host []int32, b Buf) error {
	return d.Download(unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(host))), len(host)), b)
}

// pow2Block is a one-block-per-row kernel's block: the row width rounded
// up to a power of two, 32 to 512 threads.
func pow2Block(n int) [3]int {
	t := 32
	for t < n && t < 512 {
		t <<= 1
	}
	return [3]int{t, 1, 1}
}

// TokenLogProbs writes, for each of rows rows of logits [rows, n],
// logp[r] = logits[r, targets[r]] − logsumexp(logits[r, :]) (computed in
// float64, stored as float32; 0 where targets[r] < 0, padding; NaN where
// targets[r] ≥ n) and argmax[r] = the index of the row's first maximum
// (int32; NaNs are skipped, a row of −Inf gives 0). targets is int32
// (UploadInt32, CopyFromInt32); argmax may be a zero Buf to skip it. One
// block per row; eval's logProbAt is the CPU twin.
func (d *Device) TokenLogProbs(logp, argmax, logits, targets Buf, rows, n int) error {
	if rows <= 0 || n <= 0 {
		return fmt.Errorf("cuda: TokenLogProbs: %d rows of %d logits", rows, n)
	}
	if err := firstErr(need("TokenLogProbs", "logits", logits, rows*n), need("TokenLogProbs", "targets", targets, rows),
		need("TokenLogProbs", "logp", logp, rows)); err != nil {
		return err
	}
	if !argmax.IsNil() {
		if err := need("TokenLogProbs", "argmax", argmax, rows); err != nil {
			return err
		}
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("token_logprobs", [3]int{rows, 1, 1}, pow2Block(n), 0, pp(logp), pp(argmax), pp(logits), pp(targets), pi(rows), pi(n))
}

// RowCosineSum returns Σ_r cos(a[r, :], b[r, :]) over rows rows of width n
// in float64, with kernels.Cosine's rule for zero rows (both zero: 1,
// exactly one zero: 0). Each row's cosine and their sum are computed on
// the device in a fixed order (the result is deterministic); only the sum
// comes back, so it waits for the queued work.
func (d *Device) RowCosineSum(a, b Buf, rows, n int) (float64, error) {
	if rows <= 0 || n <= 0 {
		return 0, fmt.Errorf("cuda: RowCosineSum: %d rows of width %d", rows, n)
	}
	if err := firstErr(need("RowCosineSum", "a", a, rows*n), need("RowCosineSum", "b", b, rows*n)); err != nil {
		return 0, err
	}
	unlock := d.lock()
	defer unlock()
	tmp, err := d.alloc(2*rows + 2) // float64 [rows] cosines, then the float64 sum
	if err != nil {
		return 0, err
	}
	defer d.Free(tmp)
	sum := tmp.Off(2 * rows)
	if err := d.launch("row_cosine", [3]int{rows, 1, 1}, rowBlock(n), 0, pp(tmp), pp(a), pp(b), pi(rows), pi(n)); err != nil {
		return 0, err
	}
	if err := d.launch("sum_f64", [3]int{1, 1, 1}, rowBlock(rows), 0, pp(sum), pp(tmp), pi(rows)); err != nil {
		return 0, err
	}
	out := make([]float64, 1)
	if err := d.downloadFloat64(out, sum); err != nil {
		return 0, err
	}
	return out[0], nil
}

// topkStaticSmem bounds topk_rows' static shared memory (scan and
// counters: about 4.4 KiB); its dynamic shared memory holds the 4096-bin
// histogram (16 KiB), then the sort buffer.
const (
	topkStaticSmem = 6 << 10
	topkHistSmem   = 16 << 10
)

// MaxTopK is the device's largest k for TopK: the sorted survivors (8
// bytes each, padded to a power of two) must fit in a block's shared memory
// (4096 with the default 48 KiB).
func (d *Device) MaxTopK() int {
	room := (d.MaxSmem - topkStaticSmem) / 8
	if room < 1 {
		return 0
	}
	return 1 << (bits.Len(uint(room)) - 1)
}

// TopK is kernels.TopK on the device: for each row of x [rows, n], the
// indices (int32) and values of its k largest entries in descending order,
// equal values in index order, into idx and val [rows, k]. −0 and +0 tie;
// where NaNs rank is unspecified (as on the CPU). 1 ≤ k ≤ min(n, MaxTopK()).
// One block per row: a radix select on the float bits (three passes over
// the row with a shared-memory histogram), then the k survivors are
// gathered and sorted in shared memory.
func (d *Device) TopK(idx, val, x Buf, rows, n, k int) error {
	if rows <= 0 || n <= 0 || k <= 0 || k > n {
		return fmt.Errorf("cuda: TopK: k %d of %d rows of %d (want 1 ≤ k ≤ n)", k, rows, n)
	}
	if m := d.MaxTopK(); k > m {
		return fmt.Errorf("cuda: TopK: k %d exceeds %d, the most one block's shared memory sorts", k, m)
	}
	if n > 1<<31-1 {
		return fmt.Errorf("cuda: TopK: rows of %d entries exceed int32 indices", n)
	}
	if err := firstErr(need("TopK", "x", x, rows*n), need("TopK", "idx", idx, rows*k), need("TopK", "val", val, rows*k)); err != nil {
		return err
	}
	P := 1
	for P < k {
		P <<= 1
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("topk_rows", [3]int{rows, 1, 1}, rowBlock(n), max(8*P, topkHistSmem), pp(idx), pp(val), pp(x), pi(rows), pi(n), pi(k), pi(P))
}
