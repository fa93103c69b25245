/* Per-block integer sums of a tbnn layer by AND + popcount (tbnn.kernels).
 *
 * Inputs are bit planes packed 64 per word, each read-out block padded to `wpb` words:
 *   X  [J, M, nb * wpb]   uint64, plane j of row m carries weight wx[j]
 *   Wt [P, nb * wpb, O]   uint64, plane p of the weight codes carries weight wc[p]
 *                         (transposed: the words of O outputs side by side)
 * and the result is, for every block b, row m and output o,
 *   out[b, m, o] = sum_j sum_p wx[j] wc[p] popcount(X[j, m, block b] & Wt[p, block b, o])
 * which is N_b = sum_{i in b} q[m, i] Q[o, i] when q = sum_j wx[j] x_j and Q = sum_p wc[p] w_p.
 * Words of X that are 0 (no spike) are skipped. O must be a multiple of 8. One build carries every path; tb_terms picks one at run time
 * from the CPU's features (AVX-512 VPOPCNTDQ, AVX2, POPCNT, portable C); tb_path says which.
 * Also here: packing 0/1 bytes into such words (tb_pack) and the binary neuron's
 * integrate-and-fire, checked against its code (tb_fire), on the same paths. The whole neuron
 * (tb_neuron, tb_dat_fit) is in neuron.c, built in the same unit after this file.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define TB_X86 1
#include <immintrin.h>
#endif

#define TB_API __attribute__((visibility("default")))

/* ---------------------------------------------------------------------------------------- */
/* packing: 0/1 bytes [rows, K] -> words [rows, nb * wpb], block b's features from word b*wpb */

/* One row's block of n <= bs bytes from s into words db (zeroed): 64 bytes -> one word per
 * step on the AVX-512 (byte test masks) and AVX2 (byte movemasks) paths, 8 at a time here. */
static inline __attribute__((always_inline)) void pack_block_scalar(const uint8_t *s, int64_t n, uint64_t *db,
                                                                    int64_t i) {
    for (; i + 8 <= n; i += 8) { /* 8 bytes of 0/1 -> 8 bits, feature i at bit i % 64 */
        uint64_t v;
        memcpy(&v, s + i, 8);
        v = (v != 0) ? ((v | (v >> 7) | (v >> 14) | (v >> 21) | (v >> 28) | (v >> 35) | (v >> 42) | (v >> 49)) & 0xff) : 0;
        db[i >> 6] |= v << (i & 63);
    }
    for (; i < n; i++)
        db[i >> 6] |= (uint64_t)(s[i] != 0) << (i & 63);
}

#ifdef TB_X86
__attribute__((target("avx2"))) static void pack_block_avx2(const uint8_t *s, int64_t n, uint64_t *db) {
    const __m256i zero = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint32_t lo = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(s + i)), zero));
        uint32_t hi = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(s + i + 32)), zero));
        db[i >> 6] = (uint64_t)lo | ((uint64_t)hi << 32);
    }
    pack_block_scalar(s, n, db, i);
}

__attribute__((target("avx512f,avx512bw"))) static void pack_block_avx512(const uint8_t *s, int64_t n, uint64_t *db) {
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i v = _mm512_loadu_si512((const void *)(s + i));
        db[i >> 6] = (uint64_t)_mm512_test_epi8_mask(v, v);
    }
    if (i < n) { /* the tail, by a masked load (bytes past n read as 0) */
        __m512i v = _mm512_maskz_loadu_epi8((__mmask64)((~0ULL) >> (64 - (n - i))), (const void *)(s + i));
        db[i >> 6] = (uint64_t)_mm512_test_epi8_mask(v, v);
    }
}
#endif

/* packing: 0/1 bytes [rows, K] -> words [rows, nb * wpb], block b's features from word b*wpb;
 * `path` as tb_terms's (3: AVX-512 BW, 2: AVX2, else portable). */
