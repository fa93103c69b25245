/* The binary neuron of a simulation, compiled (tbnn.kernels.neuron): grid, codes, integrate-and-
 * fire, its check, the codes' block sums and spike counts in one pass per block (tb_neuron), and
 * the DAT read-out fitted from them in torch's order of operations (tb_dat_fit).
 *
 * Built as one translation unit after popcount.c (tbnn.kernels.build.SOURCES), whose includes,
 * TB_X86 and TB_API it uses.
 */

/* sums [2, rows, nb]: the sums of the codes and of their squares, per row and block. */
static inline __attribute__((always_inline)) void block_code_sums(float *sums, int64_t rows, int64_t K, int64_t bs,
                                                                  int64_t r, int64_t b0, float s1, float s2) {
    const int64_t nb = (K + bs - 1) / bs, b = b0 / bs;
    sums[r * nb + b] = s1;
    sums[(rows + r) * nb + b] = s2;
}

/* The block range of grid 0 (rectify: lo = 0, hi = max(tiny, max x)), 1 (unit: 0, 1) or 2
 * (minmax: min x, max x, hi + 1 where they are equal), from the block's min and max, as
 * tbnn.core.quant.fast's _grid_stats makes it; *span = hi - lo and *step = span / L. */
static inline __attribute__((always_inline)) void block_range(int grid, float mn, float mx, float tiny, float L,
                                                              float *lo, float *span, float *step) {
    float l = 0.0f, hi = 1.0f;
    if (grid == 0) {
        hi = mx > tiny ? mx : tiny;
    } else if (grid == 2) {
        l = mn;
        hi = (mx == mn) ? mx + 1.0f : mx;
    }
    *lo = l;
    *span = hi - l;
    *step = *span / L;
}

/* The binary neuron's codes and spikes in one pass over its input (tbnn.kernels.neuron).
 * x: float32 [rows, K], the grid's input; read-out blocks of bs features along K (the last one
 * shorter when bs does not divide K). Per block, as tbnn.core.quant.fast does it in torch:
 *   grid 0 (rectify): lo = 0, hi = max(tiny, max x);  grid 1 (unit): lo = 0, hi = 1;
 *   grid 2 (minmax):  lo = min x, hi = max x, then hi = hi + 1 where hi == lo.
 * Codes (into q): q = min(max(floor((u - lo) / (span / L)), 0), L - 1), L = 2^T, span = hi - lo,
 * u = max(x, 0) when relu (the rectified input of the rectify and unit grids) else x; each
 * operation one float32 operation, as torch's sub, div, floor and clamp.
 * Spikes (into spk [T, rows, K], 0/1 bytes): integrate-and-fire from v = min(max((x - lo) / span,
 * 0), 1) with the thresholds th (as tb_fire), checked against q with the step weights w.
 * Sums (into sums [2, rows, nb] unless NULL): each row's and block's sums of q and of q^2,
 * integers exact in float32 (below 2^24) whatever the order. Counts (added into counts [K]
 * unless NULL): each neuron's spikes over the rows and steps. Target (into tgt [rows, K] unless
 * NULL): torch.relu(x), x < 0 ? +0.0 : x (-0.0 kept), the read-out's relu target. Words (into
 * words [T, rows, ceil(K / 64)] unless NULL; the AVX-512 path, bs a multiple of 16): the spikes
 * packed as tb_pack packs one block (feature i: bit i % 64 of word i / 64; padding 0).
 * Returns how many membranes' weighted spikes differ from their code, or -1 when a block holds
 * a value that is not finite (nothing is then to be used: the caller takes the torch path). */
