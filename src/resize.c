/* resize.c - PIL's Image.resize(size, BILINEAR) of an 8-bit RGB image (see include/vt_data.h).
 *
 * What torchvision's Resize((S, S)) (0.14, on the PIL images ImageFolder loads) runs: the
 * algorithm of Pillow's libImaging/Resample.c (ImagingResample with the bilinear filter): a
 * separable triangle filter whose support widens with the reduction factor (so downscaling
 * averages, it does not skip pixels), weights normalised per output sample and held in 22-bit
 * fixed point, a horizontal pass then a vertical one, each rounded and clipped to 8 bits as
 * PIL does.  A pass whose size does not change is skipped, as in PIL, so an image already at
 * S x S is copied.
 * Not implemented: PIL's other filters (nearest, bicubic, Lanczos...), its box argument and
 * reducing_gap (torchvision's Resize uses neither), images with more than 8 bits a sample.
 */
#include "vt_data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { FIX_BITS = 22 }; /* PIL's PRECISION_BITS: 32 - 8 - 2 */

struct taps {
	int n;        /* weights per output sample (PIL's ksize) */
	int *first;   /* per output sample: the first input sample... */
	int *count;   /* ...and how many */
	int32_t *w;   /* out x n fixed-point weights */
};

static void taps_free(struct taps *t)
{
	free(t->first);
	free(t->count);
	free(t->w);
	memset(t, 0, sizeof(*t));
}

/* PIL's precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter (support 1). */
static int taps_make(struct taps *t, int in, int out)
{
	double scale = (double)in / out, fscale = scale < 1.0 ? 1.0 : scale;
	double support = fscale, inv = 1.0 / fscale;
	double *k;
	int o, j;

	t->n = (int)ceil(support) * 2 + 1;
	t->first = malloc((size_t)out * sizeof(*t->first));
	t->count = malloc((size_t)out * sizeof(*t->count));
	t->w = malloc((size_t)out * (size_t)t->n * sizeof(*t->w));
	k = malloc((size_t)t->n * sizeof(*k));
	if (!t->first || !t->count || !t->w || !k) {
		free(k);
		taps_free(t);
		return -1;
	}
	for (o = 0; o < out; o++) {
		double center = (o + 0.5) * scale, sum = 0.0;
		int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
		if (lo < 0)
			lo = 0;
		if (hi > in)
			hi = in;
		if (hi - lo > t->n)
			hi = lo + t->n;
		for (j = 0; j < hi - lo; j++) {
			double x = fabs((j + lo - center + 0.5) * inv);
			k[j] = x < 1.0 ? 1.0 - x : 0.0;
			sum += k[j];
		}
		for (j = 0; j < t->n; j++) {
			double v = j < hi - lo && sum != 0.0 ? k[j] / sum : 0.0;
			t->w[(size_t)o * (size_t)t->n + (size_t)j] = (int32_t)(0.5 + v * (1 << FIX_BITS));
		}
		t->first[o] = lo;
		t->count[o] = hi - lo;
	}
	free(k);
	return 0;
}

static unsigned char fix_to_u8(int32_t acc)
{
	acc >>= FIX_BITS;
	return (unsigned char)(acc < 0 ? 0 : acc > 255 ? 255 : acc);
}

/* The horizontal pass: h rows of w RGB pixels to h rows of t's output width. */
static void pass_h(const unsigned char *src, size_t w, size_t h, const struct taps *t, size_t ow,
		   unsigned char *dst)
{
	size_t x, y;
	int j;

	for (y = 0; y < h; y++) {
		const unsigned char *row = src + y * w * 3;
		unsigned char *o = dst + y * ow * 3;
		for (x = 0; x < ow; x++, o += 3) {
			const int32_t *wt = t->w + x * (size_t)t->n;
			const unsigned char *p = row + (size_t)t->first[x] * 3;
			int32_t r = 1 << (FIX_BITS - 1), g = r, b = r;
			for (j = 0; j < t->count[x]; j++, p += 3) {
				r += p[0] * wt[j];
				g += p[1] * wt[j];
				b += p[2] * wt[j];
			}
			o[0] = fix_to_u8(r);
			o[1] = fix_to_u8(g);
			o[2] = fix_to_u8(b);
		}
	}
}

/* The vertical pass: h rows of w RGB pixels to t's output height; acc holds a row of sums. */
static void pass_v(const unsigned char *src, size_t w, const struct taps *t, size_t oh, int32_t *acc,
		   unsigned char *dst)
{
	size_t y, i, rowlen = w * 3;
	int j;

	for (y = 0; y < oh; y++) {
		const int32_t *wt = t->w + y * (size_t)t->n;
		for (i = 0; i < rowlen; i++)
			acc[i] = 1 << (FIX_BITS - 1);
		for (j = 0; j < t->count[y]; j++) { /* row by row: the inner loop runs over contiguous bytes */
			const unsigned char *p = src + (size_t)(t->first[y] + j) * rowlen;
			int32_t k = wt[j];
			for (i = 0; i < rowlen; i++)
				acc[i] += p[i] * k;
		}
		for (i = 0; i < rowlen; i++)
			dst[y * rowlen + i] = fix_to_u8(acc[i]);
	}
}

int vt_image_resize(const unsigned char *rgb, int w, int h, int size, unsigned char *chw, struct vt_err *err)
{
	size_t n = (size_t)size, x, y;
	unsigned char *tmp = NULL, *out = NULL;
	int32_t *acc = NULL;
	const unsigned char *res = rgb;
	struct taps tx, ty;
	int c, rc = 0;

	if (w < 1 || h < 1 || size < 1)
		return vt_err_set(err, VT_EUSAGE, "cannot resize a %dx%d image to %dx%d", w, h, size, size);
	memset(&tx, 0, sizeof(tx));
	memset(&ty, 0, sizeof(ty));
	if ((size_t)w != n) {
		if (taps_make(&tx, w, size) || !(tmp = malloc(n * (size_t)h * 3)))
			rc = -1;
		else
			pass_h(rgb, (size_t)w, (size_t)h, &tx, n, tmp);
		res = tmp;
	}
	if (rc == 0 && (size_t)h != n) {
		if (taps_make(&ty, h, size) || !(out = malloc(n * n * 3)) || !(acc = malloc(n * 3 * sizeof(*acc))))
			rc = -1;
		else
			pass_v(res, n, &ty, n, acc, out);
		res = out;
	}
	if (rc == 0)
		for (c = 0; c < 3; c++)
			for (y = 0; y < n; y++)
				for (x = 0; x < n; x++)
					chw[(size_t)c * n * n + y * n + x] = res[(y * n + x) * 3 + (size_t)c];
	taps_free(&tx);
	taps_free(&ty);
	free(tmp);
	free(out);
	free(acc);
	if (rc)
		return vt_err_set(err, VT_ENOMEM, "out of memory resizing %dx%d to %dx%d", w, h, size, size);
	return 0;
}
