/* test_safetensors.c - safetensors files (src/safetensors.c and its place in src/pth.c).
 *
 * Fixtures are built here byte by byte from the format (8-byte little-endian header length,
 * JSON header, data section): an empty file with only __metadata__, 0-dim and zero-size
 * tensors, every dtype with keys out of offset order, escapes and whitespace.  Tested: what
 * vt_pth_open_src makes of them (a dict of contiguous file-backed tensors); each header error
 * refused with its message; every fixture truncated at every length refused cleanly; the
 * writer's exact header (save_file's layout), sort order, gathering of strided and offset
 * tensors, and its refusals (shared, quantized, complex).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "vt_pth.h"
#include "vt_safetensors.h"

static char tmpdir[256];

/* A file: the header length, json, then dlen bytes of data. */
static unsigned char *mk(const char *json, const void *data, size_t dlen, size_t *len)
{
	size_t n = strlen(json);
	unsigned char *b = malloc(8 + n + dlen + 1);
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)n >> (8 * i));
	memcpy(b + 8, json, n);
	if (dlen)
		memcpy(b + 8 + n, data, dlen);
	*len = 8 + n + dlen;
	return b;
}

static int open_mem(struct vt_pth *pth, const unsigned char *b, size_t len, struct vt_err *err)
{
	struct vt_src src;

	vt_src_mem(&src, b, len, "mem");
	return vt_pth_open_src(pth, &src, err);
}

static const struct vt_tensor *get(const struct vt_pth *pth, const char *name)
{
	return vt_pk_tensor(vt_pk_dict_get(pth->root, name));
}

/* ---- valid files ------------------------------------------------------------------------ */

static void test_empty(void)
{
	size_t len;
	unsigned char *b = mk("{\"__metadata__\":{\"format\":\"pt\",\"k\\n\":\"v\\u00e9\"}}  ", NULL, 0, &len);
	struct vt_src src;
	struct vt_st_header h;
	struct vt_pth pth;
	struct vt_err err = { 0, "" };
	int rc;

	vt_src_mem(&src, b, len, "mem");
	CHECK(vt_st_detect(&src), "empty: detected by content");
	rc = vt_st_read_header(&h, &src, &err);
	CHECK(rc == 0 && h.n == 0 && h.has_meta && h.nmeta == 2 && strcmp(h.meta[0], "format") == 0 &&
		      strcmp(h.meta[1], "pt") == 0 && strcmp(h.meta[2], "k\n") == 0 && strcmp(h.meta[3], "v\xc3\xa9") == 0 &&
		      h.data_start == len,
	      "empty: only __metadata__, escapes decoded (%s)", err.msg);
	vt_st_header_release(&h);
	rc = open_mem(&pth, b, len, &err);
	CHECK(rc == 0 && pth.is_safetensors && !pth.is_zip && pth.root && pth.root->kind == VT_PK_DICT &&
		      pth.root->u.dict.n == 0 && pth.nstorages == 0,
	      "empty: opens as an empty dict (%s)", err.msg);
	vt_pth_close(&pth);
	free(b);
	b = mk("{}", NULL, 0, &len);
	CHECK(open_mem(&pth, b, len, &err) == 0 && pth.root->u.dict.n == 0, "'{}' alone opens (%s)", err.msg);
	vt_pth_close(&pth);
	free(b);
	b = mk("{\"__metadata__\":null}", NULL, 0, &len);
	CHECK(open_mem(&pth, b, len, &err) == 0, "__metadata__ null is allowed (%s)", err.msg);
	vt_pth_close(&pth);
	free(b);
}

