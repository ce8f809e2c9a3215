/* cmd_load.c - vggtl load: print a model as print(model) does, or list its tensors.
 * Reads the pickle only: no tensor data is touched.  A VGG prints from the VGG graph (which
 * also rebuilds it from a state_dict); any other module tree from its records; a state_dict
 * of no known architecture, or a file without a model, prints a summary of what it holds. */
#include "cmd.h"
#include "vt_module.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] = "usage: vggtl load (FILE | --arch NAME) [--tensors] [--json] [--key K] [--torch-version V]\n\n"
			    "Prints the model exactly as Python's print(model) does, for any module tree\n"
			    "(as torch 2.6 prints it; --torch-version 1.13 for 1.13's text where they differ);\n"
			    "a state_dict of no known architecture prints a summary.\n"
			    "--tensors lists every tensor of any torch.save file (path, dtype, shape, bytes);\n"
			    "--json also describes every other value and object the file holds.";

struct list {
	struct vt_named *t;
	size_t n, cap;
	int oom;
	size_t visits; /* values walked: shared containers make a tree exponentially larger than its file */
};

#define MAX_VISITS 2000000

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
		if (vt_mod_is_module(v)) { /* a module's tensors by their state_dict names */
			struct vt_weights w = { VT_WEIGHTS_MODULE, v, "" };
			struct vt_named *t;
			struct vt_err err = { 0 };
			size_t n, j;
			if (vt_weights_state_dict(&w, &t, &n, NULL, NULL, &err)) {
				l->visits = MAX_VISITS + 1; /* too big (or out of memory): said by the caller */
				return;
			}
			l->visits += n; /* one module met through many references is listed as often */
			for (j = 0; j < n && l->visits <= MAX_VISITS; j++) {
				snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", t[j].name);
				list_add(l, sub, t[j].t);
			}
			vt_named_free(t, n);
			break;
		}
		flatten(l, v->u.obj.state, path, depth + 1);
		flatten(l, v->u.obj.items, path, depth + 1);
		if (v->u.obj.call)
			flatten(l, v->u.obj.args, path, depth + 1);
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

/* What the file holds, besides its module tree: set by cmd_load. */
struct found {
	const char *kind;  /* "vgg", "module", "state_dict", "torchscript" or "none" */
	char cls[256];     /* the module's class path */
	const char *where; /* the key path of the weights, "" for the root */
	char *repr;        /* print(model), when there is a module */
	const struct vt_pk *top; /* the value described */
};

static cJSON *tensor_json(const char *name, const struct vt_tensor *t)
{
	cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray();
	int d;

	if (name)
		cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "dtype", vt_dtype_info(t->dtype)->name);
	for (d = 0; d < t->ndim; d++)
		cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->size[d]));
	cJSON_AddItemToObject(o, "shape", shape);
	cJSON_AddNumberToObject(o, "bytes", (double)(vt_tensor_numel(t) * (uint64_t)vt_dtype_info(t->dtype)->size));
	if (t->qscheme) {
		cJSON_AddStringToObject(o, "qscheme", vt_qscheme_names[t->qscheme]);
		if (t->q_scales) {
			cJSON_AddNumberToObject(o, "axis", (double)t->q_axis);
		} else {
			cJSON_AddNumberToObject(o, "scale", t->q_scale);
			cJSON_AddNumberToObject(o, "zero_point", (double)t->q_zero_point);
		}
	}
	return o;
}

