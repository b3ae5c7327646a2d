#include "ditkit_kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

// Separate multiplies and adds everywhere: the element-wise kernels must give the same bits at every level (and as
// Reference's Swift `Vector.exp`), which a fused multiply-add in one of them would break.
#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define DITKIT_X86 1
#include <immintrin.h>
#endif

// ---------------------------------------------------------------------------------------------------------------
// Element-wise kernels, one instance of elementwise.h per level.

#if DITKIT_X86

// Baseline x86-64: SSE2, which every x86-64 CPU has (no attribute needed).
#define NAME(f) f##_base
#define ATTR
#define VF __m128
#define VI __m128i
#define LANES 4
#define LOADU(p) _mm_loadu_ps(p)
#define STOREU(p, v) _mm_storeu_ps(p, v)
#define SET1(x) _mm_set1_ps(x)
#define ADD _mm_add_ps
#define SUB _mm_sub_ps
#define MUL _mm_mul_ps
#define DIV _mm_div_ps
#define MIN _mm_min_ps
#define MAX _mm_max_ps
#define ASI _mm_castps_si128
#define ASF _mm_castsi128_ps
#define IADD _mm_add_epi32
#define ISUB _mm_sub_epi32
#define ISET1 _mm_set1_epi32
#define ISHL23(i) _mm_slli_epi32(i, 23)
static inline float hsum_base(__m128 v) {
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(v, _mm_shuffle_ps(v, v, 1)));
}
static inline float hmax_base(__m128 v) {
    v = _mm_max_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_max_ss(v, _mm_shuffle_ps(v, v, 1)));
}
#define HSUM hsum_base
#define HMAX hmax_base
#include "elementwise.h"

// AVX2 + FMA (FMA is required with AVX2 by the level, not used: see FP_CONTRACT above).
#define AVX2 __attribute__((target("avx2,fma")))
#define NAME(f) f##_avx2
#define ATTR AVX2
#define VF __m256
#define VI __m256i
#define LANES 8
#define LOADU(p) _mm256_loadu_ps(p)
#define STOREU(p, v) _mm256_storeu_ps(p, v)
#define SET1(x) _mm256_set1_ps(x)
#define ADD _mm256_add_ps
#define SUB _mm256_sub_ps
#define MUL _mm256_mul_ps
#define DIV _mm256_div_ps
#define MIN _mm256_min_ps
#define MAX _mm256_max_ps
#define ASI _mm256_castps_si256
#define ASF _mm256_castsi256_ps
#define IADD _mm256_add_epi32
#define ISUB _mm256_sub_epi32
#define ISET1 _mm256_set1_epi32
#define ISHL23(i) _mm256_slli_epi32(i, 23)
AVX2 static inline float hsum_avx2(__m256 v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}
AVX2 static inline float hmax_avx2(__m256 v) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_shuffle_ps(h, h, 1)));
}
#define HSUM hsum_avx2
#define HMAX hmax_avx2
#include "elementwise.h"

// AVX-512 (F, DQ, BW, VL; the products below use the same attribute).
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#define NAME(f) f##_avx512
#define ATTR AVX512
#define VF __m512
#define VI __m512i
#define LANES 16
#define LOADU(p) _mm512_loadu_ps(p)
#define STOREU(p, v) _mm512_storeu_ps(p, v)
#define SET1(x) _mm512_set1_ps(x)
#define ADD _mm512_add_ps
#define SUB _mm512_sub_ps
#define MUL _mm512_mul_ps
#define DIV _mm512_div_ps
#define MIN _mm512_min_ps
#define MAX _mm512_max_ps
#define ASI _mm512_castps_si512
#define ASF _mm512_castsi512_ps
#define IADD _mm512_add_epi32
#define ISUB _mm512_sub_epi32
#define ISET1 _mm512_set1_epi32
#define ISHL23(i) _mm512_slli_epi32(i, 23)
#define HSUM _mm512_reduce_add_ps
#define HMAX _mm512_reduce_max_ps
#include "elementwise.h"

static int detect_level(void) {
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return DITKIT_LEVEL_BASELINE;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return DITKIT_LEVEL_AVX512;
    return DITKIT_LEVEL_AVX2;
}

#else  // not x86-64: one portable level, plain C with the same operations (the compiler vectorises what it can)

