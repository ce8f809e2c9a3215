/* data_png.c - reading one PNG into a 3 x size x size uint8 image (see include/vt_data.h).
 *
 * Decoding is libpng's (every colour type and bit depth, interlaced or not), converted the
 * way PIL's Image.convert('RGB') does for what torchvision's ImageFolder loader sees:
 * palette and grey expanded to RGB, alpha dropped (not composited on any background),
 * 16-bit samples cut to their high byte.  Gamma, colour profiles and text chunks are ignored,
 * as PIL ignores them; trailing chunks after the image data are not read, so a file cut
 * after its pixels loads, as it does in PIL.
 *
 * Resizing to size x size follows PIL's Image.resize(BILINEAR), what torchvision's
 * Resize((size, size)) does to the PIL image ImageFolder loads: an antialiasing bilinear
 * filter in 22-bit fixed point, horizontal pass then vertical (see resize_rgb; equal to PIL's
 * output on the test images, tests/fixtures/png).  Images already at size x size are copied.
 * Not reproduced: PIL's convert('RGB') of 16-bit grey ("I;16"), which clips values above 255
 * to white; vggtl keeps the high byte, as for every 16-bit sample.
 * Limits: VT_PNG_MAX_PIXELS pixels per image (8192 x 8192 by default).
 */
#include "vt_data.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#ifndef VT_PNG_MAX_PIXELS
#define VT_PNG_MAX_PIXELS (8192u * 8192u)
#endif

struct png_in {
	FILE *f;                  /* a file, or */
	const unsigned char *mem; /* a memory buffer of len bytes */
	size_t len, pos;
	int code;                 /* what a png_error() means: VT_EFORMAT or VT_ENOMEM */
	char msg[200];            /* libpng's message */
};

