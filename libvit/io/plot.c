/* Line charts into RGB8 buffers (io/plot.h), and vit_plot_curves.
 *
 * Everything is drawn in pixels: a 5x7 bitmap font scaled by an integer
 * factor, anti-aliased lines and markers by coverage (distance to the ideal
 * shape), nice 1-2-5 tick steps as matplotlib picks them. */
#include "io/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "vit/plot.h"

/* ------------------------------------------------------------------- font */
/* ASCII 32..126, 7 rows of 5 bits each, bit 4 the leftmost pixel. */
static const uint8_t font5x7[95][7] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' ' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04}, /* '!' */
    {0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00}, /* '"' */
    {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a}, /* '#' */
    {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04}, /* '$' */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, /* '%' */
    {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d}, /* '&' */
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00}, /* "'" */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, /* '(' */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, /* ')' */
    {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00}, /* '*' */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00}, /* '+' */
    {0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08}, /* ',' */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}, /* '-' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}, /* '.' */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}, /* '/' */
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}, /* '0' */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* '1' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}, /* '2' */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}, /* '3' */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}, /* '4' */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}, /* '5' */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}, /* '6' */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* '7' */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}, /* '8' */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}, /* '9' */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}, /* ':' */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08}, /* ';' */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}, /* '<' */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}, /* '=' */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}, /* '>' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, /* '?' */
    {0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e}, /* '@' */
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* 'A' */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}, /* 'B' */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}, /* 'C' */
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c}, /* 'D' */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}, /* 'E' */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10}, /* 'F' */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}, /* 'G' */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* 'H' */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* 'I' */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* 'J' */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, /* 'K' */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}, /* 'L' */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}, /* 'M' */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, /* 'N' */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* 'O' */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10}, /* 'P' */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}, /* 'Q' */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11}, /* 'R' */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}, /* 'S' */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* 'T' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* 'U' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04}, /* 'V' */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}, /* 'W' */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11}, /* 'X' */
    {0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04}, /* 'Y' */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f}, /* 'Z' */
    {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e}, /* '[' */
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00}, /* '\\' */
    {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e}, /* ']' */
    {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00}, /* '^' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f}, /* '_' */
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00}, /* '`' */
    {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f}, /* 'a' */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e}, /* 'b' */
    {0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e}, /* 'c' */
    {0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f}, /* 'd' */
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e}, /* 'e' */
    {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08}, /* 'f' */
    {0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* 'g' */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}, /* 'h' */
    {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e}, /* 'i' */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0c}, /* 'j' */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}, /* 'k' */
    {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* 'l' */
    {0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11}, /* 'm' */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}, /* 'n' */
    {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e}, /* 'o' */
    {0x00, 0x00, 0x1e, 0x11, 0x1e, 0x10, 0x10}, /* 'p' */
    {0x00, 0x00, 0x0d, 0x13, 0x0f, 0x01, 0x01}, /* 'q' */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}, /* 'r' */
    {0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e}, /* 's' */
    {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06}, /* 't' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d}, /* 'u' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04}, /* 'v' */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a}, /* 'w' */
    {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11}, /* 'x' */
    {0x00, 0x00, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* 'y' */
    {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f}, /* 'z' */
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02}, /* '{' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* '|' */
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08}, /* '}' */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00}, /* '~' */

};

enum { GLYPH_W = 5, GLYPH_H = 7, ADVANCE = 6 };

static const uint8_t *glyph(char c) {
    unsigned char u = (unsigned char)c;
    return font5x7[(u >= 32 && u < 127 ? u : '?') - 32];
}

int vit_plot_text_width(const char *s, int scale) {
    int n = (int)strlen(s);
    return n ? (n * ADVANCE - 1) * scale : 0;
}

static void put(uint8_t *rgb, int w, int h, int x, int y, const uint8_t c[3]) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    memcpy(rgb + ((size_t)y * (size_t)w + (size_t)x) * 3, c, 3);
}

static void fill_rect(uint8_t *rgb, int w, int h, int x0, int y0, int x1, int y1, const uint8_t c[3]) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) put(rgb, w, h, x, y, c);
}

