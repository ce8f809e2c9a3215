/* pickle.c - the unpickler VM (see include/vt_pickle.h).
 *
 * Format: Python's pickle, binary opcodes of protocols 2-5 (CPython Lib/pickletools.py has
 * the reference table).  Supported: PROTO FRAME STOP MARK POP POP_MARK DUP NONE NEWTRUE
 * NEWFALSE BININT BININT1 BININT2 LONG1 LONG4 BINFLOAT BINUNICODE SHORT_BINUNICODE
 * BINUNICODE8 BINSTRING SHORT_BINSTRING BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8
 * EMPTY_TUPLE TUPLE TUPLE1-3 EMPTY_LIST LIST APPEND APPENDS EMPTY_DICT DICT SETITEM
 * SETITEMS EMPTY_SET ADDITEMS FROZENSET GLOBAL STACK_GLOBAL REDUCE BUILD NEWOBJ NEWOBJ_EX
 * BINPUT LONG_BINPUT MEMOIZE BINGET LONG_BINGET BINPERSID.
 * Not supported (refused with the opcode and offset): the text opcodes of protocol 0
 * (INT, LONG, FLOAT, STRING, UNICODE, PUT, GET, PERSID), INST, OBJ, EXT1/2/4, NEXT_BUFFER,
 * READONLY_BUFFER, and integers wider than 64 bits.
 *
 * Limits: a memo index may not exceed twice the bytes read so far plus 64 (Python's own
 * picklers number the memo densely, so a real file is far below), the stack and memo grow
 * only by what the input pays for, and every declared length is checked against the bytes
 * left in the source before anything is allocated.  The value tree may take at most
 * ARENA_PER_BYTE bytes per pickle byte read plus ARENA_BASE: torch files take under 32, but
 * a hook that copies (OrderedDict(items), called again and again on one shared list) could
 * otherwise turn kilobytes of input into gigabytes.
 */
#include "vt_pickle.h"

#include <stdlib.h>
#include <string.h>

/* ---- arena ----------------------------------------------------------------------------- */

struct vt_arena_block {
	struct vt_arena_block *next;
	size_t used, cap;
	max_align_t data[];
};

void *vt_arena_alloc(struct vt_arena *a, size_t n)
{
	struct vt_arena_block *b = a->head;

	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (!b || b->cap - b->used < n) {
		size_t cap = n > (1u << 16) ? n : (1u << 16);
		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->used = 0;
		b->cap = cap;
		/* a big one-off block goes behind the head so the head keeps its free room */
		if (a->head && n > (1u << 15)) {
			b->next = a->head->next;
			a->head->next = b;
		} else {
			b->next = a->head;
			a->head = b;
		}
	}
	{
		void *p = (char *)b->data + b->used;
		b->used += n;
		a->used += n;
		return p;
	}
}

void vt_arena_release(struct vt_arena *a)
{
	while (a->head) {
		struct vt_arena_block *next = a->head->next;
		free(a->head);
		a->head = next;
	}
	a->used = 0;
}

/* ---- values ---------------------------------------------------------------------------- */

struct vt_pk *vt_pk_new(struct vt_unpickler *u, enum vt_pk_kind kind)
{
	struct vt_pk *v = vt_arena_alloc(&u->arena, sizeof(*v));

	if (v) {
		memset(v, 0, sizeof(*v));
		v->kind = kind;
	}
	return v;
}

struct vt_pk *vt_pk_ext(struct vt_unpickler *u, int type, void *p)
{
	struct vt_pk *v = vt_pk_new(u, VT_PK_EXT);

	if (v) {
		v->u.ext.type = type;
		v->u.ext.p = p;
	}
	return v;
}

struct vt_pk *vt_pk_dict_get(const struct vt_pk *dict, const char *key)
{
	size_t i;

	if (!dict || dict->kind != VT_PK_DICT)
		return NULL;
	for (i = dict->u.dict.n; i-- > 0;) /* last write wins, as in Python */
		if (vt_pk_is_str(dict->u.dict.keys[i], key))
			return dict->u.dict.vals[i];
	return NULL;
}

int vt_pk_is_str(const struct vt_pk *v, const char *s)
{
	return v && v->kind == VT_PK_STR && strlen(s) == v->u.str.len &&
	       memcmp(v->u.str.s, s, v->u.str.len) == 0;
}

