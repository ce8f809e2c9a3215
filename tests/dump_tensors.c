/* dump_tensors.c - a helper of tests/test_images.py, not a test itself: writes what vggtl
 * feeds the network for a dataset, so that Python can compare it with torchvision's pipeline.
 *
 *   dump_tensors DATA SPLIT SIZE OUT     (exit 1 with vggtl's message when DATA does not load)
 *
 * OUT gets, for the dataset vt_data_load reads (an image folder or archive): a line
 * "n nclasses size", the class names one a line, the n labels on one line, then n x 3 x
 * SIZE x SIZE float32 values (native order): vt_data_batch without augmentation, with
 * ImageNet's Normalize, as eval and predict --normalize imagenet compute them. */
#include <stdio.h>
#include <stdlib.h>

#include "vt_data.h"

int main(int argc, char **argv)
{
	struct vt_dataset d;
	struct vt_transform t = { 0, vt_imagenet_mean, vt_imagenet_std };
	struct vt_err err = { 0 };
	FILE *f;
	int i, size;
	size_t per;

	if (argc != 5)
		return fprintf(stderr, "usage: dump_tensors DATA SPLIT SIZE OUT\n"), 2;
	size = atoi(argv[3]);
	if (vt_data_load(&d, argv[1], argv[2], size, &err))
		return fprintf(stderr, "dump_tensors: %s\n", err.msg), 1;
	if (!(f = fopen(argv[4], "wb")))
		return perror(argv[4]), 1;
	fprintf(f, "%d %d %d\n", d.n, d.nclasses, d.h);
	for (i = 0; i < d.nclasses; i++)
		fprintf(f, "%s\n", d.class_names[i]);
	for (i = 0; i < d.n; i++)
		fprintf(f, "%s%lld", i ? " " : "", (long long)d.labels[i]);
	fprintf(f, "\n");
	per = (size_t)3 * (size_t)d.h * (size_t)d.w;
	for (i = 0; i < d.n; i++) {
		float *out = malloc(per * sizeof(float));
		if (!out)
			return fprintf(stderr, "dump_tensors: out of memory\n"), 1;
		vt_data_batch(&d, &i, 1, &t, NULL, out);
		fwrite(out, sizeof(float), per, f);
		free(out);
	}
	vt_data_release(&d);
	return fclose(f) != 0;
}
