/* cuda_elementwise.cu — activations, broadcast binary ops, axis reductions and dropout on the
 * GPU: the CUDA versions of kernels/cpu/cpu_elementwise.c with the same formulas.
 *
 * Determinism: every output element is produced by one thread or one block in a fixed order;
 * no atomics. Where the CPU sums sequentially (the broadcast operand's gradient, reductions over
 * a long contiguous axis), the GPU sums the same terms in the same order when that keeps enough
 * parallelism, and otherwise in a fixed tree order in double (then the results agree with the
 * CPU to float rounding, not to the bit).
 */
#include "kernels/cuda/cuda_kernels.cuh"

/* ================================ unary ================================================== */

__device__ static inline float sigmoid_dev(float x) { return f_div(1.0f, f_add(1.0f, expf(-x))); }

__device__ static inline float unary_value(UnaryKind kind, float alpha, float v)
{
    switch (kind) {
    case UNARY_RELU: return v > 0 ? v : 0.0f;
    case UNARY_RELU6: return v < 0 ? 0.0f : (v > 6 ? 6.0f : v);
    case UNARY_SIGMOID: return sigmoid_dev(v);
    case UNARY_SWISH: return f_mul(v, sigmoid_dev(v));
    case UNARY_SCALE: return f_mul(alpha, v);
    }
    return 0.0f;
}

/* d act / d x at x = v (y = act(v), read by the sigmoid only). */
__device__ static inline float unary_slope(UnaryKind kind, float alpha, float v, float y)
{
    switch (kind) {
    case UNARY_RELU: return v > 0 ? 1.0f : 0.0f;
    case UNARY_RELU6: return (v > 0 && v < 6) ? 1.0f : 0.0f;
    case UNARY_SIGMOID: return f_mul(y, f_sub(1.0f, y));
    case UNARY_SWISH: {
        float s = sigmoid_dev(v);
        return f_mul(s, f_add(1.0f, f_mul(v, f_sub(1.0f, s))));
    }
    case UNARY_SCALE: return alpha;
    }
    return 0.0f;
}

/* Elementwise kernels move 4 floats per thread with 16-byte accesses where the count and the
 * pointers allow (one 4-byte access in flight per thread left them latency-bound). */
typedef float4 Vec4;

__global__ static void unary_forward_kernel(UnaryKind kind, float alpha, const float *x, float *y, int64_t n)
{
    CK_FOR(i, n) y[i] = unary_value(kind, alpha, x[i]);
}

__global__ static void unary_forward4_kernel(UnaryKind kind, float alpha, const Vec4 *x, Vec4 *y, int64_t n4)
{
    CK_FOR(i, n4)
    {
        Vec4 v = x[i];
        y[i] = make_float4(unary_value(kind, alpha, v.x), unary_value(kind, alpha, v.y), unary_value(kind, alpha, v.z),
                           unary_value(kind, alpha, v.w));
    }
}

__global__ static void unary_backward_kernel(UnaryKind kind, float alpha, const float *x, const float *y,
                                             const float *dy, float *dx, int64_t n)
{
    CK_FOR(i, n) dx[i] = f_add(dx[i], f_mul(dy[i], unary_slope(kind, alpha, x[i], y[i])));
}

__global__ static void unary_backward4_kernel(UnaryKind kind, float alpha, const Vec4 *x, const Vec4 *y,
                                              const Vec4 *dy, Vec4 *dx, int64_t n4)
{
    CK_FOR(i, n4)
    {
        Vec4 v = x[i], g = dy[i], d = dx[i];
        /* y is read only for the sigmoid (and may be x itself, see cuda_unary_backward) */
        Vec4 yv = kind == UNARY_SIGMOID ? y[i] : v;
        d.x = f_add(d.x, f_mul(g.x, unary_slope(kind, alpha, v.x, yv.x)));
        d.y = f_add(d.y, f_mul(g.y, unary_slope(kind, alpha, v.y, yv.y)));
        d.z = f_add(d.z, f_mul(g.z, unary_slope(kind, alpha, v.z, yv.z)));
        d.w = f_add(d.w, f_mul(g.w, unary_slope(kind, alpha, v.w, yv.w)));
        dx[i] = d;
    }
}

