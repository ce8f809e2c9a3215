/* test_plot.c - the training chart: any series (crossing, flat, one epoch, many epochs,
 * NaN or infinite losses) gives a readable 900x420 PNG, promptly. */
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "vt_plot.h"

static int png_size(const char *path, unsigned *w, unsigned *h)
{
	FILE *f = fopen(path, "rb");
	png_structp png;
	png_infop info;
	int ok = 0;

	if (!f)
		return 0;
	png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	info = png ? png_create_info_struct(png) : NULL;
	if (png && info && !setjmp(png_jmpbuf(png))) {
		png_init_io(png, f);
		png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
		*w = png_get_image_width(png, info);
		*h = png_get_image_height(png, info);
		ok = 1;
	}
	png_destroy_read_struct(&png, &info, NULL);
	fclose(f);
	return ok;
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
		unsigned w = 0, h = 0;
		for (i = 0; i < cases[c].n; i++) {
			tl[i] = cases[c].loss0 + cases[c].slope * i;
			vl[i] = tl[i] * 0.9 + 0.1;
			ta[i] = cases[c].acc0 + 0.01 * i;
			va[i] = ta[i] - 0.05;
		}
		CHECK(vt_plot_png(path, tl, vl, ta, va, cases[c].n, &err) == 0, "%s: written (%s)", cases[c].what, err.msg);
		CHECK(png_size(path, &w, &h) && w == 900 && h == 420, "%s: a 900x420 PNG (%ux%u)", cases[c].what, w, h);
	}
	unlink(path);
	return harness_done();
}
