/* cuda_kernels.cuh — device-side helpers shared by the .cu files of kernels/cuda: launch
 * geometry, grid-stride loops, deterministic block reductions, IEEE arithmetic without FMA
 * contraction, and the device copy of the Philox generator of kernels/rng.c.
 *
 * Why explicit __fadd_rn/__fmul_rn: nvcc contracts a·b + c into one FMA by default, gcc in ISO C
 * mode (-std=c11) does not. Where the CPU kernel's exact rounding is cheap to reproduce
 * (elementwise ops, samplers, index arithmetic that decides a tap), the GPU kernels spell each
 * rounding out, so the two backends agree to the bit; a floor() of a sampling coordinate that
 * flips between backends would otherwise move a whole bilinear tap.
 *
 * Why double in some reductions: the CPU reference accumulates those sums in double (batch
 * norm statistics, softmax, means); the GPU does too, in a fixed tree order, so results are
 * deterministic and agree with the CPU to float rounding.
 */
#ifndef FOCUSBENCH_CUDA_KERNELS_CUH
#define FOCUSBENCH_CUDA_KERNELS_CUH

#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/fast_div.h"

enum { CK_THREADS = 256, CK_MAX_BLOCKS = 1 << 20 };

/* Blocks for n work items at `threads` per block (grid-stride loops cover n beyond the cap);
 * callers skip the launch when n == 0 (a grid of 0 blocks is a launch error). */
static inline unsigned ck_blocks(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    if (b > CK_MAX_BLOCKS)
        b = CK_MAX_BLOCKS;
    return (unsigned)(b < 1 ? 1 : b);
}

#define CK_FOR(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* Sum over the block in a fixed tree order (deterministic for a given blockDim, which must be a
 * power of two no larger than CK_THREADS). Every thread of the block must call it; all get the
 * result. `sh` holds blockDim.x doubles. */
__device__ static inline double ck_block_sum(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] = __dadd_rn(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* An OpAct activation of kernels/ops.h (0 none, 1 ReLU, 2 ReLU6) with cuda_unary's formulas,
 * which are the CPU's (NaN goes to 0 under ReLU and stays NaN under ReLU6, on both). */
__device__ static inline float ck_act(float v, int act)
{
    if (act == 1)
        return v > 0 ? v : 0.0f;
    if (act == 2)
        return v < 0 ? 0.0f : (v > 6 ? 6.0f : v);
    return v;
}

/* IEEE single and double operations, each rounded on its own (no FMA contraction). */
__device__ static inline float f_add(float a, float b) { return __fadd_rn(a, b); }

/* n / f.d for n < 2^31 (fast_div.h: one multiply-high, an add and a shift) */
__device__ static inline uint32_t ck_fast_div(uint32_t n, FastDiv f) { return (__umulhi(n, f.magic) + n) >> f.shift; }

/* The taps of a 3x3 window whose top-left tap is (hi0, wi0) that fall inside an H×W plane: bit
 * kh·3 + kw (the conv kernels read zero padding for the others). */
__device__ static inline unsigned ck_tap_mask3x3(int hi0, int wi0, int H, int W)
{
    unsigned m = 0;
#pragma unroll
    for (int kh = 0; kh < 3; kh++)
#pragma unroll
        for (int kw = 0; kw < 3; kw++)
            if ((unsigned)(hi0 + kh) < (unsigned)H && (unsigned)(wi0 + kw) < (unsigned)W)
                m |= 1u << (kh * 3 + kw);
    return m;
}

/* The same on four values at once (the 16-byte epilogues). */
__device__ static inline float4 ck_add4(float4 a, float4 b)
{
    return make_float4(f_add(a.x, b.x), f_add(a.y, b.y), f_add(a.z, b.z), f_add(a.w, b.w));
}
__device__ static inline float4 ck_act4(float4 v, int act)
{
    return make_float4(ck_act(v.x, act), ck_act(v.y, act), ck_act(v.z, act), ck_act(v.w, act));
}
__device__ static inline float f_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ static inline float f_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ static inline float f_div(float a, float b) { return __fdiv_rn(a, b); }
__device__ static inline double d_add(double a, double b) { return __dadd_rn(a, b); }
__device__ static inline double d_sub(double a, double b) { return __dsub_rn(a, b); }
__device__ static inline double d_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ static inline double d_div(double a, double b) { return __ddiv_rn(a, b); }

/* ---- Philox4x32-10, bit-identical to rng_philox / rng_uniform of kernels/rng.c ---------- */

typedef struct {
    uint32_t k0, k1, s0, s1;
} DevRng;

static inline DevRng dev_rng(const RngStream *s)
{
    DevRng r = {s->key[0], s->key[1], s->stream[0], s->stream[1]};
    return r;
}

__device__ static inline uint32_t philox_word0(DevRng r, uint64_t index)
{
    uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32), c2 = r.s0, c3 = r.s1;
    uint32_t k0 = r.k0, k1 = r.k1;
#pragma unroll
    for (int i = 0; i < 10; i++) {
        uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0, c1 = lo1, c2 = n2, c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c0;
}

/* cp.async (sm_80+): a 16-byte global -> shared copy that bypasses the registers (cached in L2
 * only); commit the thread's copies issued so far as a group; wait for all of its groups. The
 * memory clobbers keep the compiler from moving shared-memory accesses across them. */
__device__ static inline void ck_cp_async16(float *smem, const float *gmem)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"((unsigned)__cvta_generic_to_shared(smem)),
                 "l"(gmem)
                 : "memory");
}
__device__ static inline void ck_cp_async_commit(void) { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ static inline void ck_cp_async_wait_all(void) { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
/* Hopper bulk copies (the TMA unit, no tensor map): `bytes` (a multiple of 16, both addresses
 * 16-byte aligned) from global to shared memory, completing as transaction bytes on the mbarrier
 * at `bar`; one thread issues, any thread waits on the barrier's phase. */
__device__ static inline unsigned ck_smem_addr(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }
__device__ static inline void ck_mbar_init(uint64_t *bar, unsigned count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(ck_smem_addr(bar)), "r"(count) : "memory");
}
/* makes initialised barriers visible to the async proxy (then a __syncthreads for the block) */
__device__ static inline void ck_mbar_init_fence(void) { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
/* orders this thread's earlier shared-memory accesses (and, after a __syncthreads, the block's)
 * before later async-proxy (bulk copy) writes to the same memory */
__device__ static inline void ck_fence_proxy_async(void) { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ static inline void ck_mbar_arrive_expect_tx(uint64_t *bar, unsigned bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(ck_smem_addr(bar)), "r"(bytes)
                 : "memory");
}
__device__ static inline void ck_bulk_copy_g2s(void *smem, const void *gmem, unsigned bytes, uint64_t *bar)
{
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                     ck_smem_addr(smem)),
                 "l"(gmem), "r"(bytes), "r"(ck_smem_addr(bar))
                 : "memory");
}
/* waits until the barrier's phase `parity` (0 or 1) has completed */
__device__ static inline void ck_mbar_wait(uint64_t *bar, unsigned parity)
{
    asm volatile("{\n"
                 ".reg .pred done;\n"
                 "WAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra WAIT;\n"
                 "}\n" ::"r"(ck_smem_addr(bar)),
                 "r"(parity)
                 : "memory");
}


/* rng_uniform: 24 random bits scaled by 2^-24 (both steps exact in float). */
__device__ static inline float philox_uniform(DevRng r, uint64_t index)
{
    return __fmul_rn(__uint2float_rn(philox_word0(r, index) >> 8), 1.0f / 16777216.0f);
}

#endif
