//go:build minitron_cudaemu

// The emulator's scheduler and the kernels of csrc/ compiled for the CPU
// (see emu.h).
#include "emu.h"

#include <ucontext.h>
#include <cstdlib>
#include <cstdio>
#include <vector>

#include "csrc/elementwise.cu"
#include "csrc/norm.cu"
#include "csrc/rope.cu"
#include "csrc/softmax.cu"
#include "csrc/attention.cu"
#include "csrc/importance.cu"
#include "csrc/intermediate.cu"
#include "csrc/infer.cu"

dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {

struct Fiber {
	ucontext_t ctx;
	dim3 tid;
	int lin;
	bool done;
};

struct Barrier {
	int arrived = 0;
	long gen = 0;
	int live = 0;
};

ucontext_t sched;
std::vector<Fiber> fibers;
std::vector<char> stacks;
const size_t stackSize = 256 << 10;
int cur;
Barrier block;
std::vector<Barrier> warps;
std::vector<double> shfl;
std::vector<char> dyn;
long waits;
bool stuck;

void yield() {
	if (++waits > 400000000L) stuck = true; // a barrier nobody can pass
	swapcontext(&fibers[cur].ctx, &sched);
}

void wait(Barrier &b) {
	long g = b.gen;
	if (++b.arrived >= b.live) {
		b.arrived = 0;
		b.gen++;
		return;
	}
	while (b.gen == g && !stuck) yield();
}

// exit: a finished thread no longer counts at the barriers it would meet
void leave(Barrier &b) {
	b.live--;
	if (b.arrived > 0 && b.arrived >= b.live) {
		b.arrived = 0;
		b.gen++;
	}
}

typedef void (*ufn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
	uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
	float, float, float, float, float, float, float, float);
ufn fn;
uint64_t iargs[20];
float fargs[8];

void entry() {
	// All integer-class parameters (pointers, int, long long) in order,
	// then the float ones: the x86-64 SysV ABI assigns the two classes to
	// separate registers in order, so this call matches any kernel's
	// prototype with ≤ 20 integer and ≤ 8 float parameters (all floats in
	// xmm registers, so only integers spill to the stack, in order).
	fn(iargs[0], iargs[1], iargs[2], iargs[3], iargs[4], iargs[5], iargs[6], iargs[7], iargs[8], iargs[9],
		iargs[10], iargs[11], iargs[12], iargs[13], iargs[14], iargs[15], iargs[16], iargs[17], iargs[18], iargs[19],
		fargs[0], fargs[1], fargs[2], fargs[3], fargs[4], fargs[5], fargs[6], fargs[7]);
	Fiber &f = fibers[cur];
	f.done = true;
	leave(block);
	leave(warps[f.lin / 32]);
}

struct Entry {
	const char *name;
	void *fn;
};
#define K(n) {#n, (void *)n}
const Entry table[] = {
	K(embedding_fwd), K(embedding_bwd), K(act_fwd), K(act_bwd), K(act_gated_fwd), K(act_gated_bwd),
	K(add_inplace), K(add_bias), K(scale_inplace), K(col_sum), K(adamw), K(sum_squares),
	K(f32_to_bf16), K(bf16_to_f32), K(add_bf16_to_f32), K(add_bf16), K(add_rows_bf16), K(scale_bf16), K(sum_squares_bf16), K(adamw_bf16g),
	K(layernorm1p_fwd), K(layernorm1p_bwd_dx), K(layernorm1p_bwd_dw), K(rmsnorm_fwd), K(rmsnorm_bwd_dx), K(rmsnorm_bwd_dw),
	K(rope),
	K(softmax_rows), K(logsumexp_rows), K(log_softmax_rows), K(cross_entropy), K(kl_forward), K(kl_reverse), K(kl_forward_topk),
	K(attention_fwd), K(attention_bwd), K(zero_band), K(attn_softmax_causal), K(attn_softmax_bwd),
	K(importance_accumulate), K(head_norms), K(cosine_loss_rows),
	K(token_logprobs), K(row_cosine), K(sum_f64), K(topk_rows),
};

} // namespace

void *emu_dyn_smem() { return dyn.data(); }

double emu_shfl_xor(double v, int m) {
	Fiber &f = fibers[cur];
	int w = f.lin / 32, lane = f.lin % 32;
	shfl[f.lin] = v;
	wait(warps[w]);
	double r = shfl[w * 32 + (lane ^ m)];
	wait(warps[w]);
	return r;
}

void __syncthreads() { wait(block); }

extern "C" {

// emu_has reports whether the emulator knows kernel name.
int emu_has(const char *name) {
	for (const Entry &e : table)
		if (!strcmp(e.name, name)) return 1;
	return 0;
}

// emu_launch runs kernel name over the grid; classes holds one letter per
// parameter: 'i' (pointer or integer, args[k] the value) or 'f' (float,
// the low 32 bits of args[k]). It returns 0, 1 for an unknown kernel, 2 for
// too many parameters, 3 for a deadlock.
int emu_launch(const char *name, const char *classes, const uint64_t *args, int nargs,
	unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem) {
	fn = nullptr;
	for (const Entry &e : table)
		if (!strcmp(e.name, name)) fn = (ufn)e.fn;
	if (!fn) return 1;
	int ni = 0, nf = 0;
	memset(iargs, 0, sizeof iargs);
	memset(fargs, 0, sizeof fargs);
	for (int k = 0; k < nargs; k++) {
		if (classes[k] == 'f') {
			if (nf == 8) return 2;
			uint32_t u = (uint32_t)args[k];
			memcpy(&fargs[nf++], &u, 4);
		} else {
			if (ni == 20) return 2;
			iargs[ni++] = args[k];
		}
	}
	unsigned nt = bx * by * bz;
	fibers.assign(nt, Fiber{});
	if (stacks.size() < nt * stackSize) stacks.resize(nt * stackSize);
	warps.assign((nt + 31) / 32, Barrier{});
	shfl.assign(warps.size() * 32, 0.0);
	dyn.assign(smem + 16, 0);
	blockDim = dim3{bx, by, bz};
	gridDim = dim3{gx, gy, gz};
	waits = 0;
	stuck = false;
	for (unsigned z = 0; z < gz; z++)
		for (unsigned y = 0; y < gy; y++)
			for (unsigned x = 0; x < gx; x++) {
				blockIdx = dim3{x, y, z};
				block = Barrier{};
				block.live = nt;
				for (size_t w = 0; w < warps.size(); w++) {
					warps[w] = Barrier{};
					warps[w].live = (int)(w + 1 < warps.size() ? 32 : nt - 32 * w);
				}
				for (unsigned t = 0; t < nt; t++) {
					Fiber &f = fibers[t];
					f.tid = dim3{t % bx, (t / bx) % by, t / (bx * by)};
					f.lin = t;
					f.done = false;
					getcontext(&f.ctx);
					f.ctx.uc_stack.ss_sp = stacks.data() + t * stackSize;
					f.ctx.uc_stack.ss_size = stackSize;
					f.ctx.uc_link = &sched;
					makecontext(&f.ctx, entry, 0);
				}
				for (bool any = true; any;) {
					any = false;
					for (unsigned t = 0; t < nt; t++) {
						if (fibers[t].done) continue;
						any = true;
						cur = t;
						threadIdx = fibers[t].tid;
						swapcontext(&sched, &fibers[t].ctx);
					}
					if (stuck) return 3;
				}
			}
	return 0;
}

} // extern "C"
