/* compute.c - what train, eval and predict share: the bundled data's location, loading a
 * dataset, normalisation names, and putting a model on libtorch through the shim. */
#include "compute.h"

#include <libgen.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *default_data_path(void)
{
	static char path[4200];
	char exe[4096];
	struct stat st;
	const char *env = getenv("VGGTL_DATA");
	ssize_t n;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		/* build/vggtl -> data/, and build/san/vggtl -> data/ */
		snprintf(path, sizeof(path), "%s/../data", dirname(exe));
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return path;
		snprintf(path, sizeof(path), "%s/../../data", exe);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return path;
	}
	return "data";
}

int load_data(const char *path, const char *split, int size, struct vt_dataset *d)
{
	struct vt_err err = { 0 };

	if (vt_data_load(d, path ? path : default_data_path(), split, size, &err))
		return report(&err);
	return EXIT_OK;
}

int parse_normalize(const char *name, struct vt_transform *t)
{
	if (strcmp(name, "cifar10") == 0) {
		t->mean = vt_cifar10_mean;
		t->std = vt_cifar10_std;
	} else if (strcmp(name, "imagenet") == 0) {
		t->mean = vt_imagenet_mean;
		t->std = vt_imagenet_std;
	} else if (strcmp(name, "none") == 0) {
		t->mean = t->std = NULL;
	} else {
		fprintf(stderr, "vggtl: --normalize is cifar10, imagenet or none, not '%s'\n", name);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static int cpu_count(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		return CPU_COUNT(&set);
	return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

/* OMP_NUM_THREADS when set (torchrun sets 1 for each of several local ranks), else the
 * CPUs shared among the ranks on this machine (LOCAL_WORLD_SIZE). */
static int default_threads(void)
{
	const char *omp = getenv("OMP_NUM_THREADS"), *lw = getenv("LOCAL_WORLD_SIZE");
	long n;
	char *end;

	if (omp && *omp && (n = strtol(omp, &end, 10)) > 0 && n <= 4096 && *end == '\0')
		return (int)n;
	n = lw && *lw ? strtol(lw, &end, 10) : 1;
	if (n < 1 || n > 4096)
		n = 1;
	return cpu_count() / n > 0 ? cpu_count() / (int)n : 1;
}

int compute_open(struct compute *c, const struct source *s, const char *device, long long threads, int freeze,
		 const char *precision)
{
	struct vt_err err = { 0 };
	int prec = !precision || strcmp(precision, "fp32") == 0 ? VT_PREC_FP32 :
		   strcmp(precision, "bf16") == 0		 ? VT_PREC_BF16 :
		   strcmp(precision, "fp16") == 0		 ? VT_PREC_FP16 :
								   -1;

	memset(c, 0, sizeof(*c));
	if (prec < 0) {
		fprintf(stderr, "vggtl: --precision is fp32, bf16 or fp16, not '%s'\n", precision);
		return EXIT_USAGE;
	}
	if (threads < 0 || threads > 4096) {
		fprintf(stderr, "vggtl: --threads wants a count from 1 to 4096\n");
		return EXIT_USAGE;
	}
	if (vt_shim_open(&c->api, &err))
		return report(&err);
	c->opened = 1;
	if (c->api.device(device, c->device, sizeof(c->device))) {
		fprintf(stderr, "vggtl: %s\n", c->api.last_error());
		return EXIT_USAGE;
	}
	c->threads = threads ? (int)threads : default_threads();
	if (c->api.set_threads(c->threads)) {
		fprintf(stderr, "vggtl: %s\n", c->api.last_error());
		return EXIT_FAIL;
	}
	if (vt_net_build(&c->net, &c->api, &s->model, s->src, c->device, freeze, &err)) {
		vt_err_prefix(&err, "%s", s->label);
		return report(&err);
	}
	c->built = 1;
	if (c->api.net_precision(c->net.h, prec)) {
		fprintf(stderr, "vggtl: %s\n", c->api.last_error());
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

void compute_close(struct compute *c)
{
	if (c->built)
		vt_net_free(&c->net);
	if (c->opened)
		vt_shim_close(&c->api);
	memset(c, 0, sizeof(*c));
}
