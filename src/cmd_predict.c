/* cmd_predict.c - vggtl predict: the top classes of PNG images. */
#include "compute.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] = "usage: vggtl predict (FILE | --arch NAME) IMAGE.png... [--top K] [--data PATH]\n\n"
			    "Prints the K most likely classes of each image with their probabilities.\n"
			    "Class names come from the dataset given with --data (default: the sample in\n"
			    "data/) when it has as many classes as the model has outputs.";

int cmd_predict(int argc, char **argv)
{
	struct source s = { 0 };
	const char *data = NULL, *normalize = "cifar10", *device = "auto";
	long long threads = 0, top = 3, size = 32;
	int nargs = 0, rc, i, raw = 0;
	const struct option opts[] = {
		{ OPT_INT, "top", 'k', &top, NULL, "K", "classes to show (default 3)" },
		{ OPT_STRING, "data", 0, &data, NULL, "PATH", "where class names come from" },
		{ OPT_STRING, "normalize", 0, &normalize, NULL, "NAME", "cifar10 (default), imagenet or none" },
		{ OPT_INT, "image-size", 0, &size, NULL, "N", "resize images to N x N (default 32)" },
		{ OPT_FLAG, "logits", 0, &raw, NULL, NULL, "print every raw logit instead of the top classes" },
		COMPUTE_OPTIONS(&device, &threads),
		SOURCE_OPTIONS(&s),
		{ OPT_END, NULL, 0, NULL, NULL, NULL, NULL },
	};
	struct vt_dataset names = { 0 }, img = { 0 };
	struct vt_transform t = { 0 };
	struct vt_err err = { 0 };
	struct compute c = { 0 };
	char *model_arg[1];
	int first_image = 1;

	rc = parse_options(argc, argv, opts, usage, &nargs);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (s.arch)
		first_image = 0;
	if (nargs < first_image + 1 || top < 1 || size < 1 || size > 4096) {
		fprintf(stderr, "vggtl predict: give a model and at least one IMAGE.png (--top and --image-size positive)\n");
		return EXIT_USAGE;
	}
	model_arg[0] = argv[0];
	if ((rc = parse_normalize(normalize, &t)) || (rc = source_open(&s, first_image, model_arg, 1)) ||
	    (rc = compute_open(&c, &s, device, threads, 0)))
		goto out;
	/* class names are a convenience: without a matching dataset, classes are numbers */
	if (vt_data_load(&names, data ? data : default_data_path(), "test", (int)size, &err) == 0 &&
	    names.nclasses != c.net.nclasses)
		vt_data_release(&names);
	img.n = 1;
	img.h = img.w = (int)size;
	img.pixels = malloc((size_t)3 * (size_t)size * (size_t)size);
	img.labels = calloc(1, sizeof(int64_t));
	if (!img.pixels || !img.labels) {
		fprintf(stderr, "vggtl: out of memory\n");
		rc = EXIT_FAIL;
		goto out;
	}
	for (i = first_image; i < nargs; i++) {
		int zero = 0, k;
		float *logits = NULL;
		size_t per = 0;
		double mx, sum = 0;
		if (vt_png_load(argv[i], (int)size, img.pixels, &err)) {
			rc = report(&err);
			continue;
		}
		if (vt_net_forward(&c.net, &img, &zero, 1, &t, 0, c.net.nlayers, &logits, &per, &err)) {
			rc = report(&err);
			goto out;
		}
		mx = logits[0];
		for (k = 1; k < (int)per; k++)
			mx = logits[k] > mx ? logits[k] : mx;
		for (k = 0; k < (int)per; k++)
			sum += exp(logits[k] - mx);
		printf("%s", argv[i]);
		for (k = 0; raw && k < (int)per; k++)
			printf("%s%.9g", k ? " " : "\t", logits[k]);
		for (k = 0; !raw && k < top && k < (int)per; k++) { /* selection: K is small */
			int best = -1, j;
			for (j = 0; j < (int)per; j++)
				if (logits[j] > -INFINITY && (best < 0 || logits[j] > logits[best]))
					best = j;
			if (names.nclasses)
				printf("\t%s %.4f", names.class_names[best], exp(logits[best] - mx) / sum);
			else
				printf("\t%d %.4f", best, exp(logits[best] - mx) / sum);
			logits[best] = -INFINITY;
		}
		printf("\n");
		free(logits);
	}
out:
	free(img.pixels);
	free(img.labels);
	vt_data_release(&names);
	compute_close(&c);
	source_close(&s);
	return rc;
}