TB_API void tb_pack(int path, const uint8_t *src, int64_t rows, int64_t K, int64_t bs, int64_t wpb, uint64_t *dst) {
    int64_t nb = (K + bs - 1) / bs, nw = nb * wpb;
    memset(dst, 0, (size_t)(rows * nw) * sizeof(uint64_t));
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *s = src + r * K;
        uint64_t *d = dst + r * nw;
        for (int64_t b = 0; b < nb; b++) {
            int64_t lo = b * bs, n = (K - lo < bs) ? K - lo : bs;
#ifdef TB_X86
            if (path == 3) {
                pack_block_avx512(s + lo, n, d + b * wpb);
                continue;
            }
            if (path == 2) {
                pack_block_avx2(s + lo, n, d + b * wpb);
                continue;
            }
#endif
            (void)path;
            pack_block_scalar(s + lo, n, d + b * wpb, 0);
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* the binary neuron's integrate-and-fire (tbnn.core.firing), checked against its code      */

/* Membranes r (float32 [n], updated in place) run T steps: s_t = (r >= th[t]), r = r - th[t]
 * where it fired (each a float32 operation, as torch's ge and sub); spikes go to spk [T, n]
 * as 0/1 bytes. The weighted sum sum_t w[t] s_t (exact: integers below 2^24) is compared with
 * the code q [n]; returns how many differ. In chunks of 512 membranes, so that the T passes
 * over a chunk stay in the first-level cache. */
/* T steps of m membranes r (in place): step t's spikes to spk + t * stride, code[i] = sum_t w[t] s_t,
 * each neuron's spikes added to counts (unless NULL). */
static inline __attribute__((always_inline)) void if_steps(float *restrict r, int64_t m, int64_t T, const float *th,
                                                           const float *w, uint8_t *spk, int64_t stride,
                                                           float *restrict code, int32_t *counts) {
    for (int64_t i = 0; i < m; i++) code[i] = 0.0f;
    for (int64_t t = 0; t < T; t++) {
        const float h = th[t], wt = w[t];
        uint8_t *restrict s = spk + t * stride;
        for (int64_t i = 0; i < m; i++) {
            const float v = r[i];
            const int f = v >= h;
            s[i] = (uint8_t)f;
            r[i] = f ? v - h : v;
            code[i] += f ? wt : 0.0f;
            if (counts) counts[i] += f;
        }
    }
}

static inline __attribute__((always_inline)) int64_t fire_chunks(float *r, const float *q, int64_t n, int64_t T,
                                                                 const float *th, const float *w, uint8_t *spk) {
    int64_t bad = 0;
    float code[512];
    for (int64_t i0 = 0; i0 < n; i0 += 512) {
        int64_t m = (n - i0 < 512) ? n - i0 : 512;
        if_steps(r + i0, m, T, th, w, spk + i0, n, code, NULL);
        for (int64_t i = 0; i < m; i++) bad += code[i] != q[i0 + i];
    }
    return bad;
}

static int64_t fire_portable(float *r, const float *q, int64_t n, int64_t T, const float *th, const float *w,
                             uint8_t *spk) {
    return fire_chunks(r, q, n, T, th, w, spk);
}

#ifdef TB_X86
__attribute__((target("avx2"))) static int64_t fire_avx2(float *r, const float *q, int64_t n, int64_t T,
                                                         const float *th, const float *w, uint8_t *spk) {
    return fire_chunks(r, q, n, T, th, w, spk);
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) static int64_t
fire_avx512(float *r, const float *q, int64_t n, int64_t T, const float *th, const float *w, uint8_t *spk) {
    return fire_chunks(r, q, n, T, th, w, spk);
}
#endif

TB_API int64_t tb_fire(int path, float *r, const float *q, int64_t n, int64_t T, const float *th, const float *w,
                       uint8_t *spk) {
#ifdef TB_X86
    if (path == 3) return fire_avx512(r, q, n, T, th, w, spk);
    if (path == 2) return fire_avx2(r, q, n, T, th, w, spk);
#endif
    (void)path;
    return fire_portable(r, q, n, T, th, w, spk);
}

/* One row's block of n codes from s into planes d (plane j's words at d + j * stride, zeroed):
 * bit j of code i at bit i % 64 of word i / 64; codes not integers in [0, top) are counted in
 * *bad and left out. Scalar here, from code i0 on; 16 (AVX-512) or 8 (AVX2) codes a step below. */
static inline __attribute__((always_inline)) void code_block_scalar(const float *s, int64_t n, int64_t J, float top,
                                                                    uint64_t *d, int64_t stride, int64_t *bad,
                                                                    int64_t i0) {
    for (int64_t i = i0; i < n; i++) {
        float v = s[i];
        if (!(v >= 0.0f && v < top) || v != (float)(int64_t)v) {
            (*bad)++;
            continue;
        }
        uint64_t c = (uint64_t)v;
        if (!c) continue;
        for (int64_t j = 0; j < J; j++) d[j * stride + (i >> 6)] |= ((c >> j) & 1) << (i & 63);
    }
}

#ifdef TB_X86
__attribute__((target("avx512f"))) static void code_block_avx512(const float *s, int64_t n, int64_t J, float top,
                                                                 uint64_t *d, int64_t stride, int64_t *bad) {
    const __m512 zero = _mm512_setzero_ps(), hi = _mm512_set1_ps(top);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 lanes = (n - i >= 16) ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(lanes, s + i);
        __m512i c = _mm512_cvttps_epi32(v);
        __mmask16 ok = _mm512_mask_cmp_ps_mask(lanes, v, zero, _CMP_GE_OQ);
        ok = _mm512_mask_cmp_ps_mask(ok, v, hi, _CMP_LT_OQ);
        ok = _mm512_mask_cmp_ps_mask(ok, _mm512_cvtepi32_ps(c), v, _CMP_EQ_OQ);
        *bad += __builtin_popcount((unsigned)(lanes & ~ok));
        c = _mm512_maskz_mov_epi32(ok, c);
        for (int64_t j = 0; j < J; j++) {
            uint64_t m = (uint64_t)_mm512_test_epi32_mask(c, _mm512_set1_epi32(1 << j));
            if (m) d[j * stride + (i >> 6)] |= m << (i & 63);
        }
    }
}

__attribute__((target("avx2"))) static void code_block_avx2(const float *s, int64_t n, int64_t J, float top,
                                                            uint64_t *d, int64_t stride, int64_t *bad) {
    const __m256 zero = _mm256_setzero_ps(), hi = _mm256_set1_ps(top);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(s + i);
        __m256i c = _mm256_cvttps_epi32(v);
        __m256 ok = _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_GE_OQ), _mm256_cmp_ps(v, hi, _CMP_LT_OQ));
        ok = _mm256_and_ps(ok, _mm256_cmp_ps(_mm256_cvtepi32_ps(c), v, _CMP_EQ_OQ));
        *bad += 8 - __builtin_popcount((unsigned)_mm256_movemask_ps(ok));
        c = _mm256_and_si256(c, _mm256_castps_si256(ok));
        for (int64_t j = 0; j < J; j++) {
            uint64_t m = (uint64_t)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(c, (int)(31 - j))));
            if (m) d[j * stride + (i >> 6)] |= m << (i & 63);
        }
    }
    code_block_scalar(s, n, J, top, d, stride, bad, i);  /* the last n % 8 codes */
}
#endif

/* The J binary digits of non-negative integer codes q (float32 [rows, K]) as J planes of words
 * [J, rows, nb * wpb], laid out as tb_pack's; `path` as tb_terms's (3: AVX-512, 2: AVX2, else
 * portable; the vector paths for J <= 30). Returns how many values were not integers in [0, 2^J)
 * (then the planes are not to be used). */
TB_API int64_t tb_pack_code(int path, const float *q, int64_t rows, int64_t K, int64_t J, int64_t bs, int64_t wpb,
                            uint64_t *dst) {
    int64_t nb = (K + bs - 1) / bs, nw = nb * wpb, bad = 0, stride = rows * nw;
    float top = (float)((int64_t)1 << J);
    memset(dst, 0, (size_t)(J * rows * nw) * sizeof(uint64_t));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < nb; b++) {
            int64_t lo = b * bs, n = (K - lo < bs) ? K - lo : bs;
            const float *s = q + r * K + lo;
            uint64_t *d = dst + r * nw + b * wpb;
#ifdef TB_X86
            if (path == 3 && J <= 30) {
                code_block_avx512(s, n, J, top, d, stride, &bad);
                continue;
            }
            if (path == 2 && J <= 30) {
                code_block_avx2(s, n, J, top, d, stride, &bad);
                continue;
            }
#endif
            (void)path;
            code_block_scalar(s, n, J, top, d, stride, &bad, 0);
        }
    return bad;
}

/* ---------------------------------------------------------------------------------------- */
/* where the sums go: int32 terms out[b, m, o], and/or the read-out fused in                */