static void on_error(png_structp png, png_const_charp msg)
{
	struct png_in *in = png_get_error_ptr(png);

	snprintf(in->msg, sizeof(in->msg), "%s", msg);
	png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static void on_read(png_structp png, png_bytep buf, size_t n)
{
	struct png_in *in = png_get_io_ptr(png);

	if (in->f) {
		if (fread(buf, 1, n, in->f) != n)
			png_error(png, ferror(in->f) ? "read error" : "file ends early (truncated)");
		return;
	}
	if (in->len - in->pos < n)
		png_error(png, "file ends early (truncated)");
	memcpy(buf, in->mem + in->pos, n);
	in->pos += n;
}

/* ---- resizing: PIL's Image.resize(BILINEAR) ----------------------------------------------
 *
 * The algorithm of Pillow's libImaging/Resample.c, which torchvision's Resize runs on PIL
 * images: a separable triangle filter whose support widens with the reduction factor (so
 * downscaling averages, it does not skip pixels), weights normalised per output sample and
 * held in 22-bit fixed point, a horizontal pass then a vertical one, each rounded to 8 bits.
 * A pass whose size does not change is skipped, as in PIL. */

enum { FIX_BITS = 22 };

struct taps {
	int n;        /* weights per output sample */
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

static int taps_make(struct taps *t, int in, int out)
{
	double scale = (double)in / out, fscale = scale < 1.0 ? 1.0 : scale;
	double support = fscale, inv = 1.0 / fscale; /* triangle support 1, widened */
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

/* One pass along x (horizontal) or y over an RGB image of w x h pixels; the output has
 * t->count entries along that axis. */
static void resample_pass(const unsigned char *src, size_t w, size_t h, int horizontal, const struct taps *t,
			  size_t out_len, unsigned char *dst)
{
	size_t ow = horizontal ? out_len : w, oh = horizontal ? h : out_len, x, y;
	int c, j;

	for (y = 0; y < oh; y++)
		for (x = 0; x < ow; x++) {
			size_t o = horizontal ? x : y;
			const int32_t *wt = t->w + o * (size_t)t->n;
			for (c = 0; c < 3; c++) {
				int32_t acc = 1 << (FIX_BITS - 1);
				for (j = 0; j < t->count[o]; j++) {
					size_t s = (size_t)(t->first[o] + j);
					size_t at = horizontal ? (y * w + s) * 3 : (s * w + x) * 3;
					acc += src[at + (size_t)c] * wt[j];
				}
				dst[(y * ow + x) * 3 + (size_t)c] = fix_to_u8(acc);
			}
		}
}

/* src: h rows of w RGB pixels; chw: 3 planes of size x size. */
static int resize_rgb(const unsigned char *src, size_t w, size_t h, unsigned char *chw, int size)
{
	size_t n = (size_t)size, x, y;
	unsigned char *tmp = NULL, *out = NULL;
	const unsigned char *res = src;
	struct taps tx, ty;
	int c, rc = 0;

	memset(&tx, 0, sizeof(tx));
	memset(&ty, 0, sizeof(ty));
	if (w != n) {
		if (taps_make(&tx, (int)w, size) || !(tmp = malloc(n * h * 3)))
			rc = -1;
		else
			resample_pass(src, w, h, 1, &tx, n, tmp);
		res = tmp;
	}
	if (rc == 0 && h != n) {
		if (taps_make(&ty, (int)h, size) || !(out = malloc(n * n * 3)))
			rc = -1;
		else
			resample_pass(res, n, h, 0, &ty, n, out);
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
	return rc;
}

/* Decodes the PNG that in reads; name is for messages. */
static int png_decode(struct png_in *in, const char *name, int size, unsigned char *chw, struct vt_err *err)
{
	png_structp png;
	png_infop info;
	/* written after setjmp and read after a longjmp: volatile, so they are not clobbered */
	unsigned char *volatile img = NULL;
	png_bytep *volatile rows = NULL;
	unsigned char sig[8];
	png_uint_32 w, h, i;

	if (size < 1 || size > 4096)
		return vt_err_set(err, VT_EUSAGE, "image size %d is out of range (1 to 4096)", size);
	in->code = VT_EFORMAT;
	in->msg[0] = '\0';
	if (in->f ? fread(sig, 1, 8, in->f) != 8 : in->len < 8)
		return vt_err_set(err, VT_EFORMAT, "'%s' is not a PNG file (too short)", name);
	if (!in->f) {
		memcpy(sig, in->mem, 8);
		in->pos = 8;
	}
	if (png_sig_cmp(sig, 0, 8))
		return vt_err_set(err, VT_EFORMAT, "'%s' is not a PNG file (bad signature)", name);
	png = png_create_read_struct(PNG_LIBPNG_VER_STRING, in, on_error, on_warning);
	if (!png)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	info = png_create_info_struct(png);
	if (!info) {
		png_destroy_read_struct(&png, NULL, NULL);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_read_struct(&png, &info, NULL);
		free(img);
		free(rows);
		return vt_err_set(err, in->code, "'%s': %s%s", name,
				  in->code == VT_ENOMEM ? "out of memory for the " :
				  in->code == VT_EFORMAT ? "corrupt PNG: " : "", in->msg);
	}
	png_set_read_fn(png, in, on_read);
	png_set_sig_bytes(png, 8);
	png_read_info(png, info);
	w = png_get_image_width(png, info);
	h = png_get_image_height(png, info);
	if ((uint64_t)w * h > VT_PNG_MAX_PIXELS) {
		char why[100];
		snprintf(why, sizeof(why), "%ux%u image is too large (at most %llu pixels)", (unsigned)w,
			 (unsigned)h, (unsigned long long)VT_PNG_MAX_PIXELS);
		in->code = VT_EUNSUPPORTED;
		png_error(png, why);
	}
	png_set_expand(png);
	png_set_strip_16(png);
	png_set_gray_to_rgb(png);
	png_set_strip_alpha(png);
	png_set_interlace_handling(png);
	png_read_update_info(png, info);
	if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 ||
	    png_get_rowbytes(png, info) != (size_t)w * 3)
		png_error(png, "unexpected layout after conversion to RGB");
	img = malloc((size_t)w * h * 3);
	rows = malloc((size_t)h * sizeof(*rows));
	if (!img || !rows) {
		in->code = VT_ENOMEM;
		png_error(png, "decoded image");
	}
	for (i = 0; i < h; i++)
		rows[i] = img + (size_t)i * w * 3;
	png_read_image(png, rows);
	png_destroy_read_struct(&png, &info, NULL);
	free(rows);
	if (resize_rgb(img, w, h, chw, size)) {
		free(img);
		return vt_err_set(err, VT_ENOMEM, "'%s': out of memory resizing %ux%u to %dx%d", name,
				  (unsigned)w, (unsigned)h, size, size);
	}
	free(img);
	return 0;
}

int vt_png_load(const char *path, int size, unsigned char *chw, struct vt_err *err)
{
	struct png_in in;
	int rc;

	memset(&in, 0, sizeof(in));
	if (!(in.f = fopen(path, "rb")))
		return vt_err_set(err, errno == ENOENT ? VT_ENOTFOUND : VT_EIO, "cannot open '%s': %s", path,
				  strerror(errno));
	rc = png_decode(&in, path, size, chw, err);
	fclose(in.f);
	return rc;
}
