/* sgemm_tile.cuh — the FFMA micro-kernel shared by the SGEMM conv kernel (cuda_conv_sgemm.cu) and
 * the depthwise + projection kernels (cuda_conv_dw_project.cu), so that both sum in one order
 * (the fused kernel's outputs are bit-identical to the unfused chain's).
 *
 * A thread's TM×TN sub-tile of a BM×BN block tile: its rows come in groups of RG = min(TM, 4)
 * adjacent rows, GM groups spread over the tile (rows gm·(BM / GM) + ty·RG + e); its columns in
 * groups of four, TN / 4 groups spread over the tile (columns gn·(BN / GN) + tx·4 + e). Every
 * shared-memory read is one 16-byte (or, for two rows, 8-byte) load, conflict-free. */
#pragma once

template <int TM>
struct TileRows {
    static constexpr int RG = TM < 4 ? TM : 4, GM = TM / RG;
    static_assert(TM == 2 || TM % 4 == 0, "row groups of two or four");
};

/* acc = 0 (before the first step) */
template <int TM, int TN>
__device__ static inline void ck_tile_zero(float (&acc)[TM][TN])
{
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++)
            acc[i][j] = 0.f;
}

/* acc[TM][TN] += As (BK × BM)ᵀ · Bs (BK × BN) over this thread's rows and columns, k = 0 … BK−1
 * in order, one fmaf per product. */
template <int BK, int BM, int BN, int TM, int TN>
__device__ static inline void ck_tile_product(float (&acc)[TM][TN], const float (*As)[BM], const float (*Bs)[BN],
                                              int ty, int tx)
{
    constexpr int RG = TileRows<TM>::RG, GM = TileRows<TM>::GM, GN = TN / 4;
#pragma unroll
    for (int k = 0; k < BK; k++) {
        float a[TM], bv[TN];
#pragma unroll
        for (int gm = 0; gm < GM; gm++) {
            const float *ap = &As[k][gm * (BM / GM) + ty * RG];
            if (RG == 4) {
                float4 q = *reinterpret_cast<const float4 *>(ap);
                a[4 * gm] = q.x, a[4 * gm + 1] = q.y, a[4 * gm + 2] = q.z, a[4 * gm + 3] = q.w;
            } else {
                float2 q = *reinterpret_cast<const float2 *>(ap);
                a[2 * gm] = q.x, a[2 * gm + 1] = q.y;
            }
        }
#pragma unroll
        for (int gn = 0; gn < GN; gn++) {
            float4 q = *reinterpret_cast<const float4 *>(&Bs[k][gn * (BN / GN) + tx * 4]);
            bv[4 * gn] = q.x, bv[4 * gn + 1] = q.y, bv[4 * gn + 2] = q.z, bv[4 * gn + 3] = q.w;
        }
#pragma unroll
        for (int i = 0; i < TM; i++)
#pragma unroll
            for (int j = 0; j < TN; j++)
                acc[i][j] = fmaf(a[i], bv[j], acc[i][j]);
    }
}
