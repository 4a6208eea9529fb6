/* cuda_time.cu — ops along time on the GPU: the TSM temporal shift, linear interpolation along
 * the last dim and row gather with its backward, as kernels/cpu/cpu_time.c.
 *
 * The backward passes of interpolation and gather are scatters on the CPU (repeated indices
 * accumulate in index order). Here each gradient element is a gather that visits the same
 * contributions in the same order, so results are deterministic and equal to the CPU's bit for
 * bit, without atomics.
 */
#include <math.h>

#include "kernels/cuda/cuda_kernels.cuh"

/* ---- temporal shift --------------------------------------------------------------------- */

/* x, y: (N, T, C, HW). Channels [0, fold) read frame t+1, [fold, 2·fold) frame t−1. */
__global__ static void temporal_shift_forward_kernel(int64_t N, int T, int64_t C, int64_t HW, int64_t fold,
                                                     const float *x, float *y)
{
    CK_FOR(k, N * T * C * HW)
    {
        int64_t c = k / HW % C, nt = k / (HW * C), n = nt / T;
        int t = (int)(nt % T), ts;
        if (c < fold)
            ts = t + 1 < T ? t + 1 : -1;
        else if (c < 2 * fold)
            ts = t >= 1 ? t - 1 : -1;
        else
            ts = t;
        y[k] = ts < 0 ? 0.0f : x[((n * T + ts) * C + c) * HW + k % HW];
    }
}

__global__ static void temporal_shift_backward_kernel(int64_t N, int T, int64_t C, int64_t HW, int64_t fold,
                                                      const float *dy, float *dx)
{
    CK_FOR(k, N * T * C * HW)
    {
        int64_t c = k / HW % C, nt = k / (HW * C), n = nt / T;
        int t = (int)(nt % T);
        int td = c < fold ? t - 1 : (c < 2 * fold ? t + 1 : t);
        if (td >= 0 && td < T)
            dx[k] = f_add(dx[k], dy[((n * T + td) * C + c) * HW + k % HW]);
    }
}

extern "C" void cuda_temporal_shift_forward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div,
                                            const Tensor *x, Tensor *y)
{
    int64_t n = N * T * C * HW;
    if (!cuda_ready(ctx) || n == 0)
        return;
    temporal_shift_forward_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        N, T, C, HW, C / fold_div, tensor_f32(x), tensor_f32(y));
    LAUNCH_OK(ctx, "temporal_shift_forward_kernel");
}

extern "C" void cuda_temporal_shift_backward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div,
                                             const Tensor *dy, Tensor *dx)
{
    int64_t n = N * T * C * HW;
    if (!cuda_ready(ctx) || n == 0)
        return;
    temporal_shift_backward_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        N, T, C, HW, C / fold_div, tensor_f32(dy), tensor_f32(dx));
    LAUNCH_OK(ctx, "temporal_shift_backward_kernel");
}

/* ---- linear interpolation --------------------------------------------------------------- */

typedef struct {
    int64_t i0, i1;
    float l0, l1;
} InterpTap;

/* interp_tap of cpu_time.c, float for float. */
__device__ static inline InterpTap interp_tap(int64_t j, int Tin, int Tout, float scale)
{
    InterpTap p = {j, j, 1.0f, 0.0f};
    if (Tin == Tout)
        return p;
    float src = f_sub(f_mul(scale, f_add((float)j, 0.5f)), 0.5f);
    if (src < 0.0f)
        src = 0.0f;
    p.i0 = (int64_t)floorf(src);
    if (p.i0 > Tin - 1)
        p.i0 = Tin - 1;
    float l1 = f_sub(src, (float)p.i0);
    p.l1 = l1 < 0.0f ? 0.0f : (l1 > 1.0f ? 1.0f : l1);
    p.i1 = p.i0 + (p.i0 < Tin - 1 ? 1 : 0);
    p.l0 = f_sub(1.0f, p.l1);
    return p;
}

__global__ static void interp_forward_kernel(int64_t rows, int Tin, int Tout, float scale, const float *x, float *y)
{
    CK_FOR(k, rows * Tout)
    {
        int64_t r = k / Tout, j = k % Tout;
        const float *xr = x + r * Tin;
        InterpTap p = interp_tap(j, Tin, Tout, scale);
        y[k] = Tin == Tout ? xr[j] : f_add(f_mul(xr[p.i0], p.l0), f_mul(xr[p.i1], p.l1));
    }
}

/* dx[r, i] gathers l·dy[r, j] over outputs j in order, i0's term before i1's (the CPU's order). */
__global__ static void interp_backward_kernel(int64_t rows, int Tin, int Tout, float scale, const float *dy,
                                              float *dx)
{
    CK_FOR(k, rows * Tin)
    {
        int64_t r = k / Tin, i = k % Tin;
        float acc = dx[k];
        for (int64_t j = 0; j < Tout; j++) {
            InterpTap p = interp_tap(j, Tin, Tout, scale);
            float d = dy[r * Tout + j];
            if (p.i0 == i)
                acc = f_add(acc, f_mul(p.l0, d));
            if (p.i1 == i)
                acc = f_add(acc, f_mul(p.l1, d));
        }
        dx[k] = acc;
    }
}

