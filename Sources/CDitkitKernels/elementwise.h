// The element-wise kernels, written once over a small vector vocabulary and included by kernels.c once per level.
// The includer defines:
//   NAME(f)            the level's name for f (f_sse2, f_avx2, …)
//   ATTR               the level's function attribute (target(...)), or nothing
//   VF, VI, LANES      float and int32 vector types and their lane count
//   LOADU, STOREU, SET1, ADD, SUB, MUL, DIV      unaligned load/store, broadcast, arithmetic
//   MIN(a, b), MAX(a, b)   x86 minps/maxps semantics: b when either is NaN
//   ASI, ASF, IADD, ISUB, ISET1, ISHL23           bit casts and int32 arithmetic
//   HSUM, HMAX         horizontal sum and maximum (to a float)
// No guard: this file is meant to be included several times.

/// e^x lane-wise, in exactly the operations of Reference's `Vector.exp` (see there): clamp (NaN passes), n = x·log2e
/// rounded by adding and subtracting 1.5·2²³, r = x − n·ln2 in two parts, the Cephes degree-6 polynomial, 2^n from
/// the exponent bits. Separate multiplies and adds (no FMA) so every level gives the same bits.
ATTR static inline VF NAME(exp)(VF x) {
    x = MIN(SET1(88.72283f), MAX(SET1(-87.33654f), x));
    const VF magic = SET1(12582912.0f);
    VF shifted = ADD(MUL(x, SET1(1.44269504088896341f)), magic);
    VF n = SUB(shifted, magic);
    VF r = SUB(x, MUL(n, SET1(0.693359375f)));
    r = SUB(r, MUL(n, SET1(-2.12194440e-4f)));
    VF p = SET1(1.9875691500e-4f);
    p = ADD(MUL(p, r), SET1(1.3981999507e-3f));
    p = ADD(MUL(p, r), SET1(8.3334519073e-3f));
    p = ADD(MUL(p, r), SET1(4.1665795894e-2f));
    p = ADD(MUL(p, r), SET1(1.6666665459e-1f));
    p = ADD(MUL(p, r), SET1(5.0000001201e-1f));
    p = ADD(ADD(MUL(MUL(p, r), r), r), SET1(1.0f));
    VI integer = ISUB(ASI(shifted), ISET1(0x4B400000));
    VF scale = ASF(ISHL23(IADD(integer, ISET1(127))));
    return MUL(p, scale);
}

/// The first `count` (< LANES) floats at p, the other lanes `pad`.
ATTR static inline VF NAME(load_tail)(const float *p, long count, float pad) {
    float buffer[LANES];
    for (long i = 0; i < LANES; i++) buffer[i] = i < count ? p[i] : pad;
    return LOADU(buffer);
}

/// Stores the first `count` (< LANES) lanes of v at p.
ATTR static inline void NAME(store_tail)(float *p, long count, VF v) {
    float buffer[LANES];
    STOREU(buffer, v);
    for (long i = 0; i < count; i++) p[i] = buffer[i];
}

ATTR static void NAME(exp_array)(const float *x, float *y, long count) {
    long i = 0;
    for (; i + LANES <= count; i += LANES) STOREU(y + i, NAME(exp)(LOADU(x + i)));
    if (i < count) NAME(store_tail)(y + i, count - i, NAME(exp)(NAME(load_tail)(x + i, count - i, 0.0f)));
}

/// Σ x[i] (two accumulators, then the lanes, then the tail).
ATTR static inline float NAME(sum)(const float *x, long count) {
    VF a = SET1(0.0f), b = SET1(0.0f);
    long i = 0;
    for (; i + 2 * LANES <= count; i += 2 * LANES) { a = ADD(a, LOADU(x + i)); b = ADD(b, LOADU(x + i + LANES)); }
    if (i + LANES <= count) { a = ADD(a, LOADU(x + i)); i += LANES; }
    if (i < count) b = ADD(b, NAME(load_tail)(x + i, count - i, 0.0f));
    return HSUM(ADD(a, b));
}

