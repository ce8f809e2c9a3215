/* cmd_save_weights.c - vggtl save-weights: write the state_dict form, as
 * torch.save(model.state_dict()), of any model: a whole model of any class (its code need not
 * exist anywhere), a state_dict, either inside a training dict, a TorchScript archive or a
 * safetensors file; or the same tensors as a safetensors file (OUT.safetensors or
 * --format safetensors), as safetensors.torch.save_file writes them. */
#include "cmd.h"
#include "vt_cast.h"
#include "vt_module.h"
#include "vt_safetensors.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] = "usage: vggtl save-weights (FILE | --arch NAME) -o OUT [--key K] [--add-prefix PREFIX]\n"
			    "                          [--format pth|safetensors] [--dtype float16|bfloat16|float32]\n\n"
			    "Writes what torch.save(model.state_dict()) writes: it loads with\n"
			    "torch.load(OUT, weights_only=True) and load_state_dict(..., strict=True).\n"
			    "Works on any model: a whole model of any class, a state_dict, or either\n"
			    "inside a training dict (found under state_dict, model_state_dict, model, net,\n"
			    "...; --key K chooses), or a safetensors file.  Prefixes such as module.\n"
			    "(DataParallel) in the input are stripped; --add-prefix module. writes\n"
			    "DDP-style keys.\n\n"
			    "An OUT ending in .safetensors (or --format safetensors) is written as\n"
			    "safetensors.torch.save_file(state_dict, OUT, {\"format\": \"pt\"}) writes it:\n"
			    "tensors made contiguous, no _metadata versions.  Tensors that share memory\n"
			    "(tied weights) are refused, as save_file refuses them: one name would be\n"
			    "dropped and load_state_dict(strict=True) would then fail; clone them or\n"
			    "write a .pth.  Quantized and complex tensors are refused too.\n\n"
			    "--dtype casts every floating-point tensor while it streams, as model.half()\n"
			    "(or .bfloat16(), .float()) before torch.save would, rounding to nearest-even\n"
			    "bit for bit as torch's .to(dtype); integer, bool, complex and quantized\n"
			    "tensors stay as they are, and tied tensors stay tied.";

/* Prepends prefix to every name and metadata prefix ("" becomes the prefix without its dot). */
static int add_prefix(struct vt_named *t, size_t n, struct vt_meta *meta, size_t nmeta, const char *prefix)
{
	size_t i, pl = strlen(prefix);

	for (i = 0; i < n; i++) {
		char *s = malloc(pl + strlen(t[i].name) + 1);
		if (!s)
			return -1;
		memcpy(s, prefix, pl);
		strcpy(s + pl, t[i].name);
		free((char *)t[i].name);
		t[i].name = s;
	}
	for (i = 0; i < nmeta; i++) {
		const char *old = meta[i].prefix;
		char *s = malloc(pl + strlen(old) + 1);
		if (!s)
			return -1;
		if (*old)
			sprintf(s, "%s%s", prefix, old);
		else
			snprintf(s, pl + 1, "%.*s", pl && prefix[pl - 1] == '.' ? (int)pl - 1 : (int)pl, prefix);
		free((char *)old);
		meta[i].prefix = s;
	}
	return 0;
}

/* Writes a state_dict as .pth or safetensors, its floating-point tensors cast to dtype (-1: as they are). */
static int write_state(const struct source *s, const char *out, struct vt_named *t, size_t n, const struct vt_meta *meta,
		       size_t nmeta, int st, int dtype)
{
	struct vt_err err = { 0 };
	struct vt_cast_set cast = { 0 };
	int rc = 0;

	if (dtype >= 0)
		rc = vt_cast_state_dict(t, n, dtype, &cast, &err);
	if (rc == 0)
		rc = st ? vt_st_write(out, s->src, t, n, &err) :
			  vt_pth_write_state_dict(out, s->src, t, n, nmeta ? meta : NULL, nmeta, &err);
	vt_cast_set_release(&cast);
	return rc ? report(&err) : EXIT_OK;
}

