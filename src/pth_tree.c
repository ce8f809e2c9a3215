/* pth_tree.c - writing a value tree read from a file back as a torch.save file: the whole-
 * model form of a model of any class (see vt_pth_write_tree in include/vt_pth.h).
 *
 * Each value is emitted as CPython's protocol-2 pickler emits it: containers memoized as they
 * are created (so shared and cyclic ones stay so), OrderedDict() for the dicts that were
 * OrderedDicts, set through builtins.set, bytes through _codecs.encode, objects as GLOBAL,
 * args, NEWOBJ, their dict/list items, then BUILD with their state; tensors as torch.save
 * writes them, on 'cpu'.  Python loads the result where the classes it names are importable.
 *
 * Not written: call records (a REDUCE vggtl did not turn into data: writing it would make the
 * file call it), numpy arrays and dtypes, recursive tuples.
 */
#include "vt_pth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct memo_ent {
	const struct vt_pk *v;
	uint32_t idx;
	int done; /* 0 while a tuple is still being written: a cycle through it */
};

struct tw {
	struct vt_pthw *w;
	struct memo_ent *ents;
	size_t n, cap; /* hash table of cap slots, at most half full */
	struct vt_err *err;
	int rc;
};

static size_t ptr_hash(const void *p)
{
	return ((size_t)(uintptr_t)p >> 4) * 11400714819323198485u;
}

static struct memo_ent *lookup(struct tw *t, const struct vt_pk *v)
{
	size_t i;

	if (!t->cap)
		return NULL;
	for (i = ptr_hash(v) & (t->cap - 1); t->ents[i].v; i = (i + 1) & (t->cap - 1))
		if (t->ents[i].v == v)
			return &t->ents[i];
	return NULL;
}

static struct memo_ent *remember(struct tw *t, const struct vt_pk *v, uint32_t idx)
{
	size_t i;

	if (2 * (t->n + 1) > t->cap) {
		size_t ncap = t->cap ? 2 * t->cap : 256, j;
		struct memo_ent *e = calloc(ncap, sizeof(*e));
		if (!e) {
			t->rc = vt_err_set(t->err, VT_ENOMEM, "out of memory");
			return NULL;
		}
		for (j = 0; j < t->cap; j++)
			if (t->ents[j].v) {
				for (i = ptr_hash(t->ents[j].v) & (ncap - 1); e[i].v; i = (i + 1) & (ncap - 1))
					;
				e[i] = t->ents[j];
			}
		free(t->ents);
		t->ents = e;
		t->cap = ncap;
	}
	for (i = ptr_hash(v) & (t->cap - 1); t->ents[i].v; i = (i + 1) & (t->cap - 1))
		;
	t->ents[i].v = v;
	t->ents[i].idx = idx;
	t->ents[i].done = 1;
	t->n++;
	return &t->ents[i];
}

/* Memoizes the value just emitted (top of the stack). */
static struct memo_ent *put(struct tw *t, const struct vt_pk *v)
{
	uint32_t idx = t->w->pk.next_memo;

	vt_pkw_put(&t->w->pk);
	return remember(t, v, idx);
}

static void value(struct tw *t, const struct vt_pk *v, int depth);

static void items(struct tw *t, const struct vt_pk *c, int depth)
{
	struct vt_pkw *pk = &t->w->pk;
	size_t i, n = c->kind == VT_PK_DICT ? c->u.dict.n : c->u.seq.n;

	for (i = 0; i < n && !t->rc; i++) {
		vt_pkw_batch_begin(pk, i, n);
		if (c->kind == VT_PK_DICT) {
			value(t, c->u.dict.keys[i], depth + 1);
			value(t, c->u.dict.vals[i], depth + 1);
		} else {
			value(t, c->u.seq.items[i], depth + 1);
		}
		vt_pkw_batch_end(pk, i, n, c->kind != VT_PK_DICT);
	}
}

/* bytes as protocol 2 writes them for Python 3: _codecs.encode(<latin-1 text>, 'latin1') */
static void bytes_value(struct tw *t, const struct vt_pk *v)
{
	struct vt_pkw *pk = &t->w->pk;
	char *s = malloc(2 * v->u.str.len + 1);
	size_t i, n = 0;

	if (!s) {
		t->rc = vt_err_set(t->err, VT_ENOMEM, "out of memory");
		return;
	}
	for (i = 0; i < v->u.str.len; i++) {
		unsigned char c = (unsigned char)v->u.str.s[i];
		if (c < 0x80) {
			s[n++] = (char)c;
		} else {
			s[n++] = (char)(0xc0 | (c >> 6));
			s[n++] = (char)(0x80 | (c & 0x3f));
		}
	}
	s[n] = '\0';
	vt_pkw_global(pk, "_codecs", "encode");
	vt_pkw_str(pk, s);
	vt_pkw_str_interned(pk, "latin1");
	vt_pkw_tuple_end(pk, 2);
	vt_pkw_op(pk, VT_OP_REDUCE);
	put(t, v);
	free(s);
}

