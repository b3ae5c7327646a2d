#ifndef DITKIT_KERNELS_H
#define DITKIT_KERNELS_H

// Kernels of the reference forward pass, in C so that each function can be compiled for one instruction set
// (function attributes, no build flags) and chosen at run time: the binary runs on any CPU of its architecture.
//
// - Element-wise kernels (exp, softmax rows, LayerNorm + modulation, GELU, bias and gated-residual passes,
//   GroupNorm, swish, nearest ×2 upsampling, im2col with padding, per-channel bias) at three
//   levels: baseline (SSE2 on x86-64, plain C elsewhere), AVX2 + FMA, and AVX-512. Each takes a `level`; a level the
//   CPU lacks is lowered to the best one it has (never an illegal instruction), so callers validate first with
//   ditkit_kernels_best_level().
// - AVX-512 products for the cases where OpenBLAS loses time: the small-batch matrix-vector products (adaLN
//   modulation, embedders) and attention per head. Call them only when ditkit_kernels_avx512() returns 1.
//
// Every level computes e^x with the same polynomial and constants, in the same order of operations (separate
// multiplies and adds, no fused ones), as Reference's `Vector.exp`: all of them give the same bits.

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction-set levels (the `level` argument of the element-wise kernels).
enum { DITKIT_LEVEL_BASELINE = 0, DITKIT_LEVEL_AVX2 = 1, DITKIT_LEVEL_AVX512 = 2 };

/// The highest level this CPU (and OS) runs: AVX2 needs AVX2 and FMA; AVX-512 needs those and AVX-512 F, DQ, BW, VL.
/// Always DITKIT_LEVEL_BASELINE off x86-64.
int ditkit_kernels_best_level(void);

/// 1 if this CPU (and OS) runs the AVX-512 kernels below.
int ditkit_kernels_avx512(void);

/// y[i] = e^x[i] for i < count (clamped to [−87.33654, 88.72283] first; NaN stays NaN). x and y may be the same.
void ditkit_exp(const float *x, float *y, long count, int level);

/// Row-wise softmax of `rows` rows of `cols` (row stride ld), in place: e^(scale·(x − max)) / Σ.
void ditkit_softmax_rows(float *x, long rows, long cols, long ld, float scale, int level);

/// For rows r in [r0, r1) of `dim`: LayerNorm without affine (float32 mean, two-pass variance, 1/√(var + eps)), then
/// ·(1 + scale) + shift with the vectors of sample r / tokens (at scale + sample·stride, shift + sample·stride).
void ditkit_layernorm_modulate(const float *x, float *out, long r0, long r1, long dim, float eps, long tokens,
                               const float *shift, const float *scale, long stride, int level);

/// x[r, j] += gate[(r / tokens)·stride + j] · (y[r, j] + bias[j]) for rows r in [r0, r1).
void ditkit_gated_residual(float *x, const float *y, const float *bias, long r0, long r1, long dim, long tokens,
                           const float *gate, long stride, int level);

/// y[r, j] += bias[j] for rows r in [r0, r1).
void ditkit_add_bias(float *y, long r0, long r1, long dim, const float *bias, int level);

/// GELU of x[r, j] + bias[j] (bias may be NULL) in place, rows r in [r0, r1): with exact = 0 the tanh form, computed
/// as v / (1 + e^(−2·√(2/π)·(v + 0.044715·v³))); with exact = 1, 0.5·v·(1 + erf(v/√2)) (libm's erff, every level).
void ditkit_bias_gelu(float *x, long r0, long r1, long dim, const float *bias, int exact, int level);

/// For rows r in [r0, r1) of `dim`: affine LayerNorm (x − mean)·(1/√(var + eps))·weight + bias. Mean and variance
/// are float32 sums over 16 fixed partial sums reduced in one fixed tree, so every level gives the same bits.
void ditkit_layernorm_affine(const float *x, float *out, long r0, long r1, long dim, float eps, const float *weight,
                             const float *bias, int level);