void vit_plot_text(uint8_t *rgb, int w, int h, int x, int y, const char *s, int scale, const uint8_t color[3]) {
    for (int k = 0; s[k]; k++) {
        const uint8_t *g = glyph(s[k]);
        for (int r = 0; r < GLYPH_H; r++)
            for (int col = 0; col < GLYPH_W; col++)
                if (g[r] >> (GLYPH_W - 1 - col) & 1) {
                    int px = x + (k * ADVANCE + col) * scale, py = y + r * scale;
                    fill_rect(rgb, w, h, px, py, px + scale, py + scale, color);
                }
    }
}

/* Text turned 90 degrees counter-clockwise (read bottom to top), its first
 * character's bottom-left at (x, y): the y-axis label. */
static void text_up(uint8_t *rgb, int w, int h, int x, int y, const char *s, int scale, const uint8_t color[3]) {
    for (int k = 0; s[k]; k++) {
        const uint8_t *g = glyph(s[k]);
        for (int r = 0; r < GLYPH_H; r++)
            for (int col = 0; col < GLYPH_W; col++)
                if (g[r] >> (GLYPH_W - 1 - col) & 1) {
                    int px = x + r * scale, py = y - (k * ADVANCE + col + 1) * scale;
                    fill_rect(rgb, w, h, px, py, px + scale, py + scale, color);
                }
    }
}

/* ------------------------------------------------------- shapes, blended */
typedef struct canvas {
    uint8_t *rgb;
    int w, h;
    int cx0, cy0, cx1, cy1; /* clip rectangle for blended drawing */
} canvas;

static void blend(const canvas *cv, int x, int y, const uint8_t c[3], double a) {
    if (a <= 0 || x < cv->cx0 || y < cv->cy0 || x >= cv->cx1 || y >= cv->cy1) return;
    if (a > 1) a = 1;
    uint8_t *p = cv->rgb + ((size_t)y * (size_t)cv->w + (size_t)x) * 3;
    for (int i = 0; i < 3; i++) p[i] = (uint8_t)lrint(p[i] + (c[i] - p[i]) * a);
}

/* A segment of width lw: each pixel is covered by how far its centre lies
 * inside the ideal thick line, with a one-pixel ramp (the anti-aliasing).
 * Blending segment by segment darkens a polyline's joints a little; at these
 * widths that is not visible. */
static void segment(const canvas *cv, double x0, double y0, double x1, double y1, double lw, const uint8_t c[3]) {
    double r = lw / 2 + 1;
    int bx0 = (int)floor(fmin(x0, x1) - r), bx1 = (int)ceil(fmax(x0, x1) + r);
    int by0 = (int)floor(fmin(y0, y1) - r), by1 = (int)ceil(fmax(y0, y1) + r);
    if (bx0 < cv->cx0) bx0 = cv->cx0;
    if (by0 < cv->cy0) by0 = cv->cy0;
    if (bx1 > cv->cx1) bx1 = cv->cx1;
    if (by1 > cv->cy1) by1 = cv->cy1;
    double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int y = by0; y < by1; y++)
        for (int x = bx0; x < bx1; x++) {
            double px = x + 0.5 - x0, py = y + 0.5 - y0;
            double t = len2 > 0 ? (px * dx + py * dy) / len2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = px - t * dx, ey = py - t * dy;
            blend(cv, x, y, c, lw / 2 + 0.5 - sqrt(ex * ex + ey * ey));
        }
}

static void disc(const canvas *cv, double cx, double cy, double radius, const uint8_t c[3]) {
    segment(cv, cx, cy, cx, cy, 2 * radius, c);
}

/* ------------------------------------------------------------------- ticks */
static int imax(int a, int b) { return a > b ? a : b; }

/* 1, 2 or 5 times a power of ten, at least raw. */
static double nice_step(double raw) {
    double e = pow(10, floor(log10(raw))), f = raw / e;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * e;
}

static void tick_label(char *buf, size_t cap, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0; /* no "-0.00" */
    if (fabs(v) >= 1e6 || step < 1e-4) {
        snprintf(buf, cap, "%.3g", v);
        return;
    }
    int decimals = (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, cap, "%.*f", decimals > 0 ? decimals : 0, v);
}

