/* safetensors.c - Hugging Face's safetensors format, both ways (see include/vt_safetensors.h).
 *
 * Layout (huggingface/safetensors, safetensors/src/tensor.rs):
 *
 *   u64 LE   N                 header length, at most 100 MB
 *   N bytes  JSON, UTF-8       {"__metadata__": {"format": "pt"},
 *                               "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
 *                               ...}  padded with spaces to a multiple of 8 by the writers
 *   data     the tensors' bytes, little-endian, C order; [begin, end) of each entry is
 *            relative to the start of this section, and the entries tile it exactly
 *
 * Reading: a small strict JSON parser for what a header may hold (objects, strings with
 * every escape, non-negative integers, arrays of them, null for "__metadata__"), reading one
 * bounds-checked cursor over a copy of the header; every error names the file offset and,
 * inside an entry, the tensor.  Unknown fields in an entry, duplicate keys, numbers with a
 * fraction or exponent, invalid UTF-8 and lone surrogates are refused.  Tensor bytes are
 * never read: pth.c turns the entries into file-backed storages.
 *
 * Writing: the layout of safetensors.torch.save_file(tensors, path, metadata={"format": "pt"})
 * (what transformers' save_pretrained writes): serde_json's compact text with the same string
 * escapes, entries sorted as tensor.rs's prepare() sorts them (descending Dtype enum order,
 * then name), the header padded with spaces, bytes streamed from the source in chunks (a
 * strided tensor's span, a generated storage or a deflated record is read whole, then
 * gathered).  Not supported: writing shared (overlapping) tensors, quantized and complex
 * tensors.
 */
#include "vt_safetensors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sbuf.h"

/* safetensors' Dtype enum (tensor.rs) in its declared order, which save_file sorts by
 * (descending); dtype -1: one vggtl (torch 1.13) has no type for. */
static const struct {
	const char *name;
	int dtype;
} st_dtypes[] = {
	{ "BOOL", VT_BOOL }, { "F4", -1 }, { "F6_E2M3", -1 }, { "F6_E3M2", -1 }, { "U8", VT_U8 },
	{ "I8", VT_I8 }, { "F8_E5M2", -1 }, { "F8_E4M3", -1 }, { "F8_E8M0", -1 }, { "I16", VT_I16 },
	{ "U16", -1 }, { "F16", VT_F16 }, { "BF16", VT_BF16 }, { "I32", VT_I32 }, { "U32", -1 },
	{ "F32", VT_F32 }, { "C64", -1 }, { "F64", VT_F64 }, { "I64", VT_I64 }, { "U64", -1 },
};
enum { N_ST_DTYPES = sizeof(st_dtypes) / sizeof(st_dtypes[0]) };

static int st_rank(int dtype)
{
	int i;

	for (i = 0; i < N_ST_DTYPES; i++)
		if (st_dtypes[i].dtype == dtype)
			return i;
	return -1;
}

const char *vt_st_dtype_name(int dtype)
{
	int r = dtype >= 0 ? st_rank(dtype) : -1;

	return r >= 0 ? st_dtypes[r].name : NULL;
}

static uint64_t le64(const unsigned char *b)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

/* Length of the well-formed UTF-8 sequence at s (n > 0 bytes available), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
		return 0; /* overlong, or a surrogate */
	if (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
		return 0;
	return len;
}

/* ---- reading: the JSON cursor ---------------------------------------------------------- */

struct cur {
	const unsigned char *p; /* the header */
	size_t pos, len;
	char *pool;             /* decoded strings: never longer than their JSON form */
	size_t pool_used;
	const char *tensor;     /* the entry being read, for messages */
	struct vt_err *err;
};

