/* source.c - opening the model source a command names: a torch.save FILE, or a fresh
 * torchvision architecture (--arch, --seed), or torchvision's pretrained weights
 * (--pretrained, read from a local file: vggtl never downloads). */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const weight_files[] = {
	"vgg11-8a719046.pth", "vgg13-19584684.pth", "vgg16-397923af.pth", "vgg19-dcbb9e9d.pth",
	"vgg11_bn-6002323d.pth", "vgg13_bn-abd245e5.pth", "vgg16_bn-6c64b313.pth", "vgg19_bn-c79401a0.pth",
};

int report(const struct vt_err *err)
{
	fprintf(stderr, "vggtl: %s\n", err->msg);
	return err->code == VT_EUSAGE ? EXIT_USAGE : EXIT_FAIL;
}

static int open_file(struct source *s, const char *path, int need_model)
{
	struct vt_err err = { 0 };
	int rc;

	if ((rc = vt_pth_open(&s->pth, path, &err)))
		return report(&err);
	s->has_pth = 1;
	s->src = &s->pth.src;
	if (!need_model)
		return EXIT_OK;
	if ((rc = vt_model_from_pth(&s->model, &s->pth, &err))) {
		vt_err_prefix(&err, "%s", path);
		return report(&err);
	}
	s->has_model = 1;
	return EXIT_OK;
}

static int open_pretrained(struct source *s)
{
	char path[4096];
	const char *file = NULL;
	struct stat st;
	int i, rc;

	for (i = 0; vt_arch_names[i]; i++)
		if (strcmp(vt_arch_names[i], s->arch) == 0)
			file = weight_files[i];
	if (!file) {
		fprintf(stderr, "vggtl: unknown architecture '%s' (known: vgg11, vgg13, vgg16, vgg19 and their _bn variants)\n",
			s->arch);
		return EXIT_USAGE;
	}
	if (s->pretrained_path) {
		snprintf(path, sizeof(path), "%s", s->pretrained_path);
	} else {
		const char *th = getenv("TORCH_HOME"), *home = getenv("HOME");
		if (th && *th)
			snprintf(path, sizeof(path), "%s/hub/checkpoints/%s", th, file);
		else
			snprintf(path, sizeof(path), "%s/.cache/torch/hub/checkpoints/%s", home ? home : "", file);
	}
	if (stat(path, &st) != 0) {
		fprintf(stderr,
			"vggtl: pretrained weights for %s not found at '%s'\n"
			"vggtl: vggtl never downloads; fetch https://download.pytorch.org/models/%s to that path "
			"(or pass --pretrained=PATH)\n",
			s->arch, path, file);
		return EXIT_FAIL;
	}
	if ((rc = open_file(s, path, 1)))
		return rc;
	if (strcmp(s->model.arch, s->arch) != 0) {
		fprintf(stderr, "vggtl: '%s' holds a %s, not a %s\n", path, s->model.arch[0] ? s->model.arch : "custom VGG",
			s->arch);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

int source_open(struct source *s, int nargs, char **args, int need_model)
{
	struct vt_err err = { 0 };

	if (s->arch && nargs > 0) {
		fprintf(stderr, "vggtl: give either a FILE or --arch, not both\n");
		return EXIT_USAGE;
	}
	if (!s->arch && nargs != 1) {
		fprintf(stderr, "vggtl: %s\n", nargs ? "give one model FILE" : "no model given: give a FILE or --arch NAME");
		return EXIT_USAGE;
	}
	if (!s->arch && s->pretrained) {
		fprintf(stderr, "vggtl: --pretrained goes with --arch\n");
		return EXIT_USAGE;
	}
	if (s->arch) {
		snprintf(s->label, sizeof(s->label), "--arch %s", s->arch);
		if (s->pretrained)
			return open_pretrained(s);
		if (vt_model_from_arch(&s->model, s->arch, (uint64_t)s->seed, &err))
			return report(&err);
		s->has_model = 1;
		return EXIT_OK;
	}
	s->file = args[0];
	snprintf(s->label, sizeof(s->label), "%s", s->file);
	return open_file(s, s->file, need_model);
}

void source_close(struct source *s)
{
	if (s->has_model)
		vt_model_release(&s->model);
	if (s->has_pth)
		vt_pth_close(&s->pth);
	s->has_model = s->has_pth = 0;
}

int check_output(const struct source *s, const char *out)
{
	struct stat a, b;

	if (!out) {
		fprintf(stderr, "vggtl: no output file: give -o FILE\n");
		return EXIT_USAGE;
	}
	if (s->has_pth && stat(out, &b) == 0 && fstat(s->pth.src.fd, &a) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino) {
		fprintf(stderr, "vggtl: refusing to write over the input '%s': choose another -o\n", out);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

int write_model(const struct source *s, const char *out, int full, const char *prefix)
{
	struct vt_err err = { 0 };
	int rc = check_output(s, out);

	if (rc)
		return rc;
	rc = full ? vt_model_save_full(&s->model, out, s->src, &err) :
		    vt_model_save_weights(&s->model, out, s->src, prefix, &err);
	return rc ? report(&err) : EXIT_OK;
}