#define NAME(f) f##_base
#define ATTR
#define VF float
#define VI int32_t
#define LANES 1
#define LOADU(p) (*(p))
#define STOREU(p, v) (*(p) = (v))
#define SET1(x) (x)
#define ADD(a, b) ((a) + (b))
#define SUB(a, b) ((a) - (b))
#define MUL(a, b) ((a) * (b))
#define DIV(a, b) ((a) / (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
static inline int32_t float_bits(float x) { int32_t i; memcpy(&i, &x, 4); return i; }
static inline float bits_float(int32_t i) { float x; memcpy(&x, &i, 4); return x; }
#define ASI float_bits
#define ASF bits_float
#define IADD(a, b) ((int32_t)((uint32_t)(a) + (uint32_t)(b)))
#define ISUB(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)))
#define ISET1(x) ((int32_t)(x))
#define ISHL23(i) ((int32_t)((uint32_t)(i) << 23))
#define HSUM(v) (v)
#define HMAX(v) (v)
#include "elementwise.h"

static int detect_level(void) { return DITKIT_LEVEL_BASELINE; }

#endif

int ditkit_kernels_best_level(void) {
    static int cached = -1;  // racing first calls compute the same value
    int level = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (level < 0) {
        level = detect_level();
        __atomic_store_n(&cached, level, __ATOMIC_RELAXED);
    }
    return level;
}

int ditkit_kernels_avx512(void) { return ditkit_kernels_best_level() == DITKIT_LEVEL_AVX512; }

/// The level to run: the one asked for, lowered to what the CPU has.
static int usable(int level) {
    int best = ditkit_kernels_best_level();
    return level < best ? level : best;
}

#if DITKIT_X86
#define DISPATCH(level, f, ...)                                                                                       \
    switch (usable(level)) {                                                                                          \
    case DITKIT_LEVEL_AVX512: f##_avx512(__VA_ARGS__); break;                                                         \
    case DITKIT_LEVEL_AVX2: f##_avx2(__VA_ARGS__); break;                                                             \
    default: f##_base(__VA_ARGS__); break;                                                                            \
    }
#else
#define DISPATCH(level, f, ...) ((void)usable(level), f##_base(__VA_ARGS__))
#endif

void ditkit_exp(const float *x, float *y, long count, int level) { DISPATCH(level, exp_array, x, y, count); }

void ditkit_softmax_rows(float *x, long rows, long cols, long ld, float scale, int level) {
    DISPATCH(level, softmax_rows, x, rows, cols, ld, scale);
}

void ditkit_layernorm_modulate(const float *x, float *out, long r0, long r1, long dim, float eps, long tokens,
                               const float *shift, const float *scale, long stride, int level) {
    DISPATCH(level, layernorm_modulate, x, out, r0, r1, dim, eps, tokens, shift, scale, stride);
}

void ditkit_gated_residual(float *x, const float *y, const float *bias, long r0, long r1, long dim, long tokens,
                           const float *gate, long stride, int level) {
    DISPATCH(level, gated_residual, x, y, bias, r0, r1, dim, tokens, gate, stride);
}

void ditkit_add_bias(float *y, long r0, long r1, long dim, const float *bias, int level) {
    DISPATCH(level, add_bias, y, r0, r1, dim, bias);
}

void ditkit_bias_gelu(float *x, long r0, long r1, long dim, const float *bias, int exact, int level) {
    if (exact) {
        for (long r = r0; r < r1; r++) {
            float *row = x + r * dim;
            for (long j = 0; j < dim; j++) {
                float v = row[j] + (bias ? bias[j] : 0.0f);
                row[j] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
            }
        }
        return;
    }
    DISPATCH(level, bias_gelu_tanh, x, r0, r1, dim, bias);
}

void ditkit_layernorm_affine(const float *x, float *out, long r0, long r1, long dim, float eps, const float *weight,
                             const float *bias, int level) {
    DISPATCH(level, layernorm_affine, x, out, r0, r1, dim, eps, weight, bias);
}

void ditkit_bias_gelu_sigmoid(float *x, long r0, long r1, long dim, const float *bias, int level) {
    DISPATCH(level, bias_gelu_sigmoid, x, r0, r1, dim, bias);
}

void ditkit_log_softmax_f64(const float *x, long r0, long r1, long cols, float *out, long row_stride, long col_stride,
                            float low, float high) {
    for (long r = r0; r < r1; r++) {
        const float *row = x + r * cols;
        double max = -__builtin_inf();
        for (long j = 0; j < cols; j++) max = row[j] > max ? (double)row[j] : max;
        double sum = 0;
        for (long j = 0; j < cols; j++) sum += exp((double)row[j] - max);
        double shift = max + log(sum);
        float *o = out + r * row_stride;
        for (long j = 0; j < cols; j++) {
            float v = (float)((double)row[j] - shift);
            v = v < low ? low : v;
            v = v > high ? high : v;
            o[j * col_stride] = v;
        }
    }
}

