/* test_pth.c - torch.save files (src/pth.c, src/pth_write.c) on real fixtures.
 *
 * The fixtures of tests/fixtures/ were written by Debian's python3-torch 1.13 through
 * tests/fixtures/make_fixtures.py: one small state_dict (SD below) in the zip container, the
 * legacy stream and protocol 4, VGG state_dicts and a whole model whose tensors are stride-0
 * views.  Tested: every tensor's dtype, shape, stride, offset, storage (and sharing) and
 * bytes; the writer's round trip; every truncation and many byte flips of every fixture,
 * which must fail cleanly or load, never crash; hostile pickles; the inputs in
 * tests/fixtures/crashes/ (found by fuzzing or built to exhaust time and memory).
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "vt_cast.h"
#include "vt_model.h"
#include "vt_pth.h"

static const char *fixtures = "tests/fixtures";
static char tmpdir[256];


static unsigned char *fixture(const char *name, size_t *len)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", fixtures, name);
	return harness_slurp(path, len);
}

/* ---- the SD fixture ------------------------------------------------------------------------ */

/* What make_fixtures.py's SD() holds. storage: index of the storage in first-met order. */
static const struct sd_tensor {
	const char *name;
	int dtype, ndim;
	int64_t size[2], stride[2], offset;
	int storage;
	uint64_t numel; /* of the storage */
} sd[] = {
	{ "f32", VT_F32, 2, { 2, 3 }, { 3, 1 }, 0, 0, 6 },
	{ "f16", VT_F16, 1, { 3 }, { 1 }, 0, 1, 3 },
	{ "bf16", VT_BF16, 1, { 2 }, { 1 }, 0, 2, 2 },
	{ "f64", VT_F64, 1, { 2 }, { 1 }, 0, 3, 2 },
	{ "i64", VT_I64, 1, { 3 }, { 1 }, 0, 4, 3 },
	{ "i32", VT_I32, 2, { 2, 2 }, { 2, 1 }, 0, 5, 4 },
	{ "u8", VT_U8, 1, { 5 }, { 1 }, 0, 6, 5 },
	{ "bool", VT_BOOL, 1, { 3 }, { 1 }, 0, 7, 3 },
	{ "t", VT_F32, 2, { 4, 3 }, { 1, 4 }, 0, 8, 12 },
	{ "head", VT_F32, 1, { 4 }, { 1 }, 0, 9, 10 },
	{ "tail", VT_F32, 2, { 2, 3 }, { 3, 1 }, 3, 9, 10 },
	{ "scalar", VT_F32, 0, { 0 }, { 0 }, 0, 10, 1 },
};
enum { SD_N = sizeof(sd) / sizeof(sd[0]), SD_STORAGES = 11 };

/* The expected bytes of storage i (little-endian, as the files hold them). */
static size_t sd_bytes(int i, unsigned char *out)
{
	static const float f32[] = { 0, 0.5f, 1, 1.5f, 2, 2.5f };
	static const uint16_t f16[] = { 0x3E00, 0xC000, 0x4280 }, bf16[] = { 0x3F80, 0xBF00 };
	static const double f64[] = { 3.141592653589793, 1e-300 };
	static const int64_t i64[] = { 1, -1, 1LL << 40 };
	static const int32_t i32[] = { 7, -8, 9, 10 };
	static const uint8_t u8[] = { 0, 255, 128, 1, 2 }, b[] = { 1, 0, 1 };
	float ar[12];
	int k;

	switch (i) {
	case 0: memcpy(out, f32, sizeof(f32)); return sizeof(f32);
	case 1: memcpy(out, f16, sizeof(f16)); return sizeof(f16);
	case 2: memcpy(out, bf16, sizeof(bf16)); return sizeof(bf16);
	case 3: memcpy(out, f64, sizeof(f64)); return sizeof(f64);
	case 4: memcpy(out, i64, sizeof(i64)); return sizeof(i64);
	case 5: memcpy(out, i32, sizeof(i32)); return sizeof(i32);
	case 6: memcpy(out, u8, sizeof(u8)); return sizeof(u8);
	case 7: memcpy(out, b, sizeof(b)); return sizeof(b);
	case 8:
	case 9:
		for (k = 0; k < 12; k++)
			ar[k] = (float)k;
		memcpy(out, ar, (i == 8 ? 12 : 10) * sizeof(float));
		return (i == 8 ? 12 : 10) * sizeof(float);
	default:
		ar[0] = 2.5f;
		memcpy(out, ar, 4);
		return 4;
	}
}

