/* plot.c - the training chart: loss (left) and accuracy (right) per epoch as a PNG (libpng).
 *
 * Drawn into an RGB buffer: axes, a light grid, one line per series, tick labels in a 3x5
 * pixel font (digits and '.'). Written atomically through vt_out like every other output.
 */
#include "vt_plot.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vt_io.h"

enum { W = 900, H = 420, PANEL = 450, ML = 44, MR = 16, MT = 30, MB = 34 };

struct canvas {
	unsigned char *px;
};

static void dot(struct canvas *c, int x, int y, const unsigned char *rgb)
{
	if (x >= 0 && x < W && y >= 0 && y < H)
		memcpy(c->px + 3 * ((size_t)y * W + (size_t)x), rgb, 3);
}

static void line(struct canvas *c, int x0, int y0, int x1, int y1, const unsigned char *rgb, int thick)
{
	int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy, e2;

	for (;;) { /* Bresenham */
		int i, j;
		for (i = -thick / 2; i <= thick / 2; i++)
			for (j = -thick / 2; j <= thick / 2; j++)
				dot(c, x0 + i, y0 + j, rgb);
		if (x0 == x1 && y0 == y1)
			break;
		e2 = 2 * e; /* both tests use the error before this step's corrections */
		if (e2 >= dy) {
			e += dy;
			x0 += sx;
		}
		if (e2 <= dx) {
			e += dx;
			y0 += sy;
		}
	}
}

/* 3x5 glyphs, rows top to bottom, 3 bits each: 0-9 then '.' */
static const unsigned short glyphs[11] = {
	075557, 026227, 071747, 071717, 055711, 074717, 074757, 071111, 075757, 075717, 000002,
};

static void text(struct canvas *c, int x, int y, const char *s, const unsigned char *rgb)
{
	for (; *s; s++, x += 8) {
		int g = *s == '.' ? 10 : *s - '0', r, b;
		if (g < 0 || g > 10)
			continue;
		for (r = 0; r < 5; r++)
			for (b = 0; b < 3; b++)
				if (glyphs[g] >> (3 * (4 - r) + (2 - b)) & 1) {
					dot(c, x + 2 * b, y + 2 * r, rgb);
					dot(c, x + 2 * b + 1, y + 2 * r, rgb);
					dot(c, x + 2 * b, y + 2 * r + 1, rgb);
					dot(c, x + 2 * b + 1, y + 2 * r + 1, rgb);
				}
	}
}

static void panel(struct canvas *c, int x0, const double *const *series, const unsigned char (*colors)[3], int ns,
		  int n, double ymax)
{
	static const unsigned char axis[3] = { 60, 60, 60 }, grid[3] = { 225, 225, 225 };
	int left = x0 + ML, right = x0 + PANEL - MR, top = MT, bottom = H - MB, k, i;

	for (k = 0; k <= 4; k++) {
		int y = bottom - (bottom - top) * k / 4;
		char label[16];
		line(c, left, y, right, y, grid, 1);
		snprintf(label, sizeof(label), "%.2f", ymax * k / 4);
		text(c, x0 + 4, y - 5, label, axis);
	}
	for (i = 1; i <= n; i++) { /* epoch ticks */
		int x = left + (n > 1 ? (right - left) * (i - 1) / (n - 1) : (right - left) / 2);
		char label[16];
		line(c, x, bottom, x, bottom + 4, axis, 1);
		snprintf(label, sizeof(label), "%d", i);
		if (n <= 20 || i % (n / 10 + 1) == 0)
			text(c, x - 3, bottom + 10, label, axis);
	}
	line(c, left, top, left, bottom, axis, 1);
	line(c, left, bottom, right, bottom, axis, 1);
	for (k = 0; k < ns; k++) {
		int px = -1, py = -1;
		for (i = 0; i < n; i++) {
			double v = series[k][i] > ymax ? ymax : series[k][i] < 0 ? 0 : series[k][i];
			int x = left + (n > 1 ? (right - left) * i / (n - 1) : (right - left) / 2);
			int y;
			if (isnan(v)) { /* a diverged epoch: a gap in the line */
				px = -1;
				continue;
			}
			y = bottom - (int)((bottom - top) * (v / ymax));
			if (px >= 0)
				line(c, px, py, x, y, colors[k], 3);
			else
				line(c, x, y, x, y, colors[k], 5);
			px = x;
			py = y;
		}
		/* legend swatch */
		line(c, right - 60 + 28 * (k % 2), 12 + 0 * k, right - 44 + 28 * (k % 2), 12, colors[k], 5);
	}
}

struct sink {
	struct vt_out *out;
	struct vt_err *err;
	int failed;
};

static void write_cb(png_structp p, png_bytep data, size_t n)
{
	struct sink *s = png_get_io_ptr(p);

	if (!s->failed && vt_out_write(s->out, data, n, s->err))
		s->failed = 1;
}

static void flush_cb(png_structp p)
{
	(void)p;
}

int vt_plot_png(const char *path, const double *train_loss, const double *test_loss, const double *train_acc,
		const double *test_acc, int n, struct vt_err *err)
{
	static const unsigned char colors[2][3] = { { 31, 119, 180 }, { 255, 127, 14 } };
	const double *loss[2] = { train_loss, test_loss }, *acc[2] = { train_acc, test_acc };
	struct canvas c;
	struct vt_out out;
	struct sink sink = { &out, err, 0 };
	png_structp png = NULL;
	png_infop info = NULL;
	double lmax = 0.1;
	int i, rc;

	c.px = malloc((size_t)W * H * 3);
	if (!c.px)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	memset(c.px, 255, (size_t)W * H * 3);
	for (i = 0; i < n; i++) { /* NaN compares false and infinity is capped: the scale stays finite */
		lmax = train_loss[i] > lmax && isfinite(train_loss[i]) ? train_loss[i] : lmax;
		lmax = test_loss[i] > lmax && isfinite(test_loss[i]) ? test_loss[i] : lmax;
	}
	panel(&c, 0, loss, colors, 2, n, lmax * 1.1);
	panel(&c, PANEL, acc, colors, 2, n, 1.0);
	if ((rc = vt_out_open(&out, path, err))) {
		free(c.px);
		return rc;
	}
	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	info = png ? png_create_info_struct(png) : NULL;
	if (!png || !info || setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		vt_out_abort(&out);
		free(c.px);
		return err->msg[0] ? err->code : vt_err_set(err, VT_EIO, "cannot write '%s' as PNG", path);
	}
	png_set_write_fn(png, &sink, write_cb, flush_cb);
	png_set_IHDR(png, info, W, H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
		     PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (i = 0; i < H; i++)
		png_write_row(png, c.px + (size_t)i * W * 3);
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	free(c.px);
	if (sink.failed) {
		vt_out_abort(&out);
		return err->code;
	}
	return vt_out_commit(&out, err);
}
