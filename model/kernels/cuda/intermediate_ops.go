//go:build minitron_cuda || minitron_cudaemu

package cuda

// CosineLoss is kernels.CosineLoss: loss [rows] = 1 − cos(y_r, t_r) and dy
// [rows, n] = ∂loss[r]/∂y_r, unscaled (distill's intermediate-state loss).
func (d *Device) CosineLoss(dy, loss, y, t Buf, rows, n int) error {
	if err := firstErr(need("CosineLoss", "y", y, rows*n), need("CosineLoss", "t", t, rows*n),
		need("CosineLoss", "dy", dy, rows*n), need("CosineLoss", "loss", loss, rows)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("cosine_loss_rows", [3]int{rows, 1, 1}, rowBlock(n), 0, pp(dy), pp(loss), pp(y), pp(t), pi(rows), pi(n))
}