static inline __attribute__((always_inline)) int64_t neuron_rows(const float *x, int64_t rows, int64_t K, int64_t bs,
                                                                 int grid, int relu, float tiny, int64_t T,
                                                                 const float *th, const float *w, float *q,
                                                                 uint8_t *spk, float *sums, int32_t *counts,
                                                                 float *tgt) {
    int64_t bad = 0;
    const float L = (float)((int64_t)1 << T), top = L - 1.0f;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t b0 = 0; b0 < K; b0 += bs) {
            const int64_t n = (K - b0 < bs) ? K - b0 : bs;
            const float *restrict xb = x + r * K + b0;
            float mn = xb[0], mx = xb[0];
            int finite = 1;
            for (int64_t i = 0; i < n; i++) {
                const float v = xb[i];
                finite &= isfinite(v);
                mn = v < mn ? v : mn;
                mx = v > mx ? v : mx;
            }
            if (!finite) return -1;
            float lo, span, step;
            block_range(grid, mn, mx, tiny, L, &lo, &span, &step);
            float *restrict qb = q + r * K + b0;
            float s1 = 0.0f, s2 = 0.0f; /* the block's sums of q and q^2: integers, exact in any order */
            for (int64_t i0 = 0; i0 < n; i0 += 256) {
                const int64_t m = (n - i0 < 256) ? n - i0 : 256;
                float mem[256], code[256];
                for (int64_t i = 0; i < m; i++) {
                    const float xv = xb[i0 + i];
                    const float u = (relu && !(xv > 0.0f)) ? 0.0f : xv;
                    if (tgt) tgt[r * K + b0 + i0 + i] = xv < 0.0f ? 0.0f : xv;
                    float c = floorf((u - lo) / step);
                    c = c < 0.0f ? 0.0f : c;
                    c = c > top ? top : c;
                    qb[i0 + i] = c + 0.0f; /* +0.0: never a negative zero */
                    s1 += c;
                    s2 += c * c;
                    float v = (xv - lo) / span;
                    v = v < 0.0f ? 0.0f : v;
                    mem[i] = v > 1.0f ? 1.0f : v;
                }
                if_steps(mem, m, T, th, w, spk + r * K + b0 + i0, rows * K, code, counts ? counts + b0 + i0 : NULL);
                for (int64_t i = 0; i < m; i++) bad += code[i] != qb[i0 + i];
            }
            if (sums) block_code_sums(sums, rows, K, bs, r, b0, s1, s2);
        }
    }
    return bad;
}

static int64_t neuron_portable(const float *x, int64_t rows, int64_t K, int64_t bs, int grid, int relu, float tiny,
                               int64_t T, const float *th, const float *w, float *q, uint8_t *spk, float *sums,
                               int32_t *counts, float *tgt) {
    return neuron_rows(x, rows, K, bs, grid, relu, tiny, T, th, w, q, spk, sums, counts, tgt);
}

#ifdef TB_X86
/* The AVX2 and AVX-512 paths: the same float32 operations as neuron_rows, 8 or 16 lanes at a time
 * (the block range by min / max, the floor by round-toward-minus-infinity, the spikes as masks). */
