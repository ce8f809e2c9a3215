/* test_pickle.c - the unpickler VM (src/pickle.c) and the emitter (src/pickle_emit.c).
 *
 * Known answers for every supported opcode (the list at the top of pickle.c), the refusals
 * (unknown and text opcodes, undefined or huge memo indices, STOP with a wrong stack, GLOBALs
 * nobody allowed, lengths longer than the input), inputs built to exhaust memory or depth, and
 * the emitter against the bytes CPython's pickle.dumps(x, 2) writes (computed once with
 * /usr/bin/python3 and kept in the tables below or in tests/fixtures/pkl/).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vt_pickle.h"

static const char *fixtures = "tests/fixtures";

/* A pickle given as a C string literal (embedded NULs allowed). */
#define P(s) (const unsigned char *)(s), sizeof(s) - 1

/* ---- test hooks --------------------------------------------------------------------------- */

enum { TAG_ODICT = 1, TAG_FUNC = 2, TAG_CLS = 3 };
static int builds_seen;

static int allow_some(void *ctx, const char *module, const char *name, struct vt_err *err)
{
	(void)ctx;
	if (strcmp(module, "collections") == 0 && strcmp(name, "OrderedDict") == 0)
		return TAG_ODICT;
	if (strcmp(module, "t") == 0 && strcmp(name, "f") == 0)
		return TAG_FUNC;
	if (strcmp(module, "t") == 0 && strcmp(name, "C") == 0)
		return TAG_CLS;
	return vt_err_set(err, VT_EUNSAFE, "test: global '%s.%s' refused", module, name);
}

static int allow_nothing(void *ctx, const char *module, const char *name, struct vt_err *err)
{
	(void)ctx;
	return vt_err_set(err, VT_EUNSAFE, "global '%s.%s' is not allowed", module, name);
}

static int pers_load(void *ctx, struct vt_unpickler *u, struct vt_pk *pid, struct vt_pk **out,
		     struct vt_err *err)
{
	(void)ctx;
	*out = vt_pk_ext(u, 7, pid);
	return *out ? 0 : vt_err_set(err, VT_ENOMEM, "oom");
}

static int test_reduce(void *ctx, struct vt_unpickler *u, struct vt_pk *fn, struct vt_pk *args,
		       struct vt_pk **out, struct vt_err *err)
{
	(void)ctx;
	if (fn->u.global.tag == TAG_ODICT) {
		*out = vt_pk_new(u, VT_PK_DICT);
		return *out ? 0 : vt_err_set(err, VT_ENOMEM, "oom");
	}
	if (fn->u.global.tag == TAG_FUNC) {
		/* f(x) is an extension value holding its argument tuple */
		*out = vt_pk_ext(u, 9, args);
		return *out ? 0 : vt_err_set(err, VT_ENOMEM, "oom");
	}
	return vt_err_set(err, VT_EUNSAFE, "test: '%s.%s' may not be called", fn->u.global.module,
			  fn->u.global.name);
}

static int test_build_ext(void *ctx, struct vt_unpickler *u, struct vt_pk *obj, struct vt_pk *state,
			  struct vt_err *err)
{
	(void)ctx;
	(void)u;
	(void)obj;
	(void)state;
	(void)err;
	builds_seen++;
	return 0;
}

static const struct vt_pk_hooks hooks = { allow_some, pers_load, test_reduce, test_build_ext, NULL };
static const struct vt_pk_hooks no_globals = { allow_nothing, NULL, NULL, NULL, NULL };
static const struct vt_pk_hooks no_reduce = { allow_some, NULL, NULL, NULL, NULL };

/* ---- running pickles ---------------------------------------------------------------------- */

struct run {
	struct vt_unpickler u;
	struct vt_src src;
	struct vt_pk *v;
	struct vt_err err;
	uint64_t pos;
	int rc;
};

/* Unpickles p[0..n) with h; the caller calls done(). */
static struct vt_pk *run_h(struct run *r, const struct vt_pk_hooks *h, const unsigned char *p, size_t n)
{
	memset(r, 0, sizeof(*r));
	vt_unpickler_init(&r->u, h, NULL);
	vt_src_mem(&r->src, p, n, "test");
	r->rc = vt_unpickle(&r->u, &r->src, &r->pos, &r->v, &r->err);
	return r->rc ? NULL : r->v;
}

static struct vt_pk *run(struct run *r, const unsigned char *p, size_t n)
{
	return run_h(r, &hooks, p, n);
}

static void done(struct run *r)
{
	vt_unpickler_release(&r->u);
}

/* Expects p to be refused with code want and a message containing needle. */
static void refused_h(const char *what, const struct vt_pk_hooks *h, const unsigned char *p, size_t n,
		      int want, const char *needle)
{
	struct run r;

	run_h(&r, h, p, n);
	CHECK(r.rc == want && strstr(r.err.msg, needle) != NULL, "%s: refused with %d, want %d (%s)", what,
	      r.rc, want, r.err.msg);
	done(&r);
}

static void refused(const char *what, const unsigned char *p, size_t n, int want, const char *needle)
{
	refused_h(what, &hooks, p, n, want, needle);
}

static int is_int(const struct vt_pk *v, int64_t i)
{
	return v && v->kind == VT_PK_INT && v->u.i == i;
}

static int is_bytes(const struct vt_pk *v, enum vt_pk_kind kind, const char *s, size_t n)
{
	return v && v->kind == kind && v->u.str.len == n && memcmp(v->u.str.s, s, n) == 0 && v->u.str.s[n] == '\0';
}

static int seq_ints(const struct vt_pk *v, enum vt_pk_kind kind, const int64_t *want, size_t n)
{
	size_t i;

	if (!v || v->kind != kind || v->u.seq.n != n)
		return 0;
	for (i = 0; i < n; i++)
		if (!is_int(v->u.seq.items[i], want[i]))
			return 0;
	return 1;
}

/* ---- integers and floats ------------------------------------------------------------------ */

static const struct {
	const char *what;
	const char *pkl;
	size_t len;
	int64_t want;
} int_cases[] = {
#define I(what, s, v) { what, s, sizeof(s) - 1, v }
	I("BININT1 0", "K\x00.", 0),
	I("BININT1 255", "K\xff.", 255),
	I("BININT2 256", "M\x00\x01.", 256),
	I("BININT2 65535", "M\xff\xff.", 65535),
	I("BININT 65536", "J\x00\x00\x01\x00.", 65536),
	I("BININT -1", "J\xff\xff\xff\xff.", -1),
	I("BININT INT32_MIN", "J\x00\x00\x00\x80.", INT32_MIN),
	I("BININT INT32_MAX", "J\xff\xff\xff\x7f.", INT32_MAX),
	I("LONG1 4294967396", "\x8a\x05\x64\x00\x00\x00\x01.", 4294967396LL),
	I("LONG1 -1", "\x8a\x01\xff.", -1),
	I("LONG1 0 bytes", "\x8a\x00.", 0),
	I("LONG1 128 (sign byte)", "\x8a\x02\x80\x00.", 128),
	I("LONG1 -129", "\x8a\x02\x7f\xff.", -129),
	I("LONG1 2^31", "\x8a\x05\x00\x00\x00\x80\x00.", 2147483648LL),
	I("LONG1 -2^31-1", "\x8a\x05\xff\xff\xff\x7f\xff.", -2147483649LL),
	I("LONG1 INT64_MIN", "\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80.", INT64_MIN),
	I("LONG1 INT64_MAX", "\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f.", INT64_MAX),
	I("LONG1 -2^55 (7 bytes)", "\x8a\x07\x00\x00\x00\x00\x00\x00\x80.", -(1LL << 55)),
	I("LONG4 32767", "\x8b\x02\x00\x00\x00\xff\x7f.", 32767),
	I("LONG4 -2", "\x8b\x01\x00\x00\x00\xfe.", -2),
#undef I
};