int vt_pk_seq_len(const struct vt_pk *v)
{
	if (!v || (v->kind != VT_PK_TUPLE && v->kind != VT_PK_LIST))
		return -1;
	return (int)v->u.seq.n;
}

struct vt_pk *vt_pk_obj_state(const struct vt_pk *obj)
{
	return obj && obj->kind == VT_PK_OBJECT ? obj->u.obj.state : NULL;
}

/* Grows a pointer array in the arena; old storage is left to the arena (waste stays < 2x). */
static int grow(struct vt_arena *a, struct vt_pk ***items, size_t n, size_t *cap)
{
	struct vt_pk **p;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	p = vt_arena_alloc(a, ncap * sizeof(*p));
	if (!p)
		return VT_ENOMEM;
	if (n)
		memcpy(p, *items, n * sizeof(*p));
	*items = p;
	*cap = ncap;
	return 0;
}

static int seq_push(struct vt_unpickler *u, struct vt_pk *seq, struct vt_pk *v)
{
	if (grow(&u->arena, &seq->u.seq.items, seq->u.seq.n, &seq->u.seq.cap))
		return VT_ENOMEM;
	seq->u.seq.items[seq->u.seq.n++] = v;
	return 0;
}

int vt_pk_dict_set(struct vt_unpickler *u, struct vt_pk *d, struct vt_pk *k, struct vt_pk *v)
{
	size_t kcap = d->u.dict.cap;

	if (grow(&u->arena, &d->u.dict.keys, d->u.dict.n, &kcap))
		return VT_ENOMEM;
	if (grow(&u->arena, &d->u.dict.vals, d->u.dict.n, &d->u.dict.cap))
		return VT_ENOMEM;
	d->u.dict.keys[d->u.dict.n] = k;
	d->u.dict.vals[d->u.dict.n++] = v;
	return 0;
}

/* ---- cursor ---------------------------------------------------------------------------- */

enum { WINDOW = 1 << 16 };
#define ARENA_BASE ((uint64_t)64 << 20)
#define ARENA_PER_BYTE 128

static int need(struct vt_unpickler *u, size_t n, struct vt_err *err)
{
	if (u->end - u->pos < n)
		return vt_err_set(err, VT_EFORMAT,
				  "pickle: truncated at offset %llu (%zu more bytes needed, no STOP)",
				  (unsigned long long)u->pos, n);
	return 0;
}

/* Copies n bytes at the cursor into dst and advances. */
static int take(struct vt_unpickler *u, void *dst, size_t n, struct vt_err *err)
{
	unsigned char *d = dst;
	int rc = need(u, n, err);

	while (rc == 0 && n > 0) {
		if (u->pos < u->buf_off || u->pos >= u->buf_off + u->buf_len) {
			uint64_t left = u->end - u->pos;
			size_t k = left < WINDOW ? (size_t)left : WINDOW;
			rc = vt_src_read(u->src, u->pos, u->buf, k, err);
			if (rc)
				break;
			u->buf_off = u->pos;
			u->buf_len = k;
		}
		{
			size_t at = (size_t)(u->pos - u->buf_off);
			size_t k = u->buf_len - at < n ? u->buf_len - at : n;
			memcpy(d, u->buf + at, k);
			d += k;
			n -= k;
			u->pos += k;
		}
	}
	return rc;
}

static uint64_t le(const unsigned char *p, int n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = (v << 8) | p[n];
	return v;
}

static int take_le(struct vt_unpickler *u, int n, uint64_t *v, struct vt_err *err)
{
	unsigned char b[8];
	int rc = take(u, b, (size_t)n, err);

	*v = rc ? 0 : le(b, n);
	return rc;
}

/* Reads a text line (GLOBAL operands), at most 256 bytes, into the arena. */
static int take_line(struct vt_unpickler *u, char **out, struct vt_err *err)
{
	char line[257];
	size_t n = 0;

	for (;;) {
		int rc = take(u, &line[n], 1, err);
		if (rc)
			return rc;
		if (line[n] == '\n')
			break;
		if (++n == sizeof(line) - 1)
			return vt_err_set(err, VT_EFORMAT, "pickle: GLOBAL name longer than 256 bytes at offset %llu",
					  (unsigned long long)u->pos);
	}
	line[n] = '\0';
	*out = vt_arena_alloc(&u->arena, n + 1);
	if (!*out)
		return VT_ENOMEM;
	memcpy(*out, line, n + 1);
	return 0;
}