typedef struct {
    int32_t *out;         /* [nb, M, O] int32 terms, or NULL */
    double *cur;          /* [M, O]: sum_b gains[b, m] * out[b, m, o] in block order, or NULL */
    const double *gains;  /* [nb, M] */
    int32_t *s_out;       /* [nb, M]: the terms of column ones_col, or NULL */
    int64_t ones_col, M, O;
    int32_t *ks;          /* scratch: offsets of the nonzero words of one row and block, plane by plane */
    int64_t *start;       /* scratch: where plane j's offsets start in ks (J + 1 entries) */
    void *vec;            /* scratch of the AVX-512 path: 2 J nb wpb vectors of 64 bytes (64-byte aligned) */
    float *fin;           /* [M, o_out]: the layer's current (float)(rest + cur * al), or NULL */
    const double *lhs;    /* [M, L] and */
    const double *rhs;    /* [L, o_out]: the rest of the current, rest_reference(lhs, rhs, bias) */
    const double *bias;   /* [o_out], or NULL */
    const double *al;     /* [o_out]: the per-channel gains alpha */
    int64_t o_out, nb, L;
} sink;

/* The rest of the current of output o of row m: bias[o] + lhs[m, 0] rhs[0, o] + lhs[m, 1] rhs[1, o]
 * + ..., added left to right, each product and sum rounded once (no bias: from the first product),
 * as rest_reference() in tbnn/kernels/packed.py adds it. */
static inline __attribute__((always_inline)) double rest_of(const sink *k, int64_t m, int64_t o) {
    const double *l = k->lhs + m * k->L;
    double r = k->bias ? k->bias[o] + l[0] * k->rhs[o] : l[0] * k->rhs[o];
    for (int64_t j = 1; j < k->L; j++) r = r + l[j] * k->rhs[j * k->o_out + o];
    return r;
}

/* The current of outputs o..o+7 (those below o_out) of row m from its read-out sum cur[m, o..]:
 * (float)(rest + cur * alpha), each operation rounded once as torch.addcmul(rest, cur, alpha,
 * out=float32) rounds it (checked when the engine first uses it). */
static inline __attribute__((always_inline)) void finish(const sink *k, int64_t m, int64_t o) {
    for (int64_t i = 0; i < 8 && o + i < k->o_out; i++) {
        const double r = rest_of(k, m, o + i), c = k->cur[m * k->O + o + i] * k->al[o + i];
        k->fin[m * k->o_out + o + i] = (float)(r + c);
    }
}

/* Silent words are skipped: the nonzero words of row m in block b, as offsets k within the
 * block, plane after plane (plane j's from start[j] to start[j + 1]). */
static inline __attribute__((always_inline)) void nonzero_words(const uint64_t *X, int64_t M, int64_t J, int64_t nw,
                                                                int64_t wpb, int64_t m, int64_t b, const sink *k) {
    int64_t n = 0;
    for (int64_t j = 0; j < J; j++) {
        const uint64_t *x = X + (j * M + m) * nw + b * wpb;
        k->start[j] = n;
        for (int64_t i = 0; i < wpb; i++)
            if (x[i]) k->ks[n++] = (int32_t)i;
    }
    k->start[J] = n;
}

/* The 8 sums of outputs o..o+7 for block b and row m. The read-out adds the blocks in
 * order, each product rounded once: cur = g_0 N_0, then cur = cur + g_b N_b (b = 1, 2, ...). */
static inline __attribute__((always_inline)) void emit(const sink *k, int64_t b, int64_t m, int64_t o,
                                                       const int64_t *t) {
    if (k->out) {
        int32_t *dst = k->out + (b * k->M + m) * k->O + o;
        for (int i = 0; i < 8; i++) dst[i] = (int32_t)t[i];
    }
    if (k->cur) {
        double g = k->gains[b * k->M + m], *dst = k->cur + m * k->O + o;
        if (b == 0)
            for (int i = 0; i < 8; i++) dst[i] = (double)t[i] * g;
        else
            for (int i = 0; i < 8; i++) dst[i] = dst[i] + (double)t[i] * g;
    }
    if (k->s_out && k->ones_col >= o && k->ones_col < o + 8) k->s_out[b * k->M + m] = (int32_t)t[k->ones_col - o];
    if (k->fin && b == k->nb - 1) finish(k, m, o);
}

/* ---------------------------------------------------------------------------------------- */
/* portable path (and, built for POPCNT, the scalar x86 path)                               */

static inline __attribute__((always_inline)) void
terms_scalar(const uint64_t *X, int64_t M, int64_t J, const int64_t *wx, const uint64_t *Wt, int64_t P,
             const int64_t *wc, int64_t O, int64_t nb, int64_t wpb, const sink *snk) {
    int64_t nw = nb * wpb;
    const int32_t *ks = snk->ks;
    const int64_t *start = snk->start;
    for (int64_t m = 0; m < M; m++)
        for (int64_t b = 0; b < nb; b++) {
            nonzero_words(X, M, J, nw, wpb, m, b, snk);
            for (int64_t o = 0; o < O; o += 8) {
                int64_t tot[8];
                for (int i = 0; i < 8; i++) {
                    tot[i] = 0;
                    for (int64_t j = 0; j < J; j++) {
                        const uint64_t *x = X + (j * M + m) * nw + b * wpb;
                        for (int64_t p = 0; p < P; p++) {
                            const uint64_t *w = Wt + ((p * nw) + b * wpb) * O + o + i;
                            int64_t c = 0;
                            for (int64_t n = start[j]; n < start[j + 1]; n++)
                                c += __builtin_popcountll(x[ks[n]] & w[ks[n] * O]);
                            tot[i] += c * wx[j] * wc[p];
                        }
                    }
                }
                emit(snk, b, m, o, tot);
            }
        }
}

static void terms_portable(const uint64_t *X, int64_t M, int64_t J, const int64_t *wx, const uint64_t *Wt,
                           int64_t P, const int64_t *wc, int64_t O, int64_t nb, int64_t wpb, const sink *snk) {
    terms_scalar(X, M, J, wx, Wt, P, wc, O, nb, wpb, snk);
}

#ifdef TB_X86
__attribute__((target("popcnt")))
static void terms_popcnt(const uint64_t *X, int64_t M, int64_t J, const int64_t *wx, const uint64_t *Wt,
                         int64_t P, const int64_t *wc, int64_t O, int64_t nb, int64_t wpb, const sink *snk) {
    terms_scalar(X, M, J, wx, Wt, P, wc, O, nb, wpb, snk);
}

/* Byte counts of (x[k] & w[k, 0..7]) over the words k = ks[n0..n1) (or n0..n1 when `dense`), summed
 * in bytes over at most 31 words (8 * 31 < 256), then into 64-bit lanes c0 (outputs 0-3), c1 (4-7). */
