/* image.c - one image file or buffer, PNG or JPEG, to 3 x size x size uint8 (see
 * include/vt_data.h).
 *
 * The format is told by the first bytes, not by the name, as PIL's Image.open tells it (a PNG
 * named .jpg opens).  A file is read whole (at most VT_IMAGE_MAX_FILE bytes) and decoded from
 * memory, as an archive member is.
 * Not supported: the other formats torchvision's ImageFolder lists (.ppm, .bmp, .pgm, .tif,
 * .webp); they are refused with a message, never skipped.
 */
#include "vt_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef VT_IMAGE_MAX_FILE
#define VT_IMAGE_MAX_FILE (256u << 20)
#endif

int vt_image_decode(const void *data, size_t len, const char *name, int size, unsigned char *chw,
		    struct vt_err *err)
{
	const unsigned char *p = data;

	if (len >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
		return vt_png_decode(data, len, name, size, chw, err);
	if (len >= 3 && memcmp(p, "\xff\xd8\xff", 3) == 0)
		return vt_jpeg_decode(data, len, name, size, chw, err);
	return vt_err_set(err, VT_EFORMAT, "'%s' is not a PNG or JPEG file (%s)", name,
			  len < 8 ? "too short" : "unknown signature");
}

int vt_image_load(const char *path, int size, unsigned char *chw, struct vt_err *err)
{
	struct stat st;
	unsigned char *buf;
	size_t n;
	FILE *f = fopen(path, "rb");
	int rc;

	if (!f)
		return vt_err_set(err, errno == ENOENT ? VT_ENOTFOUND : VT_EIO, "cannot open '%s': %s", path,
				  strerror(errno));
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		return vt_err_set(err, VT_EIO, "'%s' is not a regular file", path);
	}
	if ((unsigned long long)st.st_size > VT_IMAGE_MAX_FILE) {
		fclose(f);
		return vt_err_set(err, VT_EUNSUPPORTED, "'%s' is %llu bytes: too large for an image (at most %u)", path,
				  (unsigned long long)st.st_size, (unsigned)VT_IMAGE_MAX_FILE);
	}
	if (!(buf = malloc((size_t)st.st_size + 1))) {
		fclose(f);
		return vt_err_set(err, VT_ENOMEM, "out of memory reading '%s'", path);
	}
	n = fread(buf, 1, (size_t)st.st_size, f);
	if (ferror(f))
		rc = vt_err_set(err, VT_EIO, "cannot read '%s': %s", path, strerror(errno));
	else
		rc = vt_image_decode(buf, n, path, size, chw, err);
	fclose(f);
	free(buf);
	return rc;
}
