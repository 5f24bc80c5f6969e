/* Top-k with probabilities, and accuracy. */
#include <math.h>
#include <stdlib.h>

#include "core/core.h"
#include "vit/model.h"

/* The k largest entries of row, best first; ties keep the lower index (as
 * torch.topk on CPU in practice). */
static void keep_best(const float *row, int C, int k, int32_t *idx) {
    int filled = 0;
    for (int c = 0; c < C; c++) {
        if (filled == k && !(row[c] > row[idx[k - 1]])) continue;
        int pos = filled < k ? filled : k - 1;
        while (pos > 0 && row[c] > row[idx[pos - 1]]) {
            idx[pos] = idx[pos - 1];
            pos--;
        }
        idx[pos] = c;
        if (filled < k) filled++;
    }
}

/* A host pointer to t's data: its own for a CPU tensor, else a copy read
 * from the device into *owned (the caller frees it). */
static vit_status host_view(const vit_tensor *t, const char *name, void **data, void **owned) {
    *owned = NULL;
    if (t->device == VIT_DEVICE_CPU) return vit_tensor_host_data(t, name, data);
    const size_t bytes = (size_t)t->numel * vit_dtype_size(t->dtype);
    *owned = malloc(bytes ? bytes : 1);
    if (!*owned) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory for a host copy", name);
    vit_status s = vit_tensor_read(t, *owned, bytes);
    if (s != VIT_OK) {
        free(*owned);
        *owned = NULL;
        return s;
    }
    *data = *owned;
    return VIT_OK;
}

static vit_status check_logits(const vit_tensor *logits, const char *fn, int k) {
    static const int64_t any2[2] = {-1, -1};
    VIT_TRY(vit_tensor_expect(logits, fn, VIT_DTYPE_F32, 2, any2));
    VIT_CHECK_ARG(k >= 1 && k <= logits->shape[1], "%s: k = %d is outside 1..%lld", fn, k,
                  (long long)logits->shape[1]);
    return VIT_OK;
}

vit_status vit_topk(const vit_tensor *logits, int k, int32_t *indices, float *probs) {
    VIT_TRY(check_logits(logits, "vit_topk: logits", k));
    VIT_CHECK_ARG(indices, "vit_topk: indices is NULL");
    int B = (int)logits->shape[0], C = (int)logits->shape[1];
    void *data, *owned;
    VIT_TRY(host_view(logits, "vit_topk: logits", &data, &owned));
    const float *x = data;
    for (int b = 0; b < B; b++) {
        const float *row = x + (size_t)b * C;
        int32_t *best = indices + (size_t)b * k;
        keep_best(row, C, k, best);
        if (!probs) continue;
        double sum = 0;
        float mx = row[best[0]];
        for (int c = 0; c < C; c++) sum += exp((double)row[c] - mx);
        for (int j = 0; j < k; j++) probs[(size_t)b * k + j] = (float)(exp((double)row[best[j]] - mx) / sum);
    }
    free(owned);
    return VIT_OK;
}

vit_status vit_accuracy(const vit_tensor *logits, const vit_tensor *labels, int k, int64_t *correct) {
    VIT_TRY(check_logits(logits, "vit_accuracy: logits", k));
    VIT_CHECK_ARG(correct, "vit_accuracy: correct is NULL");
    const int64_t want[1] = {logits->shape[0]};
    VIT_TRY(vit_tensor_expect(labels, "vit_accuracy: labels", VIT_DTYPE_I32, 1, want));
    int B = (int)logits->shape[0], C = (int)logits->shape[1];
    void *x, *y, *ox, *oy;
    VIT_TRY(host_view(logits, "vit_accuracy: logits", &x, &ox));
    vit_status st = host_view(labels, "vit_accuracy: labels", &y, &oy);
    if (st != VIT_OK) {
        free(ox);
        return st;
    }
    const float *scores = x;
    const int32_t *lab = y;
    int32_t *best = malloc((size_t)k * sizeof *best);
    if (!best) {
        free(ox), free(oy);
        return vit_fail(VIT_ERR_OUT_OF_MEMORY, "vit_accuracy: no memory");
    }
    int64_t hits = 0;
    for (int b = 0; b < B; b++) {
        keep_best(scores + (size_t)b * C, C, k, best);
        for (int j = 0; j < k; j++) hits += best[j] == lab[b];
    }
    free(best);
    free(ox), free(oy);
    *correct = hits;
    return VIT_OK;
}