static bool vec4_ok(int64_t n, const void *a, const void *b, const void *c, const void *d)
{
    return n % 4 == 0 && (((uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d) & 15u) == 0;
}

extern "C" void cuda_unary_forward(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, Tensor *y)
{
    int64_t n = tensor_numel(x);
    if (!cuda_ready(ctx) || n == 0)
        return;
    const float *px = tensor_f32(x);
    float *py = tensor_f32(y);
    cudaStream_t s = cuda_stream_of(ctx);
    if (vec4_ok(n, px, py, NULL, NULL))
        unary_forward4_kernel<<<ck_blocks(n / 4, CK_THREADS), CK_THREADS, 0, s>>>(
            kind, alpha, reinterpret_cast<const Vec4 *>(px), reinterpret_cast<Vec4 *>(py), n / 4);
    else
        unary_forward_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, s>>>(kind, alpha, px, py, n);
    LAUNCH_OK(ctx, "unary_forward_kernel");
}

extern "C" void cuda_unary_backward(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, const Tensor *y,
                                    const Tensor *dy, Tensor *dx)
{
    int64_t n = tensor_numel(x);
    if (!cuda_ready(ctx) || n == 0)
        return;
    /* y is only read for the sigmoid (the op layer always passes it; guard anyway) */
    const float *px = tensor_f32(x), *py = y ? tensor_f32(y) : tensor_f32(x), *pdy = tensor_f32(dy);
    float *pdx = tensor_f32(dx);
    cudaStream_t s = cuda_stream_of(ctx);
    if (vec4_ok(n, px, py, pdy, pdx))
        unary_backward4_kernel<<<ck_blocks(n / 4, CK_THREADS), CK_THREADS, 0, s>>>(
            kind, alpha, reinterpret_cast<const Vec4 *>(px), reinterpret_cast<const Vec4 *>(py),
            reinterpret_cast<const Vec4 *>(pdy), reinterpret_cast<Vec4 *>(pdx), n / 4);
    else
        unary_backward_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, s>>>(kind, alpha, px, py, pdy, pdx, n);
    LAUNCH_OK(ctx, "unary_backward_kernel");
}

/* ================================ binary with broadcast ================================== */

/* a's shape; for each dim the stride of b (0 where b has extent 1 and broadcasts). */
typedef struct {
    int nd;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t bstride[TENSOR_MAX_DIMS];
} BcastPlan;

static BcastPlan bcast_plan(const Tensor *a, const Tensor *b)
{
    BcastPlan p;
    memset(&p, 0, sizeof p);
    p.nd = a->ndim;
    int64_t s = 1;
    for (int i = a->ndim - 1; i >= 0; i--) {
        p.shape[i] = a->shape[i];
        p.bstride[i] = b->shape[i] == 1 ? 0 : s;
        s *= b->shape[i];
    }
    return p;
}

/* Offset into b of a's flat index k. */
__device__ static inline int64_t bcast_offset(const BcastPlan &p, int64_t k)
{
    int64_t off = 0;
#pragma unroll
    for (int i = TENSOR_MAX_DIMS - 1; i >= 0; i--) {
        if (i < p.nd) {
            int64_t idx = k % p.shape[i];
            k /= p.shape[i];
            off += idx * p.bstride[i];
        }
    }
    return off;
}

__device__ static inline float binary_apply(BinaryKind kind, float a, float b)
{
    switch (kind) {
    case BINARY_ADD: return f_add(a, b);
    case BINARY_MUL: return f_mul(a, b);
    case BINARY_MAX: return a >= b ? a : b;
    }
    return 0.0f;
}

__global__ static void binary_forward_kernel(BinaryKind kind, const float *a, const float *b, float *y, int64_t n,
                                             bool same, BcastPlan p)
{
    CK_FOR(k, n) y[k] = binary_apply(kind, a[k], b[same ? k : bcast_offset(p, k)]);
}

extern "C" void cuda_binary_forward(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, Tensor *y)
{
    int64_t n = tensor_numel(a);
    if (!cuda_ready(ctx) || n == 0)
        return;
    binary_forward_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        kind, tensor_f32(a), tensor_f32(b), tensor_f32(y), n, tensor_same_shape(a, b), bcast_plan(a, b));
    LAUNCH_OK(ctx, "binary_forward_kernel");
}