__attribute__((target("avx2,fma"))) static int64_t neuron_avx2(const float *x, int64_t rows, int64_t K, int64_t bs,
                                                               int grid, int relu, float tiny, int64_t T,
                                                               const float *th, const float *w, float *q,
                                                               uint8_t *spk, float *sums, int32_t *counts,
                                                               float *tgt) {
    int64_t bad = 0;
    const float L = (float)((int64_t)1 << T);
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f), top = _mm256_set1_ps(L - 1.0f);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t b0 = 0; b0 < K; b0 += bs) {
            const int64_t n = (K - b0 < bs) ? K - b0 : bs;
            const float *xb = x + r * K + b0;
            float mn = xb[0], mx = xb[0];
            int64_t i = 0;
            __m256 vmn = _mm256_set1_ps(xb[0]), vmx = vmn, probe = zero;
            for (; i + 8 <= n; i += 8) {
                const __m256 v = _mm256_loadu_ps(xb + i);
                vmn = _mm256_min_ps(vmn, v);
                vmx = _mm256_max_ps(vmx, v);
                probe = _mm256_add_ps(probe, _mm256_mul_ps(v, zero)); /* NaN once a value is not finite */
            }
            float lane[8], pl[8];
            _mm256_storeu_ps(lane, vmn);
            for (int j = 0; j < 8; j++) mn = lane[j] < mn ? lane[j] : mn;
            _mm256_storeu_ps(lane, vmx);
            for (int j = 0; j < 8; j++) mx = lane[j] > mx ? lane[j] : mx;
            _mm256_storeu_ps(pl, probe);
            int finite = 1;
            for (int j = 0; j < 8; j++) finite &= pl[j] == 0.0f;
            for (; i < n; i++) {
                finite &= isfinite(xb[i]);
                mn = xb[i] < mn ? xb[i] : mn;
                mx = xb[i] > mx ? xb[i] : mx;
            }
            if (!finite) return -1;
            float lo, span, step;
            block_range(grid, mn, mx, tiny, L, &lo, &span, &step);
            const __m256 vlo = _mm256_set1_ps(lo), vspan = _mm256_set1_ps(span), vstep = _mm256_set1_ps(step);
            float *qb = q + r * K + b0;
            __m256 vs1 = zero, vs2 = zero;
            float *tb = tgt ? tgt + r * K + b0 : NULL;
            for (i = 0; i + 8 <= n; i += 8) {
                const __m256 xv = _mm256_loadu_ps(xb + i);
                const __m256 u = relu ? _mm256_max_ps(xv, zero) : xv;
                if (tb) _mm256_storeu_ps(tb + i, _mm256_andnot_ps(_mm256_cmp_ps(xv, zero, _CMP_LT_OQ), xv));
                __m256 c = _mm256_floor_ps(_mm256_div_ps(_mm256_sub_ps(u, vlo), vstep));
                c = _mm256_add_ps(_mm256_min_ps(_mm256_max_ps(c, zero), top), zero);
                _mm256_storeu_ps(qb + i, c);
                vs1 = _mm256_add_ps(vs1, c);
                vs2 = _mm256_add_ps(vs2, _mm256_mul_ps(c, c));
                __m256 v = _mm256_div_ps(_mm256_sub_ps(xv, vlo), vspan);
                v = _mm256_min_ps(_mm256_max_ps(v, zero), one);
                __m256 code = zero;
                for (int64_t t = 0; t < T; t++) {
                    const __m256 h = _mm256_set1_ps(th[t]);
                    const __m256 f = _mm256_cmp_ps(v, h, _CMP_GE_OQ);
                    v = _mm256_blendv_ps(v, _mm256_sub_ps(v, h), f);
                    code = _mm256_add_ps(code, _mm256_and_ps(f, _mm256_set1_ps(w[t])));
                    const int bits = _mm256_movemask_ps(f);
                    uint8_t *s = spk + (t * rows + r) * K + b0 + i;
                    for (int j = 0; j < 8; j++) s[j] = (uint8_t)((bits >> j) & 1);
                    if (counts) /* the mask is -1 where it fired */
                        _mm256_storeu_si256((__m256i *)(counts + b0 + i),
                                            _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(counts + b0 + i)),
                                                             _mm256_castps_si256(f)));
                }
                bad += __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(code, c, _CMP_NEQ_UQ)));
            }
            float s1 = 0.0f, s2 = 0.0f;
            _mm256_storeu_ps(lane, vs1);
            _mm256_storeu_ps(pl, vs2);
            for (int j = 0; j < 8; j++) {
                s1 += lane[j];
                s2 += pl[j];
            }
            for (; i < n; i++) { /* the tail of the block, element by element, with the block's range */
                const float xv = xb[i], u = (relu && !(xv > 0.0f)) ? 0.0f : xv;
                if (tb) tb[i] = xv < 0.0f ? 0.0f : xv;
                float c = floorf((u - lo) / step);
                c = c < 0.0f ? 0.0f : c;
                c = c > L - 1.0f ? L - 1.0f : c;
                qb[i] = c + 0.0f;
                s1 += c;
                s2 += c * c;
                float v = (xv - lo) / span, code = 0.0f;
                v = v < 0.0f ? 0.0f : v;
                v = v > 1.0f ? 1.0f : v;
                for (int64_t t = 0; t < T; t++) {
                    const int f = v >= th[t];
                    spk[(t * rows + r) * K + b0 + i] = (uint8_t)f;
                    if (counts) counts[b0 + i] += f;
                    v = f ? v - th[t] : v;
                    code += f ? w[t] : 0.0f;
                }
                bad += code != qb[i];
            }
            if (sums) block_code_sums(sums, rows, K, bs, r, b0, s1, s2);
        }
    }
    return bad;
}

