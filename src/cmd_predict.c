/* cmd_predict.c - vggtl predict: the top classes of PNG and JPEG images. */
#include "compute.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] = "usage: vggtl predict (FILE | --arch NAME) IMAGE... [--top K] [--data PATH]\n\n"
			    "Prints the K most likely classes of each image (PNG or JPEG) with their\n"
			    "probabilities.\n"
			    "Class names come from the dataset given with --data (default: the sample in\n"
			    "data/), its test split or else its train split, when it has as many classes as\n"
			    "the model has outputs.";

/* images run through the network together: up to 64, and as many as keep the first
 * convolutions' activations (64 channels at the input's size, two at a time) within 256 MiB */
enum { PREDICT_BATCH = 64, PREDICT_BYTES = 256 << 20 };

/* One line: the image, then every logit (raw) or the top classes with their probabilities. */
static void print_prediction(const char *image, float *logits, int per, int raw, int top,
			     const struct vt_dataset *names)
{
	double mx = logits[0], sum = 0;
	int k;

	for (k = 1; k < per; k++)
		mx = logits[k] > mx ? logits[k] : mx;
	for (k = 0; k < per; k++)
		sum += exp(logits[k] - mx);
	printf("%s", image);
	for (k = 0; raw && k < per; k++)
		printf("%s%.9g", k ? " " : "\t", logits[k]);
	for (k = 0; !raw && k < top && k < per; k++) { /* selection: K is small */
		int best = -1, j;
		for (j = 0; j < per; j++)
			if (logits[j] > -INFINITY && (best < 0 || logits[j] > logits[best]))
				best = j;
		if (best < 0) /* the rest are NaN or -inf */
			break;
		if (names->nclasses)
			printf("\t%s %.4f", names->class_names[best], exp(logits[best] - mx) / sum);
		else
			printf("\t%d %.4f", best, exp(logits[best] - mx) / sum);
		logits[best] = -INFINITY;
	}
	printf("\n");
}

int cmd_predict(int argc, char **argv)
{
	struct source s = { 0 };
	const char *data = NULL, *normalize = "cifar10", *device = "auto", *precision = "fp32";
	long long threads = 0, top = 3, size = 32;
	int nargs = 0, rc, i, raw = 0;
	const struct option opts[] = {
		{ OPT_INT, "top", 'k', &top, NULL, "K", "classes to show (default 3)" },
		{ OPT_STRING, "data", 0, &data, NULL, "PATH", "where class names come from" },
		{ OPT_STRING, "normalize", 0, &normalize, NULL, "NAME", "cifar10 (default), imagenet or none" },
		{ OPT_INT, "image-size", 0, &size, NULL, "N", "resize images to N x N (default 32)" },
		{ OPT_FLAG, "logits", 0, &raw, NULL, NULL, "print every raw logit instead of the top classes" },
		COMPUTE_OPTIONS(&device, &threads, &precision),
		SOURCE_OPTIONS(&s),
		{ OPT_END, NULL, 0, NULL, NULL, NULL, NULL },
	};
	struct vt_dataset names = { 0 }, img = { 0 };
	struct vt_transform t = { 0 };
	struct vt_err err = { 0 };
	struct compute c = { 0 };
	char *model_arg[1];
	int first_image = 1, batch;
	size_t per_image;

	rc = parse_options(argc, argv, opts, usage, &nargs);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (s.arch)
		first_image = 0;
	if (nargs < first_image + 1 || top < 1 || size < 1 || size > 4096) {
		fprintf(stderr, "vggtl predict: give a model and at least one IMAGE (--top and --image-size positive)\n");
		return EXIT_USAGE;
	}
	model_arg[0] = argv[0];
	if ((rc = parse_normalize(normalize, &t)) || (rc = source_open(&s, first_image, model_arg, 1)) ||
	    (rc = compute_open(&c, &s, device, threads, 0, precision)))
		goto out;
	/* class names are a convenience: from the dataset's test split, else its train split,
	 * when it has as many classes as the model has outputs; otherwise classes are numbers */
	if (vt_data_load_names(&names, data ? data : default_data_path(), "test", &err) &&
	    vt_data_load_names(&names, data ? data : default_data_path(), "train", &err))
		memset(&names, 0, sizeof(names));
	if (names.nclasses != c.net.nclasses)
		vt_data_release(&names);
	img.h = img.w = (int)size;
	per_image = (size_t)3 * (size_t)size * (size_t)size;
	batch = (int)(PREDICT_BYTES / (2 * 64 * (size_t)size * (size_t)size * sizeof(float)));
	batch = batch < 1 ? 1 : batch > PREDICT_BATCH ? PREDICT_BATCH : batch;
	img.pixels = malloc((size_t)batch * per_image);
	img.labels = calloc((size_t)batch, sizeof(int64_t));
	if (!img.pixels || !img.labels) {
		fprintf(stderr, "vggtl: out of memory\n");
		rc = EXIT_FAIL;
		goto out;
	}
	for (i = first_image; i < nargs;) {
		int arg[PREDICT_BATCH], idx[PREDICT_BATCH], n = 0, k;
		float *logits = NULL;
		size_t per = 0;
		/* the next images that decode, up to a batch; one that does not is reported and skipped */
		for (; i < nargs && n < batch; i++) {
			if (vt_image_load(argv[i], (int)size, img.pixels + (size_t)n * per_image, &err)) {
				rc = report(&err);
				continue;
			}
			arg[n] = i;
			idx[n] = n;
			n++;
		}
		if (n == 0)
			break;
		img.n = n;
		if (vt_net_forward(&c.net, &img, idx, n, &t, 0, c.net.nlayers, &logits, &per, &err)) {
			rc = report(&err);
			goto out;
		}
		for (k = 0; k < n; k++)
			print_prediction(argv[arg[k]], logits + (size_t)k * per, (int)per, raw,
					 top < (long long)per ? (int)top : (int)per, &names);
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
