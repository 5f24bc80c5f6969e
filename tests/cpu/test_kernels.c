/*
 * CPU kernel tests. Every forward is compared with a plain double-precision
 * reference written here, and every backward with central finite differences
 * of that reference (of the scalar loss sum(out * w), w random, which is also
 * the dout handed to the float backward), at awkward sizes: odd token counts,
 * widths that are not a multiple of 8, batch 1, heads of 5.
 *
 * Tolerances (relative, with a floor of 1% of the largest |reference| so that
 * entries near zero are judged on the scale of the tensor):
 *   FWD_TOL  2e-5: a float32 kernel against a double reference differs by a
 *            few ulps per accumulated term, ~1e-6 here. Outputs that are
 *            cancelling sums (attention's weighted mean of v, the bicubic
 *            taps) are judged against the sum of the |terms| instead.
 *   GRAD_TOL 1e-3: the float analytic gradient against a double finite
 *            difference (step 1e-5, truncation ~1e-10).
 * Gradient buffers start from small nonzero values, and the test subtracts
 * them, so a kernel that assigns instead of accumulating fails.
 */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/scalar.h"
#include "isa_level.h"

#define FWD_TOL 2e-5
#define GRAD_TOL 1e-3
#define FD_STEP 1e-5
#define FD_MAX 300 /* finite differences on at most this many elements per tensor */

/* ------------------------------------------------------------ helpers */
static uint64_t rng_state = 0x243F6A8885A308D3ull;
static double urand(void) { /* xorshift64*, [0, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}

/* Everything a test allocates is freed by the fixture's teardown. */
static void *allocs[512];
static int nallocs;
static void *tmalloc(size_t bytes) {
    ck_assert_int_lt(nallocs, 512);
    void *p = calloc(1, bytes ? bytes : 1);
    ck_assert_ptr_nonnull(p);
    return allocs[nallocs++] = p;
}
static void free_all_dev(void);
static void free_all(void) {
    while (nallocs) free(allocs[--nallocs]);
    free_all_dev();
}
static float *fvec(int64_t n) { return tmalloc((size_t)n * sizeof(float)); }
static double *dvec(int64_t n) { return tmalloc((size_t)n * sizeof(double)); }
static float *frand(int64_t n, double lo, double hi) {
    float *x = fvec(n);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * urand());
    return x;
}
static double *to_d(const float *x, int64_t n) {
    double *d = dvec(n);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}
static float *fcopy(const float *x, int64_t n) {
    float *y = fvec(n);
    memcpy(y, x, (size_t)n * sizeof(float));
    return y;
}

static double rel_err(double got, double want, double floor) {
    return fabs(got - want) / (fabs(want) + floor + 1e-30);
}

/* got (float) against want (double), relative with the floor described above. */
static void expect_close(const char *what, const float *got, const double *want, int64_t n, double tol) {
    double maxabs = 0.0, worst = 0.0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) maxabs = fmax(maxabs, fabs(want[i]));
    for (int64_t i = 0; i < n; i++) {
        const double e = rel_err(got[i], want[i], 1e-2 * maxabs);
        if (!(e <= worst)) worst = e, at = i; /* NaN counts as worst */
    }
    ck_assert_msg(worst <= tol, "%s: [%lld] = %.9g, reference %.9g (rel err %.3g > %.1g)", what, (long long)at,
                  (double)got[at], want[at], worst, tol);
}

/* The same against a per-element magnitude (sum of |terms|) rather than |want|. */
static void expect_close_to(const char *what, const float *got, const double *want, const double *mag, int64_t n,
                            double tol) {
    double worst = 0.0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs(got[i] - want[i]) / (mag[i] + 1e-30);
        if (!(e <= worst)) worst = e, at = i;
    }
    ck_assert_msg(worst <= tol, "%s: [%lld] = %.9g, reference %.9g, magnitude %.3g (rel err %.3g > %.1g)", what,
                  (long long)at, (double)got[at], want[at], mag[at], worst, tol);
}

typedef double (*loss_fn)(void *ctx);

/* The analytic gradient (grad - base) of loss w.r.t. x against central finite
 * differences of the double reference, on every element or FD_MAX sampled ones.
 * scale: the size of the terms whose sum the gradient is, when they can
 * cancel to exactly zero (0 if they cannot): float rounding is relative to
 * them, so the floor is 1% of the larger of scale and the largest |gradient|. */
static void expect_grad_scaled(const char *what, loss_fn loss, void *ctx, double *x, int64_t n, const float *grad,
                               const float *base, double scale) {
    const int64_t m = n <= FD_MAX ? n : FD_MAX;
    int64_t *idx = tmalloc((size_t)m * sizeof(int64_t));
    double *fd = dvec(m), maxabs = 0.0;
    for (int64_t k = 0; k < m; k++) {
        const int64_t i = m == n ? k : (int64_t)(urand() * (double)n);
        const double x0 = x[i], h = FD_STEP * fmax(1.0, fabs(x0));
        x[i] = x0 + h;
        const double lp = loss(ctx);
        x[i] = x0 - h;
        const double lm = loss(ctx);
        x[i] = x0;
        idx[k] = i;
        fd[k] = (lp - lm) / (2.0 * h);
        maxabs = fmax(maxabs, fabs(fd[k]));
    }
    double worst = 0.0;
    int64_t at = 0;
    for (int64_t k = 0; k < m; k++) {
        const double got = (double)grad[idx[k]] - (base ? (double)base[idx[k]] : 0.0);
        const double e = rel_err(got, fd[k], 1e-2 * fmax(maxabs, scale));
        if (!(e <= worst)) worst = e, at = k;
    }
    const double got = (double)grad[idx[at]] - (base ? (double)base[idx[at]] : 0.0);
    ck_assert_msg(worst <= GRAD_TOL, "%s: grad[%lld] = %.9g, finite difference %.9g (rel err %.3g)", what,
                  (long long)idx[at], got, fd[at], worst);
}

static void expect_grad(const char *what, loss_fn loss, void *ctx, double *x, int64_t n, const float *grad,
                        const float *base) {
    expect_grad_scaled(what, loss, ctx, x, n, grad, base, 0.0);
}

/* A small nonzero starting gradient: += must keep it. Small so that the
 * rounding of base + g stays far below GRAD_TOL. */
static float *grad_base(int64_t n) { return frand(n, -0.01, 0.01); }

static double dot_d(const double *a, const double *b, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ------------------------------------------------ the backend under test */
/* Every kernel runs through a backend table: inputs are copied into memory
 * from its alloc, outputs (and gradients, which accumulate) are copied in
 * first and back out after. The helpers keep the kernels' host-pointer
 * signatures, so a device backend runs the same checks by being added to
 * the list in main(). */
static vit_backend *be;
static void *dev_allocs[1024];
static int ndev;
static int natt; /* attention runs remembered (see k_attention_forward) */

static void free_all_dev(void) {
    while (ndev) be->ops->free(be, dev_allocs[--ndev]);
    natt = 0;
}

/* Device memory freed with the test's host buffers (free_all). */
static void *dev_alloc(size_t bytes) {
    ck_assert_int_lt(ndev, 1024);
    void *d = be->ops->alloc(be, bytes ? bytes : 1);
    ck_assert_msg(d != NULL, "%s alloc: %s", be->ops->name, vit_last_error());
    return dev_allocs[ndev++] = d;
}

/* A device copy of host (NULL stays NULL). */
static void *up(const void *host, size_t bytes) {
    if (!host) return NULL;
    void *d = dev_alloc(bytes);
    ck_assert_int_eq(be->ops->copy(be, d, host, bytes, VIT_COPY_TO_DEVICE), VIT_OK);
    return d;
}

static void down(void *host, const void *dev, size_t bytes) {
    if (host) ck_assert_int_eq(be->ops->copy(be, host, dev, bytes, VIT_COPY_TO_HOST), VIT_OK);
}

static void ok(vit_status s, const char *what) {
    ck_assert_msg(s == VIT_OK, "%s on %s: %s", what, be->ops->name, vit_last_error());
}

#define F(n) ((size_t)(n) * sizeof(float))

static void k_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                                int64_t rows, int C, float eps) {
    float *o = up(out, F(rows * C)), *mu = up(mean, F(rows)), *rs = up(rstd, F(rows));
    ok(be->ops->layernorm_forward(be, o, mu, rs, up(inp, F(rows * C)), up(w, F(C)), up(b, F(C)), rows, C, eps),
       "layernorm_forward");
    down(out, o, F(rows * C)), down(mean, mu, F(rows)), down(rstd, rs, F(rows));
}

static void k_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                 const float *w, const float *mean, const float *rstd, int64_t rows, int C) {
    const size_t n = F(rows * C);
    float *dx = up(dinp, n), *dwd = up(dw, F(C)), *dbd = up(db, F(C));
    ok(be->ops->layernorm_backward(be, dx, dwd, dbd, up(dout, n), up(inp, n), up(w, F(C)), up(mean, F(rows)),
                                   up(rstd, F(rows)), rows, C),
       "layernorm_backward");
    down(dinp, dx, n), down(dw, dwd, F(C)), down(db, dbd, F(C));
}

static void k_gelu_forward(float *out, const float *inp, int64_t n) {
    float *o = up(out, F(n));
    ok(be->ops->gelu_forward(be, o, up(inp, F(n)), n), "gelu_forward");
    down(out, o, F(n));
}

static void k_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n) {
    float *dx = up(dinp, F(n));
    ok(be->ops->gelu_backward(be, dx, up(inp, F(n)), up(dout, F(n)), n), "gelu_backward");
    down(dinp, dx, F(n));
}

static void k_gelu_bias_backward(float *out, float *dinp, float *dbias, const float *inp, const float *dout,
                                 int64_t rows, int C) {
    const size_t n = F(rows * C);
    float *o = up(out, n), *dx = up(dinp, n), *db = up(dbias, F(C));
    ok(be->ops->gelu_bias_backward(be, o, dx, db, up(inp, n), dout == dinp ? dx : up(dout, n), rows, C),
       "gelu_bias_backward");
    down(out, o, n), down(dinp, dx, n), down(dbias, db, F(C));
}

/* In place: buf holds the output's gradient and becomes the input's. */
static void k_activation_backward_in_place(bool quick, float *buf, const float *inp, int64_t n) {
    float *d = up(buf, F(n));
    ok((quick ? be->ops->quick_gelu_backward : be->ops->gelu_backward)(be, d, up(inp, F(n)), d, n),
       "gelu_backward in place");
    down(buf, d, F(n));
}

static void k_softmax_forward(float *out, const float *inp, int64_t rows, int C) {
    float *o = up(out, F(rows * C));
    ok(be->ops->softmax_forward(be, o, up(inp, F(rows * C)), rows, C), "softmax_forward");
    down(out, o, F(rows * C));
}

static void k_softmax_backward(float *dinp, const float *out, const float *dout, int64_t rows, int C) {
    float *dx = up(dinp, F(rows * C));
    ok(be->ops->softmax_backward(be, dx, up(out, F(rows * C)), up(dout, F(rows * C)), rows, C), "softmax_backward");
    down(dinp, dx, F(rows * C));
}

/* Attention's saved state is the backend's own; where it is the probability
 * matrix (the CPU's from 128 tokens) the tests read it as probs and
 * att_probs_read says so. A forward run with probs remembers its device state
 * and output so that the backward given the same probs pointer uses them. */
typedef struct att_run {
    const float *probs;
    void *saved;
    float *out;
} att_run;
static att_run att_runs[16];
static bool att_probs_read;

