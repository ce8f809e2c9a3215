/* fuzz_data.c - libFuzzer target for the data readers (src/data.c, src/data_png.c,
 * src/data_jpeg.c, src/data_archive.c, src/resize.c).
 *
 * The input's first bytes pick the reader, so the committed fixtures are seeds as they are:
 *   1f 8b, fd '7zXZ', 'PK', or 'ustar' at offset 257
 *              an archive (tar.gz, tar.xz, zip, tar) through libarchive: the CIFAR members or
 *              the image tree it holds (both splits, images decoded at 8x8; then the class
 *              names alone), and a batch of the loaded images through the transforms
 *   89 'PNG'   a PNG, decoded and resized to 1 + (size % 64) pixels square
 *   ff d8 ff   a JPEG, the same way
 *   80         a pickle: a CIFAR-10 python batch and batches.meta (data.c's numpy hooks)
 *   otherwise  batches.meta.txt and a binary batch
 * data.c's readers are static functions, so data.c is compiled into this file (as llm.c's
 * test includes train_gpt2.c), and tools/fuzz.sh links the rest of the library without its
 * own copy of it.  Build and run: make fuzz (tools/fuzz.sh, linking -lpng -ljpeg -larchive),
 * which lowers VT_PNG_MAX_PIXELS, VT_JPEG_MAX_PIXELS and VT_JPEG_MAX_SCANS so that a header
 * claiming a huge image cannot make one run allocate hundreds of megabytes or take seconds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/data.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_archive(const uint8_t *data, size_t size, const char *split)
{
	struct vt_dataset d;
	struct vt_err err;

	if (load_archive(&d, "fuzz.archive", data, size, split, 8, 0, &err) == 0) {
		/* a loaded dataset goes through the transforms too */
		struct vt_transform t = { 1, vt_cifar10_mean, vt_cifar10_std };
		struct vt_rng r;
		float *out = malloc((size_t)3 * (size_t)d.h * (size_t)d.w * sizeof(float));
		int idx = d.n - 1;
		vt_rng_seed(&r, (uint64_t)size);
		if (out && d.n > 0)
			vt_data_batch(&d, &idx, 1, &t, &r, out);
		free(out);
		vt_data_release(&d);
	}
	if (load_archive(&d, "fuzz.archive", data, size, split, 8, 1, &err) == 0)
		vt_data_release(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vt_src src;
	struct vt_err err;
	struct names names = { 0 };
	struct part p;

	memset(&p, 0, sizeof(p));
	vt_src_mem(&src, data, size, "fuzz");
	if ((size >= 2 && data[0] == 0x1f && data[1] == 0x8b) || (size >= 6 && memcmp(data, "\xfd" "7zXZ", 5) == 0) ||
	    (size >= 4 && memcmp(data, "PK", 2) == 0) || (size >= 263 && memcmp(data + 257, "ustar", 5) == 0)) {
		fuzz_archive(data, size, "train");
		fuzz_archive(data, size, "test");
	} else if ((size >= 4 && memcmp(data, "\x89PNG", 4) == 0) || (size >= 3 && memcmp(data, "\xff\xd8\xff", 3) == 0)) {
		int side = 1 + (int)(size % 64);
		unsigned char *chw = malloc((size_t)3 * (size_t)side * (size_t)side);
		if (chw)
			vt_image_decode(data, size, "fuzz.img", side, chw, &err);
		free(chw);
	} else if (size >= 1 && data[0] == 0x80) {
		parse_py(&p, &src, &err);
		parse_meta_py(&names, &src, &err);
	} else {
		parse_meta_txt(&names, &src, &err);
		parse_bin(&p, &src, &err);
	}
	names_free(&names);
	part_free(&p);
	return 0;
}
