/*
 * The CPU backend's gemm / gemm_batched entries against a double-precision
 * reference: every trans combination, leading dimensions wider than the rows,
 * accumulate, bias, the exact-erf GELU epilogue, strided and broadcast
 * batches, the empty cases, argument validation, the primitive cache,
 * packed weights (b_stamp) and concurrent threads (one backend each, as one
 * context each).
 */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "cpu/cpu.h"
#include "isa_level.h"

#define SENTINEL 1234.5f

/* The calling thread's backend (its primitive cache), made on first use. */
static _Thread_local vit_backend *t_backend;

static vit_backend *backend(void) {
    if (!t_backend) ck_assert_int_eq(vit_backend_create_cpu(&t_backend), VIT_OK);
    return t_backend;
}

static void release_backend(void) {
    vit_backend_release(t_backend);
    t_backend = NULL;
}

static vit_status gemm(const vit_gemm *g) { return backend()->ops->gemm(backend(), g); }

static vit_status gemm_batched(const vit_gemm *g, int batch, ptrdiff_t sa, ptrdiff_t sb, ptrdiff_t sc) {
    return backend()->ops->gemm_batched(backend(), g, batch, sa, sb, sc);
}

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) * (2.0 / 16777216.0) - 1.0);
}

static float *rand_buf(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

static double gelu_ref(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

/* Floats a row-major operand of `rows` rows and leading dimension ld spans. */
static size_t span(int rows, int width, int ld) {
    return rows == 0 || width == 0 ? 0 : (size_t)(rows - 1) * ld + width;
}

/* Check g->C (already computed) against the reference made from C0, the
 * contents of C before the call (same layout as C). With check_pad, elements
 * between the rows (ld padding) must still equal C0. Returns the number of
 * bad elements, printing the first few. */
static int check_result(const vit_gemm *g, const float *C0, bool check_pad, const char *what) {
    int bad = 0;
    for (int m = 0; m < g->M; m++) {
        for (int n = 0; n < g->N; n++) {
            double acc = 0.0, scale = 0.0;
            for (int k = 0; k < g->K; k++) {
                double a = g->trans_a ? g->A[(size_t)k * g->lda + m] : g->A[(size_t)m * g->lda + k];
                double b = g->trans_b ? g->B[(size_t)n * g->ldb + k] : g->B[(size_t)k * g->ldb + n];
                acc += a * b;
                scale += fabs(a * b);
            }
            size_t ci = (size_t)m * g->ldc + n;
            if (g->accumulate) {
                acc += C0[ci];
                scale += fabs(C0[ci]);
            }
            if (g->bias) {
                acc += g->bias[n];
                scale += fabs(g->bias[n]);
            }
            if (g->epilogue == VIT_EPILOGUE_GELU) acc = gelu_ref(acc);
            double tol = 1e-5 * sqrt((double)(g->K > 1 ? g->K : 1)) * (scale > 1.0 ? scale : 1.0);
            double got = g->C[ci];
            if (!(fabs(got - acc) <= tol)) {
                if (bad < 5)
                    fprintf(stderr, "%s: M=%d N=%d K=%d ta=%d tb=%d: C[%d,%d] = %.9g, expected %.9g (tol %.3g)\n",
                            what, g->M, g->N, g->K, g->trans_a, g->trans_b, m, n, got, acc, tol);
                bad++;
            }
        }
        for (int n = g->N; check_pad && n < g->ldc && m + 1 < g->M; n++) {
            size_t ci = (size_t)m * g->ldc + n;
            if (g->C[ci] != C0[ci]) {
                if (bad < 5) fprintf(stderr, "%s: ld padding C[%d,%d] was written\n", what, m, n);
                bad++;
            }
        }
    }
    return bad;
}

/* One product with fresh operands; pad widens every leading dimension. */
static void run_case(int M, int N, int K, bool ta, bool tb, bool acc, bool bias, vit_epilogue ep, int pad,
                     const char *what) {
    vit_gemm g = {0};
    g.M = M, g.N = N, g.K = K, g.trans_a = ta, g.trans_b = tb, g.accumulate = acc, g.epilogue = ep;
    g.lda = (ta ? M : K) + pad;
    g.ldb = (tb ? K : N) + pad;
    g.ldc = N + pad;
    if (g.lda < 1) g.lda = 1;
    if (g.ldb < 1) g.ldb = 1;
    if (g.ldc < 1) g.ldc = 1;
    size_t na = span(ta ? K : M, ta ? M : K, g.lda), nb = span(tb ? N : K, tb ? K : N, g.ldb);
    size_t nc = span(M, N, g.ldc);
    float *A = rand_buf(na), *B = rand_buf(nb), *C = rand_buf(nc), *C0 = malloc((nc ? nc : 1) * sizeof *C0);
    float *bv = bias ? rand_buf((size_t)N) : NULL;
    memcpy(C0, C, nc * sizeof *C);
    g.A = A, g.B = B, g.C = C, g.bias = bv;
    vit_status st = gemm(&g);
    ck_assert_msg(st == VIT_OK, "%s: status %d: %s", what, (int)st, vit_last_error());
    ck_assert_int_eq(check_result(&g, C0, true, what), 0);
    free(A), free(B), free(C), free(C0), free(bv);
}

static const int odd_sizes[] = {1, 3, 17, 65, 197};
#define NSIZES ((int)(sizeof odd_sizes / sizeof odd_sizes[0]))

/* _i runs over the four trans combinations. */
START_TEST(test_trans_odd_sizes) {
    bool ta = _i & 1, tb = _i & 2;
    for (int a = 0; a < NSIZES; a++)
        for (int b = 0; b < NSIZES; b++)
            for (int c = 0; c < NSIZES; c++) {
                int pad = (a + b + c) % 2 ? 5 : 0;
                run_case(odd_sizes[a], odd_sizes[b], odd_sizes[c], ta, tb, false, false, VIT_EPILOGUE_NONE, pad,
                         "plain");
            }
}
END_TEST

START_TEST(test_accumulate) {
    bool ta = _i & 1, tb = _i & 2;
    run_case(65, 17, 197, ta, tb, true, false, VIT_EPILOGUE_NONE, 0, "accumulate");
    run_case(197, 65, 3, ta, tb, true, false, VIT_EPILOGUE_NONE, 7, "accumulate ld");
    run_case(1, 1, 1, ta, tb, true, false, VIT_EPILOGUE_NONE, 2, "accumulate 1");
    /* ViT-like weight gradient shape: dW[out, in] += dY^T X */
    run_case(96, 288, 640, true, false, true, false, VIT_EPILOGUE_NONE, 0, "dW");
}
END_TEST

START_TEST(test_bias_gelu) {
    bool ta = _i & 1, tb = _i & 2;
    run_case(17, 65, 33, ta, tb, false, true, VIT_EPILOGUE_NONE, 0, "bias");
    run_case(197, 3, 65, ta, tb, false, true, VIT_EPILOGUE_NONE, 4, "bias ld");
    run_case(65, 197, 17, ta, tb, false, true, VIT_EPILOGUE_GELU, 0, "bias gelu");
    run_case(3, 17, 197, ta, tb, false, false, VIT_EPILOGUE_GELU, 3, "gelu");
    run_case(1, 1, 1, ta, tb, false, true, VIT_EPILOGUE_GELU, 0, "bias gelu 1");
    /* a ViT MLP fc1: [tokens, D] x [4D, D]^T + b, GELU */
    run_case(394, 384, 96, false, true, false, true, VIT_EPILOGUE_GELU, 0, "fc1");
}
END_TEST

/* Tall products with a small B run in row slices (cpu/matmul.c): every
 * slice boundary, a ragged last slice, a transposed A (sliced along its
 * columns), padding, bias, GELU and accumulation. */
START_TEST(test_row_slices) {
    bool ta = _i & 1, tb = _i & 2;
    run_case(1700, 24, 40, ta, tb, false, false, VIT_EPILOGUE_NONE, 3, "slices");
    run_case(3203, 33, 17, ta, tb, false, true, VIT_EPILOGUE_GELU, 0, "slices bias gelu");
    run_case(2400, 17, 24, ta, tb, true, false, VIT_EPILOGUE_NONE, 5, "slices accumulate");
}
END_TEST

/* Tall products in row slices and weight gradients (dW += dY^T X over many
 * tokens) in column bands: with more than one thread each thread runs its
 * own slices or band as one-thread products (parts_by_thread). Up to as many
 * threads as slices (of 800 rows or fewer), a slice's bits are those of one
 * thread; with more threads every slice runs on all of them, which oneDNN
 * may sum in another order (AVX2: 656 x 33 x 17 on 7 threads). A band sums
 * in another order than the whole product on one thread. At every count the
 * result is right and the same bits call after call; a stamped B is read
 * packed. */
START_TEST(test_parts_by_thread) {
    const int saved = omp_get_max_threads();
    /* same: up to this many threads the bits of one thread */
    static const struct { int M, N, K; bool ta, tb, acc, bias, stamp; vit_epilogue ep; int same; } cases[] = {
        {3203, 33, 17, false, false, false, true, false, VIT_EPILOGUE_GELU, 5},
        {2400, 17, 24, false, false, true, false, false, VIT_EPILOGUE_NONE, 3},
        {6400, 96, 160, false, true, false, true, true, VIT_EPILOGUE_NONE, 8}, /* a small model's layer */
        {1700, 96, 160, false, true, false, true, true, VIT_EPILOGUE_GELU, 3},
        {96, 384, 6400, true, false, true, false, false, VIT_EPILOGUE_NONE, 1}, /* its weight gradient */
        {288, 97, 3203, true, false, true, false, false, VIT_EPILOGUE_NONE, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int M = cases[c].M, N = cases[c].N, K = cases[c].K;
        vit_gemm g = {.M = M, .N = N, .K = K, .lda = cases[c].ta ? M : K, .trans_a = cases[c].ta,
                      .ldb = cases[c].tb ? K : N, .trans_b = cases[c].tb, .ldc = N, .accumulate = cases[c].acc,
                      .epilogue = cases[c].ep, .b_stamp = cases[c].stamp ? vit_stamp_next() : 0};
        const size_t nc = (size_t)M * N * sizeof(float);
        float *A = rand_buf((size_t)M * K), *B = rand_buf((size_t)N * K), *C0 = rand_buf((size_t)M * N);
        float *C = malloc(nc), *one = malloc(nc), *first = malloc(nc);
        float *bias = cases[c].bias ? rand_buf((size_t)N) : NULL;
        g.A = A, g.B = B, g.C = C, g.bias = bias;
        static const int counts[] = {1, 2, 3, 7, 16};
        for (size_t t = 0; t < sizeof counts / sizeof counts[0]; t++) {
            omp_set_num_threads(counts[t]);
            for (int rep = 0; rep < 2; rep++) {
                memcpy(C, C0, nc);
                ck_assert_msg(gemm(&g) == VIT_OK, "%s", vit_last_error());
                if (rep == 0) memcpy(first, C, nc);
            }
            ck_assert_msg(memcmp(C, first, nc) == 0, "%d x %d x %d on %d threads: other bits the second time", M, N,
                          K, counts[t]);
            if (t == 0) memcpy(one, C, nc);
            if (counts[t] <= cases[c].same)
                ck_assert_msg(memcmp(C, one, nc) == 0, "%d x %d x %d on %d threads: not the bits of one thread", M, N,
                              K, counts[t]);
            ck_assert_int_eq(check_result(&g, C0, true, "parts by thread"), 0);
        }
        omp_set_num_threads(saved);
        backend()->ops->forget_weights(backend(), B, (size_t)N * K * sizeof *B);
        free(A), free(B), free(C0), free(C), free(one), free(first), free(bias);
    }
    release_backend();
}
END_TEST

START_TEST(test_gelu_is_exact_erf) {
    /* pre-activations spread over [-4, 4] (K = 1: C = a * b + bias), where
     * the tanh approximation is off by up to ~5e-4 */
    enum { M = 64 };
    float A[M], B[1] = {1.0f}, C[M], C0[M];
    for (int i = 0; i < M; i++) A[i] = -4.0f + 8.0f * (float)i / (M - 1), C0[i] = C[i] = 0.0f;
    float bias[1] = {0.0f};
    vit_gemm g = {.M = M, .N = 1, .K = 1, .A = A, .lda = 1, .B = B, .ldb = 1, .C = C, .ldc = 1, .bias = bias,
                  .epilogue = VIT_EPILOGUE_GELU};
    ck_assert_int_eq(gemm(&g), VIT_OK);
    ck_assert_int_eq(check_result(&g, C0, true, "gelu exact"), 0);
    for (int i = 0; i < M; i++) {
        double want = gelu_ref(A[i]);
        ck_assert_msg(fabs(C[i] - want) <= 2e-6 * (1.0 + fabs(want)), "gelu(%g) = %.9g, expected %.9g", A[i], C[i],
                      want);
    }
}
END_TEST

/* ------------------------------------------------------------ batched */

/* batch items of proto at the given strides over fresh operands of na, nb,
 * nc floats; each item checked on its own, and every element of C outside
 * all items must keep its value. */
static void run_batched(const vit_gemm *proto, bool bias, int batch, ptrdiff_t sa, ptrdiff_t sb, ptrdiff_t sc,
                        size_t na, size_t nb, size_t nc, const char *what) {
    float *A = rand_buf(na), *B = rand_buf(nb), *C = rand_buf(nc), *C0 = malloc(nc * sizeof *C0);
    float *bv = bias ? rand_buf((size_t)proto->N) : NULL;
    bool *covered = calloc(nc, sizeof *covered);
    memcpy(C0, C, nc * sizeof *C);
    vit_gemm g = *proto;
    g.A = A, g.B = B, g.C = C, g.bias = bv;
    vit_status st = gemm_batched(&g, batch, sa, sb, sc);
    ck_assert_msg(st == VIT_OK, "%s: status %d: %s", what, (int)st, vit_last_error());
    int bad = 0;
    for (int i = 0; i < batch; i++) {
        vit_gemm gi = g;
        gi.A = A + i * sa, gi.B = B + i * sb, gi.C = C + i * sc;
        bad += check_result(&gi, C0 + i * sc, false, what);
        for (int m = 0; m < g.M; m++)
            for (int n = 0; n < g.N; n++) covered[i * sc + (ptrdiff_t)m * g.ldc + n] = true;
    }
    for (size_t i = 0; i < nc; i++)
        if (!covered[i] && C[i] != C0[i]) bad++;
    ck_assert_int_eq(bad, 0);
    free(A), free(B), free(C), free(C0), free(bv), free(covered);
}

START_TEST(test_batched_contiguous) {
    bool ta = _i & 1, tb = _i & 2;
    const int M = 17, N = 65, K = 33, batch = 5, pad = 3;
    vit_gemm g = {.M = M, .N = N, .K = K, .trans_a = ta, .trans_b = tb};
    g.lda = (ta ? M : K) + pad, g.ldb = (tb ? K : N) + pad, g.ldc = N + pad;
    ptrdiff_t sa = (ptrdiff_t)(ta ? K : M) * g.lda + 11, sb = (ptrdiff_t)(tb ? N : K) * g.ldb + 2;
    ptrdiff_t sc = (ptrdiff_t)M * g.ldc + 5;
    size_t na = (size_t)sa * batch, nb = (size_t)sb * batch, nc = (size_t)sc * batch;
    run_batched(&g, false, batch, sa, sb, sc, na, nb, nc, "batched");
    g.accumulate = true;
    run_batched(&g, false, batch, sa, sb, sc, na, nb, nc, "batched accumulate");
    g.accumulate = false, g.epilogue = VIT_EPILOGUE_GELU;
    run_batched(&g, true, batch, sa, sb, sc, na, nb, nc, "batched bias gelu");
    /* batch 1 takes the 2-D path */
    run_batched(&g, true, 1, sa, sb, sc, na, nb, nc, "batch 1");
}
END_TEST

/* Attention's layouts: heads interleaved in rows, batched over heads. */
START_TEST(test_batched_heads) {
    const int T = 17, H = 3, hd = 8, W = 3 * H * hd;
    float *qkv = rand_buf((size_t)T * W), *S = rand_buf((size_t)H * T * T), *O = rand_buf((size_t)T * H * hd);
    float *S0 = malloc((size_t)H * T * T * sizeof *S0), *O0 = malloc((size_t)T * H * hd * sizeof *O0);
    memcpy(S0, S, (size_t)H * T * T * sizeof *S);
    memcpy(O0, O, (size_t)T * H * hd * sizeof *O);
    /* S[h] = Q[h] K[h]^T: Q[h] at qkv + h*hd, K[h] at qkv + H*hd + h*hd, rows of W */
    vit_gemm g = {.M = T, .N = T, .K = hd, .A = qkv, .lda = W, .B = qkv + H * hd, .ldb = W, .trans_b = true,
                  .C = S, .ldc = T};
    ck_assert_msg(gemm_batched(&g, H, hd, hd, (ptrdiff_t)T * T) == VIT_OK, "%s", vit_last_error());
    int bad = 0;
    for (int h = 0; h < H; h++) {
        vit_gemm gi = g;
        gi.A += h * hd, gi.B += h * hd, gi.C += h * T * T;
        bad += check_result(&gi, S0 + h * T * T, true, "QK^T");
    }
    /* O[:, h*hd:(h+1)*hd] += S[h] V[h]: output heads interleaved too (accumulate) */
    vit_gemm p = {.M = T, .N = hd, .K = T, .A = S, .lda = T, .B = qkv + 2 * H * hd, .ldb = W, .C = O,
                  .ldc = H * hd, .accumulate = true};
    ck_assert_msg(gemm_batched(&p, H, (ptrdiff_t)T * T, hd, hd) == VIT_OK, "%s", vit_last_error());
    for (int h = 0; h < H; h++) {
        vit_gemm gi = p;
        gi.A += h * T * T, gi.B += h * hd, gi.C += h * hd;
        bad += check_result(&gi, O0 + h * hd, false, "PV");
    }
    /* dQ[h] = dS[h] K[h] with trans on A: dS^T as A */
    vit_gemm d = {.M = T, .N = hd, .K = T, .A = S, .lda = T, .trans_a = true, .B = qkv + H * hd, .ldb = W,
                  .C = O, .ldc = H * hd};
    memcpy(O0, O, (size_t)T * H * hd * sizeof *O);
    ck_assert_msg(gemm_batched(&d, H, (ptrdiff_t)T * T, hd, hd) == VIT_OK, "%s", vit_last_error());
    for (int h = 0; h < H; h++) {
        vit_gemm gi = d;
        gi.A += h * T * T, gi.B += h * hd, gi.C += h * hd;
        bad += check_result(&gi, O0 + h * hd, false, "dQ");
    }
    ck_assert_int_eq(bad, 0);
    free(qkv), free(S), free(O), free(S0), free(O0);
}
END_TEST

/* A zero batch stride shares the operand across the batch. */
START_TEST(test_batched_broadcast) {
    bool ta = _i & 1, tb = _i & 2;
    const int M = 19, N = 23, K = 29, batch = 4;
    vit_gemm g = {.M = M, .N = N, .K = K, .trans_a = ta, .trans_b = tb};
    g.lda = (ta ? M : K) + 1, g.ldb = (tb ? K : N) + 2, g.ldc = N;
    size_t na1 = span(ta ? K : M, ta ? M : K, g.lda), nb1 = span(tb ? N : K, tb ? K : N, g.ldb);
    ptrdiff_t sc = (ptrdiff_t)M * N;
    run_batched(&g, false, batch, 0, (ptrdiff_t)nb1, sc, na1, nb1 * batch, (size_t)sc * batch, "shared A");
    run_batched(&g, true, batch, (ptrdiff_t)na1, 0, sc, na1 * batch, nb1, (size_t)sc * batch, "shared B");
    g.accumulate = true;
    run_batched(&g, false, batch, 0, 0, sc, na1, nb1, (size_t)sc * batch, "shared A and B, accumulate");
}
END_TEST

/* Degenerate item shapes (size-1 dimensions with tight strides) in a batch. */
START_TEST(test_batched_thin) {
    bool ta = _i & 1, tb = _i & 2;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 3; c++) {
                int M = odd_sizes[a], N = odd_sizes[b], K = odd_sizes[c], batch = 3;
                vit_gemm g = {.M = M, .N = N, .K = K, .trans_a = ta, .trans_b = tb};
                g.lda = ta ? M : K, g.ldb = tb ? K : N, g.ldc = N;
                ptrdiff_t sa = (ptrdiff_t)M * K, sb = (ptrdiff_t)K * N, sc = (ptrdiff_t)M * N;
                run_batched(&g, false, batch, sa, sb, sc, (size_t)sa * batch, (size_t)sb * batch, (size_t)sc * batch,
                            "thin");
            }
}
END_TEST

/* ------------------------------------------------------------ empty cases */

START_TEST(test_empty) {
    float C[12], bias[4] = {0.5f, -1.0f, 2.0f, 0.0f};
    /* M = 0, N = 0: nothing touched, even NULL pointers are fine */
    vit_gemm g = {.M = 0, .N = 4, .K = 3, .lda = 3, .ldb = 4, .ldc = 4};
    ck_assert_int_eq(gemm(&g), VIT_OK);
    g.M = 3, g.N = 0;
    ck_assert_int_eq(gemm(&g), VIT_OK);
    ck_assert_int_eq(gemm_batched(&g, 4, 9, 12, 12), VIT_OK);
    g.N = 4;
    ck_assert_int_eq(gemm_batched(&g, 0, 0, 0, 0), VIT_OK); /* batch 0 */

    /* K = 0: C = bias, or 0, then the epilogue; A and B may be NULL */
    for (int i = 0; i < 12; i++) C[i] = SENTINEL;
    vit_gemm z = {.M = 3, .N = 4, .K = 0, .lda = 1, .ldb = 4, .ldc = 4, .C = C, .bias = bias};
    ck_assert_int_eq(gemm(&z), VIT_OK);
    for (int m = 0; m < 3; m++)
        for (int n = 0; n < 4; n++) ck_assert_float_eq(C[m * 4 + n], bias[n]);
    z.epilogue = VIT_EPILOGUE_GELU;
    ck_assert_int_eq(gemm(&z), VIT_OK);
    for (int m = 0; m < 3; m++)
        for (int n = 0; n < 4; n++) ck_assert_float_eq_tol(C[m * 4 + n], gelu_ref(bias[n]), 1e-6);
    z.bias = NULL, z.epilogue = VIT_EPILOGUE_NONE;
    ck_assert_int_eq(gemm(&z), VIT_OK);
    for (int i = 0; i < 12; i++) ck_assert_float_eq(C[i], 0.0f);
    /* K = 0 with accumulate: unchanged */
    for (int i = 0; i < 12; i++) C[i] = (float)i;
    z.accumulate = true;
    ck_assert_int_eq(gemm(&z), VIT_OK);
    for (int i = 0; i < 12; i++) ck_assert_float_eq(C[i], (float)i);
    /* batched K = 0: two [1, 4] items, 6 apart; the gap keeps its value */
    z.accumulate = false, z.M = 1, z.bias = bias;
    ck_assert_int_eq(gemm_batched(&z, 2, 0, 0, 6), VIT_OK);
    for (int n = 0; n < 4; n++) {
        ck_assert_float_eq(C[n], bias[n]);
        ck_assert_float_eq(C[6 + n], bias[n]);
    }
    ck_assert_float_eq(C[4], 4.0f);
    ck_assert_float_eq(C[5], 5.0f);
}
END_TEST

/* ------------------------------------------------------------ validation */

static void expect_fail(vit_status got, vit_status want, const char *needle, const char *what) {
    ck_assert_msg(got == want, "%s: status %d, expected %d (%s)", what, (int)got, (int)want, vit_last_error());
    ck_assert_msg(strstr(vit_last_error(), needle) != NULL, "%s: error \"%s\" does not mention \"%s\"", what,
                  vit_last_error(), needle);
}

START_TEST(test_invalid_args) {
    float A[64], B[64], C[64], bias[8];
    for (int i = 0; i < 64; i++) A[i] = B[i] = 1.0f, C[i] = SENTINEL;
    for (int i = 0; i < 8; i++) bias[i] = 0.0f;
    const vit_gemm ok = {.M = 4, .N = 5, .K = 6, .A = A, .lda = 6, .B = B, .ldb = 5, .C = C, .ldc = 5};
    const vit_status INV = VIT_ERR_INVALID_ARGUMENT;
    vit_gemm g;

    expect_fail(gemm(NULL), INV, "g is NULL", "NULL g");
    expect_fail(gemm_batched(NULL, 2, 0, 0, 0), INV, "g is NULL", "NULL g batched");
    g = ok, g.A = NULL;
    expect_fail(gemm(&g), INV, "A is NULL", "NULL A");
    g = ok, g.B = NULL;
    expect_fail(gemm(&g), INV, "B is NULL", "NULL B");
    g = ok, g.C = NULL;
    expect_fail(gemm(&g), INV, "C is NULL", "NULL C");
    g = ok, g.M = -1;
    expect_fail(gemm(&g), INV, "M is negative", "M < 0");
    g = ok, g.N = -2;
    expect_fail(gemm(&g), INV, "N is negative", "N < 0");
    g = ok, g.K = -3;
    expect_fail(gemm(&g), INV, "K is negative", "K < 0");
    g = ok, g.lda = 5;
    expect_fail(gemm(&g), INV, "lda", "lda < K");
    g = ok, g.trans_a = true, g.lda = 3; /* A is [K, M]: lda >= M = 4 */
    expect_fail(gemm(&g), INV, "lda", "lda < M with trans_a");
    g = ok, g.ldb = 4;
    expect_fail(gemm(&g), INV, "ldb", "ldb < N");
    g = ok, g.trans_b = true, g.ldb = 5; /* B is [N, K]: ldb >= K = 6 */
    expect_fail(gemm(&g), INV, "ldb", "ldb < K with trans_b");
    g = ok, g.ldc = 4;
    expect_fail(gemm(&g), INV, "ldc", "ldc < N");
    g = ok, g.ldc = 0, g.N = 0; /* even an empty product wants ld >= 1 */
    expect_fail(gemm(&g), INV, "ldc", "ldc 0");
    g = ok, g.accumulate = true, g.bias = bias;
    expect_fail(gemm(&g), INV, "accumulate", "accumulate + bias");
    g = ok, g.accumulate = true, g.epilogue = VIT_EPILOGUE_GELU;
    expect_fail(gemm(&g), INV, "accumulate", "accumulate + gelu");
    g = ok, g.epilogue = (vit_epilogue)7;
    expect_fail(gemm(&g), INV, "epilogue", "bad epilogue");
    g = ok;
    expect_fail(gemm_batched(&g, -1, 0, 0, 20), INV, "batch", "batch < 0");
    expect_fail(gemm_batched(&g, 2, -1, 0, 20), INV, "stride_a", "stride_a < 0");
    expect_fail(gemm_batched(&g, 2, 0, -1, 20), INV, "stride_b", "stride_b < 0");
    expect_fail(gemm_batched(&g, 2, 0, 0, -20), INV, "stride_c", "stride_c < 0");
    expect_fail(gemm_batched(&g, 2, 0, 0, 0), INV, "stride_c", "C items coincide");
    expect_fail(gemm_batched(&g, 2, 0, 0, 10), INV, "stride_c", "C items overlap"); /* needs 20 */
    g = ok, g.lda = 2;
    expect_fail(gemm_batched(&g, 2, 0, 0, 20), INV, "lda", "batched lda");
    /* nothing was written by any failing call */
    for (int i = 0; i < 64; i++) ck_assert_float_eq(C[i], SENTINEL);
    /* and a valid call afterwards works */
    g = ok;
    ck_assert_int_eq(gemm(&g), VIT_OK);
    ck_assert_float_eq(C[0], 6.0f);
}
END_TEST

/* ------------------------------------------------------- packed weights */

/* A linear layer's products with a stamped weight: y = x W^T + b (trans_b,
 * the forward) and dx = dy W (the same W untransposed, its own packed copy).
 * On AVX-512 oneDNN packs W; the stamp, not the contents, decides when the
 * copy is made again, and forget drops it. At lower levels nothing is packed. */
START_TEST(test_packed_weights) {
    const int M = 197, N = 96, K = 160;
    float *W = rand_buf((size_t)N * K), *x = rand_buf((size_t)M * K), *bias = rand_buf((size_t)N);
    float *y = rand_buf((size_t)M * N), *y0 = calloc((size_t)M * N, sizeof *y0);
    float *dx = rand_buf((size_t)M * K), *dx0 = calloc((size_t)M * K, sizeof *dx0);
    const uint64_t s1 = vit_stamp_next();
    vit_gemm fwd = {.M = M, .N = N, .K = K, .A = x, .lda = K, .B = W, .ldb = K, .trans_b = true, .C = y, .ldc = N,
                    .bias = bias, .epilogue = VIT_EPILOGUE_GELU, .b_stamp = s1};
    vit_gemm bwd = {.M = M, .N = K, .K = N, .A = y, .lda = N, .B = W, .ldb = K, .C = dx, .ldc = K, .b_stamp = s1};
    size_t packed_fwd = 0;
    for (int rep = 0; rep < 2; rep++) { /* the second time from the cache */
        ck_assert_msg(gemm(&fwd) == VIT_OK, "%s", vit_last_error());
        ck_assert_int_eq(check_result(&fwd, y0, true, "packed forward"), 0);
        if (rep == 0) packed_fwd = vit_cpu_packed_bytes(backend());
        ck_assert_msg(gemm(&bwd) == VIT_OK, "%s", vit_last_error());
        ck_assert_int_eq(check_result(&bwd, dx0, true, "packed dx"), 0);
    }
    const size_t packed = vit_cpu_packed_bytes(backend());
    const size_t plain = 2 * sizeof(float) * (size_t)N * K;
    if (vit_cpu_isa_dispatched() == VIT_CPU_ISA_AVX512) {
        /* two copies, each at least W and at most W padded to 64 x 64 blocks */
        ck_assert_msg(packed >= plain && packed <= 2 * sizeof(float) * 128 * 192,
                      "packed %zu bytes for two copies of a %d x %d weight", packed, N, K);
    } else if (vit_cpu_isa_dispatched() == VIT_CPU_ISA_AVX2) {
        /* libvit's own panels: whole 16-column panels of each copy's columns (N, then K) */
        const size_t panels = sizeof(float) * ((N + 15) / 16 * 16 * (size_t)K + (K + 15) / 16 * 16 * (size_t)N);
        ck_assert_msg(packed == panels, "packed %zu bytes for two copies of a %d x %d weight, not %zu", packed, N,
                      K, panels);
    } else {
        ck_assert_msg(packed == 0, "packed %zu bytes where oneDNN keeps plain layouts", packed);
    }
    /* New contents under the old stamp: a packed copy is used as it is (what
     * the stamp promises), so the result still matches the old W. */
    float *Wold = malloc((size_t)N * K * sizeof *Wold);
    memcpy(Wold, W, (size_t)N * K * sizeof *W);
    for (int i = 0; i < N * K; i++) W[i] = frand();
    ck_assert_int_eq(gemm(&fwd), VIT_OK);
    if (packed) {
        vit_gemm old = fwd;
        old.B = Wold;
        ck_assert_int_eq(check_result(&old, y0, true, "stale stamp keeps the packed copy"), 0);
    } else {
        ck_assert_int_eq(check_result(&fwd, y0, true, "unpacked reads W"), 0);
    }
    /* a new stamp: the copies are made again, in the same memory */
    fwd.b_stamp = bwd.b_stamp = vit_stamp_next();
    ck_assert_int_eq(gemm(&fwd), VIT_OK);
    ck_assert_int_eq(check_result(&fwd, y0, true, "new stamp"), 0);
    ck_assert_int_eq(gemm(&bwd), VIT_OK);
    ck_assert_int_eq(check_result(&bwd, dx0, true, "new stamp dx"), 0);
    ck_assert_uint_eq(vit_cpu_packed_bytes(backend()), packed);
    /* forget drops them; the next call packs again */
    backend()->ops->forget_weights(backend(), W, (size_t)N * K * sizeof *W);
    ck_assert_uint_eq(vit_cpu_packed_bytes(backend()), 0);
    ck_assert_int_eq(gemm(&bwd), VIT_OK);
    ck_assert_int_eq(check_result(&bwd, dx0, true, "after forget"), 0);
    ck_assert_uint_eq(vit_cpu_packed_bytes(backend()), packed - packed_fwd);
    /* batched products ignore the stamp */
    backend()->ops->forget_weights(backend(), W, (size_t)N * K * sizeof *W);
    float *y2 = rand_buf(2 * (size_t)M * N);
    vit_gemm pair = fwd;
    pair.C = y2;
    ck_assert_msg(gemm_batched(&pair, 2, 0, 0, (ptrdiff_t)M * N) == VIT_OK, "%s", vit_last_error());
    for (int i = 0; i < 2; i++) {
        pair.C = y2 + (ptrdiff_t)i * M * N;
        ck_assert_int_eq(check_result(&pair, y0, false, "batched with a stamp"), 0);
    }
    ck_assert_uint_eq(vit_cpu_packed_bytes(backend()), 0);
    free(y2);
    release_backend();
    free(W), free(Wold), free(x), free(bias), free(y), free(y0), free(dx), free(dx0);
}
END_TEST

/* Stamped products over the shapes where the AVX2 level's own kernel
 * (cpu/packed_gemm.c) has edges: rows not a multiple of its 6-row blocks,
 * columns not a multiple of its 16-column panels, K over one 256-row chunk
 * and not a multiple of it, a row slice of a tall product, both layouts of
 * B, leading dimensions wider than the rows, and each shape with each of
 * bias with GELU, accumulate, bias alone and GELU alone. At that level the
 * bits do not depend on the thread count either. */
START_TEST(test_packed_product_edges) {
    static const struct { int M, N, K; } shapes[] = {
        {64, 1, 1}, {65, 17, 7}, {197, 96, 160}, {197, 100, 600}, {67, 33, 512}, {70, 768, 257}, {1700, 40, 300},
    };
    const int saved = omp_get_max_threads();
    const bool own = vit_cpu_isa_dispatched() == VIT_CPU_ISA_AVX2;
    int c = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int tb = 0; tb < 2; tb++)
            for (int pad = 0; pad <= 3; pad += 3, c++) {
                const int M = shapes[i].M, N = shapes[i].N, K = shapes[i].K, mode = (c + (int)i) % 4;
                vit_gemm g = {.M = M, .N = N, .K = K, .lda = K + pad, .trans_b = tb, .ldb = (tb ? K : N) + pad,
                              .ldc = N + pad, .accumulate = mode == 1, .b_stamp = vit_stamp_next(),
                              .epilogue = mode == 0 || mode == 3 ? VIT_EPILOGUE_GELU : VIT_EPILOGUE_NONE};
                const size_t nc = span(M, N, g.ldc), bytes = nc * sizeof(float);
                float *A = rand_buf(span(M, K, g.lda)), *B = rand_buf(tb ? span(N, K, g.ldb) : span(K, N, g.ldb));
                float *C0 = rand_buf(nc), *C = malloc(bytes), *one = malloc(bytes);
                float *bias = mode == 0 || mode == 2 ? rand_buf((size_t)N) : NULL;
                g.A = A, g.B = B, g.C = C, g.bias = bias;
                static const int counts[] = {1, 2, 3};
                for (size_t t = 0; t < sizeof counts / sizeof counts[0]; t++) {
                    omp_set_num_threads(counts[t]);
                    memcpy(C, C0, bytes);
                    ck_assert_msg(gemm(&g) == VIT_OK, "%s", vit_last_error());
                    ck_assert_int_eq(check_result(&g, C0, true, "packed product"), 0);
                    if (t == 0) memcpy(one, C, bytes);
                    else if (own)
                        ck_assert_msg(memcmp(C, one, bytes) == 0, "%d x %d x %d on %d threads: not one thread's bits",
                                      M, N, K, counts[t]);
                }
                omp_set_num_threads(saved);
                const size_t nb = tb ? span(N, K, g.ldb) : span(K, N, g.ldb);
                backend()->ops->forget_weights(backend(), B, nb * sizeof(float));
                free(A), free(B), free(C0), free(C), free(one), free(bias);
            }
    ck_assert_uint_eq(vit_cpu_packed_bytes(backend()), 0);
    release_backend();
}
END_TEST

/* ------------------------------------------------------------ the cache */

START_TEST(test_cache_reuse_and_release) {
    /* the same shape with new buffers each time, across a release */
    for (int round = 0; round < 3; round++) {
        for (int r = 0; r < 4; r++) {
            run_case(33, 47, 65, r & 1, r & 2, false, true, VIT_EPILOGUE_NONE, 1, "reuse");
            run_case(33, 47, 65, r & 1, r & 2, true, false, VIT_EPILOGUE_NONE, 1, "reuse acc");
        }
        release_backend();
    }
    release_backend(); /* twice is fine */
}
END_TEST

/* More distinct shapes than the table holds: growth, rehash, then flush. */
START_TEST(test_cache_many_shapes) {
    enum { NA = 1100, NC = 8 };
    float B[4], A[NA], C[NC], C0[NC];
    for (int i = 0; i < NA; i++) A[i] = frand();
    for (int i = 0; i < 4; i++) B[i] = frand();
    for (int round = 0; round < 2; round++) {
        for (int s = 0; s < 3300; s++) {
            /* 3300 distinct keys through the leading dimensions */
            vit_gemm g = {.M = 2, .N = 2, .K = 2, .A = A, .lda = 2 + s % 1000, .B = B, .ldb = 2, .C = C,
                          .ldc = 2 + s / 1000};
            for (int i = 0; i < NC; i++) C0[i] = C[i] = frand();
            ck_assert_msg(gemm(&g) == VIT_OK, "%s", vit_last_error());
            if (s % 97 == 0 || s > 3000) ck_assert_int_eq(check_result(&g, C0, true, "many shapes"), 0);
        }
    }
    release_backend();
}
END_TEST

/* Each thread count gets its own primitive. */
START_TEST(test_thread_counts) {
    int saved = omp_get_max_threads();
    for (int t = 1; t <= 3; t++) {
        omp_set_num_threads(t);
        run_case(197, 96, 288, false, true, false, true, VIT_EPILOGUE_GELU, 0, "threads");
        run_case(197, 96, 288, true, false, true, false, VIT_EPILOGUE_NONE, 0, "threads acc");
    }
    omp_set_num_threads(saved);
}
END_TEST

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    for (int r = 0; r < 6; r++) {
        int M = r % 2 ? 65 : 17 + id;
        run_case(M, 33, 47, r & 1, id & 1, r % 3 == 0, false, VIT_EPILOGUE_NONE, id, "thread");
        run_case(M, 33, 47, false, true, false, true, VIT_EPILOGUE_GELU, 0, "thread gelu");
    }
    release_backend();
    return NULL;
}

