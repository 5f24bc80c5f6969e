/* Line charts rasterised into RGB8 buffers with a built-in 5x7 bitmap font,
 * for training curves (vit_plot_curves in vit/plot.h). */
#ifndef VIT_IO_PLOT_H
#define VIT_IO_PLOT_H

#include <stdint.h>

#include "core/core.h"

#define VIT_PLOT_MAX_SERIES 8

typedef struct vit_plot_series {
    const float *y;    /* n values; non-finite ones are gaps */
    int n;
    const char *label; /* legend text, or NULL for none */
} vit_plot_series;

typedef struct vit_plot {
    const char *title, *x_label, *y_label; /* any may be NULL */
    const vit_plot_series *series;         /* 1..VIT_PLOT_MAX_SERIES, drawn in matplotlib's colour order */
    int n_series;
    double x0, x_step;                     /* point i sits at x = x0 + i * x_step (x_step > 0) */
} vit_plot;

/* Draws the chart into rgb [h, w, 3]; w >= 160, h >= 120. */
vit_status vit_plot_render(const vit_plot *plot, uint8_t *rgb, int w, int h);
/* Renders and writes an RGB PNG via vit_png_write (atomic). */
vit_status vit_plot_write_png(const char *path, const vit_plot *plot, int w, int h);

/* Text rendering, exposed for tests: the pixel width of s at a scale, and
 * drawing it with its top-left corner at (x, y), clipped to the buffer. */
int vit_plot_text_width(const char *s, int scale);
void vit_plot_text(uint8_t *rgb, int w, int h, int x, int y, const char *s, int scale, const uint8_t color[3]);

#endif