/* ---- stack ----------------------------------------------------------------------------- */

static int push(struct vt_unpickler *u, struct vt_pk *v, struct vt_err *err)
{
	if (!v)
		return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
	if (u->sp == u->stack_cap) {
		size_t ncap = u->stack_cap ? u->stack_cap * 2 : 64;
		struct vt_pk **s = realloc(u->stack, ncap * sizeof(*s));
		if (!s)
			return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
		u->stack = s;
		u->stack_cap = ncap;
	}
	u->stack[u->sp++] = v;
	return 0;
}

static size_t floor_sp(const struct vt_unpickler *u)
{
	return u->nmarks ? u->marks[u->nmarks - 1] : 0;
}

static int pop(struct vt_unpickler *u, struct vt_pk **v, uint64_t at, struct vt_err *err)
{
	if (u->sp <= floor_sp(u))
		return vt_err_set(err, VT_EFORMAT, "pickle: stack underflow at offset %llu",
				  (unsigned long long)at);
	*v = u->stack[--u->sp];
	return 0;
}

static int top(struct vt_unpickler *u, struct vt_pk **v, uint64_t at, struct vt_err *err)
{
	if (u->sp <= floor_sp(u))
		return vt_err_set(err, VT_EFORMAT, "pickle: stack underflow at offset %llu",
				  (unsigned long long)at);
	*v = u->stack[u->sp - 1];
	return 0;
}

/* Pops to the last MARK: the items are u->stack[*first .. u->sp) until the next push. */
static int pop_mark(struct vt_unpickler *u, size_t *first, uint64_t at, struct vt_err *err)
{
	if (!u->nmarks)
		return vt_err_set(err, VT_EFORMAT, "pickle: no MARK on the stack at offset %llu",
				  (unsigned long long)at);
	*first = u->marks[--u->nmarks];
	return 0;
}

static int memo_put(struct vt_unpickler *u, uint64_t idx, uint64_t at, struct vt_err *err)
{
	struct vt_pk *v;
	int rc = top(u, &v, at, err);

	if (rc)
		return rc;
	if (idx > 2 * u->pos + 64) /* pos, not end: a legacy file's end includes its tensor bytes */
		return vt_err_set(err, VT_EFORMAT, "pickle: memo index %llu too large at offset %llu",
				  (unsigned long long)idx, (unsigned long long)at);
	if (idx >= u->memo_cap) {
		size_t ncap = u->memo_cap ? u->memo_cap : 256;
		struct vt_pk **m;
		while (ncap <= idx)
			ncap *= 2;
		m = realloc(u->memo, ncap * sizeof(*m));
		if (!m)
			return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
		memset(m + u->memo_cap, 0, (ncap - u->memo_cap) * sizeof(*m));
		u->memo = m;
		u->memo_cap = ncap;
	}
	u->memo[idx] = v;
	return 0;
}

static int memo_get(struct vt_unpickler *u, uint64_t idx, uint64_t at, struct vt_err *err)
{
	if (idx >= u->memo_cap || !u->memo[idx])
		return vt_err_set(err, VT_EFORMAT, "pickle: memo entry %llu is not defined at offset %llu",
				  (unsigned long long)idx, (unsigned long long)at);
	return push(u, u->memo[idx], err);
}

static size_t memo_count(const struct vt_unpickler *u)
{
	size_t n = u->memo_cap;

	while (n > 0 && !u->memo[n - 1])
		n--;
	return n;
}

/* ---- opcode handlers ------------------------------------------------------------------- */

static int op_string(struct vt_unpickler *u, enum vt_pk_kind kind, int lenbytes, struct vt_err *err)
{
	uint64_t n;
	struct vt_pk *v;
	int rc = take_le(u, lenbytes, &n, err);

	if (rc)
		return rc;
	if ((rc = need(u, n, err)))
		return rc; /* checks the length against the bytes left before allocating */
	v = vt_pk_new(u, kind);
	if (!v || !(v->u.str.s = vt_arena_alloc(&u->arena, (size_t)n + 1)))
		return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
	v->u.str.len = (size_t)n;
	if ((rc = take(u, v->u.str.s, (size_t)n, err)))
		return rc;
	v->u.str.s[n] = '\0';
	return push(u, v, err);
}