static int save_any(struct source *s, const char *key, const char *out, const char *prefix, int st, int dtype)
{
	struct vt_err err = { 0 };
	struct vt_weights w;
	struct vt_named *t = NULL;
	struct vt_meta *meta = NULL;
	size_t n = 0, nmeta = 0;
	int rc;

	if ((rc = check_output(s, out)))
		return rc;
	if ((rc = vt_weights_find(&s->pth, key, &w, &err)) ||
	    (rc = vt_weights_state_dict(&w, &t, &n, &meta, &nmeta, &err))) {
		vt_err_prefix(&err, "%s", s->label);
		return report(&err);
	}
	if (prefix && add_prefix(t, n, meta, nmeta, prefix)) {
		rc = EXIT_FAIL;
		fprintf(stderr, "vggtl: out of memory\n");
	} else {
		rc = write_state(s, out, t, n, meta, nmeta, st, dtype);
	}
	vt_named_free(t, n);
	vt_meta_free(meta, nmeta);
	return rc;
}

/* A fresh or pretrained VGG (--arch) as safetensors, or cast. */
static int save_model(const struct source *s, const char *out, const char *prefix, int st, int dtype)
{
	struct vt_err err = { 0 };
	struct vt_named *t = NULL;
	struct vt_meta *meta = NULL;
	size_t n = 0, nmeta = 0;
	int rc = check_output(s, out);

	if (rc)
		return rc;
	if (vt_model_state_dict(&s->model, prefix, &t, &n, &err) ||
	    (!st && vt_model_metadata(&s->model, prefix, &meta, &nmeta, &err)))
		rc = report(&err);
	else
		rc = write_state(s, out, t, n, meta, nmeta, st, dtype);
	vt_named_free(t, n);
	vt_meta_free(meta, nmeta);
	return rc;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

int cmd_save_weights(int argc, char **argv)
{
	struct source s = { 0 };
	const char *out = NULL, *prefix = NULL, *key = NULL, *format = NULL, *dtype_name = NULL;
	int nargs = 0, rc, st, dtype = -1;
	const struct option opts[] = {
		{ OPT_STRING, "output", 'o', &out, NULL, "OUT", "the file to write (replaced atomically)" },
		{ OPT_STRING, "key", 0, &key, NULL, "K", "the weights under key K (a dotted path) of a training dict" },
		{ OPT_STRING, "add-prefix", 0, &prefix, NULL, "PREFIX", "prepend PREFIX to every key, e.g. module." },
		{ OPT_STRING, "format", 0, &format, NULL, "pth|safetensors",
		  "the file format (default: safetensors for a .safetensors OUT, else pth)" },
		{ OPT_STRING, "dtype", 0, &dtype_name, NULL, "float16|bfloat16|float32",
		  "cast floating-point tensors, as model.half() etc. would (default: as they are)" },
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
	if (format && strcmp(format, "pth") != 0 && strcmp(format, "safetensors") != 0) {
		fprintf(stderr, "vggtl save-weights: unknown --format '%s' (pth or safetensors)\n", format);
		return EXIT_USAGE;
	}
	if (dtype_name && (dtype = vt_cast_dtype(dtype_name)) < 0) {
		fprintf(stderr, "vggtl save-weights: unknown --dtype '%s' (float16, bfloat16 or float32)\n", dtype_name);
		return EXIT_USAGE;
	}
	st = format ? strcmp(format, "safetensors") == 0 : ends_with(out, ".safetensors");
	if (s.arch && key) {
		fprintf(stderr, "vggtl save-weights: --key goes with a FILE\n");
		return EXIT_USAGE;
	}
	rc = source_open(&s, nargs, argv, 0);
	if (rc == EXIT_OK)
		rc = s.has_pth ? save_any(&s, key, out, prefix, st, dtype) :
		     st || dtype >= 0 ? save_model(&s, out, prefix, st, dtype) : write_model(&s, out, 0, prefix);
	source_close(&s);
	return rc;
}
