/* module.c - finding the weights in any torch.save file and computing its state_dict
 * (see include/vt_module.h).
 *
 * state_dict() is Module.state_dict of torch 1.13 (torch/nn/modules/module.py): for each
 * module, _parameters in order (None skipped), then _buffers not named in
 * _non_persistent_buffers_set, then each child of _modules with "<name>." added; _metadata
 * records every module's prefix with its class's _version (1 unless the class sets another).
 * Shared subtrees are walked each time they are met, within MAX_MODULES visits.
 */
#include "vt_module.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MODULES 100000
#define MAX_NESTING 64

int vt_mod_is_module(const struct vt_pk *v)
{
	const struct vt_pk *st = vt_pk_obj_state(v);

	return st && !v->u.obj.call && st->kind == VT_PK_DICT &&
	       (vt_pk_dict_get(st, "_modules") || vt_pk_dict_get(st, "_parameters"));
}

const struct vt_pk *vt_mod_dict(const struct vt_pk *mod, const char *which)
{
	const struct vt_pk *d = vt_pk_dict_get(vt_pk_obj_state(mod), which);

	return d && d->kind == VT_PK_DICT ? d : NULL;
}

/* ---- finding the weights ------------------------------------------------------------------ */

const char *const vt_weights_keys[] = {
	"state_dict", "model_state_dict", "model_state", "model", "net", "network", "state_dict_ema",
	"model_ema", "ema", "module", "weights", "params", "params_ema", NULL
};

static int is_state_dict(const struct vt_pk *v)
{
	size_t i;

	if (!v || v->kind != VT_PK_DICT || v->u.dict.n == 0)
		return 0;
	for (i = 0; i < v->u.dict.n; i++)
		if (v->u.dict.keys[i]->kind != VT_PK_STR || !vt_pk_tensor(v->u.dict.vals[i]))
			return 0;
	return 1;
}

static int is_script_object(const struct vt_pk *v)
{
	const struct vt_pk *cls = v && v->kind == VT_PK_OBJECT ? v->u.obj.cls : NULL;

	return cls && cls->kind == VT_PK_GLOBAL && strncmp(cls->u.global.module, "__torch__", 9) == 0;
}

static int found(struct vt_weights *w, enum vt_weights_kind kind, const struct vt_pk *node, const char *where)
{
	w->kind = kind;
	w->node = node;
	snprintf(w->where, sizeof(w->where), "%s", where);
	return 0;
}

/* The weights in v (reached by path): itself, or under a training-dict key. */
static int search(const struct vt_pk *v, const char *path, int depth, struct vt_weights *w)
{
	char sub[256];
	size_t i;
	int k;

	if (!v || depth > 4)
		return VT_ENOTFOUND;
	if (vt_mod_is_module(v))
		return found(w, VT_WEIGHTS_MODULE, v, path);
	if (is_script_object(v))
		return found(w, VT_WEIGHTS_SCRIPT, v, path);
	if (is_state_dict(v))
		return found(w, VT_WEIGHTS_STATE_DICT, v, path);
	if (v->kind != VT_PK_DICT)
		return VT_ENOTFOUND;
	for (k = 0; vt_weights_keys[k]; k++) {
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", vt_weights_keys[k]);
		if (search(vt_pk_dict_get(v, vt_weights_keys[k]), sub, depth + 1, w) == 0)
			return 0;
	}
	/* {'arch': ..., 'my_net': <module>}: a module under any key */
	for (i = 0; i < v->u.dict.n; i++)
		if (v->u.dict.keys[i]->kind == VT_PK_STR && vt_mod_is_module(v->u.dict.vals[i])) {
			snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", v->u.dict.keys[i]->u.str.s);
			return found(w, VT_WEIGHTS_MODULE, v->u.dict.vals[i], sub);
		}
	return VT_ENOTFOUND;
}

/* d[key] where key may itself hold dots: the longest matching head first. */
static const struct vt_pk *get_path(const struct vt_pk *d, const char *key, int depth)
{
	size_t n = strlen(key);

	if (depth > 32)
		return NULL;
	for (;;) {
		char head[256];
		const struct vt_pk *v;
		if (n < sizeof(head)) {
			memcpy(head, key, n);
			head[n] = '\0';
			v = vt_pk_dict_get(d->kind == VT_PK_OBJECT ? vt_pk_obj_state(d) : d, head);
			if (v && key[n] == '\0')
				return v;
			if (v && (v = get_path(v, key + n + 1, depth + 1)))
				return v;
		}
		while (n > 0 && key[--n] != '.')
			;
		if (n == 0)
			return NULL;
	}
}