typedef struct axis {
    double lo, hi;    /* data range mapped onto the plot area */
    double first, step;
    int count;        /* ticks first + i * step, i < count */
} axis;

static void make_ticks(axis *a, int max_ticks, bool integers) {
    double step = nice_step((a->hi - a->lo) / (max_ticks > 1 ? max_ticks : 1));
    if (integers && step < 1) step = 1;
    a->step = step;
    a->first = ceil(a->lo / step - 1e-9) * step;
    a->count = (int)floor((a->hi - a->first) / step + 1e-9) + 1;
    if (a->count < 0) a->count = 0;
    if (a->count > 100) a->count = 100;
}

/* --------------------------------------------------------------- the chart */
static const uint8_t palette[VIT_PLOT_MAX_SERIES][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
    {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
};
static const uint8_t black[3] = {0, 0, 0}, white[3] = {255, 255, 255}, grid[3] = {232, 232, 232},
                     frame_gray[3] = {204, 204, 204};

vit_status vit_plot_render(const vit_plot *p, uint8_t *rgb, int w, int h) {
    VIT_CHECK_ARG(p && rgb, "vit_plot_render: NULL argument");
    VIT_CHECK_ARG(w >= 160 && h >= 120 && w <= 16384 && h <= 16384, "plot: size %dx%d (160x120 to 16384x16384)", w, h);
    VIT_CHECK_ARG(p->series && p->n_series >= 1 && p->n_series <= VIT_PLOT_MAX_SERIES,
                  "plot: %d series (1 to %d)", p->n_series, VIT_PLOT_MAX_SERIES);
    VIT_CHECK_ARG(p->x_step > 0 && isfinite(p->x0) && isfinite(p->x_step), "plot: x_step must be positive");
    int n_max = 0;
    for (int i = 0; i < p->n_series; i++) {
        VIT_CHECK_ARG(p->series[i].n >= 0 && (p->series[i].y || p->series[i].n == 0), "plot: series %d has no data", i);
        if (p->series[i].n > n_max) n_max = p->series[i].n;
    }

    memset(rgb, 255, (size_t)w * (size_t)h * 3);
    int s = (w >= 480 && h >= 360) ? 2 : 1; /* font and line scale */

    /* data ranges: y over every finite value, x over the points */
    double ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < p->n_series; i++)
        for (int k = 0; k < p->series[i].n; k++) {
            double v = p->series[i].y[k];
            if (!isfinite(v)) continue;
            ymin = fmin(ymin, v);
            ymax = fmax(ymax, v);
        }
    if (!(ymin <= ymax)) ymin = 0, ymax = 1;
    if (ymax - ymin < 1e-12 * fmax(1, fabs(ymax))) {
        double pad = fabs(ymax) > 0 ? fabs(ymax) * 0.1 : 1;
        ymin -= pad;
        ymax += pad;
    }
    axis ya = {ymin - 0.05 * (ymax - ymin), ymax + 0.05 * (ymax - ymin), 0, 0, 0};
    double xlast = p->x0 + (n_max > 1 ? n_max - 1 : 0) * p->x_step;
    double xpad = n_max > 1 ? 0.04 * (xlast - p->x0) : 0.5 * p->x_step;
    axis xa = {p->x0 - xpad, xlast + xpad, 0, 0, 0};
    bool int_x = p->x0 == floor(p->x0) && p->x_step == floor(p->x_step);

    /* vertical layout first: it decides the y ticks, whose labels decide the left margin */
    int gap = 6 * s, text_h = GLYPH_H * s, tick_len = 4 * s;
    int top = (p->title ? gap + text_h : 0) + 2 * gap;
    int bottom = h - (tick_len + gap + text_h + (p->x_label ? gap + text_h : 0) + 2 * gap);
    make_ticks(&ya, imax(3, (bottom - top) / (28 * s)), false);
    char label[64];
    int label_w = 0;
    for (int i = 0; i < ya.count; i++) {
        tick_label(label, sizeof label, ya.first + i * ya.step, ya.step);
        int lw = vit_plot_text_width(label, s);
        if (lw > label_w) label_w = lw;
    }
    int left = 2 * gap + (p->y_label ? text_h + gap : 0) + label_w + gap + tick_len;
    int right = w - 4 * gap;
    if (right - left < 40 || bottom - top < 40)
        return vit_fail(VIT_ERR_INVALID_ARGUMENT, "plot: %dx%d leaves no room for the chart", w, h);
    make_ticks(&xa, imax(3, (right - left) / (60 * s)), int_x);

#define X_PIX(x) (left + ((x) - xa.lo) / (xa.hi - xa.lo) * (right - left))
#define Y_PIX(y) (bottom - ((y) - ya.lo) / (ya.hi - ya.lo) * (bottom - top))

    /* grid, ticks and their labels */
    for (int i = 0; i < ya.count; i++) {
        double v = ya.first + i * ya.step;
        int y = (int)lrint(Y_PIX(v));
        fill_rect(rgb, w, h, left, y, right, y + 1, grid);
        fill_rect(rgb, w, h, left - tick_len, y, left, y + s, black);
        tick_label(label, sizeof label, v, ya.step);
        vit_plot_text(rgb, w, h, left - tick_len - gap / 2 - vit_plot_text_width(label, s), y - text_h / 2, label, s, black);
    }
    for (int i = 0; i < xa.count; i++) {
        double v = xa.first + i * xa.step;
        int x = (int)lrint(X_PIX(v));
        fill_rect(rgb, w, h, x, top, x + 1, bottom, grid);
        fill_rect(rgb, w, h, x, bottom, x + s, bottom + tick_len, black);
        tick_label(label, sizeof label, v, xa.step);
        vit_plot_text(rgb, w, h, x - vit_plot_text_width(label, s) / 2, bottom + tick_len + gap / 2, label, s, black);
    }

    /* the curves, clipped to the plot area; markers when points are few */
    canvas cv = {rgb, w, h, left + 1, top + 1, right, bottom};
    double lw = 1.5 * s;
    for (int i = 0; i < p->n_series; i++) {
        const vit_plot_series *sr = &p->series[i];
        const uint8_t *c = palette[i];
        for (int k = 0; k < sr->n; k++) {
            if (!isfinite(sr->y[k])) continue;
            double x = X_PIX(p->x0 + k * p->x_step), y = Y_PIX(sr->y[k]);
            bool prev = k > 0 && isfinite(sr->y[k - 1]), next = k + 1 < sr->n && isfinite(sr->y[k + 1]);
            if (prev) segment(&cv, X_PIX(p->x0 + (k - 1) * p->x_step), Y_PIX(sr->y[k - 1]), x, y, lw, c);
            if (sr->n <= 40 || (!prev && !next)) disc(&cv, x, y, 2.5 * s, c);
        }
    }

    /* frame on top of the curves */
    fill_rect(rgb, w, h, left, top, right, top + 1, black);
    fill_rect(rgb, w, h, left, bottom, right + 1, bottom + s, black);
    fill_rect(rgb, w, h, left - s + 1, top, left + 1, bottom, black);
    fill_rect(rgb, w, h, right, top, right + 1, bottom, black);

    /* titles */
    if (p->title)
        vit_plot_text(rgb, w, h, (left + right - vit_plot_text_width(p->title, s)) / 2, gap + gap / 2, p->title, s, black);
    if (p->x_label)
        vit_plot_text(rgb, w, h, (left + right - vit_plot_text_width(p->x_label, s)) / 2,
                      bottom + tick_len + gap + text_h + gap, p->x_label, s, black);
    if (p->y_label)
        text_up(rgb, w, h, 2 * gap, (top + bottom + vit_plot_text_width(p->y_label, s)) / 2, p->y_label, s, black);

    /* legend in the corner where it hides the fewest points */
    int n_lab = 0, lab_w = 0;
    for (int i = 0; i < p->n_series; i++)
        if (p->series[i].label) {
            n_lab++;
            int tw = vit_plot_text_width(p->series[i].label, s);
            if (tw > lab_w) lab_w = tw;
        }
    if (n_lab) {
        int sample = 18 * s, row = text_h + gap;
        int bw = gap + sample + gap + lab_w + gap, bh = gap + n_lab * row;
        int best = 0, best_hits = -1, corner_x[4], corner_y[4];
        for (int corner = 0; corner < 4; corner++) {
            corner_x[corner] = corner & 1 ? left + 2 * gap : right - 2 * gap - bw;
            corner_y[corner] = corner & 2 ? bottom - 2 * gap - bh : top + 2 * gap;
            int hits = 0;
            for (int i = 0; i < p->n_series; i++)
                for (int k = 0; k < p->series[i].n; k++) {
                    if (!isfinite(p->series[i].y[k])) continue;
                    double x = X_PIX(p->x0 + k * p->x_step), y = Y_PIX(p->series[i].y[k]);
                    hits += x >= corner_x[corner] - gap && x <= corner_x[corner] + bw + gap &&
                            y >= corner_y[corner] - gap && y <= corner_y[corner] + bh + gap;
                }
            if (best_hits < 0 || hits < best_hits) best = corner, best_hits = hits;
        }
        int bx = corner_x[best], by = corner_y[best];
        fill_rect(rgb, w, h, bx, by, bx + bw, by + bh, white);
        fill_rect(rgb, w, h, bx, by, bx + bw, by + 1, frame_gray);
        fill_rect(rgb, w, h, bx, by + bh - 1, bx + bw, by + bh, frame_gray);
        fill_rect(rgb, w, h, bx, by, bx + 1, by + bh, frame_gray);
        fill_rect(rgb, w, h, bx + bw - 1, by, bx + bw, by + bh, frame_gray);
        canvas all = {rgb, w, h, 0, 0, w, h};
        int yy = by + gap;
        for (int i = 0; i < p->n_series; i++) {
            if (!p->series[i].label) continue;
            double cy = yy + text_h / 2.0;
            segment(&all, bx + gap, cy, bx + gap + sample, cy, lw, palette[i]);
            if (p->series[i].n <= 40) disc(&all, bx + gap + sample / 2.0, cy, 2.5 * s, palette[i]);
            vit_plot_text(rgb, w, h, bx + 2 * gap + sample, yy, p->series[i].label, s, black);
            yy += row;
        }
    }
#undef X_PIX
#undef Y_PIX
    return VIT_OK;
}