static void object_value(struct tw *t, const struct vt_pk *v, int depth)
{
	struct vt_pkw *pk = &t->w->pk;
	char cls[300];

	if (v->u.obj.call || !v->u.obj.cls || v->u.obj.cls->kind != VT_PK_GLOBAL) {
		t->rc = vt_err_set(t->err, VT_EUNSUPPORTED,
				   "cannot write back a call of '%s': vggtl keeps it as an inert record and never writes a call it does not understand",
				   vt_pk_class_path(v, cls, sizeof(cls)));
		return;
	}
	value(t, v->u.obj.cls, depth + 1);
	if (v->u.obj.args && v->u.obj.args->kind == VT_PK_TUPLE && v->u.obj.args->u.seq.n &&
	    v->u.obj.args->u.seq.items[0] != v->u.obj.cls) /* not copyreg._reconstructor's (cls, ...) */
		value(t, v->u.obj.args, depth + 1);
	else
		vt_pkw_op(pk, VT_OP_EMPTY_TUPLE);
	vt_pkw_op(pk, VT_OP_NEWOBJ);
	put(t, v);
	if (v->u.obj.items && !t->rc) {
		if (v->u.obj.items->u.seq.n || v->u.obj.items->u.dict.n)
			items(t, v->u.obj.items, depth);
	}
	if (v->u.obj.state && !t->rc) {
		value(t, v->u.obj.state, depth + 1);
		vt_pkw_op(pk, VT_OP_BUILD);
	}
}

static void value(struct tw *t, const struct vt_pk *v, int depth)
{
	struct vt_pkw *pk = &t->w->pk;
	struct memo_ent *m;
	size_t i;

	if (t->rc)
		return;
	if (depth > VT_PK_MAX_DEPTH) {
		t->rc = vt_err_set(t->err, VT_EUNSUPPORTED, "values nested more than %d deep", VT_PK_MAX_DEPTH);
		return;
	}
	if ((m = lookup(t, v))) {
		if (!m->done)
			t->rc = vt_err_set(t->err, VT_EUNSUPPORTED, "a tuple that contains itself cannot be written");
		else
			vt_pkw_get(pk, m->idx);
		return;
	}
	switch (v->kind) {
	case VT_PK_NONE:
		vt_pkw_none(pk);
		break;
	case VT_PK_BOOL:
		vt_pkw_bool(pk, v->u.b);
		break;
	case VT_PK_INT:
		vt_pkw_int(pk, v->u.i);
		break;
	case VT_PK_FLOAT:
		vt_pkw_float(pk, v->u.f);
		break;
	case VT_PK_STR: /* memoized, as CPython's pickler does: a shared string is written once */
		if (strlen(v->u.str.s) != v->u.str.len) {
			t->rc = vt_err_set(t->err, VT_EUNSUPPORTED, "a string holding a NUL cannot be written back");
			return;
		}
		{
			uint32_t idx = pk->next_memo;
			vt_pkw_str(pk, v->u.str.s);
			remember(t, v, idx);
		}
		break;
	case VT_PK_BYTES:
		bytes_value(t, v);
		break;
	case VT_PK_TUPLE:
		if (v->u.seq.n == 0) {
			vt_pkw_op(pk, VT_OP_EMPTY_TUPLE);
			break;
		}
		if (!(m = remember(t, v, 0)))
			return;
		m->done = 0;
		vt_pkw_tuple_begin(pk, (int)(v->u.seq.n > 3 ? 4 : v->u.seq.n));
		for (i = 0; i < v->u.seq.n; i++)
			value(t, v->u.seq.items[i], depth + 1);
		if ((m = lookup(t, v))) { /* the table may have grown */
			m->idx = pk->next_memo;
			m->done = 1;
		}
		vt_pkw_tuple_end(pk, (int)(v->u.seq.n > 3 ? 4 : v->u.seq.n));
		break;
	case VT_PK_LIST:
		vt_pkw_op(pk, VT_OP_EMPTY_LIST);
		put(t, v);
		items(t, v, depth);
		break;
	case VT_PK_DICT:
		if (v->u.dict.ordered) {
			vt_pkw_global(pk, "collections", "OrderedDict");
			vt_pkw_op(pk, VT_OP_EMPTY_TUPLE);
			vt_pkw_op(pk, VT_OP_REDUCE);
		} else {
			vt_pkw_op(pk, VT_OP_EMPTY_DICT);
		}
		put(t, v);
		items(t, v, depth);
		if (v->u.dict.attrs) {
			value(t, v->u.dict.attrs, depth + 1);
			vt_pkw_op(pk, VT_OP_BUILD);
		}
		break;
	case VT_PK_SET:
		vt_pkw_global(pk, "__builtin__", "set");
		vt_pkw_op(pk, VT_OP_EMPTY_LIST);
		vt_pkw_put(pk);
		items(t, v, depth);
		vt_pkw_tuple_end(pk, 1);
		vt_pkw_op(pk, VT_OP_REDUCE);
		put(t, v);
		break;
	case VT_PK_GLOBAL:
		vt_pkw_global(pk, v->u.global.module, v->u.global.name);
		break;
	case VT_PK_OBJECT:
		object_value(t, v, depth);
		break;
	case VT_PK_EXT:
		if (vt_pk_tensor(v)) {
			vt_pthw_tensor(t->w, vt_pk_tensor(v), vt_pk_tensor(v)->is_param);
			remember(t, v, pk->next_memo - 1); /* the REDUCE result was memoized last */
		} else {
			t->rc = vt_err_set(t->err, VT_EUNSUPPORTED, "numpy values and bare storages are not written back");
		}
		break;
	}
}

int vt_pth_write_tree(const char *path, const struct vt_src *src, const struct vt_pk *root, struct vt_err *err)
{
	struct vt_pthw w;
	struct tw t = { 0 };
	int rc;

	vt_pthw_init(&w);
	t.w = &w;
	t.err = err;
	value(&t, root, 0);
	rc = t.rc ? t.rc : vt_pthw_save(&w, path, src, err);
	free(t.ents);
	vt_pthw_release(&w);
	return rc;
}