static vit_status k_attention_forward(float *out, float *probs, const float *qkv, int B, int T, int H, int hd,
                                      float scale, float drop_p, uint64_t key, float *unused_scratch) {
    (void)unused_scratch;
    size_t saved_bytes, scratch_bytes;
    be->ops->attention_sizes(be, B, T, H, hd, &saved_bytes, &scratch_bytes);
    const size_t no = F((int64_t)B * T * H * hd);
    float *o = up(out, no);
    void *saved = probs ? dev_alloc(saved_bytes) : NULL, *scratch = dev_alloc(scratch_bytes);
    vit_status s = be->ops->attention_forward(be, o, saved, up(qkv, 3 * no), B, T, H, hd, scale, drop_p, key, scratch);
    if (s != VIT_OK) return s;
    down(out, o, no);
    att_probs_read = false;
    if (probs) {
        att_probs_read = saved_bytes == F((int64_t)B * H * T * T);
        if (att_probs_read) down(probs, saved, saved_bytes);
        ck_assert_int_lt(natt, 16);
        att_runs[natt++] = (att_run){probs, saved, o};
    }
    return VIT_OK;
}

static vit_status k_attention_backward(float *dqkv, bool accumulate, const float *dout, const float *qkv,
                                       const float *probs, int B, int T, int H, int hd, float scale, float drop_p,
                                       uint64_t key, float *unused_scratch) {
    (void)unused_scratch;
    size_t saved_bytes, scratch_bytes;
    be->ops->attention_sizes(be, B, T, H, hd, &saved_bytes, &scratch_bytes);
    void *saved = NULL;
    float *out = NULL;
    for (int i = 0; i < natt; i++)
        if (probs && att_runs[i].probs == probs) saved = att_runs[i].saved, out = att_runs[i].out;
    const size_t no = F((int64_t)B * T * H * hd);
    float *dq = up(dqkv, 3 * no);
    void *scratch = dev_alloc(scratch_bytes);
    vit_status s = be->ops->attention_backward(be, dq, accumulate, up(dout, no), up(qkv, 3 * no), out, saved, B, T, H,
                                               hd, scale, drop_p, key, scratch);
    if (s == VIT_OK) down(dqkv, dq, 3 * no);
    return s;
}

static float k_cross_entropy_forward(float *probs, const float *logits, const int32_t *labels, int B, int C,
                                     float smoothing) {
    float loss = 0.0f, *l = up(&loss, sizeof loss), *p = up(probs, F((int64_t)B * C));
    ok(be->ops->cross_entropy_forward(be, l, p, up(logits, F((int64_t)B * C)), up(labels, (size_t)B * 4), B, C,
                                      smoothing),
       "cross_entropy_forward");
    down(probs, p, F((int64_t)B * C)), down(&loss, l, sizeof loss);
    return loss;
}

static void k_cross_entropy_backward(float *dlogits, const float *probs, const int32_t *labels, int B, int C,
                                     float smoothing, float dloss) {
    float *d = up(dlogits, F((int64_t)B * C));
    ok(be->ops->cross_entropy_backward(be, d, up(probs, F((int64_t)B * C)), up(labels, (size_t)B * 4), B, C,
                                       smoothing, up(&dloss, sizeof dloss)),
       "cross_entropy_backward");
    down(dlogits, d, F((int64_t)B * C));
}

static void k_patchify(float *patches, const float *images, int B, int Cin, int H, int W, int p) {
    const size_t np = F((int64_t)B * (H / p) * (W / p) * Cin * p * p), ni = F((int64_t)B * Cin * H * W);
    float *d = up(patches, np);
    ok(be->ops->patchify(be, d, up(images, ni), B, Cin, H, W, p), "patchify");
    down(patches, d, np);
}

static void k_unpatchify_add(float *dimages, const float *dpatches, int B, int Cin, int H, int W, int p) {
    const size_t np = F((int64_t)B * (H / p) * (W / p) * Cin * p * p), ni = F((int64_t)B * Cin * H * W);
    float *d = up(dimages, ni);
    ok(be->ops->unpatchify_add(be, d, up(dpatches, np), B, Cin, H, W, p), "unpatchify_add");
    down(dimages, d, ni);
}

static void k_embed_tokens_forward(float *tokens, const float *patch, const float *cls, const float *pos, int B, int N,
                                   int D) {
    const size_t nt = F((int64_t)B * (N + 1) * D);
    float *t = up(tokens, nt);
    ok(be->ops->embed_tokens_forward(be, t, up(patch, F((int64_t)B * N * D)), up(cls, F(D)), NULL,
                                     up(pos, F((int64_t)(N + 1) * D)), B, N, D, 0, 1),
       "embed_tokens_forward");
    down(tokens, t, nt);
}

static void k_embed_tokens_backward(float *dpatch, float *dcls, float *dpos, const float *dtokens, int B, int N,
                                    int D) {
    const size_t npt = F((int64_t)B * N * D), npos = F((int64_t)(N + 1) * D);
    float *dp = up(dpatch, npt), *dc = up(dcls, F(D)), *dq = up(dpos, npos);
    ok(be->ops->embed_tokens_backward(be, dp, dc, NULL, dq, up(dtokens, F((int64_t)B * (N + 1) * D)), B, N, D, 0, 1, 1),
       "embed_tokens_backward");
    down(dpatch, dp, npt), down(dcls, dc, F(D)), down(dpos, dq, npos);
}

/* out may alias x or y, as the kernel allows: the aliasing is kept on the device. */
static void k_residual_forward(float *out, const float *x, const float *y, const float *scale, int B, int64_t per) {
    const size_t n = F(B * per);
    float *xd = up(x, n), *yd = up(y, n);
    float *o = out == x ? xd : out == y ? yd : up(out, n);
    ok(be->ops->residual_forward(be, o, xd, yd, up(scale, F(B)), B, per), "residual_forward");
    down(out, o, n);
}

static void k_residual_backward(float *dx, float *dy, const float *dout, const float *scale, int B, int64_t per) {
    const size_t n = F(B * per);
    float *dxd = up(dx, n), *dyd = up(dy, n);
    ok(be->ops->residual_backward(be, dxd, dyd, up(dout, n), up(scale, F(B)), B, per), "residual_backward");
    down(dx, dxd, n), down(dy, dyd, n);
}

static void k_dropout_forward(float *out, const float *inp, int64_t n, float p, uint64_t key) {
    float *x = up(inp, F(n)), *o = out == inp ? x : up(out, F(n));
    ok(be->ops->dropout_forward(be, o, x, n, p, key), "dropout_forward");
    down(out, o, F(n));
}

static void k_dropout_backward(float *dinp, const float *dout, int64_t n, float p, uint64_t key) {
    float *dx = up(dinp, F(n));
    ok(be->ops->dropout_backward(be, dx, up(dout, F(n)), n, p, key), "dropout_backward");
    down(dinp, dx, F(n));
}

static void k_pool_forward(float *out, const float *tokens, int B, int T, int D, int avg, int skip) {
    float *o = up(out, F((int64_t)B * D));
    ok(be->ops->pool_forward(be, o, up(tokens, F((int64_t)B * T * D)), B, T, D, avg, skip), "pool_forward");
    down(out, o, F((int64_t)B * D));
}

static void k_pool_backward(float *dtokens, const float *dout, int B, int T, int D, int avg, int skip) {
    float *dt = up(dtokens, F((int64_t)B * T * D));
    ok(be->ops->pool_backward(be, dt, up(dout, F((int64_t)B * D)), B, T, D, avg, skip), "pool_backward");
    down(dtokens, dt, F((int64_t)B * T * D));
}

static void k_add(float *out, const float *a, const float *b, int64_t n) {
    float *ad = up(a, F(n)), *o = out == a ? ad : up(out, F(n));
    ok(be->ops->add(be, o, ad, up(b, F(n)), n), "add");
    down(out, o, F(n));
}

static void k_bias_backward(float *dbias, const float *dout, int64_t rows, int C) {
    float *d = up(dbias, F(C));
    ok(be->ops->bias_backward(be, d, up(dout, F(rows * C)), rows, C), "bias_backward");
    down(dbias, d, F(C));
}

static void k_resample_bicubic(float *out, int gh_out, int gw_out, const float *inp, int gh_in, int gw_in, int D) {
    const size_t no = F((int64_t)gh_out * gw_out * D);
    float *o = up(out, no);
    ok(be->ops->resample_bicubic(be, o, gh_out, gw_out, up(inp, F((int64_t)gh_in * gw_in * D)), gh_in, gw_in, D),
       "resample_bicubic");
    down(out, o, no);
}

static void k_resample_bicubic_backward(float *dinp, int gh_in, int gw_in, const float *dout, int gh_out, int gw_out,
                                        int D) {
    const size_t ni = F((int64_t)gh_in * gw_in * D);
    float *d = up(dinp, ni);
    ok(be->ops->resample_bicubic_backward(be, d, gh_in, gw_in, up(dout, F((int64_t)gh_out * gw_out * D)), gh_out,
                                          gw_out, D),
       "resample_bicubic_backward");
    down(dinp, d, ni);
}

/* The constants as the optimizer forms them (optim/adamw.c). */
static void k_adamw_update(float *p, float *m, float *v, const float *g, int64_t n, float lr, float beta1, float beta2,
                           float eps, float wd, float bc1, float bc2, float gscale) {
    const vit_adamw_consts k = {
        .decay = (float)(1.0 - (double)lr * wd), .beta1 = beta1, .one_beta1 = (float)(1.0 - (double)beta1),
        .beta2 = beta2, .one_beta2 = (float)(1.0 - (double)beta2), .sqrt_bc2 = (float)sqrt((double)bc2),
        .eps = eps, .neg_step = (float)(-(double)lr / bc1), .grad_scale = gscale};
    float *pd = up(p, F(n)), *md = up(m, F(n)), *vd = up(v, F(n));
    ok(be->ops->adamw_update(be, pd, md, vd, up(g, F(n)), n, &k), "adamw_update");
    down(p, pd, F(n)), down(m, md, F(n)), down(v, vd, F(n));
}

static double k_sum_squares(const float *x, int64_t n) {
    double r = 0.0;
    ok(be->ops->sum_squares(be, up(x, F(n)), n, &r), "sum_squares");
    return r;
}

/* ------------------------------------------------------------ LayerNorm */
typedef struct {
    int rows, C;
    double eps, *x, *w, *b, *W;
} ln_ctx;

static void ln_ref(double *out, double *mean, double *rstd, const ln_ctx *c) {
    for (int r = 0; r < c->rows; r++) {
        const double *x = c->x + (size_t)r * c->C;
        double mu = 0.0, var = 0.0;
        for (int i = 0; i < c->C; i++) mu += x[i];
        mu /= c->C;
        for (int i = 0; i < c->C; i++) var += (x[i] - mu) * (x[i] - mu);
        var /= c->C;
        const double rs = 1.0 / sqrt(var + c->eps);
        if (mean) mean[r] = mu, rstd[r] = rs;
        for (int i = 0; i < c->C; i++) out[(size_t)r * c->C + i] = (x[i] - mu) * rs * c->w[i] + c->b[i];
    }
}

static double ln_loss(void *p) {
    ln_ctx *c = p;
    double *out = malloc((size_t)c->rows * c->C * sizeof(double));
    ln_ref(out, NULL, NULL, c);
    const double l = dot_d(out, c->W, (int64_t)c->rows * c->C);
    free(out);
    return l;
}