/* da (shape of a) += ∂y/∂a · dy, one thread per element. */
__global__ static void binary_backward_a_kernel(BinaryKind kind, const float *a, const float *b, const float *dy,
                                                float *da, int64_t n, BcastPlan p)
{
    CK_FOR(k, n)
    {
        float va = a[k], vb = b[bcast_offset(p, k)], g = dy[k];
        switch (kind) {
        case BINARY_ADD: da[k] = f_add(da[k], g); break;
        case BINARY_MUL: da[k] = f_add(da[k], f_mul(g, vb)); break;
        case BINARY_MAX:
            if (va >= vb) /* ties go to a */
                da[k] = f_add(da[k], g);
            break;
        }
    }
}

/* The elements of a that meet one element of b: b's own dims fixed, the broadcast dims free.
 * Element j of b (row-major over b's shape) meets a's flat indices
 *   base(j) + Σ_m free_idx[m]·free_astride[m],
 * and enumerating the free multi-index row-major visits them in increasing order of a's flat
 * index — the CPU's accumulation order. */
typedef struct {
    int nd, nfree;
    int64_t b_shape[TENSOR_MAX_DIMS];   /* b's extents */
    int64_t a_stride[TENSOR_MAX_DIMS];  /* a's strides per dim */
    int64_t free_ext[TENSOR_MAX_DIMS];  /* extents of the broadcast dims, in order */
    int64_t free_stride[TENSOR_MAX_DIMS]; /* a's strides of those dims */
    int64_t per_b;                      /* elements of a per element of b */
} BcastReduce;

static BcastReduce bcast_reduce_plan(const Tensor *a, const Tensor *b)
{
    BcastReduce r;
    memset(&r, 0, sizeof r);
    r.nd = a->ndim;
    r.per_b = 1;
    int64_t s = 1;
    for (int i = a->ndim - 1; i >= 0; i--) {
        r.a_stride[i] = s;
        s *= a->shape[i];
    }
    for (int i = 0; i < a->ndim; i++) {
        r.b_shape[i] = b->shape[i];
        if (b->shape[i] == 1 && a->shape[i] > 1) {
            r.free_ext[r.nfree] = a->shape[i];
            r.free_stride[r.nfree] = r.a_stride[i];
            r.nfree++;
            r.per_b *= a->shape[i];
        }
    }
    return r;
}

__device__ static inline int64_t bcast_base(const BcastReduce &r, int64_t j)
{
    int64_t base = 0;
#pragma unroll
    for (int i = TENSOR_MAX_DIMS - 1; i >= 0; i--) {
        if (i < r.nd) {
            int64_t idx = j % r.b_shape[i];
            j /= r.b_shape[i];
            base += idx * r.a_stride[i]; /* idx is 0 along b's size-1 dims */
        }
    }
    return base;
}

__device__ static inline int64_t bcast_member(const BcastReduce &r, int64_t base, int64_t q)
{
    int64_t k = base;
#pragma unroll
    for (int m = TENSOR_MAX_DIMS - 1; m >= 0; m--) {
        if (m < r.nfree) {
            k += (q % r.free_ext[m]) * r.free_stride[m];
            q /= r.free_ext[m];
        }
    }
    return k;
}

/* d(b) contribution of a's element k to b's element it meets. */
__device__ static inline float bcast_term(BinaryKind kind, float va, float vb, float g, bool *use)
{
    *use = true;
    switch (kind) {
    case BINARY_ADD: return g;
    case BINARY_MUL: return f_mul(g, va);
    case BINARY_MAX: *use = !(va >= vb); return g;
    }
    return 0.0f;
}

