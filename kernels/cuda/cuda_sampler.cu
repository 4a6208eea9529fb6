/* cuda_sampler.cu — the two host steps of Uni-AdaFocus's inference pass, on the GPU: the
 * quantile frame sampler (impl/frame_sampler.c, frame_sampler_quantile) and the patch-box
 * transform action → box / affine θ (impl/patch_box.c, patch_box_compute).
 *
 * Why on the device: both read device tensors (the temporal weights w_T, the interpolated
 * actions) that the host code would have to copy back, which synchronises the stream once per
 * pass and makes the pass impossible to capture as one CUDA graph (kernels/cuda/cuda_graph.h).
 * The work itself is tiny (B rows of G weights; B·F actions), so one thread per row/action.
 *
 * Exactness: every float operation of the host code is spelled out with its own rounding
 * (f_add/f_sub/f_mul/f_div of cuda_kernels.cuh: no FMA contraction, IEEE division), the cumulative
 * sum is accumulated in double and rounded to float at each step exactly as the host loop does,
 * and the comparisons, the floor and the integer fix-ups are the same statements. The results are
 * therefore equal to the host's bit for bit (tests/gpu/test_cuda_models.c checks it on random,
 * peaked, sparse and adversarial weights, and against the PyTorch sampler fixture).
 */
#include <math.h>

#include "kernels/cuda/cuda_kernels.cuh"

/* ---- quantile frame sampling ---------------------------------------------------------------- */

/* One thread per row b. w (B, G); u (B, F) or NULL (test thresholds); cdf (B, G + 1) workspace;
 * idx (B, F). */
__global__ static void quantile_sample_kernel(int64_t B, int G, int T, int F, const float *w, const float *u,
                                              float *cdf, int32_t *idx)
{
    CK_FOR(b, B)
    {
        const float *wb = w + b * G;
        float *c = cdf + b * (G + 1);
        int32_t *out = idx + b * F;
        double acc = 0.0;
        bool valid = true;
        c[0] = 0.0f;
        for (int j = 0; j < G; j++) {
            float wj = wb[j];
            if (!isfinite(wj) || wj < 0.0f)
                valid = false;
            acc = d_add(acc, (double)wj); /* the host's double accumulation, rounded at each step */
            c[j + 1] = (float)acc;
        }
        if (!valid || !(acc > 0.0)) { /* the host reports an error here; see backend.h */
            for (int i = 0; i < F; i++)
                out[i] = -1;
            continue;
        }
        c[G] = 1.0f; /* the official "fix precision loss" */
        const float fG = (float)G, fT = (float)T, fF = (float)F;
        for (int i = 0; i < F; i++) {
            float ui = u ? u[b * F + i] : f_div(f_add((float)i, 0.5f), fF);
            int j = 0;
            while (j <= G && !(c[j] >= ui))
                j++;
            if (j > G)
                j = 0; /* no c_j >= u: the official argmax of an all-false row */
            int bin = (j < 1 ? 1 : j > G ? G : j) - 1;
            float x1 = f_div((float)bin, fG), x2 = f_div((float)(bin + 1), fG), y1 = c[bin], y2 = c[bin + 1];
            float x;
            if (y2 > y1)
                x = f_div(f_sub(f_mul(x2, f_sub(ui, y1)), f_mul(x1, f_sub(ui, y2))), f_sub(y2, y1));
            else
                x = x1;
            out[i] = (int32_t)floorf(f_mul(x, fT));
        }
        for (int i = 1; i < F; i++) /* strictly increasing first ... */
            if (!(out[i] > out[i - 1]))
                out[i] = out[i - 1] + 1;
        for (int i = 0; i < F; i++) /* ... then the cap */
            if (out[i] > T - F + i)
                out[i] = T - F + i;
    }
}

extern "C" void cuda_quantile_sample(Ctx *ctx, int64_t B, int G, int T, int F, const Tensor *w, const Tensor *u,
                                     Tensor *idx)
{
    if (!cuda_ready(ctx) || B == 0 || F == 0)
        return;
    float *cdf = (float *)cuda_scratch(ctx, (size_t)B * (size_t)(G + 1) * sizeof(float), "quantile sampler CDF");
    if (!cdf)
        return;
    quantile_sample_kernel<<<ck_blocks(B, 64), 64, 0, cuda_stream_of(ctx)>>>(
        B, G, T, F, tensor_f32(w), u ? tensor_f32(u) : NULL, cdf, tensor_i32(idx));
    LAUNCH_OK(ctx, "quantile_sample_kernel");
    cuda_scratch_release(ctx);
}

/* ---- patch boxes ------------------------------------------------------------------------------- */

/* One thread per action: a (N, 4) → boxes (N, 4) and/or theta (N, 6), patch_box_compute's steps. */
__global__ static void box_transform_kernel(BoxGeom g, int64_t N, const float *a, float *boxes, float *theta)
{
    CK_FOR(n, N)
    {
        const float *an = a + n * 4;
        float side[2], lo[2], hi[2]; /* [0] along y (height), [1] along x (width) */
#pragma unroll
        for (int axis = 0; axis < 2; axis++) {
            float scale = f_mul(an[2 + axis], g.span);
            scale = f_div(scale, g.in_size);
            scale = f_add(scale, g.offset);
            side[axis] = f_mul(g.out_size, scale);
            float room = f_sub(g.image, side[axis]);
            lo[axis] = f_mul(an[axis], room);
            hi[axis] = f_add(lo[axis], side[axis]);
        }
        if (boxes) {
            float *bx = boxes + n * 4;
            bx[0] = lo[0], bx[1] = lo[1], bx[2] = side[0], bx[3] = side[1];
        }
        if (theta) {
            float *t = theta + n * 6;
            t[0] = f_div(side[1], g.image);
            t[1] = 0.0f;
            t[2] = f_add(f_div(f_add(lo[1], hi[1]), g.image), -1.0f);
            t[3] = 0.0f;
            t[4] = f_div(side[0], g.image);
            t[5] = f_add(f_div(f_add(lo[0], hi[0]), g.image), -1.0f);
        }
    }
}

extern "C" void cuda_box_transform(Ctx *ctx, const BoxGeom *g, int64_t N, const Tensor *a, Tensor *boxes,
                                   Tensor *theta)
{
    if (!cuda_ready(ctx) || N == 0 || (!boxes && !theta))
        return;
    box_transform_kernel<<<ck_blocks(N, 128), 128, 0, cuda_stream_of(ctx)>>>(
        *g, N, tensor_f32(a), boxes ? tensor_f32(boxes) : NULL, theta ? tensor_f32(theta) : NULL);
    LAUNCH_OK(ctx, "box_transform_kernel");
}
