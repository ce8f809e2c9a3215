/* pickle.c - the unpickler VM (see include/vt_pickle.h).
 *
 * Format: Python's pickle, protocols 0 to 5 (CPython Lib/pickletools.py has the reference
 * table).  Supported: PROTO FRAME STOP MARK POP POP_MARK DUP NONE NEWTRUE NEWFALSE
 * INT BININT BININT1 BININT2 LONG LONG1 LONG4 FLOAT BINFLOAT STRING BINSTRING SHORT_BINSTRING
 * UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8 BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8
 * EMPTY_TUPLE TUPLE TUPLE1-3 EMPTY_LIST LIST APPEND APPENDS EMPTY_DICT DICT SETITEM
 * SETITEMS EMPTY_SET ADDITEMS FROZENSET GLOBAL STACK_GLOBAL REDUCE INST OBJ BUILD NEWOBJ
 * NEWOBJ_EX PUT BINPUT LONG_BINPUT MEMOIZE GET BINGET LONG_BINGET PERSID BINPERSID.
 * Python 2 strings (STRING, BINSTRING, SHORT_BINSTRING) become text when they are valid
 * UTF-8, as torch.load's default encoding='utf-8' makes them, and bytes otherwise.
 * Not supported (refused with the opcode and offset): EXT1/2/4 (the copyreg extension
 * registry, empty unless a program fills it), NEXT_BUFFER, READONLY_BUFFER, and integers
 * wider than 64 bits.
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

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
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

struct vt_pk *vt_pk_call(struct vt_unpickler *u, struct vt_pk *callable, struct vt_pk *args)
{
	struct vt_pk *v = vt_pk_new(u, VT_PK_OBJECT);

	if (v) {
		v->u.obj.cls = callable;
		v->u.obj.args = args;
		v->u.obj.call = 1;
	}
	return v;
}

const char *vt_pk_class_path(const struct vt_pk *v, char *buf, size_t size)
{
	if (v && v->kind == VT_PK_OBJECT)
		v = v->u.obj.cls;
	if (v && v->kind == VT_PK_GLOBAL)
		snprintf(buf, size, "%s.%s", v->u.global.module, v->u.global.name);
	else if (size)
		buf[0] = '\0';
	return buf;
}

const char *vt_pk_obj_class(const struct vt_pk *obj)
{
	if (!obj || obj->kind != VT_PK_OBJECT || !obj->u.obj.cls || obj->u.obj.cls->kind != VT_PK_GLOBAL)
		return NULL;
	return obj->u.obj.cls->u.global.name;
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

/* Reads a text line of protocol 0 (its '\n' dropped) into the arena: at most max bytes. */
static int take_line_n(struct vt_unpickler *u, char **out, size_t *len, size_t max, struct vt_err *err)
{
	char *line = NULL;
	size_t n = 0, cap = 0;
	uint64_t at = u->pos;

	for (;;) {
		char c;
		int rc = take(u, &c, 1, err);
		if (rc) {
			free(line);
			return rc;
		}
		if (c == '\n')
			break;
		if (n == max) {
			free(line);
			return vt_err_set(err, VT_EFORMAT, "pickle: text operand longer than %zu bytes at offset %llu",
					  max, (unsigned long long)at);
		}
		if (n == cap) {
			char *p = realloc(line, cap = cap ? 2 * cap : 64);
			if (!p) {
				free(line);
				return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
			}
			line = p;
		}
		line[n++] = c;
	}
	*out = vt_arena_alloc(&u->arena, n + 1);
	if (*out) {
		if (n)
			memcpy(*out, line, n);
		(*out)[n] = '\0';
	}
	free(line);
	*len = n;
	return *out ? 0 : vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
}

/* A GLOBAL/INST operand: a module or attribute name, at most 256 bytes. */
static int take_line(struct vt_unpickler *u, char **out, struct vt_err *err)
{
	size_t n;

	return take_line_n(u, out, &n, 256, err);
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

static int utf8_valid(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = p[i], k, j;
		if (c < 0x80) {
			i++;
			continue;
		}
		k = c >= 0xf0 && c < 0xf5 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : 0;
		if (!k || c >= 0xf5 || n - i <= k)
			return 0;
		for (j = 1; j <= k; j++)
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
		i += k + 1;
	}
	return 1;
}

