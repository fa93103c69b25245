/* A linear layer's whole input current in one call (tbnn.kernels.current): the read-out's
 * float64 operands made from the code's float32 gains and offsets, the row sums S_b, the rest of
 * the current and the fused AND + popcount read-out of tb_terms.
 *
 * Built as one translation unit after popcount.c (tbnn.kernels.build.SOURCES), whose tb_terms,
 * tb_block_sums, TB_API and includes it uses.
 */

/* fin [M, o_out] = (float)(rest + alpha * sum_b g_b N_b), the current tb_terms makes from
 *   gains[b, m] = (double)gain[m, b]                                  (float32 [M, nb], each exact)
 *   lhs[m]      = [(double)offset[m, 0], ..., (double)offset[m, nb - 1], sa[m]]
 *   sa[m]       = ((0 + g_0 S_0) + g_1 S_1) + ... + g_{nb-1} S_{nb-1}  (S_b: tb_block_sums)
 * so lhs is torch.cat([c, (a * s).sum(0)], 1) of the engine's combine, the sum over the blocks
 * in the order of torch's CPU sum over an outer dimension of fewer than 16 rows (one accumulator
 * from 0, in order; checked once per process by tbnn.kernels.current.agrees); rhs [nb + 1, o_out],
 * bias [o_out] or NULL, al [o_out] as tb_terms's. Returns tb_terms's codes, -3 when scratch
 * memory cannot be had, -5 for nb outside 1..15. */
/* One block of scratch per thread (the operands, the row sums and, off AVX-512, tb_terms's sums),
 * kept between calls and grown as needed: no allocation per layer and batch. */
static _Thread_local void *tb_scratch_block = NULL;
static _Thread_local size_t tb_scratch_bytes = 0;

static void *thread_scratch(size_t bytes) {
    if (bytes > tb_scratch_bytes) {
        free(tb_scratch_block);
        tb_scratch_block = malloc(bytes);
        tb_scratch_bytes = tb_scratch_block ? bytes : 0;
    }
    return tb_scratch_block;
}

TB_API int tb_linear_current(int path, const uint64_t *X, int64_t M, int64_t J, const int64_t *wx,
                             const uint64_t *Wt, int64_t P, const int64_t *wc, int64_t O, int64_t nb, int64_t wpb,
                             const float *gain, const float *offset, const double *rhs, const double *bias,
                             const double *al, int64_t o_out, float *fin) {
    if (nb < 1 || nb > 15) return -5;
    const int64_t L = nb + 1, ncur = path < 3 ? M * O : 0; /* cur: scratch of tb_terms off AVX-512 */
    double *gains = (double *)thread_scratch((size_t)(nb * M + L * M + ncur) * sizeof(double) +
                                             (size_t)(nb * M) * sizeof(int32_t));
    if (!gains) return -3;
    double *lhs = gains + nb * M, *cur = path < 3 ? lhs + L * M : NULL;
    int32_t *s = (int32_t *)(lhs + L * M + ncur);
    tb_block_sums(path, X, M, J, wx, nb, wpb, s);
    for (int64_t m = 0; m < M; m++) {
        double sa = 0.0;
        for (int64_t b = 0; b < nb; b++) {
            const double g = (double)gain[m * nb + b];
            gains[b * M + m] = g;
            lhs[m * L + b] = (double)offset[m * nb + b];
            sa = sa + g * (double)s[b * M + m];
        }
        lhs[m * L + nb] = sa;
    }
    return tb_terms(path, X, M, J, wx, Wt, P, wc, O, nb, wpb, NULL, cur, gains, NULL, o_out, fin, lhs, L, rhs, bias,
                    al, o_out);
}
