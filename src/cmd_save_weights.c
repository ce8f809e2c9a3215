/* cmd_save_weights.c - vggtl save-weights: write the state_dict form, as
 * torch.save(model.state_dict()). */
#include "cmd.h"

static const char usage[] = "usage: vggtl save-weights (FILE | --arch NAME) -o OUT [--add-prefix PREFIX]\n\n"
			    "Writes what torch.save(model.state_dict()) writes: it loads with\n"
			    "torch.load(OUT, weights_only=True) and load_state_dict(..., strict=True).\n"
			    "Prefixes such as module. (DataParallel) in the input are stripped;\n"
			    "--add-prefix module. writes DDP-style keys.";

int cmd_save_weights(int argc, char **argv)
{
	struct source s = { 0 };
	const char *out = NULL, *prefix = NULL;
	int nargs = 0, rc;
	const struct option opts[] = {
		{ OPT_STRING, "output", 'o', &out, NULL, "OUT", "the file to write (replaced atomically)" },
		{ OPT_STRING, "add-prefix", 0, &prefix, NULL, "PREFIX", "prepend PREFIX to every key, e.g. module." },
		SOURCE_OPTIONS(&s),
		{ OPT_END, NULL, 0, NULL, NULL, NULL, NULL },
	};

	rc = parse_options(argc, argv, opts, usage, &nargs);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (!out) {
		fprintf(stderr, "vggtl save-weights: no output file: give -o OUT\n");
		return EXIT_USAGE;
	}
	rc = source_open(&s, nargs, argv, 1);
	if (rc == EXIT_OK)
		rc = write_model(&s, out, 0, prefix);
	source_close(&s);
	return rc;
}
