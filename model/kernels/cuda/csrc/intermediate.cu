// The intermediate-state (hidden-state) distillation loss's row kernel
// (kernels.CosineLoss): per row r of y and t [rows, n], loss[r] = 1 − cos
// and dy_r = −t_r/(|y_r||t_r|) + cos·y_r/|y_r|², unscaled, with the CPU's
// 1e-24 clamps. One block per row; the dot products are reduced in double.
#include "common.cuh"

KERNEL void cosine_loss_rows(float *dy, float *loss, const float *y, const float *t, int rows, int n) {
	__shared__ double sm[32];
	int r = blockIdx.x;
	if (r >= rows) return;
	const float *yr = y + (long long)r * n, *tr = t + (long long)r * n;
	double yy, tt, yt;
	row_dots(yr, tr, n, sm, &yy, &tt, &yt);
	double c = yt / sqrt(fmax(yy * tt, 1e-24));
	if (threadIdx.x == 0) loss[r] = (float)(1.0 - c);
	double ny = sqrt(fmax(yy, 1e-24)), nt = sqrt(fmax(tt, 1e-24));
	float a = (float)(-1.0 / (ny * nt)), b = (float)(c / (ny * ny));
	float *d = dy + (long long)r * n;
	for (int i = threadIdx.x; i < n; i += blockDim.x) d[i] = a * tr[i] + b * yr[i];
}