__attribute__((target("avx2,popcnt"))) static inline __attribute__((always_inline)) void
count_avx2(const uint64_t *x, const uint64_t *w, int64_t O, const int32_t *ks, int64_t n0, int64_t n1, const int dense,
           __m256i *c0, __m256i *c1) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
    __m256i s0 = zero, s1 = zero;
    for (int64_t i0 = n0; i0 < n1; i0 += 31) {
        int64_t i1 = (i0 + 31 < n1) ? i0 + 31 : n1;
        __m256i a0 = zero, a1 = zero;
        for (int64_t n = i0; n < i1; n++) {
            int64_t k = dense ? n : ks[n];
            __m256i xv = _mm256_set1_epi64x((long long)x[k]);
            __m256i v0 = _mm256_and_si256(xv, _mm256_loadu_si256((const __m256i *)(w + k * O)));
            __m256i v1 = _mm256_and_si256(xv, _mm256_loadu_si256((const __m256i *)(w + k * O + 4)));
            a0 = _mm256_add_epi8(a0, _mm256_add_epi8(
                _mm256_shuffle_epi8(lut, _mm256_and_si256(v0, low)),
                _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v0, 4), low))));
            a1 = _mm256_add_epi8(a1, _mm256_add_epi8(
                _mm256_shuffle_epi8(lut, _mm256_and_si256(v1, low)),
                _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v1, 4), low))));
        }
        s0 = _mm256_add_epi64(s0, _mm256_sad_epu8(a0, zero));
        s1 = _mm256_add_epi64(s1, _mm256_sad_epu8(a1, zero));
    }
    *c0 = s0;
    *c1 = s1;
}

/* The 8-output passes of row m, block b; `sparse`: only the words listed in snk->ks (some are 0). */
__attribute__((target("avx2,popcnt"))) static inline __attribute__((always_inline)) void
row_block_avx2(const uint64_t *X, int64_t M, int64_t J, const int64_t *wx, const uint64_t *Wt, int64_t P,
               const int64_t *wc, int64_t O, int64_t nb, int64_t wpb, const sink *snk, int64_t m, int64_t b,
               const int sparse) {
    int64_t nw = nb * wpb;
    const __m256i zero = _mm256_setzero_si256();
    const __m256i pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const int32_t *ks = snk->ks;
    const int64_t *start = snk->start;
    for (int64_t o = 0; o < O; o += 8) {
        __m256i t0 = zero, t1 = zero;
        for (int64_t j = 0; j < J; j++) {
            const uint64_t *x = X + (j * M + m) * nw + b * wpb;
            if (sparse && start[j] == start[j + 1]) continue;
            for (int64_t p = 0; p < P; p++) {
                const uint64_t *w = Wt + ((p * nw) + b * wpb) * O + o;
                __m256i c0, c1;
                if (sparse)
                    count_avx2(x, w, O, ks, start[j], start[j + 1], 0, &c0, &c1);
                else
                    count_avx2(x, w, O, ks, 0, wpb, 1, &c0, &c1);
                int64_t f = wx[j] * wc[p];
                if (f == 1) {
                    t0 = _mm256_add_epi64(t0, c0);
                    t1 = _mm256_add_epi64(t1, c1);
                } else { /* counts and factors fit in 32 bits: signed 32 x 32 -> 64 */
                    __m256i fv = _mm256_set1_epi64x(f);
                    t0 = _mm256_add_epi64(t0, _mm256_mul_epi32(c0, fv));
                    t1 = _mm256_add_epi64(t1, _mm256_mul_epi32(c1, fv));
                }
            }
        }
        if (snk->cur && !snk->out && !(snk->ones_col >= o && snk->ones_col < o + 8)) {
            /* the read-out in vectors: sums below 2^31 -> int32 -> double, then as emit() */
            __m256d g = _mm256_set1_pd(snk->gains[b * M + m]);
            __m256d d0 = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(
                             _mm256_permutevar8x32_epi32(t0, pick))), g);
            __m256d d1 = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(
                             _mm256_permutevar8x32_epi32(t1, pick))), g);
            double *dst = snk->cur + m * O + o;
            if (b) {
                d0 = _mm256_add_pd(_mm256_loadu_pd(dst), d0);
                d1 = _mm256_add_pd(_mm256_loadu_pd(dst + 4), d1);
            }
            _mm256_storeu_pd(dst, d0);
            _mm256_storeu_pd(dst + 4, d1);
            if (snk->fin && b == nb - 1) finish(snk, m, o);
        } else {
            int64_t tot[8];
            _mm256_storeu_si256((__m256i *)tot, t0);
            _mm256_storeu_si256((__m256i *)(tot + 4), t1);
            emit(snk, b, m, o, tot);
        }
    }
}

/* AVX2: 8 outputs (two vectors of 4 words) per pass; byte counts by nibble look-up (pshufb),
 * summed in bytes over at most 31 words (8 * 31 < 256), then into 64-bit lanes (psadbw). */
__attribute__((target("avx2,popcnt")))
static void terms_avx2(const uint64_t *X, int64_t M, int64_t J, const int64_t *wx, const uint64_t *Wt,
                       int64_t P, const int64_t *wc, int64_t O, int64_t nb, int64_t wpb, const sink *snk) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t b = 0; b < nb; b++) {
            nonzero_words(X, M, J, nb * wpb, wpb, m, b, snk);
            if (snk->start[J] == J * wpb) /* no silent word: the loops without look-ups */
                row_block_avx2(X, M, J, wx, Wt, P, wc, O, nb, wpb, snk, m, b, 0);
            else
                row_block_avx2(X, M, J, wx, Wt, P, wc, O, nb, wpb, snk, m, b, 1);
        }
}

/* AVX-512 VPOPCNTDQ. Per row, the nonzero words of every block are broadcast once into vectors
 * (scratch xv, with each plane's factor wx[j] beside them in xf), grouped by their word in the
 * block (one weight load per word serves every plane); then for each 8 outputs the blocks are
 * walked in order, each block's sum t = sum_p wc[p] sum_j wx[j] popcount(x_j & w_p) made in a
 * register, and the fused read-out cur = g_0 t_0, cur = cur + g_b t_b (b = 1, 2, ...) kept in a
 * register and stored once. `shift`: every wx[j] is a power of two and xf holds its exponent
 * (a variable shift instead of a 64-bit multiply). */
typedef struct {
    __m512i *xv, *xf; /* [J * nw]: the broadcast nonzero words of a row and their plane factors */
    int32_t *gk;      /* [nw]: word offset (within its block) of each group */
    int32_t *ge;      /* [nw + 1]: where each group's entries start in xv / xf */
    int32_t *gb;      /* [nb + 1]: where each block's groups start in gk */
} row_words;

/* A block's sums t of outputs o..o+7 of row m: the int32 terms, the ones column, and the fused
 * read-out acc = g_0 t_0, acc = acc + g_b t_b (each product and sum rounded once, as emit()). */
