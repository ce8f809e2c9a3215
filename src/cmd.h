/* cmd.h - what the command layer shares: the command table, option parsing declared as
 * data (after git's parse-options), and the model source every command accepts.
 * Only this layer prints and chooses exit codes: 0 success, 1 failure, 2 usage error.
 */
#ifndef VT_CMD_H
#define VT_CMD_H

#include <stdint.h>
#include <stdio.h>

#include "vt_model.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

int cmd_load(int argc, char **argv);
int cmd_extend(int argc, char **argv);
int cmd_save_full(int argc, char **argv);
int cmd_save_weights(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_scan(int argc, char **argv);

enum opt_type {
	OPT_END,
	OPT_FLAG,      /* int, set to 1 */
	OPT_STRING,    /* const char * */
	OPT_INT,       /* long long, decimal, whole argument */
	OPT_FLOAT,     /* double */
	OPT_OPTSTRING  /* --name or --name=VALUE: int set to 1, const char * to VALUE */
};

struct option {
	enum opt_type type;
	const char *long_name;
	char short_name;
	void *value;
	void *value2;     /* OPT_OPTSTRING: the string */
	const char *argh; /* "FILE" in "-o FILE" */
	const char *help;
};

/* Parses argv (argv[0] is the command name); positional arguments are packed at the front
 * of argv and counted in *nargs. Returns -1 after -h (usage printed to stdout), 0 on success,
 * EXIT_USAGE after a message on stderr. */
int parse_options(int argc, char **argv, const struct option *opts, const char *usage, int *nargs);
void print_usage(FILE *f, const char *usage, const struct option *opts);
/* The command's man page in troff (--man), from the same usage text and table. */
void print_man(FILE *f, const char *cmd, const char *usage, const struct option *opts);
extern const char *man_summary; /* the command's one-line summary, set before dispatch */

/* A model source: FILE, or --arch NAME [--seed N] [--pretrained[=PATH]]. */
struct source {
	const char *file;
	const char *arch;
	long long seed;
	int pretrained;
	const char *pretrained_path;
	/* filled by source_open */
	struct vt_pth pth;
	int has_pth;
	struct vt_src *src; /* where file-backed tensor bytes are, or NULL */
	struct vt_model model;
	int has_model;
	char label[4200];   /* the file name or "--arch vgg16", for messages */
};

#define SOURCE_OPTIONS(s)                                                                      \
	{ OPT_STRING, "arch", 0, &(s)->arch, NULL, "NAME", "a fresh torchvision network: vgg11..vgg19, *_bn" }, \
	{ OPT_INT, "seed", 0, &(s)->seed, NULL, "N", "seed for fresh weights (default 0)" },        \
	{ OPT_OPTSTRING, "pretrained", 0, &(s)->pretrained, &(s)->pretrained_path, "PATH",            \
	  "torchvision's ImageNet weights (default: $TORCH_HOME/hub/checkpoints/<file>)" }

/* Takes the FILE argument (or none with --arch) and opens the source; with need_model the
 * VGG model is built too. Prints the error itself; returns an exit code. */
int source_open(struct source *s, int nargs, char **args, int need_model);
void source_close(struct source *s);
/* Prints "vggtl: <message>" to stderr and returns the exit code for err. */
int report(const struct vt_err *err);
/* Writes the source's model to out: whole model (full) or state_dict with key prefix.
 * Prints errors; returns an exit code. */
int write_model(const struct source *s, const char *out, int full, const char *prefix);
/* Refuses an output path that is the input file. */
int check_output(const struct source *s, const char *out);

#endif