vit_status vit_plot_write_png(const char *path, const vit_plot *p, int w, int h) {
    VIT_CHECK_ARG(path, "vit_plot_write_png: path is NULL");
    VIT_CHECK_ARG(w >= 160 && h >= 120 && w <= 16384 && h <= 16384, "plot %s: size %dx%d (160x120 to 16384x16384)",
                  path, w, h);
    uint8_t *rgb = malloc((size_t)w * (size_t)h * 3);
    if (!rgb) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "plot %s: no memory for %dx%d pixels", path, w, h);
    vit_status s = vit_plot_render(p, rgb, w, h);
    if (s == VIT_OK) s = vit_png_write(path, rgb, w, h, 3);
    else vit_error_prefix("plot %s", path);
    free(rgb);
    return s;
}

vit_status vit_plot_curves(const char *path, const char *title, const char *y_label, int n_points,
                           const float *series_a, const char *label_a, const float *series_b, const char *label_b,
                           int width, int height) {
    VIT_CHECK_ARG(path, "vit_plot_curves: path is NULL");
    VIT_CHECK_ARG(n_points >= 1 && series_a, "vit_plot_curves %s: need n_points >= 1 and series_a", path);
    if (width == 0 && height == 0) width = 800, height = 600;
    vit_plot_series sr[2] = {{series_a, n_points, label_a}, {series_b, n_points, label_b}};
    vit_plot p = {.title = title, .x_label = "epoch", .y_label = y_label, .series = sr,
                  .n_series = series_b ? 2 : 1, .x0 = 1, .x_step = 1};
    return vit_plot_write_png(path, &p, width, height);
}