static int failf(struct cur *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(struct cur *c, int code, const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (c->tensor)
		return vt_err_set(c->err, code, "safetensors header: tensor '%.100s': %s at offset %llu", c->tensor,
				  what, (unsigned long long)(8 + c->pos));
	return vt_err_set(c->err, code, "safetensors header: %s at offset %llu", what,
			  (unsigned long long)(8 + c->pos));
}

static void ws(struct cur *c)
{
	while (c->pos < c->len && (c->p[c->pos] == ' ' || c->p[c->pos] == '\t' || c->p[c->pos] == '\n' ||
				   c->p[c->pos] == '\r'))
		c->pos++;
}

static int peek(const struct cur *c)
{
	return c->pos < c->len ? c->p[c->pos] : -1;
}

static int expect(struct cur *c, int ch)
{
	ws(c);
	if (peek(c) != ch)
		return peek(c) < 0 ? failf(c, VT_EFORMAT, "header ends where '%c' was expected", ch) :
				     failf(c, VT_EFORMAT, "expected '%c'", ch);
	c->pos++;
	return 0;
}

/* After an item of an object or array: 1 at the closer (consumed), 0 after a ',', or an error. */
static int next_item(struct cur *c, int closer)
{
	ws(c);
	if (peek(c) == ',') {
		c->pos++;
		return 0;
	}
	if (peek(c) == closer) {
		c->pos++;
		return 1;
	}
	return peek(c) < 0 ? failf(c, VT_EFORMAT, "header ends inside %s", closer == '}' ? "an object" : "an array") :
			     failf(c, VT_EFORMAT, "expected ',' or '%c'", closer);
}

static int hex4(struct cur *c, uint32_t *v)
{
	int i;

	*v = 0;
	if (c->len - c->pos < 4)
		return failf(c, VT_EFORMAT, "truncated \\u escape");
	for (i = 0; i < 4; i++) {
		int h = c->p[c->pos + i];
		*v <<= 4;
		if (h >= '0' && h <= '9')
			*v |= (uint32_t)(h - '0');
		else if (h >= 'a' && h <= 'f')
			*v |= (uint32_t)(h - 'a' + 10);
		else if (h >= 'A' && h <= 'F')
			*v |= (uint32_t)(h - 'A' + 10);
		else
			return failf(c, VT_EFORMAT, "bad hex digit in a \\u escape");
	}
	c->pos += 4;
	return 0;
}

static size_t put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The escape at c->pos (a backslash) as a code point. */
static int parse_escape(struct cur *c, uint32_t *cp)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *e;
	int rc;

	if (c->len - c->pos < 2)
		return failf(c, VT_EFORMAT, "header ends inside a string");
	e = c->p[c->pos + 1] ? strchr(from, c->p[c->pos + 1]) : NULL;
	if (e) {
		*cp = (unsigned char)to[e - from];
		c->pos += 2;
		return 0;
	}
	if (c->p[c->pos + 1] != 'u')
		return failf(c, VT_EFORMAT, "unknown escape '\\%c'", c->p[c->pos + 1] >= 0x20 && c->p[c->pos + 1] < 0x7f ? c->p[c->pos + 1] : '?');
	c->pos += 2;
	if ((rc = hex4(c, cp)))
		return rc;
	if (*cp >= 0xdc00 && *cp <= 0xdfff) {
		c->pos -= 6;
		return failf(c, VT_EFORMAT, "lone low surrogate \\u%04x", (unsigned)*cp);
	}
	if (*cp >= 0xd800 && *cp <= 0xdbff) {
		uint32_t lo;
		if (c->len - c->pos < 2 || c->p[c->pos] != '\\' || c->p[c->pos + 1] != 'u')
			return failf(c, VT_EFORMAT, "high surrogate \\u%04x without its low half", (unsigned)*cp);
		c->pos += 2;
		if ((rc = hex4(c, &lo)))
			return rc;
		if (lo < 0xdc00 || lo > 0xdfff) {
			c->pos -= 6;
			return failf(c, VT_EFORMAT, "high surrogate \\u%04x without its low half", (unsigned)*cp);
		}
		*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (*cp == 0) {
		c->pos -= 6;
		return failf(c, VT_EUNSUPPORTED, "\\u0000 in a string is not supported");
	}
	return 0;
}

/* The string at c->pos, decoded into the pool. */
static int parse_string(struct cur *c, const char **out)
{
	char *o = c->pool + c->pool_used;
	size_t k = 0, start;
	int rc;

	ws(c);
	if (peek(c) != '"')
		return peek(c) < 0 ? failf(c, VT_EFORMAT, "header ends where a string was expected") :
				     failf(c, VT_EFORMAT, "expected a string");
	start = c->pos++;
	for (;;) {
		unsigned b;
		size_t n;
		if (c->pos >= c->len) {
			c->pos = start;
			return failf(c, VT_EFORMAT, "unterminated string");
		}
		b = c->p[c->pos];
		if (b == '"')
			break;
		if (b < 0x20)
			return failf(c, VT_EFORMAT, "control character 0x%02x in a string", b);
		if (b == '\\') {
			uint32_t cp = 0;
			if ((rc = parse_escape(c, &cp)))
				return rc;
			k += put_utf8(o + k, cp);
			continue;
		}
		n = utf8_seq(c->p + c->pos, c->len - c->pos);
		if (!n)
			return failf(c, VT_EFORMAT, "invalid UTF-8 in a string");
		memcpy(o + k, c->p + c->pos, n);
		k += n;
		c->pos += n;
	}
	c->pos++;
	o[k] = '\0';
	c->pool_used += k + 1;
	*out = o;
	return 0;
}

static int is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

static int parse_uint(struct cur *c, uint64_t *v, const char *what)
{
	size_t start;
	uint64_t x = 0;

	ws(c);
	start = c->pos;
	if (peek(c) == '-')
		return failf(c, VT_EFORMAT, "%s is negative", what);
	if (!is_digit(peek(c)))
		return failf(c, VT_EFORMAT, "expected %s (a non-negative integer)", what);
	if (peek(c) == '0' && c->pos + 1 < c->len && is_digit(c->p[c->pos + 1]))
		return failf(c, VT_EFORMAT, "%s has a leading zero", what);
	while (is_digit(peek(c))) {
		unsigned d = (unsigned)(c->p[c->pos] - '0');
		if (x > (UINT64_MAX - d) / 10) {
			c->pos = start;
			return failf(c, VT_EFORMAT, "%s does not fit 64 bits", what);
		}
		x = x * 10 + d;
		c->pos++;
	}
	if (peek(c) == '.' || peek(c) == 'e' || peek(c) == 'E')
		return failf(c, VT_EFORMAT, "%s is not an integer", what);
	*v = x;
	return 0;
}

/* [u, u, ...] with at most max numbers. */
static int parse_uints(struct cur *c, uint64_t *out, int max, int *n, const char *what, int too_many_code,
		       const char *too_many)
{
	int rc;

	*n = 0;
	if ((rc = expect(c, '[')))
		return rc;
	ws(c);
	if (peek(c) == ']') {
		c->pos++;
		return 0;
	}
	for (;;) {
		uint64_t v = 0;
		if ((rc = parse_uint(c, &v, what)))
			return rc;
		if (*n == max)
			return failf(c, too_many_code, "%s", too_many);
		out[(*n)++] = v;
		if ((rc = next_item(c, ']')))
			return rc < 0 ? rc : 0;
	}
}

static int parse_tensor(struct cur *c, struct vt_st_entry *e)
{
	enum { HAVE_DTYPE = 1, HAVE_SHAPE = 2, HAVE_OFFSETS = 4 };
	int have = 0, rc, i;

	if ((rc = expect(c, '{')))
		return rc;
	ws(c);
	if (peek(c) == '}')
		c->pos++;
	else
		for (;;) {
			const char *key, *s;
			size_t mark = c->pool_used, at;
			if ((rc = parse_string(c, &key)) || (rc = expect(c, ':')))
				return rc;
			ws(c);
			at = c->pos;
			if (strcmp(key, "dtype") == 0) {
				if (have & HAVE_DTYPE)
					return failf(c, VT_EFORMAT, "second 'dtype'");
				if ((rc = parse_string(c, &s)))
					return rc;
				e->dtype = -2;
				for (i = 0; i < N_ST_DTYPES; i++)
					if (strcmp(s, st_dtypes[i].name) == 0)
						e->dtype = st_dtypes[i].dtype;
				if (e->dtype < 0) {
					c->pos = at;
					return e->dtype == -2 ? failf(c, VT_EFORMAT, "unknown dtype '%.40s'", s) :
						failf(c, VT_EUNSUPPORTED, "dtype '%s' has no torch 1.13 type: not supported", s);
				}
				have |= HAVE_DTYPE;
			} else if (strcmp(key, "shape") == 0) {
				uint64_t dims[VT_MAX_DIMS];
				if (have & HAVE_SHAPE)
					return failf(c, VT_EFORMAT, "second 'shape'");
				if ((rc = parse_uints(c, dims, VT_MAX_DIMS, &e->ndim, "a dimension", VT_EUNSUPPORTED,
						      "more than 16 dimensions")))
					return rc;
				for (i = 0; i < e->ndim; i++) {
					if (dims[i] > INT64_MAX) {
						c->pos = at;
						return failf(c, VT_EFORMAT, "dimension %d does not fit 63 bits", i);
					}
					e->shape[i] = (int64_t)dims[i];
				}
				have |= HAVE_SHAPE;
			} else if (strcmp(key, "data_offsets") == 0) {
				uint64_t off[2];
				int n;
				if (have & HAVE_OFFSETS)
					return failf(c, VT_EFORMAT, "second 'data_offsets'");
				if ((rc = parse_uints(c, off, 2, &n, "an offset", VT_EFORMAT,
						      "'data_offsets' holds more than [begin, end]")))
					return rc;
				if (n != 2) {
					c->pos = at;
					return failf(c, VT_EFORMAT, "'data_offsets' must be [begin, end]");
				}
				e->begin = off[0];
				e->end = off[1];
				have |= HAVE_OFFSETS;
			} else {
				c->pos = at;
				return failf(c, VT_EFORMAT, "unknown field '%.40s'", key);
			}
			c->pool_used = mark; /* field names and dtype strings are not kept */
			if ((rc = next_item(c, '}')))
				break;
		}
	if (rc < 0)
		return rc;
	if (have != (HAVE_DTYPE | HAVE_SHAPE | HAVE_OFFSETS))
		return failf(c, VT_EFORMAT, "entry has no '%s'",
			     !(have & HAVE_DTYPE) ? "dtype" : !(have & HAVE_SHAPE) ? "shape" : "data_offsets");
	return 0;
}

static int grow(void **arr, size_t n, size_t *cap, size_t size, struct cur *c)
{
	void *p;

	if (n < *cap)
		return 0;
	if (*cap > SIZE_MAX / 2 / size || !(p = realloc(*arr, (*cap ? 2 * *cap : 16) * size)))
		return failf(c, VT_ENOMEM, "out of memory");
	*arr = p;
	*cap = *cap ? 2 * *cap : 16;
	return 0;
}

static int parse_meta(struct cur *c, struct vt_st_header *h)
{
	int rc;

	ws(c);
	if (c->len - c->pos >= 4 && memcmp(c->p + c->pos, "null", 4) == 0) {
		c->pos += 4;
		return 0;
	}
	if ((rc = expect(c, '{')))
		return rc;
	ws(c);
	if (peek(c) == '}') {
		c->pos++;
		return 0;
	}
	for (;;) {
		const char *k = NULL, *v = NULL;
		if ((rc = parse_string(c, &k)) || (rc = expect(c, ':')))
			return rc;
		ws(c);
		if (peek(c) != '"')
			return failf(c, VT_EFORMAT, "'__metadata__' value of '%.100s' is not a string", k);
		if ((rc = parse_string(c, &v)) || (rc = grow((void **)&h->meta, 2 * h->nmeta, &h->meta_cap, sizeof(*h->meta), c)) ||
		    (rc = grow((void **)&h->meta, 2 * h->nmeta + 1, &h->meta_cap, sizeof(*h->meta), c)))
			return rc;
		h->meta[2 * h->nmeta] = k;
		h->meta[2 * h->nmeta + 1] = v;
		h->nmeta++;
		if ((rc = next_item(c, '}')))
			return rc < 0 ? rc : 0;
	}
}

/* ---- reading: the checks on the whole header ------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
	return strcmp((*(const struct vt_st_entry *const *)a)->name, (*(const struct vt_st_entry *const *)b)->name);
}

static int cmp_offsets(const void *a, const void *b)
{
	const struct vt_st_entry *x = *(const struct vt_st_entry *const *)a, *y = *(const struct vt_st_entry *const *)b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int check_entries(struct vt_st_header *h, uint64_t data_size, struct vt_err *err)
{
	const struct vt_st_entry **by = malloc((h->n ? h->n : 1) * sizeof(*by));
	const char **keys = NULL;
	uint64_t pos = 0;
	size_t i;
	int d, rc = 0;

	if (!by)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	for (i = 0; i < h->n && rc == 0; i++) {
		const struct vt_st_entry *e = &h->t[i];
		uint64_t numel = 1, es = (uint64_t)vt_dtype_info(e->dtype)->size;
		by[i] = e;
		for (d = 0; d < e->ndim && rc == 0; d++) {
			if (e->shape[d] && numel > UINT64_MAX / (uint64_t)e->shape[d])
				rc = vt_err_set(err, VT_EFORMAT, "safetensors header: tensor '%.100s': shape overflows 64 bits",
						e->name);
			numel *= (uint64_t)e->shape[d];
		}
		if (rc)
			break;
		if (numel > UINT64_MAX / es)
			rc = vt_err_set(err, VT_EFORMAT, "safetensors header: tensor '%.100s': shape overflows 64 bits", e->name);
		else if (e->end < e->begin)
			rc = vt_err_set(err, VT_EFORMAT, "safetensors header: tensor '%.100s': data_offsets [%llu, %llu] end before they begin",
					e->name, (unsigned long long)e->begin, (unsigned long long)e->end);
		else if (e->end > data_size)
			rc = vt_err_set(err, VT_EFORMAT,
					"safetensors header: tensor '%.100s': data_offsets [%llu, %llu] are out of bounds: the data section has %llu bytes",
					e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
					(unsigned long long)data_size);
		else if (e->end - e->begin != numel * es)
			rc = vt_err_set(err, VT_EFORMAT,
					"safetensors header: tensor '%.100s': data_offsets [%llu, %llu] hold %llu bytes, but its dtype and shape need %llu",
					e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
					(unsigned long long)(e->end - e->begin), (unsigned long long)(numel * es));
	}
	if (rc == 0 && h->n > 1) {
		qsort(by, h->n, sizeof(*by), cmp_name);
		for (i = 1; i < h->n && rc == 0; i++)
			if (strcmp(by[i - 1]->name, by[i]->name) == 0)
				rc = vt_err_set(err, VT_EFORMAT, "safetensors header: duplicate tensor name '%.100s'", by[i]->name);
	}
	if (rc == 0 && h->nmeta > 1) {
		if (!(keys = malloc(h->nmeta * sizeof(*keys)))) {
			rc = vt_err_set(err, VT_ENOMEM, "out of memory");
		} else {
			for (i = 0; i < h->nmeta; i++)
				keys[i] = h->meta[2 * i];
			qsort(keys, h->nmeta, sizeof(*keys), cmp_str);
			for (i = 1; i < h->nmeta && rc == 0; i++)
				if (strcmp(keys[i - 1], keys[i]) == 0)
					rc = vt_err_set(err, VT_EFORMAT, "safetensors header: duplicate '__metadata__' key '%.100s'",
							keys[i]);
		}
	}
	if (rc == 0) {
		qsort(by, h->n, sizeof(*by), cmp_offsets);
		for (i = 0; i < h->n && rc == 0; i++) {
			const struct vt_st_entry *e = by[i];
			if (e->begin < pos)
				rc = vt_err_set(err, VT_EFORMAT,
						"safetensors header: tensors '%.100s' and '%.100s' overlap: data_offsets [%llu, %llu] and [%llu, %llu]",
						by[i - 1]->name, e->name, (unsigned long long)by[i - 1]->begin,
						(unsigned long long)by[i - 1]->end, (unsigned long long)e->begin,
						(unsigned long long)e->end);
			else if (e->begin > pos)
				rc = vt_err_set(err, VT_EFORMAT,
						"safetensors header: gap of %llu bytes in the data section at data offset %llu, before tensor '%.100s'",
						(unsigned long long)(e->begin - pos), (unsigned long long)pos, e->name);
			pos = e->end;
		}
	}
	if (rc == 0 && pos != data_size)
		rc = vt_err_set(err, VT_EFORMAT,
				"safetensors header: the tensors cover %llu bytes of the %llu-byte data section (%llu bytes left over at file offset %llu)",
				(unsigned long long)pos, (unsigned long long)data_size, (unsigned long long)(data_size - pos),
				(unsigned long long)(h->data_start + pos));
	free(keys);
	free(by);
	return rc;
}

int vt_st_detect(const struct vt_src *src)
{
	unsigned char b[9];
	struct vt_err err;

	if (src->size < 9 || vt_src_read(src, 0, b, 9, &err))
		return 0;
	return le64(b) >= 2 && b[8] == '{';
}

int vt_st_read_header(struct vt_st_header *h, const struct vt_src *src, struct vt_err *err)
{
	unsigned char b[8], *buf;
	struct cur c;
	uint64_t n;
	int rc;

	memset(h, 0, sizeof(*h));
	if (src->size < 8)
		return vt_err_set(err, VT_EFORMAT, "safetensors: truncated: %llu bytes, less than the 8-byte header length",
				  (unsigned long long)src->size);
	if ((rc = vt_src_read(src, 0, b, 8, err)))
		return rc;
	n = le64(b);
	if (n > VT_ST_MAX_HEADER)
		return vt_err_set(err, VT_EUNSUPPORTED, "safetensors: header of %llu bytes is over the limit of %u",
				  (unsigned long long)n, VT_ST_MAX_HEADER);
	if (n > src->size - 8)
		return vt_err_set(err, VT_EFORMAT, "safetensors: truncated: the header needs %llu bytes but %llu follow offset 8",
				  (unsigned long long)n, (unsigned long long)(src->size - 8));
	if (n < 2)
		return vt_err_set(err, VT_EFORMAT, "safetensors: header of %llu bytes cannot hold a JSON object",
				  (unsigned long long)n);
	buf = malloc((size_t)n);
	h->pool = malloc((size_t)n + 1);
	if (!buf || !h->pool) {
		free(buf);
		return vt_err_set(err, VT_ENOMEM, "out of memory for a %llu-byte safetensors header", (unsigned long long)n);
	}
	if ((rc = vt_src_read(src, 8, buf, (size_t)n, err))) {
		free(buf);
		return rc;
	}
	h->data_start = 8 + n;
	memset(&c, 0, sizeof(c));
	c.p = buf;
	c.len = (size_t)n;
	c.pool = h->pool;
	c.err = err;
	if (buf[0] != '{') {
		rc = failf(&c, VT_EFORMAT, "the header is not a JSON object (no '{')");
		goto out;
	}
	c.pos = 1;
	ws(&c);
	if (peek(&c) == '}')
		c.pos++;
	else
		for (;;) {
			const char *key;
			size_t at;
			ws(&c);
			at = c.pos;
			if ((rc = parse_string(&c, &key)) || (rc = expect(&c, ':')))
				goto out;
			if (strcmp(key, "__metadata__") == 0) {
				if (h->has_meta) {
					c.pos = at;
					rc = failf(&c, VT_EFORMAT, "second '__metadata__'");
					goto out;
				}
				h->has_meta = 1;
				rc = parse_meta(&c, h);
			} else {
				if ((rc = grow((void **)&h->t, h->n, &h->cap, sizeof(*h->t), &c)))
					goto out;
				memset(&h->t[h->n], 0, sizeof(h->t[h->n]));
				h->t[h->n].name = key;
				c.tensor = key;
				rc = parse_tensor(&c, &h->t[h->n]);
				c.tensor = NULL;
				h->n++;
			}
			if (rc || (rc = next_item(&c, '}')))
				break;
		}
	if (rc < 0)
		goto out;
	rc = 0;
	ws(&c);
	if (c.pos != c.len) {
		rc = failf(&c, VT_EFORMAT, "unexpected bytes after the JSON object");
		goto out;
	}
	rc = check_entries(h, src->size - h->data_start, err);
out:
	free(buf);
	return rc;
}

void vt_st_header_release(struct vt_st_header *h)
{
	free(h->t);
	free(h->meta);
	free(h->pool);
	memset(h, 0, sizeof(*h));
}

/* ---- writing ----------------------------------------------------------------------------- */

enum { CHUNK = 1 << 20 };

struct item {
	const struct vt_named *nt;
	int rank;
};

static int cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	if (x->rank != y->rank)
		return x->rank > y->rank ? -1 : 1; /* descending Dtype, as tensor.rs's prepare() */
	return strcmp(x->nt->name, y->nt->name);
}

