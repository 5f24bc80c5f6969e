/* Argument checks of the matrix product, the same for every backend (the
 * CUDA module compiles this file too, so both refuse the same calls with
 * the same messages). */
#include "core/backend.h"

/* Sizes, leading dimensions and flags always; pointers unless there is
 * nothing to compute (batch_empty: a batch of 0). */
static vit_status check_2d(const char *fn, const vit_gemm *g, bool batch_empty) {
    VIT_CHECK_ARG(g != NULL, "%s: g is NULL", fn);
    VIT_CHECK_ARG(g->M >= 0, "%s: M is negative (%d)", fn, g->M);
    VIT_CHECK_ARG(g->N >= 0, "%s: N is negative (%d)", fn, g->N);
    VIT_CHECK_ARG(g->K >= 0, "%s: K is negative (%d)", fn, g->K);
    const int awidth = g->trans_a ? g->M : g->K, bwidth = g->trans_b ? g->K : g->N;
    VIT_CHECK_ARG(g->lda >= (awidth > 1 ? awidth : 1), "%s: lda (%d) is less than %s (%d)%s", fn, g->lda,
                  g->trans_a ? "M" : "K", awidth, g->trans_a ? " with trans_a" : "");
    VIT_CHECK_ARG(g->ldb >= (bwidth > 1 ? bwidth : 1), "%s: ldb (%d) is less than %s (%d)%s", fn, g->ldb,
                  g->trans_b ? "K" : "N", bwidth, g->trans_b ? " with trans_b" : "");
    VIT_CHECK_ARG(g->ldc >= (g->N > 1 ? g->N : 1), "%s: ldc (%d) is less than N (%d)", fn, g->ldc, g->N);
    VIT_CHECK_ARG(g->epilogue == VIT_EPILOGUE_NONE || g->epilogue == VIT_EPILOGUE_GELU,
                  "%s: epilogue %d is not a vit_epilogue", fn, (int)g->epilogue);
    VIT_CHECK_ARG(!g->accumulate || (g->bias == NULL && g->epilogue == VIT_EPILOGUE_NONE),
                  "%s: accumulate cannot be combined with %s", fn, g->bias ? "a bias" : "an epilogue");
    const bool empty_out = batch_empty || g->M == 0 || g->N == 0;
    VIT_CHECK_ARG(empty_out || g->C != NULL, "%s: C is NULL", fn);
    VIT_CHECK_ARG(empty_out || g->K == 0 || g->A != NULL, "%s: A is NULL", fn);
    VIT_CHECK_ARG(empty_out || g->K == 0 || g->B != NULL, "%s: B is NULL", fn);
    return VIT_OK;
}

/* Do the batch's C items cover disjoint elements? Checked as oneDNN does:
 * the non-trivial dimensions sorted by stride must each step over the whole
 * extent of the previous one. */
static bool c_items_disjoint(int batch, ptrdiff_t stride_c, int M, int N, int ldc) {
    int64_t dim[3] = {batch, M, N}, str[3] = {stride_c, ldc, 1};
    int idx[3], n = 0;
    for (int i = 0; i < 3; i++)
        if (dim[i] > 1) idx[n++] = i;
    for (int i = 1; i < n; i++) /* insertion sort by stride */
        for (int j = i; j > 0 && str[idx[j]] < str[idx[j - 1]]; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    if (n > 0 && str[idx[0]] < 1) return false; /* a zero stride repeats elements */
    for (int i = 1; i < n; i++)
        if (str[idx[i]] < str[idx[i - 1]] * dim[idx[i - 1]]) return false;
    return true;
}

vit_status vit_gemm_check(const char *fn, const vit_gemm *g, int batch, ptrdiff_t stride_a, ptrdiff_t stride_b,
                          ptrdiff_t stride_c) {
    VIT_CHECK_ARG(batch >= 0, "%s: batch is negative (%d)", fn, batch);
    VIT_TRY(check_2d(fn, g, batch == 0));
    VIT_CHECK_ARG(stride_a >= 0, "%s: stride_a is negative (%td)", fn, stride_a);
    VIT_CHECK_ARG(stride_b >= 0, "%s: stride_b is negative (%td)", fn, stride_b);
    VIT_CHECK_ARG(stride_c >= 0, "%s: stride_c is negative (%td)", fn, stride_c);
    if (batch == 0 || g->M == 0 || g->N == 0) return VIT_OK;
    VIT_CHECK_ARG(batch == 1 || c_items_disjoint(batch, stride_c, g->M, g->N, g->ldc),
                  "%s: stride_c (%td) makes the %d C items [%d x %d, ldc %d] overlap", fn, stride_c, batch, g->M,
                  g->N, g->ldc);
    return VIT_OK;
}
