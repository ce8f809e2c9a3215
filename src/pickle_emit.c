/* pickle_emit.c - protocol-2 pickle writer (see include/vt_pickle.h).
 *
 * Reproduces the choices of CPython's C pickler that torch.save output shows
 * (shared/research/pth-format.md sections 2.1, 2.6, 2.7): smallest integer opcode, BINFLOAT
 * big-endian, BINUNICODE for every string, BINPUT/LONG_BINPUT numbering from 0, items in
 * batches of 1000.  Memo lookups for globals and interned strings are a linear scan: a
 * checkpoint has a few dozen of them.
 */
#include "vt_pickle.h"

#include <stdlib.h>
#include <string.h>

struct vt_pkw_intern {
	char *key; /* "g<module>\n<name>" for globals, "s<text>" for strings */
	uint32_t memo;
};

void vt_pkw_init(struct vt_pkw *w)
{
	memset(w, 0, sizeof(*w));
}

void vt_pkw_release(struct vt_pkw *w)
{
	size_t i;

	for (i = 0; i < w->nintern; i++)
		free(w->intern[i].key);
	free(w->intern);
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

static void put_bytes(struct vt_pkw *w, const void *p, size_t n)
{
	if (w->oom)
		return;
	if (w->len + n > w->cap) {
		size_t ncap = w->cap ? w->cap : 4096;
		unsigned char *b;
		while (ncap < w->len + n)
			ncap *= 2;
		b = realloc(w->buf, ncap);
		if (!b) {
			w->oom = 1;
			return;
		}
		w->buf = b;
		w->cap = ncap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void put_le(struct vt_pkw *w, uint64_t v, int n)
{
	unsigned char b[8];
	int i;

	for (i = 0; i < n; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	put_bytes(w, b, (size_t)n);
}

void vt_pkw_op(struct vt_pkw *w, unsigned char op)
{
	put_bytes(w, &op, 1);
}

static uint32_t memo_next(struct vt_pkw *w)
{
	uint32_t idx = w->next_memo++;

	if (idx < 256) {
		vt_pkw_op(w, 'q');
		put_le(w, idx, 1);
	} else {
		vt_pkw_op(w, 'r');
		put_le(w, idx, 4);
	}
	return idx;
}

void vt_pkw_put(struct vt_pkw *w)
{
	memo_next(w);
}

void vt_pkw_get(struct vt_pkw *w, uint32_t idx)
{
	if (idx < 256) {
		vt_pkw_op(w, 'h');
		put_le(w, idx, 1);
	} else {
		vt_pkw_op(w, 'j');
		put_le(w, idx, 4);
	}
}

/* Emits a cached object again (BINGET) if key was seen; else returns 0 to let the caller
 * write it, after which intern_add records its memo index. */
static int intern_get(struct vt_pkw *w, const char *key)
{
	size_t i;

	for (i = 0; i < w->nintern; i++)
		if (strcmp(w->intern[i].key, key) == 0) {
			vt_pkw_get(w, w->intern[i].memo);
			return 1;
		}
	return 0;
}

static void intern_add(struct vt_pkw *w, const char *key, uint32_t memo)
{
	if (w->nintern == w->intern_cap) {
		size_t ncap = w->intern_cap ? w->intern_cap * 2 : 32;
		struct vt_pkw_intern *p = realloc(w->intern, ncap * sizeof(*p));
		if (!p) {
			w->oom = 1;
			return;
		}
		w->intern = p;
		w->intern_cap = ncap;
	}
	w->intern[w->nintern].key = strdup(key);
	w->intern[w->nintern].memo = memo;
	if (!w->intern[w->nintern].key)
		w->oom = 1;
	else
		w->nintern++;
}

static char *intern_key(char kind, const char *a, const char *b)
{
	size_t la = strlen(a), lb = b ? strlen(b) : 0;
	char *k = malloc(la + lb + 3);

	if (!k)
		return NULL;
	k[0] = kind;
	memcpy(k + 1, a, la);
	if (b) {
		k[1 + la] = '\n';
		memcpy(k + 2 + la, b, lb + 1);
	} else {
		k[1 + la] = '\0';
	}
	return k;
}

void vt_pkw_global(struct vt_pkw *w, const char *module, const char *name)
{
	char *key = intern_key('g', module, name);

	if (!key) {
		w->oom = 1;
		return;
	}
	if (!intern_get(w, key)) {
		vt_pkw_op(w, 'c');
		put_bytes(w, module, strlen(module));
		vt_pkw_op(w, '\n');
		put_bytes(w, name, strlen(name));
		vt_pkw_op(w, '\n');
		intern_add(w, key, memo_next(w));
	}
	free(key);
}

void vt_pkw_str(struct vt_pkw *w, const char *s)
{
	size_t n = strlen(s);

	vt_pkw_op(w, 'X');
	put_le(w, n, 4);
	put_bytes(w, s, n);
	memo_next(w);
}

static void str_memo(struct vt_pkw *w, char ns, const char *s)
{
	char *key = intern_key(ns, s, NULL);
	uint32_t idx;

	if (!key) {
		w->oom = 1;
		return;
	}
	if (!intern_get(w, key)) {
		idx = w->next_memo;
		vt_pkw_str(w, s);
		intern_add(w, key, idx);
	}
	free(key);
}

void vt_pkw_str_interned(struct vt_pkw *w, const char *s)
{
	str_memo(w, 's', s);
}

void vt_pkw_str_key(struct vt_pkw *w, const char *s)
{
	str_memo(w, 'k', s);
}

void vt_pkw_int(struct vt_pkw *w, int64_t v)
{
	if (v >= 0 && v < 256) {
		vt_pkw_op(w, 'K');
		put_le(w, (uint64_t)v, 1);
	} else if (v >= 0 && v < 65536) {
		vt_pkw_op(w, 'M');
		put_le(w, (uint64_t)v, 2);
	} else if (v >= INT32_MIN && v <= INT32_MAX) {
		vt_pkw_op(w, 'J');
		put_le(w, (uint64_t)(uint32_t)(int32_t)v, 4);
	} else {
		/* LONG1: the fewest little-endian two's-complement bytes that keep the sign */
		int n = 8;
		while (n > 1) {
			int64_t shifted = v >> (8 * (n - 1) - 1);
			if (shifted != 0 && shifted != -1)
				break;
			n--;
		}
		vt_pkw_op(w, 0x8a);
		put_le(w, (uint64_t)n, 1);
		put_le(w, (uint64_t)v, n);
	}
}

void vt_pkw_float(struct vt_pkw *w, double v)
{
	unsigned char b[8];
	uint64_t bits;
	int i;

	memcpy(&bits, &v, sizeof(bits));
	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)(bits >> (56 - 8 * i));
	vt_pkw_op(w, 'G');
	put_bytes(w, b, 8);
}

void vt_pkw_bool(struct vt_pkw *w, int v)
{
	vt_pkw_op(w, v ? 0x88 : 0x89);
}

void vt_pkw_none(struct vt_pkw *w)
{
	vt_pkw_op(w, 'N');
}

void vt_pkw_tuple_begin(struct vt_pkw *w, int n)
{
	if (n > 3)
		vt_pkw_op(w, '(');
}

void vt_pkw_tuple_end(struct vt_pkw *w, int n)
{
	if (n == 0) {
		vt_pkw_op(w, ')');
		return; /* the empty tuple is a singleton: never memoized */
	}
	vt_pkw_op(w, n > 3 ? 't' : (unsigned char)(0x84 + n));
	memo_next(w);
}

void vt_pkw_batch_begin(struct vt_pkw *w, size_t i, size_t n)
{
	size_t left = n - (i - i % 1000);

	if (i % 1000 == 0 && left > 1)
		vt_pkw_op(w, '(');
}

void vt_pkw_batch_end(struct vt_pkw *w, size_t i, size_t n, int is_list)
{
	size_t batch_start = i - i % 1000, left = n - batch_start;
	size_t batch = left < 1000 ? left : 1000;

	if (i != batch_start + batch - 1)
		return;
	if (batch > 1)
		vt_pkw_op(w, is_list ? 'e' : 'u');
	else
		vt_pkw_op(w, is_list ? 'a' : 's');
}