/* 16 bits of a packed word, stored into uint64_t words (may_alias: as a char store may) */
typedef uint16_t __attribute__((may_alias)) alias16;

/* Sixteen features of one row (lanes past k untouched): codes, target, integrate-and-fire and
 * its check, spikes (bytes, and 16 bits of the packed words, steps spk_step and word_step apart),
 * counts and the block sums so far. Returns the membranes whose weighted spikes differ. */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vpopcntdq"))) static inline __attribute__((always_inline))
int64_t neuron16(const float *xb, float *qb, float *tb, uint8_t *spk, int64_t spk_step, uint16_t *wd, int64_t word_step,
                 int32_t *cnt, const __mmask16 k, int relu, const int64_t T, const __m512 *hv, const __m512 *wv,
                 __m512 vlo, __m512 vstep, __m512 vspan, __m512 *vs1, __m512 *vs2) {
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    const __m512 top = _mm512_set1_ps((float)(((int64_t)1 << T) - 1));
    const __m512 xv = _mm512_maskz_loadu_ps(k, xb);
    const __m512 u = relu ? _mm512_max_ps(xv, zero) : xv;
    if (tb) /* torch.relu: +0.0 where x < 0, else x itself (-0.0 kept) */
        _mm512_mask_storeu_ps(tb, k, _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(xv, zero, _CMP_LT_OQ), xv));
    __m512 c = _mm512_roundscale_ps(_mm512_div_ps(_mm512_sub_ps(u, vlo), vstep), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    c = _mm512_add_ps(_mm512_min_ps(_mm512_max_ps(c, zero), top), zero);
    _mm512_mask_storeu_ps(qb, k, c);
    *vs1 = _mm512_mask_add_ps(*vs1, k, *vs1, c);
    *vs2 = _mm512_mask_add_ps(*vs2, k, *vs2, _mm512_mul_ps(c, c));
    __m512 v = _mm512_div_ps(_mm512_sub_ps(xv, vlo), vspan);
    v = _mm512_min_ps(_mm512_max_ps(v, zero), one);
    __m512 code = zero;
    const __m128i ones8 = _mm_set1_epi8(1);
    for (int64_t t = 0; t < T; t++) {
        const __mmask16 f = _mm512_cmp_ps_mask(v, hv[t], _CMP_GE_OQ);
        v = _mm512_mask_sub_ps(v, f, v, hv[t]);
        code = _mm512_mask_add_ps(code, f, code, wv[t]);
        _mm_mask_storeu_epi8(spk + t * spk_step, k, _mm_maskz_mov_epi8(f, ones8));
        if (wd) *(alias16 *)(wd + t * word_step) = (uint16_t)(f & k); /* (may_alias: the words are uint64_t) */
    }
    if (cnt) /* the spikes of each neuron: the 1 bits of its code */
        _mm512_mask_storeu_epi32(cnt, k, _mm512_add_epi32(_mm512_maskz_loadu_epi32(k, cnt),
                                                          _mm512_popcnt_epi32(_mm512_cvttps_epi32(c))));
    return __builtin_popcount((unsigned)(_mm512_cmp_ps_mask(code, c, _CMP_NEQ_UQ) & k));
}

/* T a constant where the caller passes one (T = 4, the common case): the steps unrolled and their
 * thresholds and weights broadcast once (with T known only at run time, the step loop's branches
 * and reloads made the pass 1.6x slower at W = 256). */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vpopcntdq"))) static inline __attribute__((always_inline))