START_TEST(test_layernorm) {
    static const int shapes[][2] = {{5, 13}, {7, 37}, {1, 8}, {3, 768}, {4, 1}, {50, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int rows = shapes[s][0], C = shapes[s][1];
        const int64_t n = (int64_t)rows * C;
        const float eps = 1e-6f;
        /* an offset of 10 checks the statistics do not lose the spread to the mean */
        float *x = frand(n, 9.0, 11.5), *w = frand(C, 0.5, 1.5), *b = frand(C, -0.5, 0.5), *W = frand(n, -1, 1);
        ln_ctx c = {rows, C, eps, to_d(x, n), to_d(w, C), to_d(b, C), to_d(W, n)};

        float *out = fvec(n), *mean = fvec(rows), *rstd = fvec(rows), *out2 = fvec(n);
        k_layernorm_forward(out, mean, rstd, x, w, b, rows, C, eps);
        double *ref = dvec(n), *rmean = dvec(rows), *rrstd = dvec(rows);
        ln_ref(ref, rmean, rrstd, &c);
        expect_close("layernorm out", out, ref, n, FWD_TOL);
        expect_close("layernorm mean", mean, rmean, rows, FWD_TOL);
        expect_close("layernorm rstd", rstd, rrstd, rows, FWD_TOL);
        k_layernorm_forward(out2, NULL, NULL, x, w, b, rows, C, eps);
        ck_assert_msg(memcmp(out, out2, (size_t)n * sizeof(float)) == 0, "layernorm: NULL mean/rstd changed out");

        float *dx = grad_base(n), *dw = grad_base(C), *db = grad_base(C);
        float *dx0 = fcopy(dx, n), *dw0 = fcopy(dw, C), *db0 = fcopy(db, C);
        k_layernorm_backward(dx, dw, db, W, x, w, mean, rstd, rows, C);
        /* dinp = rstd (g - mean(g) - xhat mean(g xhat)), g = dout * w: with one
         * channel g - mean(g) is exactly 0 and every dinp with it, and what
         * float rounding leaves is relative to rstd |g| (~1000 here). */
        double terms = 0.0;
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < C; i++) terms = fmax(terms, rrstd[r] * fabs(c.W[(size_t)r * C + i] * c.w[i]));
        expect_grad_scaled("layernorm dinp", ln_loss, &c, c.x, n, dx, dx0, terms);
        expect_grad("layernorm dweight", ln_loss, &c, c.w, C, dw, dw0);
        expect_grad("layernorm dbias", ln_loss, &c, c.b, C, db, db0);
    }
}
END_TEST

/* ----------------------------------------------------------------- GELU */
typedef struct {
    int64_t n;
    double *x, *W;
} ew_ctx;

static double gelu_d(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double gelu_loss(void *p) {
    ew_ctx *c = p;
    double l = 0.0;
    for (int64_t i = 0; i < c->n; i++) l += gelu_d(c->x[i]) * c->W[i];
    return l;
}

START_TEST(test_gelu) {
    static const int64_t sizes[] = {1, 13, 37, 4096 + 5, 3 * 4096};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int64_t n = sizes[s];
        float *x = frand(n, -6, 6), *W = frand(n, -1, 1);
        x[0] = 0.0f;
        if (n > 2) x[1] = -12.0f, x[2] = 12.0f;
        ew_ctx c = {n, to_d(x, n), to_d(W, n)};
        float *out = fvec(n);
        double *ref = dvec(n);
        k_gelu_forward(out, x, n);
        for (int64_t i = 0; i < n; i++) ref[i] = gelu_d(c.x[i]);
        expect_close("gelu", out, ref, n, FWD_TOL);

        float *dx = grad_base(n), *dx0 = fcopy(dx, n);
        k_gelu_backward(dx, x, W, n);
        expect_grad("gelu dinp", gelu_loss, &c, c.x, n, dx, dx0);
        float *in_place = fcopy(W, n), *zero = fvec(n);
        memset(zero, 0, (size_t)n * sizeof *zero);
        k_activation_backward_in_place(false, in_place, x, n);
        expect_grad("gelu dinp in place", gelu_loss, &c, c.x, n, in_place, zero);
    }
}
END_TEST

/* GELU's backward with the bias gradient in the same pass: dinp as
 * gelu_backward's, and dbias, bit for bit, bias_backward's column sums of
 * that dinp, accumulating into dinp and in place, on 1, 2, 3 and 7 threads
 * (the same bits on each), for widths that fill whole registers of every
 * level, part of one, and threads' column ranges of unequal widths; and with
 * the output again, gelu_forward's, while dinp and dbias keep their bits.
 * dinp and that output are compared to a tolerance where C leaves a
 * part-filled register (C % 16): a compiler may build an element in a
 * register's tail with other instructions than in a whole register, and
 * which elements fall in a tail differs between [rows * C] taken flat and
 * row by row. Where C fills whole registers of every level they must match
 * bit for bit: the recompute then gives fc2's weight gradient the forward's
 * activations exactly. */
static void expect_rows_close(const char *what, const float *got, const float *want, int rows, int C) {
    const int64_t n = (int64_t)rows * C;
    const float tol = C % 16 ? 1e-6f : 0.0f;
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabsf(got[i] - want[i]) <= tol * (1.0f + fabsf(want[i])), "%s [%lld], %d x %d: %.9g, want %.9g",
                      what, (long long)i, rows, C, (double)got[i], (double)want[i]);
}

START_TEST(test_gelu_bias) {
    static const int shapes[][2] = {{1, 1}, {3, 5}, {7, 37}, {33, 16}, {9, 100}, {457, 200}, {130, 384}};
    const int counts[4] = {1, 2, 3, 7}, threads0 = omp_get_max_threads();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int rows = shapes[s][0], C = shapes[s][1];
        const int64_t n = (int64_t)rows * C;
        float *x = frand(n, -4, 4), *g = frand(n, -1, 1), *d0 = frand(n, -1, 1), *b0 = frand(C, -1, 1);
        float *y = fvec(n);
        k_gelu_forward(y, x, n);
        for (int in_place = 0; in_place < 2; in_place++) {
            float *want = fcopy(in_place ? g : d0, n), *first = NULL, *first_b = NULL;
            if (in_place)
                k_activation_backward_in_place(false, want, x, n);
            else
                k_gelu_backward(want, x, g, n);
            for (int k = 0; k < 4; k++) {
                omp_set_num_threads(counts[k]);
                float *got = fcopy(in_place ? g : d0, n), *got_b = fcopy(b0, C), *sums = fcopy(b0, C);
                k_gelu_bias_backward(NULL, got, got_b, x, in_place ? got : g, rows, C);
                expect_rows_close("gelu_bias dinp", got, want, rows, C);
                k_bias_backward(sums, got, rows, C);
                ck_assert_msg(memcmp(sums, got_b, (size_t)C * sizeof(float)) == 0,
                              "gelu_bias dbias, %d x %d, in place %d, %d threads: not bias_backward's sums", rows, C,
                              in_place, counts[k]);
                float *out = fvec(n), *got2 = fcopy(in_place ? g : d0, n), *got2_b = fcopy(b0, C);
                k_gelu_bias_backward(out, got2, got2_b, x, in_place ? got2 : g, rows, C);
                expect_rows_close("gelu_bias out", out, y, rows, C);
                ck_assert_msg(!memcmp(got, got2, (size_t)n * sizeof(float)) &&
                                  !memcmp(got_b, got2_b, (size_t)C * sizeof(float)),
                              "gelu_bias, %d x %d, %d threads: other bits with the output written", rows, C, counts[k]);
                if (k == 0) {
                    first = got, first_b = got_b;
                    continue;
                }
                ck_assert_msg(!memcmp(first, got, (size_t)n * sizeof(float)) &&
                                  !memcmp(first_b, got_b, (size_t)C * sizeof(float)),
                              "gelu_bias, %d x %d: 1 vs %d threads", rows, C, counts[k]);
            }
        }
    }
    omp_set_num_threads(threads0);
}
END_TEST

/* -------------------------------------------------------------- softmax */
typedef struct {
    int rows, C;
    double *x, *W;
} sm_ctx;

static void softmax_ref(double *out, const double *x, int rows, int C) {
    for (int r = 0; r < rows; r++) {
        const double *xr = x + (size_t)r * C;
        double mx = xr[0], sum = 0.0;
        for (int i = 1; i < C; i++) mx = fmax(mx, xr[i]);
        for (int i = 0; i < C; i++) sum += exp(xr[i] - mx);
        for (int i = 0; i < C; i++) out[(size_t)r * C + i] = exp(xr[i] - mx) / sum;
    }
}
static double softmax_loss(void *p) {
    sm_ctx *c = p;
    double *out = malloc((size_t)c->rows * c->C * sizeof(double));
    softmax_ref(out, c->x, c->rows, c->C);
    const double l = dot_d(out, c->W, (int64_t)c->rows * c->C);
    free(out);
    return l;
}

START_TEST(test_softmax) {
    static const int shapes[][3] = {{5, 13, 3}, {7, 37, 3}, {1, 1, 3}, {3, 197, 40}, {1, 50, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int rows = shapes[s][0], C = shapes[s][1];
        const int64_t n = (int64_t)rows * C;
        float *x = frand(n, -shapes[s][2], shapes[s][2]), *W = frand(n, -1, 1);
        sm_ctx c = {rows, C, to_d(x, n), to_d(W, n)};
        float *out = fvec(n);
        double *ref = dvec(n);
        k_softmax_forward(out, x, rows, C);
        softmax_ref(ref, c.x, rows, C);
        expect_close("softmax", out, ref, n, FWD_TOL);

        float *dx = grad_base(n), *dx0 = fcopy(dx, n);
        k_softmax_backward(dx, out, W, rows, C);
        expect_grad("softmax dinp", softmax_loss, &c, c.x, n, dx, dx0);
    }
}
END_TEST

/* Every probability to its own relative precision, over exp's whole range
 * (differences down to -86, row lengths with and without a part-filled last
 * register): the kernel's vector exp within a few 1e-7, like vit_expf in
 * test_vmath. Each row's max is 0, so x - max is exact and its rounding is
 * not counted. A NaN anywhere in a row makes the whole row NaN. */
START_TEST(test_softmax_range) {
    static const int lengths[] = {2, 16, 17, 50, 197};
    for (size_t s = 0; s < sizeof lengths / sizeof lengths[0]; s++) {
        const int C = lengths[s], rows = 64;
        const int64_t n = (int64_t)rows * C;
        float *x = frand(n, -86.0, 0.0);
        for (int r = 0; r < rows; r++) x[(int64_t)r * C + r % C] = 0.0f; /* the max, at every position */
        float *out = fvec(n);
        double *ref = dvec(n), *mag = dvec(n);
        k_softmax_forward(out, x, rows, C);
        for (int r = 0; r < rows; r++) {
            const float *xr = x + (int64_t)r * C;
            double sum = 0.0;
            for (int i = 0; i < C; i++) sum += exp((double)xr[i]);
            for (int i = 0; i < C; i++) ref[(int64_t)r * C + i] = exp((double)xr[i]) / sum;
        }
        for (int64_t i = 0; i < n; i++) mag[i] = fabs(ref[i]);
        expect_close_to("softmax over exp's range", out, ref, mag, n, 1e-6);

        x[C / 2] = NAN;
        k_softmax_forward(out, x, rows, C);
        for (int i = 0; i < C; i++) ck_assert_msg(isnan(out[i]), "softmax: row with a NaN, [%d] = %g", i, out[i]);
        ck_assert(!isnan(out[C]));
    }
}
END_TEST

/* ------------------------------------------------------------ attention */
typedef struct {
    int B, T, H, hd;
    double scale;
    float drop_p;
    uint64_t key;
    double *qkv, *W;
} at_ctx;

static double drop_factor(const at_ctx *c, uint64_t idx) {
    if (c->drop_p <= 0.0f) return 1.0;
    return vit_rng_uniform(c->key, idx) >= c->drop_p ? 1.0 / (1.0 - c->drop_p) : 0.0;
}

/* out [B, T, H*hd], probs [B, H, T, T] (may be NULL) */
static void attn_ref(double *out, double *probs, const at_ctx *c) {
    const int B = c->B, T = c->T, H = c->H, hd = c->hd;
    double *s = malloc((size_t)T * sizeof(double));
#define QKV(b, t, part, h, d) c->qkv[((((size_t)(b) * T + (t)) * 3 + (part)) * H + (h)) * hd + (d)]
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j < T; j++) {
                    double dot = 0.0;
                    for (int d = 0; d < hd; d++) dot += QKV(b, i, 0, h, d) * QKV(b, j, 1, h, d);
                    s[j] = dot * c->scale;
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < T; j++) sum += s[j] = exp(s[j] - mx);
                const uint64_t row = (((uint64_t)b * H + h) * T + i) * T;
                for (int j = 0; j < T; j++) {
                    s[j] /= sum;
                    if (probs) probs[row + j] = s[j];
                }
                for (int d = 0; d < hd; d++) {
                    double o = 0.0;
                    for (int j = 0; j < T; j++) o += s[j] * drop_factor(c, row + j) * QKV(b, j, 2, h, d);
                    out[(((size_t)b * T + i) * H + h) * hd + d] = o;
                }
            }
