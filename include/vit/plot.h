/*
 * libvit plots: training curves as PNG images, without a plotting library.
 */
#ifndef VIT_PLOT_H
#define VIT_PLOT_H

#include "core.h"

VIT_EXTERN_C_BEGIN

/* A line chart of one or two series over epochs 1..n_points, written as an
 * RGB PNG of width x height pixels (at least 160 x 120; 0 x 0 means 800 x 600)
 * atomically: white background, axes with numeric ticks, x label "epoch",
 * y_label, title and a legend. series_b may be NULL for a single curve.
 * Non-finite values leave gaps. Labels are printed in ASCII; other bytes
 * show as '?'. Used by vit-train for loss_curve.png and acc_curve.png. */
VIT_API vit_status vit_plot_curves(const char *path, const char *title, const char *y_label, int n_points,
                                   const float *series_a, const char *label_a, const float *series_b,
                                   const char *label_b, int width, int height);

VIT_EXTERN_C_END

#endif
