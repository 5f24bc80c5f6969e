/*
 * Softmax cross-entropy with PyTorch's label smoothing:
 *   loss_i = -(1 - s) log p[label] - (s / C) sum_c log p_c,  mean over the batch.
 * log p is formed as x - (max + log sum exp(x - max)) in double, never as
 * log(softmax), which would underflow to -inf for confident wrong logits.
 */
#include <math.h>

#include "cpu/kernels.h"

/* The batch is cut into at most CE_CHUNKS fixed chunks (independent of the
 * thread count), each summed in order, then the chunks in order: the loss has
 * the same bits on any number of threads, with no scratch but the stack. */
enum { CE_CHUNKS = 64 };

static double row_loss(float *restrict p, const float *restrict x, int32_t label, int C, float smoothing) {
    float mx = x[0];
    for (int c = 1; c < C; c++) mx = x[c] > mx ? x[c] : mx;
    double sum = 0.0, sum_x = 0.0;
    for (int c = 0; c < C; c++) {
        const float e = expf(x[c] - mx);
        p[c] = e;
        sum += e;
        sum_x += x[c];
    }
    const float inv = (float)(1.0 / sum);
    for (int c = 0; c < C; c++) p[c] *= inv;
    const double lse = (double)mx + log(sum);
    /* An out-of-range label is a caller bug the ops layer rejects; here it
     * turns the loss into NaN instead of reading out of bounds. */
    const double lp_label = label >= 0 && label < C ? (double)x[label] - lse : NAN;
    const double s = smoothing;
    double loss = -(1.0 - s) * lp_label;
    if (s != 0.0) loss -= s / C * (sum_x - C * lse);
    return loss;
}

vit_status vit_cross_entropy_forward(vit_backend *be, float *loss, float *probs, const float *logits,
                                     const int32_t *labels, int B, int C, float smoothing) {
    (void)be;
    *loss = 0.0f;
    if (B <= 0 || C <= 0) return VIT_OK;
    double part[CE_CHUNKS] = {0};
    const int chunks = B < CE_CHUNKS ? B : CE_CHUNKS;
#pragma omp parallel for schedule(static) if ((int64_t)B * C > 16384)
    for (int k = 0; k < chunks; k++) {
        const int b0 = (int)((int64_t)B * k / chunks), b1 = (int)((int64_t)B * (k + 1) / chunks);
        double acc = 0.0;
        for (int b = b0; b < b1; b++)
            acc += row_loss(probs + (size_t)b * C, logits + (size_t)b * C, labels[b], C, smoothing);
        part[k] = acc;
    }
    double total = 0.0;
    for (int k = 0; k < chunks; k++) total += part[k];
    *loss = (float)(total / B);
    return VIT_OK;
}

vit_status vit_cross_entropy_backward(vit_backend *be, float *dlogits, const float *probs, const int32_t *labels,
                                      int B, int C, float smoothing, const float *dloss) {
    (void)be;
    const float g = *dloss / (float)B;
    const float off = smoothing / (float)C, on = off + (1.0f - smoothing);
#pragma omp parallel for schedule(static) if ((int64_t)B * C > 16384)
    for (int b = 0; b < B; b++) {
        float *restrict d = dlogits + (size_t)b * C;
        const float *restrict p = probs + (size_t)b * C;
        const int32_t label = labels[b];
        for (int c = 0; c < C; c++) d[c] += g * (p[c] - (c == label ? on : off));
    }
    return VIT_OK;
}
