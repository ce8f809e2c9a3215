/* cmd_eval.c - vggtl eval: loss, accuracy and per-class accuracy on a test split. */
#include "compute.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <time.h>

static const char usage[] = "usage: vggtl eval (FILE | --arch NAME) [--data PATH] [--split test|train] [--json]\n\n"
			    "Evaluates the model (eval mode, no augmentation) and prints loss, accuracy\n"
			    "and the accuracy of each class.";

int cmd_eval(int argc, char **argv)
{
	struct source s = { 0 };
	const char *data = NULL, *split = "test", *normalize = "cifar10", *device = "auto", *precision = "fp32";
	long long threads = 0, batch = 128, size = 32;
	int nargs = 0, json = 0, rc, i;
	const struct option opts[] = {
		{ OPT_STRING, "data", 0, &data, NULL, "PATH", "CIFAR-10, image folder or archive (default: the sample in data/)" },
		{ OPT_STRING, "split", 0, &split, NULL, "NAME", "test (default) or train" },
		{ OPT_STRING, "normalize", 0, &normalize, NULL, "NAME", "cifar10 (default), imagenet or none" },
		{ OPT_INT, "batch-size", 'b', &batch, NULL, "N", "batch size (default 128)" },
		{ OPT_INT, "image-size", 0, &size, NULL, "N", "image folders: resize to N x N (default 32)" },
		{ OPT_FLAG, "json", 0, &json, NULL, NULL, "print the results as JSON" },
		COMPUTE_OPTIONS(&device, &threads, &precision),
		SOURCE_OPTIONS(&s),
		{ OPT_END, NULL, 0, NULL, NULL, NULL, NULL },
	};
	struct vt_dataset d = { 0 };
	struct vt_transform t = { 0 };
	struct vt_eval_result r = { 0 };
	struct vt_err err = { 0 };
	struct compute c = { 0 };
	struct timespec t0, t1;
	double secs = 0;

	rc = parse_options(argc, argv, opts, usage, &nargs);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (batch < 1)
		return fprintf(stderr, "vggtl eval: --batch-size must be positive\n"), EXIT_USAGE;
	if ((rc = parse_normalize(normalize, &t)) || (rc = source_open(&s, nargs, argv, 1)) ||
	    (rc = load_data(data, split, (int)size, &d)) || (rc = compute_open(&c, &s, device, threads, 0, precision)))
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (vt_evaluate(&c.net, &d, &t, (int)batch, &r, &err)) {
		rc = report(&err);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	if (json) {
		cJSON *o = cJSON_CreateObject(), *pc = cJSON_CreateArray();
		char *text;
		cJSON_AddNumberToObject(o, "images", (double)r.total);
		cJSON_AddNumberToObject(o, "loss", r.loss);
		cJSON_AddNumberToObject(o, "accuracy", r.total ? (double)r.correct / (double)r.total : 0);
		cJSON_AddNumberToObject(o, "seconds", secs);
		cJSON_AddNumberToObject(o, "images_per_s", secs > 0 ? (double)r.total / secs : 0);
		for (i = 0; i < r.nclasses && i < d.nclasses; i++) {
			cJSON *k = cJSON_CreateObject();
			cJSON_AddStringToObject(k, "class", d.class_names[i]);
			cJSON_AddNumberToObject(k, "images", (double)r.class_total[i]);
			cJSON_AddNumberToObject(k, "accuracy", r.class_total[i] ? (double)r.class_correct[i] / (double)r.class_total[i] : 0);
			cJSON_AddItemToArray(pc, k);
		}
		cJSON_AddItemToObject(o, "classes", pc);
		text = cJSON_Print(o);
		cJSON_Delete(o);
		if (!text) {
			fprintf(stderr, "vggtl: out of memory while writing JSON\n");
			rc = EXIT_FAIL;
			goto out;
		}
		printf("%s\n", text);
		free(text);
	} else {
		printf("images %lld\nloss %.4f\naccuracy %.4f\n", (long long)r.total, r.loss,
		       r.total ? (double)r.correct / (double)r.total : 0);
		for (i = 0; i < r.nclasses && i < d.nclasses; i++)
			printf("class %-12s %.4f (%lld images)\n", d.class_names[i],
			       r.class_total[i] ? (double)r.class_correct[i] / (double)r.class_total[i] : 0,
			       (long long)r.class_total[i]);
	}
	rc = EXIT_OK;
out:
	vt_eval_result_release(&r);
	compute_close(&c);
	vt_data_release(&d);
	source_close(&s);
	return rc;
}
