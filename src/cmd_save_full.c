/* cmd_save_full.c - vggtl save-full: write the whole-model form, as torch.save(model).
 * A VGG (whole, or rebuilt from its state_dict) is written as torchvision's VGG; a whole
 * model of any other class is written back as it was read (legacy -> zip, tensors on cpu). */
#include "cmd.h"
#include "vt_module.h"

static const char usage[] = "usage: vggtl save-full (FILE | --arch NAME) -o OUT\n\n"
			    "Writes what torch.save(model) writes. Python loads it with\n"
			    "torch.load(OUT, weights_only=False) where the model's classes are\n"
			    "importable (torchvision, for a VGG).  A whole model of any class is\n"
			    "written back as it was; a state_dict becomes a whole model only for a VGG.";

static int save_other(struct source *s, const char *out)
{
	struct vt_err err = { 0 };
	struct vt_weights w;
	int rc;

	if ((rc = check_output(s, out)))
		return rc;
	if (vt_weights_find(&s->pth, NULL, &w, &err) == 0 && w.kind != VT_WEIGHTS_MODULE)
		vt_err_set(&err, VT_EUNSUPPORTED,
			   "%s holds a %s of no architecture vggtl knows: only a whole model (or a VGG's state_dict) can be written whole",
			   s->label, w.kind == VT_WEIGHTS_SCRIPT ? "TorchScript module" : "state_dict");
	else if (err.code)
		vt_err_prefix(&err, "%s", s->label);
	else if (vt_pth_write_tree(out, s->src, w.node, &err))
		vt_err_prefix(&err, "%s", s->label);
	return err.code ? report(&err) : EXIT_OK;
}

int cmd_save_full(int argc, char **argv)
{
	struct source s = { 0 };
	struct vt_err err = { 0 };
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
	rc = source_open(&s, nargs, argv, 0);
	if (rc == EXIT_OK && s.has_pth && !s.has_model && vt_model_from_pth(&s.model, &s.pth, &err) == 0)
		s.has_model = 1;
	if (rc == EXIT_OK)
		rc = s.has_model ? write_model(&s, out, 1, NULL) : save_other(&s, out);
	source_close(&s);
	return rc;
}