/// v·σ(1.702·v), computed as v / (1 + e^(−1.702·v)), of v = x[r, j] + bias[j] (bias may be NULL), in place for rows
/// r in [r0, r1): the same bits at every level.
void ditkit_bias_gelu_sigmoid(float *x, long r0, long r1, long dim, const float *bias, int level);

/// Row-wise log-softmax in float64 (libm's exp and log; max, Σ e^(x − max) in index order, x − max − log Σ), rounded
/// to float32 and clamped to [low, high]: row r of x (rows of `cols`) goes to out[r·row_stride + j·col_stride] for
/// rows r in [r0, r1). Scalar code, one version: the same bits whatever the level.
void ditkit_log_softmax_f64(const float *x, long r0, long r1, long cols, float *out, long row_stride, long col_stride,
                            float low, float high);

/// x[i] = x[i] / (1 + e^(−x[i])) with libm's expf (one version: a few thousand values per pass).
void ditkit_silu(float *x, long count);

/// GroupNorm of one group: x and out hold `channels` planes of `spatial` values (contiguous; out may be x). Mean and
/// biased variance over the whole group, summed in float64 in a fixed order (the same bits at every level), then
/// per channel c: y = x·s + (beta[c] − s·mean) with s = gamma[c]/√(var + eps) (gamma, beta may be NULL: 1 and 0),
/// followed by swish y/(1 + e^(−y)) when `swish` is 1.
void ditkit_group_norm(const float *x, float *out, long channels, long spatial, float eps, const float *gamma,
                       const float *beta, int swish, int level);

/// x[i] = x[i] / (1 + e^(−x[i])) (swish, SiLU) with ditkit's exp: the same bits at every level.
void ditkit_swish(float *x, long count, int level);

/// Nearest-neighbour ×2 upsampling of planes p in [p0, p1) of height × width into planes of 2·height × 2·width.
void ditkit_upsample_nearest2(const float *x, float *out, long p0, long p1, long height, long width, int level);

/// im2col of one sample x (channels × height × width) for a square `kernel` with `stride` and zero padding
/// (pad_top, pad_left; bottom and right padding follow from out_width and the output rows asked for): rows k in
/// [k0, k1) of the (channels·kernel² × out_rows·out_width) matrix, restricted to output rows [row0, row1), into
/// cols ((k1 − k0) × (row1 − row0)·out_width, dense). Row k is channel k / kernel², tap (k / kernel) % kernel, k % kernel.
void ditkit_im2col(const float *x, long height, long width, long kernel, long stride, long pad_top, long pad_left,
                   long out_width, long row0, long row1, long k0, long k1, float *cols, int level);

/// out[c·spatial + j] = src[c·spatial + j] + bias[c] for channels c in [c0, c1) (src NULL: bias[c]; src may be out).
void ditkit_channel_bias(const float *src, float *out, long c0, long c1, long spatial, const float *bias, int level);

/// y[b·ldy + n] = bias[n] + Σ_p w[n·ldw + p] · x[b·ldx + p], for rows n in [n0, n1) and samples b < batch; bias
/// may be NULL. Reads each weight row once per group of four samples. AVX-512 only.
void ditkit_gemv_avx512(const float *w, long ldw, long n0, long n1, long k, const float *x, long ldx, long batch,
                        const float *bias, float *y, long ldy);

/// Floats of scratch one ditkit_attention_avx512 call needs (64-byte alignment is taken care of inside).
long ditkit_attention_scratch(long tokens, long head_dim);

/// One attention head: out[i·ldo + c] = Σ_j P[i, j] · v[j·ld + c] with P = softmax_j(scale · q_i·k_j) (stable:
/// the row maximum is subtracted), for i < tokens and c < head_dim; q, k, v rows have stride ld. With
/// softmax = 0 the scores are used as they are (the benchmark's matrix-product floor). AVX-512 only.
void ditkit_attention_avx512(const float *q, const float *k, const float *v, long ld, long tokens, long head_dim,
                             float scale, float *out, long ldo, float *scratch, int softmax);

#ifdef __cplusplus
}
#endif

#endif