/* Checks pth against SD: names, metadata, sharing and bytes. */
static void check_sd(const char *what, struct vt_pth *pth)
{
	const struct vt_pk *root = pth->root;
	const struct vt_storage *stor[SD_STORAGES] = { 0 };
	size_t i, good_meta = 0, good_bytes = 0, distinct = 0;

	CHECK(root && root->kind == VT_PK_DICT && root->u.dict.n == SD_N, "%s: a dict of %d entries", what, SD_N);
	if (!root || root->kind != VT_PK_DICT || root->u.dict.n != SD_N)
		return;
	for (i = 0; i < SD_N; i++) {
		const struct vt_tensor *t = vt_pk_tensor(root->u.dict.vals[i]);
		const struct sd_tensor *w = &sd[i];
		int ok = vt_pk_is_str(root->u.dict.keys[i], w->name) && t && t->dtype == w->dtype &&
			 t->ndim == w->ndim && t->offset == w->offset && t->storage->numel == w->numel &&
			 t->storage->dtype == w->dtype && !t->requires_grad && !t->is_param &&
			 t->storage->src == VT_STORAGE_FILE && t->storage->resolved;
		int d;
		for (d = 0; ok && d < w->ndim; d++)
			ok = t->size[d] == w->size[d] && t->stride[d] == w->stride[d];
		CHECK(ok, "%s: '%s' is %s, shape/stride/offset as saved, on a %llu-element storage", what, w->name,
		      vt_dtype_info(w->dtype)->name, (unsigned long long)w->numel);
		good_meta += ok;
		if (!t)
			continue;
		if (!stor[w->storage]) {
			unsigned char want[64], got[64];
			size_t n = sd_bytes(w->storage, want);
			struct vt_err err = { 0, "" };
			int rc;
			stor[w->storage] = t->storage;
			distinct++;
			rc = vt_storage_nbytes(t->storage) == n ? vt_src_read(&pth->src, t->storage->offset, got, n, &err) : -1;
			CHECK(rc == 0 && memcmp(got, want, n) == 0, "%s: storage of '%s': %zu bytes as torch wrote them", what,
			      w->name, n);
			good_bytes += rc == 0 && memcmp(got, want, n) == 0;
		} else {
			CHECK(stor[w->storage] == t->storage, "%s: '%s' shares the storage of an earlier tensor", what,
			      w->name);
		}
	}
	CHECK(distinct == SD_STORAGES && pth->nstorages == SD_STORAGES,
	      "%s: %zu distinct storages, %zu in the file (want %d)", what, distinct, pth->nstorages, SD_STORAGES);
	CHECK(good_meta == SD_N && good_bytes == SD_STORAGES, "%s: all tensors and bytes match", what);
}

static int open_fixture(struct vt_pth *pth, const char *name, struct vt_err *err)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", fixtures, name);
	return vt_pth_open(pth, path, err);
}

static void test_read(void)
{
	static const struct {
		const char *name;
		int is_zip;
	} files[] = { { "sd.pth", 1 }, { "sd_legacy.pth", 0 }, { "sd_p4.pth", 1 } };
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct vt_pth pth;
		struct vt_err err = { 0, "" };
		int rc = open_fixture(&pth, files[i].name, &err);
		CHECK(rc == 0 && pth.is_zip == files[i].is_zip, "open %s (%s container): %s", files[i].name,
		      files[i].is_zip ? "zip" : "legacy", rc ? err.msg : "ok");
		if (rc == 0) {
			check_sd(files[i].name, &pth);
			rc = vt_pth_verify(&pth, &err);
			CHECK(rc == 0, "%s verifies (%s)", files[i].name, rc ? err.msg : "ok");
			if (files[i].is_zip)
				CHECK(strcmp(pth.zip.prefix, i == 0 ? "sd" : "sd_p4") == 0, "%s: archive folder '%s'",
				      files[i].name, pth.zip.prefix);
		}
		vt_pth_close(&pth);
	}
	{
		struct vt_pth pth;
		struct vt_err err = { 0, "" };
		char path[512];
		int rc;
		snprintf(path, sizeof(path), "%s/no-such-file.pth", tmpdir);
		rc = vt_pth_open(&pth, path, &err);
		CHECK(rc == VT_ENOTFOUND && strstr(err.msg, "no-such-file.pth"), "a missing file: %s", err.msg);
		vt_pth_close(&pth);
	}
}

/* ---- the writer ------------------------------------------------------------------------------ */

