/* cmd_verify.c - vggtl verify: check a downloaded .pth before trusting it: the pickle parses
 * with the allow-list, every tensor fits its storage, every zip record's CRC-32 matches. */
#include "cmd.h"

static const char usage[] = "usage: vggtl verify FILE...\n\n"
			    "Checks every zip record's CRC-32 and every tensor's bounds; nothing in\n"
			    "the file is executed. Prints 'FILE: ok' or the first problem found.";

int cmd_verify(int argc, char **argv)
{
	const struct option opts[] = { { OPT_END, NULL, 0, NULL, NULL, NULL, NULL } };
	int nargs = 0, rc, i, status = EXIT_OK;

	rc = parse_options(argc, argv, opts, usage, &nargs);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (nargs < 1) {
		fprintf(stderr, "vggtl verify: give at least one FILE\n");
		return EXIT_USAGE;
	}
	for (i = 0; i < nargs; i++) {
		struct vt_pth pth;
		struct vt_err err = { 0 };
		rc = vt_pth_open(&pth, argv[i], &err);
		if (rc == 0 && (rc = vt_pth_verify(&pth, &err)))
			vt_err_prefix(&err, "%s", argv[i]);
		vt_pth_close(&pth);
		if (rc) {
			report(&err);
			status = EXIT_FAIL;
		} else {
			printf("%s: ok\n", argv[i]);
		}
	}
	return status;
}