static void test_ints(void)
{
	size_t i;

	for (i = 0; i < sizeof(int_cases) / sizeof(int_cases[0]); i++) {
		struct run r;
		struct vt_pk *v = run(&r, (const unsigned char *)int_cases[i].pkl, int_cases[i].len);
		CHECK(is_int(v, int_cases[i].want), "%s: %lld (%s)", int_cases[i].what,
		      v && v->kind == VT_PK_INT ? (long long)v->u.i : 0LL, r.rc ? r.err.msg : "ok");
		CHECK(r.pos == int_cases[i].len, "%s: the cursor ends after STOP", int_cases[i].what);
		done(&r);
	}
	refused("LONG1 of 9 bytes", P("\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."), VT_EUNSUPPORTED,
		"integer of 9 bytes at offset 0");
	refused("LONG4 of 4294967295 bytes", P("N\x8b\xff\xff\xff\xff\x01."), VT_EUNSUPPORTED,
		"integer of 4294967295 bytes at offset 1");
	refused("LONG1 short", P("\x8a\x05\x01\x02"), VT_EFORMAT, "truncated");
}

static void test_floats(void)
{
	static const struct {
		const char *pkl;
		double want;
	} cases[] = {
		{ "G\x3f\xf0\x00\x00\x00\x00\x00\x00.", 1.0 },
		{ "G\xc0\x04\x00\x00\x00\x00\x00\x00.", -2.5 },
		{ "G\x3e\xe4\xf8\xb5\x88\xe3\x68\xf1.", 1e-05 },
		{ "G\x3f\xb9\x99\x99\x99\x99\x99\x9a.", 0.1 },
		{ "G\x00\x00\x00\x00\x00\x00\x00\x01.", 5e-324 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;
		struct vt_pk *v = run(&r, (const unsigned char *)cases[i].pkl, 10);
		CHECK(v && v->kind == VT_PK_FLOAT && v->u.f == cases[i].want, "BINFLOAT (big-endian) %g: %.17g",
		      cases[i].want, v && v->kind == VT_PK_FLOAT ? v->u.f : NAN);
		done(&r);
	}
	{
		struct run r;
		struct vt_pk *v = run(&r, P("G\x80\x00\x00\x00\x00\x00\x00\x00."));
		CHECK(v && v->kind == VT_PK_FLOAT && v->u.f == 0.0 && signbit(v->u.f), "BINFLOAT -0.0 keeps its sign");
		done(&r);
	}
	refused("BINFLOAT short", P("G\x3f\xf0\x00"), VT_EFORMAT, "truncated at offset 1");
}

/* ---- strings ------------------------------------------------------------------------------ */

static void test_strings(void)
{
	static const struct {
		const char *what, *pkl;
		size_t len;
		enum vt_pk_kind kind;
		const char *s;
		size_t n;
	} cases[] = {
#define S(what, p, kind, s) { what, p, sizeof(p) - 1, kind, s, sizeof(s) - 1 }
		S("BINUNICODE", "X\x06\x00\x00\x00h\xc3\xa9llo.", VT_PK_STR, "h\xc3\xa9llo"),
		S("BINUNICODE empty", "X\x00\x00\x00\x00.", VT_PK_STR, ""),
		S("SHORT_BINUNICODE", "\x8c\x03" "abc.", VT_PK_STR, "abc"),
		S("BINUNICODE8", "\x8d\x02\x00\x00\x00\x00\x00\x00\x00" "ab.", VT_PK_STR, "ab"),
		S("BINSTRING (python 2 str: utf-8 text)", "T\x03\x00\x00\x00" "a\x00" "b.", VT_PK_STR, "a\0b"),
		S("SHORT_BINSTRING", "U\x02" "xy.", VT_PK_STR, "xy"),
		S("SHORT_BINSTRING not utf-8: bytes", "U\x02" "\xff\xc3.", VT_PK_BYTES, "\xff\xc3"),
		S("BINSTRING truncated utf-8: bytes", "T\x01\x00\x00\x00\xc3.", VT_PK_BYTES, "\xc3"),
		S("STRING (text) with escapes", "S'a\\n\\x41\\'\\101'\n.", VT_PK_STR, "a\nA'A"),
		S("STRING (text) double-quoted", "S\"q\"\n.", VT_PK_STR, "q"),
		S("UNICODE (text) raw-unicode-escape", "V\\u00e9x\\U0001F600\n.", VT_PK_STR, "\xc3\xa9x\xf0\x9f\x98\x80"),
		S("BINBYTES", "B\x04\x00\x00\x00\x01\x02\x03\x04.", VT_PK_BYTES, "\x01\x02\x03\x04"),
		S("SHORT_BINBYTES", "C\x01\xff.", VT_PK_BYTES, "\xff"),
		S("BINBYTES8", "\x8e\x01\x00\x00\x00\x00\x00\x00\x00" "z.", VT_PK_BYTES, "z"),
		S("BYTEARRAY8", "\x96\x03\x00\x00\x00\x00\x00\x00\x00" "abc.", VT_PK_BYTES, "abc"),
#undef S
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;
		struct vt_pk *v = run(&r, (const unsigned char *)cases[i].pkl, cases[i].len);
		CHECK(is_bytes(v, cases[i].kind, cases[i].s, cases[i].n), "%s (%s)", cases[i].what,
		      r.rc ? r.err.msg : "ok");
		done(&r);
	}

	/* huge declared lengths in a tiny buffer: refused before allocating anything */
	{
		static const struct {
			const char *what, *pkl;
			size_t len;
		} huge[] = {
#define H(what, p) { what, p, sizeof(p) - 1 }
			H("BINUNICODE 0xFFFFFFFF", "X\xff\xff\xff\xff" "abc."),
			H("BINBYTES 0xFFFFFFFF", "B\xff\xff\xff\xff" "abc."),
			H("BINSTRING 0xFFFFFFFF", "T\xff\xff\xff\xff" "abc."),
			H("BINUNICODE8 2^64-1", "\x8d\xff\xff\xff\xff\xff\xff\xff\xff" "abc."),
			H("BINBYTES8 2^63", "\x8e\x00\x00\x00\x00\x00\x00\x00\x80" "abc."),
			H("BYTEARRAY8 2^40", "\x96\x00\x00\x00\x00\x00\x01\x00\x00" "abc."),
			H("SHORT_BINUNICODE 255", "\x8c\xff" "abc."),
#undef H
		};
		for (i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
			struct run r;
			run(&r, (const unsigned char *)huge[i].pkl, huge[i].len);
			CHECK(r.rc == VT_EFORMAT && strstr(r.err.msg, "truncated at offset") && r.u.arena.used < 1024,
			      "%s in %zu bytes: refused, %zu arena bytes used (%s)", huge[i].what, huge[i].len,
			      r.u.arena.used, r.err.msg);
			done(&r);
		}
	}
}

/* ---- containers --------------------------------------------------------------------------- */

static void test_containers(void)
{
	static const int64_t one_two[] = { 1, 2 }, one_two_three[] = { 1, 2, 3 }, four[] = { 1, 2, 3, 4 };
	struct run r;
	struct vt_pk *v;

	v = run(&r, P(").")); /* EMPTY_TUPLE */
	CHECK(v && v->kind == VT_PK_TUPLE && v->u.seq.n == 0, "EMPTY_TUPLE");
	done(&r);
	v = run(&r, P("(K\x01K\x02K\x03K\x04t."));
	CHECK(seq_ints(v, VT_PK_TUPLE, four, 4), "MARK ... TUPLE");
	done(&r);
	v = run(&r, P("K\x01\x85."));
	CHECK(seq_ints(v, VT_PK_TUPLE, one_two, 1), "TUPLE1");
	done(&r);
	v = run(&r, P("K\x01K\x02\x86."));
	CHECK(seq_ints(v, VT_PK_TUPLE, one_two, 2), "TUPLE2");
	done(&r);
	v = run(&r, P("K\x01K\x02K\x03\x87."));
	CHECK(seq_ints(v, VT_PK_TUPLE, one_two_three, 3), "TUPLE3");
	done(&r);
	refused("TUPLE3 with two items", P("K\x01K\x02\x87."), VT_EFORMAT, "stack underflow at offset 4");
	refused("TUPLE2 across a MARK", P("K\x01(K\x02\x86."), VT_EFORMAT, "stack underflow at offset 5");
	refused("TUPLE without MARK", P("K\x01t."), VT_EFORMAT, "no MARK on the stack at offset 2");

	v = run(&r, P("].")); /* EMPTY_LIST */
	CHECK(v && v->kind == VT_PK_LIST && v->u.seq.n == 0, "EMPTY_LIST");
	done(&r);
	v = run(&r, P("(K\x01K\x02l."));
	CHECK(seq_ints(v, VT_PK_LIST, one_two, 2), "MARK ... LIST");
	done(&r);
	v = run(&r, P("]K\x01" "aK\x02" "a."));
	CHECK(seq_ints(v, VT_PK_LIST, one_two, 2), "APPEND");
	done(&r);
	v = run(&r, P("]K\x01" "a(K\x02K\x03" "e."));
	CHECK(seq_ints(v, VT_PK_LIST, one_two_three, 3), "APPEND then MARK ... APPENDS");
	done(&r);
	v = run(&r, P("](e."));
	CHECK(v && v->kind == VT_PK_LIST && v->u.seq.n == 0, "APPENDS of nothing");
	done(&r);
	refused("APPEND to a dict", P("}K\x01" "a."), VT_EFORMAT, "APPEND to a non-list at offset 3");
	refused("APPENDS with nothing under the MARK", P("(K\x01" "e."), VT_EFORMAT, "APPENDS without a list at offset 3");
	refused("APPEND on an empty stack", P("a."), VT_EFORMAT, "stack underflow at offset 0");

	/* DUP then APPEND: a list that contains itself */
	v = run(&r, P("]2a."));
	CHECK(v && v->kind == VT_PK_LIST && v->u.seq.n == 1 && v->u.seq.items[0] == v, "DUP: a cyclic list");
	done(&r);

	v = run(&r, P("}."));
	CHECK(v && v->kind == VT_PK_DICT && v->u.dict.n == 0, "EMPTY_DICT");
	done(&r);
	v = run(&r, P("(\x8c\x01" "aK\x01\x8c\x01" "bK\x02" "d."));
	CHECK(v && v->kind == VT_PK_DICT && v->u.dict.n == 2 && is_int(vt_pk_dict_get(v, "a"), 1) &&
	      is_int(vt_pk_dict_get(v, "b"), 2), "MARK ... DICT");
	done(&r);
	v = run(&r, P("}\x8c\x01" "aK\x01s."));
	CHECK(v && v->kind == VT_PK_DICT && v->u.dict.n == 1 && is_int(vt_pk_dict_get(v, "a"), 1), "SETITEM");
	done(&r);
	v = run(&r, P("}(\x8c\x01" "aK\x01\x8c\x01" "bK\x02\x8c\x01" "aK\x03u."));
	CHECK(v && v->kind == VT_PK_DICT && v->u.dict.n == 3 && is_int(vt_pk_dict_get(v, "a"), 3) &&
	      is_int(vt_pk_dict_get(v, "b"), 2) && vt_pk_dict_get(v, "c") == NULL,
	      "SETITEMS on a dict (a repeated key: the last value wins)");
	done(&r);
	refused("SETITEMS with an odd count", P("}(K\x01u."), VT_EFORMAT, "odd item count");
	refused("DICT with an odd count", P("(K\x01" "d."), VT_EFORMAT, "odd item count");
	refused("SETITEM on a list", P("]K\x01K\x02s."), VT_EFORMAT, "SETITEM on a non-dict at offset 5");
	refused("SETITEM with two items", P("K\x01K\x02s."), VT_EFORMAT, "stack underflow at offset 4");

	v = run(&r, P("\x8f(K\x01K\x02\x90."));
	CHECK(seq_ints(v, VT_PK_SET, one_two, 2), "EMPTY_SET, MARK ... ADDITEMS");
	done(&r);
	v = run(&r, P("(K\x01K\x02\x91."));
	CHECK(seq_ints(v, VT_PK_SET, one_two, 2), "MARK ... FROZENSET");
	done(&r);

	/* the stack outside a MARK is out of reach */
	v = run(&r, P("K\x07(K\x01K\x02" "1."));
	CHECK(is_int(v, 7), "POP_MARK drops what the MARK covers");
	done(&r);
	v = run(&r, P("K\x07K\x08" "0."));
	CHECK(is_int(v, 7), "POP");
	done(&r);
	refused("POP through a MARK", P("K\x07(0."), VT_EFORMAT, "stack underflow at offset 3");
	refused("DUP on an empty stack", P("2."), VT_EFORMAT, "stack underflow at offset 0");
	refused("POP_MARK without MARK", P("K\x01" "1."), VT_EFORMAT, "no MARK");

	v = run(&r, P("N\x88\x89\x87."));
	CHECK(v && v->kind == VT_PK_TUPLE && v->u.seq.n == 3 && v->u.seq.items[0]->kind == VT_PK_NONE &&
	      v->u.seq.items[1]->kind == VT_PK_BOOL && v->u.seq.items[1]->u.b == 1 &&
	      v->u.seq.items[2]->kind == VT_PK_BOOL && v->u.seq.items[2]->u.b == 0, "NONE, NEWTRUE, NEWFALSE");
	done(&r);
}

/* ---- memo, framing, protocol --------------------------------------------------------------- */

static void test_memo(void)
{
	struct run r;
	struct vt_pk *v;

	v = run(&r, P("\x80\x02X\x01\x00\x00\x00" "aq\x00h\x00\x86."));
	CHECK(v && v->kind == VT_PK_TUPLE && v->u.seq.n == 2 && v->u.seq.items[0] == v->u.seq.items[1] &&
	      vt_pk_is_str(v->u.seq.items[0], "a"), "BINPUT / BINGET: the same object twice");
	done(&r);
	v = run(&r, P("K\x05r\x46\x00\x00\x00" "0j\x46\x00\x00\x00."));
	CHECK(is_int(v, 5), "LONG_BINPUT / LONG_BINGET 70 (%s)", r.rc ? r.err.msg : "ok");
	done(&r);
	v = run(&r, P("\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00K\x01\x94" "0K\x02\x94" "0h\x00h\x01\x86."));
	CHECK(v && seq_ints(v, VT_PK_TUPLE, (const int64_t[]){ 1, 2 }, 2), "PROTO 4, FRAME, MEMOIZE numbers 0, 1 (%s)",
	      r.rc ? r.err.msg : "ok");
	done(&r);
	v = run(&r, P("K\x01q\x05" "0K\x02\x94" "0h\x06."));
	CHECK(is_int(v, 2), "MEMOIZE after BINPUT 5 takes index 6, as Python's len(memo) would");
	done(&r);

	refused("BINGET of an undefined entry", P("K\x01q\x00h\x01."), VT_EFORMAT, "memo entry 1 is not defined at offset 4");
	refused("LONG_BINGET far beyond the memo", P("j\xff\xff\xff\xff."), VT_EFORMAT, "memo entry 4294967295 is not defined");
	refused("LONG_BINPUT index beyond the bound", P("Nr\xff\xff\xff\x7f."), VT_EFORMAT,
		"memo index 2147483647 too large at offset 1");
	{
		/* the bound is twice the bytes read so far plus 64 (not the input's size, which for a
		 * legacy file counts its tensor bytes): after 6 bytes, index 76 but not 77 */
		v = run(&r, P("Nr\x4c\x00\x00\x00" "0h\x4c."));
		CHECK(v && v->kind == VT_PK_NONE, "LONG_BINPUT 76 at offset 1 (%s)", r.rc ? r.err.msg : "ok");
		done(&r);
		refused("LONG_BINPUT 77 at offset 1", P("Nr\x4d\x00\x00\x00" "0h\x4d."), VT_EFORMAT,
			"memo index 77 too large at offset 1");
		{
			/* ... however many bytes follow the pickle */
			static unsigned char big[1 << 20] = "Nr\x00\x00\x01\x00.";
			run(&r, big, sizeof(big));
			CHECK(r.rc == VT_EFORMAT && strstr(r.err.msg, "memo index 65536 too large") && r.u.memo_cap == 0,
			      "LONG_BINPUT 65536 in a 1 MiB input of a 7-byte pickle: %s", r.err.msg);
			done(&r);
		}
	}
	refused("BINPUT on an empty stack", P("q\x00."), VT_EFORMAT, "stack underflow");
	refused("PROTO 6", P("\x80\x06N."), VT_EUNSUPPORTED, "protocol 6 at offset 0");
	refused("FRAME cut short", P("\x95\x01\x00"), VT_EFORMAT, "truncated");
	refused("no STOP", P("K\x01"), VT_EFORMAT, "truncated at offset 2");
	refused("empty input", P(""), VT_EFORMAT, "truncated at offset 0");
}

static void test_stop(void)
{
	struct run r;
	uint64_t pos;
	struct vt_pk *v;
	static const unsigned char two[] = "K\x01.K\x02.";
	int rc;

	refused("STOP with two values", P("K\x01K\x02."), VT_EFORMAT, "STOP with 2 values on the stack at offset 4");
	refused("STOP with nothing", P("."), VT_EFORMAT, "STOP with 0 values on the stack at offset 0");
	refused("STOP inside a MARK", P("(K\x01."), VT_EFORMAT, "STOP with 1 values");

	/* two pickles back to back, one unpickler: the legacy format's sequence */
	memset(&r, 0, sizeof(r));
	vt_unpickler_init(&r.u, &hooks, NULL);
	vt_src_mem(&r.src, two, sizeof(two) - 1, "two");
	pos = 0;
	rc = vt_unpickle(&r.u, &r.src, &pos, &v, &r.err);
	CHECK(rc == 0 && is_int(v, 1) && pos == 3, "first of two pickles ends at 3");
	rc = vt_unpickle(&r.u, &r.src, &pos, &v, &r.err);
	CHECK(rc == 0 && is_int(v, 2) && pos == 6, "second of two pickles ends at 6");
	rc = vt_unpickle(&r.u, &r.src, &pos, &v, &r.err);
	CHECK(rc == VT_EFORMAT && strstr(r.err.msg, "truncated at offset 6"), "a third: %s", r.err.msg);
	done(&r);
}

static void test_unknown(void)
{
	static const struct {
		const char *what, *pkl;
		size_t len;
		const char *msg;
	} cases[] = {
#define U(what, p, msg) { what, p, sizeof(p) - 1, msg }
		U("0xff", "K\x01\xff.", "unknown or unsupported opcode 0xff at offset 2"),
		U("EXT1", "\x82\x01.", "opcode 0x82 at offset 0"),
		U("EXT2", "\x83\x01\x00.", "opcode 0x83 at offset 0"),
		U("EXT4", "\x84\x01\x00\x00\x00.", "opcode 0x84 at offset 0"),
		U("NEXT_BUFFER", "\x97.", "opcode 0x97 at offset 0"),
		U("READONLY_BUFFER", "N\x98.", "opcode 0x98 at offset 1"),
		U("NUL", "\x00.", "opcode 0x00 at offset 0"),
#undef U
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		refused(cases[i].what, (const unsigned char *)cases[i].pkl, cases[i].len, VT_EFORMAT, cases[i].msg);
}

/* Protocol 0 and 1: operands as text lines, INST and OBJ. */
static void test_protocol0(void)
{
	struct run r;
	struct vt_pk *v;

	v = run(&r, P("I-42\n."));
	CHECK(is_int(v, -42), "INT (text)");
	done(&r);
	v = run(&r, P("I01\n."));
	CHECK(v && v->kind == VT_PK_BOOL && v->u.b == 1, "INT I01 is True");
	done(&r);
	v = run(&r, P("I00\n."));
	CHECK(v && v->kind == VT_PK_BOOL && v->u.b == 0, "INT I00 is False");
	done(&r);
	v = run(&r, P("L12345678901L\n."));
	CHECK(is_int(v, 12345678901LL), "LONG (text)");
	done(&r);
	v = run(&r, P("F1.5\n."));
	CHECK(v && v->kind == VT_PK_FLOAT && v->u.f == 1.5, "FLOAT (text)");
	done(&r);
	v = run(&r, P("(lp0\nI7\nag0\na."));
	CHECK(v && v->kind == VT_PK_LIST && v->u.seq.n == 2 && is_int(v->u.seq.items[0], 7) && v->u.seq.items[1] == v,
	      "PUT/GET (text): the list holds itself (%s)", r.rc ? r.err.msg : "ok");
	done(&r);
	v = run(&r, P("(I5\nit\nf\n."));
	CHECK(v && v->kind == VT_PK_EXT && v->u.ext.type == 9 &&
	      seq_ints(v->u.ext.p, VT_PK_TUPLE, (const int64_t[]){ 5 }, 1), "INST goes to the reduce hook (%s)",
	      r.rc ? r.err.msg : "ok");
	done(&r);
	v = run(&r, P("(ct\nf\nI5\nI6\no."));
	CHECK(v && v->kind == VT_PK_EXT && v->u.ext.type == 9 &&
	      seq_ints(v->u.ext.p, VT_PK_TUPLE, (const int64_t[]){ 5, 6 }, 2), "OBJ goes to the reduce hook (%s)",
	      r.rc ? r.err.msg : "ok");
	done(&r);
	refused("INST of a refused global", P("(S'ls'\nios\nsystem\n."), VT_EUNSAFE, "'os.system' refused");
	refused("OBJ without a class", P("(o."), VT_EFORMAT, "OBJ without a class");
	refused("INT (text) not a number", P("Ix\n."), VT_EFORMAT, "not a 64-bit integer");
	refused("INT (text) too wide", P("I99999999999999999999\n."), VT_EUNSUPPORTED, "not a 64-bit integer");
	refused("STRING (text) unquoted", P("Sab\n."), VT_EFORMAT, "not quoted");
	refused("GET (text) undefined", P("g3\n."), VT_EFORMAT, "memo entry 3 is not defined");
}

/* ---- globals, calls, objects ---------------------------------------------------------------- */

static void test_objects(void)
{
	struct run r;
	struct vt_pk *v, *meta;

	v = run(&r, P("ccollections\nOrderedDict\n."));
	CHECK(v && v->kind == VT_PK_GLOBAL && strcmp(v->u.global.module, "collections") == 0 &&
	      strcmp(v->u.global.name, "OrderedDict") == 0 && v->u.global.tag == TAG_ODICT, "GLOBAL");
	done(&r);
	v = run(&r, P("\x8c\x0b" "collections\x8c\x0b" "OrderedDict\x93."));
	CHECK(v && v->kind == VT_PK_GLOBAL && v->u.global.tag == TAG_ODICT, "STACK_GLOBAL");
	done(&r);
	refused("STACK_GLOBAL of an int", P("\x8c\x01" "aK\x01\x93."), VT_EFORMAT, "STACK_GLOBAL needs two strings");

	/* REDUCE, then BUILD on the OrderedDict: its attributes (a state_dict's _metadata) */
	v = run(&r, P("ccollections\nOrderedDict\nq\x00)Rq\x01\x8c\x01" "aK\x01s}\x8c\x09" "_metadata}sb."));
	meta = v && v->kind == VT_PK_DICT ? vt_pk_dict_get(v->u.dict.attrs, "_metadata") : NULL;
	CHECK(v && v->kind == VT_PK_DICT && is_int(vt_pk_dict_get(v, "a"), 1) && meta && meta->kind == VT_PK_DICT,
	      "REDUCE OrderedDict, SETITEM, BUILD stores attrs (%s)", r.rc ? r.err.msg : "ok");
	done(&r);

	v = run(&r, P("ct\nf\nK\x05\x85R."));
	CHECK(v && v->kind == VT_PK_EXT && v->u.ext.type == 9 &&
	      seq_ints(v->u.ext.p, VT_PK_TUPLE, (const int64_t[]){ 5 }, 1), "REDUCE goes to the hook with its args");
	done(&r);
	builds_seen = 0;
	v = run(&r, P("ct\nf\n)R}b."));
	CHECK(v && v->kind == VT_PK_EXT && builds_seen == 1, "BUILD on an extension value calls build_ext");
	done(&r);
	v = run(&r, P("K\x01)R."));
	CHECK(v && v->kind == VT_PK_OBJECT && v->u.obj.call && is_int(v->u.obj.cls, 1) && vt_pk_seq_len(v->u.obj.args) == 0,
	      "REDUCE of a non-global makes a call record (%s)", r.rc ? r.err.msg : "ok");
	done(&r);
	refused("REDUCE without a tuple", P("ct\nf\nK\x01R."), VT_EFORMAT, "without an argument tuple");
	refused("REDUCE refused by the hook", P("ct\nC\n)R."), VT_EUNSAFE, "at offset 6: test: 't.C' may not be called");
	refused_h("REDUCE with no reduce hook", &no_reduce, P("ct\nf\n)R."), VT_EUNSAFE, "call of 't.f' is not allowed");

	v = run(&r, P("ct\nC\n)\x81}\x8c\x01" "xK\x02sb."));
	CHECK(v && v->kind == VT_PK_OBJECT && v->u.obj.cls->u.global.tag == TAG_CLS &&
	      v->u.obj.args->kind == VT_PK_TUPLE && is_int(vt_pk_dict_get(vt_pk_obj_state(v), "x"), 2),
	      "NEWOBJ makes an inert object, BUILD stores its state");
	done(&r);
	v = run(&r, P("ct\nC\n)}\x92."));
	CHECK(v && v->kind == VT_PK_OBJECT, "NEWOBJ_EX");
	done(&r);
	refused("NEWOBJ of an int", P("K\x01)\x81."), VT_EFORMAT, "NEWOBJ of a non-class");
	refused("BUILD on an int", P("K\x01}b."), VT_EFORMAT, "BUILD on a plain value at offset 3");

	v = run(&r, P("(X\x07\x00\x00\x00storageK\x01tQ."));
	CHECK(v && v->kind == VT_PK_EXT && v->u.ext.type == 7 && vt_pk_seq_len(v->u.ext.p) == 2,
	      "BINPERSID goes to persistent_load");
	done(&r);
	refused_h("BINPERSID without a hook", &no_globals, P("K\x01Q."), VT_EUNSUPPORTED, "persistent id at offset 2");
}

static void test_hostile_globals(void)
{
	static const struct {
		const char *what, *pkl;
		size_t len;
		const char *name;
	} cases[] = {
#define G(what, p, name) { what, p, sizeof(p) - 1, name }
		G("GLOBAL os.system", "cos\nsystem\n(X\x02\x00\x00\x00idtR.", "'os.system'"),
		G("GLOBAL builtins.eval", "\x80\x02" "cbuiltins\neval\n.", "'builtins.eval'"),
		G("STACK_GLOBAL posix.system", "\x8c\x05posix\x8c\x06system\x93.", "'posix.system'"),
		G("GLOBAL subprocess.Popen", "csubprocess\nPopen\n.", "'subprocess.Popen'"),
		G("GLOBAL torch.load", "ctorch\nload\n.", "'torch.load'"),
#undef G
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		refused_h(cases[i].what, &no_globals, (const unsigned char *)cases[i].pkl, cases[i].len, VT_EUNSAFE,
			  cases[i].name);
		refused_h(cases[i].what, NULL, (const unsigned char *)cases[i].pkl, cases[i].len, VT_EUNSAFE,
			  cases[i].name);
	}
	{
		char line[400];
		unsigned char p[420];
		size_t n;
		memset(line, 'a', 300);
		line[300] = '\0';
		n = (size_t)snprintf((char *)p, sizeof(p), "c%s\nb\n.", line);
		refused("GLOBAL with a 300-byte module", p, n, VT_EFORMAT, "text operand longer than 256 bytes");
	}
	refused("GLOBAL without a newline", P("cos"), VT_EFORMAT, "truncated");
}

/* ---- depth and memory ----------------------------------------------------------------------- */

static void test_deep(void)
{
	enum { N = 100000 };
	unsigned char *p = malloc(3 * N + 16);
	struct run r;
	struct vt_pk *v;
	size_t i, n = 0, depth;

	/* N nested lists: ] ] ] ... a a a . */
	for (i = 0; i < N; i++)
		p[n++] = ']';
	for (i = 0; i < N - 1; i++)
		p[n++] = 'a';
	p[n++] = '.';
	v = run(&r, p, n);
	for (depth = 0; v && v->kind == VT_PK_LIST && v->u.seq.n == 1; depth++)
		v = v->u.seq.items[0];
	CHECK(r.rc == 0 && depth == N - 1 && v && v->kind == VT_PK_LIST && v->u.seq.n == 0,
	      "%d nested lists: depth %zu (%s)", N, depth, r.rc ? r.err.msg : "ok");
	CHECK(r.u.arena.used < (size_t)N * 200, "%d nested lists: %zu arena bytes", N, r.u.arena.used);
	done(&r);

	/* N nested tuples: ( ( ( ... N t t t . */
	n = 0;
	for (i = 0; i < N; i++)
		p[n++] = '(';
	p[n++] = 'N';
	for (i = 0; i < N; i++)
		p[n++] = 't';
	p[n++] = '.';
	v = run(&r, p, n);
	for (depth = 0; v && v->kind == VT_PK_TUPLE && v->u.seq.n == 1; depth++)
		v = v->u.seq.items[0];
	CHECK(r.rc == 0 && depth == N && v && v->kind == VT_PK_NONE, "%d nested tuples: depth %zu (%s)", N, depth,
	      r.rc ? r.err.msg : "ok");
	done(&r);

	/* MARK spam */
	n = 0;
	for (i = 0; i < 3 * N; i++)
		p[n++] = '(';
	p[n++] = '.';
	run(&r, p, n);
	CHECK(r.rc == VT_EFORMAT && strstr(r.err.msg, "STOP with 0 values"), "%d MARKs: %s", 3 * N, r.err.msg);
	done(&r);
	/* MARK spam then every POP_MARK */
	n = 0;
	for (i = 0; i < N; i++)
		p[n++] = '(';
	for (i = 0; i < N; i++)
		p[n++] = '1';
	p[n++] = 'N';
	p[n++] = '.';
	v = run(&r, p, n);
	CHECK(v && v->kind == VT_PK_NONE, "%d MARKs and POP_MARKs (%s)", N, r.rc ? r.err.msg : "ok");
	done(&r);

	/* a wide stack left at STOP */
	n = 0;
	for (i = 0; i < 3 * N; i++)
		p[n++] = 'N';
	p[n++] = '.';
	run(&r, p, n);
	CHECK(r.rc == VT_EFORMAT && strstr(r.err.msg, "STOP with 300000 values"), "%d values at STOP: %s", 3 * N,
	      r.err.msg);
	done(&r);

	/* one list memoized and appended to itself N times: pointers, not copies */
	n = 0;
	p[n++] = ']';
	p[n++] = 'q';
	p[n++] = 0;
	p[n++] = '(';
	for (i = 0; i < N; i++) {
		p[n++] = 'h';
		p[n++] = 0;
	}
	p[n++] = 'e';
	p[n++] = '.';
	v = run(&r, p, n);
	CHECK(v && v->kind == VT_PK_LIST && v->u.seq.n == N && v->u.seq.items[N - 1] == v,
	      "%d BINGETs of one list (%s)", N, r.rc ? r.err.msg : "ok");
	CHECK(r.u.arena.used < (size_t)N * 64, "%d BINGETs: %zu arena bytes", N, r.u.arena.used);
	done(&r);
	free(p);
}

/* ---- the emitter ---------------------------------------------------------------------------- */

static int hexeq(const unsigned char *b, size_t n, const char *hex, char *got, size_t size)
{
	size_t i, at = 0;

	for (i = 0; i < n && at + 3 < size; i++)
		at += (size_t)snprintf(got + at, size - at, "%02x", b[i]);
	return strcmp(got, hex) == 0;
}

/* pickle.dumps(x, 2).hex() from /usr/bin/python3 (CPython 3.11) */
static const struct {
	int64_t v;
	const char *hex;
} emit_ints[] = {
	{ 0, "80024b002e" },
	{ 255, "80024bff2e" },
	{ 256, "80024d00012e" },
	{ 65535, "80024dffff2e" },
	{ 65536, "80024a000001002e" },
	{ -1, "80024affffffff2e" },
	{ INT32_MIN, "80024a000000802e" },
	{ INT32_MAX, "80024affffff7f2e" },
	{ 2147483648LL, "80028a0500000080002e" },
	{ 1099511627776LL, "80028a060000000000012e" },
	{ INT64_MIN, "80028a0800000000000000802e" },
	{ INT64_MAX, "80028a08ffffffffffffff7f2e" },
	{ -129, "80024a7fffffff2e" },
	{ -2147483649LL, "80028a05ffffff7fff2e" },
	{ 128, "80024b802e" },
	{ 32767, "80024dff7f2e" },
	{ -32768, "80024a0080ffff2e" },
};

static const struct {
	double v;
	const char *hex;
} emit_floats[] = {
	{ 1e-05, "8002473ee4f8b588e368f12e" },
	{ 0.1, "8002473fb999999999999a2e" },
	{ 0.5, "8002473fe00000000000002e" },
	{ -2.5, "800247c0040000000000002e" },
	{ 1e300, "8002477e37e43c8800759c2e" },
};

/* Reads back what w holds; returns the value (run released by the caller). */
static struct vt_pk *read_back(struct run *r, struct vt_pkw *w)
{
	return run(r, w->buf, w->len);
}

static void test_emit_numbers(void)
{
	char got[256];
	size_t i;

	for (i = 0; i < sizeof(emit_ints) / sizeof(emit_ints[0]); i++) {
		struct vt_pkw w;
		struct run r;
		struct vt_pk *v;
		vt_pkw_init(&w);
		vt_pkw_op(&w, VT_OP_PROTO);
		vt_pkw_op(&w, 2);
		vt_pkw_int(&w, emit_ints[i].v);
		vt_pkw_op(&w, VT_OP_STOP);
		CHECK(!w.oom && hexeq(w.buf, w.len, emit_ints[i].hex, got, sizeof(got)), "vt_pkw_int(%lld): %s, CPython %s",
		      (long long)emit_ints[i].v, got, emit_ints[i].hex);
		v = read_back(&r, &w);
		CHECK(is_int(v, emit_ints[i].v), "vt_pkw_int(%lld) reads back", (long long)emit_ints[i].v);
		done(&r);
		vt_pkw_release(&w);
	}
	for (i = 0; i < sizeof(emit_floats) / sizeof(emit_floats[0]); i++) {
		struct vt_pkw w;
		struct run r;
		struct vt_pk *v;
		vt_pkw_init(&w);
		vt_pkw_op(&w, VT_OP_PROTO);
		vt_pkw_op(&w, 2);
		vt_pkw_float(&w, emit_floats[i].v);
		vt_pkw_op(&w, VT_OP_STOP);
		CHECK(hexeq(w.buf, w.len, emit_floats[i].hex, got, sizeof(got)), "vt_pkw_float(%g): BINFLOAT %s, CPython %s",
		      emit_floats[i].v, got, emit_floats[i].hex);
		v = read_back(&r, &w);
		CHECK(v && v->kind == VT_PK_FLOAT && memcmp(&v->u.f, &emit_floats[i].v, sizeof(double)) == 0,
		      "vt_pkw_float(%g) reads back bit for bit", emit_floats[i].v);
		done(&r);
		vt_pkw_release(&w);
	}
}

static void test_emit_objects(void)
{
	struct vt_pkw w;
	struct run r;
	struct vt_pk *v;
	char got[512];
	int n;

	/* ("a", "a") with one interned string: X a q0 h0 TUPLE2 q1, as CPython memoizes */
	vt_pkw_init(&w);
	vt_pkw_op(&w, VT_OP_PROTO);
	vt_pkw_op(&w, 2);
	vt_pkw_tuple_begin(&w, 2);
	vt_pkw_str_interned(&w, "a");
	vt_pkw_str_interned(&w, "a");
	vt_pkw_tuple_end(&w, 2);
	vt_pkw_op(&w, VT_OP_STOP);
	CHECK(hexeq(w.buf, w.len, "8002580100000061710068008671012e", got, sizeof(got)), "interned ('a', 'a'): %s", got);
	vt_pkw_release(&w);

	/* tuples of 0..4 items: ), TUPLE1..3, MARK..TUPLE, each memoized but the empty one */
	{
		static const char *const want[] = { "8002292e", "80024b018571002e", "80024b014b028671002e",
						    "80024b014b024b038771002e", "8002284b014b024b034b047471002e" };
		for (n = 0; n <= 4; n++) {
			int i;
			vt_pkw_init(&w);
			vt_pkw_op(&w, VT_OP_PROTO);
			vt_pkw_op(&w, 2);
			vt_pkw_tuple_begin(&w, n);
			for (i = 1; i <= n; i++)
				vt_pkw_int(&w, i);
			vt_pkw_tuple_end(&w, n);
			vt_pkw_op(&w, VT_OP_STOP);
			CHECK(hexeq(w.buf, w.len, want[n], got, sizeof(got)), "%d-tuple: %s, CPython %s", n, got, want[n]);
			v = read_back(&r, &w);
			CHECK(v && v->kind == VT_PK_TUPLE && v->u.seq.n == (size_t)n, "%d-tuple reads back", n);
			done(&r);
			vt_pkw_release(&w);
		}
	}

	/* a global memoized once, then BINGET; strings, bools, None */
	vt_pkw_init(&w);
	vt_pkw_op(&w, VT_OP_PROTO);
	vt_pkw_op(&w, 2);
	vt_pkw_op(&w, VT_OP_MARK);
	vt_pkw_global(&w, "collections", "OrderedDict");
	vt_pkw_global(&w, "collections", "OrderedDict");
	vt_pkw_str(&w, "x");
	vt_pkw_str(&w, "x");
	vt_pkw_str_key(&w, "x");
	vt_pkw_str_key(&w, "x");
	vt_pkw_bool(&w, 1);
	vt_pkw_bool(&w, 0);
	vt_pkw_none(&w);
	vt_pkw_op(&w, VT_OP_TUPLE);
	vt_pkw_op(&w, VT_OP_STOP);
	CHECK(hexeq(w.buf, w.len,
		    "800228" "63636f6c6c656374696f6e730a4f726465726564446963740a" "7100" "6800"
		    "58010000007871015801000000787102" "5801000000787103" "6803" "88894e74" "2e",
		    got, sizeof(got)),
	      "GLOBAL memoized, BINGET the second time; str twice is two objects; str_key interned: %s", got);
	v = read_back(&r, &w);
	CHECK(v && vt_pk_seq_len(v) == 9 && v->u.seq.items[0] == v->u.seq.items[1] &&
	      v->u.seq.items[2] != v->u.seq.items[3] && v->u.seq.items[4] == v->u.seq.items[5] &&
	      vt_pk_is_str(v->u.seq.items[4], "x"), "and reads back with the same sharing (%s)",
	      r.rc ? r.err.msg : "ok");
	done(&r);
	vt_pkw_release(&w);

	/* LONG_BINPUT / LONG_BINGET past memo 255 */
	vt_pkw_init(&w);
	vt_pkw_op(&w, VT_OP_PROTO);
	vt_pkw_op(&w, 2);
	vt_pkw_op(&w, VT_OP_MARK);
	for (n = 0; n < 300; n++) {
		char s[16];
		snprintf(s, sizeof(s), "s%d", n);
		vt_pkw_str_interned(&w, s);
	}
	vt_pkw_str_interned(&w, "s299");
	vt_pkw_str_interned(&w, "s3");
	vt_pkw_op(&w, VT_OP_TUPLE);
	vt_pkw_op(&w, VT_OP_STOP);
	CHECK(w.len > 11 && memcmp(w.buf + w.len - 9, "j\x2b\x01\x00\x00h\x03t.", 9) == 0,
	      "memo 299 is fetched with LONG_BINGET, memo 3 with BINGET");
	v = read_back(&r, &w);
	CHECK(v && vt_pk_seq_len(v) == 302 && v->u.seq.items[300] == v->u.seq.items[299] &&
	      v->u.seq.items[301] == v->u.seq.items[3] && vt_pk_is_str(v->u.seq.items[299], "s299"),
	      "302 strings read back, sharing kept (%s)", r.rc ? r.err.msg : "ok");
	done(&r);
	vt_pkw_release(&w);
}

static unsigned char *slurp(const char *name, size_t *len)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", fixtures, name);
	return harness_slurp(path, len);
}

/* list(range(n)) or OrderedDict((i, i) for i in range(n)) through the batch calls.
 *
 * The batching is that of CPython's iterator path (batch_list / batch_dict in _pickle.c),
 * which pickles an OrderedDict such as a state_dict: a lone last item goes by APPEND or
 * SETITEM.  Exact lists and dicts take another path (batch_list_exact, batch_dict_exact)
 * which writes a lone item after a full batch as MARK item APPENDS, and a dict of exactly
 * 1000k items with an extra empty MARK SETITEMS; vggtl never writes such a container. */
static void emit_batched(struct vt_pkw *w, size_t n, int is_list)
{
	size_t i;

	vt_pkw_init(w);
	vt_pkw_op(w, VT_OP_PROTO);
	vt_pkw_op(w, 2);
	if (is_list) {
		vt_pkw_op(w, VT_OP_EMPTY_LIST);
	} else {
		vt_pkw_global(w, "collections", "OrderedDict");
		vt_pkw_op(w, VT_OP_EMPTY_TUPLE);
		vt_pkw_op(w, VT_OP_REDUCE);
	}
	vt_pkw_put(w);
	for (i = 0; i < n; i++) {
		vt_pkw_batch_begin(w, i, n);
		if (!is_list)
			vt_pkw_int(w, (int64_t)i);
		vt_pkw_int(w, (int64_t)i);
		vt_pkw_batch_end(w, i, n, is_list);
	}
	vt_pkw_op(w, VT_OP_STOP);
}

static void test_emit_batches(void)
{
	static const struct {
		size_t n;
		int is_list;
		const char *hex; /* CPython, for the small ones */
		const char *fixture;
	} cases[] = {
		{ 0, 1, "80025d71002e", NULL },
		{ 1, 1, "80025d71004b00612e", NULL },
		{ 2, 1, "80025d7100284b004b01652e", NULL },
		{ 0, 0, "800263636f6c6c656374696f6e730a4f726465726564446963740a7100295271012e", NULL },
		{ 1, 0, "800263636f6c6c656374696f6e730a4f726465726564446963740a7100295271014b004b00732e", NULL },
		{ 2, 0, "800263636f6c6c656374696f6e730a4f726465726564446963740a710029527101284b004b004b014b01752e",
		  NULL },
		{ 2002, 1, NULL, "pkl/list2002.pkl" },
		{ 1001, 0, NULL, "pkl/odict1001.pkl" },
	};
	size_t i;
	char got[256];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vt_pkw w;
		struct run r;
		struct vt_pk *v;
		emit_batched(&w, cases[i].n, cases[i].is_list);
		if (cases[i].hex) {
			CHECK(hexeq(w.buf, w.len, cases[i].hex, got, sizeof(got)), "%s of %zu: %s, CPython %s",
			      cases[i].is_list ? "list" : "dict", cases[i].n, got, cases[i].hex);
		} else {
			size_t len = 0;
			unsigned char *want = slurp(cases[i].fixture, &len);
			CHECK(want && len == w.len && memcmp(want, w.buf, len) == 0,
			      "%s of %zu: %zu bytes, identical to CPython's %s (%zu bytes)",
			      cases[i].is_list ? "list" : "dict", cases[i].n, w.len, cases[i].fixture, len);
			free(want);
		}
		v = read_back(&r, &w);
		CHECK(v && v->kind == (cases[i].is_list ? VT_PK_LIST : VT_PK_DICT) &&
		      (cases[i].is_list ? v->u.seq.n : v->u.dict.n) == cases[i].n &&
		      (cases[i].n == 0 || is_int(cases[i].is_list ? v->u.seq.items[cases[i].n - 1] :
					      v->u.dict.vals[cases[i].n - 1], (int64_t)cases[i].n - 1)),
		      "%s of %zu reads back (%s)", cases[i].is_list ? "list" : "dict", cases[i].n,
		      r.rc ? r.err.msg : "ok");
		done(&r);
		vt_pkw_release(&w);
	}
}

