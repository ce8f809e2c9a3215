/* data_jpeg.c - reading one JPEG into a 3 x size x size uint8 image (see include/vt_data.h).
 *
 * Decoding is libjpeg-turbo's, the library under Debian's PIL, with the settings PIL's
 * JpegDecode uses when torchvision's loader opens a file (no draft mode): the library's
 * defaults (islow DCT, fancy upsampling), baseline, progressive and arithmetic-coded files,
 * 8 bits a sample.  The result is what PIL's Image.open(f).convert('RGB') gives:
 *  - 3 components (YCbCr, or RGB by an Adobe marker): converted to RGB by libjpeg;
 *  - 1 component (greyscale, PIL's "L"): each value copied into R, G and B;
 *  - 4 components (CMYK or YCCK, PIL's "CMYK"): PIL reads every 4-component JPEG as
 *    inverted ("CMYK;I", Adobe's convention, whether or not the file has an Adobe marker), then
 *    convert('RGB') computes R = 255 - k - c * (255 - k) / 255 rounded as its MULDIV255 does.
 * EXIF orientation is ignored, as torchvision's default loader ignores it (the pixels are
 * used as stored); ICC profiles and other markers too, as PIL's convert('RGB') does.
 *
 * Errors: libjpeg's error_exit is replaced by a longjmp back here, so a corrupt file is an
 * error naming it and never ends the process.  libjpeg only warns when the data ends early
 * (it then pads the image with grey) or when the entropy-coded data is damaged; those warnings
 * are errors here (PIL raises "image file is truncated" for the first).  Warnings that leave
 * the pixels intact (extraneous bytes before a marker, an unknown JFIF version, a bad ICC
 * marker...) are ignored, as PIL ignores them.  A file whose last scan is complete but whose
 * EOI marker is missing loads, as in PIL (jpeg_finish_decompress is not called).
 * Limits: VT_JPEG_MAX_PIXELS pixels per image (8192 x 8192 by default), VT_JPEG_MAX_SCANS
 * scans (a crafted progressive file could otherwise make decoding take minutes).
 * Not supported: 12-bit and lossless JPEGs (PIL refuses them too), 2-component files.
 */
#include "vt_data.h"

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#ifndef VT_JPEG_MAX_PIXELS
#define VT_JPEG_MAX_PIXELS (8192u * 8192u)
#endif
#ifndef VT_JPEG_MAX_SCANS
#define VT_JPEG_MAX_SCANS 500 /* the limit libjpeg-turbo's own tools and fuzzers use */
#endif

struct jpeg_fail {
	struct jpeg_error_mgr mgr; /* first: libjpeg hands error routines a j_common_ptr */
	jmp_buf jump;
	int code;                  /* VT_EFORMAT, or VT_ENOMEM / VT_EUNSUPPORTED set before jumping */
	char msg[JMSG_LENGTH_MAX + 64];
	struct jpeg_progress_mgr progress;
};

static void fail_now(j_common_ptr cinfo)
{
	struct jpeg_fail *f = (struct jpeg_fail *)cinfo->err;

	(*cinfo->err->format_message)(cinfo, f->msg);
	longjmp(f->jump, 1);
}

static void on_error_exit(j_common_ptr cinfo)
{
	struct jpeg_fail *f = (struct jpeg_fail *)cinfo->err;

	if (cinfo->err->msg_code == JERR_OUT_OF_MEMORY)
		f->code = VT_ENOMEM;
	else if (cinfo->err->msg_code == JERR_BAD_PRECISION || cinfo->err->msg_code == JERR_SOF_UNSUPPORTED)
		f->code = VT_EUNSUPPORTED; /* 12-bit, lossless: valid files, which PIL refuses too */
	fail_now(cinfo);
}

/* level -1 is a warning: the ones that mean the pixels are not all there are errors */
static void on_message(j_common_ptr cinfo, int level)
{
	switch (level < 0 ? cinfo->err->msg_code : -1) {
	case JWRN_JPEG_EOF:       /* the data ends early: libjpeg would pad the image with grey */
	case JWRN_HIT_MARKER:     /* a scan's data ends early */
	case JWRN_HUFF_BAD_CODE:
#ifdef D_ARITH_CODING_SUPPORTED
	case JWRN_ARITH_BAD_CODE:
#endif
	case JWRN_MUST_RESYNC:
		fail_now(cinfo);
		break;
	default:
		break;
	}
}

static void on_progress(j_common_ptr cinfo)
{
	struct jpeg_fail *f = (struct jpeg_fail *)cinfo->err;
	j_decompress_ptr d = (j_decompress_ptr)cinfo;

	if (cinfo->is_decompressor && d->input_scan_number > VT_JPEG_MAX_SCANS) {
		f->code = VT_EUNSUPPORTED;
		snprintf(f->msg, sizeof(f->msg), "more than %d scans", VT_JPEG_MAX_SCANS);
		longjmp(f->jump, 1);
	}
}