static void test_write(void)
{
	static const char *const files[] = { "sd.pth", "sd_legacy.pth", "sd_p4.pth" };
	size_t i, k;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct vt_pth pth, back;
		struct vt_err err = { 0, "" };
		struct vt_named named[SD_N];
		struct vt_meta meta[2] = { { "", 1 }, { "sub", 2 } };
		char path[512], what[600];
		int rc = open_fixture(&pth, files[i], &err);
		if (rc || pth.root->kind != VT_PK_DICT || pth.root->u.dict.n != SD_N) {
			CHECK(0, "%s: %s", files[i], err.msg);
			vt_pth_close(&pth);
			continue;
		}
		for (k = 0; k < SD_N; k++) {
			named[k].name = pth.root->u.dict.keys[k]->u.str.s;
			named[k].t = vt_pk_tensor(pth.root->u.dict.vals[k]);
		}
		snprintf(path, sizeof(path), "%s/rewrite.pth", tmpdir);
		rc = vt_pth_write_state_dict(path, &pth.src, named, SD_N, meta, 2, &err);
		CHECK(rc == 0, "%s: write its tensors to a new file (%s)", files[i], rc ? err.msg : "ok");
		snprintf(what, sizeof(what), "%s rewritten", files[i]);
		rc = rc ? rc : vt_pth_open(&back, path, &err);
		if (rc == 0) {
			const struct vt_pk *md = vt_pk_dict_get(back.root->u.dict.attrs, "_metadata");
			CHECK(back.is_zip && strcmp(back.zip.prefix, "archive") == 0, "%s: zip, folder 'archive'", what);
			check_sd(what, &back);
			CHECK(vt_pth_verify(&back, &err) == 0, "%s: CRCs verify (%s)", what, err.msg);
			CHECK(md && md->kind == VT_PK_DICT && md->u.dict.n == 2 &&
			      vt_pk_dict_get(vt_pk_dict_get(md, "sub"), "version") &&
			      vt_pk_dict_get(vt_pk_dict_get(md, "sub"), "version")->u.i == 2,
			      "%s: BUILD set _metadata {'': {'version': 1}, 'sub': {'version': 2}}", what);
			vt_pth_close(&back);
		} else {
			CHECK(0, "%s: reopen: %s", what, err.msg);
		}
		unlink(path);
		vt_pth_close(&pth);
	}
}

/* ---- corruption ------------------------------------------------------------------------------ */

static int model_rc;          /* what vt_model_from_pth gave in the last open_mem */
static char model_msg[512];
static int weights_rc;        /* what vt_weights_find + vt_weights_state_dict gave */
static char weights_msg[512];
static int repr_ok;           /* vt_mod_repr printed the module tree */

/* Opens an exact-size heap copy (so a sanitizer sees any read past the end) and, when that
 * works, exercises everything built on top.  Returns the open's result. */
static int open_mem(const unsigned char *data, size_t len, char *msg, size_t msgsize)
{
	unsigned char *copy = malloc(len ? len : 1);
	struct vt_src src;
	struct vt_pth pth;
	struct vt_err err = { 0, "" };
	int rc;

	memcpy(copy, data, len);
	vt_src_mem(&src, copy, len, "mem");
	rc = vt_pth_open_src(&pth, &src, &err);
	model_rc = 1;
	model_msg[0] = '\0';
	if (rc == 0) {
		struct vt_model m;
		vt_pth_verify(&pth, &err);
		err.msg[0] = '\0';
		model_rc = vt_model_from_pth(&m, &pth, &err);
		snprintf(model_msg, sizeof(model_msg), "%s", err.msg);
		{ /* the any-model readers, on the same tree */
			struct vt_weights w;
			struct vt_named *t = NULL;
			struct vt_meta *meta = NULL;
			size_t n = 0, nmeta = 0;
			err.msg[0] = '\0';
			weights_rc = vt_weights_find(&pth, NULL, &w, &err);
			if (weights_rc == 0 && (weights_rc = vt_weights_state_dict(&w, &t, &n, &meta, &nmeta, &err)) == 0) {
				vt_named_free(t, n);
				vt_meta_free(meta, nmeta);
			}
			repr_ok = 0;
			if (weights_rc == 0 && w.kind == VT_WEIGHTS_MODULE) {
				char *text = vt_mod_repr(w.node, VT_TORCH_TEXT_1_13);
				repr_ok = text != NULL;
				free(text);
			}
			snprintf(weights_msg, sizeof(weights_msg), "%s", err.msg);
		}
		if (model_rc == 0) {
			struct vt_named *t = NULL;
			size_t n = 0;
			free(vt_model_repr(&m));
			if (vt_model_state_dict(&m, NULL, &t, &n, &err) == 0)
				vt_named_free(t, n);
			vt_model_release(&m);
		}
	} else if (msg) {
		snprintf(msg, msgsize, "%s", err.msg);
	}
	if (rc && !err.msg[0])
		rc = 1; /* an error without a message fails the caller's check */
	vt_pth_close(&pth);
	free(copy);
	return rc;
}

static const char *const all_fixtures[] = { "sd.pth", "sd_legacy.pth", "sd_p4.pth", "vgg11_sd.pth",
					     "vgg11_bn_sd.pth", "tiny_whole.pth" };

static void test_truncation(void)
{
	size_t i, k;

	for (i = 0; i < sizeof(all_fixtures) / sizeof(all_fixtures[0]); i++) {
		size_t len = 0, clean = 0;
		unsigned char *f = fixture(all_fixtures[i], &len);
		char msg[512] = "", last[512] = "";
		CHECK(f && open_mem(f, len, msg, sizeof(msg)) == 0, "%s opens from memory (%s)", all_fixtures[i], msg);
		if (!f)
			continue;
		for (k = 0; k < len; k++) {
			int rc = open_mem(f, k, msg, sizeof(msg));
			clean += rc < 0;
			if (rc < 0 && k == len / 2)
				snprintf(last, sizeof(last), "%s", msg);
		}
		CHECK(clean == len, "%s: all %zu truncations fail cleanly with a message (at %zu bytes: '%s')",
		      all_fixtures[i], len, len / 2, last);
		free(f);
	}
}