extern "C" void cuda_interp_linear_forward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *x, Tensor *y)
{
    int64_t n = rows * Tout;
    if (!cuda_ready(ctx) || n == 0)
        return;
    float scale = (float)Tin / (float)Tout; /* the CPU's float expression */
    interp_forward_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        rows, Tin, Tout, scale, tensor_f32(x), tensor_f32(y));
    LAUNCH_OK(ctx, "interp_forward_kernel");
}

extern "C" void cuda_interp_linear_backward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *dy, Tensor *dx)
{
    int64_t n = rows * Tin;
    if (!cuda_ready(ctx) || n == 0)
        return;
    float scale = (float)Tin / (float)Tout;
    interp_backward_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        rows, Tin, Tout, scale, tensor_f32(dy), tensor_f32(dx));
    LAUNCH_OK(ctx, "interp_backward_kernel");
}

/* ---- gather rows ------------------------------------------------------------------------ */

/* x (B, T, R), idx (B, F) → y (B, F, R); an index outside [0, T) gives zeros (as the CPU). */
__global__ static void gather_forward_kernel(int64_t B, int64_t T, int64_t F, int64_t R, const float *x,
                                             const int32_t *idx, float *y)
{
    CK_FOR(k, B * F * R)
    {
        int64_t bf = k / R, b = bf / F, t = idx[bf];
        y[k] = (t < 0 || t >= T) ? 0.0f : x[(b * T + t) * R + k % R];
    }
}

/* The same for rows of a multiple of four floats on 16-byte aligned data: one output row per
 * grid row, 16 bytes per thread, no division per element (the glance and the crop gather whole
 * frames: this was a memory copy running at half the bandwidth). */
__global__ static void gather_rows4_kernel(int64_t BF, int64_t T, int64_t F, int64_t R4, const float4 *__restrict__ x,
                                           const int32_t *__restrict__ idx, float4 *__restrict__ y)
{
    for (int64_t bf = blockIdx.y; bf < BF; bf += gridDim.y) {
        int64_t b = bf / F, t = idx[bf];
        bool zero = t < 0 || t >= T;
        const float4 *src = x + (b * T + (zero ? 0 : t)) * R4;
        float4 *dst = y + bf * R4;
        for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < R4; q += (int64_t)gridDim.x * blockDim.x)
            dst[q] = zero ? make_float4(0.f, 0.f, 0.f, 0.f) : __ldg(src + q);
    }
}

/* dx[b, t, k] += dy[b, f, k] for every f with idx[b, f] == t, f in order. */
__global__ static void gather_backward_kernel(int64_t B, int64_t T, int64_t F, int64_t R, const int32_t *idx,
                                              const float *dy, float *dx)
{
    CK_FOR(k, B * T * R)
    {
        int64_t bt = k / R, b = bt / T, t = bt % T, e = k % R;
        float acc = dx[k];
        for (int64_t f = 0; f < F; f++)
            if (idx[b * F + f] == t)
                acc = f_add(acc, dy[(b * F + f) * R + e]);
        dx[k] = acc;
    }
}

extern "C" void cuda_gather_forward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *x,
                                    const Tensor *idx, Tensor *y)
{
    int64_t n = B * F * R;
    if (!cuda_ready(ctx) || n == 0)
        return;
    const float *px = tensor_f32(x);
    float *py = tensor_f32(y);
    if (R % 4 == 0 && ((uintptr_t)px & 15u) == 0 && ((uintptr_t)py & 15u) == 0) {
        int64_t R4 = R / 4, BF = B * F;
        dim3 grid(ck_blocks(R4, CK_THREADS) < 1024 ? ck_blocks(R4, CK_THREADS) : 1024,
                  (unsigned)(BF < 65535 ? BF : 65535));
        gather_rows4_kernel<<<grid, CK_THREADS, 0, cuda_stream_of(ctx)>>>(
            BF, T, F, R4, reinterpret_cast<const float4 *>(px), tensor_i32(idx), reinterpret_cast<float4 *>(py));
        LAUNCH_OK(ctx, "gather_rows4_kernel");
        return;
    }
    gather_forward_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        B, T, F, R, px, tensor_i32(idx), py);
    LAUNCH_OK(ctx, "gather_forward_kernel");
}

extern "C" void cuda_gather_backward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *idx,
                                     const Tensor *dy, Tensor *dx)
{
    int64_t n = B * T * R;
    if (!cuda_ready(ctx) || n == 0)
        return;
    gather_backward_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        B, T, F, R, tensor_i32(idx), tensor_f32(dy), tensor_f32(dx));
    LAUNCH_OK(ctx, "gather_backward_kernel");
}