/* Every fixture pickle unpickles with permissive hooks; every truncation is refused. */
static int allow_all(void *ctx, const char *module, const char *name, struct vt_err *err)
{
	(void)ctx;
	(void)err;
	return strcmp(module, "collections") == 0 && strcmp(name, "OrderedDict") == 0 ? TAG_ODICT : 0;
}

static int reduce_inert(void *ctx, struct vt_unpickler *u, struct vt_pk *fn, struct vt_pk *args,
			struct vt_pk **out, struct vt_err *err)
{
	(void)ctx;
	*out = vt_pk_new(u, fn->u.global.tag == TAG_ODICT ? VT_PK_DICT : VT_PK_OBJECT);
	if (!*out)
		return vt_err_set(err, VT_ENOMEM, "oom");
	if ((*out)->kind == VT_PK_DICT)
		return 0;
	(*out)->u.obj.cls = fn;
	(*out)->u.obj.args = args;
	return 0;
}

static const struct vt_pk_hooks permissive = { allow_all, pers_load, reduce_inert, NULL, NULL };

static void test_fixture_pickles(void)
{
	static const char *const names[] = { "pkl/sd.pkl", "pkl/sd_p4.pkl", "pkl/tiny_whole.pkl", "pkl/vgg11_bn_sd.pkl",
					     "pkl/list2002.pkl", "pkl/odict1001.pkl" };
	size_t i, k;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t len = 0, refused_n = 0;
		unsigned char *p = slurp(names[i], &len);
		struct run r;
		CHECK(p != NULL, "fixture %s/%s", fixtures, names[i]);
		if (!p)
			continue;
		run_h(&r, &permissive, p, len);
		CHECK(r.rc == 0 && r.pos == len, "%s unpickles to its end (%s)", names[i], r.rc ? r.err.msg : "ok");
		done(&r);
		for (k = 0; k < len; k++) {
			run_h(&r, &permissive, p, k);
			refused_n += r.rc != 0 && r.err.msg[0];
			done(&r);
		}
		CHECK(refused_n == len, "%s: all %zu truncations refused", names[i], len);
		free(p);
	}
}

int main(void)
{
	if (getenv("VT_FIXTURES"))
		fixtures = getenv("VT_FIXTURES");
	test_ints();
	test_floats();
	test_strings();
	test_containers();
	test_memo();
	test_stop();
	test_unknown();
	test_protocol0();
	test_objects();
	test_hostile_globals();
	test_deep();
	test_emit_numbers();
	test_emit_objects();
	test_emit_batches();
	test_fixture_pickles();
	return harness_done();
}
