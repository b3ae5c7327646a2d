#ifndef DITKIT_KERNELS_H
#define DITKIT_KERNELS_H

// AVX-512 kernels of the reference forward pass, for the products where OpenBLAS loses time: the small-batch
// matrix-vector products (adaLN modulation, embedders) and attention per head. Each is compiled for AVX-512F
// only (function attributes; no build flags), so the binary runs anywhere: call ditkit_kernels_avx512() first
// and take the OpenBLAS path when it returns 0.

#ifdef __cplusplus
extern "C" {
#endif

/// 1 if this CPU (and OS) runs the AVX-512 kernels below.
int ditkit_kernels_avx512(void);

/// y[b·ldy + n] = bias[n] + Σ_p w[n·ldw + p] · x[b·ldx + p], for rows n in [n0, n1) and samples b < batch; bias
/// may be NULL. Reads each weight row once per group of four samples.
void ditkit_gemv_avx512(const float *w, long ldw, long n0, long n1, long k, const float *x, long ldx, long batch,
                        const float *bias, float *y, long ldy);

/// Floats of scratch one ditkit_attention_avx512 call needs (64-byte alignment is taken care of inside).
long ditkit_attention_scratch(long tokens, long head_dim);

/// One attention head: out[i·ldo + c] = Σ_j P[i, j] · v[j·ld + c] with P = softmax_j(scale · q_i·k_j) (stable:
/// the row maximum is subtracted), for i < tokens and c < head_dim; q, k, v rows have stride ld. With
/// softmax = 0 the scores are used as they are (the benchmark's matrix-product floor).
void ditkit_attention_avx512(const float *q, const float *k, const float *v, long ld, long tokens, long head_dim,
                             float scale, float *out, long ldo, float *scratch, int softmax);

#ifdef __cplusplus
}
#endif

#endif