#undef QKV
    free(s);
}

static double attn_loss(void *p) {
    at_ctx *c = p;
    const int64_t n = (int64_t)c->B * c->T * c->H * c->hd;
    double *out = malloc((size_t)n * sizeof(double));
    attn_ref(out, NULL, c);
    const double l = dot_d(out, c->W, n);
    free(out);
    return l;
}

/* shapes: B, T, H, hd, drop_p * 100, whether to check the backward; from
 * 128 tokens without dropout the forward goes through gemm. Whole and
 * partial register tiles: hd 16, 32, 48 and odd; T = 8 k + 4 + 1, 8 k + 2
 * (Fashion-MNIST's 50) and a T kept with dropout (130). */
static const int attn_shapes[][6] = {
    {1, 5, 3, 5, 0, 1},    {2, 7, 3, 5, 25, 1},   {1, 50, 2, 7, 0, 1},  {1, 50, 1, 13, 30, 1},
    {2, 1, 1, 3, 0, 1},    {1, 197, 2, 64, 10, 0}, {2, 50, 2, 32, 0, 0}, {2, 197, 3, 64, 0, 0},
    {2, 130, 2, 5, 0, 1},  {1, 50, 2, 32, 0, 1},  {2, 13, 2, 16, 20, 1}, {1, 40, 1, 48, 0, 1},
    {1, 130, 1, 16, 20, 1},
};

START_TEST(test_attention) {
    for (size_t s = 0; s < sizeof attn_shapes / sizeof attn_shapes[0]; s++) {
        const int B = attn_shapes[s][0], T = attn_shapes[s][1], H = attn_shapes[s][2], hd = attn_shapes[s][3];
        const float drop_p = (float)attn_shapes[s][4] / 100.0f, scale = 1.0f / sqrtf((float)hd);
        const int64_t nqkv = (int64_t)B * T * 3 * H * hd, nout = (int64_t)B * T * H * hd,
                      np = (int64_t)B * H * T * T;
        float *qkv = frand(nqkv, -1.5, 1.5), *W = frand(nout, -1, 1);
        at_ctx c = {B, T, H, hd, scale, drop_p, 0x5eedull + s, to_d(qkv, nqkv), to_d(W, nout)};

        float *out = fvec(nout), *probs = fvec(np), *out_inf = fvec(nout);
        ck_assert_int_eq(k_attention_forward(out, probs, qkv, B, T, H, hd, scale, drop_p, c.key, NULL), VIT_OK);
        double *ref = dvec(nout), *rprobs = dvec(np);
        attn_ref(ref, rprobs, &c);
        /* out is a weighted mean of v and cancels: judged against sum p |v|,
         * the magnitude float summation errors scale with */
        double *mag = dvec(nout);
        at_ctx ca = c;
        ca.qkv = dvec(nqkv);
        for (int64_t i = 0; i < nqkv; i++) ca.qkv[i] = i / hd % (3 * H) >= 2 * H ? fabs(c.qkv[i]) : c.qkv[i];
        attn_ref(mag, NULL, &ca);
        expect_close_to("attention out", out, ref, mag, nout, FWD_TOL);
        if (att_probs_read) expect_close("attention probs", probs, rprobs, np, FWD_TOL);
        /* Inference (probs NULL) keeps nothing, and is the same code with the
         * same bits, except on the CPU at AVX2 and AVX-512 from 128 tokens
         * without dropout, where it takes the register tiles instead of the
         * products: that road must meet the reference on its own. */
        ck_assert_int_eq(k_attention_forward(out_inf, NULL, qkv, B, T, H, hd, scale, drop_p, c.key, NULL), VIT_OK);
        expect_close_to("attention out (inference)", out_inf, ref, mag, nout, FWD_TOL);
        const bool other_road = T >= 128 && drop_p == 0.0f && (!strcmp(be->ops->name, "cpu-avx2") ||
                                                               !strcmp(be->ops->name, "cpu-avx512"));
        if (!other_road)
            ck_assert_msg(memcmp(out, out_inf, (size_t)nout * sizeof(float)) == 0, "attention: probs NULL changed out");

        /* A fresh dqkv (accumulate false) is written and never read: the NaN
         * in it must go, and the gradient be the one added to zeros, bit for
         * bit (by the register tiles, and from 128 tokens by the products). */
        float *added = fvec(nqkv), *written = fvec(nqkv);
        for (int64_t i = 0; i < nqkv; i++) written[i] = NAN;
        ck_assert_int_eq(k_attention_backward(added, true, W, qkv, probs, B, T, H, hd, scale, drop_p, c.key, NULL),
                         VIT_OK);
        ck_assert_int_eq(k_attention_backward(written, false, W, qkv, probs, B, T, H, hd, scale, drop_p, c.key, NULL),
                         VIT_OK);
        ck_assert_msg(memcmp(added, written, (size_t)nqkv * sizeof(float)) == 0,
                      "attention (shape %zu): a fresh dqkv's gradient is not the one added to zeros", s);

        if (!attn_shapes[s][5]) continue;
        float *dqkv = grad_base(nqkv), *dqkv0 = fcopy(dqkv, nqkv);
        ck_assert_int_eq(k_attention_backward(dqkv, true, W, qkv, probs, B, T, H, hd, scale, drop_p, c.key, NULL),
                         VIT_OK);
        expect_grad("attention dqkv", attn_loss, &c, c.qkv, nqkv, dqkv, dqkv0);
    }
    /* backward without the saved state, where the backend keeps one, is refused, not a crash */
    float x[3 * 4 * 128] = {0}, g[4 * 128] = {0};
    static const int refused_T[] = {1, 128};
    for (int i = 0; i < 2; i++) {
        const int T = refused_T[i];
        size_t saved_bytes, scratch_bytes;
        be->ops->attention_sizes(be, 1, T, 1, 4, &saved_bytes, &scratch_bytes);
        if (saved_bytes)
            ck_assert_int_eq(k_attention_backward(x, true, g, x, NULL, 1, T, 1, 4, 1.0f, 0.0f, 0, NULL),
                             VIT_ERR_INVALID_ARGUMENT);
    }
}
END_TEST

/* With v = the identity (hd = T), out[b, i, h, :] is row i of the dropped
 * attention matrix, so the mask can be read off the kernel's own output. */
START_TEST(test_attention_dropout_mask) {
    const int B = 4, T = 50, H = 2, hd = T;
    const float p = 0.3f, scale = 0.2f, keep = 1.0f / (1.0f - p);
    const uint64_t key = 0xABCDEFull;
    const int64_t nqkv = (int64_t)B * T * 3 * H * hd, nout = (int64_t)B * T * H * hd, np = (int64_t)B * H * T * T;
    float *qkv = frand(nqkv, -1, 1);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++)
                for (int d = 0; d < hd; d++) qkv[((((size_t)b * T + t) * 3 + 2) * H + h) * hd + d] = t == d;

    float *out[3], *probs[3], *dqkv[3];
    float *dout = frand(nout, -1, 1);
    const int threads0 = omp_get_max_threads();
    for (int k = 0; k < 3; k++) {
        omp_set_num_threads(k + 1);
        out[k] = fvec(nout), probs[k] = fvec(np), dqkv[k] = fvec(nqkv);
        ck_assert_int_eq(k_attention_forward(out[k], probs[k], qkv, B, T, H, hd, scale, p, key, NULL), VIT_OK);
        ck_assert_int_eq(k_attention_backward(dqkv[k], true, dout, qkv, probs[k], B, T, H, hd, scale, p, key, NULL),
                         VIT_OK);
    }
    omp_set_num_threads(threads0);
    for (int k = 1; k < 3; k++) {
        ck_assert_msg(memcmp(out[0], out[k], (size_t)nout * sizeof(float)) == 0, "attention out: 1 vs %d threads",
                      k + 1);
        ck_assert_msg(memcmp(dqkv[0], dqkv[k], (size_t)nqkv * sizeof(float)) == 0, "attention dqkv: 1 vs %d threads",
                      k + 1);
    }
    /* The kernel's own probabilities where it keeps them, else the
     * double-precision reference's (dropout does not change them). */
    double *rprobs = dvec(np), *rout = dvec(nout);
    at_ctx c = {B, T, H, hd, scale, 0.0f, key, to_d(qkv, nqkv), NULL};
    attn_ref(rout, rprobs, &c);
    const float tol = att_probs_read ? 1e-6f : 1e-5f;
    int64_t kept = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++)
                for (int j = 0; j < T; j++) {
                    const float a = out[0][(((size_t)b * T + i) * H + h) * hd + j];
                    const size_t at = (((size_t)b * H + h) * T + i) * T + j;
                    const float pr = att_probs_read ? probs[0][at] : (float)rprobs[at];
                    const uint64_t e = (((uint64_t)b * H + h) * T + i) * T + j;
                    const int want = vit_rng_uniform(key, e) >= p;
                    ck_assert_msg(want ? fabsf(a - pr * keep) <= tol * (1.0f + pr) : a == 0.0f,
                                  "attention dropout at %llu: out %g, prob %g, kept %d", (unsigned long long)e,
                                  (double)a, (double)pr, want);
                    kept += a != 0.0f;
                }
    const double frac = (double)kept / (double)np; /* np = 20000: sd of the fraction ~0.003 */
    ck_assert_msg(fabs(frac - (1.0 - p)) < 0.02, "attention dropout kept %.4f, expected ~%.2f", frac, 1.0 - p);
}
END_TEST

/* -------------------------------------------------------- cross-entropy */
typedef struct {
    int B, C;
    double s, dloss, *x;
    const int32_t *labels;
} ce_ctx;