/// Σ (x[i] − mean)².
ATTR static inline float NAME(sum_squared_deviations)(const float *x, long count, float mean) {
    VF m = SET1(mean), a = SET1(0.0f), b = SET1(0.0f);
    long i = 0;
    for (; i + 2 * LANES <= count; i += 2 * LANES) {
        VF u = SUB(LOADU(x + i), m), w = SUB(LOADU(x + i + LANES), m);
        a = ADD(a, MUL(u, u));
        b = ADD(b, MUL(w, w));
    }
    if (i + LANES <= count) { VF u = SUB(LOADU(x + i), m); a = ADD(a, MUL(u, u)); i += LANES; }
    if (i < count) { VF u = SUB(NAME(load_tail)(x + i, count - i, mean), m); b = ADD(b, MUL(u, u)); }
    return HSUM(ADD(a, b));
}

ATTR static void NAME(softmax_rows)(float *x, long rows, long cols, long ld, float scale) {
    for (long r = 0; r < rows; r++) {
        float *row = x + r * ld;
        VF vmax = SET1(-__builtin_inff());
        long j = 0;
        for (; j + LANES <= cols; j += LANES) vmax = MAX(vmax, LOADU(row + j));
        if (j < cols) vmax = MAX(vmax, NAME(load_tail)(row + j, cols - j, -__builtin_inff()));
        VF m = SET1(HMAX(vmax)), s = SET1(scale), total = SET1(0.0f);
        for (j = 0; j + LANES <= cols; j += LANES) {
            VF e = NAME(exp)(MUL(SUB(LOADU(row + j), m), s));
            STOREU(row + j, e);
            total = ADD(total, e);
        }
        float sum = HSUM(total);
        if (j < cols) {
            VF e = NAME(exp)(MUL(SUB(NAME(load_tail)(row + j, cols - j, 0.0f), m), s));
            NAME(store_tail)(row + j, cols - j, e);
            for (long i = j; i < cols; i++) sum += row[i];
        }
        VF inverse = SET1(1.0f / sum);
        for (j = 0; j + LANES <= cols; j += LANES) STOREU(row + j, MUL(LOADU(row + j), inverse));
        for (; j < cols; j++) row[j] *= 1.0f / sum;
    }
}

ATTR static void NAME(layernorm_modulate)(const float *x, float *out, long r0, long r1, long dim, float eps, long tokens,
                                          const float *shift, const float *scale, long stride) {
    for (long r = r0; r < r1; r++) {
        const float *row = x + r * dim;
        float *o = out + r * dim;
        float mean = NAME(sum)(row, dim) / (float)dim;
        float inverse = 1.0f / __builtin_sqrtf(NAME(sum_squared_deviations)(row, dim, mean) / (float)dim + eps);
        long sample = r / tokens;
        const float *sh = shift + sample * stride, *sc = scale + sample * stride;
        VF vm = SET1(mean), vi = SET1(inverse), one = SET1(1.0f);
        long j = 0;
        for (; j + LANES <= dim; j += LANES)
            STOREU(o + j, ADD(MUL(MUL(SUB(LOADU(row + j), vm), vi), ADD(one, LOADU(sc + j))), LOADU(sh + j)));
        if (j < dim) {
            long t = dim - j;
            VF v = ADD(MUL(MUL(SUB(NAME(load_tail)(row + j, t, 0.0f), vm), vi), ADD(one, NAME(load_tail)(sc + j, t, 0.0f))),
                       NAME(load_tail)(sh + j, t, 0.0f));
            NAME(store_tail)(o + j, t, v);
        }
    }
}

ATTR static void NAME(gated_residual)(float *x, const float *y, const float *bias, long r0, long r1, long dim, long tokens,
                                      const float *gate, long stride) {
    for (long r = r0; r < r1; r++) {
        const float *g = gate + (r / tokens) * stride, *yr = y + r * dim;
        float *xr = x + r * dim;
        long j = 0;
        for (; j + LANES <= dim; j += LANES)
            STOREU(xr + j, ADD(LOADU(xr + j), MUL(LOADU(g + j), ADD(LOADU(yr + j), LOADU(bias + j)))));
        for (; j < dim; j++) xr[j] += g[j] * (yr[j] + bias[j]);
    }
}