/* What a value is, for messages: "a dict with keys 'epoch', 'loss'". */
static void describe(const struct vt_pk *v, char *buf, size_t size)
{
	static const char *const kinds[] = { "None", "a bool", "an int", "a float", "a string", "bytes",
					     "a tuple", "a list", "a set", "a dict", "a global", "an object", "a value" };
	size_t i, at;

	if (v && v->kind == VT_PK_DICT) {
		at = (size_t)snprintf(buf, size, "a dict with %s", v->u.dict.n ? "keys" : "no keys");
		for (i = 0; i < v->u.dict.n && at < size; i++) {
			const struct vt_pk *k = v->u.dict.keys[i];
			if (i == 8) {
				snprintf(buf + at, size - at, ", ... (%zu in all)", v->u.dict.n);
				break;
			}
			if (k->kind == VT_PK_STR)
				at += (size_t)snprintf(buf + at, size - at, "%s '%.40s'", i ? "," : "", k->u.str.s);
			else
				at += (size_t)snprintf(buf + at, size - at, "%s (not a string)", i ? "," : "");
		}
	} else if (vt_pk_tensor(v)) {
		snprintf(buf, size, "a single tensor");
	} else if (v && v->kind == VT_PK_OBJECT) {
		char cls[200];
		snprintf(buf, size, "%s %s", v->u.obj.call ? "a call of" : "an object of class",
			 vt_pk_class_path(v, cls, sizeof(cls)));
	} else {
		snprintf(buf, size, "%s", v && (size_t)v->kind < sizeof(kinds) / sizeof(kinds[0]) ? kinds[v->kind] : "nothing");
	}
}

int vt_weights_find(const struct vt_pth *pth, const char *key, struct vt_weights *w, struct vt_err *err)
{
	char what[512];
	const struct vt_pk *v = pth->root;

	memset(w, 0, sizeof(*w));
	if (key) {
		v = get_path(v, key, 0);
		if (!v)
			return vt_err_set(err, VT_ENOTFOUND, "no key '%s' in this file", key);
		if (vt_mod_is_module(v))
			return found(w, VT_WEIGHTS_MODULE, v, key);
		if (is_script_object(v))
			return found(w, VT_WEIGHTS_SCRIPT, v, key);
		if (is_state_dict(v))
			return found(w, VT_WEIGHTS_STATE_DICT, v, key);
		describe(v, what, sizeof(what));
		return vt_err_set(err, VT_ENOTFOUND, "'%s' is neither a module nor a state_dict: it is %s", key, what);
	}
	if (search(v, "", 0, w) == 0)
		return 0;
	describe(v, what, sizeof(what));
	return vt_err_set(err, VT_ENOTFOUND,
			  "no model and no state_dict in this file: it holds %s (--key K chooses one)", what);
}

/* ---- state_dict ------------------------------------------------------------------------------ */

struct collect {
	struct vt_named *t;
	size_t n, cap;
	struct vt_meta *meta;
	size_t nmeta, meta_cap;
	size_t visits;
	int oom, too_big;
};

static char *join(const char *prefix, const char *name)
{
	size_t a = strlen(prefix), b = strlen(name);
	char *s = malloc(a + b + 1);

	if (s) {
		memcpy(s, prefix, a);
		memcpy(s + a, name, b + 1);
	}
	return s;
}

/* Makes room for one more element of size bytes in *arr (n used of *cap); 0 or -1. */
static int reserve(void **arr, size_t n, size_t *cap, size_t size)
{
	void *p;

	if (n < *cap)
		return 0;
	p = realloc(*arr, (*cap ? 2 * *cap : 64) * size);
	if (!p)
		return -1;
	*arr = p;
	*cap = *cap ? 2 * *cap : 64;
	return 0;
}

static void add_tensor(struct collect *c, const char *prefix, const char *name, const struct vt_tensor *t)
{
	char *full = join(prefix, name);

	if (!full || reserve((void **)&c->t, c->n, &c->cap, sizeof(*c->t))) {
		free(full);
		c->oom = 1;
		return;
	}
	c->t[c->n].name = full;
	c->t[c->n++].t = t;
}

static void add_meta(struct collect *c, const char *prefix, size_t len, int version)
{
	char *p = malloc(len + 1);

	if (!p || reserve((void **)&c->meta, c->nmeta, &c->meta_cap, sizeof(*c->meta))) {
		free(p);
		c->oom = 1;
		return;
	}
	memcpy(p, prefix, len);
	p[len] = '\0';
	c->meta[c->nmeta].prefix = p;
	c->meta[c->nmeta++].version = version;
}