/* The storage a tensor's bytes live in, and its first byte there (legacy views resolve to
 * their base). */
static const struct vt_storage *root_storage(const struct vt_tensor *t, uint64_t *byte_off)
{
	const struct vt_storage *s = t->storage;
	uint64_t es = (uint64_t)vt_dtype_info(t->dtype)->size;

	*byte_off = (uint64_t)t->offset * es;
	if (s->base) {
		*byte_off += s->base_off * (uint64_t)vt_dtype_info(s->dtype)->size;
		s = s->base;
	}
	return s;
}

/* The last element a tensor reaches, relative to its offset (numel > 0). */
static uint64_t last_elem(const struct vt_tensor *t)
{
	uint64_t m = 0;
	int d;

	for (d = 0; d < t->ndim; d++)
		m += (uint64_t)(t->size[d] - 1) * (uint64_t)t->stride[d];
	return m;
}

static int is_contiguous(const struct vt_tensor *t)
{
	int64_t want = 1;
	int d;

	for (d = t->ndim - 1; d >= 0; d--) {
		if (t->size[d] != 1 && t->stride[d] != want)
			return 0;
		want *= t->size[d];
	}
	return 1;
}

struct area {
	const struct vt_storage *s;
	uint64_t start, stop;
	const char *name;
};

