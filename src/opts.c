/* opts.c - option parsing from a table (see src/cmd.h). Accepts --name VALUE, --name=VALUE,
 * -x VALUE, -xVALUE, "--" to end options; options and positionals may be mixed. */
#include "cmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void print_usage(FILE *f, const char *usage, const struct option *opts)
{
	const struct option *o;

	fprintf(f, "%s\n\n", usage);
	for (o = opts; o->type != OPT_END; o++) {
		char left[64], shortname[8] = "";
		if (o->short_name)
			snprintf(shortname, sizeof(shortname), "-%c, ", o->short_name);
		if (o->type == OPT_OPTSTRING)
			snprintf(left, sizeof(left), "%s--%s[=%s]", shortname, o->long_name, o->argh);
		else if (o->type == OPT_FLAG)
			snprintf(left, sizeof(left), "%s--%s", shortname, o->long_name);
		else
			snprintf(left, sizeof(left), "%s--%s %s", shortname, o->long_name, o->argh);
		fprintf(f, "    %-28s %s\n", left, o->help);
	}
	fprintf(f, "    %-28s %s\n", "-h, --help", "show this help");
}

static int set_value(const struct option *o, const char *arg, const char *cmd)
{
	char *end;
	long long v;

	switch (o->type) {
	case OPT_STRING:
		*(const char **)o->value = arg;
		return 0;
	case OPT_INT:
		errno = 0;
		v = strtoll(arg, &end, 10);
		if (errno || end == arg || *end) {
			fprintf(stderr, "vggtl %s: --%s wants an integer, not '%s'\n", cmd, o->long_name, arg);
			return EXIT_USAGE;
		}
		*(long long *)o->value = v;
		return 0;
	case OPT_FLOAT: {
		double d;
		errno = 0;
		d = strtod(arg, &end);
		if (errno || end == arg || *end) {
			fprintf(stderr, "vggtl %s: --%s wants a number, not '%s'\n", cmd, o->long_name, arg);
			return EXIT_USAGE;
		}
		*(double *)o->value = d;
		return 0;
	}
	default:
		return 0;
	}
}

int parse_options(int argc, char **argv, const struct option *opts, const char *usage, int *nargs)
{
	const char *cmd = argv[0];
	int i, n = 0, only_args = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		const struct option *o;
		size_t len;

		if (only_args || a[0] != '-' || a[1] == '\0') {
			argv[n++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_args = 1;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			print_usage(stdout, usage, opts);
			return -1;
		}
		if (a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			for (o = opts; o->type != OPT_END; o++)
				if (strlen(o->long_name) == len && strncmp(o->long_name, a + 2, len) == 0)
					break;
			if (eq)
				val = eq + 1;
		} else {
			for (o = opts; o->type != OPT_END; o++)
				if (o->short_name && o->short_name == a[1])
					break;
			if (a[2])
				val = a + 2;
		}
		if (o->type == OPT_END) {
			fprintf(stderr, "vggtl %s: unknown option '%s'\n", cmd, a);
			print_usage(stderr, usage, opts);
			return EXIT_USAGE;
		}
		if (o->type == OPT_FLAG) {
			if (val) {
				fprintf(stderr, "vggtl %s: --%s takes no value\n", cmd, o->long_name);
				return EXIT_USAGE;
			}
			*(int *)o->value = 1;
			continue;
		}
		if (o->type == OPT_OPTSTRING) {
			*(int *)o->value = 1;
			if (val)
				*(const char **)o->value2 = val;
			continue;
		}
		if (!val) {
			if (i + 1 >= argc) {
				fprintf(stderr, "vggtl %s: option '%s' needs a value (%s)\n", cmd, a, o->argh);
				return EXIT_USAGE;
			}
			val = argv[++i];
		}
		if (set_value(o, val, cmd))
			return EXIT_USAGE;
	}
	*nargs = n;
	return 0;
}
