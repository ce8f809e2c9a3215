/* data_png.c - reading one PNG into a 3 x size x size uint8 image (see include/vt_data.h).
 *
 * Decoding is libpng's (every colour type and bit depth, interlaced or not), converted the
 * way PIL's Image.convert('RGB') does for what torchvision's ImageFolder loader sees:
 * palette and grey expanded to RGB, alpha dropped (not composited on any background),
 * 16-bit samples cut to their high byte.  Gamma, colour profiles and text chunks are ignored,
 * as PIL ignores them; trailing chunks after the image data are not read, so a file cut
 * after its pixels loads, as it does in PIL.
 *
 * The decoded image is resized to size x size by vt_image_resize (src/resize.c: PIL's
 * Image.resize(BILINEAR), what torchvision's Resize((size, size)) does).
 * Not reproduced: PIL's convert('RGB') of 16-bit grey ("I;16"), which clips values above 255
 * to white; vggtl keeps the high byte, as for every 16-bit sample.
 * Limits: VT_PNG_MAX_PIXELS pixels per image (8192 x 8192 by default).
 */
#include "vt_data.h"

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
	if (vt_image_resize(img, (int)w, (int)h, size, chw, err)) {
		free(img);
		return vt_err_prefix(err, "'%s'", name);
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

int vt_png_decode(const void *data, size_t len, const char *name, int size, unsigned char *chw, struct vt_err *err)
{
	struct png_in in;

	memset(&in, 0, sizeof(in));
	in.mem = data;
	in.len = len;
	return png_decode(&in, name, size, chw, err);
}