/* The data.pkl record of a zip fixture: [*off, *off + *n). */
static int pkl_region(const unsigned char *f, size_t len, uint64_t *off, uint64_t *n)
{
	struct vt_src src;
	struct vt_zip zip;
	struct vt_err err = { 0, "" };
	const struct vt_zip_entry *e;

	vt_src_mem(&src, f, len, "mem");
	if (vt_zip_open(&zip, &src, &err))
		return -1;
	e = vt_zip_find(&zip, "data.pkl");
	if (e) {
		*off = e->data_offset;
		*n = e->size;
	}
	vt_zip_release(&zip);
	return e ? 0 : -1;
}

static void flip_sweep(const char *name, int pkl_only)
{
	size_t len = 0, i, ok = 0, failed = 0, total = 0;
	uint64_t from = 0, n;
	unsigned char *f = fixture(name, &len), *g;

	if (!f) {
		CHECK(0, "fixture %s", name);
		return;
	}
	n = len;
	if (pkl_only && pkl_region(f, len, &from, &n)) {
		CHECK(0, "%s: no data.pkl", name);
		free(f);
		return;
	}
	g = malloc(len);
	for (i = (size_t)from; i < from + n; i++) {
		int rc;
		memcpy(g, f, len);
		g[i] ^= 0xFF;
		rc = open_mem(g, len, NULL, 0);
		ok += rc == 0;
		failed += rc < 0;
		total++;
	}
	CHECK(ok + failed == total && failed > 0,
	      "%s: %zu byte flips in [%llu, %llu): %zu load, %zu fail cleanly, none crashes", name, total,
	      (unsigned long long)from, (unsigned long long)(from + n), ok, failed);
	free(g);
	free(f);
}

static void test_flips(void)
{
	flip_sweep("sd_legacy.pth", 0);
	flip_sweep("sd.pth", 1);
	flip_sweep("sd_p4.pth", 1);
	flip_sweep("vgg11_bn_sd.pth", 1);
	flip_sweep("tiny_whole.pth", 1);
}

/* ---- hostile files --------------------------------------------------------------------------- */

static const unsigned char legacy_head[] = {
	0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e, /* magic */
	0x80, 0x02, 'M', 0xe9, 0x03, '.',                                                             /* 1001 */
	0x80, 0x02, '}', '.',                                                                         /* sys_info */
};

/* A legacy stream whose object is pkl, then an empty key list (malloc'ed, *len bytes). */
static unsigned char *legacy_file(const char *pkl, size_t n, size_t *len)
{
	unsigned char *buf = malloc(sizeof(legacy_head) + n + 4);

	memcpy(buf, legacy_head, sizeof(legacy_head));
	*len = sizeof(legacy_head);
	memcpy(buf + *len, pkl, n);
	*len += n;
	memcpy(buf + *len, "\x80\x02].", 4);
	*len += 4;
	return buf;
}

/* The same stream; returns the open result. */
static int legacy_with(const char *pkl, size_t n, char *msg, size_t msgsize)
{
	size_t len;
	unsigned char *buf = legacy_file(pkl, n, &len);
	int rc = open_mem(buf, len, msg, msgsize);

	free(buf);
	return rc;
}

/* A zip archive with data.pkl = pkl; returns the open result. */
static int zip_with(const char *pkl, size_t n, char *msg, size_t msgsize)
{
	struct vt_out out;
	struct vt_zipw w;
	struct vt_err err = { 0, "" };
	char path[512];
	unsigned char *f;
	size_t len = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/hostile.pth", tmpdir);
	rc = vt_out_open(&out, path, &err);
	if (rc == 0)
		rc = vt_zipw_init(&w, &out, "archive", &err);
	if (rc == 0)
		rc = vt_zipw_add(&w, "data.pkl", pkl, n, &err);
	if (rc == 0) /* storage '0' of 1 float, for pickles that want one */
		rc = vt_zipw_add(&w, "data/0", "\0\0\0\0", 4, &err);
	if (rc == 0)
		rc = vt_zipw_add(&w, "version", "3\n", 2, &err);
	if (rc == 0)
		rc = vt_zipw_finish(&w, &err);
	vt_zipw_release(&w);
	if (rc == 0)
		rc = vt_out_commit(&out, &err);
	else
		vt_out_abort(&out);
	if (rc) {
		snprintf(msg, msgsize, "writing: %s", err.msg);
		return 1;
	}
	f = harness_slurp(path, &len);
	unlink(path);
	rc = open_mem(f, len, msg, msgsize);
	free(f);
	return rc;
}

#define PK(s) s, sizeof(s) - 1