/* Pushes n bytes as a string value; py2: a Python 2 str, text when it is valid UTF-8. */
static int push_string(struct vt_unpickler *u, enum vt_pk_kind kind, int py2, const char *p, size_t n,
		       struct vt_err *err)
{
	struct vt_pk *v;

	if (py2)
		kind = utf8_valid((const unsigned char *)p, n) ? VT_PK_STR : VT_PK_BYTES;
	v = vt_pk_new(u, kind);
	if (!v || !(v->u.str.s = vt_arena_alloc(&u->arena, n + 1)))
		return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
	if (n)
		memcpy(v->u.str.s, p, n);
	v->u.str.s[n] = '\0';
	v->u.str.len = n;
	return push(u, v, err);
}

static int op_string(struct vt_unpickler *u, enum vt_pk_kind kind, int lenbytes, int py2, struct vt_err *err)
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
	if (py2)
		v->kind = utf8_valid((unsigned char *)v->u.str.s, (size_t)n) ? VT_PK_STR : VT_PK_BYTES;
	return push(u, v, err);
}

/* ---- protocol 0: operands as text lines ---------------------------------------------- */

#define TEXT_MAX ((size_t)1 << 28)

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static size_t put_utf8(char *o, uint32_t c)
{
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (char)(0xc0 | (c >> 6));
		o[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (char)(0xe0 | (c >> 12));
		o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		o[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (c >> 18));
	o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	o[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* STRING: a Python 2 str literal, 'text' or "text", with backslash escapes. */
static int op_text_string(struct vt_unpickler *u, uint64_t at, struct vt_err *err)
{
	char *line, *o, *p;
	size_t n, len = 0;
	int rc = take_line_n(u, &line, &n, TEXT_MAX, err);

	if (rc)
		return rc;
	if (n < 2 || (line[0] != '\'' && line[0] != '"') || line[n - 1] != line[0])
		return vt_err_set(err, VT_EFORMAT, "pickle: STRING operand is not quoted at offset %llu",
				  (unsigned long long)at);
	o = line; /* decoding only shrinks: in place */
	for (p = line + 1; p < line + n - 1; p++) {
		int c = (unsigned char)*p;
		if (c == '\\' && p + 1 < line + n - 1) {
			c = (unsigned char)*++p;
			switch (c) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'a': c = '\a'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'v': c = '\v'; break;
			case 'x':
				if (p + 2 < line + n - 1 && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
					c = hexval(p[1]) * 16 + hexval(p[2]);
					p += 2;
				}
				break;
			default:
				if (c >= '0' && c <= '7') {
					int v = c - '0', k;
					for (k = 0; k < 2 && p + 1 < line + n - 1 && p[1] >= '0' && p[1] <= '7'; k++)
						v = v * 8 + (*++p - '0');
					c = v & 0xff;
				}
				break;
			}
		}
		o[len++] = (char)c;
	}
	return push_string(u, VT_PK_STR, 1, line, len, err);
}

/* UNICODE: raw-unicode-escape text: latin-1 bytes with \uXXXX and \UXXXXXXXX escapes. */
static int op_text_unicode(struct vt_unpickler *u, struct vt_err *err)
{
	char *line, *o;
	size_t n, i, len = 0;
	int rc = take_line_n(u, &line, &n, TEXT_MAX, err);

	if (rc)
		return rc;
	if (n > SIZE_MAX / 4 || !(o = vt_arena_alloc(&u->arena, 4 * n + 1)))
		return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
	for (i = 0; i < n; i++) {
		uint32_t c = (unsigned char)line[i];
		int digits = 0, k, ok = 1;
		if (c == '\\' && i + 1 < n && (line[i + 1] == 'u' || line[i + 1] == 'U'))
			digits = line[i + 1] == 'u' ? 4 : 8;
		if (digits && i + 2 + (size_t)digits <= n) {
			uint32_t v = 0;
			for (k = 0; k < digits; k++) {
				int h = hexval(line[i + 2 + (size_t)k]);
				if (h < 0)
					ok = 0;
				v = v * 16 + (uint32_t)(h < 0 ? 0 : h);
			}
			if (ok && v < 0x110000) {
				c = v;
				i += 1 + (size_t)digits;
			}
		}
		len += put_utf8(o + len, c);
	}
	return push_string(u, VT_PK_STR, 0, o, len, err);
}

/* INT (also the bools I00/I01), LONG (trailing L) and PUT/GET operands. */
static int text_int(struct vt_unpickler *u, int64_t *v, int *is_bool, uint64_t at, struct vt_err *err)
{
	char *line, *end;
	size_t n;
	long long x;
	int rc = take_line_n(u, &line, &n, 64, err);

	if (rc)
		return rc;
	if (is_bool)
		*is_bool = strcmp(line, "00") == 0 ? 1 : strcmp(line, "01") == 0 ? 2 : 0;
	if (n && line[n - 1] == 'L')
		line[--n] = '\0';
	errno = 0;
	x = strtoll(line, &end, 10);
	if (!n || *end || errno)
		return vt_err_set(err, errno ? VT_EUNSUPPORTED : VT_EFORMAT,
				  "pickle: '%s' is not a 64-bit integer at offset %llu", line, (unsigned long long)at);
	*v = x;
	return 0;
}

static int op_text_float(struct vt_unpickler *u, uint64_t at, struct vt_err *err)
{
	char *line, *end;
	size_t n;
	struct vt_pk *v;
	int rc = take_line_n(u, &line, &n, 64, err);

	if (rc)
		return rc;
	v = vt_pk_new(u, VT_PK_FLOAT);
	if (v)
		v->u.f = strtod(line, &end);
	if (v && (!n || *end))
		return vt_err_set(err, VT_EFORMAT, "pickle: '%s' is not a float at offset %llu", line,
				  (unsigned long long)at);
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

static void note(struct vt_unpickler *u, enum vt_pk_event ev, const struct vt_pk *what, uint64_t at)
{
	if (u->hooks && u->hooks->note)
		u->hooks->note(u->ctx, ev, what, at);
}

/* The items beside an object record (a dict or list subclass), made on first use. */
static struct vt_pk *obj_items(struct vt_unpickler *u, struct vt_pk *obj, enum vt_pk_kind kind)
{
	if (!obj->u.obj.items)
		obj->u.obj.items = vt_pk_new(u, kind);
	return obj->u.obj.items && obj->u.obj.items->kind == kind ? obj->u.obj.items : NULL;
}

static int op_global(struct vt_unpickler *u, const char *module, const char *name, struct vt_err *err)
{
	struct vt_pk *v;
	int tag;

	const char *p;

	/* a class or function name: never empty, never a newline (a writer's text GLOBAL would
	 * end there and run the rest as opcodes) or another control character */
	for (p = module; *p && (unsigned char)*p >= 0x20 && *p != 0x7f; p++)
		;
	if (*p == '\0')
		for (p = name; *p && (unsigned char)*p >= 0x20 && *p != 0x7f; p++)
			;
	if (*p || !*module || !*name)
		return vt_err_set(err, VT_EFORMAT, "pickle: a global whose name is empty or holds a control character at offset %llu",
				  (unsigned long long)u->pos);
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
		note(u, VT_PK_EV_GLOBAL, v, u->pos);
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
	if (seq->kind == VT_PK_OBJECT && !(seq = obj_items(u, seq, VT_PK_LIST)))
		return vt_err_set(err, VT_EFORMAT, "pickle: APPEND on an object that took SETITEMs (or out of memory) at offset %llu",
				  (unsigned long long)at);
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
	if (d->kind == VT_PK_OBJECT && !(d = obj_items(u, d, VT_PK_DICT)))
		return vt_err_set(err, VT_EFORMAT, "pickle: SETITEM on an object that took APPENDs (or out of memory) at offset %llu",
				  (unsigned long long)at);
	if (d->kind != VT_PK_DICT)
		return vt_err_set(err, VT_EFORMAT, "pickle: SETITEM on a non-dict at offset %llu",
				  (unsigned long long)at);
	for (i = first; i < u->sp; i += 2)
		if (vt_pk_dict_set(u, d, u->stack[i], u->stack[i + 1]))
			return vt_err_set(err, VT_ENOMEM, "pickle: out of memory");
	u->sp = first;
	return 0;
}

/* A call: REDUCE, INST or OBJ.  A global goes to the reduce hook; any other callable (the
 * result of another call, say) becomes a call record. */
static int call(struct vt_unpickler *u, struct vt_pk *fn, struct vt_pk *args, uint64_t at, struct vt_err *err)
{
	struct vt_pk *out = NULL;
	int rc;

	if (args->kind != VT_PK_TUPLE)
		return vt_err_set(err, VT_EFORMAT, "pickle: REDUCE without an argument tuple at offset %llu",
				  (unsigned long long)at);
	note(u, VT_PK_EV_CALL, fn, at);
	if (fn->kind != VT_PK_GLOBAL)
		return push(u, vt_pk_call(u, fn, args), err);
	if (!u->hooks || !u->hooks->reduce)
		return vt_err_set(err, VT_EUNSAFE, "pickle: call of '%s.%s' is not allowed",
				  fn->u.global.module, fn->u.global.name);
	rc = u->hooks->reduce(u->ctx, u, fn, args, &out, err);
	if (rc)
		return vt_err_prefix(err, "at offset %llu", (unsigned long long)at);
	return push(u, out, err);
}

static int op_reduce(struct vt_unpickler *u, uint64_t at, struct vt_err *err)
{
	struct vt_pk *fn, *args;
	int rc;

	if ((rc = pop(u, &args, at, err)) || (rc = pop(u, &fn, at, err)))
		return rc;
	return call(u, fn, args, at, err);
}

/* INST module name (MARK args...) and OBJ (MARK cls args...): protocol 0/1 instantiation;
 * cls is NULL for OBJ. */
static int op_inst(struct vt_unpickler *u, struct vt_pk *cls, uint64_t at, struct vt_err *err)
{
	struct vt_pk *args;
	size_t first = 0;
	int rc, is_obj = !cls;

	if ((rc = pop_mark(u, &first, at, err)))
		return rc;
	if (is_obj) {
		if (u->sp == first)
			return vt_err_set(err, VT_EFORMAT, "pickle: OBJ without a class at offset %llu",
					  (unsigned long long)at);
		cls = u->stack[first++];
	}
	if ((rc = op_tuple(u, first, err)))
		return rc;
	args = u->stack[--u->sp];
	u->sp = is_obj ? first - 1 : first; /* OBJ: the class goes too */
	return call(u, cls, args, at, err);
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
	note(u, VT_PK_EV_NEWOBJ, cls, at);
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
		note(u, VT_PK_EV_BUILD, obj, at);
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
	struct vt_pk *pid = NULL, *out = NULL;
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
		return op_string(u, VT_PK_STR, 4, 0, err);
	case 0x8c:
		return op_string(u, VT_PK_STR, 1, 0, err);
	case 0x8d:
		return op_string(u, VT_PK_STR, 8, 0, err);
	case 'T': /* Python 2 str */
		return op_string(u, VT_PK_BYTES, 4, 1, err);
	case 'U':
		return op_string(u, VT_PK_BYTES, 1, 1, err);
	case 'B':
		return op_string(u, VT_PK_BYTES, 4, 0, err);
	case 'C':
		return op_string(u, VT_PK_BYTES, 1, 0, err);
	case 0x8e:
	case 0x96:
		return op_string(u, VT_PK_BYTES, 8, 0, err);
	case 'S':
		return op_text_string(u, at, err);
	case 'V':
		return op_text_unicode(u, err);
	case 'F':
		return op_text_float(u, at, err);
	case 'I':
	case 'L': {
		int64_t v;
		int is_bool;
		if ((rc = text_int(u, &v, &is_bool, at, err)))
			return rc;
		if (op == 'I' && is_bool) {
			a = vt_pk_new(u, VT_PK_BOOL);
			if (a)
				a->u.b = is_bool == 2;
			return push(u, a, err);
		}
		return op_int(u, v, err);
	}
	case 'p':
	case 'g': {
		int64_t v;
		if ((rc = text_int(u, &v, NULL, at, err)))
			return rc;
		if (v < 0)
			return vt_err_set(err, VT_EFORMAT, "pickle: negative memo index at offset %llu",
					  (unsigned long long)at);
		return op == 'p' ? memo_put(u, (uint64_t)v, at, err) : memo_get(u, (uint64_t)v, at, err);
	}
	case 'P': {
		char *line;
		size_t len;
		if ((rc = take_line_n(u, &line, &len, TEXT_MAX, err)) || (rc = push_string(u, VT_PK_STR, 1, line, len, err)))
			return rc;
		return op_persid(u, at, err);
	}
	case 'i': {
		char *module, *name;
		if ((rc = take_line(u, &module, err)) || (rc = take_line(u, &name, err)) ||
		    (rc = op_global(u, module, name, err)))
			return rc;
		return op_inst(u, u->stack[--u->sp], at, err);
	}
	case 'o':
		return op_inst(u, NULL, at, err);
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