static int cmp_area(const void *a, const void *b)
{
	const struct area *x = a, *y = b;

	if (x->s != y->s)
		return (uintptr_t)x->s < (uintptr_t)y->s ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return 0;
}

/* What save_file refuses: tensors whose bytes overlap (torch's _find_shared_tensors then
 * _filter_shared_not_shared: views of one storage that do not overlap are fine). */
static int check_tensors(const struct item *it, size_t n, struct vt_err *err)
{
	struct area *a = malloc((n ? n : 1) * sizeof(*a));
	size_t i, na = 0;
	int rc = 0;

	if (!a)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	for (i = 0; i < n && rc == 0; i++) {
		const struct vt_tensor *t = it[i].nt->t;
		const char *name = it[i].nt->name;
		uint64_t off, es = (uint64_t)vt_dtype_info(t->dtype)->size;
		const struct vt_storage *s;
		size_t k, len, q = 1;
		if (t->qscheme != VT_QSCHEME_NONE || t->dtype == VT_QI8 || t->dtype == VT_QU8 || t->dtype == VT_QI32)
			rc = vt_err_set(err, VT_EUNSUPPORTED, "tensor '%s' is quantized (%s): safetensors has no quantized dtypes",
					name, vt_dtype_info(t->dtype)->name);
		else if (it[i].rank < 0)
			rc = vt_err_set(err, VT_EUNSUPPORTED, "tensor '%s' is %s: vggtl writes no safetensors dtype for it", name,
					vt_dtype_info(t->dtype)->name);
		for (k = 0, len = strlen(name); k < len && rc == 0; k += q)
			if (!(q = utf8_seq((const unsigned char *)name + k, len - k)))
				rc = vt_err_set(err, VT_EUNSUPPORTED, "tensor name '%s' is not valid UTF-8", name);
		if (rc || vt_tensor_numel(t) == 0)
			continue;
		s = root_storage(t, &off);
		if (t->offset < 0 || last_elem(t) + (uint64_t)t->offset >= t->storage->numel) {
			rc = vt_err_set(err, VT_EFORMAT, "tensor '%s' runs past its storage", name);
			continue;
		}
		a[na].s = s;
		a[na].start = off;
		a[na].stop = off + (last_elem(t) + 1) * es;
		a[na].name = name;
		na++;
	}
	if (rc == 0 && na > 1) {
		size_t far = 0; /* the area reaching furthest so far in this storage */
		qsort(a, na, sizeof(*a), cmp_area);
		for (i = 1; i < na && rc == 0; i++) {
			if (a[i].s != a[far].s) {
				far = i;
				continue;
			}
			if (a[i].start < a[far].stop)
				rc = vt_err_set(err, VT_EUNSUPPORTED,
						"tensors '%s' and '%s' share memory (storage '%s'): safetensors cannot store shared tensors, "
						"as safetensors.torch.save_file refuses them; clone one, or write a .pth",
						a[far].name, a[i].name, a[i].s->key ? a[i].s->key : "?");
			if (a[i].stop > a[far].stop)
				far = i;
		}
	}
	free(a);
	return rc;
}

