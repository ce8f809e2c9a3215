/* opts.c - option parsing from a table (see src/cmd.h). Accepts --name VALUE, --name=VALUE,
 * -x VALUE, -xVALUE, "--" to end options; options and positionals may be mixed. */
#include "cmd.h"
#include "vggtl.h"

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

/* troff text: backslashes escaped, a line starting with . or ' protected, hyphens as \- */
static void man_text(FILE *f, const char *s)
{
	int bol = 1;

	for (; *s; s++) {
		if (bol && (*s == '.' || *s == '\''))
			fputs("\\&", f);
		bol = *s == '\n';
		if (*s == '\\')
			fputs("\\e", f);
		else if (*s == '-')
			fputs("\\-", f);
		else
			fputc(*s, f);
	}
}

const char *man_summary = ""; /* set by main.c: the command's line of `vggtl help` */

/* The man page of a command, from the same usage text and option table -h prints. */
void print_man(FILE *f, const char *cmd, const char *usage, const struct option *opts)
{
	const char *body = strstr(usage, "\n\n");
	const struct option *o;
	char upper[64];
	size_t i;

	for (i = 0; cmd[i] && i < sizeof(upper) - 1; i++)
		upper[i] = (char)(cmd[i] >= 'a' && cmd[i] <= 'z' ? cmd[i] - 32 : cmd[i]);
	upper[i] = '\0';
	fprintf(f, ".TH VGGTL\\-%s 1 \"\" \"vggtl %s\" \"vggtl manual\"\n.SH NAME\nvggtl\\-", upper, vt_version());
	man_text(f, cmd);
	fputs(" \\- ", f);
	man_text(f, man_summary);
	fputs("\n.SH SYNOPSIS\n.nf\n", f);
	if (body) {
		char *first = strndup(usage, (size_t)(body - usage));
		man_text(f, first ? first + (strncmp(first, "usage: ", 7) == 0 ? 7 : 0) : "");
		free(first);
	} else {
		man_text(f, usage);
	}
	fputs("\n.fi\n.SH DESCRIPTION\n", f);
	if (body) {
		man_text(f, body + 2);
		fputc('\n', f);
	}
	fputs(".SH OPTIONS\n", f);
	for (o = opts; o->type != OPT_END; o++) {
		fputs(".TP\n\\fB", f);
		if (o->short_name)
			fprintf(f, "\\-%c\\fR, \\fB", o->short_name);
		fputs("\\-\\-", f);
		man_text(f, o->long_name);
		fputs("\\fR", f);
		if (o->type == OPT_OPTSTRING)
			fprintf(f, "[=\\fI%s\\fR]", o->argh);
		else if (o->type != OPT_FLAG)
			fprintf(f, " \\fI%s\\fR", o->argh);
		fputc('\n', f);
		man_text(f, o->help);
		fputc('\n', f);
	}
	fputs(".TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\nshow the help\n.SH SEE ALSO\n\\fBvggtl\\fR(1)\n", f);
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
		/* for make man and the bash completion: generated from this very table */
		if (strcmp(a, "--man") == 0) {
			print_man(stdout, cmd, usage, opts);
			return -1;
		}
		if (strcmp(a, "--list-options") == 0) {
			const struct option *p;
			for (p = opts; p->type != OPT_END; p++)
				printf("--%s%s ", p->long_name, p->type == OPT_OPTSTRING ? "=" : "");
			printf("--help");
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