static double ce_ref(double *probs, const ce_ctx *c) {
    double total = 0.0;
    for (int b = 0; b < c->B; b++) {
        const double *x = c->x + (size_t)b * c->C;
        double mx = x[0], sum = 0.0, sum_lp = 0.0;
        for (int i = 1; i < c->C; i++) mx = fmax(mx, x[i]);
        for (int i = 0; i < c->C; i++) sum += exp(x[i] - mx);
        const double lse = mx + log(sum);
        for (int i = 0; i < c->C; i++) {
            sum_lp += x[i] - lse;
            if (probs) probs[(size_t)b * c->C + i] = exp(x[i] - lse);
        }
        total += -(1.0 - c->s) * (x[c->labels[b]] - lse) - c->s / c->C * sum_lp;
    }
    return total / c->B;
}
static double ce_loss(void *p) {
    ce_ctx *c = p;
    return c->dloss * ce_ref(NULL, c);
}

START_TEST(test_cross_entropy) {
    static const int shapes[][3] = {{1, 13, 4}, {5, 37, 4}, {7, 1000, 30}, {3, 1, 4}, {130, 10, 4}};
    static const float smooth[] = {0.0f, 0.1f};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int k = 0; k < 2; k++) {
            const int B = shapes[s][0], C = shapes[s][1];
            const int64_t n = (int64_t)B * C;
            float *x = frand(n, -shapes[s][2], shapes[s][2]), *probs = fvec(n);
            int32_t *labels = tmalloc((size_t)B * sizeof(int32_t));
            for (int b = 0; b < B; b++) labels[b] = (int32_t)(urand() * C);
            ce_ctx c = {B, C, smooth[k], 0.7, to_d(x, n), labels};

            const float loss = k_cross_entropy_forward(probs, x, labels, B, C, smooth[k]);
            double *rprobs = dvec(n);
            const double rloss = ce_ref(rprobs, &c);
            ck_assert_msg(rel_err(loss, rloss, 1e-6) <= FWD_TOL, "cross-entropy loss %.9g, reference %.9g",
                          (double)loss, rloss);
            expect_close("cross-entropy probs", probs, rprobs, n, FWD_TOL);

            float *dx = grad_base(n), *dx0 = fcopy(dx, n);
            k_cross_entropy_backward(dx, probs, labels, B, C, smooth[k], (float)c.dloss);
            expect_grad("cross-entropy dlogits", ce_loss, &c, c.x, n, dx, dx0);
        }
}
END_TEST

/* ------------------------------------------------------------- patches */
typedef struct {
    int B, Cin, H, W, p;
    double *img, *Wt;
} pt_ctx;

static double patch_loss(void *q) {
    pt_ctx *c = q;
    const int gh = c->H / c->p, gw = c->W / c->p, K = c->Cin * c->p * c->p;
    double l = 0.0;
    for (int b = 0; b < c->B; b++)
        for (int gy = 0; gy < gh; gy++)
            for (int gx = 0; gx < gw; gx++)
                for (int ch = 0; ch < c->Cin; ch++)
                    for (int i = 0; i < c->p; i++)
                        for (int j = 0; j < c->p; j++) {
                            const size_t pi = ((size_t)b * gh * gw + gy * gw + gx) * K + (ch * c->p + i) * c->p + j;
                            const size_t ii = (((size_t)b * c->Cin + ch) * c->H + gy * c->p + i) * c->W + gx * c->p + j;
                            l += c->img[ii] * c->Wt[pi];
                        }
    return l;
}

START_TEST(test_patchify) {
    static const int shapes[][5] = {{2, 3, 10, 15, 5}, {1, 3, 7, 9, 3}, {1, 1, 4, 4, 1}, {2, 2, 6, 6, 6}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int B = shapes[s][0], Cin = shapes[s][1], H = shapes[s][2], W = shapes[s][3], p = shapes[s][4];
        const int gh = H / p, gw = W / p, N = gh * gw, K = Cin * p * p;
        const int64_t ni = (int64_t)B * Cin * H * W, np = (int64_t)B * N * K;
        float *img = frand(ni, -1, 1), *patches = fvec(np), *Wt = frand(np, -1, 1);
        k_patchify(patches, img, B, Cin, H, W, p);
        /* a copy: exact, element by element from the definition */
        for (int b = 0; b < B; b++)
            for (int n = 0; n < N; n++)
                for (int k = 0; k < K; k++) {
                    const int ch = k / (p * p), i = k / p % p, j = k % p, y = n / gw * p + i, x = n % gw * p + j;
                    ck_assert(patches[((size_t)b * N + n) * K + k] == img[(((size_t)b * Cin + ch) * H + y) * W + x]);
                }
        pt_ctx c = {B, Cin, H, W, p, to_d(img, ni), to_d(Wt, np)};
        float *dimg = grad_base(ni), *dimg0 = fcopy(dimg, ni);
        k_unpatchify_add(dimg, Wt, B, Cin, H, W, p);
        expect_grad("unpatchify dimages", patch_loss, &c, c.img, ni, dimg, dimg0);
        /* pixels beyond the last whole patch get exactly nothing */
        for (int b = 0; b < B; b++)
            for (int ch = 0; ch < Cin; ch++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++)
                        if (y >= gh * p || x >= gw * p) {
                            const size_t i = (((size_t)b * Cin + ch) * H + y) * W + x;
                            ck_assert(dimg[i] == dimg0[i]);
                        }
    }
}
END_TEST

/* ------------------------------------------------------ token embedding */
typedef struct {
    int B, N, D;
    double *patch, *cls, *pos, *W;
} em_ctx;

static double embed_loss(void *q) {
    em_ctx *c = q;
    double l = 0.0;
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t <= c->N; t++)
            for (int d = 0; d < c->D; d++) {
                const double src = t == 0 ? c->cls[d] : c->patch[((size_t)b * c->N + t - 1) * c->D + d];
                l += (src + c->pos[(size_t)t * c->D + d]) * c->W[(((size_t)b * (c->N + 1)) + t) * c->D + d];
            }
    return l;
}

START_TEST(test_embed_tokens) {
    static const int shapes[][3] = {{3, 7, 13}, {1, 4, 5}, {2, 49, 37}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int B = shapes[s][0], N = shapes[s][1], D = shapes[s][2];
        const int64_t np = (int64_t)B * N * D, nt = (int64_t)B * (N + 1) * D, npos = (int64_t)(N + 1) * D;
        float *patch = frand(np, -1, 1), *cls = frand(D, -1, 1), *pos = frand(npos, -1, 1), *W = frand(nt, -1, 1);
        em_ctx c = {B, N, D, to_d(patch, np), to_d(cls, D), to_d(pos, npos), to_d(W, nt)};
        float *tok = fvec(nt);
        k_embed_tokens_forward(tok, patch, cls, pos, B, N, D);
        double *ref = dvec(nt);
        for (int b = 0; b < B; b++)
            for (int t = 0; t <= N; t++)
                for (int d = 0; d < D; d++)
                    ref[((size_t)b * (N + 1) + t) * D + d] =
                        (double)(float)((t ? patch[((size_t)b * N + t - 1) * D + d] : cls[d]) + pos[(size_t)t * D + d]);
        expect_close("embed tokens", tok, ref, nt, 0.0);

        float *dp = grad_base(np), *dc = grad_base(D), *dq = grad_base(npos);
        float *dp0 = fcopy(dp, np), *dc0 = fcopy(dc, D), *dq0 = fcopy(dq, npos);
        k_embed_tokens_backward(dp, dc, dq, W, B, N, D);
        expect_grad("embed dpatch", embed_loss, &c, c.patch, np, dp, dp0);
        expect_grad("embed dcls", embed_loss, &c, c.cls, D, dc, dc0);
        expect_grad("embed dpos", embed_loss, &c, c.pos, npos, dq, dq0);
        /* NULL gradients are skipped, the others still computed */
        float *dq2 = fcopy(dq0, npos);
        k_embed_tokens_backward(NULL, NULL, dq2, W, B, N, D);
        ck_assert(memcmp(dq, dq2, (size_t)npos * sizeof(float)) == 0);
    }
}
END_TEST

/* ------------------------------------------------------------ residual */
typedef struct {
    int B;
    int64_t per;
    const float *scale;
    double *x, *y, *W;
} rs_ctx;

static double residual_loss(void *q) {
    rs_ctx *c = q;
    double l = 0.0;
    for (int b = 0; b < c->B; b++)
        for (int64_t i = 0; i < c->per; i++) {
            const int64_t k = b * c->per + i;
            l += (c->x[k] + (c->scale ? c->scale[b] : 1.0) * c->y[k]) * c->W[k];
        }
    return l;
}

START_TEST(test_residual) {
    static const int64_t pers[] = {37, 8192 * 2 + 13};
    float scale[3] = {0.0f, 1.0f / 0.8f, 1.0f};
    for (size_t s = 0; s < 2; s++)
        for (int use_scale = 0; use_scale < 2; use_scale++) {
            const int B = 3;
            const int64_t per = pers[s], n = B * per;
            float *x = frand(n, -1, 1), *y = frand(n, -1, 1), *W = frand(n, -1, 1), *out = fvec(n);
            const float *sc = use_scale ? scale : NULL;
            rs_ctx c = {B, per, sc, to_d(x, n), to_d(y, n), to_d(W, n)};
            k_residual_forward(out, x, y, sc, B, per);
            double *ref = dvec(n);
            for (int64_t k = 0; k < n; k++) ref[k] = c.x[k] + (sc ? sc[k / per] : 1.0) * c.y[k];
            expect_close("residual", out, ref, n, FWD_TOL);
            /* out aliasing x */
            float *xa = fcopy(x, n);
            k_residual_forward(xa, xa, y, sc, B, per);
            ck_assert(memcmp(xa, out, (size_t)n * sizeof(float)) == 0);

            float *dx = grad_base(n), *dy = grad_base(n), *dx0 = fcopy(dx, n), *dy0 = fcopy(dy, n);
            k_residual_backward(dx, dy, W, sc, B, per);
            expect_grad("residual dx", residual_loss, &c, c.x, n, dx, dx0);
            expect_grad("residual dy", residual_loss, &c, c.y, n, dy, dy0);
            k_residual_backward(NULL, dy0, W, sc, B, per);
            ck_assert(memcmp(dy, dy0, (size_t)n * sizeof(float)) == 0);
        }
}
END_TEST

/* ------------------------------------------------------------- dropout */
START_TEST(test_dropout) {
    const int64_t n = 100003;
    const float p = 0.3f, keep = 1.0f / (1.0f - p);
    const uint64_t key = 77;
    float *x = frand(n, 0.5, 1.5), *out[3];
    const int threads0 = omp_get_max_threads();
    for (int k = 0; k < 3; k++) {
        omp_set_num_threads(k + 1);
        out[k] = fvec(n);
        k_dropout_forward(out[k], x, n, p, key);
    }
    omp_set_num_threads(threads0);
    ck_assert_msg(memcmp(out[0], out[1], (size_t)n * sizeof(float)) == 0, "dropout: 1 vs 2 threads differ");
    ck_assert_msg(memcmp(out[0], out[2], (size_t)n * sizeof(float)) == 0, "dropout: 1 vs 3 threads differ");
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        const int want = vit_rng_uniform(key, (uint64_t)i) >= p;
        ck_assert(out[0][i] == (want ? x[i] * keep : 0.0f));
        kept += want;
    }
    const double frac = (double)kept / (double)n; /* sd ~0.0015 */
    ck_assert_msg(fabs(frac - 0.7) < 0.01, "dropout kept %.4f", frac);

    /* in place gives the same; another key another mask */
    float *xa = fcopy(x, n), *other = fvec(n);
    k_dropout_forward(xa, xa, n, p, key);
    ck_assert(memcmp(xa, out[0], (size_t)n * sizeof(float)) == 0);
    k_dropout_forward(other, x, n, p, key + 1);
    ck_assert(memcmp(other, out[0], (size_t)n * sizeof(float)) != 0);

    /* backward: the same mask and scale, added (a linear map: FD is exact) */
    float *dout = frand(n, -1, 1), *dx = grad_base(n), *dx0 = fcopy(dx, n);
    k_dropout_backward(dx, dout, n, p, key);
    for (int64_t i = 0; i < n; i++) {
        const float want = dx0[i] + (vit_rng_uniform(key, (uint64_t)i) >= p ? dout[i] * keep : 0.0f);
        ck_assert_msg(dx[i] == want, "dropout backward [%lld]", (long long)i);
    }
    /* p = 0 is the identity, p = 1 drops everything */
    float *id = fvec(n);
    k_dropout_forward(id, x, n, 0.0f, key);
    ck_assert(memcmp(id, x, (size_t)n * sizeof(float)) == 0);
    k_dropout_forward(id, x, n, 1.0f, key);
    for (int64_t i = 0; i < n; i++) ck_assert(id[i] == 0.0f);
}
END_TEST