int64_t neuron_avx512_steps(const float *x, int64_t rows, int64_t K, int64_t bs, int grid, int relu, float tiny,
                            const int64_t T, const float *th, const float *w, float *q, uint8_t *spk, float *sums,
                            int32_t *counts, float *tgt, uint64_t *words) {
    const int64_t nw = (K + 63) / 64; /* words per row and step; 16 features a uint16_t of them */
    const int64_t pad = 4 * nw - ((K + 15) >> 4); /* uint16_t parts of the last word past K */
    int64_t bad = 0;
    const float L = (float)((int64_t)1 << T);
    const __m512 zero = _mm512_setzero_ps();
    __m512 hv[24], wv[24];
    for (int64_t t = 0; t < T; t++) {
        hv[t] = _mm512_set1_ps(th[t]);
        wv[t] = _mm512_set1_ps(w[t]);
    }
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t b0 = 0; b0 < K; b0 += bs) {
            const int64_t n = (K - b0 < bs) ? K - b0 : bs;
            const float *xb = x + r * K + b0;
            const __m512 first = _mm512_set1_ps(xb[0]);
            __m512 vmn = first, vmx = first, probe = zero;
            for (int64_t i = 0; i < n; i += 16) {
                const __mmask16 k = (n - i >= 16) ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
                const __m512 v = _mm512_mask_loadu_ps(first, k, xb + i); /* lanes past the block: its first value */
                vmn = _mm512_min_ps(vmn, v);
                vmx = _mm512_max_ps(vmx, v);
                probe = _mm512_add_ps(probe, _mm512_mul_ps(v, zero)); /* NaN once a value is not finite */
            }
            if (_mm512_cmp_ps_mask(probe, zero, _CMP_NEQ_UQ)) return -1;
            float lo, span, step;
            block_range(grid, _mm512_reduce_min_ps(vmn), _mm512_reduce_max_ps(vmx), tiny, L, &lo, &span, &step);
            const __m512 vlo = _mm512_set1_ps(lo), vspan = _mm512_set1_ps(span), vstep = _mm512_set1_ps(step);
            float *qb = q + r * K + b0;
            __m512 vs1 = zero, vs2 = zero;
            /* the block's outputs (NULL where not asked for) */
            float *tb = tgt ? tgt + r * K + b0 : NULL;
            uint8_t *sb = spk + r * K + b0;
            uint16_t *wb = words ? (uint16_t *)(words + r * nw) + (b0 >> 4) : NULL;
            int32_t *cb = counts ? counts + b0 : NULL;
            /* whole vectors with the masks constant, so that the loads and stores are plain ones: with
             * the mask known only at run time the pass took 1.4x as long (105 against 76 us for
             * 256 x 256, Intel Xeon model 207); then the block's last, partial vector */
#define TB_NEURON16(i, mask)                                                                                     \
    neuron16(xb + (i), qb + (i), tb ? tb + (i) : NULL, sb + (i), rows * K, wb ? wb + ((i) >> 4) : NULL, rows * nw * 4, \
             cb ? cb + (i) : NULL, (mask), relu, T, hv, wv, vlo, vstep, vspan, &vs1, &vs2)
            int64_t i = 0;
            for (; i + 16 <= n; i += 16) bad += TB_NEURON16(i, (__mmask16)0xFFFF);
            if (i < n) bad += TB_NEURON16(i, (__mmask16)((1u << (n - i)) - 1u));
#undef TB_NEURON16
            if (sums) block_code_sums(sums, rows, K, bs, r, b0, _mm512_reduce_add_ps(vs1), _mm512_reduce_add_ps(vs2));
        }
        for (int64_t t = 0; t < T && words && pad; t++) /* the last word's padding */
            memset((uint16_t *)(words + (t * rows + r) * nw) + ((K + 15) >> 4), 0, (size_t)pad * 2);
    }
    return bad;
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vpopcntdq"))) static int64_t
neuron_avx512(const float *x, int64_t rows, int64_t K, int64_t bs, int grid, int relu, float tiny, int64_t T,
              const float *th, const float *w, float *q, uint8_t *spk, float *sums, int32_t *counts, float *tgt,
              uint64_t *words) {
    if (T == 4) return neuron_avx512_steps(x, rows, K, bs, grid, relu, tiny, 4, th, w, q, spk, sums, counts, tgt, words);
    return neuron_avx512_steps(x, rows, K, bs, grid, relu, tiny, T, th, w, q, spk, sums, counts, tgt, words);
}
#endif

