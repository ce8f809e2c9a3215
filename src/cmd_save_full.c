/* cmd_save_full.c - vggtl save-full: write the whole-model form, as torch.save(model). */
#include "cmd.h"

static const char usage[] = "usage: vggtl save-full (FILE | --arch NAME) -o OUT\n\n"
			    "Writes what torch.save(model) writes. Python loads it with\n"
			    "torch.load(OUT, weights_only=False) where torchvision is installed.";

int cmd_save_full(int argc, char **argv)
{
	struct source s = { 0 };
	const char *out = NULL;
	int nargs = 0, rc;
	const struct option opts[] = {
		{ OPT_STRING, "output", 'o', &out, NULL, "OUT", "the file to write (replaced atomically)" },
		SOURCE_OPTIONS(&s),
		{ OPT_END, NULL, 0, NULL, NULL, NULL, NULL },
	};

	rc = parse_options(argc, argv, opts, usage, &nargs);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (!out) {
		fprintf(stderr, "vggtl save-full: no output file: give -o OUT\n");
		return EXIT_USAGE;
	}
	rc = source_open(&s, nargs, argv, 1);
	if (rc == EXIT_OK)
		rc = write_model(&s, out, 1, NULL);
	source_close(&s);
	return rc;
}