ATTR static void NAME(add_bias)(float *y, long r0, long r1, long dim, const float *bias) {
    for (long r = r0; r < r1; r++) {
        float *row = y + r * dim;
        long j = 0;
        for (; j + LANES <= dim; j += LANES) STOREU(row + j, ADD(LOADU(row + j), LOADU(bias + j)));
        for (; j < dim; j++) row[j] += bias[j];
    }
}

/// v / (1 + e^((v + 0.044715·v·v·v) · −2√(2/π))): 0.5·v·(1 + tanh(u)) = v·σ(2u), without tanh's cancellation.
ATTR static inline VF NAME(gelu_tanh)(VF v) {
    VF cubic = MUL(MUL(MUL(SET1(0.044715f), v), v), v);
    VF e = NAME(exp)(MUL(ADD(v, cubic), SET1(-1.5957691216057308f)));
    return DIV(v, ADD(SET1(1.0f), e));
}

/// x ← act(x + bias) row by row (bias may be NULL), the tail through the masked loads: one body for every activation.
#define DITKIT_BIAS_ACTIVATION(act)                                                                         \
    ATTR static void NAME(bias_gelu_##act)(float *x, long r0, long r1, long dim, const float *bias) {       \
        for (long r = r0; r < r1; r++) {                                                                    \
            float *row = x + r * dim;                                                                       \
            long j = 0;                                                                                     \
            for (; j + LANES <= dim; j += LANES) {                                                          \
                VF v = LOADU(row + j);                                                                      \
                if (bias) v = ADD(v, LOADU(bias + j));                                                      \
                STOREU(row + j, NAME(gelu_##act)(v));                                                       \
            }                                                                                               \
            if (j < dim) {                                                                                  \
                VF v = NAME(load_tail)(row + j, dim - j, 0.0f);                                             \
                if (bias) v = ADD(v, NAME(load_tail)(bias + j, dim - j, 0.0f));                             \
                NAME(store_tail)(row + j, dim - j, NAME(gelu_##act)(v));                                    \
            }                                                                                               \
        }                                                                                                   \
    }
DITKIT_BIAS_ACTIVATION(tanh)

/// Σ (x[i] − center)^power (power 1 or 2) over 16 fixed partial sums — partial p holds the elements i ≡ p mod 16 in
/// order, missing tail elements adding an exact 0 — then one fixed tree: the same bits at every level whatever its
/// lane count.
ATTR static inline float NAME(sum16)(const float *x, long count, float center, int power) {
    VF acc[16 / LANES];
    for (int v = 0; v < 16 / LANES; v++) acc[v] = SET1(0.0f);
    VF c = SET1(center);
    for (long i = 0; i < count; i += 16)
        for (int v = 0; v < 16 / LANES; v++) {
            long at = i + v * LANES, left = count - at;
            if (left <= 0) break;
            VF u = SUB(left >= LANES ? LOADU(x + at) : NAME(load_tail)(x + at, left, center), c);
            acc[v] = ADD(acc[v], power == 2 ? MUL(u, u) : u);
        }
    float partial[16];
    for (int v = 0; v < 16 / LANES; v++) STOREU(partial + v * LANES, acc[v]);
    for (int w = 8; w >= 1; w /= 2)
        for (int p = 0; p < w; p++) partial[p] = partial[p] + partial[p + w];
    return partial[0];
}

ATTR static void NAME(layernorm_affine)(const float *x, float *out, long r0, long r1, long dim, float eps,
                                        const float *weight, const float *bias) {
    for (long r = r0; r < r1; r++) {
        const float *row = x + r * dim;
        float *o = out + r * dim;
        float mean = NAME(sum16)(row, dim, 0.0f, 1) / (float)dim;
        float inverse = 1.0f / __builtin_sqrtf(NAME(sum16)(row, dim, mean, 2) / (float)dim + eps);
        VF vm = SET1(mean), vi = SET1(inverse);
        long j = 0;
        for (; j + LANES <= dim; j += LANES)
            STOREU(o + j, ADD(MUL(MUL(SUB(LOADU(row + j), vm), vi), LOADU(weight + j)), LOADU(bias + j)));
        for (; j < dim; j++) o[j] = (row[j] - mean) * inverse * weight[j] + bias[j];
    }
}

/// v / (1 + e^(−1.702·v)) = v·σ(1.702·v).
ATTR static inline VF NAME(gelu_sigmoid)(VF v) {
    return DIV(v, ADD(SET1(1.0f), NAME(exp)(MUL(v, SET1(-1.702f)))));
}

DITKIT_BIAS_ACTIVATION(sigmoid)

// ---------------------------------------------------------------------------------------------------------------
// Convolution-network kernels (GroupNorm, swish, nearest ×2, im2col with padding, per-channel bias). The reductions
// run in a fixed order that does not depend on LANES (16 float lanes, flushed into 16 double lanes every 1024
// values), so every level gives the same bits.

/// Σ x[i] and, with `center` non-NULL, Σ (x[i] − *center)², in float64: 16 interleaved float32 lanes (lane l takes
/// the values i ≡ l mod 16) flushed into 16 float64 lanes every 1024 values, the last count mod 16 values added in
/// float64 directly, then the lanes summed in order.
ATTR static double NAME(fixed_sum)(const float *x, long count, const float *center) {
    enum { VECS = 16 / LANES };
    double lanes[16] = {0};
    float flush[16];
    long i = 0, whole = count - count % 16;
    const VF m = SET1(center ? *center : 0.0f);
    while (i < whole) {
        VF acc[VECS];
        for (int v = 0; v < VECS; v++) acc[v] = SET1(0.0f);
        long end = i + 1024 < whole ? i + 1024 : whole;
        for (; i < end; i += 16)
            for (int v = 0; v < VECS; v++) {
                VF u = LOADU(x + i + v * LANES);
                if (center) { u = SUB(u, m); u = MUL(u, u); }
                acc[v] = ADD(acc[v], u);
            }
        for (int v = 0; v < VECS; v++) STOREU(flush + v * LANES, acc[v]);
        for (int l = 0; l < 16; l++) lanes[l] += (double)flush[l];
    }
    double total = 0;
    for (int l = 0; l < 16; l++) total += lanes[l];
    for (; i < count; i++) {
        float u = x[i];
        if (center) { u = u - *center; u = u * u; }
        total += (double)u;
    }
    return total;
}

/// x / (1 + e^(−x)) lane-wise (swish, SiLU) with the level's exp.
ATTR static inline VF NAME(swish)(VF x) {
    return DIV(x, ADD(SET1(1.0f), NAME(exp)(SUB(SET1(0.0f), x))));
}

ATTR static void NAME(group_norm)(const float *x, float *out, long channels, long spatial, float eps, const float *gamma,
                                  const float *beta, int swish) {
    long count = channels * spatial;
    float mean = (float)(NAME(fixed_sum)(x, count, NULL) / (double)count);
    float var = (float)(NAME(fixed_sum)(x, count, &mean) / (double)count);
    float rstd = 1.0f / __builtin_sqrtf(var + eps);
    for (long c = 0; c < channels; c++) {
        float scale = rstd * (gamma ? gamma[c] : 1.0f);
        float shift = (beta ? beta[c] : 0.0f) - scale * mean;
        const float *xc = x + c * spatial;
        float *oc = out + c * spatial;
        VF vs = SET1(scale), vb = SET1(shift);
        long j = 0;
        for (; j + LANES <= spatial; j += LANES) {
            VF y = ADD(MUL(LOADU(xc + j), vs), vb);
            STOREU(oc + j, swish ? NAME(swish)(y) : y);
        }
        if (j < spatial) {
            VF y = ADD(MUL(NAME(load_tail)(xc + j, spatial - j, 0.0f), vs), vb);
            NAME(store_tail)(oc + j, spatial - j, swish ? NAME(swish)(y) : y);
        }
    }
}

ATTR static void NAME(swish_array)(float *x, long count) {
    long i = 0;
    for (; i + LANES <= count; i += LANES) STOREU(x + i, NAME(swish)(LOADU(x + i)));
    if (i < count) NAME(store_tail)(x + i, count - i, NAME(swish)(NAME(load_tail)(x + i, count - i, 0.0f)));
}

ATTR static void NAME(upsample_nearest2)(const float *x, float *out, long p0, long p1, long height, long width) {
    for (long p = p0; p < p1; p++) {
        const float *plane = x + p * height * width;
        float *o = out + p * 4 * height * width;
        for (long r = 0; r < height; r++) {
            const float *row = plane + r * width;
            float *o0 = o + 2 * r * 2 * width;
            for (long j = 0; j < width; j++) { o0[2 * j] = row[j]; o0[2 * j + 1] = row[j]; }
            memcpy(o0 + 2 * width, o0, (size_t)(2 * width) * sizeof(float));
        }
    }
}

ATTR static void NAME(im2col)(const float *x, long height, long width, long kernel, long stride, long pad_top,
                              long pad_left, long out_width, long row0, long row1, long k0, long k1, float *cols) {
    long ncols = (row1 - row0) * out_width, kk = kernel * kernel;
    for (long k = k0; k < k1; k++) {
        long c = k / kk, ky = (k % kk) / kernel, kx = k % kernel;
        const float *plane = x + c * height * width;
        float *dst = cols + (k - k0) * ncols;
        for (long r = row0; r < row1; r++) {
            float *d = dst + (r - row0) * out_width;
            long y = r * stride + ky - pad_top;
            if (y < 0 || y >= height) { memset(d, 0, (size_t)out_width * sizeof(float)); continue; }
            const float *src = plane + y * width;
            if (stride == 1) {
                // Columns j read x = j + kx − pad_left: zero where that falls outside the row.
                long lo = pad_left - kx, hi = width + pad_left - kx;  // valid j in [lo, hi)
                if (lo < 0) lo = 0;
                if (hi > out_width) hi = out_width;
                if (hi <= lo) { memset(d, 0, (size_t)out_width * sizeof(float)); continue; }
                if (lo > 0) memset(d, 0, (size_t)lo * sizeof(float));
                memcpy(d + lo, src + lo + kx - pad_left, (size_t)(hi - lo) * sizeof(float));
                if (hi < out_width) memset(d + hi, 0, (size_t)(out_width - hi) * sizeof(float));
            } else {
                for (long j = 0; j < out_width; j++) {
                    long xx = j * stride + kx - pad_left;
                    d[j] = xx >= 0 && xx < width ? src[xx] : 0.0f;
                }
            }
        }
    }
}

ATTR static void NAME(channel_bias)(const float *src, float *out, long c0, long c1, long spatial, const float *bias) {
    for (long c = c0; c < c1; c++) {
        const float *s = src ? src + c * spatial : NULL;
        float *o = out + c * spatial;
        VF b = SET1(bias[c]);
        long j = 0;
        if (s) {
            for (; j + LANES <= spatial; j += LANES) STOREU(o + j, ADD(LOADU(s + j), b));
            for (; j < spatial; j++) o[j] = s[j] + bias[c];
        } else {
            for (; j + LANES <= spatial; j += LANES) STOREU(o + j, b);
            for (; j < spatial; j++) o[j] = bias[c];
        }
    }
}

// Each level includes this file once with its own macros; they end here so the next level can define its own.
#undef DITKIT_BIAS_ACTIVATION
#undef NAME
#undef ATTR
#undef VF
#undef VI
#undef LANES
#undef LOADU
#undef STOREU
#undef SET1
#undef ADD
#undef SUB
#undef MUL
#undef DIV
#undef MIN
#undef MAX
#undef ASI
#undef ASF
#undef IADD
#undef ISUB
#undef ISET1
#undef ISHL23
#undef HSUM
#undef HMAX
