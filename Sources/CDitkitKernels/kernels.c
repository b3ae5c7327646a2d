#include "ditkit_kernels.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))
#define INLINE AVX512 static inline __attribute__((always_inline))

int ditkit_kernels_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

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

/// e^x lane-wise, the same algorithm and constants as Reference's Vector.exp (separate multiplies and adds, no
/// fused ones, so both give the same bits).
AVX512 static inline __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.72283f));
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 shifted = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), magic);
    __m512 n = _mm512_sub_ps(shifted, magic);
    __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(-2.12194440e-4f)));
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(p, r), r), r), _mm512_set1_ps(1.0f));
    __m512i integer = _mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_set1_epi32(0x4B400000));
    __m512 scale = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(integer, _mm512_set1_epi32(127)), 23));
    return _mm512_mul_ps(p, scale);
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
        __m512 e = exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j), m), s));
        _mm512_storeu_ps(x + j, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (j < count) {
        __mmask16 t = lanes(count - j);
        __m512 e = _mm512_maskz_mov_ps(t, exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + j), m), s)));
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

int ditkit_kernels_avx512(void) { return 0; }
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