/* One thread per element of b, the terms added in a's index order straight into db (as the CPU). */
__global__ static void binary_backward_b_seq_kernel(BinaryKind kind, const float *a, const float *b, const float *dy,
                                                    float *db, int64_t nb, BcastReduce r)
{
    CK_FOR(j, nb)
    {
        int64_t base = bcast_base(r, j);
        float vb = b[j], acc = db[j];
        for (int64_t q = 0; q < r.per_b; q++) {
            int64_t k = bcast_member(r, base, q);
            bool use;
            float t = bcast_term(kind, a[k], vb, dy[k], &use);
            if (use)
                acc = f_add(acc, t);
        }
        db[j] = acc;
    }
}

/* One block per element of b: long reductions (a per-channel bias over N·H·W) in double, fixed
 * tree order. */
__global__ static void binary_backward_b_block_kernel(BinaryKind kind, const float *a, const float *b,
                                                      const float *dy, float *db, BcastReduce r)
{
    __shared__ double sh[CK_THREADS];
    int64_t j = blockIdx.x;
    int64_t base = bcast_base(r, j);
    float vb = b[j];
    double acc = 0.0;
    for (int64_t q = threadIdx.x; q < r.per_b; q += blockDim.x) {
        int64_t k = bcast_member(r, base, q);
        bool use;
        float t = bcast_term(kind, a[k], vb, dy[k], &use);
        if (use)
            acc = d_add(acc, (double)t);
    }
    double total = ck_block_sum(acc, sh);
    if (threadIdx.x == 0)
        db[j] = f_add(db[j], (float)total);
}

/* a + b of one shape (residual connections): da += dy and db += dy (either may be NULL), four
 * values per thread; the same float additions as the general kernels. */
__global__ static void add_backward4_kernel(const Vec4 *dy, Vec4 *da, Vec4 *db, int64_t n4)
{
    CK_FOR(i, n4)
    {
        Vec4 g = dy[i];
        if (da) {
            Vec4 d = da[i];
            da[i] = make_float4(f_add(d.x, g.x), f_add(d.y, g.y), f_add(d.z, g.z), f_add(d.w, g.w));
        }
        if (db) {
            Vec4 d = db[i];
            db[i] = make_float4(f_add(d.x, g.x), f_add(d.y, g.y), f_add(d.z, g.z), f_add(d.w, g.w));
        }
    }
}

extern "C" void cuda_binary_backward(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, const Tensor *dy,
                                     Tensor *da, Tensor *db)
{
    int64_t n = tensor_numel(a), nb = tensor_numel(b);
    if (!cuda_ready(ctx) || n == 0)
        return;
    cudaStream_t s = cuda_stream_of(ctx);
    float *pda = da ? tensor_f32(da) : NULL, *pdb = db ? tensor_f32(db) : NULL;
    if (kind == BINARY_ADD && nb == n && vec4_ok(n, tensor_f32(dy), pda, pdb, NULL)) { /* no broadcast */
        add_backward4_kernel<<<ck_blocks(n / 4, CK_THREADS), CK_THREADS, 0, s>>>(
            reinterpret_cast<const Vec4 *>(tensor_f32(dy)), reinterpret_cast<Vec4 *>(pda),
            reinterpret_cast<Vec4 *>(pdb), n / 4);
        LAUNCH_OK(ctx, "add_backward4_kernel");
        return;
    }
    if (da) {
        binary_backward_a_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, s>>>(
            kind, tensor_f32(a), tensor_f32(b), tensor_f32(dy), tensor_f32(da), n, bcast_plan(a, b));
        if (!LAUNCH_OK(ctx, "binary_backward_a_kernel"))
            return;
    }
    if (db && nb > 0) {
        BcastReduce r = bcast_reduce_plan(a, b);
        /* Sequential per element of b (the CPU's order, to the bit) unless that leaves too few
         * threads for too long a loop. */
        if (r.per_b <= 4096 || nb >= 4096) {
            binary_backward_b_seq_kernel<<<ck_blocks(nb, 128), 128, 0, s>>>(kind, tensor_f32(a), tensor_f32(b),
                                                                             tensor_f32(dy), tensor_f32(db), nb, r);
            LAUNCH_OK(ctx, "binary_backward_b_seq_kernel");
        } else {
            binary_backward_b_block_kernel<<<(unsigned)nb, CK_THREADS, 0, s>>>(kind, tensor_f32(a), tensor_f32(b),
                                                                               tensor_f32(dy), tensor_f32(db), r);
            LAUNCH_OK(ctx, "binary_backward_b_block_kernel");
        }
    }
}