TB_API int64_t tb_neuron(int path, const float *x, int64_t rows, int64_t K, int64_t bs, int grid, int relu,
                         float tiny, int64_t T, const float *th, const float *w, float *q, uint8_t *spk, float *sums,
                         int32_t *counts, float *tgt, uint64_t *words) {
    if (bs < 1 || T < 1 || T > 24 || grid < 0 || grid > 2 || (words && (path != 3 || bs % 16))) return -2;
#ifdef TB_X86
    if (path == 3) return neuron_avx512(x, rows, K, bs, grid, relu, tiny, T, th, w, q, spk, sums, counts, tgt, words);
    if (path == 2) return neuron_avx2(x, rows, K, bs, grid, relu, tiny, T, th, w, q, spk, sums, counts, tgt);
#endif
    (void)path;
    return neuron_portable(x, rows, K, bs, grid, relu, tiny, T, th, w, q, spk, sums, counts, tgt);
}

/* The DAT read-out of a binary neuron layer from its codes, as torch computes it ------------ */

typedef float v8f __attribute__((vector_size(32)));

static inline v8f load8(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline int64_t ceil_log2(int64_t x) {
    int64_t r = 0;
    while (((int64_t)1 << r) < x) r++;
    return r;
}

typedef int32_t v8i __attribute__((vector_size(32)));

/* The target t = max(x, 0) (trelu) or x of 8 features, and t times their codes q. */
static inline __attribute__((always_inline)) void target8(const float *x, const float *q, int trelu, v8f *t, v8f *qt) {
    const v8f zero = {0, 0, 0, 0, 0, 0, 0, 0};
    v8f v = load8(x);
    if (trelu) v = (v8f)((v8i)(v > zero) & (v8i)v); /* +0 where x <= 0 */
    *t = v;
    *qt = load8(q) * v;
}

/* The sums of t and of q t over a block's n features in the order of torch's CPU sum along a
 * contiguous last axis (ATen's vectorised inner sum with 8-lane vectors: the vectors in 4
 * interleaved accumulators cascaded over 4 levels, the leftover vectors into the first, the
 * accumulators added in order, then the scalar tail and the 8 lanes added in order to 0).
 * Each addition is one float32 addition, so where this order is torch's the sums are its bits
 * (checked once per process). */
static inline __attribute__((always_inline)) void torch_sums(const float *x, const float *q, int64_t n, int trelu,
                                                              float *st, float *sqt) {
    const int64_t nv = n / 8, size_ilp = nv / 4;
    const v8f zero = {0, 0, 0, 0, 0, 0, 0, 0};
    v8f a[4][4], c[4][4], t, qt; /* a: sums of t, c: sums of q t; [level][accumulator] */
    for (int j = 0; j < 4; j++)
        for (int k = 0; k < 4; k++) a[j][k] = c[j][k] = zero;
    int64_t level_power = ceil_log2(size_ilp) / 4;
    if (level_power < 4) level_power = 4;
    const int64_t level_step = (int64_t)1 << level_power, level_mask = level_step - 1;
    int64_t i = 0;
    while (i + level_step <= size_ilp) {
        for (int64_t j = 0; j < level_step; j++, i++)
            for (int k = 0; k < 4; k++) {
                target8(x + (i * 4 + k) * 8, q + (i * 4 + k) * 8, trelu, &t, &qt);
                a[0][k] += t;
                c[0][k] += qt;
            }
        for (int j = 1; j < 4; j++) {
            for (int k = 0; k < 4; k++) {
                a[j][k] += a[j - 1][k];
                c[j][k] += c[j - 1][k];
                a[j - 1][k] = c[j - 1][k] = zero;
            }
            if ((i & (level_mask << (j * level_power))) != 0) break;
        }
    }
    for (; i < size_ilp; i++)
        for (int k = 0; k < 4; k++) {
            target8(x + (i * 4 + k) * 8, q + (i * 4 + k) * 8, trelu, &t, &qt);
            a[0][k] += t;
            c[0][k] += qt;
        }
    for (int j = 1; j < 4; j++)
        for (int k = 0; k < 4; k++) {
            a[0][k] += a[j][k];
            c[0][k] += c[j][k];
        }
    for (int64_t v = size_ilp * 4; v < nv; v++) {
        target8(x + v * 8, q + v * 8, trelu, &t, &qt);
        a[0][0] += t;
        c[0][0] += qt;
    }
    for (int k = 1; k < 4; k++) {
        a[0][0] += a[0][k];
        c[0][0] += c[0][k];
    }
    float s1 = 0.0f, s2 = 0.0f;
    for (int64_t e = nv * 8; e < n; e++) {
        const float tv = (trelu && !(x[e] > 0.0f)) ? 0.0f : x[e];
        s1 += tv;
        s2 += q[e] * tv;
    }
    for (int l = 0; l < 8; l++) {
        s1 += a[0][0][l];
        s2 += c[0][0][l];
    }
    *st = s1;
    *sqt = s2;
}

/* gain, offset [rows, nb] of the ridge read-out of codes q (float32 [rows, K]) onto the target
 * t = max(x, 0) (trelu) or x, per block of bs features, with the block sums of q and q^2 from
 * tb_neuron (sums [2, rows, nb]), lam > 0, as tbnn.core.quant.fast's _fit_sums makes them in
 * torch: qbar = sq / n, tbar = st / n, cov = sqt / n - qbar tbar, var = sqq / n - qbar qbar
 * (clamped at 0 unless the codes are 0/1, levels2), gain = cov * (1 / (var + lam)), offset =
 * tbar - gain qbar, each a float32 operation, the three torch.addcmul fused multiply-adds
 * (rounded once, as torch's vectorised addcmul rounds them here; checked once per process); st
 * and sqt are summed in torch's order (torch_sums). Only for blocks of at least 8 features. */
static inline __attribute__((always_inline)) void dat_fit_rows(const float *x, const float *q, const float *sums,
                                                                int64_t rows, int64_t K, int64_t bs, int trelu,
                                                                float lam, int levels2, float *gain, float *offset) {
    const int64_t nb = (K + bs - 1) / bs;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < nb; b++) {
            const int64_t b0 = b * bs, n = (K - b0 < bs) ? K - b0 : bs;
            float st, sqt;
            torch_sums(x + r * K + b0, q + r * K + b0, n, trelu, &st, &sqt);
            const float fn = (float)n, sq = sums[r * nb + b], sqq = sums[(rows + r) * nb + b];
            const float qbar = sq / fn, tbar = st / fn;
            const float cov = fmaf(-qbar, tbar, sqt / fn);
            float var;
            if (levels2) {
                var = fmaf(-qbar, qbar, qbar);
            } else {
                var = fmaf(-qbar, qbar, sqq / fn);
                var = var < 0.0f ? 0.0f : var;
            }
            const float inv = 1.0f / (var + lam), g = cov * inv;
            gain[r * nb + b] = g;
            offset[r * nb + b] = fmaf(-g, qbar, tbar);
        }
}

static void dat_fit_portable(const float *x, const float *q, const float *sums, int64_t rows, int64_t K, int64_t bs,
                             int trelu, float lam, int levels2, float *gain, float *offset) {
    dat_fit_rows(x, q, sums, rows, K, bs, trelu, lam, levels2, gain, offset);
}

#ifdef TB_X86
__attribute__((target("avx2,fma"))) static void dat_fit_avx2(const float *x, const float *q, const float *sums,
                                                             int64_t rows, int64_t K, int64_t bs, int trelu, float lam,
                                                             int levels2, float *gain, float *offset) {
    dat_fit_rows(x, q, sums, rows, K, bs, trelu, lam, levels2, gain, offset);
}
#endif

TB_API void tb_dat_fit(int path, const float *x, const float *q, const float *sums, int64_t rows, int64_t K, int64_t bs,
                       int trelu, float lam, int levels2, float *gain, float *offset) {
#ifdef TB_X86
    if (path >= 2) {
        dat_fit_avx2(x, q, sums, rows, K, bs, trelu, lam, levels2, gain, offset);
        return;
    }
#endif
    (void)path;
    dat_fit_portable(x, q, sums, rows, K, bs, trelu, lam, levels2, gain, offset);
}