/* A JSON string as serde_json writes it: ", \ and control characters escaped, nothing else. */
static void json_str(struct sbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	sb_put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char esc[7] = "\\u00";
		if (ch == '"' || ch == '\\') {
			esc[1] = (char)ch;
			sb_put(b, esc, 2);
		} else if (ch < 0x20) {
			const char *short_esc = ch == '\b' ? "\\b" : ch == '\f' ? "\\f" : ch == '\n' ? "\\n" :
						ch == '\r' ? "\\r" : ch == '\t' ? "\\t" : NULL;
			if (short_esc) {
				sb_put(b, short_esc, 2);
			} else {
				esc[4] = hex[ch >> 4];
				esc[5] = hex[ch & 15];
				sb_put(b, esc, 6);
			}
		} else {
			sb_put(b, s, 1);
		}
	}
	sb_put(b, "\"", 1);
}

static int flush(struct vt_out *out, unsigned char *chunk, size_t *used, struct vt_err *err)
{
	int rc = *used ? vt_out_write(out, chunk, *used, err) : 0;

	*used = 0;
	return rc;
}

/* Writes t's elements in C order from data, which holds its storage from element base on. */
static int gather(struct vt_out *out, const unsigned char *data, int64_t base, const struct vt_tensor *t,
		  struct vt_err *err)
{
	size_t es = (size_t)vt_dtype_info(t->dtype)->size, used = 0;
	int nd = t->ndim, d, rc = 0;
	int64_t idx[VT_MAX_DIMS] = { 0 };
	int64_t inner = nd ? t->size[nd - 1] : 1, istride = nd ? t->stride[nd - 1] : 1, j;
	uint64_t outer = vt_tensor_numel(t) / (uint64_t)inner, o;
	unsigned char *chunk = malloc(CHUNK);