/* ------------------------------------------------------------- pooling */
typedef struct {
    int B, T, D, avg, skip;
    double *tok, *W;
} pl_ctx;

static void pool_ref(double *out, const pl_ctx *c) {
    for (int b = 0; b < c->B; b++)
        for (int d = 0; d < c->D; d++) {
            double s = 0.0;
            if (c->avg)
                for (int t = c->skip; t < c->T; t++) s += c->tok[((size_t)b * c->T + t) * c->D + d] / (c->T - c->skip);
            else
                s = c->tok[(size_t)b * c->T * c->D + d];
            out[(size_t)b * c->D + d] = s;
        }
}
static double pool_loss(void *q) {
    pl_ctx *c = q;
    double *out = malloc((size_t)c->B * c->D * sizeof(double));
    pool_ref(out, c);
    const double l = dot_d(out, c->W, (int64_t)c->B * c->D);
    free(out);
    return l;
}

START_TEST(test_pool) {
    static const int shapes[][3] = {{3, 7, 13}, {1, 50, 37}, {2, 2, 5}};
    /* {avg, skip}: the class token; the mean after the class token, of every
     * token (no class token), after a class token and 2 registers */
    static const int modes[][2] = {{0, 1}, {1, 1}, {1, 0}, {1, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
            const int B = shapes[s][0], T = shapes[s][1], D = shapes[s][2], avg = modes[m][0], skip = modes[m][1];
            if (avg && skip >= T) continue;
            const int64_t nt = (int64_t)B * T * D, no = (int64_t)B * D;
            float *tok = frand(nt, -1, 1), *W = frand(no, -1, 1), *out = fvec(no);
            pl_ctx c = {B, T, D, avg, skip, to_d(tok, nt), to_d(W, no)};
            double *ref = dvec(no);
            k_pool_forward(out, tok, B, T, D, avg, skip);
            pool_ref(ref, &c);
            expect_close("pool", out, ref, no, FWD_TOL);
            float *dt = grad_base(nt), *dt0 = fcopy(dt, nt);
            k_pool_backward(dt, W, B, T, D, avg, skip);
            expect_grad("pool dtokens", pool_loss, &c, c.tok, nt, dt, dt0);
        }
}
END_TEST

/* ------------------------------------------------------- add and bias */
typedef struct {
    int rows, C;
    double *bias, *W;
} bs_ctx;

static double bias_loss(void *q) { /* out = x + bias per row; the x part is constant */
    bs_ctx *c = q;
    double l = 0.0;
    for (int r = 0; r < c->rows; r++)
        for (int i = 0; i < c->C; i++) l += c->bias[i] * c->W[(size_t)r * c->C + i];
    return l;
}

START_TEST(test_add_bias) {
    const int64_t n = 8192 * 9 + 5;
    float *a = frand(n, -1, 1), *b = frand(n, -1, 1), *out = fvec(n);
    k_add(out, a, b, n);
    for (int64_t i = 0; i < n; i++) ck_assert(out[i] == a[i] + b[i]);
    float *a2 = fcopy(a, n);
    k_add(a2, a2, b, n);
    ck_assert(memcmp(a2, out, (size_t)n * sizeof(float)) == 0);

    static const int shapes[][2] = {{5, 13}, {197, 37}, {1, 130}, {400, 200}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int rows = shapes[s][0], C = shapes[s][1];
        float *W = frand((int64_t)rows * C, -1, 1), *db = grad_base(C), *db0 = fcopy(db, C);
        bs_ctx c = {rows, C, dvec(C), to_d(W, (int64_t)rows * C)};
        k_bias_backward(db, W, rows, C);
        expect_grad("bias dbias", bias_loss, &c, c.bias, C, db, db0);
    }
}
END_TEST

/* --------------------------------------------------- bicubic resampling */
/* Written from the documented algorithm (Keys' cubic convolution, A = -0.75,
 * half-pixel source coordinates without clamping, clamped taps), not from the
 * kernel: the kernel writes the four weights as t+1, t, 1-t, 2-t polynomials,
 * this evaluates the kernel function W(|x|) at each tap's distance. */
static double keys_w(double x) {
    const double A = -0.75;
    x = fabs(x);
    if (x <= 1.0) return ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    if (x < 2.0) return A * x * x * x - 5.0 * A * x * x + 8.0 * A * x - 4.0 * A;
    return 0.0;
}

typedef struct {
    int gh_in, gw_in, gh_out, gw_out, D;
    double *in, *W;
} rz_ctx;

/* absolute: the sum of |in| over the 16 taps instead, the scale of the float
 * error: float weights are cubics whose terms cancel (|terms| up to 4|A| for
 * weights near 0), so each carries an absolute error of ~1e-7 whatever its size. */
static void resample_ref(double *out, const rz_ctx *c, int absolute) {
    for (int oy = 0; oy < c->gh_out; oy++)
        for (int ox = 0; ox < c->gw_out; ox++)
            for (int d = 0; d < c->D; d++) {
                const double sy = (oy + 0.5) * c->gh_in / c->gh_out - 0.5, sx = (ox + 0.5) * c->gw_in / c->gw_out - 0.5;
                const int fy = (int)floor(sy), fx = (int)floor(sx);
                double acc = 0.0;
                for (int ty = fy - 1; ty <= fy + 2; ty++)
                    for (int tx = fx - 1; tx <= fx + 2; tx++) {
                        const int iy = ty < 0 ? 0 : ty >= c->gh_in ? c->gh_in - 1 : ty;
                        const int ix = tx < 0 ? 0 : tx >= c->gw_in ? c->gw_in - 1 : tx;
                        const double w = keys_w(sy - ty) * keys_w(sx - tx);
                        const double v = c->in[((size_t)iy * c->gw_in + ix) * c->D + d];
                        acc += absolute ? fabs(v) : w * v;
                    }
                out[((size_t)oy * c->gw_out + ox) * c->D + d] = acc;
            }
}
static double resample_loss(void *q) {
    rz_ctx *c = q;
    const int64_t n = (int64_t)c->gh_out * c->gw_out * c->D;
    double *out = malloc((size_t)n * sizeof(double));
    resample_ref(out, c, 0);
    const double l = dot_d(out, c->W, n);
    free(out);
    return l;
}

START_TEST(test_resample) {
    /* gh_in, gw_in, gh_out, gw_out, D */
    static const int shapes[][5] = {{14, 14, 24, 24, 5}, {7, 7, 5, 5, 3},  {5, 7, 9, 3, 13}, {1, 1, 3, 3, 2},
                                    {3, 3, 1, 1, 2},     {2, 2, 7, 7, 3},  {6, 5, 6, 5, 3},  {4, 6, 4, 11, 37},
                                    {16, 16, 7, 7, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int hi = shapes[s][0], wi = shapes[s][1], ho = shapes[s][2], wo = shapes[s][3], D = shapes[s][4];
        const int64_t ni = (int64_t)hi * wi * D, no = (int64_t)ho * wo * D;
        float *in = frand(ni, -1, 1), *W = frand(no, -1, 1), *out = fvec(no);
        rz_ctx c = {hi, wi, ho, wo, D, to_d(in, ni), to_d(W, no)};
        k_resample_bicubic(out, ho, wo, in, hi, wi, D);
        /* judged against the taps' magnitude, not |out|: see resample_ref */
        double *ref = dvec(no), *mag = dvec(no);
        resample_ref(ref, &c, 0);
        resample_ref(mag, &c, 1);
        expect_close_to("resample", out, ref, mag, no, FWD_TOL);
        if (hi == ho && wi == wo)
            ck_assert_msg(memcmp(in, out, (size_t)ni * sizeof(float)) == 0, "resample: same size is not the identity");

        float *dx = grad_base(ni), *dx0 = fcopy(dx, ni);
        k_resample_bicubic_backward(dx, hi, wi, W, ho, wo, D);
        expect_grad("resample dinp", resample_loss, &c, c.in, ni, dx, dx0);
    }
    /* one axis unchanged: that axis is still exactly copied (weights 0, 1, 0, 0) */
    const int hi = 5, wi = 4, ho = 5, wo = 9, D = 3;
    float *in = frand(hi * wi * D, -1, 1), *out = fvec(ho * wo * D);
    k_resample_bicubic(out, ho, wo, in, hi, wi, D);
    float *tin = fvec(wi * D), *tout = fvec(wo * D);
    for (int y = 0; y < hi; y++) {
        memcpy(tin, in + y * wi * D, (size_t)wi * D * sizeof(float));
        k_resample_bicubic(tout, 1, wo, tin, 1, wi, D);
        ck_assert_msg(memcmp(tout, out + y * wo * D, (size_t)wo * D * sizeof(float)) == 0, "resample row %d", y);
    }
}
END_TEST

/* ---------------------------------------------------------------- AdamW */
START_TEST(test_adamw) {
    const int64_t n = 8192 * 2 + 37;
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, gscale = 0.5f;
    static const float wds[] = {0.05f, 0.0f};
    for (int k = 0; k < 2; k++) {
        float *p = frand(n, -1, 1), *m = fvec(n), *v = fvec(n);
        double *rp = to_d(p, n), *rm = dvec(n), *rv = dvec(n);
        for (int step = 1; step <= 5; step++) {
            float *g = frand(n, -2, 2);
            if (step == 3) g[0] = 0.0f, g[1] = 1e-6f;
            const double bc1 = 1.0 - pow(b1, step), bc2 = 1.0 - pow(b2, step);
            k_adamw_update(p, m, v, g, n, lr, b1, b2, eps, wds[k], (float)bc1, (float)bc2, gscale);
            for (int64_t i = 0; i < n; i++) { /* torch.optim.AdamW, in double */
                const double gi = (double)g[i] * gscale;
                rp[i] *= 1.0 - (double)lr * wds[k];
                rm[i] = b1 * rm[i] + (1.0 - b1) * gi;
                rv[i] = b2 * rv[i] + (1.0 - b2) * gi * gi;
                rp[i] -= lr / bc1 * rm[i] / (sqrt(rv[i]) / sqrt(bc2) + eps);
            }
        }
        expect_close("adamw param", p, rp, n, FWD_TOL);
        expect_close("adamw exp_avg", m, rm, n, FWD_TOL);
        expect_close("adamw exp_avg_sq", v, rv, n, FWD_TOL);
    }
    /* the first step moves every weight by ~lr whatever the gradient's size */
    float pp[3] = {0.0f, 0.0f, 0.0f}, mm[3] = {0}, vv[3] = {0}, gg[3] = {1e-3f, -5.0f, 1e3f};
    k_adamw_update(pp, mm, vv, gg, 3, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.1f, 0.001f, 1.0f);
    ck_assert(fabsf(pp[0] + 0.01f) < 1e-6f && fabsf(pp[1] - 0.01f) < 1e-6f && fabsf(pp[2] + 0.01f) < 1e-6f);
}
END_TEST

START_TEST(test_sum_squares) {
    static const int64_t sizes[] = {0, 1, 7, 13, 255, 257, 100003};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int64_t n = sizes[s];
        float *x = frand(n, -3, 3);
        double ref = 0.0;
        for (int64_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
        const double got = k_sum_squares(x, n);
        ck_assert_msg(fabs(got - ref) <= 1e-12 * (ref + 1e-300), "sum_squares(%lld) = %.17g, reference %.17g",
                      (long long)n, got, ref);
    }
}
END_TEST

/* ------------------------------------------------- accumulation, threads */
/* A second backward call adds the same amount again: from zero, twice the
 * first. Not bit-exact where a kernel adds several contributions straight
 * into the buffer (attention's dK, dV, the resample scatter), so to 1e-6 of
 * the largest entry: an assignment instead of += would be off by 100%. */
START_TEST(test_accumulate_twice) {
    const int rows = 7, C = 37, B = 2, T = 7, H = 3, hd = 5, gh = 3, gw = 4;
    const int64_t n = (int64_t)rows * C, nqkv = (int64_t)B * T * 3 * H * hd, nout = (int64_t)B * T * H * hd;
    float *x = frand(n, -2, 2), *w = frand(C, 0.5, 1.5), *b = frand(C, -1, 1), *g = frand(n, -1, 1);
    float *gr = frand(5 * 6 * C, -1, 1); /* dout of a 3x4 -> 5x6 resample */
    float *y = fvec(n), *mean = fvec(rows), *rstd = fvec(rows);
    k_layernorm_forward(y, mean, rstd, x, w, b, rows, C, 1e-5f);
    float *grads[2][12];
    int32_t labels[7] = {0, 5, 36, 1, 2, 3, 4};
    float *qkv = frand(nqkv, -1, 1), *probs = fvec((int64_t)B * H * T * T), *o = fvec(nout);
    ck_assert_int_eq(k_attention_forward(o, probs, qkv, B, T, H, hd, 0.4f, 0.2f, 9, NULL), VIT_OK);
    float *smax = fvec(n);
    k_softmax_forward(smax, x, rows, C);
    float *ce = fvec(n);
    k_cross_entropy_forward(ce, x, labels, rows, C, 0.1f);
    const int sizes[12] = {(int)n, C, C, (int)n, (int)n, (int)nqkv, (int)n, gh * gw * C, C, (int)n, (int)n, (int)n};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 12; i++) grads[k][i] = fvec(sizes[i]);
        for (int rep = 0; rep <= k; rep++) {
            k_layernorm_backward(grads[k][0], grads[k][1], grads[k][2], g, x, w, mean, rstd, rows, C);
            k_gelu_backward(grads[k][3], x, g, n);
            k_softmax_backward(grads[k][4], smax, g, rows, C);
            ck_assert_int_eq(k_attention_backward(grads[k][5], true, o, qkv, probs, B, T, H, hd, 0.4f, 0.2f, 9, NULL),
                             VIT_OK);
            k_cross_entropy_backward(grads[k][6], ce, labels, rows, C, 0.1f, 1.5f);
            k_resample_bicubic_backward(grads[k][7], gh, gw, gr, 5, 6, C);
            k_bias_backward(grads[k][8], g, rows, C);
            k_residual_backward(grads[k][9], grads[k][10], g, NULL, rows, C);
            k_dropout_backward(grads[k][11], g, n, 0.25f, 3);
        }
    }
    for (int i = 0; i < 12; i++) {
        double maxabs = 0.0;
        for (int j = 0; j < sizes[i]; j++) maxabs = fmax(maxabs, fabs(grads[0][i][j]));
        ck_assert_msg(maxabs > 0.0, "gradient %d is all zero", i);
        for (int j = 0; j < sizes[i]; j++)
            ck_assert_msg(fabs(grads[1][i][j] - 2.0 * grads[0][i][j]) <= 1e-6 * maxabs,
                          "gradient %d [%d]: twice %g, once %g", i, j, (double)grads[1][i][j], (double)grads[0][i][j]);
    }
}
END_TEST

