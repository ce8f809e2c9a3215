/* cmd_extend.c - vggtl extend: classifier.add_module(NAME, nn.Linear(IN, OUT)), or
 * classifier[-1] = nn.Linear(in_features, OUT), then save. */
#include "cmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: vggtl extend (FILE | --arch NAME) (--add-linear IN:OUT [--name NAME] | --replace-last OUT)\n"
	"                    -o OUT [--style full|weights]\n\n"
	"--add-linear appends nn.Linear(IN, OUT) to the classifier (IN must be its output width);\n"
	"--replace-last swaps the last Linear for one with OUT outputs. New layers get nn.Linear's\n"
	"default initialisation. --style full (default) writes torch.save(model), weights the state_dict.";

static int parse_dims(const char *s, long long *in, long long *out)
{
	char *end;

	errno = 0;
	*in = strtoll(s, &end, 10);
	if (errno || end == s || *end != ':')
		return -1;
	s = end + 1;
	*out = strtoll(s, &end, 10);
	if (errno || end == s || *end || *in < 1 || *out < 1)
		return -1;
	return 0;
}

int cmd_extend(int argc, char **argv)
{
	struct source s = { 0 };
	const char *out = NULL, *add = NULL, *name = "add_linear", *style = "full";
	long long replace = 0, in = 0, width = 0;
	int nargs = 0, rc;
	const struct option opts[] = {
		{ OPT_STRING, "add-linear", 0, &add, NULL, "IN:OUT", "append nn.Linear(IN, OUT) to the classifier" },
		{ OPT_STRING, "name", 0, &name, NULL, "NAME", "name of the added layer (default add_linear)" },
		{ OPT_INT, "replace-last", 0, &replace, NULL, "OUT", "replace the last Linear with one of OUT outputs" },
		{ OPT_STRING, "output", 'o', &out, NULL, "OUT", "the file to write (replaced atomically)" },
		{ OPT_STRING, "style", 0, &style, NULL, "full|weights", "whole model (default) or state_dict" },
		SOURCE_OPTIONS(&s),
		{ OPT_END, NULL, 0, NULL, NULL, NULL, NULL },
	};
	struct vt_err err = { 0 };

	rc = parse_options(argc, argv, opts, usage, &nargs);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (!add == !replace) {
		fprintf(stderr, "vggtl extend: give one of --add-linear IN:OUT or --replace-last OUT\n");
		return EXIT_USAGE;
	}
	if (add && parse_dims(add, &in, &width)) {
		fprintf(stderr, "vggtl extend: --add-linear wants IN:OUT with positive integers, not '%s'\n", add);
		return EXIT_USAGE;
	}
	if (replace < 0) {
		fprintf(stderr, "vggtl extend: --replace-last wants a positive integer\n");
		return EXIT_USAGE;
	}
	if (strcmp(style, "full") != 0 && strcmp(style, "weights") != 0) {
		fprintf(stderr, "vggtl extend: --style is full or weights, not '%s'\n", style);
		return EXIT_USAGE;
	}
	if (!out) {
		fprintf(stderr, "vggtl extend: no output file: give -o OUT\n");
		return EXIT_USAGE;
	}
	rc = source_open(&s, nargs, argv, 1);
	if (rc == EXIT_OK) {
		if (add)
			rc = vt_model_add_linear(&s.model, name, in, width, (uint64_t)s.seed, &err);
		else
			rc = vt_model_replace_last(&s.model, replace, (uint64_t)s.seed, &err);
		rc = rc ? report(&err) : write_model(&s, out, style[0] == 'f', NULL);
	}
	source_close(&s);
	return rc;
}