	if (!chunk)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	for (o = 0; o < outer && rc == 0; o++) {
		int64_t at = t->offset - base;
		for (d = 0; d < nd - 1; d++)
			at += idx[d] * t->stride[d];
		if (istride == 1) { /* a run of inner elements */
			const unsigned char *p = data + (size_t)at * es;
			size_t left = (size_t)inner * es;
			while (left && rc == 0) {
				size_t k = left < CHUNK - used ? left : CHUNK - used;
				memcpy(chunk + used, p, k);
				used += k;
				p += k;
				left -= k;
				if (used == CHUNK)
					rc = flush(out, chunk, &used, err);
			}
		} else {
			for (j = 0; j < inner && rc == 0; j++) {
				memcpy(chunk + used, data + (size_t)(at + j * istride) * es, es);
				used += es;
				if (used == CHUNK) /* CHUNK is a multiple of every element size */
					rc = flush(out, chunk, &used, err);
			}
		}
		for (d = nd - 2; d >= 0; d--) { /* next index, last outer dimension fastest */
			if (++idx[d] < t->size[d])
				break;
			idx[d] = 0;
		}
	}
	if (rc == 0)
		rc = flush(out, chunk, &used, err);
	free(chunk);
	return rc;
}

static int out_put(void *out, const void *p, size_t n, struct vt_err *err)
{
	return vt_out_write(out, p, n, err);
}

