/* cmd_load.c - vggtl load: print a model as print(model) does, or list its tensors.
 * Reads the pickle only: no tensor data is touched. */
#include "cmd.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] = "usage: vggtl load (FILE | --arch NAME) [--tensors] [--json]\n\n"
			    "Prints the model exactly as Python's print(model) does.\n"
			    "--tensors lists each tensor (name, dtype, shape, bytes) of any torch.save file.";

struct list {
	struct vt_named *t;
	size_t n, cap;
	int oom;
	size_t visits; /* values walked: shared containers make a tree exponentially larger than its file */
};

#define MAX_VISITS 10000000

static void list_add(struct list *l, const char *name, const struct vt_tensor *t)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		struct vt_named *p = realloc(l->t, ncap * sizeof(*p));
		if (!p) {
			l->oom = 1;
			return;
		}
		l->t = p;
		l->cap = ncap;
	}
	l->t[l->n].name = strdup(name);
	l->t[l->n].t = t;
	if (!l->t[l->n].name)
		l->oom = 1;
	else
		l->n++;
}

/* Every tensor anywhere in a pickle, named by its path of dict keys and indices. */
static void flatten(struct list *l, const struct vt_pk *v, const char *path, int depth)
{
	char sub[1024];
	size_t i;

	if (!v || depth > VT_PK_MAX_DEPTH || l->visits > MAX_VISITS)
		return;
	l->visits++;
	if (vt_pk_tensor(v)) {
		list_add(l, path, vt_pk_tensor(v));
		return;
	}
	switch (v->kind) {
	case VT_PK_DICT:
		for (i = 0; i < v->u.dict.n; i++) {
			const struct vt_pk *k = v->u.dict.keys[i];
			if (k->kind == VT_PK_STR)
				snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", k->u.str.s);
			else if (k->kind == VT_PK_INT)
				snprintf(sub, sizeof(sub), "%s%s%lld", path, *path ? "." : "", (long long)k->u.i);
			else
				continue;
			flatten(l, v->u.dict.vals[i], sub, depth + 1);
		}
		break;
	case VT_PK_LIST:
	case VT_PK_TUPLE:
		for (i = 0; i < v->u.seq.n; i++) {
			snprintf(sub, sizeof(sub), "%s%s%zu", path, *path ? "." : "", i);
			flatten(l, v->u.seq.items[i], sub, depth + 1);
		}
		break;
	case VT_PK_OBJECT:
		flatten(l, v->u.obj.state, path, depth + 1);
		break;
	default:
		break;
	}
}

static void shape_text(const struct vt_tensor *t, char *buf, size_t size)
{
	size_t at = (size_t)snprintf(buf, size, "[");
	int i;

	for (i = 0; i < t->ndim && at < size; i++)
		at += (size_t)snprintf(buf + at, size - at, "%s%lld", i ? ", " : "", (long long)t->size[i]);
	if (at < size)
		snprintf(buf + at, size - at, "]");
}

static int print_json(const struct source *s, const struct list *l, const char *repr)
{
	cJSON *root = cJSON_CreateObject(), *arr = cJSON_CreateArray();
	uint64_t params = 0;
	char *text;
	size_t i;

	cJSON_AddStringToObject(root, "source", s->label);
	if (s->has_pth)
		cJSON_AddStringToObject(root, "container", s->pth.is_zip ? "zip" : "legacy");
	if (repr) {
		cJSON_AddStringToObject(root, "arch", s->model.arch[0] ? s->model.arch : "custom");
		cJSON_AddStringToObject(root, "model", repr);
	}
	for (i = 0; i < l->n; i++) {
		const struct vt_tensor *t = l->t[i].t;
		cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray();
		int d;
		cJSON_AddStringToObject(o, "name", l->t[i].name);
		cJSON_AddStringToObject(o, "dtype", vt_dtype_info(t->dtype)->name);
		for (d = 0; d < t->ndim; d++)
			cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->size[d]));
		cJSON_AddItemToObject(o, "shape", shape);
		cJSON_AddNumberToObject(o, "bytes", (double)(vt_tensor_numel(t) * (uint64_t)vt_dtype_info(t->dtype)->size));
		cJSON_AddItemToArray(arr, o);
		params += vt_tensor_numel(t);
	}
	cJSON_AddItemToObject(root, "tensors", arr);
	cJSON_AddNumberToObject(root, "elements", (double)params);
	text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text) {
		fprintf(stderr, "vggtl: out of memory while writing JSON\n");
		return EXIT_FAIL;
	}
	printf("%s\n", text);
	free(text);
	return EXIT_OK;
}

int cmd_load(int argc, char **argv)
{
	struct source s = { 0 };
	int tensors = 0, json = 0, nargs = 0, rc;
	const struct option opts[] = {
		{ OPT_FLAG, "tensors", 't', &tensors, NULL, NULL, "list tensors: name, dtype, shape, bytes" },
		{ OPT_FLAG, "json", 0, &json, NULL, NULL, "print the model and its tensors as JSON" },
		SOURCE_OPTIONS(&s),
		{ OPT_END, NULL, 0, NULL, NULL, NULL, NULL },
	};
	struct list l = { 0 };
	char *repr = NULL;
	size_t i;

	rc = parse_options(argc, argv, opts, usage, &nargs);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	/* listing tensors works on any torch.save file, VGG or not */
	if ((rc = source_open(&s, nargs, argv, !(tensors || json))))
		goto out;
	if (!s.has_model) {
		struct vt_err err = { 0 };
		if (vt_model_from_pth(&s.model, &s.pth, &err) == 0)
			s.has_model = 1;
	}
	if (s.has_model) {
		struct vt_err err = { 0 };
		repr = vt_model_repr(&s.model);
		if (!repr || vt_model_state_dict(&s.model, NULL, &l.t, &l.n, &err)) {
			rc = EXIT_FAIL;
			fprintf(stderr, "vggtl: out of memory\n");
			goto out;
		}
		l.cap = l.n;
	} else {
		flatten(&l, s.pth.root, "", 0);
		if (l.oom) {
			rc = EXIT_FAIL;
			fprintf(stderr, "vggtl: out of memory\n");
			goto out;
		}
		if (l.visits > MAX_VISITS) {
			rc = EXIT_FAIL;
			fprintf(stderr, "vggtl: %s: more than %d values to walk (containers shared over and over)\n",
				s.label, MAX_VISITS);
			goto out;
		}
	}
	if (json) {
		rc = print_json(&s, &l, repr);
	} else if (tensors) {
		for (i = 0; i < l.n; i++) {
			const struct vt_tensor *t = l.t[i].t;
			char shape[256];
			shape_text(t, shape, sizeof(shape));
			printf("%s\t%s\t%s\t%llu\n", l.t[i].name, vt_dtype_info(t->dtype)->name, shape,
			       (unsigned long long)(vt_tensor_numel(t) * (uint64_t)vt_dtype_info(t->dtype)->size));
		}
	} else {
		printf("%s\n", repr);
	}
	if (fflush(stdout) != 0 && rc == 0) {
		fprintf(stderr, "vggtl: cannot write to standard output\n");
		rc = EXIT_FAIL;
	}
out:
	free(repr);
	vt_named_free(l.t, l.n);
	source_close(&s);
	return rc;
}