static void test_scalar_and_empty_tensors(void)
{
	static const float v = 2.5f;
	size_t len;
	unsigned char *b = mk("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
			      "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
			      "\"e\":{\"dtype\":\"I64\",\"shape\":[2,0,5],\"data_offsets\":[0,0]}}",
			      &v, 4, &len);
	struct vt_pth pth;
	struct vt_err err = { 0, "" };
	const struct vt_tensor *s, *z, *e;
	int rc = open_mem(&pth, b, len, &err);

	CHECK(rc == 0, "0-dim and zero-size tensors open (%s)", err.msg);
	if (rc == 0) {
		float got = 0;
		s = get(&pth, "s");
		z = get(&pth, "z");
		e = get(&pth, "e");
		CHECK(s && s->ndim == 0 && vt_tensor_numel(s) == 1 && s->storage->numel == 1 &&
			      s->storage->offset == len - 4 && vt_src_read(&pth.src, s->storage->offset, &got, 4, &err) == 0 &&
			      got == 2.5f,
		      "0-dim: one element, at its bytes");
		CHECK(z && z->ndim == 2 && z->size[0] == 0 && z->size[1] == 3 && z->stride[0] == 3 && z->stride[1] == 1 &&
			      z->storage->numel == 0,
		      "zero-size [0, 3]: strides (3, 1) as torch's, empty storage");
		CHECK(e && e->ndim == 3 && e->stride[0] == 5 && e->stride[1] == 5 && e->stride[2] == 1 && e->dtype == VT_I64,
		      "zero-size [2, 0, 5]: strides (5, 5, 1)");
		CHECK(pth.nstorages == 3 && pth.root->u.dict.n == 3 && vt_pk_is_str(pth.root->u.dict.keys[0], "z") &&
			      vt_pk_is_str(pth.root->u.dict.keys[2], "e"),
		      "one storage per tensor, dict in header order");
		CHECK(vt_pth_verify(&pth, &err) == 0, "verify passes");
	}
	vt_pth_close(&pth);
	free(b);
}

static const struct {
	const char *st;
	int dtype, size;
} every[] = {
	{ "F64", VT_F64, 8 }, { "F32", VT_F32, 4 }, { "F16", VT_F16, 2 }, { "BF16", VT_BF16, 2 }, { "I64", VT_I64, 8 },
	{ "I32", VT_I32, 4 }, { "I16", VT_I16, 2 }, { "I8", VT_I8, 1 }, { "U8", VT_U8, 1 }, { "BOOL", VT_BOOL, 1 },
};
enum { N_EVERY = sizeof(every) / sizeof(every[0]) };

/* Every dtype, shape [2, 3]; keys in reverse order of their data. */
static unsigned char *every_dtype(size_t *len)
{
	char json[4096];
	unsigned char data[1024];
	size_t at = 0, pos = 0, i, offs[N_EVERY];

	for (i = 0; i < N_EVERY; i++) {
		size_t k;
		offs[i] = pos;
		for (k = 0; k < 6u * every[i].size; k++)
			data[pos + k] = (unsigned char)(i * 16 + k);
		pos += 6u * every[i].size;
	}
	at += (size_t)snprintf(json, sizeof(json), "{\n  \"__metadata__\" : { \"format\" : \"pt\" }");
	for (i = N_EVERY; i-- > 0;)
		at += (size_t)snprintf(json + at, sizeof(json) - at,
				       ",\r\n\t\"t_%s\": {\"data_offsets\": [%zu, %zu], \"shape\" : [ 2 , 3 ], \"dtype\": \"%s\"}",
				       every[i].st, offs[i], offs[i] + 6u * every[i].size, every[i].st);
	snprintf(json + at, sizeof(json) - at, "\n}        ");
	return mk(json, data, pos, len);
}

static void test_every_dtype(void)
{
	size_t len, i;
	unsigned char *b = every_dtype(&len);
	struct vt_pth pth;
	struct vt_err err = { 0, "" };
	int rc = open_mem(&pth, b, len, &err);

	CHECK(rc == 0, "every dtype, keys out of offset order, whitespace and padding: opens (%s)", err.msg);
	for (i = 0; rc == 0 && i < N_EVERY; i++) {
		char name[32];
		const struct vt_tensor *t;
		void *bytes = NULL;
		int ok, k;
		snprintf(name, sizeof(name), "t_%s", every[i].st);
		t = get(&pth, name);
		ok = t && t->dtype == every[i].dtype && t->storage->dtype == every[i].dtype && t->ndim == 2 &&
		     t->size[0] == 2 && t->size[1] == 3 && t->stride[0] == 3 && t->stride[1] == 1 && t->offset == 0 &&
		     t->storage->src == VT_STORAGE_FILE && !t->storage->entry && t->storage->resolved &&
		     t->storage->numel == 6 && strcmp(t->storage->key, name) == 0 &&
		     vt_storage_read(t->storage, &pth.src, &bytes, &err) == 0;
		for (k = 0; ok && k < 6 * every[i].size; k++)
			ok = ((unsigned char *)bytes)[k] == (unsigned char)(i * 16 + (size_t)k);
		free(bytes);
		CHECK(ok, "%s is %s [2, 3], contiguous, its bytes where data_offsets say", every[i].st,
		      vt_dtype_info(every[i].dtype)->name);
	}
	CHECK(rc == 0 && vt_pk_is_str(pth.root->u.dict.keys[0], "t_BOOL") && pth.nstorages == N_EVERY,
	      "dict in header key order");
	vt_pth_close(&pth);
	free(b);
}