__attribute__((target("avx512f,avx512vpopcntdq,avx512dq,avx512vl,popcnt"))) static inline __attribute__((always_inline)) void
block_done_avx512(const sink *snk, int64_t b, int64_t m, int64_t o, __m512i t, __m512d *acc) {
    const int64_t M = snk->M, O = snk->O;
    if (snk->out) /* sums below 2^31: the low 32 bits of each lane */
        _mm256_storeu_si256((__m256i *)(snk->out + (b * M + m) * O + o), _mm512_cvtepi64_epi32(t));
    if (snk->s_out && snk->ones_col >= o && snk->ones_col < o + 8) {
        int64_t tot[8];
        _mm512_storeu_si512((void *)tot, t);
        snk->s_out[b * M + m] = (int32_t)tot[snk->ones_col - o];
    }
    if (snk->gains) {
        __m512d d = _mm512_mul_pd(_mm512_cvtepi64_pd(t), _mm512_set1_pd(snk->gains[b * M + m]));
        *acc = b ? _mm512_add_pd(*acc, d) : d;
    }
}

/* Row m's outputs o..o+8n-1 (n <= 4 vectors) once every block is in acc[0..n-1]: the current as
 * finish() makes it, from the registers (cur is never written), or the read-out sums into cur.
 * The rest of the current is added term after term as rest_of() adds it, the n vectors' sums
 * interleaved (n independent chains of additions, not one after another). */
__attribute__((target("avx512f,avx512vpopcntdq,avx512dq,avx512vl,popcnt"))) static inline __attribute__((always_inline)) void
row_done_avx512(const sink *snk, int64_t m, int64_t o, const __m512d *acc, int n) {
    if (snk->fin) {
        __mmask8 lanes[4];
        __m512d r[4];
        const double *l = snk->lhs + m * snk->L;
        for (int g = 0; g < n; g++) {
            const int64_t og = o + 8 * g, nv = og >= snk->o_out ? 0 : (snk->o_out - og < 8 ? snk->o_out - og : 8);
            lanes[g] = (__mmask8)((1u << nv) - 1u);
            r[g] = _mm512_mul_pd(_mm512_set1_pd(l[0]), _mm512_maskz_loadu_pd(lanes[g], snk->rhs + og));
            if (snk->bias) r[g] = _mm512_add_pd(_mm512_maskz_loadu_pd(lanes[g], snk->bias + og), r[g]);
        }
        for (int64_t j = 1; j < snk->L; j++) {
            const __m512d lj = _mm512_set1_pd(l[j]);
            const double *rj = snk->rhs + j * snk->o_out + o;
            for (int g = 0; g < n; g++)
                r[g] = _mm512_add_pd(r[g], _mm512_mul_pd(lj, _mm512_maskz_loadu_pd(lanes[g], rj + 8 * g)));
        }
        for (int g = 0; g < n; g++) {
            if (!lanes[g]) continue;
            __m512d c = _mm512_mul_pd(acc[g], _mm512_maskz_loadu_pd(lanes[g], snk->al + o + 8 * g));
            _mm256_mask_storeu_ps(snk->fin + m * snk->o_out + o + 8 * g, lanes[g],
                                  _mm512_cvtpd_ps(_mm512_add_pd(r[g], c)));
        }
    } else if (snk->cur) {
        for (int g = 0; g < n; g++) _mm512_storeu_pd(snk->cur + m * snk->O + o + 8 * g, acc[g]);
    }
}

__attribute__((target("avx512f,avx512vpopcntdq,avx512dq,avx512vl,popcnt"))) static inline __attribute__((always_inline)) void
rows_avx512(const uint64_t *X, int64_t M, int64_t J, const int64_t *wx, const uint64_t *Wt, int64_t P,
            const int64_t *wc, int64_t O, int64_t nb, int64_t wpb, const sink *snk, const row_words *rw,
            const int shift) {
    int64_t nw = nb * wpb;
    for (int64_t m = 0; m < M; m++) {
        int64_t e = 0, g = 0;
        for (int64_t b = 0; b < nb; b++) {
            rw->gb[b] = (int32_t)g;
            for (int64_t k = 0; k < wpb; k++) {
                int64_t e0 = e;
                for (int64_t j = 0; j < J; j++) {
                    uint64_t v = X[(j * M + m) * nw + b * wpb + k];
                    if (!v) continue;
                    rw->xv[e] = _mm512_set1_epi64((long long)v);
                    rw->xf[e] = _mm512_set1_epi64(shift ? __builtin_ctzll((unsigned long long)wx[j]) : wx[j]);
                    e++;
                }
                if (e > e0) {
                    rw->gk[g] = (int32_t)k;
                    rw->ge[g] = (int32_t)e0;
                    g++;
                }
            }
        }
        rw->gb[nb] = (int32_t)g;
        rw->ge[g] = (int32_t)e;
        const __m512i *xv = rw->xv, *xf = rw->xf;
        const int32_t *gk = rw->gk, *ge = rw->ge, *gb = rw->gb;
        for (int64_t o = 0; o < O; o += 8) {
            __m512d acc = _mm512_setzero_pd();
            for (int64_t b = 0; b < nb; b++) {
                __m512i t = _mm512_setzero_si512();
                for (int64_t p = 0; p < P; p++) {
                    const uint64_t *w = Wt + (p * nw + b * wpb) * O + o;
                    __m512i tp = _mm512_setzero_si512();
                    for (int32_t q = gb[b]; q < gb[b + 1]; q++) {
                        __m512i wv = _mm512_loadu_si512((const void *)(w + (int64_t)gk[q] * O));
                        for (int32_t n = ge[q]; n < ge[q + 1]; n++) {
                            __m512i c = _mm512_popcnt_epi64(_mm512_and_si512(xv[n], wv));
                            tp = _mm512_add_epi64(tp, shift ? _mm512_sllv_epi64(c, xf[n]) : _mm512_mullo_epi64(c, xf[n]));
                        }
                    }
                    t = (wc[p] == 1) ? _mm512_add_epi64(t, tp)
                                     : _mm512_add_epi64(t, _mm512_mullo_epi64(tp, _mm512_set1_epi64(wc[p])));
                }
                block_done_avx512(snk, b, m, o, t, &acc);
            }
            row_done_avx512(snk, m, o, &acc, 1);
        }
    }
}

/* 1-bit weights (one plane of factor 1) and power-of-two plane factors, the common case: every
 * plane counted in its own register (its factor applied once per block, not once per word) and
 * NG groups of 8 outputs per pass (4, then 2, then 1; each broadcast word serves all of them).
 * The same integers as rows_avx512, summed in another order (exact). Groups hold all J planes of a word that is
 * nonzero in any plane (the others as zero vectors), so plane j of group q is xv[q * J + j]. */
