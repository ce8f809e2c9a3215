/* fuzz_data.c - libFuzzer target for the data readers (src/data.c, src/data_png.c).
 *
 * The input's first bytes pick the reader, so the committed fixtures are seeds as they are:
 *   1f 8b      a .tar.gz archive: gzip, tar, then the CIFAR members it holds (both splits),
 *              and a batch of the loaded images through the transforms
 *   89 'PNG'   a PNG, decoded and resized to 1 + (size % 64) pixels square
 *   80         a pickle: a CIFAR-10 python batch and batches.meta (data.c's numpy hooks)
 *   otherwise  batches.meta.txt and a binary batch
 * The readers are static functions, so the two sources are compiled into this file (as
 * llm.c's test includes train_gpt2.c), and tools/fuzz.sh links the rest of the library
 * without its own copies of them.  Build and run: make fuzz (tools/fuzz.sh), linking -lpng.  VT_PNG_MAX_PIXELS is lowered so that a PNG header
 * claiming a huge image cannot make one run allocate hundreds of megabytes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VT_PNG_MAX_PIXELS (1u << 20)

#include "../../src/data.c"
#include "../../src/data_png.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_tgz(const uint8_t *data, size_t size, const char *split)
{
	struct loader L;
	struct vt_src src;
	struct vt_dataset d;
	struct vt_err err;

	memset(&L, 0, sizeof(L));
	L.split = split;
	vt_src_mem(&src, data, size, "fuzz.tar.gz");
	if (load_tgz_src(&L, &src, &err) == 0 && L.fmt != FMT_NONE && finish(&L, &d, "fuzz.tar.gz", &err) == 0) {
		/* a loaded dataset goes through the transforms too */
		struct vt_transform t = { 1, vt_cifar10_mean, vt_cifar10_std };
		struct vt_rng r;
		float *out = malloc((size_t)3072 * sizeof(float));
		int idx = d.n - 1;
		vt_rng_seed(&r, (uint64_t)size);
		if (out)
			vt_data_batch(&d, &idx, 1, &t, &r, out);
		free(out);
		vt_data_release(&d);
	}
	loader_free(&L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vt_src src;
	struct vt_err err;
	struct names names = { 0 };
	struct part p;

	memset(&p, 0, sizeof(p));
	vt_src_mem(&src, data, size, "fuzz");
	if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
		fuzz_tgz(data, size, "train");
		fuzz_tgz(data, size, "test");
	} else if (size >= 4 && memcmp(data, "\x89PNG", 4) == 0) {
		struct png_in in;
		int side = 1 + (int)(size % 64);
		unsigned char *chw = malloc((size_t)3 * (size_t)side * (size_t)side);
		memset(&in, 0, sizeof(in));
		in.mem = data;
		in.len = size;
		if (chw)
			png_decode(&in, "fuzz.png", side, chw, &err);
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