START_TEST(test_concurrent_threads) {
    enum { NT = 4 };
    pthread_t th[NT];
    /* the main thread holds a cache too while the workers come and go */
    run_case(17, 17, 17, false, false, false, false, VIT_EPILOGUE_NONE, 0, "main");
    for (int i = 0; i < NT; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i), 0);
    for (int i = 0; i < NT; i++) ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    run_case(17, 17, 17, false, false, false, false, VIT_EPILOGUE_NONE, 0, "main after");
    release_backend();
    /* a second generation of threads while the main thread's backend is new */
    for (int i = 0; i < NT; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)(i + 4)), 0);
    for (int i = 0; i < NT; i++) ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    run_case(5, 7, 9, true, true, false, false, VIT_EPILOGUE_NONE, 0, "main again");
}
END_TEST

static Suite *matmul_suite(void) {
    Suite *s = suite_create("matmul");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_trans_odd_sizes, 0, 4);
    tcase_add_loop_test(tc, test_accumulate, 0, 4);
    tcase_add_loop_test(tc, test_bias_gelu, 0, 4);
    tcase_add_loop_test(tc, test_row_slices, 0, 4);
    tcase_add_test(tc, test_parts_by_thread);
    tcase_add_test(tc, test_gelu_is_exact_erf);
    tcase_add_loop_test(tc, test_batched_contiguous, 0, 4);
    tcase_add_test(tc, test_batched_heads);
    tcase_add_loop_test(tc, test_batched_broadcast, 0, 4);
    tcase_add_loop_test(tc, test_batched_thin, 0, 4);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_invalid_args);
    tcase_add_test(tc, test_packed_weights);
    tcase_add_test(tc, test_packed_product_edges);
    tcase_add_test(tc, test_cache_reuse_and_release);
    tcase_add_test(tc, test_cache_many_shapes);
    tcase_add_test(tc, test_thread_counts);
    tcase_add_test(tc, test_concurrent_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    skip_unless_isa_level_available("test_matmul");
    SRunner *sr = srunner_create(matmul_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    release_backend();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