static void test_hostile(void)
{
	static const struct {
		const char *what, *pkl;
		size_t len;
		int want;
		const char *msg;
	} cases[] = {
#define C(what, p, want, msg) { what, PK(p), want, msg }
		C("os.system", "\x80\x02" "cos\nsystem\nX\x02\x00\x00\x00id\x85R.", VT_EUNSAFE,
		  "global 'os.system' is not allowed"),
		C("builtins.exec via STACK_GLOBAL", "\x80\x04\x8c\x08" "builtins\x8c\x04" "exec\x93.", VT_EUNSAFE,
		  "global 'builtins.exec' is not allowed"),
		C("torch.load", "\x80\x02" "ctorch\nload\n.", VT_EUNSAFE, "global 'torch.load' is not allowed"),
		C("subprocess.Popen", "\x80\x02" "csubprocess\nPopen\n]X\x02\x00\x00\x00ida\x85R.", VT_EUNSAFE,
		  "global 'subprocess.Popen' is not allowed"),
		C("builtins.eval", "\x80\x02" "c__builtin__\neval\nX\x01\x00\x00\x001\x85R.", VT_EUNSAFE,
		  "global '__builtin__.eval' is not allowed"),
		C("a __reduce__ trick: getattr(os, 'system')", "\x80\x02" "c__builtin__\ngetattr\ncos\npath\n.", VT_EUNSAFE,
		  "global '__builtin__.getattr' is not allowed"),
		C("posix.system", "\x80\x02" "cposix\nsystem\n.", VT_EUNSAFE, "global 'posix.system' is not allowed"),
		C("nt.system", "\x80\x02" "cnt\nsystem\n.", VT_EUNSAFE, "global 'nt.system' is not allowed"),
		C("runpy._run_code", "\x80\x02" "crunpy\n_run_code\n.", VT_EUNSAFE, "'runpy._run_code' is not allowed"),
		C("importlib.import_module", "\x80\x02" "cimportlib\nimport_module\n.", VT_EUNSAFE,
		  "'importlib.import_module' is not allowed"),
		C("pickle.loads", "\x80\x02" "cpickle\nloads\n.", VT_EUNSAFE, "'pickle.loads' is not allowed"),
		C("ctypes.CDLL", "\x80\x02" "cctypes\nCDLL\n.", VT_EUNSAFE, "'ctypes.CDLL' is not allowed"),
		C("socket.socket", "\x80\x02" "csocket\nsocket\n.", VT_EUNSAFE, "'socket.socket' is not allowed"),
		C("types.CodeType", "\x80\x02" "ctypes\nCodeType\n.", VT_EUNSAFE, "'types.CodeType' is not allowed"),
		C("a dotted name reaching a dunder", "\x80\x04\x8c\x08" "builtins\x8c\x0e" "print.__self__\x93.",
		  VT_EUNSAFE, "'builtins.print.__self__' is not allowed"),
		C("a dotted name through a module's import", "\x80\x04\x8c\x05" "torch\x8c\x17" "serialization.os.system\x93.",
		  VT_EUNSAFE, "'torch.serialization.os.system' is not allowed"),
		C("a name holding a newline", "\x80\x04\x8c\x05" "torch\x8c\x03" "a\nb\x93.", VT_EFORMAT, "control character"),
		C("a Python 2 alias (StringIO)", "\x80\x02" "cStringIO\nopen\n.", VT_EUNSAFE, "'StringIO.open' is not allowed"),
		C("os.path.join (the whole os module)", "\x80\x02" "cos.path\njoin\n.", VT_EUNSAFE,
		  "'os.path.join' is not allowed"),
		C("protocol 0 INST of os.system", "(S'id'\nios\nsystem\n.", VT_EUNSAFE, "'os.system' is not allowed"),
		C("a persistent id that is not a storage", "\x80\x02X\x01\x00\x00\x00xQ.", VT_EFORMAT,
		  "persistent id is not a tuple"),
		C("a storage of 2^40 elements in a small file",
		  "\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpu"
		  "\x8a\x06\x00\x00\x00\x00\x00\x01tQ.",
		  VT_EFORMAT, "declares 1099511627776 elements"),
		C("a tensor past its storage",
		  "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
		  "X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x01tQK\x00K\x02\x85K\x01\x85\x89}tR.",
		  VT_EFORMAT, "reaches element 1, past the storage's 1 elements"),
#undef C
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char msg[512] = "";
		int rc = legacy_with(cases[i].pkl, cases[i].len, msg, sizeof(msg));
		CHECK(rc == cases[i].want && strstr(msg, cases[i].msg), "legacy, %s: %d (%s)", cases[i].what, rc, msg);
		rc = zip_with(cases[i].pkl, cases[i].len, msg, sizeof(msg));
		/* in a zip the record's declared size is the check (a deflated one may be larger
		 * than the file) */
		CHECK(rc == cases[i].want && (strstr(msg, cases[i].msg) || strstr(msg, "needs 4398046511104")),
		      "zip, %s: %d (%s)", cases[i].what, rc, msg);
	}
}