static int op_int(struct vt_unpickler *u, int64_t i, struct vt_err *err)
{
	struct vt_pk *v = vt_pk_new(u, VT_PK_INT);

	if (v)
		v->u.i = i;
	return push(u, v, err);
}

static int op_long(struct vt_unpickler *u, int lenbytes, uint64_t at, struct vt_err *err)
{
	unsigned char b[8];
	uint64_t n, v;
	int rc = take_le(u, lenbytes, &n, err);

	if (rc)
		return rc;
	if (n > 8)
		return vt_err_set(err, VT_EUNSUPPORTED, "pickle: integer of %llu bytes at offset %llu (64 bits at most)",
				  (unsigned long long)n, (unsigned long long)at);
	if ((rc = take(u, b, (size_t)n, err)))
		return rc;
	v = le(b, (int)n);
	if (n > 0 && n < 8 && (b[n - 1] & 0x80)) /* two's complement: sign-extend */
		v |= ~(uint64_t)0 << (8 * n);
	return op_int(u, (int64_t)v, err);
}

static int op_global(struct vt_unpickler *u, const char *module, const char *name, struct vt_err *err)
{
	struct vt_pk *v;
	int tag;

	if (!u->hooks || !u->hooks->find_class)
		return vt_err_set(err, VT_EUNSAFE, "pickle: global '%s.%s' is not allowed", module, name);
	tag = u->hooks->find_class(u->ctx, module, name, err);
	if (tag < 0)
		return tag;
	v = vt_pk_new(u, VT_PK_GLOBAL);
	if (v) {
		v->u.global.module = module;
		v->u.global.name = name;
		v->u.global.tag = tag;
	}
	return push(u, v, err);
}

static int op_tuple(struct vt_unpickler *u, size_t first, struct vt_err *err)
{
	struct vt_pk *t = vt_pk_new(u, VT_PK_TUPLE);
	size_t n = u->sp - first;

	if (!t)
		return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
	if (n) {
		t->u.seq.items = vt_arena_alloc(&u->arena, n * sizeof(*t->u.seq.items));
		if (!t->u.seq.items)
			return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
		memcpy(t->u.seq.items, &u->stack[first], n * sizeof(*t->u.seq.items));
	}
	t->u.seq.n = t->u.seq.cap = n;
	u->sp = first;
	return push(u, t, err);
}

static int op_appends(struct vt_unpickler *u, size_t first, uint64_t at, struct vt_err *err)
{
	struct vt_pk *seq;
	size_t i;
	int rc;

	if (first == 0 || first <= floor_sp(u))
		return vt_err_set(err, VT_EFORMAT, "pickle: APPENDS without a list at offset %llu",
				  (unsigned long long)at);
	seq = u->stack[first - 1];
	if (seq->kind != VT_PK_LIST && seq->kind != VT_PK_SET)
		return vt_err_set(err, VT_EFORMAT, "pickle: APPEND to a non-list at offset %llu",
				  (unsigned long long)at);
	for (i = first; i < u->sp; i++)
		if ((rc = seq_push(u, seq, u->stack[i])))
			return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
	u->sp = first;
	return 0;
}

static int op_setitems(struct vt_unpickler *u, size_t first, uint64_t at, struct vt_err *err)
{
	struct vt_pk *d;
	size_t i;

	if (first == 0 || first <= floor_sp(u) || (u->sp - first) % 2)
		return vt_err_set(err, VT_EFORMAT, "pickle: SETITEMS with an odd item count or no dict at offset %llu",
				  (unsigned long long)at);
	d = u->stack[first - 1];
	if (d->kind != VT_PK_DICT)
		return vt_err_set(err, VT_EFORMAT, "pickle: SETITEM on a non-dict at offset %llu",
				  (unsigned long long)at);
	for (i = first; i < u->sp; i += 2)
		if (vt_pk_dict_set(u, d, u->stack[i], u->stack[i + 1]))
			return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
	u->sp = first;
	return 0;
}