void ditkit_group_norm(const float *x, float *out, long channels, long spatial, float eps, const float *gamma,
                       const float *beta, int swish, int level) {
    DISPATCH(level, group_norm, x, out, channels, spatial, eps, gamma, beta, swish);
}

void ditkit_swish(float *x, long count, int level) { DISPATCH(level, swish_array, x, count); }

void ditkit_upsample_nearest2(const float *x, float *out, long p0, long p1, long height, long width, int level) {
    DISPATCH(level, upsample_nearest2, x, out, p0, p1, height, width);
}

void ditkit_im2col(const float *x, long height, long width, long kernel, long stride, long pad_top, long pad_left,
                   long out_width, long row0, long row1, long k0, long k1, float *cols, int level) {
    DISPATCH(level, im2col, x, height, width, kernel, stride, pad_top, pad_left, out_width, row0, row1, k0, k1, cols);
}

void ditkit_channel_bias(const float *src, float *out, long c0, long c1, long spatial, const float *bias, int level) {
    DISPATCH(level, channel_bias, src, out, c0, c1, spatial, bias);
}

void ditkit_silu(float *x, long count) {
    for (long i = 0; i < count; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

// ---------------------------------------------------------------------------------------------------------------
// AVX-512 products.

#if DITKIT_X86

#define INLINE AVX512 static inline __attribute__((always_inline))

static inline long min_l(long a, long b) { return a < b ? a : b; }

/// Lanes [0, count) of a 16-lane vector (count clamped to 0…16).
INLINE __mmask16 lanes(long count) {
    return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1);
}

// ---------------------------------------------------------------------------------------------------------------
// Matrix-vector products for a few samples at once.

/// Rows [n, n + 4) against NB samples; the caller guarantees 4 rows.
#define GEMV_BODY(NB)                                                                                                 \
    __m512 acc[4][NB];                                                                                                \
    for (int r = 0; r < 4; r++)                                                                                       \
        for (int j = 0; j < NB; j++) acc[r][j] = _mm512_setzero_ps();                                                 \
    const float *w0 = w + n * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;                                   \
    for (long p = 0; p < k; p += 16) { /* the last step masked to the lanes left */                                  \
        __mmask16 m = lanes(k - p);                                                                                  \
        __m512 a0 = _mm512_maskz_loadu_ps(m, w0 + p), a1 = _mm512_maskz_loadu_ps(m, w1 + p);                         \
        __m512 a2 = _mm512_maskz_loadu_ps(m, w2 + p), a3 = _mm512_maskz_loadu_ps(m, w3 + p);                         \
        for (int j = 0; j < NB; j++) {                                                                               \
            __m512 xv = _mm512_maskz_loadu_ps(m, x + j * ldx + p);                                                   \
            acc[0][j] = _mm512_fmadd_ps(a0, xv, acc[0][j]);                                                          \
            acc[1][j] = _mm512_fmadd_ps(a1, xv, acc[1][j]);                                                          \
            acc[2][j] = _mm512_fmadd_ps(a2, xv, acc[2][j]);                                                          \
            acc[3][j] = _mm512_fmadd_ps(a3, xv, acc[3][j]);                                                          \
        }                                                                                                            \
    }                                                                                                                \
    for (int r = 0; r < 4; r++)                                                                                       \
        for (int j = 0; j < NB; j++)                                                                                  \
            y[j * ldy + n + r] = _mm512_reduce_add_ps(acc[r][j]) + (bias ? bias[n + r] : 0.0f);

AVX512 static void gemv4_1(const float *w, long ldw, long n, long k, const float *x, long ldx, const float *bias, float *y, long ldy) { GEMV_BODY(1) }
AVX512 static void gemv4_2(const float *w, long ldw, long n, long k, const float *x, long ldx, const float *bias, float *y, long ldy) { GEMV_BODY(2) }
AVX512 static void gemv4_3(const float *w, long ldw, long n, long k, const float *x, long ldx, const float *bias, float *y, long ldy) { GEMV_BODY(3) }
AVX512 static void gemv4_4(const float *w, long ldw, long n, long k, const float *x, long ldx, const float *bias, float *y, long ldy) { GEMV_BODY(4) }

/// One row against one sample (the rows left over when the range is not a multiple of 4).
AVX512 static float dot(const float *a, const float *b, long k) {
    __m512 acc = _mm512_setzero_ps();
    for (long p = 0; p < k; p += 16) {
        __mmask16 m = lanes(k - p);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + p), _mm512_maskz_loadu_ps(m, b + p), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

AVX512 void ditkit_gemv_avx512(const float *w, long ldw, long n0, long n1, long k, const float *x, long ldx, long batch,
                               const float *bias, float *y, long ldy) {
    for (long b = 0; b < batch; b += 4) {
        long nb = min_l(4, batch - b);
        const float *xb = x + b * ldx;
        float *yb = y + b * ldy;
        long n = n0;
        for (; n + 4 <= n1; n += 4) {
            switch (nb) {
            case 1: gemv4_1(w, ldw, n, k, xb, ldx, bias, yb, ldy); break;
            case 2: gemv4_2(w, ldw, n, k, xb, ldx, bias, yb, ldy); break;
            case 3: gemv4_3(w, ldw, n, k, xb, ldx, bias, yb, ldy); break;
            default: gemv4_4(w, ldw, n, k, xb, ldx, bias, yb, ldy); break;
            }
        }
        for (; n < n1; n++)
            for (long j = 0; j < nb; j++) yb[j * ldy + n] = dot(w + n * ldw, xb + j * ldx, k) + (bias ? bias[n] : 0.0f);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Attention, one head at a time, in 8-row blocks of queries: scores S = Q·Kᵀ against a packed Kᵀ, a stable
// softmax on the block's rows while they are in L1, then O = P·V.

/// C[r·ldc + 0…16·NV) (lanes masked by m) = Σ_p a[r·ars + p] · b[p·ldb + 0…16·NV), for r < rows (≤ MR): MR rows of
/// a broadcast against NV vectors of b per step, MR·NV accumulators in registers.
#define TILE(NAME, MR, NV)                                                                                           \
    AVX512 __attribute__((noinline)) static void NAME(long rows, long k, const float *a, long ars, const float *b,    \
                                                      long ldb, float *c, long ldc, const __mmask16 *m) {            \
        __m512 acc[MR][NV];                                                                                          \
        for (int r = 0; r < MR; r++)                                                                                 \
            for (int j = 0; j < NV; j++) acc[r][j] = _mm512_setzero_ps();                                            \
        for (long p = 0; p < k; p++) {                                                                               \
            const float *bp = b + p * ldb;                                                                           \
            __m512 bv[NV];                                                                                           \
            for (int j = 0; j < NV; j++) bv[j] = _mm512_maskz_loadu_ps(m[j], bp + 16 * j);                           \
            for (int r = 0; r < MR; r++) {                                                                           \
                if (r < rows) {                                                                                      \
                    __m512 av = _mm512_set1_ps(a[r * ars + p]);                                                      \
                    for (int j = 0; j < NV; j++) acc[r][j] = _mm512_fmadd_ps(av, bv[j], acc[r][j]);                  \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
        for (int r = 0; r < MR; r++)                                                                                 \
            if (r < rows)                                                                                            \
                for (int j = 0; j < NV; j++) _mm512_mask_storeu_ps(c + r * ldc + 16 * j, m[j], acc[r][j]);           \
    }

// Scores: 6 query rows × 64 keys; outputs: 4 query rows × 80 head dimensions (72 of DiT's head size 72).
enum { SR = 6, SV = 4, OR = 4, OV = 5 };
TILE(tile_s, SR, SV)
TILE(tile_o, OR, OV)

/// c (rows × width) = a (rows × k, row stride ars) · b (k × width, row stride ldb), in tiles of mr × 16·nv.
AVX512 static void tiles(void (*tile)(long, long, const float *, long, const float *, long, float *, long, const __mmask16 *),
                         long mr, long nv, long rows, long width, long k, const float *a, long ars, const float *b, long ldb,
                         float *c, long ldc) {
    for (long j = 0; j < width; j += 16 * nv) {
        __mmask16 m[8];
        for (long v = 0; v < nv; v++) m[v] = lanes(width - j - 16 * v);
        for (long r = 0; r < rows; r += mr) tile(min_l(mr, rows - r), k, a + r * ars, ars, b + j, ldb, c + r * ldc + j, ldc, m);
    }
}

/// x[j] = e^(scale·(x[j] − max x)) for j < count, in place; returns their sum (the softmax's denominator, which
/// divides the attention output row instead of every probability).
AVX512 static float exp_row(float *x, long count, float scale) {
    __m512 vmax = _mm512_set1_ps(-__builtin_inff());
    long j = 0;
    for (; j + 16 <= count; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + j));
    if (j < count) vmax = _mm512_mask_max_ps(vmax, lanes(count - j), vmax, _mm512_maskz_loadu_ps(lanes(count - j), x + j));
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(vmax)), s = _mm512_set1_ps(scale), sum = _mm512_setzero_ps();
    for (j = 0; j + 16 <= count; j += 16) {
        __m512 e = exp_avx512(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j), m), s));
        _mm512_storeu_ps(x + j, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (j < count) {
        __mmask16 t = lanes(count - j);
        __m512 e = _mm512_maskz_mov_ps(t, exp_avx512(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + j), m), s)));
        _mm512_mask_storeu_ps(x + j, t, e);
        sum = _mm512_add_ps(sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

AVX512 static void scale_row(float *x, long count, float factor) {
    __m512 f = _mm512_set1_ps(factor);
    for (long j = 0; j < count; j += 16) {
        __mmask16 t = lanes(count - j);
        _mm512_mask_storeu_ps(x + j, t, _mm512_mul_ps(_mm512_maskz_loadu_ps(t, x + j), f));
    }
}

static long padded(long n) { return (n + 15) & ~15L; }

enum { BLOCK = 24 };  // queries per block: their scores (24 × tokens) stay in L1 between the two products

long ditkit_attention_scratch(long tokens, long head_dim) {
    return head_dim * padded(tokens) + tokens * padded(head_dim) + BLOCK * padded(tokens) + 16;
}

AVX512 void ditkit_attention_avx512(const float *q, const float *k, const float *v, long ld, long tokens, long head_dim,
                                    float scale, float *out, long ldo, float *scratch, int softmax) {
    long tp = padded(tokens), dp = padded(head_dim);
    float *kt = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);  // Kᵀ: head_dim × tp, zero past tokens
    float *vp = kt + head_dim * tp;                                      // V: tokens × dp, rows contiguous
    float *s = vp + tokens * dp;                                         // scores of one block of queries: BLOCK × tp
    // Kᵀ row c gathers k[j·ld + c] for 16 keys j at a time.
    __m512i offsets = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                         _mm512_set1_epi32((int)ld));
    for (long j = 0; j < tp; j += 16) {
        __mmask16 m = lanes(tokens - j);
        const float *kj = k + j * ld;
        for (long c = 0; c < head_dim; c++)
            _mm512_store_ps(kt + c * tp + j, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, offsets, kj + c, 4));
    }
    for (long j = 0; j < tokens; j++) memcpy(vp + j * dp, v + j * ld, (size_t)head_dim * sizeof(float));
    for (long i = 0; i < tokens; i += BLOCK) {
        long rows = min_l(BLOCK, tokens - i);
        tiles(tile_s, SR, SV, rows, tp, head_dim, q + i * ld, ld, kt, tp, s, tp);
        float sums[BLOCK];
        if (softmax)
            for (long r = 0; r < rows; r++) sums[r] = exp_row(s + r * tp, tokens, scale);
        tiles(tile_o, OR, OV, rows, head_dim, tokens, s, tp, vp, dp, out + i * ldo, ldo);
        if (softmax)
            for (long r = 0; r < rows; r++) scale_row(out + (i + r) * ldo, head_dim, 1.0f / sums[r]);
    }
}

#else

void ditkit_gemv_avx512(const float *w, long ldw, long n0, long n1, long k, const float *x, long ldx, long batch,
                        const float *bias, float *y, long ldy) {
    (void)w; (void)ldw; (void)n0; (void)n1; (void)k; (void)x; (void)ldx; (void)batch; (void)bias; (void)y; (void)ldy;
}
long ditkit_attention_scratch(long tokens, long head_dim) { (void)tokens; (void)head_dim; return 0; }
void ditkit_attention_avx512(const float *q, const float *k, const float *v, long ld, long tokens, long head_dim,
                             float scale, float *out, long ldo, float *scratch, int softmax) {
    (void)q; (void)k; (void)v; (void)ld; (void)tokens; (void)head_dim; (void)scale; (void)out; (void)ldo;
    (void)scratch; (void)softmax;
}

#endif