static int write_tensor(struct vt_out *out, const struct vt_src *src, const struct vt_tensor *t, struct vt_err *err)
{
	const struct vt_storage *s = t->storage;
	uint64_t es = (uint64_t)vt_dtype_info(t->dtype)->size, numel = vt_tensor_numel(t);
	int deflated = s->src == VT_STORAGE_FILE && s->entry && s->entry->method != 0;

	void *buf = NULL;
	int rc;

	if (numel == 0)
		return 0;
	if (s->src == VT_STORAGE_FILE && !deflated) {
		/* the bytes the tensor spans, read from the file: whole when contiguous, else gathered */
		uint64_t lo = (uint64_t)t->offset * es, span = (last_elem(t) + 1) * es;
		if (s->offset > src->size || lo > src->size - s->offset || span > src->size - s->offset - lo)
			return vt_err_set(err, VT_EFORMAT, "storage '%s' runs past the end of '%s'", s->key, src->name);
		if (is_contiguous(t))
			return vt_out_copy(out, src, s->offset + lo, numel * es, NULL, err);
		if (span > SIZE_MAX / 2 || !(buf = malloc((size_t)span)))
			return vt_err_set(err, VT_ENOMEM, "out of memory for %llu bytes of storage '%s'",
					  (unsigned long long)span, s->key);
		rc = vt_src_read(src, s->offset + lo, buf, (size_t)span, err);
		if (rc == 0)
			rc = gather(out, buf, t->offset, t, err);
		free(buf);
		return rc;
	}
	if (s->src == VT_STORAGE_MEM) {
		if (is_contiguous(t))
			return vt_out_write(out, (const unsigned char *)s->mem + t->offset * es, (size_t)(numel * es), err);
		return gather(out, s->mem, 0, t, err);
	}
	/* generated, deflated or cast: streamed when contiguous, else the whole storage in memory */
	if (is_contiguous(t))
		return vt_storage_stream(s, src, (uint64_t)t->offset, numel, out_put, out, err);
	if ((rc = vt_storage_read(s, src, &buf, err)))
		return rc;
	rc = gather(out, buf, 0, t, err);
	free(buf);
	return rc;
}