__attribute__((target("avx512f,avx512vpopcntdq,avx512dq,avx512vl,popcnt"))) static inline __attribute__((always_inline)) void
planes_pass_avx512(const uint64_t *Wt, const int64_t J, int64_t O, int64_t nb, int64_t wpb,
                   const sink *snk, const row_words *rw, const __m512i *sh, int64_t m, int64_t o, const int NG) {
    __m512d acc[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
    const __m512i *xv = rw->xv;
    const int32_t *gk = rw->gk, *gb = rw->gb;
    for (int64_t b = 0; b < nb; b++) {
        __m512i a[4][8];
        for (int g = 0; g < NG; g++)
            for (int64_t j = 0; j < J; j++) a[g][j] = _mm512_setzero_si512();
        const uint64_t *w = Wt + (b * wpb) * O + o;
        for (int32_t q = gb[b]; q < gb[b + 1]; q++) {
            const uint64_t *wq = w + (int64_t)gk[q] * O;
            __m512i wv[4];
            for (int g = 0; g < NG; g++) wv[g] = _mm512_loadu_si512((const void *)(wq + 8 * g));
            for (int64_t j = 0; j < J; j++) {
                const __m512i x = xv[q * J + j];
                for (int g = 0; g < NG; g++)
                    a[g][j] = _mm512_add_epi64(a[g][j], _mm512_popcnt_epi64(_mm512_and_si512(x, wv[g])));
            }
        }
        for (int g = 0; g < NG; g++) {
            __m512i t = _mm512_sllv_epi64(a[g][0], sh[0]);
            for (int64_t j = 1; j < J; j++) t = _mm512_add_epi64(t, _mm512_sllv_epi64(a[g][j], sh[j]));
            block_done_avx512(snk, b, m, o + 8 * g, t, &acc[g]);
        }
    }
    row_done_avx512(snk, m, o, acc, NG);
}

/* planes_pass_avx512 over every word of row m, silent or not: the words read from X in order and
 * broadcast as they are used (no group list to build or follow; WPB a constant where the caller
 * passes one). The same integers, the read-out added in the same order. Written out beside
 * planes_pass_avx512 rather than as one function with a null word list: GCC 12 compiled that one
 * 9-15 % slower on both paths (the same integers; an A/B of the two builds in one process). */
__attribute__((target("avx512f,avx512vpopcntdq,avx512dq,avx512vl,popcnt"))) static inline __attribute__((always_inline)) void
dense_pass_avx512(const uint64_t *X, int64_t M, const uint64_t *Wt, const int64_t J, int64_t O, int64_t nb,
                  const int64_t wpb, const sink *snk, const __m512i *sh, int64_t m, int64_t o, const int NG) {
    __m512d acc[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
    const int64_t nw = nb * wpb, pstride = M * nw;
    const uint64_t *xr = X + m * nw;
    const uint64_t *w = Wt + o;
    for (int64_t b = 0; b < nb; b++) {
        __m512i a[4][8];
        for (int g = 0; g < NG; g++)
            for (int64_t j = 0; j < J; j++) a[g][j] = _mm512_setzero_si512();
        for (int64_t k = 0; k < wpb; k++, w += O, xr++) {
            __m512i wv[4];
            for (int g = 0; g < NG; g++) wv[g] = _mm512_loadu_si512((const void *)(w + 8 * g));
            for (int64_t j = 0; j < J; j++) {
                const __m512i x = _mm512_set1_epi64((long long)xr[j * pstride]);
                for (int g = 0; g < NG; g++)
                    a[g][j] = _mm512_add_epi64(a[g][j], _mm512_popcnt_epi64(_mm512_and_si512(x, wv[g])));
            }
        }
        for (int g = 0; g < NG; g++) {
            __m512i t = _mm512_sllv_epi64(a[g][0], sh[0]);
            for (int64_t j = 1; j < J; j++) t = _mm512_add_epi64(t, _mm512_sllv_epi64(a[g][j], sh[j]));
            block_done_avx512(snk, b, m, o + 8 * g, t, &acc[g]);
        }
    }
    row_done_avx512(snk, m, o, acc, NG);
}

/* Outputs o..o+8NG-1 of rows m0..m1-1: one tile of weights serves every row of the tile. */
__attribute__((target("avx512f,avx512vpopcntdq,avx512dq,avx512vl,popcnt"))) static inline __attribute__((always_inline)) void
dense_tile(const uint64_t *X, int64_t M, const uint64_t *Wt, const int64_t J, int64_t O, int64_t nb, const int64_t wpb,
           const sink *snk, const __m512i *sh, int64_t m0, int64_t m1, int64_t o, const int NG) {
    for (int64_t m = m0; m < m1; m++) dense_pass_avx512(X, M, Wt, J, O, nb, wpb, snk, sh, m, o, NG);
}

#define ROW_TILE 64 /* rows a tile of weights serves (dense_tile) */

__attribute__((target("avx512f,avx512vpopcntdq,avx512dq,avx512vl,popcnt"))) static inline __attribute__((always_inline)) void
rows_avx512_planes(const uint64_t *X, int64_t M, const int64_t J, const int64_t *wx, const uint64_t *Wt, int64_t O,
                   int64_t nb, int64_t wpb, const sink *snk, const row_words *rw, const int ngmax) {
    const int64_t nw = nb * wpb;
    __m512i sh[8];
    for (int64_t j = 0; j < J; j++) sh[j] = _mm512_set1_epi64(__builtin_ctzll((unsigned long long)wx[j]));
    /* Blocks of 128 inputs (two words) with at most a quarter of the rows' words silent in every
     * plane (activity of about 1 % and up at T = 4; a ragged last block's empty word counts as
     * silent): tiles of ROW_TILE rows x 32 outputs (16 at 8 planes), outputs outer, so that a
     * tile's weight words (256 nb wpb bytes) serve its rows from the L1 cache rather than every
     * row reading every weight from L2, and every word is counted (a silent one adds zeros: the
     * same integers, the read-out in the same block order). Decided from the input, not by timing. */
    int64_t silent = 0;
    for (int64_t m = 0; m < M && wpb == 2; m++)
        for (int64_t i = 0; i < nw; i++) {
            uint64_t any = 0;
            for (int64_t j = 0; j < J; j++) any |= X[(j * M + m) * nw + i];
            silent += !any;
        }
    const int dense = wpb == 2 && 4 * silent <= M * nw;
    if (dense) {
        for (int64_t m0 = 0; m0 < M; m0 += ROW_TILE) {
            const int64_t m1 = m0 + ROW_TILE < M ? m0 + ROW_TILE : M;
            int64_t o = 0;
            if (ngmax >= 4) for (; o + 32 <= O; o += 32) dense_tile(X, M, Wt, J, O, nb, 2, snk, sh, m0, m1, o, 4);
            for (; o + 16 <= O; o += 16) dense_tile(X, M, Wt, J, O, nb, 2, snk, sh, m0, m1, o, 2);
            if (o < O) dense_tile(X, M, Wt, J, O, nb, 2, snk, sh, m0, m1, o, 1);
        }
        return;
    }
    for (int64_t m = 0; m < M; m++) {
        int64_t g = 0;
        for (int64_t b = 0; b < nb; b++) {
            rw->gb[b] = (int32_t)g;
            for (int64_t k = 0; k < wpb; k++) {
                uint64_t any = 0;
                for (int64_t j = 0; j < J; j++) any |= X[(j * M + m) * nw + b * wpb + k];
                if (!any) continue; /* a word silent in every plane: skipped */
                for (int64_t j = 0; j < J; j++)
                    rw->xv[g * J + j] = _mm512_set1_epi64((long long)X[(j * M + m) * nw + b * wpb + k]);
                rw->gk[g++] = (int32_t)k;
            }
        }
        rw->gb[nb] = (int32_t)g;
        int64_t o = 0;
        if (ngmax >= 4)
            for (; o + 32 <= O; o += 32) planes_pass_avx512(Wt, J, O, nb, wpb, snk, rw, sh, m, o, 4);
        for (; o + 16 <= O; o += 16) planes_pass_avx512(Wt, J, O, nb, wpb, snk, rw, sh, m, o, 2);
        if (o < O) planes_pass_avx512(Wt, J, O, nb, wpb, snk, rw, sh, m, o, 1);
    }
}

__attribute__((target("avx512f,avx512vpopcntdq,avx512dq,avx512vl,popcnt")))
static void terms_avx512(const uint64_t *X, int64_t M, int64_t J, const int64_t *wx, const uint64_t *Wt,
                         int64_t P, const int64_t *wc, int64_t O, int64_t nb, int64_t wpb, const sink *snk) {
    int64_t nw = nb * wpb, shift = 1;
    for (int64_t j = 0; j < J; j++)
        if (wx[j] <= 0 || (wx[j] & (wx[j] - 1))) shift = 0;
    row_words rw = {(__m512i *)snk->vec, (__m512i *)snk->vec + J * nw, snk->ks, snk->ks + nw, snk->ks + 2 * nw + 1};
    /* 1-bit weights: each common plane count compiled on its own, so that the accumulators
     * a[g][j] stay in registers (a count known only at run time spilled them to memory: T = 2 ran
     * 2.2x slower than T = 4); NG x J accumulators at most 16 (J = 8: two groups a pass) */
    const int one = shift && P == 1 && wc[0] == 1;
    if (one && J == 4) /* binary spikes of T = 4 (or codes of 4 bits) */
        rows_avx512_planes(X, M, 4, wx, Wt, O, nb, wpb, snk, &rw, 4);
    else if (one && J == 1)
        rows_avx512_planes(X, M, 1, wx, Wt, O, nb, wpb, snk, &rw, 4);
    else if (one && J == 2)
        rows_avx512_planes(X, M, 2, wx, Wt, O, nb, wpb, snk, &rw, 4);
    else if (one && J == 3)
        rows_avx512_planes(X, M, 3, wx, Wt, O, nb, wpb, snk, &rw, 4);
    else if (one && J == 8)
        rows_avx512_planes(X, M, 8, wx, Wt, O, nb, wpb, snk, &rw, 2);
    else if (one && J <= 8)
        rows_avx512_planes(X, M, J, wx, Wt, O, nb, wpb, snk, &rw, 2);
    else if (shift)
        rows_avx512(X, M, J, wx, Wt, P, wc, O, nb, wpb, snk, &rw, 1);
    else
        rows_avx512(X, M, J, wx, Wt, P, wc, O, nb, wpb, snk, &rw, 0);
}
#endif

/* ---------------------------------------------------------------------------------------- */
/* the row sums S_b of the planes alone                                                      */

/* s_out[b, m] = sum_j wx[j] popcount of row m's words in block b (X as tb_terms's): S_b, the
 * terms of the weights' ones column, without the weights. */
static inline __attribute__((always_inline)) void block_sums(const uint64_t *X, int64_t M, int64_t J,
                                                             const int64_t *wx, int64_t nb, int64_t wpb,
                                                             int32_t *s_out) {
    int64_t nw = nb * wpb;
    for (int64_t m = 0; m < M; m++)
        for (int64_t b = 0; b < nb; b++) {
            int64_t tot = 0;
            for (int64_t j = 0; j < J; j++) {
                const uint64_t *x = X + (j * M + m) * nw + b * wpb;
                int64_t c = 0;
                for (int64_t k = 0; k < wpb; k++) c += __builtin_popcountll(x[k]);
                tot += c * wx[j];
            }
            s_out[b * M + m] = (int32_t)tot;
        }
}

#ifdef TB_X86
__attribute__((target("popcnt"))) static void block_sums_popcnt(const uint64_t *X, int64_t M, int64_t J,
                                                                const int64_t *wx, int64_t nb, int64_t wpb,
                                                                int32_t *s_out) {
    block_sums(X, M, J, wx, nb, wpb, s_out);
}
#endif

TB_API void tb_block_sums(int path, const uint64_t *X, int64_t M, int64_t J, const int64_t *wx, int64_t nb,
                          int64_t wpb, int32_t *s_out) {
#ifdef TB_X86
    if (path >= 1) {
        block_sums_popcnt(X, M, J, wx, nb, wpb, s_out);
        return;
    }
#endif
    (void)path;
    block_sums(X, M, J, wx, nb, wpb, s_out);
}

/* ---------------------------------------------------------------------------------------- */
/* the microbenchmark: AND + popcount at its best                                            */

/* sum_i popcount(x[i] & w[i]) over n words, `reps` times over the same words (in cache): the
 * loop with nothing else in it, four independent accumulators. n must be a multiple of 32. */
static int64_t and_popcount_scalar(const uint64_t *x, const uint64_t *w, int64_t n, int64_t reps) {
    int64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int64_t r = 0; r < reps; r++)
        for (int64_t i = 0; i < n; i += 4) {
            a0 += __builtin_popcountll(x[i] & w[i]);
            a1 += __builtin_popcountll(x[i + 1] & w[i + 1]);
            a2 += __builtin_popcountll(x[i + 2] & w[i + 2]);
            a3 += __builtin_popcountll(x[i + 3] & w[i + 3]);
        }
    return a0 + a1 + a2 + a3;
}

#ifdef TB_X86
__attribute__((target("popcnt"))) static int64_t and_popcount_popcnt(const uint64_t *x, const uint64_t *w, int64_t n,
                                                                     int64_t reps) {
    return and_popcount_scalar(x, w, n, reps);
}

__attribute__((target("avx2"))) static int64_t and_popcount_avx2(const uint64_t *x, const uint64_t *w, int64_t n,
                                                                 int64_t reps) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
    __m256i tot = zero;
    for (int64_t r = 0; r < reps; r++)
        for (int64_t i0 = 0; i0 < n; i0 += 32) { /* byte counts of 8 vectors (<= 64 per byte), then psadbw */
            __m256i a = zero;
            for (int64_t i = i0; i < i0 + 32; i += 4) {
                __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i)),
                                             _mm256_loadu_si256((const __m256i *)(w + i)));
                a = _mm256_add_epi8(a, _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(v, low)),
                    _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low))));
            }
            tot = _mm256_add_epi64(tot, _mm256_sad_epu8(a, zero));
        }
    int64_t out[4];
    _mm256_storeu_si256((__m256i *)out, tot);
    return out[0] + out[1] + out[2] + out[3];
}