/* Names that are not denylisted are inert symbols: they load, as records, never called. */
static void test_inert(void)
{
	static const struct {
		const char *what, *pkl;
		size_t len;
		int call;
		const char *cls;
	} cases[] = {
#define C(what, p, call, cls) { what, PK(p), call, cls }
		C("copyreg._reconstructor of a class", "\x80\x02" "ccopyreg\n_reconstructor\nctest\nK\nc__builtin__\nobject\nN\x87R.",
		  0, "K"),
		C("NEWOBJ of torch.nn.Module", "\x80\x02" "ctorch.nn.modules.module\nModule\n)\x81}b.", 0, "Module"),
		C("a storage class of another module, called", "\x80\x02" "cnumpy\nFloatStorage\n)R.", 1, "FloatStorage"),
		C("calling a class", "\x80\x02" "ctorch.nn.modules.conv\nConv2d\n)R.", 1, "Conv2d"),
		C("a user class of __main__", "\x80\x02" "c__main__\nTudui\n)\x81}X\x08\x00\x00\x00trainingI01\nsb.", 0, "Tudui"),
#undef C
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vt_src src;
		struct vt_pth pth;
		struct vt_err err = { 0 };
		unsigned char *f;
		size_t n;
		int rc;
		f = legacy_file(cases[i].pkl, cases[i].len, &n);
		vt_src_mem(&src, f, n, "t");
		rc = vt_pth_open_src(&pth, &src, &err);
		CHECK(rc == 0 && pth.root->kind == VT_PK_OBJECT && pth.root->u.obj.call == cases[i].call &&
		      vt_pk_obj_class(pth.root) && strcmp(vt_pk_obj_class(pth.root), cases[i].cls) == 0,
		      "%s: an inert %s record (%s)", cases[i].what, cases[i].call ? "call" : "object", rc ? err.msg : "ok");
		vt_pth_close(&pth);
		free(f);
	}
}

/* Inputs built to take exponential time or memory, or deep C recursion: each must be refused
 * quickly. */
static void test_exhaustion(void)
{
	enum { LEVELS = 200000 };
	char *pkl = malloc(4 << 20), msg[512] = ""; /* the largest input below is 3 MB */
	size_t n = 0;
	int i, k, rc;

#define PUT(s) (memcpy(pkl + n, s, sizeof(s) - 1), n += sizeof(s) - 1)
	/* a module tree 16 deep in which each Sequential holds the one below 8 times, shared
	 * through the memo: 8^16 modules for a reader that copies a subtree each time it meets it */
	PUT("\x80\x02" "ctorch.nn.modules.activation\nReLU\n)\x81}X\x07\x00\x00\x00inplace\x89sbq\x01" "0");
	for (i = 0; i < 16; i++) {
		if (i < 15)
			PUT("ctorch.nn.modules.container\nSequential\n)\x81}X\x08\x00\x00\x00_modules}(");
		else /* a VGG at the root, so that the VGG reader walks it too */
			PUT("ctorchvision.models.vgg\nVGG\n)\x81}X\x08\x00\x00\x00_modules}(");
		for (k = 0; k < 8; k++) {
			PUT("X\x01\x00\x00\x00");
			pkl[n++] = (char)('0' + k);
			PUT("h\x01");
		}
		PUT("usbq\x01" "0");
	}
	PUT("h\x01.");
	rc = legacy_with(pkl, n, msg, sizeof(msg));
	CHECK(rc == 0 && model_rc == VT_EUNSUPPORTED && strstr(model_msg, "more than 4096 modules"),
	      "a module DAG of 8^16 paths in %zu bytes: the model is refused (%s)", n, rc ? msg : model_msg);
	CHECK(rc == 0 && weights_rc == VT_EUNSUPPORTED && strstr(weights_msg, "more than 100000 modules") && !repr_ok,
	      "a module DAG of 8^16 paths: its state_dict and its text are refused (%s)", rc ? msg : weights_msg);

	/* _rebuild_from_type_v2(_rebuild_from_type_v2, None, (... LEVELS deep ...), {}) */
	n = 0;
	PUT("\x80\x02" "ctorch._tensor\n_rebuild_from_type_v2\nq\x00" "0)q\x01" "0");
	for (i = 0; i < LEVELS; i++)
		PUT("(h\x00Nh\x01}tq\x01" "0");
	PUT("h\x00h\x01R.");
	rc = legacy_with(pkl, n, msg, sizeof(msg));
	/* only torch's own tensor rebuilders are unwrapped: anything else, itself included, is an
	 * inert call record, so no level recurses */
	CHECK(rc == 0 && weights_rc == VT_ENOTFOUND,
	      "_rebuild_from_type_v2 nested %d deep: an inert call record, read without deep recursion (%s)", LEVELS,
	      rc ? msg : "ok");

	/* OrderedDict(items) called 6000 times on one shared list of 16000 pairs: 3 GB of dicts
	 * from 68 KB, unless the unpickler bounds what its values take per input byte */
	n = 0;
	PUT("\x80\x02" "ccollections\nOrderedDict\nq\x00" "0K\x01K\x01\x86q\x01" "0](");
	for (i = 0; i < 16000; i++)
		PUT("h\x01");
	PUT("eq\x02" "0(");
	for (i = 0; i < 6000; i++)
		PUT("h\x00h\x02\x85R");
	PUT("l.");
	rc = legacy_with(pkl, n, msg, sizeof(msg));
	CHECK(rc == VT_ENOMEM && strstr(msg, "bytes per byte of pickle"),
	      "6000 OrderedDicts of one 16000-item list (%zu bytes): refused (%s)", n, msg);

	/* a state_dict of 100000 layers under 'features' (one tensor, BINGET each time): the
	 * grouping of keys by layer is quadratic, so it stops at 1024 layers */
	n = 0;
	PUT("\x80\x02" "ccollections\nOrderedDict\n)Rq\x00" "ctorch._utils\n_rebuild_tensor_v2\n("
	    "(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x01tQ"
	    "K\x00K\x01\x85K\x01\x85\x89" "ccollections\nOrderedDict\n)RtRq\x01" "0(");
	for (i = 0; i < 100000; i++) {
		char key[40];
		int kl = snprintf(key, sizeof(key), "features.%d.weight", i);
		pkl[n++] = 'X';
		pkl[n++] = (char)kl;
		memcpy(pkl + n, "\0\0\0", 3);
		n += 3;
		memcpy(pkl + n, key, (size_t)kl);
		n += (size_t)kl;
		PUT("h\x01");
	}
	PUT("u.");
	rc = zip_with(pkl, n, msg, sizeof(msg));
	CHECK(rc == 0 && model_rc == VT_EFORMAT && strstr(model_msg, "more than 1024 layers in 'features'"),
	      "a state_dict of 100000 layers: refused (%s)", rc ? msg : model_msg);
#undef PUT
	free(pkl);
}

