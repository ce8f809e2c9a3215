/* compute.h - shared by the computing commands (train, eval, predict); see compute.c. */
#ifndef VT_COMPUTE_H
#define VT_COMPUTE_H

#include "cmd.h"
#include "vt_train.h"

struct compute {
	struct vt_shim_api api;
	struct vt_net net;
	char device[32];
	int threads;
	int opened, built;
};

/* The sample shipped in data/: $VGGTL_DATA, else data/ beside the build folder, else ./data. */
const char *default_data_path(void);
/* Loads split of path (NULL: the bundled sample); prints errors, returns an exit code. */
int load_data(const char *path, const char *split, int size, struct vt_dataset *d);
int parse_normalize(const char *name, struct vt_transform *t);
/* Opens the shim, picks device and threads (0: $OMP_NUM_THREADS, else every CPU this
 * process may use divided by $LOCAL_WORLD_SIZE), and puts
 * the source's model on it. Prints errors, returns an exit code. */
int compute_open(struct compute *c, const struct source *s, const char *device, long long threads, int freeze,
		 const char *precision);
void compute_close(struct compute *c);

#define COMPUTE_OPTIONS(device, threads, precision)                                              \
	{ OPT_STRING, "precision", 0, (precision), NULL, "P", "fp32 (default), bf16 (CPU, CUDA) or fp16 (CUDA): autocast" }, \
	{ OPT_STRING, "device", 0, (device), NULL, "DEV", "auto (default), cpu, cuda or cuda:N" },    \
	{ OPT_INT, "threads", 0, (threads), NULL, "N", "CPU threads (default: $OMP_NUM_THREADS, else the CPUs / local ranks)" }

#endif
