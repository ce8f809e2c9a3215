/* cmd_scan.c - vggtl scan: what each file's pickles would make Python's torch.load do,
 * before anyone runs it.  Exit 0 when every file is clean, 1 when any has findings, 2 when
 * a file cannot be read (and none has findings). */
#include "cmd.h"
#include "vt_scan.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static const char usage[] = "usage: vggtl scan [--json] [--findings] FILE...\n\n"
			    "Lists every global and every call in a file's pickles (every pickle of a zip,\n"
			    "a legacy stream, a plain pickle) with what torch.load would do with each:\n"
			    "import a module, call a function (REDUCE), create an object (NEWOBJ) or set\n"
			    "its state (BUILD).  A call of anything but torch's and Python's own data\n"
			    "rebuilders is a finding, and a name on the denylist (os, subprocess, eval,\n"
			    "...) a dangerous one.  Nothing in the file is run.\n"
			    "Exit status: 0 clean, 1 findings, 2 unreadable.";

static cJSON *scan_json(const char *file, const struct vt_scan *sc, int rc, const struct vt_err *err)
{
	cJSON *o = cJSON_CreateObject(), *items = cJSON_CreateArray(), *pk = cJSON_CreateArray();
	size_t i;

	cJSON_AddStringToObject(o, "file", file);
	if (sc->container)
		cJSON_AddStringToObject(o, "container", sc->container);
	for (i = 0; i < sc->npickles; i++)
		cJSON_AddItemToArray(pk, cJSON_CreateString(sc->pickles[i]));
	cJSON_AddItemToObject(o, "pickles", pk);
	for (i = 0; i < sc->n; i++) {
		const struct vt_scan_item *it = &sc->items[i];
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "op", vt_scan_op_names[it->op]);
		cJSON_AddStringToObject(x, "global", it->name);
		cJSON_AddStringToObject(x, "verdict", vt_scan_verdict_names[it->verdict]);
		cJSON_AddStringToObject(x, "pickle", it->pickle);
		cJSON_AddNumberToObject(x, "offset", (double)it->offset);
		cJSON_AddNumberToObject(x, "count", (double)it->count);
		cJSON_AddItemToArray(items, x);
	}
	cJSON_AddItemToObject(o, "items", items);
	cJSON_AddNumberToObject(o, "findings", (double)sc->findings);
	cJSON_AddNumberToObject(o, "dangerous", (double)sc->dangerous);
	if (rc)
		cJSON_AddStringToObject(o, "error", err->msg);
	return o;
}

static void scan_text(const char *file, const struct vt_scan *sc, int rc, const struct vt_err *err, int findings_only)
{
	static const char *const does[] = { "import", "call", "new object", "set state" };
	size_t i;

	for (i = 0; i < sc->n; i++) {
		const struct vt_scan_item *it = &sc->items[i];
		if (findings_only && it->verdict < VT_SCAN_UNKNOWN)
			continue;
		printf("%s: %-12s %-10s %s (x%llu; %s, offset %llu)\n", file, vt_scan_verdict_names[it->verdict],
		       does[it->op], it->name, (unsigned long long)it->count, it->pickle, (unsigned long long)it->offset);
	}
	if (rc)
		printf("%s: unreadable: %s\n", file, err->msg);
	if (sc->findings)
		printf("%s: %zu finding%s (%zu dangerous)%s\n", file, sc->findings, sc->findings == 1 ? "" : "s",
		       sc->dangerous, rc ? ", in what could be read" : "");
	else if (!rc)
		printf("%s: clean (%s, %zu pickle%s)\n", file, sc->container, sc->npickles, sc->npickles == 1 ? "" : "s");
}

int cmd_scan(int argc, char **argv)
{
	int json = 0, findings_only = 0, nargs = 0, rc, i, any_findings = 0, any_unreadable = 0;
	const struct option opts[] = {
		{ OPT_FLAG, "json", 0, &json, NULL, NULL, "print the results as JSON" },
		{ OPT_FLAG, "findings", 0, &findings_only, NULL, NULL, "list findings only" },
		{ OPT_END, NULL, 0, NULL, NULL, NULL, NULL },
	};
	cJSON *all = NULL;

	rc = parse_options(argc, argv, opts, usage, &nargs);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (nargs < 1) {
		fprintf(stderr, "vggtl scan: give at least one FILE\n");
		return EXIT_USAGE;
	}
	if (json)
		all = cJSON_CreateArray();
	for (i = 0; i < nargs; i++) {
		struct vt_scan sc;
		struct vt_err err = { 0 };
		rc = vt_scan_file(&sc, argv[i], &err);
		if (json)
			cJSON_AddItemToArray(all, scan_json(argv[i], &sc, rc, &err));
		else
			scan_text(argv[i], &sc, rc, &err, findings_only);
		any_findings |= sc.findings > 0;
		any_unreadable |= rc != 0;
		vt_scan_release(&sc);
	}
	if (json) {
		char *text = cJSON_Print(all);
		cJSON_Delete(all);
		if (!text) {
			fprintf(stderr, "vggtl: out of memory while writing JSON\n");
			return EXIT_USAGE;
		}
		printf("%s\n", text);
		free(text);
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "vggtl: cannot write to standard output\n");
		return EXIT_USAGE;
	}
	return any_findings ? EXIT_FAIL : any_unreadable ? EXIT_USAGE : EXIT_OK;
}
