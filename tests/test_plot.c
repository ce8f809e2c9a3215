/* test_plot.c - the training chart: any series (crossing, flat, one epoch, many epochs,
 * NaN or infinite losses) gives a readable 900x420 RGB PNG, promptly, lettered: its title,
 * the axis names and the legend's "train" and "test" are found drawn, pixel for pixel, in the
 * chart's 5x7 font; one epoch still draws its points. */
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "vt_plot.h"

struct image {
	unsigned w, h;
	int color_type, bit_depth;
	unsigned char **rows;
	png_structp png;
	png_infop info;
};

static int png_load(const char *path, struct image *im)
{
	FILE *f = fopen(path, "rb");
	int ok = 0;

	memset(im, 0, sizeof(*im));
	if (!f)
		return 0;
	im->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	im->info = im->png ? png_create_info_struct(im->png) : NULL;
	if (im->png && im->info && !setjmp(png_jmpbuf(im->png))) {
		png_init_io(im->png, f);
		png_read_png(im->png, im->info, PNG_TRANSFORM_IDENTITY, NULL);
		im->w = png_get_image_width(im->png, im->info);
		im->h = png_get_image_height(im->png, im->info);
		im->color_type = png_get_color_type(im->png, im->info);
		im->bit_depth = png_get_bit_depth(im->png, im->info);
		im->rows = png_get_rows(im->png, im->info);
		ok = 1;
	}
	fclose(f);
	return ok;
}

static void png_free_image(struct image *im)
{
	png_destroy_read_struct(&im->png, &im->info, NULL);
}

static const unsigned char ink[3] = { 40, 40, 40 };

static int is_ink(const struct image *im, int x, int y)
{
	return x >= 0 && y >= 0 && (unsigned)x < im->w && (unsigned)y < im->h && memcmp(im->rows[y] + 3 * x, ink, 3) == 0;
}

/* Where s is drawn as the chart draws text (5x7 glyphs at twice their size, 12 pixels a
 * character, g/j/p/q/y two rows lower): every glyph pixel inked, every other pixel of its
 * box not.  Returns how many places hold it. */
static int text_found(const struct image *im, const char *s)
{
	int x, y, found = 0, len = (int)strlen(s);

	for (y = 0; y + 18 < (int)im->h; y++)
		for (x = 0; x + 12 * len < (int)im->w; x++) {
			int k, r, b, ok = 1;
			for (k = 0; ok && k < len; k++) {
				const unsigned char *g = vt_plot_glyph(s[k]);
				int down = strchr("gjpqy", s[k]) ? 4 : 0;
				for (r = 0; ok && g && r < 7; r++)
					for (b = 0; ok && b < 5; b++)
						ok = is_ink(im, x + 12 * k + 2 * b, y + down + 2 * r) == (g[r] >> (4 - b) & 1) &&
						     is_ink(im, x + 12 * k + 2 * b + 1, y + down + 2 * r + 1) == (g[r] >> (4 - b) & 1);
			}
			found += ok;
		}
	return found;
}

/* Pixels of the train series' blue. */
static long count_color(const struct image *im, const unsigned char *rgb)
{
	long n = 0;
	unsigned x, y;

	for (y = 0; y < im->h; y++)
		for (x = 0; x < im->w; x++)
			n += memcmp(im->rows[y] + 3 * x, rgb, 3) == 0;
	return n;
}

int main(void)
{
	enum { MAX = 60 };
	double tl[MAX], vl[MAX], ta[MAX], va[MAX];
	static const struct {
		const char *what;
		int n;
		double loss0, slope, acc0;
	} cases[] = {
		{ "one epoch", 1, 2.3, 0, 0.1 },
		{ "crossing lines", 2, 3.089, -1.9, 0.206 },
		{ "flat", 5, 2.3026, 0, 0.1 },
		{ "steep", 3, 50.0, -24, 0.0 },
		{ "many epochs", MAX, 2.0, -0.03, 0.2 },
		{ "a NaN loss", 4, NAN, 0, 0.5 },
		{ "an infinite loss", 4, INFINITY, 0, 1.2 },
	};
	char path[] = "/tmp/vt_plot_XXXXXX";
	size_t c;
	int i, fd = mkstemp(path);

	close(fd);
	alarm(60); /* a drawing loop that does not end fails the test instead of hanging it */
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct vt_err err = { 0, "" };
		struct image im;
		for (i = 0; i < cases[c].n; i++) {
			tl[i] = cases[c].loss0 + cases[c].slope * i;
			vl[i] = tl[i] * 0.9 + 0.1;
			ta[i] = cases[c].acc0 + 0.01 * i;
			va[i] = ta[i] - 0.05;
		}
		CHECK(vt_plot_png(path, tl, vl, ta, va, cases[c].n, &err) == 0, "%s: written (%s)", cases[c].what, err.msg);
		CHECK(png_load(path, &im) && im.w == 900 && im.h == 420 && im.color_type == PNG_COLOR_TYPE_RGB &&
		      im.bit_depth == 8, "%s: a 900x420 8-bit RGB PNG (%ux%u, colour type %d)", cases[c].what, im.w, im.h,
		      im.color_type);
		if (c == 0 && im.rows) { /* the lettering, once */
			static const char *const words[] = { "training: loss and accuracy per epoch", "loss", "accuracy",
							     "epoch", "train", "test" };
			static const int want[] = { 1, 2, 2, 3, 3, 2 }; /* the title holds loss, accuracy, epoch, train(ing) */
			size_t k;
			for (k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
				int got = text_found(&im, words[k]);
				CHECK(got == want[k], "the chart reads '%s' (%d times, want %d)", words[k], got, want[k]);
			}
			CHECK(text_found(&im, "validation") == 0, "and not 'validation' (the matcher can fail)");
		}
		if (cases[c].n == 1 && im.rows) {
			static const unsigned char blue[3] = { 31, 119, 180 };
			CHECK(count_color(&im, blue) >= 2 * 49 + 5 * 16, "one epoch: its train points are drawn (%ld blue pixels)",
			      count_color(&im, blue));
		}
		png_free_image(&im);
	}
	unlink(path);
	return harness_done();
}