static int op_reduce(struct vt_unpickler *u, uint64_t at, struct vt_err *err)
{
	struct vt_pk *fn, *args, *out = NULL;
	int rc;

	if ((rc = pop(u, &args, at, err)) || (rc = pop(u, &fn, at, err)))
		return rc;
	if (fn->kind != VT_PK_GLOBAL || args->kind != VT_PK_TUPLE)
		return vt_err_set(err, VT_EFORMAT, "pickle: REDUCE of a non-global or without an argument tuple at offset %llu",
				  (unsigned long long)at);
	if (!u->hooks || !u->hooks->reduce)
		return vt_err_set(err, VT_EUNSAFE, "pickle: call of '%s.%s' is not allowed",
				  fn->u.global.module, fn->u.global.name);
	rc = u->hooks->reduce(u->ctx, u, fn, args, &out, err);
	if (rc)
		return vt_err_prefix(err, "at offset %llu", (unsigned long long)at);
	return push(u, out, err);
}

static int op_newobj(struct vt_unpickler *u, uint64_t at, int ex, struct vt_err *err)
{
	struct vt_pk *cls, *args, *kwargs = NULL, *o;
	int rc;

	if (ex && (rc = pop(u, &kwargs, at, err)))
		return rc;
	if ((rc = pop(u, &args, at, err)) || (rc = pop(u, &cls, at, err)))
		return rc;
	if (cls->kind != VT_PK_GLOBAL || args->kind != VT_PK_TUPLE)
		return vt_err_set(err, VT_EFORMAT, "pickle: NEWOBJ of a non-class at offset %llu",
				  (unsigned long long)at);
	o = vt_pk_new(u, VT_PK_OBJECT);
	if (o) {
		o->u.obj.cls = cls;
		o->u.obj.args = args;
	}
	return push(u, o, err);
}

static int op_build(struct vt_unpickler *u, uint64_t at, struct vt_err *err)
{
	struct vt_pk *state, *obj;
	int rc;

	if ((rc = pop(u, &state, at, err)) || (rc = top(u, &obj, at, err)))
		return rc;
	switch (obj->kind) {
	case VT_PK_OBJECT:
		obj->u.obj.state = state;
		return 0;
	case VT_PK_DICT: /* OrderedDict state: its attributes, e.g. a state_dict's _metadata */
		obj->u.dict.attrs = state;
		return 0;
	case VT_PK_EXT:
		if (u->hooks && u->hooks->build_ext)
			return u->hooks->build_ext(u->ctx, u, obj, state, err);
		return 0;
	default:
		return vt_err_set(err, VT_EFORMAT, "pickle: BUILD on a plain value at offset %llu",
				  (unsigned long long)at);
	}
}

static int op_persid(struct vt_unpickler *u, uint64_t at, struct vt_err *err)
{
	struct vt_pk *pid, *out = NULL;
	int rc;

	if ((rc = pop(u, &pid, at, err)))
		return rc;
	if (!u->hooks || !u->hooks->persistent_load)
		return vt_err_set(err, VT_EUNSUPPORTED, "pickle: persistent id at offset %llu in a plain pickle",
				  (unsigned long long)at);
	if ((rc = u->hooks->persistent_load(u->ctx, u, pid, &out, err)))
		return vt_err_prefix(err, "at offset %llu", (unsigned long long)at);
	return push(u, out, err);
}