/* PIL's MULDIV255(a, b): a * b / 255 rounded, exact for 8-bit operands */
static int muldiv255(int a, int b)
{
	int t = a * b + 128;

	return ((t >> 8) + t) >> 8;
}

int vt_jpeg_decode(const void *data, size_t len, const char *name, int size, unsigned char *chw,
		   struct vt_err *err)
{
	struct jpeg_decompress_struct cinfo;
	struct jpeg_fail fail;
	/* written after setjmp and read after a longjmp: volatile, so they are not clobbered */
	unsigned char *volatile img = NULL;
	unsigned char *volatile row = NULL;
	int ncomp, rc;
	JDIMENSION w, h, x;

	if (size < 1 || size > 4096)
		return vt_err_set(err, VT_EUSAGE, "image size %d is out of range (1 to 4096)", size);
	if (len < 3 || memcmp(data, "\xff\xd8\xff", 3) != 0)
		return vt_err_set(err, VT_EFORMAT, "'%s' is not a JPEG file (bad signature)", name);
	memset(&cinfo, 0, sizeof(cinfo));
	memset(&fail, 0, sizeof(fail));
	cinfo.err = jpeg_std_error(&fail.mgr);
	fail.mgr.error_exit = on_error_exit;
	fail.mgr.emit_message = on_message;
	fail.code = VT_EFORMAT;
	fail.progress.progress_monitor = on_progress;
	if (setjmp(fail.jump)) {
		jpeg_destroy_decompress(&cinfo);
		free(img);
		free(row);
		return vt_err_set(err, fail.code, "'%s': %s%s", name,
				  fail.code == VT_ENOMEM ? "out of memory decoding the JPEG: " :
				  fail.code == VT_EFORMAT ? "corrupt or truncated JPEG: " : "unsupported JPEG: ", fail.msg);
	}
	jpeg_create_decompress(&cinfo);
	cinfo.progress = &fail.progress;
	jpeg_mem_src(&cinfo, (const unsigned char *)data, (unsigned long)len);
	jpeg_read_header(&cinfo, TRUE);
	if (cinfo.num_components != 1 && cinfo.num_components != 3 && cinfo.num_components != 4) {
		fail.code = VT_EUNSUPPORTED;
		snprintf(fail.msg, sizeof(fail.msg), "%d components (PIL reads 1, 3 or 4)", cinfo.num_components);
		longjmp(fail.jump, 1);
	}
	if ((unsigned long long)cinfo.image_width * cinfo.image_height > VT_JPEG_MAX_PIXELS) {
		fail.code = VT_EUNSUPPORTED;
		snprintf(fail.msg, sizeof(fail.msg), "%ux%u image is too large (at most %llu pixels)",
			 (unsigned)cinfo.image_width, (unsigned)cinfo.image_height,
			 (unsigned long long)VT_JPEG_MAX_PIXELS);
		longjmp(fail.jump, 1);
	}
	cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE :
				cinfo.num_components == 3 ? JCS_RGB : JCS_CMYK;
	jpeg_start_decompress(&cinfo);
	w = cinfo.output_width;
	h = cinfo.output_height;
	ncomp = cinfo.output_components;
	img = malloc((size_t)w * h * 3);
	row = malloc((size_t)w * (size_t)ncomp);
	if (!img || !row) {
		fail.code = VT_ENOMEM;
		snprintf(fail.msg, sizeof(fail.msg), "%ux%u pixels", (unsigned)w, (unsigned)h);
		longjmp(fail.jump, 1);
	}
	while (cinfo.output_scanline < h) {
		unsigned char *o = img + (size_t)cinfo.output_scanline * w * 3;
		JSAMPROW rows[1];
		rows[0] = ncomp == 3 ? o : row; /* RGB comes out as it is kept */
		if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) {
			snprintf(fail.msg, sizeof(fail.msg), "no more rows after row %u", (unsigned)cinfo.output_scanline);
			longjmp(fail.jump, 1);
		}
		for (x = 0; x < w; x++) {
			const unsigned char *p = row + (size_t)x * (size_t)ncomp;
			if (ncomp == 1) {
				o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = p[0];
			} else if (ncomp == 3) {
				break;
			} else { /* inverted CMYK, then convert('RGB') */
				int k = p[3], c;
				for (c = 0; c < 3; c++) {
					/* PIL: C = 255 - p[c], nk = 255 - (255 - p[3]) = k; R = nk - C * nk / 255 */
					int v = k - muldiv255(255 - p[c], k);
					o[3 * x + (size_t)c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
				}
			}
		}
	}
	/* no jpeg_finish_decompress: it would only look for the EOI marker, which PIL does not need */
	jpeg_destroy_decompress(&cinfo);
	free(row);
	rc = vt_image_resize(img, (int)w, (int)h, size, chw, err);
	free(img);
	return rc ? vt_err_prefix(err, "'%s'", name) : 0;
}