/* ================================ reductions ============================================= */

/* x (outer, n, inner) → y (outer, inner) = (float)(scale · Σ_j x) with the sum in double over
 * j in order: one thread per output, the CPU's exact arithmetic. */
__global__ static void reduce_seq_kernel(const float *x, float *y, int64_t outer, int64_t n, int64_t inner,
                                         double scale)
{
    CK_FOR(o_i, outer * inner)
    {
        int64_t o = o_i / inner, i = o_i % inner;
        const float *p = x + o * n * inner + i;
        double acc = 0.0;
        for (int64_t j = 0; j < n; j++)
            acc = d_add(acc, (double)p[j * inner]);
        y[o_i] = (float)d_mul(acc, scale);
    }
}

/* Short contiguous rows (inner == 1, n <= REDUCE_ROW_MAX: global average pooling, e.g. the glance's
 * (B·G, 1280, 7·7) → 49 values per output): reduce_seq_kernel's threads would each walk their own
 * row, n floats from their neighbours', so every load of a warp touches up to 32 sectors for 128
 * useful bytes. Here a block first copies the rows of its REDUCE_ROWS outputs — one contiguous
 * stretch of rows·n floats — into shared memory with coalesced loads (16-byte ones when x is
 * 16-byte aligned; a block's stretch then is too, REDUCE_ROWS being a multiple of 4), then each
 * thread sums its own row from there: j in order, in double, then scaled — reduce_seq_kernel's
 * (and the CPU's) arithmetic exactly, so the same bits.
 *
 * Row stride in shared memory (kPad): n when n is odd — thread t reads word t·n + j, and an odd
 * stride puts a warp's 32 threads on 32 different banks; n + 1 when n is even (n = 16 unpadded
 * would put 16 threads of a warp on one bank). The padded copy scatters the staged values one
 * float at a time (word e + e / n), up to 4-way conflicted, which still keeps well ahead of the
 * DRAM stream it waits on. */
enum { REDUCE_ROWS = 128, REDUCE_ROW_MAX = 64 };

template <bool kPad>
__global__ static void __launch_bounds__(REDUCE_ROWS)
    reduce_rows_kernel(const float *__restrict__ x, float *__restrict__ y, int64_t rows, int n, FastDiv div_n,
                       double scale, bool vec)
{
    extern __shared__ float4 stage4[];
    float *stage = (float *)stage4; /* (REDUCE_ROWS, n + kPad) */
    const int stride = kPad ? n + 1 : n;
    for (int64_t first = (int64_t)blockIdx.x * REDUCE_ROWS; first < rows; first += (int64_t)gridDim.x * REDUCE_ROWS) {
        int nr = rows - first < REDUCE_ROWS ? (int)(rows - first) : REDUCE_ROWS;
        int count = nr * n; /* <= REDUCE_ROWS · REDUCE_ROW_MAX */
        const float *src = x + first * n; /* (nr, n), contiguous */
        int e = threadIdx.x;
        if (vec) {
            const float4 *src4 = (const float4 *)src;
            int n4 = count >> 2;
#pragma unroll 4
            for (int q = threadIdx.x; q < n4; q += REDUCE_ROWS) {
                float4 v = __ldg(src4 + q);
                if (kPad) {
                    uint32_t w = 4u * q;
                    stage[w + ck_fast_div(w, div_n)] = v.x;
                    stage[w + 1 + ck_fast_div(w + 1, div_n)] = v.y;
                    stage[w + 2 + ck_fast_div(w + 2, div_n)] = v.z;
                    stage[w + 3 + ck_fast_div(w + 3, div_n)] = v.w;
                } else {
                    stage4[q] = v;
                }
            }
            e = 4 * n4 + threadIdx.x; /* the tail of a stretch whose length is not a multiple of 4 */
        }
#pragma unroll 4
        for (; e < count; e += REDUCE_ROWS)
            stage[kPad ? e + (int)ck_fast_div((uint32_t)e, div_n) : e] = __ldg(src + e);
        __syncthreads();
        if ((int)threadIdx.x < nr) {
            const float *row = stage + threadIdx.x * stride;
            double acc = 0.0;
            for (int j = 0; j < n; j++)
                acc = d_add(acc, (double)row[j]);
            y[first + threadIdx.x] = (float)d_mul(acc, scale);
        }
        __syncthreads(); /* the stage is refilled by the next stretch */
    }
}