/* Reductions across rows (parameter gradients, the loss, the norm) give the
 * same bits on 1, 2, 3 and 7 threads: the sizes here are above every kernel's
 * threshold for going parallel, and C = 200 (13 column blocks) splits into
 * strips of unequal widths at each of these counts. */
START_TEST(test_thread_determinism) {
    const int rows = 457, C = 200, B = 100, gh = 9, gw = 11, counts[4] = {1, 2, 3, 7};
    const int64_t n = (int64_t)rows * C;
    float *x = frand(n, -2, 2), *w = frand(C, 0.5, 1.5), *b = frand(C, -1, 1), *g = frand(n, -1, 1);
    float *y = fvec(n), *mean = fvec(rows), *rstd = fvec(rows);
    int32_t *labels = tmalloc(B * sizeof(int32_t));
    for (int i = 0; i < B; i++) labels[i] = i % C;
    float *res[4][8];
    float loss[4];
    double ssq[4];
    const int threads0 = omp_get_max_threads();
    for (int k = 0; k < 4; k++) {
        omp_set_num_threads(counts[k]);
        k_layernorm_forward(y, mean, rstd, x, w, b, rows, C, 1e-5f);
        for (int i = 0; i < 8; i++) res[k][i] = fvec(n);
        k_layernorm_backward(res[k][0], res[k][1], res[k][2], g, x, w, mean, rstd, rows, C);
        k_bias_backward(res[k][3], g, rows, C);
        loss[k] = k_cross_entropy_forward(res[k][4], x, labels, B, C, 0.1f);
        k_resample_bicubic_backward(res[k][5], 5, 6, g, gh, gw, C);
        ssq[k] = k_sum_squares(x, n);
        float *dx = up(res[k][6], F(n)), *dgamma = up(res[k][7], F(C));
        ok(be->ops->scale_channels_backward(be, dx, dgamma, up(g, F(n)), up(x, F(n)), up(w, F(C)), rows, C),
           "scale_channels_backward");
        down(res[k][6], dx, F(n)), down(res[k][7], dgamma, F(C));
    }
    omp_set_num_threads(threads0);
    for (int k = 1; k < 4; k++) {
        for (int i = 0; i < 8; i++)
            ck_assert_msg(memcmp(res[0][i], res[k][i], (size_t)n * sizeof(float)) == 0, "result %d: 1 vs %d threads", i,
                          counts[k]);
        ck_assert(loss[0] == loss[k]);
        ck_assert(ssq[0] == ssq[k]);
    }
}
END_TEST

/* The vectorisable exp and erf against double libm on a fine grid over the
 * kernels' ranges (plus each grid point's float neighbours): erf within 1e-6
 * absolute (libm's erff: ~6e-8), exp within 4e-7 relative. */
START_TEST(test_vmath) {
    double erf_err = 0, exp_err = 0;
    for (int i = -1200000; i <= 1200000; i++) {
        float g = (float)i * 1e-5f;
        for (float x = nextafterf(g, -13.0f); x <= nextafterf(g, 13.0f); x = nextafterf(x, 13.0f)) {
            double e = fabs((double)vit_erff(x) - erf((double)x));
            erf_err = e > erf_err ? e : erf_err;
        }
    }
    for (int i = -870000; i <= 880000; i++) {
        float x = (float)i * 1e-4f;
        double e = fabs((double)vit_expf(x) - exp((double)x)) / exp((double)x);
        exp_err = e > exp_err ? e : exp_err;
    }
    ck_assert_msg(erf_err < 1e-6, "vit_erff max abs error %g", erf_err);
    ck_assert_msg(exp_err < 4e-7, "vit_expf max rel error %g", exp_err);
    ck_assert_float_eq(vit_erff(100.0f), 1.0f);
    ck_assert_float_eq(vit_erff(-100.0f), -1.0f);
}
END_TEST

/* ------------------------------------------------ timm's family kernels */
/* QuickGELU: the same checks as GELU against x * sigmoid(1.702 x) in double. */
static double quick_d(double x) { return x / (1.0 + exp(-1.702 * x)); }
static double quick_loss(void *p) {
    ew_ctx *c = p;
    double l = 0.0;
    for (int64_t i = 0; i < c->n; i++) l += quick_d(c->x[i]) * c->W[i];
    return l;
}

START_TEST(test_quick_gelu) {
    static const int64_t sizes[] = {1, 13, 4096 + 5};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int64_t n = sizes[s];
        float *x = frand(n, -8, 8), *W = frand(n, -1, 1);
        ew_ctx c = {n, to_d(x, n), to_d(W, n)};
        float *out = fvec(n), *o = up(out, F(n));
        double *ref = dvec(n);
        ok(be->ops->quick_gelu_forward(be, o, up(x, F(n)), n), "quick_gelu_forward");
        down(out, o, F(n));
        for (int64_t i = 0; i < n; i++) ref[i] = quick_d(c.x[i]);
        expect_close("quick gelu", out, ref, n, FWD_TOL);
        float *dx = grad_base(n), *dx0 = fcopy(dx, n), *d = up(dx, F(n));
        ok(be->ops->quick_gelu_backward(be, d, up(x, F(n)), up(W, F(n)), n), "quick_gelu_backward");
        down(dx, d, F(n));
        expect_grad("quick gelu dinp", quick_loss, &c, c.x, n, dx, dx0);
        float *in_place = fcopy(W, n), *zero = fvec(n);
        memset(zero, 0, (size_t)n * sizeof *zero);
        k_activation_backward_in_place(true, in_place, x, n);
        expect_grad("quick gelu dinp in place", quick_loss, &c, c.x, n, in_place, zero);
    }
}
END_TEST

/* Layer scale: loss = sum W * x * gamma. */
typedef struct {
    int64_t rows;
    int C;
    double *x, *gamma, *W;
} sc_ctx;

static double scale_loss(void *p) {
    sc_ctx *c = p;
    double l = 0.0;
    for (int64_t r = 0; r < c->rows; r++)
        for (int i = 0; i < c->C; i++) l += c->x[r * c->C + i] * c->gamma[i] * c->W[r * c->C + i];
    return l;
}