static int step(struct vt_unpickler *u, unsigned char op, uint64_t at, int *stop, struct vt_err *err)
{
	struct vt_pk *a, *b;
	uint64_t n;
	size_t first = 0;
	int rc = 0;

	switch (op) {
	case 0x80: /* PROTO */
		if ((rc = take_le(u, 1, &n, err)))
			return rc;
		if (n > 5)
			return vt_err_set(err, VT_EUNSUPPORTED, "pickle: protocol %llu at offset %llu (at most 5)",
					  (unsigned long long)n, (unsigned long long)at);
		return 0;
	case 0x95: /* FRAME: a length hint only */
		return take_le(u, 8, &n, err);
	case '.':
		*stop = 1;
		return 0;
	case '(':
		if (u->nmarks == u->marks_cap) {
			size_t ncap = u->marks_cap ? u->marks_cap * 2 : 16;
			size_t *m = realloc(u->marks, ncap * sizeof(*m));
			if (!m)
				return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
			u->marks = m;
			u->marks_cap = ncap;
		}
		u->marks[u->nmarks++] = u->sp;
		return 0;
	case '0':
		return pop(u, &a, at, err);
	case '1':
		if ((rc = pop_mark(u, &first, at, err)))
			return rc;
		u->sp = first;
		return 0;
	case '2':
		if ((rc = top(u, &a, at, err)))
			return rc;
		return push(u, a, err);
	case 'N':
		return push(u, vt_pk_new(u, VT_PK_NONE), err);
	case 0x88:
	case 0x89:
		a = vt_pk_new(u, VT_PK_BOOL);
		if (a)
			a->u.b = op == 0x88;
		return push(u, a, err);
	case 'J':
		if ((rc = take_le(u, 4, &n, err)))
			return rc;
		return op_int(u, (int32_t)(uint32_t)n, err);
	case 'K':
		if ((rc = take_le(u, 1, &n, err)))
			return rc;
		return op_int(u, (int64_t)n, err);
	case 'M':
		if ((rc = take_le(u, 2, &n, err)))
			return rc;
		return op_int(u, (int64_t)n, err);
	case 0x8a:
		return op_long(u, 1, at, err);
	case 0x8b:
		return op_long(u, 4, at, err);
	case 'G': {
		unsigned char bytes[8];
		uint64_t bits = 0;
		int i;
		double d;
		if ((rc = take(u, bytes, 8, err)))
			return rc;
		for (i = 0; i < 8; i++) /* big-endian, unlike every other number in a pickle */
			bits = (bits << 8) | bytes[i];
		memcpy(&d, &bits, sizeof(d));
		a = vt_pk_new(u, VT_PK_FLOAT);
		if (a)
			a->u.f = d;
		return push(u, a, err);
	}
	case 'X':
		return op_string(u, VT_PK_STR, 4, err);
	case 0x8c:
		return op_string(u, VT_PK_STR, 1, err);
	case 0x8d:
		return op_string(u, VT_PK_STR, 8, err);
	case 'T': /* python-2 str: bytes (as with encoding='bytes') */
	case 'B':
		return op_string(u, VT_PK_BYTES, 4, err);
	case 'U':
	case 'C':
		return op_string(u, VT_PK_BYTES, 1, err);
	case 0x8e:
	case 0x96:
		return op_string(u, VT_PK_BYTES, 8, err);
	case ')':
		return op_tuple(u, u->sp, err);
	case 't':
		if ((rc = pop_mark(u, &first, at, err)))
			return rc;
		return op_tuple(u, first, err);
	case 0x85:
	case 0x86:
	case 0x87:
		n = (uint64_t)(op - 0x84);
		if (u->sp < floor_sp(u) + n)
			return vt_err_set(err, VT_EFORMAT, "pickle: stack underflow at offset %llu",
					  (unsigned long long)at);
		return op_tuple(u, u->sp - n, err);
	case ']':
		return push(u, vt_pk_new(u, VT_PK_LIST), err);
	case 0x8f:
		return push(u, vt_pk_new(u, VT_PK_SET), err);
	case '}':
		return push(u, vt_pk_new(u, VT_PK_DICT), err);
	case 'l':
	case 0x91: /* FROZENSET */
		if ((rc = pop_mark(u, &first, at, err)))
			return rc;
		if ((rc = push(u, vt_pk_new(u, op == 'l' ? VT_PK_LIST : VT_PK_SET), err)))
			return rc;
		/* move the new container below its items, then append them */
		a = u->stack[u->sp - 1];
		memmove(&u->stack[first + 1], &u->stack[first], (u->sp - 1 - first) * sizeof(*u->stack));
		u->stack[first] = a;
		return op_appends(u, first + 1, at, err);
	case 'd':
		if ((rc = pop_mark(u, &first, at, err)))
			return rc;
		if ((rc = push(u, vt_pk_new(u, VT_PK_DICT), err)))
			return rc;
		a = u->stack[u->sp - 1];
		memmove(&u->stack[first + 1], &u->stack[first], (u->sp - 1 - first) * sizeof(*u->stack));
		u->stack[first] = a;
		return op_setitems(u, first + 1, at, err);
	case 'a':
		if (u->sp < floor_sp(u) + 2)
			return vt_err_set(err, VT_EFORMAT, "pickle: stack underflow at offset %llu",
					  (unsigned long long)at);
		return op_appends(u, u->sp - 1, at, err);
	case 'e':
	case 0x90: /* ADDITEMS */
		if ((rc = pop_mark(u, &first, at, err)))
			return rc;
		return op_appends(u, first, at, err);
	case 's':
		if (u->sp < floor_sp(u) + 3)
			return vt_err_set(err, VT_EFORMAT, "pickle: stack underflow at offset %llu",
					  (unsigned long long)at);
		return op_setitems(u, u->sp - 2, at, err);
	case 'u':
		if ((rc = pop_mark(u, &first, at, err)))
			return rc;
		return op_setitems(u, first, at, err);
	case 'c': {
		char *module, *name;
		if ((rc = take_line(u, &module, err)) || (rc = take_line(u, &name, err)))
			return rc;
		return op_global(u, module, name, err);
	}
	case 0x93: /* STACK_GLOBAL */
		if ((rc = pop(u, &b, at, err)) || (rc = pop(u, &a, at, err)))
			return rc;
		if (a->kind != VT_PK_STR || b->kind != VT_PK_STR)
			return vt_err_set(err, VT_EFORMAT, "pickle: STACK_GLOBAL needs two strings at offset %llu",
					  (unsigned long long)at);
		return op_global(u, a->u.str.s, b->u.str.s, err);
	case 'R':
		return op_reduce(u, at, err);
	case 0x81:
		return op_newobj(u, at, 0, err);
	case 0x92:
		return op_newobj(u, at, 1, err);
	case 'b':
		return op_build(u, at, err);
	case 'q':
		if ((rc = take_le(u, 1, &n, err)))
			return rc;
		return memo_put(u, n, at, err);
	case 'r':
		if ((rc = take_le(u, 4, &n, err)))
			return rc;
		return memo_put(u, n, at, err);
	case 0x94:
		return memo_put(u, memo_count(u), at, err);
	case 'h':
		if ((rc = take_le(u, 1, &n, err)))
			return rc;
		return memo_get(u, n, at, err);
	case 'j':
		if ((rc = take_le(u, 4, &n, err)))
			return rc;
		return memo_get(u, n, at, err);
	case 'Q':
		return op_persid(u, at, err);
	default:
		return vt_err_set(err, VT_EFORMAT, "pickle: unknown or unsupported opcode 0x%02x at offset %llu",
				  op, (unsigned long long)at);
	}
}