/* Few outputs, long sums (sum_all, global pooling of a small batch): `chunks` blocks per output
 * each sum a contiguous range of j into partial (outer·inner, chunks) ... */
__global__ static void reduce_partial_kernel(const float *x, double *partial, int64_t n, int64_t inner,
                                             int64_t chunk_len, int chunks)
{
    __shared__ double sh[CK_THREADS];
    int64_t out = blockIdx.x / chunks; /* output index o·inner + i */
    int chunk = (int)(blockIdx.x % chunks);
    int64_t o = out / inner, i = out % inner;
    const float *p = x + o * n * inner + i;
    int64_t j0 = (int64_t)chunk * chunk_len, j1 = j0 + chunk_len < n ? j0 + chunk_len : n;
    double acc = 0.0;
    for (int64_t j = j0 + threadIdx.x; j < j1; j += blockDim.x)
        acc = d_add(acc, (double)p[j * inner]);
    double total = ck_block_sum(acc, sh);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = total;
}

/* ... then one thread per output adds its partials in chunk order. */
__global__ static void reduce_finish_kernel(const double *partial, float *y, int64_t outputs, int chunks,
                                            double scale, bool accumulate)
{
    CK_FOR(out, outputs)
    {
        double acc = 0.0;
        for (int c = 0; c < chunks; c++)
            acc = d_add(acc, partial[out * chunks + c]);
        float v = (float)d_mul(acc, scale);
        y[out] = accumulate ? f_add(y[out], v) : v;
    }
}

extern "C" void cuda_reduce_forward(Ctx *ctx, const ReduceGeom *g, const Tensor *x, Tensor *y)
{
    int64_t outputs = g->outer * g->inner;
    if (!cuda_ready(ctx) || outputs == 0)
        return;
    cudaStream_t s = cuda_stream_of(ctx);
    double scale = (double)g->scale;
    if (g->inner == 1 && g->n >= 1 && g->n <= REDUCE_ROW_MAX) {
        int n = (int)g->n;
        bool pad = n % 2 == 0;
        size_t stage = (size_t)REDUCE_ROWS * (size_t)(pad ? n + 1 : n) * sizeof(float);
        bool vec = ((uintptr_t)tensor_f32(x) & 15) == 0;
        unsigned blocks = ck_blocks(outputs, REDUCE_ROWS);
        if (pad)
            reduce_rows_kernel<true><<<blocks, REDUCE_ROWS, stage, s>>>(tensor_f32(x), tensor_f32(y), outputs, n,
                                                                         fast_div_make((uint32_t)n), scale, vec);
        else
            reduce_rows_kernel<false><<<blocks, REDUCE_ROWS, stage, s>>>(tensor_f32(x), tensor_f32(y), outputs, n,
                                                                          fast_div_make((uint32_t)n), scale, vec);
        LAUNCH_OK(ctx, "reduce_rows_kernel");
        return;
    }
    if (g->n <= 256 || outputs >= 8192) {
        reduce_seq_kernel<<<ck_blocks(outputs, CK_THREADS), CK_THREADS, 0, s>>>(tensor_f32(x), tensor_f32(y),
                                                                                g->outer, g->n, g->inner, scale);
        LAUNCH_OK(ctx, "reduce_seq_kernel");
        return;
    }
    /* ~16k elements per block, at most 1024 chunks per output */
    int64_t chunks = (g->n + 16383) / 16384;
    if (chunks > 1024)
        chunks = 1024;
    int64_t chunk_len = (g->n + chunks - 1) / chunks;
    double *partial = (double *)cuda_scratch(ctx, (size_t)(outputs * chunks) * sizeof(double), "reduce partial sums");
    if (partial) {
        reduce_partial_kernel<<<(unsigned)(outputs * chunks), CK_THREADS, 0, s>>>(tensor_f32(x), partial, g->n,
                                                                                  g->inner, chunk_len, (int)chunks);
        if (LAUNCH_OK(ctx, "reduce_partial_kernel")) {
            reduce_finish_kernel<<<ck_blocks(outputs, CK_THREADS), CK_THREADS, 0, s>>>(partial, tensor_f32(y), outputs,
                                                                                      (int)chunks, scale, false);
            LAUNCH_OK(ctx, "reduce_finish_kernel");
        }
    }
    cuda_scratch_release(ctx);
}