START_TEST(test_scale_channels) {
    static const int shapes[][2] = {{5, 7}, {300, 130}, {1, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t rows = shapes[s][0], n = rows * shapes[s][1];
        const int C = shapes[s][1];
        float *x = frand(n, -1, 1), *gamma = frand(C, -2, 2), *W = frand(n, -1, 1), *out = fvec(n);
        sc_ctx c = {rows, C, to_d(x, n), to_d(gamma, C), to_d(W, n)};
        float *o = up(out, F(n));
        ok(be->ops->scale_channels_forward(be, o, up(x, F(n)), up(gamma, F(C)), rows, C), "scale_channels_forward");
        down(out, o, F(n));
        double *ref = dvec(n);
        for (int64_t i = 0; i < n; i++) ref[i] = c.x[i] * c.gamma[i % C];
        expect_close("scale channels", out, ref, n, FWD_TOL);
        float *dx = grad_base(n), *dx0 = fcopy(dx, n), *dg = grad_base(C), *dg0 = fcopy(dg, C);
        float *ddx = up(dx, F(n)), *ddg = up(dg, F(C));
        ok(be->ops->scale_channels_backward(be, ddx, ddg, up(W, F(n)), up(x, F(n)), up(gamma, F(C)), rows, C),
           "scale_channels_backward");
        down(dx, ddx, F(n)), down(dg, ddg, F(C));
        expect_grad("scale dinp", scale_loss, &c, c.x, n, dx, dx0);
        expect_grad("scale dgamma", scale_loss, &c, c.gamma, C, dg, dg0);
    }
}
END_TEST

/* Token embedding with registers, without a class token, and with pos_embed
 * on the patches only: loss = sum W * tokens. */
typedef struct {
    int B, N, D, R, has_cls, pos_prefix;
    double *patch, *cls, *reg, *pos, *W;
} ep_ctx;

static double embed_prefix_token(const ep_ctx *c, int b, int t, int d) {
    const int P = c->has_cls + c->R;
    double v = t >= P ? c->patch[((size_t)b * c->N + t - P) * c->D + d]
               : c->has_cls && t == 0 ? c->cls[d] : c->reg[(size_t)(t - c->has_cls) * c->D + d];
    if (c->pos_prefix) return v + c->pos[(size_t)t * c->D + d];
    return t >= P ? v + c->pos[(size_t)(t - P) * c->D + d] : v;
}

static double embed_prefix_loss(void *q) {
    ep_ctx *c = q;
    const int T = c->has_cls + c->R + c->N;
    double l = 0.0;
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < c->D; d++) l += embed_prefix_token(c, b, t, d) * c->W[((size_t)b * T + t) * c->D + d];
    return l;
}

START_TEST(test_embed_prefix) {
    const int B = 2, N = 9, D = 11;
    for (int has_cls = 0; has_cls < 2; has_cls++)
        for (int R = 0; R <= 3; R += 3)
            for (int pos_prefix = 0; pos_prefix < 2; pos_prefix++) {
                const int P = has_cls + R, T = P + N;
                const int64_t np = (int64_t)B * N * D, nt = (int64_t)B * T * D, nr = (int64_t)R * D;
                const int64_t npos = (int64_t)(pos_prefix ? T : N) * D;
                float *patch = frand(np, -1, 1), *cls = has_cls ? frand(D, -1, 1) : NULL;
                float *reg = R ? frand(nr, -1, 1) : NULL, *pos = frand(npos, -1, 1), *W = frand(nt, -1, 1);
                ep_ctx c = {B, N, D, R, has_cls, pos_prefix, to_d(patch, np), cls ? to_d(cls, D) : NULL,
                            reg ? to_d(reg, nr) : NULL, to_d(pos, npos), to_d(W, nt)};
                float *tok = fvec(nt), *dtok = up(tok, F(nt));
                ok(be->ops->embed_tokens_forward(be, dtok, up(patch, F(np)), up(cls, F(D)), up(reg, F(nr)),
                                                 up(pos, F(npos)), B, N, D, R, pos_prefix),
                   "embed_tokens_forward");
                down(tok, dtok, F(nt));
                double *ref = dvec(nt);
                for (int b = 0; b < B; b++)
                    for (int t = 0; t < T; t++)
                        for (int d = 0; d < D; d++) ref[((size_t)b * T + t) * D + d] = embed_prefix_token(&c, b, t, d);
                expect_close("embed prefix", tok, ref, nt, FWD_TOL);

                float *dp = grad_base(np), *dq = grad_base(npos), *dc = has_cls ? grad_base(D) : NULL;
                float *dr = R ? grad_base(nr) : NULL;
                float *dp0 = fcopy(dp, np), *dq0 = fcopy(dq, npos), *dc0 = dc ? fcopy(dc, D) : NULL;
                float *dr0 = dr ? fcopy(dr, nr) : NULL;
                float *ddp = up(dp, F(np)), *ddq = up(dq, F(npos)), *ddc = up(dc, F(D)), *ddr = up(dr, F(nr));
                ok(be->ops->embed_tokens_backward(be, ddp, ddc, ddr, ddq, up(W, F(nt)), B, N, D, R, has_cls,
                                                  pos_prefix),
                   "embed_tokens_backward");
                down(dp, ddp, F(np)), down(dq, ddq, F(npos)), down(dc, ddc, F(D)), down(dr, ddr, F(nr));
                expect_grad("embed prefix dpatch", embed_prefix_loss, &c, c.patch, np, dp, dp0);
                expect_grad("embed prefix dpos", embed_prefix_loss, &c, c.pos, npos, dq, dq0);
                if (dc) expect_grad("embed prefix dcls", embed_prefix_loss, &c, c.cls, D, dc, dc0);
                if (dr) expect_grad("embed prefix dreg", embed_prefix_loss, &c, c.reg, nr, dr, dr0);
            }
}
END_TEST

/* Learned-query attention: loss = sum W * out, in double from q and kv. */
typedef struct {
    int B, L, N, H, hd;
    double *q, *kv, *W;
} pa_ctx;

static void pool_attention_ref(double *out, const pa_ctx *c) {
    const int D = c->H * c->hd;
    const double scale = 1.0 / sqrt((double)c->hd);
    double *p = malloc((size_t)c->N * sizeof(double));
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++)
            for (int l = 0; l < c->L; l++) {
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j < c->N; j++) {
                    double s = 0.0;
                    for (int d = 0; d < c->hd; d++)
                        s += c->q[(size_t)l * D + h * c->hd + d] * c->kv[((size_t)b * c->N + j) * 2 * D + h * c->hd + d];
                    p[j] = s * scale;
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j < c->N; j++) sum += p[j] = exp(p[j] - mx);
                for (int d = 0; d < c->hd; d++) {
                    double o = 0.0;
                    for (int j = 0; j < c->N; j++)
                        o += p[j] / sum * c->kv[((size_t)b * c->N + j) * 2 * D + D + h * c->hd + d];
                    out[((size_t)b * c->L + l) * D + h * c->hd + d] = o;
                }
            }
    free(p);
}

static double pool_attention_loss(void *q) {
    pa_ctx *c = q;
    const int64_t n = (int64_t)c->B * c->L * c->H * c->hd;
    double *out = malloc((size_t)n * sizeof(double));
    pool_attention_ref(out, c);
    const double l = dot_d(out, c->W, n);
    free(out);
    return l;
}

START_TEST(test_pool_attention) {
    static const int shapes[][5] = {{3, 1, 7, 2, 5}, {2, 2, 16, 3, 4}, {1, 1, 1, 1, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int B = shapes[s][0], L = shapes[s][1], N = shapes[s][2], H = shapes[s][3], hd = shapes[s][4];
        const int D = H * hd;
        const int64_t nq = (int64_t)L * D, nkv = (int64_t)B * N * 2 * D, no = (int64_t)B * L * D;
        const int64_t np = (int64_t)B * H * L * N;
        float *q = frand(nq, -1.5, 1.5), *kv = frand(nkv, -1.5, 1.5), *W = frand(no, -1, 1), *out = fvec(no);
        pa_ctx c = {B, L, N, H, hd, to_d(q, nq), to_d(kv, nkv), to_d(W, no)};
        float *dq_in = up(q, F(nq)), *dkv_in = up(kv, F(nkv)), *o = up(out, F(no)), *probs = up(fvec(np), F(np));
        float *scratch = up(fvec(np), F(np));
        const float scale = 1.0f / sqrtf((float)hd);
        ok(be->ops->pool_attention_forward(be, o, probs, dq_in, dkv_in, B, L, N, H, hd, scale, scratch),
           "pool_attention_forward");
        down(out, o, F(no));
        double *ref = dvec(no);
        pool_attention_ref(ref, &c);
        expect_close("pool attention", out, ref, no, FWD_TOL);
        float *dq = grad_base(nq), *dkv = grad_base(nkv), *dq0 = fcopy(dq, nq), *dkv0 = fcopy(dkv, nkv);
        float *ddq = up(dq, F(nq)), *ddkv = up(dkv, F(nkv));
        ok(be->ops->pool_attention_backward(be, ddq, ddkv, up(W, F(no)), dq_in, dkv_in, probs, B, L, N, H, hd, scale,
                                            scratch),
           "pool_attention_backward");
        down(dq, ddq, F(nq)), down(dkv, ddkv, F(nkv));
        expect_grad("pool attention dq", pool_attention_loss, &c, c.q, nq, dq, dq0);
        expect_grad("pool attention dkv", pool_attention_loss, &c, c.kv, nkv, dkv, dkv0);
    }
}
END_TEST

/* ----------------------------------------------------------------- main */
static int run_suite(void);

static void add(Suite *s, const char *name, const TTest *t) {
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, NULL, free_all);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

/* The backends whose tables are checked: the CPU at the ISA level this
 * process dispatches (meson runs the test once per level, VIT_MAX_CPU_ISA),
 * and the CUDA backend in float32 (the tolerances are float32's; bf16 is
 * checked by tests/cuda). $VIT_TEST_BACKEND names the one to run; a backend
 * named there that cannot be created is a skip (exit 77) with the reason. */
typedef vit_status (*backend_factory)(vit_backend **out);
static vit_status create_cuda_fp32(vit_backend **out) {
    return vit_backend_create_cuda(0, VIT_PRECISION_FP32, NULL, out);
}
static const struct {
    const char *name;
    backend_factory create;
} backends[] = {{"cpu", vit_backend_create_cpu}, {"cuda", create_cuda_fp32}};

int main(void) {
    const char *only = getenv("VIT_TEST_BACKEND");
    if (!only || !*only) only = "cpu";
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        if (strcmp(only, backends[i].name) != 0) continue;
        if (!strcmp(backends[i].name, "cpu")) skip_unless_isa_level_available("test_kernels");
        if (backends[i].create(&be) != VIT_OK) {
            printf("SKIP: backend %s: %s\n", backends[i].name, vit_last_error());
            return 77;
        }
        printf("backend %s (%s)\n", backends[i].name, be->ops->name);
        failed += run_suite();
        ran++;
        vit_backend_release(be);
        be = NULL;
    }
    if (!ran) {
        printf("VIT_TEST_BACKEND=%s is not one of cpu, cuda\n", only);
        return EXIT_FAILURE;
    }
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int run_suite(void) {
    Suite *s = suite_create("cpu_kernels");
    add(s, "layernorm", test_layernorm);
    add(s, "gelu", test_gelu);
    add(s, "gelu_bias", test_gelu_bias);
    add(s, "softmax", test_softmax);
    add(s, "softmax_range", test_softmax_range);
    add(s, "attention", test_attention);
    add(s, "attention_dropout_mask", test_attention_dropout_mask);
    add(s, "cross_entropy", test_cross_entropy);
    add(s, "patchify", test_patchify);
    add(s, "embed_tokens", test_embed_tokens);
    add(s, "residual", test_residual);
    add(s, "dropout", test_dropout);
    add(s, "pool", test_pool);
    add(s, "add_bias", test_add_bias);
    add(s, "resample", test_resample);
    add(s, "adamw", test_adamw);
    add(s, "sum_squares", test_sum_squares);
    add(s, "accumulate_twice", test_accumulate_twice);
    add(s, "thread_determinism", test_thread_determinism);
    add(s, "vmath", test_vmath);
    add(s, "quick_gelu", test_quick_gelu);
    add(s, "scale_channels", test_scale_channels);
    add(s, "embed_prefix", test_embed_prefix);
    add(s, "pool_attention", test_pool_attention);
    SRunner *sr = srunner_create(s);
    /* A CUDA context does not survive fork(): a GPU backend made in this
     * process runs its tests here too. */
    if (be->device == VIT_DEVICE_CUDA) srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}