int vt_st_write(const char *path, const struct vt_src *src, const struct vt_named *t, size_t n,
		struct vt_err *err)
{
	struct item *it = malloc((n ? n : 1) * sizeof(*it));
	struct sbuf b = { 0 };
	struct vt_out out;
	unsigned char len8[8];
	uint64_t off = 0, hlen;
	size_t i;
	int k, rc;

	if (!it)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		it[i].nt = &t[i];
		it[i].rank = st_rank(t[i].t->dtype);
	}
	if ((rc = check_tensors(it, n, err)))
		goto out;
	qsort(it, n, sizeof(*it), cmp_item);
	for (i = 1; i < n; i++)
		if (strcmp(it[i - 1].nt->name, it[i].nt->name) == 0) {
			rc = vt_err_set(err, VT_EUSAGE, "two tensors are named '%s'", it[i].nt->name);
			goto out;
		}
	sb_puts(&b, "{\"__metadata__\":{\"format\":\"pt\"}");
	for (i = 0; i < n; i++) {
		const struct vt_tensor *x = it[i].nt->t;
		uint64_t nb = vt_tensor_numel(x) * (uint64_t)vt_dtype_info(x->dtype)->size;
		sb_puts(&b, ",");
		json_str(&b, it[i].nt->name);
		sb_printf(&b, ":{\"dtype\":\"%s\",\"shape\":[", st_dtypes[it[i].rank].name);
		for (k = 0; k < x->ndim; k++)
			sb_printf(&b, "%s%lld", k ? "," : "", (long long)x->size[k]);
		sb_printf(&b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + nb));
		off += nb;
	}
	sb_puts(&b, "}");
	while (b.len % 8) /* so that the data section starts 8-byte aligned */
		sb_put(&b, " ", 1);
	if (b.oom) {
		rc = vt_err_set(err, VT_ENOMEM, "out of memory for the safetensors header");
		goto out;
	}
	if (b.len > VT_ST_MAX_HEADER) {
		rc = vt_err_set(err, VT_EUNSUPPORTED, "safetensors header of %zu bytes would be over the limit of %u",
				b.len, VT_ST_MAX_HEADER);
		goto out;
	}
	hlen = b.len;
	for (k = 0; k < 8; k++)
		len8[k] = (unsigned char)(hlen >> (8 * k));
	if ((rc = vt_out_open(&out, path, err)))
		goto out;
	rc = vt_out_write(&out, len8, 8, err);
	if (rc == 0)
		rc = vt_out_write(&out, b.s, b.len, err);
	for (i = 0; i < n && rc == 0; i++)
		if ((rc = write_tensor(&out, src, it[i].nt->t, err)))
			vt_err_prefix(err, "tensor '%s'", it[i].nt->name);
	if (rc == 0)
		rc = vt_out_commit(&out, err);
	else
		vt_out_abort(&out);
out:
	free(b.s);
	free(it);
	return rc;
}