/* dx (outer, n, inner) += scale · dy (outer, inner) */
__global__ static void reduce_backward_kernel(const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner,
                                              float scale)
{
    CK_FOR(k, outer * n * inner)
    {
        int64_t i = k % inner, o = k / (n * inner);
        dx[k] = f_add(dx[k], f_mul(scale, dy[o * inner + i]));
    }
}

extern "C" void cuda_reduce_backward(Ctx *ctx, const ReduceGeom *g, const Tensor *dy, Tensor *dx)
{
    int64_t total = g->outer * g->n * g->inner;
    if (!cuda_ready(ctx) || total == 0)
        return;
    reduce_backward_kernel<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        tensor_f32(dy), tensor_f32(dx), g->outer, g->n, g->inner, g->scale);
    LAUNCH_OK(ctx, "reduce_backward_kernel");
}

/* out[c] += (float)Σ_r in[r·cols + c], rows in order, in double. */
__global__ static void column_sums_kernel(const float *in, int64_t rows, int64_t cols, float *out)
{
    CK_FOR(c, cols)
    {
        double acc = 0.0;
        for (int64_t r = 0; r < rows; r++)
            acc = d_add(acc, (double)in[r * cols + c]);
        out[c] = f_add(out[c], (float)acc);
    }
}

bool cuda_launch_column_sums(Ctx *ctx, const float *in, int64_t rows, int64_t cols, float *out)
{
    if (cols <= 0)
        return true;
    column_sums_kernel<<<ck_blocks(cols, 128), 128, 0, cuda_stream_of(ctx)>>>(in, rows, cols, out);
    return LAUNCH_OK(ctx, "column_sums_kernel");
}

/* ================================ dropout ================================================ */

/* Element i is kept iff uniform(stream, i) >= p (the CPU's Philox draw, bit for bit). */
__global__ static void dropout_forward_kernel(DevRng r, float p, float keep_scale, const float *x, float *y,
                                              int64_t n)
{
    CK_FOR(i, n) y[i] = philox_uniform(r, (uint64_t)i) >= p ? f_mul(x[i], keep_scale) : 0.0f;
}

__global__ static void dropout_backward_kernel(DevRng r, float p, float keep_scale, const float *dy, float *dx,
                                               int64_t n)
{
    CK_FOR(i, n)
    {
        if (philox_uniform(r, (uint64_t)i) >= p)
            dx[i] = f_add(dx[i], f_mul(dy[i], keep_scale));
    }
}

extern "C" void cuda_dropout_forward(Ctx *ctx, float p, const RngStream *stream, const Tensor *x, Tensor *y)
{
    int64_t n = tensor_numel(x);
    if (!cuda_ready(ctx) || n == 0)
        return;
    float keep_scale = 1.0f / (1.0f - p); /* the CPU's float expression */
    dropout_forward_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        dev_rng(stream), p, keep_scale, tensor_f32(x), tensor_f32(y), n);
    LAUNCH_OK(ctx, "dropout_forward_kernel");
}

extern "C" void cuda_dropout_backward(Ctx *ctx, float p, const RngStream *stream, const Tensor *dy, Tensor *dx)
{
    int64_t n = tensor_numel(dy);
    if (!cuda_ready(ctx) || n == 0)
        return;
    float keep_scale = 1.0f / (1.0f - p);
    dropout_backward_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        dev_rng(stream), p, keep_scale, tensor_f32(dy), tensor_f32(dx), n);
    LAUNCH_OK(ctx, "dropout_backward_kernel");
}