/* Every value as JSON: plain values as themselves, tensors, arrays and records described. */
static cJSON *value_json(const struct vt_pk *v, int depth, size_t *budget)
{
	char buf[300];
	cJSON *o;
	size_t i;

	if (!v || depth > 32 || *budget == 0)
		return cJSON_CreateString("...");
	(*budget)--;
	if (vt_pk_tensor(v)) {
		o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "tensor", tensor_json(NULL, vt_pk_tensor(v)));
		return o;
	}
	switch (v->kind) {
	case VT_PK_NONE:
		return cJSON_CreateNull();
	case VT_PK_BOOL:
		return cJSON_CreateBool(v->u.b);
	case VT_PK_INT:
		return cJSON_CreateNumber((double)v->u.i);
	case VT_PK_FLOAT:
		return cJSON_CreateNumber(v->u.f);
	case VT_PK_STR:
		return cJSON_CreateString(v->u.str.s); /* cut at a NUL, if it holds one */
	case VT_PK_BYTES:
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "bytes", (double)v->u.str.len);
		return o;
	case VT_PK_TUPLE:
	case VT_PK_LIST:
	case VT_PK_SET:
		o = cJSON_CreateArray();
		for (i = 0; i < v->u.seq.n; i++)
			cJSON_AddItemToArray(o, value_json(v->u.seq.items[i], depth + 1, budget));
		return o;
	case VT_PK_DICT:
		o = cJSON_CreateObject();
		for (i = 0; i < v->u.dict.n; i++) {
			const struct vt_pk *k = v->u.dict.keys[i];
			if (k->kind == VT_PK_STR)
				snprintf(buf, sizeof(buf), "%s", k->u.str.s);
			else if (k->kind == VT_PK_INT)
				snprintf(buf, sizeof(buf), "%lld", (long long)k->u.i);
			else
				snprintf(buf, sizeof(buf), "<key %zu>", i);
			cJSON_AddItemToObject(o, buf, value_json(v->u.dict.vals[i], depth + 1, budget));
		}
		return o;
	case VT_PK_GLOBAL:
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "global", vt_pk_class_path(v, buf, sizeof(buf)));
		return o;
	case VT_PK_OBJECT:
		o = cJSON_CreateObject();
		if (vt_mod_is_module(v)) { /* its tensors are listed; its text is "model" */
			cJSON_AddStringToObject(o, "module", vt_pk_class_path(v, buf, sizeof(buf)));
			return o;
		}
		cJSON_AddStringToObject(o, v->u.obj.call ? "call" : "object", vt_pk_class_path(v, buf, sizeof(buf)));
		if (v->u.obj.call)
			cJSON_AddItemToObject(o, "args", value_json(v->u.obj.args, depth + 1, budget));
		if (v->u.obj.state)
			cJSON_AddItemToObject(o, "state", value_json(v->u.obj.state, depth + 1, budget));
		if (v->u.obj.items)
			cJSON_AddItemToObject(o, "items", value_json(v->u.obj.items, depth + 1, budget));
		return o;
	case VT_PK_EXT:
		o = cJSON_CreateObject();
		if (v->u.ext.type == VT_EXT_NP_ARRAY) {
			const struct vt_np_array *arr = v->u.ext.p;
			cJSON *shape = cJSON_CreateArray(), *a = cJSON_CreateObject();
			int d;
			const char *dt = vt_np_dtype_name(&arr->dtype, buf, sizeof(buf));
			cJSON_AddStringToObject(a, "dtype", dt ? dt : "object");
			for (d = 0; d < arr->ndim; d++)
				cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)arr->shape[d]));
			cJSON_AddItemToObject(a, "shape", shape);
			cJSON_AddItemToObject(o, "ndarray", a);
		} else if (v->u.ext.type == VT_EXT_NP_DTYPE) {
			const char *dt = vt_np_dtype_name(v->u.ext.p, buf, sizeof(buf));
			cJSON_AddStringToObject(o, "numpy_dtype", dt ? dt : "?");
		} else {
			cJSON_AddStringToObject(o, "storage", ((const struct vt_storage *)v->u.ext.p)->key);
		}
		return o;
	}
	return cJSON_CreateNull();
}