/* _version of the classes that set one (torch 1.13, torchvision 0.14). */
static int class_version(const struct vt_pk *mod)
{
	static const char *const v2[] = {
		"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LazyBatchNorm1d", "LazyBatchNorm2d",
		"LazyBatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LazyInstanceNorm1d",
		"LazyInstanceNorm2d", "LazyInstanceNorm3d", "MLPBlock", "_DenseBlock", "MNASNet",
		"IntermediateLayerGetter", "FeaturePyramidNetwork", "QuantizableSqueezeExcitation", NULL
	};
	const char *name = vt_pk_obj_class(mod);
	int i;

	for (i = 0; name && v2[i]; i++)
		if (strcmp(name, v2[i]) == 0)
			return 2;
	return 1;
}

static int in_set(const struct vt_pk *set, const struct vt_pk *key)
{
	size_t i;

	if (!set || (set->kind != VT_PK_SET && set->kind != VT_PK_LIST) || key->kind != VT_PK_STR)
		return 0;
	for (i = 0; i < set->u.seq.n; i++)
		if (vt_pk_is_str(set->u.seq.items[i], key->u.str.s))
			return 1;
	return 0;
}

/* Starts a visit of one module at prefix[0..plen): 0 when it may go on. */
static int visit(struct collect *c, char *prefix, size_t plen, int depth)
{
	if (c->oom || c->too_big)
		return -1;
	if (++c->visits > MAX_MODULES || depth > MAX_NESTING) {
		c->too_big = 1;
		return -1;
	}
	prefix[plen] = '\0';
	return 0;
}

/* Appends "<name>." to prefix[0..plen); the new length, or 0 when it would not fit. */
static size_t child_prefix(struct collect *c, char *prefix, size_t plen, size_t pcap, const struct vt_pk *name)
{
	if (plen + name->u.str.len + 2 > pcap) {
		c->too_big = 1;
		return 0;
	}
	memcpy(prefix + plen, name->u.str.s, name->u.str.len);
	prefix[plen + name->u.str.len] = '.';
	return plen + name->u.str.len + 1;
}

static void collect_module(struct collect *c, const struct vt_pk *mod, char *prefix, size_t plen, size_t pcap,
			   int depth)
{
	const struct vt_pk *d, *skip;
	size_t i, sub;

	if (visit(c, prefix, plen, depth))
		return;
	if ((d = vt_mod_dict(mod, "_parameters")))
		for (i = 0; i < d->u.dict.n; i++)
			if (d->u.dict.keys[i]->kind == VT_PK_STR && vt_pk_tensor(d->u.dict.vals[i]))
				add_tensor(c, prefix, d->u.dict.keys[i]->u.str.s, vt_pk_tensor(d->u.dict.vals[i]));
	skip = vt_pk_dict_get(vt_pk_obj_state(mod), "_non_persistent_buffers_set");
	if ((d = vt_mod_dict(mod, "_buffers")))
		for (i = 0; i < d->u.dict.n; i++)
			if (d->u.dict.keys[i]->kind == VT_PK_STR && vt_pk_tensor(d->u.dict.vals[i]) &&
			    !in_set(skip, d->u.dict.keys[i]))
				add_tensor(c, prefix, d->u.dict.keys[i]->u.str.s, vt_pk_tensor(d->u.dict.vals[i]));
	add_meta(c, prefix, plen ? plen - 1 : 0, class_version(mod));
	if (!(d = vt_mod_dict(mod, "_modules")))
		return;
	for (i = 0; i < d->u.dict.n; i++) {
		const struct vt_pk *k = d->u.dict.keys[i];
		if (k->kind != VT_PK_STR || !vt_mod_is_module(d->u.dict.vals[i]))
			continue; /* None: a slot registered empty */
		if (!(sub = child_prefix(c, prefix, plen, pcap, k)))
			return;
		collect_module(c, d->u.dict.vals[i], prefix, sub, pcap, depth + 1);
	}
}

/* TorchScript: every attribute of a __torch__ object, tensors and objects, in order. */
static void collect_script(struct collect *c, const struct vt_pk *obj, char *prefix, size_t plen, size_t pcap,
			   int depth)
{
	const struct vt_pk *st = vt_pk_obj_state(obj);
	size_t i, sub;

	if (visit(c, prefix, plen, depth))
		return;
	for (i = 0; st && st->kind == VT_PK_DICT && i < st->u.dict.n; i++) {
		const struct vt_pk *k = st->u.dict.keys[i], *v = st->u.dict.vals[i];
		if (k->kind != VT_PK_STR)
			continue;
		if (vt_pk_tensor(v)) {
			add_tensor(c, prefix, k->u.str.s, vt_pk_tensor(v));
		} else if (is_script_object(v)) {
			if (!(sub = child_prefix(c, prefix, plen, pcap, k)))
				return;
			collect_script(c, v, prefix, sub, pcap, depth + 1);
			prefix[plen] = '\0'; /* the attributes after it have this object's prefix again */
		}
	}
}