void vt_unpickler_init(struct vt_unpickler *u, const struct vt_pk_hooks *hooks, void *ctx)
{
	memset(u, 0, sizeof(*u));
	u->hooks = hooks;
	u->ctx = ctx;
}

void vt_unpickler_release(struct vt_unpickler *u)
{
	vt_arena_release(&u->arena);
	free(u->buf);
	free(u->stack);
	free(u->marks);
	free(u->memo);
	memset(u, 0, sizeof(*u));
}

int vt_unpickle(struct vt_unpickler *u, const struct vt_src *src, uint64_t *pos,
		struct vt_pk **out, struct vt_err *err)
{
	int stop = 0, rc = 0;

	if (!u->buf && !(u->buf = malloc(WINDOW)))
		return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
	u->src = src;
	u->pos = *pos;
	u->end = src->size;
	u->buf_len = 0;
	u->sp = 0;
	u->nmarks = 0;
	while (!stop && rc == 0) {
		unsigned char op;
		uint64_t at = u->pos;
		if ((rc = take(u, &op, 1, err)))
			break;
		rc = step(u, op, at, &stop, err);
		if (rc == 0 && u->arena.used > ARENA_BASE + ARENA_PER_BYTE * u->pos)
			rc = vt_err_set(err, VT_ENOMEM,
					"pickle: the values built by offset %llu take more than %d bytes per byte of pickle",
					(unsigned long long)at, ARENA_PER_BYTE);
	}
	if (rc)
		return rc;
	if (u->sp != 1 || u->nmarks)
		return vt_err_set(err, VT_EFORMAT, "pickle: STOP with %zu values on the stack at offset %llu",
				  u->sp, (unsigned long long)(u->pos - 1));
	*out = u->stack[0];
	*pos = u->pos;
	return 0;
}