static int print_json(const struct source *s, const struct list *l, const struct found *f)
{
	cJSON *root = cJSON_CreateObject(), *arr = cJSON_CreateArray();
	uint64_t params = 0;
	size_t i, budget = 1000000;
	char *text;

	cJSON_AddStringToObject(root, "source", s->label);
	if (s->has_pth)
		cJSON_AddStringToObject(root, "container",
					s->pth.is_torchscript ? "torchscript" : s->pth.is_zip ? "zip" :
					s->pth.is_safetensors ? "safetensors" : "legacy");
	cJSON_AddStringToObject(root, "kind", f->kind);
	if (f->cls[0])
		cJSON_AddStringToObject(root, "class", f->cls);
	if (f->where)
		cJSON_AddStringToObject(root, "where", f->where);
	if (s->has_model)
		cJSON_AddStringToObject(root, "arch", s->model.arch[0] ? s->model.arch : "custom");
	if (f->repr)
		cJSON_AddStringToObject(root, "model", f->repr);
	for (i = 0; i < l->n; i++) {
		cJSON_AddItemToArray(arr, tensor_json(l->t[i].name, l->t[i].t));
		params += vt_tensor_numel(l->t[i].t);
	}
	cJSON_AddItemToObject(root, "tensors", arr);
	cJSON_AddNumberToObject(root, "elements", (double)params);
	if (s->has_pth)
		cJSON_AddItemToObject(root, "values", value_json(s->pth.root, 0, &budget));
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

/* One line on a value, for the summary of a file without a model. */
static void describe_value(const struct vt_pk *v, char *buf, size_t size)
{
	const struct vt_tensor *t = vt_pk_tensor(v);
	char cls[256], shape[256];

	if (t) {
		shape_text(t, shape, sizeof(shape));
		snprintf(buf, size, "tensor %s %s", vt_dtype_info(t->dtype)->name, shape);
		return;
	}
	switch (v->kind) {
	case VT_PK_NONE: snprintf(buf, size, "None"); break;
	case VT_PK_BOOL: snprintf(buf, size, "bool %s", v->u.b ? "True" : "False"); break;
	case VT_PK_INT: snprintf(buf, size, "int %lld", (long long)v->u.i); break;
	case VT_PK_FLOAT: {
		char f[40];
		vt_py_float_repr(v->u.f, f, sizeof(f));
		snprintf(buf, size, "float %s", f);
		break;
	}
	case VT_PK_STR: snprintf(buf, size, "str '%.60s%s'", v->u.str.s, v->u.str.len > 60 ? "..." : ""); break;
	case VT_PK_BYTES: snprintf(buf, size, "bytes (%zu)", v->u.str.len); break;
	case VT_PK_TUPLE: snprintf(buf, size, "tuple (%zu items)", v->u.seq.n); break;
	case VT_PK_LIST: snprintf(buf, size, "list (%zu items)", v->u.seq.n); break;
	case VT_PK_SET: snprintf(buf, size, "set (%zu items)", v->u.seq.n); break;
	case VT_PK_DICT: snprintf(buf, size, "dict (%zu keys)", v->u.dict.n); break;
	case VT_PK_GLOBAL: snprintf(buf, size, "global %s", vt_pk_class_path(v, cls, sizeof(cls))); break;
	case VT_PK_OBJECT:
		snprintf(buf, size, "%s %s", vt_mod_is_module(v) ? "module" : v->u.obj.call ? "call of" : "object",
			 vt_pk_class_path(v, cls, sizeof(cls)));
		break;
	default:
		snprintf(buf, size, "%s", v->u.ext.type == VT_EXT_NP_ARRAY ? "numpy array" : "value");
		break;
	}
}

/* A state_dict of no known architecture, or a file without a model: what it holds. */
static void print_summary(const struct found *f, const struct list *l)
{
	uint64_t elements = 0, bytes = 0;
	size_t count[VT_DTYPE_COUNT] = { 0 }, i;
	char line[512];
	int d, first = 1;

	for (i = 0; i < l->n; i++) {
		const struct vt_tensor *t = l->t[i].t;
		elements += vt_tensor_numel(t);
		bytes += vt_tensor_numel(t) * (uint64_t)vt_dtype_info(t->dtype)->size;
		count[t->dtype]++;
	}
	if (strcmp(f->kind, "none") == 0) {
		describe_value(f->top, line, sizeof(line));
		printf("no model and no state_dict: the file holds a %s\n", line);
		if (f->top->kind == VT_PK_DICT)
			for (i = 0; i < f->top->u.dict.n; i++) {
				const struct vt_pk *k = f->top->u.dict.keys[i];
				describe_value(f->top->u.dict.vals[i], line, sizeof(line));
				if (k->kind == VT_PK_STR)
					printf("  %s: %s\n", k->u.str.s, line);
				else if (k->kind == VT_PK_INT)
					printf("  %lld: %s\n", (long long)k->u.i, line);
			}
	} else {
		printf("%s%s%s%s: %zu tensors, %llu elements, %llu bytes\n",
		       strcmp(f->kind, "torchscript") == 0 ? "TorchScript module " : "state_dict", f->cls,
		       f->where && *f->where ? " under " : "", f->where && *f->where ? f->where : "", l->n,
		       (unsigned long long)elements, (unsigned long long)bytes);
	}
	if (!l->n)
		return;
	printf("dtypes:");
	for (d = 0; d < VT_DTYPE_COUNT; d++)
		if (count[d]) {
			printf("%s %s (%zu)", first ? "" : ",", vt_dtype_info(d)->name, count[d]);
			first = 0;
		}
	printf("\n");
}

int cmd_load(int argc, char **argv)
{
	struct source s = { 0 };
	const char *key = NULL, *version = NULL;
	enum vt_torch_text text = VT_TORCH_TEXT_2X;
	int tensors = 0, json = 0, nargs = 0, rc;
	const struct option opts[] = {
		{ OPT_FLAG, "tensors", 't', &tensors, NULL, NULL, "list tensors: path, dtype, shape, bytes" },
		{ OPT_FLAG, "json", 0, &json, NULL, NULL, "print the model, its tensors and every value as JSON" },
		{ OPT_STRING, "key", 0, &key, NULL, "K", "the weights under key K (a dotted path) of a training dict" },
		{ OPT_STRING, "torch-version", 0, &version, NULL, "V",
		  "print as torch V does where versions differ: 2.6 (default) or 1.13" },
		SOURCE_OPTIONS(&s),
		{ OPT_END, NULL, 0, NULL, NULL, NULL, NULL },
	};
	struct found f = { "none", "", NULL, NULL, NULL };
	struct vt_weights w;
	struct list l = { 0 };
	size_t i;

	rc = parse_options(argc, argv, opts, usage, &nargs);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (version && strncmp(version, "1.", 2) == 0 && strcmp(version, "1.13") != 0) {
		fprintf(stderr, "vggtl load: --torch-version %s: vggtl prints as torch 1.13 or 2.x (2.6) do\n", version);
		return EXIT_USAGE;
	}
	if (version && strcmp(version, "1.13") == 0)
		text = VT_TORCH_TEXT_1_13;
	else if (version && (strncmp(version, "2.", 2) != 0 || !version[2])) {
		fprintf(stderr, "vggtl load: --torch-version '%s' is not 1.13 or 2.x\n", version);
		return EXIT_USAGE;
	}
	if ((rc = source_open(&s, nargs, argv, 0)))
		goto out;
	if (s.has_pth) {
		struct vt_err err = { 0 };
		if (vt_weights_find(&s.pth, key, &w, &err) == 0) {
			f.where = w.where;
			vt_pk_class_path(w.node, f.cls, sizeof(f.cls));
			f.kind = w.kind == VT_WEIGHTS_MODULE ? "module" :
				 w.kind == VT_WEIGHTS_SCRIPT ? "torchscript" : "state_dict";
			/* the VGG graph, when the weights are a VGG: it also names a state_dict's model */
			if (s.has_model) { /* --pretrained: source_open built it */
				f.kind = "vgg";
			} else if (w.kind != VT_WEIGHTS_SCRIPT && vt_model_from_weights(&s.model, &w, &err) == 0) {
				s.has_model = 1;
				f.kind = "vgg";
			} else if (w.kind == VT_WEIGHTS_MODULE) {
				f.repr = vt_mod_repr(w.node, text);
				if (!f.repr) {
					fprintf(stderr, "vggtl: %s: out of memory, or more than 100000 modules to print\n",
						s.label);
					rc = EXIT_FAIL;
					goto out;
				}
			}
		} else if (key) {
			vt_err_prefix(&err, "%s", s.label);
			rc = report(&err);
			goto out;
		}
		f.top = key && f.where ? w.node : s.pth.root;
	}
	if (s.has_model) {
		f.repr = vt_model_repr(&s.model);
		if (!f.repr) {
			fprintf(stderr, "vggtl: out of memory\n");
			rc = EXIT_FAIL;
			goto out;
		}
	}
	if (!s.has_pth) { /* --arch: the fresh model's own tensors */
		struct vt_err err = { 0 };
		if (vt_model_state_dict(&s.model, NULL, &l.t, &l.n, &err)) {
			rc = report(&err);
			goto out;
		}
		l.cap = l.n;
	} else {
		flatten(&l, f.top, "", 0);
		if (l.oom) {
			rc = EXIT_FAIL;
			fprintf(stderr, "vggtl: out of memory\n");
			goto out;
		}
		if (l.visits > MAX_VISITS) {
			rc = EXIT_FAIL;
			fprintf(stderr, "vggtl: %s: more than %d values and tensors to walk (containers shared over and over)\n",
				s.label, MAX_VISITS);
			goto out;
		}
	}
	if (json) {
		rc = print_json(&s, &l, &f);
	} else if (tensors) {
		for (i = 0; i < l.n; i++) {
			const struct vt_tensor *t = l.t[i].t;
			char shape[256];
			shape_text(t, shape, sizeof(shape));
			printf("%s\t%s\t%s\t%llu\n", l.t[i].name, vt_dtype_info(t->dtype)->name, shape,
			       (unsigned long long)(vt_tensor_numel(t) * (uint64_t)vt_dtype_info(t->dtype)->size));
		}
	} else if (f.repr) {
		printf("%s\n", f.repr);
	} else {
		print_summary(&f, &l);
	}
	if (fflush(stdout) != 0 && rc == 0) {
		fprintf(stderr, "vggtl: cannot write to standard output\n");
		rc = EXIT_FAIL;
	}
out:
	free(f.repr);
	vt_named_free(l.t, l.n);
	source_close(&s);
	return rc;
}