static void collect_state_dict(struct collect *c, const struct vt_pk *d)
{
	const struct vt_pk *meta = vt_pk_dict_get(d->u.dict.attrs, "_metadata");
	size_t i;

	for (i = 0; i < d->u.dict.n; i++)
		add_tensor(c, "", d->u.dict.keys[i]->u.str.s, vt_pk_tensor(d->u.dict.vals[i]));
	for (i = 0; meta && meta->kind == VT_PK_DICT && i < meta->u.dict.n; i++) {
		const struct vt_pk *k = meta->u.dict.keys[i];
		const struct vt_pk *ver = vt_pk_dict_get(meta->u.dict.vals[i], "version");
		if (k->kind == VT_PK_STR)
			add_meta(c, k->u.str.s, k->u.str.len, ver && ver->kind == VT_PK_INT ? (int)ver->u.i : 1);
	}
}

/* Strips the module. / _orig_mod. prefixes every name shares: DataParallel, DDP and
 * torch.compile wrappers.  A wrapper's own _metadata entry goes too. */
static void strip_prefixes(struct collect *c)
{
	static const char *const prefixes[] = { "module.", "_orig_mod.", NULL };
	size_t i, j;
	int p;

	for (;;) {
		size_t n = 0;
		for (p = 0; prefixes[p]; p++) {
			n = strlen(prefixes[p]);
			for (i = 0; i < c->n; i++)
				if (strncmp(c->t[i].name, prefixes[p], n) != 0)
					break;
			if (c->n && i == c->n)
				break;
		}
		if (!prefixes[p])
			return;
		for (i = 0; i < c->n; i++)
			memmove((char *)c->t[i].name, c->t[i].name + n, strlen(c->t[i].name + n) + 1);
		for (i = j = 0; i < c->nmeta; i++) {
			char *m = (char *)c->meta[i].prefix;
			if (strncmp(m, prefixes[p], n) == 0) {
				memmove(m, m + n, strlen(m + n) + 1);
			} else if (strlen(m) == n - 1 && strncmp(m, prefixes[p], n - 1) == 0) {
				m[0] = '\0'; /* "module" is the new root */
			} else {
				free(m); /* the wrapper itself */
				continue;
			}
			c->meta[j++] = c->meta[i];
		}
		c->nmeta = j;
	}
}

static int is_wrapper(const struct vt_pk *mod)
{
	static const char *const wrappers[] = { "DataParallel", "DistributedDataParallel", "OptimizedModule", NULL };
	const char *name = vt_pk_obj_class(mod);
	int i;

	for (i = 0; name && wrappers[i]; i++)
		if (strcmp(name, wrappers[i]) == 0)
			return 1;
	return 0;
}

int vt_weights_state_dict(const struct vt_weights *w, struct vt_named **t, size_t *n, struct vt_meta **meta,
			  size_t *nmeta, struct vt_err *err)
{
	struct collect c = { 0 };
	char prefix[4096];

	if (w->kind == VT_WEIGHTS_MODULE)
		collect_module(&c, w->node, prefix, 0, sizeof(prefix), 0);
	else if (w->kind == VT_WEIGHTS_SCRIPT)
		collect_script(&c, w->node, prefix, 0, sizeof(prefix), 0);
	else
		collect_state_dict(&c, w->node);
	/* a module tree's names start with module. only under a wrapper whose child is "module"
	 * (DataParallel, DDP) or _orig_mod (torch.compile); any other class keeps its names */
	if (!c.oom && !c.too_big && (w->kind != VT_WEIGHTS_MODULE || is_wrapper(w->node)))
		strip_prefixes(&c);
	if (c.oom || c.too_big) {
		vt_named_free(c.t, c.n);
		vt_meta_free(c.meta, c.nmeta);
		return c.oom ? vt_err_set(err, VT_ENOMEM, "out of memory") :
			       vt_err_set(err, VT_EUNSUPPORTED,
					  "the module tree has more than %d modules, nesting deeper than %d or names over 4 KiB",
					  MAX_MODULES, MAX_NESTING);
	}
	*t = c.t;
	*n = c.n;
	if (meta) {
		*meta = c.meta;
		*nmeta = c.nmeta;
	} else {
		vt_meta_free(c.meta, c.nmeta);
	}
	return 0;
}
