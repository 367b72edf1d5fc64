// Rotate-half RoPE on the first rot dims of each head, in place
// (kernels.ApplyRope). inverse ≠ 0 rotates by −angle: the backward pass.
#include "common.cuh"

// x [rows, ld]; head h starts at column h·headDim; pos [rows] (int32);
// cos/sin [positions, rot/2]. One thread per (row, head, i < rot/2).
KERNEL void rope(float *x, int rows, int ld, int heads, int headDim, int rot, const int *pos, const float *cosT, const float *sinT, int inverse) {
	int half = rot / 2;
	FOR_N(t, (long long)rows * heads * half) {
		int i = (int)(t % half);
		long long rh = t / half;
		int h = (int)(rh % heads), r = (int)(rh / heads);
		int p = pos[r];
		float c = cosT[(long long)p * half + i], s = sinT[(long long)p * half + i];
		if (inverse) s = -s;
		float *base = x + (long long)r * ld + (long long)h * headDim;
		float a = base[i], b = base[i + half];
		base[i] = a * c - b * s;
		base[i + half] = b * c + a * s;
	}
}
