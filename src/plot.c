/* plot.c - the training chart: loss (left) and accuracy (right) per epoch as a PNG (libpng).
 *
 * Drawn into an RGB buffer: a title, per panel its name, axes with tick labels, "epoch" under
 * the x axis, a light grid, one line per series with a marker on every epoch (so one epoch
 * still shows), and a legend naming the lines ("train", "test").  Text is a 5x7 pixel font
 * of digits, lowercase letters and a few signs (vt_plot_glyph), drawn at twice its size.
 * Written atomically through vt_out like every other output.
 */
#include "vt_plot.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vt_io.h"

enum { W = 900, H = 420, PANEL = 450, ML = 64, MR = 16, MT = 64, MB = 56, SCALE = 2, ADVANCE = 6 * SCALE };

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

/* 5x7 glyphs, rows top to bottom, 5 bits each with the leftmost pixel in bit 4; g, j, p, q
 * and y are drawn two rows lower, their tails below the line (DESCENDERS) */
static const struct {
	char c;
	unsigned char rows[7];
} font[] = {
	{ '0', { 0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e } },
	{ '1', { 0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e } },
	{ '2', { 0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f } },
	{ '3', { 0x1e, 0x01, 0x01, 0x0e, 0x01, 0x01, 0x1e } },
	{ '4', { 0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02 } },
	{ '5', { 0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e } },
	{ '6', { 0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e } },
	{ '7', { 0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08 } },
	{ '8', { 0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e } },
	{ '9', { 0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c } },
	{ '.', { 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c } },
	{ '-', { 0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00 } },
	{ '%', { 0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03 } },
	{ ':', { 0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00 } },
	{ ' ', { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 } },
	{ 'a', { 0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f } },
	{ 'b', { 0x10, 0x10, 0x1e, 0x11, 0x11, 0x11, 0x1e } },
	{ 'c', { 0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e } },
	{ 'd', { 0x01, 0x01, 0x0f, 0x11, 0x11, 0x11, 0x0f } },
	{ 'e', { 0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e } },
	{ 'f', { 0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08 } },
	{ 'g', { 0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e } },
	{ 'h', { 0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11 } },
	{ 'i', { 0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e } },
	{ 'j', { 0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0c } },
	{ 'k', { 0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12 } },
	{ 'l', { 0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e } },
	{ 'm', { 0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11 } },
	{ 'n', { 0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11 } },
	{ 'o', { 0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e } },
	{ 'p', { 0x00, 0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10 } },
	{ 'q', { 0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x01 } },
	{ 'r', { 0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10 } },
	{ 's', { 0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e } },
	{ 't', { 0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06 } },
	{ 'u', { 0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d } },
	{ 'v', { 0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04 } },
	{ 'w', { 0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a } },
	{ 'x', { 0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11 } },
	{ 'y', { 0x00, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e } },
	{ 'z', { 0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f } },
};

const unsigned char *vt_plot_glyph(char ch)
{
	size_t i;

	for (i = 0; i < sizeof(font) / sizeof(font[0]); i++)
		if (font[i].c == ch)
			return font[i].rows;
	return NULL;
}

#define DESCENDERS "gjpqy"

static int text_width(const char *s)
{
	return (int)strlen(s) * ADVANCE - SCALE;
}

/* s with its top-left corner at (x, y); characters outside the font are left blank */
static void text(struct canvas *c, int x, int y, const char *s, const unsigned char *rgb)
{
	for (; *s; s++, x += ADVANCE) {
		const unsigned char *g = vt_plot_glyph(*s);
		int r, b, i, j, down = *s && strchr(DESCENDERS, *s) ? 2 * SCALE : 0;
		for (r = 0; g && r < 7; r++)
			for (b = 0; b < 5; b++)
				if (g[r] >> (4 - b) & 1)
					for (i = 0; i < SCALE; i++)
						for (j = 0; j < SCALE; j++)
							dot(c, x + SCALE * b + i, y + down + SCALE * r + j, rgb);
	}
}

static const unsigned char ink[3] = { 40, 40, 40 };

#define TITLE "training: loss and accuracy per epoch"

static void panel(struct canvas *c, int x0, const char *name, const double *const *series,
		  const unsigned char (*colors)[3], const char *const *names, int ns, int n, double ymax)
{
	static const unsigned char grid[3] = { 225, 225, 225 };
	int left = x0 + ML, right = x0 + PANEL - MR, top = MT, bottom = H - MB, k, i;

	text(c, left, top - 26, name, ink); /* the y axis' name, above it */
	for (k = 0; k <= 4; k++) {
		int y = bottom - (bottom - top) * k / 4;
		char label[16];
		line(c, left, y, right, y, grid, 1);
		snprintf(label, sizeof(label), "%.2f", ymax * k / 4);
		text(c, left - 6 - text_width(label), y - 7, label, ink);
	}
	for (i = 1; i <= n; i++) { /* epoch ticks, labelled every step of about a tenth */
		int x = left + (n > 1 ? (right - left) * (i - 1) / (n - 1) : (right - left) / 2);
		char label[16];
		line(c, x, bottom, x, bottom + 4, ink, 1);
		snprintf(label, sizeof(label), "%d", i);
		if (n <= 12 || i % (n / 10 + 1) == 0)
			text(c, x - text_width(label) / 2, bottom + 8, label, ink);
	}
	text(c, (left + right - text_width("epoch")) / 2, bottom + 30, "epoch", ink);
	line(c, left, top, left, bottom, ink, 1);
	line(c, left, bottom, right, bottom, ink, 1);
	for (k = 0; k < ns; k++) {
		int px = -1, py = -1, lx = right - 38 * ns - text_width(names[0]) - text_width(names[1]) + (k ? 38 + text_width(names[0]) : 0);
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
			line(c, x, y, x, y, colors[k], 7); /* the epoch's marker */
			px = x;
			py = y;
		}
		/* legend: a swatch and the line's name, above the plot's right end */
		line(c, lx, top - 19, lx + 16, top - 19, colors[k], 5);
		text(c, lx + 22, top - 26, names[k], ink);
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
	static const char *const names[2] = { "train", "test" };
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
	text(&c, (W - text_width(TITLE)) / 2, 8, TITLE, ink);
	panel(&c, 0, "loss", loss, colors, names, 2, n, lmax * 1.1);
	panel(&c, PANEL, "accuracy", acc, colors, names, 2, n, 1.0);
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