/* ---- regression inputs ------------------------------------------------------------------------ */

static void test_crashes(void)
{
	char dir[512];
	DIR *d;
	struct dirent *de;
	int files = 0;

	snprintf(dir, sizeof(dir), "%s/crashes", fixtures);
	d = opendir(dir);
	if (!d) {
		CHECK(0, "no folder %s", dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char path[1024], msg[512] = "";
		unsigned char *f;
		size_t len = 0;
		int rc;
		size_t nlen = strlen(de->d_name);
		if (de->d_name[0] == '.' || nlen < 4 || strcmp(de->d_name + nlen - 4, ".pth") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = harness_slurp(path, &len);
		if (!f)
			continue;
		rc = open_mem(f, len, msg, sizeof(msg));
		CHECK(rc <= 0, "crashes/%s (%zu bytes): %s", de->d_name, len, rc ? msg : "loads");
		free(f);
		files++;
	}
	closedir(d);
	CHECK(files >= 2, "%d regression inputs", files);
}

/* ---- casts: chunking and streaming ------------------------------------------------------ */

struct collect {
	unsigned char *p;
	size_t used, cap;
	int calls;
};

static int collect_put(void *ctx, const void *p, size_t n, struct vt_err *err)
{
	struct collect *c = ctx;

	(void)err;
	if (c->used + n > c->cap)
		return vt_err_set(err, VT_ENOMEM, "collector full");
	memcpy(c->p + c->used, p, n);
	c->used += n;
	c->calls++;
	return 0;
}

/* A caster fed in pieces of 1..9 bytes (elements split across pieces) gives the bytes of one
 * vt_cast_elems over the whole; a storage cast twice (float64 -> float32 -> bfloat16) streams
 * a sub-range exactly; a half element at the end is an error. */
static void test_cast_stream(void)
{
	enum { N = 3001 };
	static double d[N];
	static float f[N];
	static uint16_t want[N], got[N];
	struct collect c = { (unsigned char *)got, 0, sizeof(got), 0 };
	struct vt_caster k;
	struct vt_err err = { 0 };
	struct vt_storage mem = { 0 }, to32 = { 0 }, to16 = { 0 };
	size_t at = 0, piece = 1, i;
	int rc;

	for (i = 0; i < N; i++)
		d[i] = ldexp((double)((int64_t)(i * 2654435761u % 100003) - 50000), (int)(i % 61) - 40);
	d[7] = NAN;
	d[8] = -INFINITY;
	for (i = 0; i < N; i++)
		f[i] = (float)d[i];
	vt_cast_elems(VT_BF16, want, VT_F32, f, N);
	rc = vt_caster_init(&k, VT_F32, VT_BF16, collect_put, &c, &err);
	while (rc == 0 && at < sizeof(f)) {
		size_t n = piece < sizeof(f) - at ? piece : sizeof(f) - at;
		rc = vt_caster_put(&k, (unsigned char *)f + at, n, &err);
		at += n;
		piece = piece % 9 + 1;
	}
	CHECK(rc == 0 && vt_caster_end(&k, &err) == 0 && c.used == sizeof(want) && memcmp(got, want, sizeof(want)) == 0,
	      "caster fed 1..9 bytes at a time: the bytes of one cast of the whole (%zu bytes)", c.used);
	CHECK(want[7] == 0xffff, "float32 NaN -> bfloat16 0xFFFF, as torch's vectorized cast: 0x%04x", want[7]);

	c.used = 0;
	vt_caster_init(&k, VT_F32, VT_F16, collect_put, &c, &err);
	vt_caster_put(&k, f, 6, &err);
	rc = vt_caster_end(&k, &err);
	CHECK(rc == VT_EFORMAT && c.used == 2 && strstr(err.msg, "2 bytes into an element"),
	      "6 bytes of float32: one element out, then an error: %s", err.msg);

	mem.key = "m";
	mem.dtype = VT_F64;
	mem.numel = N;
	mem.src = VT_STORAGE_MEM;
	mem.mem = d;
	to32 = mem;
	to32.dtype = VT_F32;
	to32.src = VT_STORAGE_CAST;
	to32.cast_of = &mem;
	to16 = to32;
	to16.dtype = VT_BF16;
	to16.cast_of = &to32;
	c.used = 0;
	vt_cast_elems(VT_BF16, want, VT_F32, f, N);
	rc = vt_storage_stream(&to16, NULL, 100, 2000, collect_put, &c, &err);
	CHECK(rc == 0 && c.used == 4000 && memcmp(got, want + 100, 4000) == 0,
	      "a float64 storage cast to float32 then bfloat16: elements 100..2100 streamed exactly (rc %d)", rc);
	rc = vt_storage_stream(&to16, NULL, 2000, N, collect_put, &c, &err);
	CHECK(rc == VT_EFORMAT, "a range past the storage's end is refused: %s", err.msg);
}

/* A generated storage streams the bytes vt_storage_read makes whole (blocks made on several
 * threads either way), whatever the range; block 0 is the storage seed's own stream. */
static void test_generated(void)
{
	struct vt_storage g = { 0 };
	struct vt_err err = { 0 };
	uint64_t n = 16 * 262144 * 2 + 262144 + 1001; /* two groups of 16 blocks, one block, a part */
	float *whole = NULL, *part = malloc(3000 * sizeof(float)), first[8];
	unsigned char *all = malloc((size_t)n * 4);
	struct collect c = { NULL, 0, (size_t)n * 4, 0 };
	struct vt_rng r;
	int rc, i, same = 1;

	g.key = "g";
	g.dtype = VT_F32;
	g.numel = n;
	g.src = VT_STORAGE_INIT;
	g.init.kind = VT_INIT_NORMAL;
	g.init.a = 0.5;
	g.init.seed = 12345;
	c.p = all;
	rc = vt_storage_read(&g, NULL, (void **)&whole, &err);
	CHECK(rc == 0 && vt_storage_stream(&g, NULL, 0, n, collect_put, &c, &err) == 0 && c.used == n * 4 &&
	      memcmp(c.p, whole, (size_t)n * 4) == 0, "a generated storage of %llu floats: streamed = read whole",
	      (unsigned long long)n);
	c.used = 0;
	c.p = (unsigned char *)part;
	c.cap = 3000 * sizeof(float);
	rc = vt_storage_stream(&g, NULL, n - 262144 - 2000, 3000, collect_put, &c, &err);
	CHECK(rc == 0 && c.used == 12000 && memcmp(part, whole + (n - 262144 - 2000), 12000) == 0,
	      "a range across a block boundary streams the same values");
	vt_rng_seed(&r, 12345);
	vt_init_fill(&r, &g.init, first, 8);
	for (i = 0; i < 8; i++)
		same &= first[i] == whole[i];
	CHECK(same, "block 0 is the seed's own stream");
	vt_rng_seed(&r, 99);
	for (i = 0, same = 1; i < 1001; i++) /* the batched fill = one vt_rng_normal per value */
		part[i] = (float)(0.5 * vt_rng_normal(&r));
	vt_rng_seed(&r, 99);
	vt_init_fill(&r, &g.init, part + 1001, 1001);
	for (i = 0; i < 1001; i++)
		same &= part[i] == part[1001 + i];
	CHECK(same, "the batched normal fill gives vt_rng_normal's values, in order");
	CHECK(whole[262144] != whole[0] && whole[262144] != first[0], "block 1 has a stream of its own");
	free(whole);
	free(part);
	free(all);
}

int main(void)
{
	if (getenv("VT_FIXTURES"))
		fixtures = getenv("VT_FIXTURES");
	snprintf(tmpdir, sizeof(tmpdir), "%s/vt_test_pth.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_read();
	test_write();
	test_truncation();
	test_flips();
	test_hostile();
	test_inert();
	test_exhaustion();
	test_crashes();
	test_cast_stream();
	test_generated();
	rmdir(tmpdir);
	return harness_done();
}