__attribute__((target("avx512f,avx512vpopcntdq"))) static int64_t
and_popcount_avx512(const uint64_t *x, const uint64_t *w, int64_t n, int64_t reps) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t r = 0; r < reps; r++)
        for (int64_t i = 0; i < n; i += 32) {
            a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(_mm512_and_si512(_mm512_loadu_si512((const void *)(x + i)),
                                                                            _mm512_loadu_si512((const void *)(w + i)))));
            a1 = _mm512_add_epi64(a1, _mm512_popcnt_epi64(_mm512_and_si512(
                _mm512_loadu_si512((const void *)(x + i + 8)), _mm512_loadu_si512((const void *)(w + i + 8)))));
            a2 = _mm512_add_epi64(a2, _mm512_popcnt_epi64(_mm512_and_si512(
                _mm512_loadu_si512((const void *)(x + i + 16)), _mm512_loadu_si512((const void *)(w + i + 16)))));
            a3 = _mm512_add_epi64(a3, _mm512_popcnt_epi64(_mm512_and_si512(
                _mm512_loadu_si512((const void *)(x + i + 24)), _mm512_loadu_si512((const void *)(w + i + 24)))));
        }
    return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}
#endif

TB_API int64_t tb_and_popcount(int path, const uint64_t *x, const uint64_t *w, int64_t n, int64_t reps) {
#ifdef TB_X86
    if (path == 3) return and_popcount_avx512(x, w, n, reps);
    if (path == 2) return and_popcount_avx2(x, w, n, reps);
    if (path == 1) return and_popcount_popcnt(x, w, n, reps);
#endif
    (void)path;
    return and_popcount_scalar(x, w, n, reps);
}