static void test_names(void)
{
	static const unsigned char one = 1;
	size_t len;
	unsigned char *b = mk("{\"a\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\t\xc3\xa9\":{\"dtype\":\"U8\",\"shape\":[1],"
			      "\"data_offsets\":[0,1]}}",
			      &one, 1, &len);
	struct vt_pth pth;
	struct vt_err err = { 0, "" };
	int rc = open_mem(&pth, b, len, &err);

	CHECK(rc == 0 && get(&pth, "a\xc3\xa9\xf0\x9f\x98\x80\"\\/\t\xc3\xa9"),
	      "names: \\u escapes, surrogate pairs, short escapes and raw UTF-8 decoded (%s)", err.msg);
	vt_pth_close(&pth);
	free(b);
}

/* ---- refused headers --------------------------------------------------------------------- */

static const struct bad {
	const char *what, *json;
	size_t dlen;
	const char *msg; /* a part of the message */
} bad[] = {
	{ "not JSON: missing value", "{\"a\":}", 0, "expected '{'" },
	{ "not JSON: missing colon", "{\"a\" {}}", 0, "expected ':'" },
	{ "not JSON: bare comma", "{,}", 0, "expected a string" },
	{ "not JSON: trailing comma", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},}", 1, "expected a string" },
	{ "not JSON: junk after the object", "{} x", 0, "unexpected bytes after the JSON object" },
	{ "not JSON: unterminated", "{\"a", 0, "unterminated string" },
	{ "not JSON: ends early", "{\"a\":{\"dtype\":\"U8\"", 0, "header ends inside an object" },
	{ "not JSON: raw control character", "{\"a\tb\":{}}", 0, "control character 0x09" },
	{ "not JSON: invalid UTF-8", "{\"a\xff\":{}}", 0, "invalid UTF-8" },
	{ "not JSON: overlong UTF-8", "{\"a\xc0\xaf\":{}}", 0, "invalid UTF-8" },
	{ "not JSON: unknown escape", "{\"a\\x\":{}}", 0, "unknown escape" },
	{ "not JSON: lone low surrogate", "{\"a\\udc00\":{}}", 0, "lone low surrogate" },
	{ "not JSON: lone high surrogate", "{\"a\\ud800x\":{}}", 0, "without its low half" },
	{ "not JSON: bad hex", "{\"a\\u12g4\":{}}", 0, "bad hex digit" },
	{ "NUL escape", "{\"a\\u0000\":{}}", 0, "\\u0000 in a string is not supported" },
	{ "leading zero", "{\"a\":{\"dtype\":\"U8\",\"shape\":[01],\"data_offsets\":[0,1]}}", 1, "leading zero" },
	{ "fraction", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1]}}", 1, "is not an integer" },
	{ "exponent", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1e0]}}", 1, "is not an integer" },
	{ "negative", "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1, "is negative" },
	{ "number too big", "{\"a\":{\"dtype\":\"U8\",\"shape\":[18446744073709551616],\"data_offsets\":[0,1]}}", 1,
	  "does not fit 64 bits" },
	{ "dimension over int64", "{\"a\":{\"dtype\":\"U8\",\"shape\":[9223372036854775808],\"data_offsets\":[0,1]}}", 1,
	  "does not fit 63 bits" },
	{ "string for a number", "{\"a\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}", 1, "expected a dimension" },
	{ "unknown dtype", "{\"a\":{\"dtype\":\"F99\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "tensor 'a': unknown dtype 'F99'" },
	{ "unsupported dtype", "{\"a\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, "dtype 'U16' has no torch 1.13 type" },
	{ "dtype not a string", "{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "expected a string" },
	{ "duplicate tensor", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
			      "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, "duplicate tensor name 'a'" },
	{ "duplicate __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "second '__metadata__'" },
	{ "duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate '__metadata__' key 'k'" },
	{ "duplicate field", "{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "tensor 'a': second 'dtype'" },
	{ "unknown field", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":1}}", 1, "tensor 'a': unknown field 'x'" },
	{ "missing field", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 0, "tensor 'a': entry has no 'data_offsets'" },
	{ "metadata value not a string", "{\"__metadata__\":{\"k\":1}}", 0, "value of 'k' is not a string" },
	{ "metadata not an object", "{\"__metadata__\":[]}", 0, "expected '{'" },
	{ "too many dimensions", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
	  "more than 16 dimensions" },
	{ "three offsets", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1, "holds more than [begin, end]" },
	{ "one offset", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1]}}", 1, "must be [begin, end]" },
	{ "offsets out of bounds", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
	  "tensor 'a': data_offsets [0, 8] are out of bounds: the data section has 4 bytes" },
	{ "offsets backwards", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,1]}}", 2, "end before they begin" },
	{ "size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
	  "tensor 'a': data_offsets [0, 4] hold 4 bytes, but its dtype and shape need 8" },
	{ "shape overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 4,
	  "tensor 'a': shape overflows 64 bits" },
	{ "overlap", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
		     "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6,
	  "tensors 'a' and 'b' overlap: data_offsets [0, 4] and [2, 6]" },
	{ "overlap by a zero-size tensor inside another", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
							  "\"b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]}}", 4, "overlap" },
	{ "gap", "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]},"
		 "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 5,
	  "gap of 1 bytes in the data section at data offset 2, before tensor 'b'" },
	{ "gap at the start", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}", 3, "gap of 1 bytes" },
	{ "bytes left over", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 3,
	  "the tensors cover 2 bytes of the 3-byte data section" },
	{ "data but no tensors", "{}", 8, "cover 0 bytes of the 8-byte data section" },
};
enum { N_BAD = sizeof(bad) / sizeof(bad[0]) };

static void test_bad(void)
{
	static const unsigned char zeros[16];
	size_t i, len;

	for (i = 0; i < N_BAD; i++) {
		unsigned char *b = mk(bad[i].json, zeros, bad[i].dlen, &len);
		struct vt_pth pth;
		struct vt_err err = { 0, "" };
		int rc = open_mem(&pth, b, len, &err);
		CHECK(rc < 0 && strstr(err.msg, bad[i].msg) && (strstr(err.msg, "offset") || strstr(err.msg, "'")),
		      "refused: %s: '%s'", bad[i].what, err.msg);
		vt_pth_close(&pth);
		free(b);
	}
}

static void test_bad_lengths(void)
{
	unsigned char b[32] = { 0 };
	struct vt_src src;
	struct vt_st_header h;
	struct vt_pth pth;
	struct vt_err err = { 0, "" };
	uint64_t n = 100000001;
	int i, rc;

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)(n >> (8 * i));
	b[8] = '{';
	vt_src_mem(&src, b, sizeof(b), "mem");
	rc = vt_pth_open_src(&pth, &src, &err);
	CHECK(rc == VT_EUNSUPPORTED && strstr(err.msg, "header of 100000001 bytes is over the limit of 100000000"),
	      "header over 100 MB refused before anything is allocated: '%s'", err.msg);
	vt_pth_close(&pth);
	b[0] = 30;
	memset(b + 1, 0, 7);
	rc = vt_pth_open_src(&pth, &src, &err);
	CHECK(rc == VT_EFORMAT && strstr(err.msg, "truncated: the header needs 30 bytes but 24 follow offset 8"),
	      "header longer than the file: '%s'", err.msg);
	vt_pth_close(&pth);
	memcpy(b, "\x03\0\0\0\0\0\0\0 {}", 11);
	vt_src_mem(&src, b, 11, "mem");
	CHECK(!vt_st_detect(&src), "a header not starting with '{' is not taken for safetensors");
	rc = vt_st_read_header(&h, &src, &err);
	CHECK(rc == VT_EFORMAT && strstr(err.msg, "not a JSON object"), "read anyway: '%s'", err.msg);
	vt_st_header_release(&h);
	memcpy(b, "\x01\0\0\0\0\0\0\0{", 9);
	vt_src_mem(&src, b, 9, "mem");
	CHECK(!vt_st_detect(&src), "N = 1 is not taken for safetensors");
	rc = vt_st_read_header(&h, &src, &err);
	CHECK(rc == VT_EFORMAT && strstr(err.msg, "cannot hold a JSON object"), "read anyway: '%s'", err.msg);
	vt_st_header_release(&h);
}

/* Every prefix of every valid fixture fails cleanly: a negative code and a message. */
static void test_truncations(void)
{
	static const float v = 1;
	unsigned char *fx[4];
	size_t lens[4], f, k;

	fx[0] = mk("{\"__metadata__\":{\"format\":\"pt\"}}      ", NULL, 0, &lens[0]);
	fx[1] = mk("{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
		   "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
		   &v, 4, &lens[1]);
	fx[2] = every_dtype(&lens[2]);
	fx[3] = mk("{\"a\\u00e9\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", &v, 1, &lens[3]);
	for (f = 0; f < 4; f++) {
		size_t good = 0;
		struct vt_pth pth;
		struct vt_err err = { 0, "" };
		int rc = open_mem(&pth, fx[f], lens[f], &err);
		CHECK(rc == 0, "fixture %zu opens whole (%s)", f, err.msg);
		vt_pth_close(&pth);
		for (k = 0; k < lens[f]; k++) {
			unsigned char *cut = malloc(k ? k : 1);
			memcpy(cut, fx[f], k);
			err.msg[0] = '\0';
			rc = open_mem(&pth, cut, k, &err);
			good += rc < 0 && err.msg[0];
			vt_pth_close(&pth);
			free(cut);
		}
		CHECK(good == lens[f], "fixture %zu: all %zu truncations refused with a message", f, lens[f]);
		free(fx[f]);
	}
}

/* ---- the writer ---------------------------------------------------------------------------- */

static struct vt_storage mem_storage(int dtype, void *mem, uint64_t numel, const char *key)
{
	struct vt_storage s;

	memset(&s, 0, sizeof(s));
	s.key = (char *)key;
	s.dtype = dtype;
	s.numel = numel;
	s.src = VT_STORAGE_MEM;
	s.mem = mem;
	s.resolved = 1;
	return s;
}

static struct vt_tensor tensor(struct vt_storage *s, int ndim, const int64_t *size, const int64_t *stride, int64_t off)
{
	struct vt_tensor t;
	int d;

	memset(&t, 0, sizeof(t));
	t.storage = s;
	t.dtype = s->dtype;
	t.ndim = ndim;
	for (d = 0; d < ndim; d++) {
		t.size[d] = size[d];
		t.stride[d] = stride[d];
	}
	t.offset = off;
	return t;
}

static void test_write_exact(void)
{
	/* tensor.rs's test_serialization tensor, with save_pretrained's metadata */
	static const char want[] = "{\"__metadata__\":{\"format\":\"pt\"},\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],"
				   "\"data_offsets\":[0,24]}}";
	float v[6] = { 0, 1, 2, 3, 4, 5 };
	struct vt_storage s = mem_storage(VT_F32, v, 6, "0");
	const int64_t size[] = { 1, 2, 3 }, stride[] = { 6, 3, 1 };
	struct vt_tensor t = tensor(&s, 3, size, stride, 0);
	struct vt_named nt = { "attn.0", &t };
	struct vt_err err = { 0, "" };
	char path[512];
	unsigned char *got;
	size_t len, hl = (sizeof(want) - 1 + 7) / 8 * 8, k;
	int rc, ok;

	snprintf(path, sizeof(path), "%s/exact.safetensors", tmpdir);
	rc = vt_st_write(path, NULL, &nt, 1, &err);
	got = harness_slurp(path, &len);
	ok = rc == 0 && got && len == 8 + hl + 24 && got[0] == hl && !got[1] && memcmp(got + 8, want, sizeof(want) - 1) == 0 &&
	     memcmp(got + 8 + hl, v, 24) == 0;
	for (k = sizeof(want) - 1; ok && k < hl; k++)
		ok = got[8 + k] == ' ';
	CHECK(ok, "writer: save_file's bytes for tensor.rs's example (%zu-byte header, space-padded) (%s)", hl, err.msg);
	free(got);
	unlink(path);
}

static void test_write_order_and_gather(void)
{
	static const char *const want_order[] = { "z_i64", "a_f64", "a_f32", "b_f32", "t", "v", "i32", "bf", "h", "i16",
						  "i8", "u8", "bool" };
	enum { NW = sizeof(want_order) / sizeof(want_order[0]) };
	unsigned char raw[13][48];
	float tr[12], big[20];
	struct vt_storage st[13];
	struct vt_tensor t[13];
	struct vt_named nt[13];
	const int64_t one[] = { 2 }, s1[] = { 1 }, tsz[] = { 3, 4 }, tst[] = { 1, 3 }, vsz[] = { 2, 3 }, vst[] = { 3, 1 };
	static const struct {
		const char *name;
		int dtype;
	} small[] = { { "bool", VT_BOOL }, { "u8", VT_U8 }, { "i8", VT_I8 }, { "i16", VT_I16 }, { "h", VT_F16 },
		      { "bf", VT_BF16 }, { "i32", VT_I32 }, { "b_f32", VT_F32 }, { "a_f32", VT_F32 }, { "a_f64", VT_F64 },
		      { "z_i64", VT_I64 } };
	struct vt_pth pth;
	struct vt_err err = { 0, "" };
	char path[512];
	size_t i, k;
	int rc, ok;

	for (i = 0; i < 11; i++) {
		for (k = 0; k < sizeof(raw[i]); k++)
			raw[i][k] = (unsigned char)(i * 7 + k);
		st[i] = mem_storage(small[i].dtype, raw[i], 2, small[i].name);
		t[i] = tensor(&st[i], 1, one, s1, 0);
		nt[i].name = small[i].name;
		nt[i].t = &t[i];
	}
	for (k = 0; k < 12; k++)
		tr[k] = (float)k;
	for (k = 0; k < 20; k++)
		big[k] = (float)k * 10;
	st[11] = mem_storage(VT_F32, tr, 12, "tr");
	t[11] = tensor(&st[11], 2, tsz, tst, 0); /* a transposed (4, 3) */
	nt[11].name = "t";
	nt[11].t = &t[11];
	st[12] = mem_storage(VT_F32, big, 20, "big");
	t[12] = tensor(&st[12], 2, vsz, vst, 5); /* big[5:11].view(2, 3) */
	nt[12].name = "v";
	nt[12].t = &t[12];
	snprintf(path, sizeof(path), "%s/order.safetensors", tmpdir);
	rc = vt_st_write(path, NULL, nt, 13, &err);
	CHECK(rc == 0, "writer: 13 tensors of every dtype, strided and offset (%s)", err.msg);
	rc = rc ? rc : vt_pth_open(&pth, path, &err);
	CHECK(rc == 0 && pth.root->u.dict.n == NW, "written file opens (%s)", err.msg);
	if (rc)
		return;
	for (i = 0, ok = 1; i < NW; i++)
		ok &= vt_pk_is_str(pth.root->u.dict.keys[i], want_order[i]);
	CHECK(ok, "header order: descending safetensors Dtype (I64 F64 F32 I32 BF16 F16 I16 I8 U8 BOOL), then name");
	{
		const struct vt_tensor *x = get(&pth, "t"), *y = get(&pth, "v");
		float a[12], b[6];
		ok = x && y && vt_src_read(&pth.src, x->storage->offset, a, sizeof(a), &err) == 0 &&
		     vt_src_read(&pth.src, y->storage->offset, b, sizeof(b), &err) == 0;
		for (k = 0; ok && k < 12; k++)
			ok = a[k] == (float)((k % 4) * 3 + k / 4);
		for (k = 0; ok && k < 6; k++)
			ok = b[k] == (float)(k + 5) * 10;
		CHECK(ok, "strided and offset tensors gathered into C order");
	}
	for (i = 0, ok = 1; i < 11; i++) {
		const struct vt_tensor *x = get(&pth, small[i].name);
		unsigned char got[16];
		size_t nb = 2u * (size_t)vt_dtype_info(small[i].dtype)->size;
		ok &= x && x->dtype == small[i].dtype && vt_src_read(&pth.src, x->storage->offset, got, nb, &err) == 0 &&
		      memcmp(got, raw[i], nb) == 0;
	}
	CHECK(ok, "every dtype's bytes kept");
	CHECK(pth.src.size >= 8 && (get(&pth, "z_i64")->storage->offset % 8) == 0, "data section 8-byte aligned");
	vt_pth_close(&pth);
	unlink(path);
}

static void test_write_refusals(void)
{
	float v[8] = { 0 };
	struct vt_storage s = mem_storage(VT_F32, v, 8, "shared"), q = mem_storage(VT_QI8, v, 4, "q"),
			  c = mem_storage(VT_C64, v, 4, "c");
	const int64_t four[] = { 4 }, two[] = { 2 }, s1[] = { 1 };
	struct vt_tensor a = tensor(&s, 1, four, s1, 0), b = tensor(&s, 1, two, s1, 3), d = tensor(&s, 1, four, s1, 4),
			 tq = tensor(&q, 1, four, s1, 0), tc = tensor(&c, 1, two, s1, 0), past = tensor(&s, 1, four, s1, 6);
	struct vt_named shared[] = { { "a", &a }, { "b", &b } }, disjoint[] = { { "a", &a }, { "d", &d } };
	struct vt_named nq = { "q", &tq }, nc = { "c", &tc }, np = { "p", &past };
	struct vt_named dup[] = { { "a", &a }, { "a", &d } };
	struct vt_err err = { 0, "" };
	char path[512];
	int rc;

	snprintf(path, sizeof(path), "%s/refused.safetensors", tmpdir);
	rc = vt_st_write(path, NULL, shared, 2, &err);
	CHECK(rc == VT_EUNSUPPORTED && strstr(err.msg, "tensors 'a' and 'b' share memory") &&
		      strstr(err.msg, "save_file") && access(path, F_OK) != 0,
	      "overlapping views of one storage refused, nothing written: '%s'", err.msg);
	rc = vt_st_write(path, NULL, disjoint, 2, &err);
	CHECK(rc == 0, "disjoint views of one storage written (as save_file does) (%s)", err.msg);
	unlink(path);
	rc = vt_st_write(path, NULL, &nq, 1, &err);
	CHECK(rc == VT_EUNSUPPORTED && strstr(err.msg, "'q' is quantized (qint8)"), "quantized refused: '%s'", err.msg);
	rc = vt_st_write(path, NULL, &nc, 1, &err);
	CHECK(rc == VT_EUNSUPPORTED && strstr(err.msg, "'c' is complex64"), "complex refused: '%s'", err.msg);
	rc = vt_st_write(path, NULL, &np, 1, &err);
	CHECK(rc < 0 && strstr(err.msg, "runs past its storage"), "out-of-storage tensor refused: '%s'", err.msg);
	rc = vt_st_write(path, NULL, dup, 2, &err);
	CHECK(rc < 0 && strstr(err.msg, "two tensors are named 'a'"), "duplicate names refused: '%s'", err.msg);
	CHECK(access(path, F_OK) != 0, "no file left behind by the refusals");
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/vt_test_st.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_empty();
	test_scalar_and_empty_tensors();
	test_every_dtype();
	test_names();
	test_bad();
	test_bad_lengths();
	test_truncations();
	test_write_exact();
	test_write_order_and_gather();
	test_write_refusals();
	rmdir(tmpdir);
	return harness_done();
}
