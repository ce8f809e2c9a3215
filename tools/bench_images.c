/* bench_images.c - the vggtl side of make bench's image row (tools/bench.sh): decodes and
 * resizes an image folder as train and eval load it (vt_data_load), then turns every image into
 * the network's input (vt_data_batch: ToTensor and ImageNet's Normalize, batches of 64), and
 * prints {"images": N, "seconds": S, "images_per_s": R} for the whole.  One thread, as
 * vt_data_load decodes.
 *
 *   bench_images DATA SIZE */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "vt_data.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	enum { BATCH = 64 };
	struct vt_dataset d;
	struct vt_transform t = { 0, vt_imagenet_mean, vt_imagenet_std };
	struct vt_err err = { 0 };
	double t0, secs, sum = 0;
	float *out;
	int i, k, idx[BATCH];

	if (argc != 3)
		return fprintf(stderr, "usage: bench_images DATA SIZE\n"), 2;
	t0 = now();
	if (vt_data_load(&d, argv[1], "train", atoi(argv[2]), &err))
		return fprintf(stderr, "bench_images: %s\n", err.msg), 1;
	if (!(out = malloc((size_t)BATCH * 3 * (size_t)d.h * (size_t)d.w * sizeof(float))))
		return fprintf(stderr, "bench_images: out of memory\n"), 1;
	for (i = 0; i < d.n; i += BATCH) {
		int n = d.n - i < BATCH ? d.n - i : BATCH;
		for (k = 0; k < n; k++)
			idx[k] = i + k;
		vt_data_batch(&d, idx, n, &t, NULL, out);
		sum += out[0]; /* the batch is used */
	}
	secs = now() - t0;
	printf("{\"images\": %d, \"seconds\": %.4f, \"images_per_s\": %.2f, \"check\": %g}\n", d.n, secs,
	       d.n / secs, sum);
	free(out);
	vt_data_release(&d);
	return 0;
}