/* ---------------------------------------------------------------------------------------- */
/* dispatch                                                                                  */

typedef void (*terms_fn)(const uint64_t *, int64_t, int64_t, const int64_t *, const uint64_t *, int64_t,
                         const int64_t *, int64_t, int64_t, int64_t, const sink *);

static const char *const PATHS[] = {"portable", "popcnt", "avx2", "avx512_vpopcntdq"};

/* The best path this CPU runs (3, 2, 1, 0 as in PATHS); `limit` caps it (a forced path). */
TB_API int tb_best_path(void) {
#ifdef TB_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) return 3;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")) return 2;
    if (__builtin_cpu_supports("popcnt")) return 1;
#endif
    return 0;
}

TB_API const char *tb_path_name(int path) { return (path >= 0 && path < 4) ? PATHS[path] : "none"; }

/* out [nb, M, O] int32 terms (or NULL); cur [M, O] the fused read-out sum_b gains[b, m] out[b, m, o]
 * (or NULL; gains [nb, M]); s_out [nb, M] the terms of column ones_col (or NULL); fin [M, o_out]
 * the layer's current (float)(rest + cur * al) with rest = bias + sum_j lhs[m, j] rhs[j, o] added in
 * order (rest_of(); lhs [M, L], rhs [L, o_out], bias [o_out] or NULL), or NULL; cur is then scratch,
 * NULL allowed on the AVX-512 path, which keeps it in registers; -4 when a needed buffer is missing.
 * Returns 0, or -1 for a path this CPU (or this build) cannot run, -2 for O not a multiple of 8,
 * -3 when scratch memory cannot be had. */
TB_API int tb_terms(int path, const uint64_t *X, int64_t M, int64_t J, const int64_t *wx, const uint64_t *Wt,
                    int64_t P, const int64_t *wc, int64_t O, int64_t nb, int64_t wpb, int32_t *out,
                    double *cur, const double *gains, int32_t *s_out, int64_t ones_col, float *fin,
                    const double *lhs, int64_t L, const double *rhs, const double *bias, const double *al,
                    int64_t o_out) {
    sink snk = {out, cur, gains, s_out, ones_col, M, O, NULL, NULL, NULL, fin, lhs, rhs, bias, al, o_out, nb, L};
    if (fin && (!gains || !lhs || L < 1 || !rhs || !al || (path < 3 && !cur) || o_out > O)) return -4;
    terms_fn fn = terms_portable;
    if (path < 0 || path > tb_best_path()) return -1;
    if (O % 8) return -2;
#ifdef TB_X86
    if (path == 3) fn = terms_avx512;
    else if (path == 2) fn = terms_avx2;
    else if (path == 1) fn = terms_popcnt;
#endif
    /* ks: J wpb + 1 offsets (scalar and AVX2 paths), or the AVX-512 path's groups (3 nb wpb + nb + 2) */
    size_t nks = (size_t)(J * wpb + 1) > (size_t)(3 * nb * wpb + nb + 2) ? (size_t)(J * wpb + 1)
                                                                          : (size_t)(3 * nb * wpb + nb + 2);
    snk.ks = (int32_t *)malloc(nks * sizeof(int32_t));
    snk.start = (int64_t *)malloc((size_t)(J + 1) * sizeof(int64_t));
    if (path == 3) snk.vec = aligned_alloc(64, (size_t)(2 * J * nb * wpb + 1) * 64);
    if (!snk.ks || !snk.start || (path == 3 && !snk.vec)) {
        free(snk.ks);
        free(snk.start);
        free(snk.vec);
        return -3;
    }
    fn(X, M, J, wx, Wt, P, wc, O, nb, wpb, &snk);
    free(snk.ks);
    free(snk.start);
    free(snk.vec);
    return 0;
}
