/* test_module.c - the any-model readers (src/module.c, src/module_repr.c), the tree writer
 * (src/pth_tree.c) and the scanner (src/scan.c), on the fixtures of tests/fixtures/any/
 * (made by make_any_fixtures.py with Debian's torch 1.13): known answers Python gave, and
 * every fixture truncated at every length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "vt_module.h"
#include "vt_pth.h"
#include "vt_scan.h"

static const char *fixtures = "tests/fixtures";

static int open_any(struct vt_pth *pth, const char *name, struct vt_err *err)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/any/%s", fixtures, name);
	return vt_pth_open(pth, path, err);
}

static char *slurp_text(const char *name)
{
	char path[512];
	size_t n;

	snprintf(path, sizeof(path), "%s/any/%s", fixtures, name);
	return (char *)harness_slurp(path, &n);
}

/* The state_dict names joined by newlines, as tiny_user.keys lists them. */
static char *names_text(const struct vt_named *t, size_t n)
{
	size_t i, len = 1;
	char *s;

	for (i = 0; i < n; i++)
		len += strlen(t[i].name) + 1;
	s = malloc(len);
	s[0] = '\0';
	for (i = 0; i < n; i++) {
		strcat(s, t[i].name);
		strcat(s, "\n");
	}
	return s;
}

static void test_user_class(void)
{
	static const char *const files[] = { "tiny_user.pth", "tiny_user_legacy.pth" };
	char *want_text = slurp_text("tiny_user.txt"), *want_keys = slurp_text("tiny_user.keys");
	size_t f;

	CHECK(want_text && want_keys, "fixtures tiny_user.txt and .keys");
	for (f = 0; f < 2 && want_text && want_keys; f++) {
		struct vt_pth pth;
		struct vt_err err = { 0, "" };
		struct vt_weights w;
		struct vt_named *t = NULL;
		struct vt_meta *meta = NULL;
		size_t n = 0, nmeta = 0, i;
		char *text, *keys;
		int rc = open_any(&pth, files[f], &err);
		CHECK(rc == 0, "%s opens: a class of __main__ is an inert record (%s)", files[f], err.msg);
		if (rc)
			continue;
		rc = vt_weights_find(&pth, NULL, &w, &err);
		CHECK(rc == 0 && w.kind == VT_WEIGHTS_MODULE && w.where[0] == '\0', "%s: a module tree at the root (%s)",
		      files[f], err.msg);
		text = rc ? NULL : vt_mod_repr(w.node, VT_TORCH_TEXT_1_13);
		/* print() adds the newline that the text lacks */
		CHECK(text && strlen(text) + 1 == strlen(want_text) && strncmp(text, want_text, strlen(text)) == 0,
		      "%s: print(model) as Python printed it", files[f]);
		free(text);
		rc = rc ? rc : vt_weights_state_dict(&w, &t, &n, &meta, &nmeta, &err);
		keys = rc ? NULL : names_text(t, n);
		CHECK(keys && strcmp(keys, want_keys) == 0, "%s: state_dict() names in order, the non-persistent buffer left out",
		      files[f]);
		free(keys);
		for (i = 0; i < nmeta && strcmp(meta[i].prefix, "body.1") != 0; i++)
			;
		CHECK(rc == 0 && nmeta == 6 && i < nmeta && meta[i].version == 2 && meta[0].prefix[0] == '\0',
		      "%s: _metadata of 6 modules, BatchNorm2d at version 2", files[f]);
		vt_named_free(t, n);
		vt_meta_free(meta, nmeta);
		vt_pth_close(&pth);
	}
	free(want_text);
	free(want_keys);
}

static void test_script_and_dicts(void)
{
	struct vt_pth pth;
	struct vt_err err = { 0, "" };
	struct vt_weights w;
	struct vt_named *t = NULL;
	size_t n = 0;
	const struct vt_pk *v;
	int rc;

	rc = open_any(&pth, "tiny_script.pt", &err);
	CHECK(rc == 0 && pth.is_torchscript, "TorchScript archive opens (%s)", err.msg);
	if (rc == 0) {
		rc = vt_weights_find(&pth, NULL, &w, &err);
		CHECK(rc == 0 && w.kind == VT_WEIGHTS_SCRIPT, "TorchScript: the scripted module (%s)", err.msg);
		if (rc == 0 && vt_weights_state_dict(&w, &t, &n, NULL, NULL, &err) == 0) {
			/* torch.jit.load(...).state_dict() keeps the non-persistent buffer, first */
			CHECK(n == 9 && strcmp(t[0].name, "scratch") == 0 && strcmp(t[8].name, "head.weight") == 0,
			      "TorchScript: 9 tensors as jit.load().state_dict() lists them");
			vt_named_free(t, n);
		}
		vt_pth_close(&pth);
	}

	rc = open_any(&pth, "train_dict.pth", &err);
	CHECK(rc == 0, "train_dict.pth opens (%s)", err.msg);
	if (rc == 0) {
		rc = vt_weights_find(&pth, NULL, &w, &err);
		CHECK(rc == 0 && w.kind == VT_WEIGHTS_STATE_DICT && strcmp(w.where, "model_state_dict") == 0,
		      "training dict: the state_dict under model_state_dict (%s)", err.msg);
		v = vt_pk_dict_get(pth.root, "best");
		CHECK(v && v->kind == VT_PK_FLOAT && v->u.f == 0.5, "numpy.float64(0.5) reads as 0.5");
		v = vt_pk_dict_get(pth.root, "mean");
		CHECK(v && v->kind == VT_PK_EXT && v->u.ext.type == VT_EXT_NP_ARRAY &&
		      ((const struct vt_np_array *)v->u.ext.p)->ndim == 1 &&
		      ((const struct vt_np_array *)v->u.ext.p)->shape[0] == 2 &&
		      ((const struct vt_np_array *)v->u.ext.p)->dtype.kind == 'f' &&
		      ((const struct vt_np_array *)v->u.ext.p)->nbytes == 16, "numpy array: float64, shape (2,), 16 bytes");
		v = vt_pk_dict_get(pth.root, "args");
		CHECK(v && v->kind == VT_PK_OBJECT && !v->u.obj.call && strcmp(vt_pk_obj_class(v), "Namespace") == 0 &&
		      vt_pk_dict_get(v->u.obj.state, "lr") && vt_pk_dict_get(v->u.obj.state, "lr")->u.f == 0.1,
		      "argparse.Namespace: an object record holding lr=0.1");
		rc = vt_weights_find(&pth, "epoch", &w, &err);
		CHECK(rc == VT_ENOTFOUND && strstr(err.msg, "'epoch' is neither a module nor a state_dict: it is an int"),
		      "--key epoch: not weights (%s)", err.msg);
		vt_pth_close(&pth);
	}

	rc = open_any(&pth, "py2.pth", &err);
	CHECK(rc == 0, "Python 2 legacy stream opens (%s)", err.msg);
	if (rc == 0) {
		const struct vt_tensor *tw = vt_pk_tensor(vt_pk_dict_get(pth.root, "w"));
		const struct vt_tensor *tv = vt_pk_tensor(vt_pk_dict_get(pth.root, "v"));
		void *bytes = NULL;
		CHECK(tw && tw->ndim == 2 && tw->size[1] == 3 && strcmp(tw->storage->location, "cuda:0") == 0,
		      "Python 2: w is 2x3 on a cuda:0 storage");
		CHECK(tv && tv->storage->base && tv->storage->base_off == 2 && tv->storage->numel == 3,
		      "Python 2: v lives in a storage view (elements 2..4 of its root)");
		if (tv && vt_storage_read(tv->storage, &pth.src, &bytes, &err) == 0) {
			const float *f = bytes;
			CHECK(f[0] == 1.0f && f[1] == 1.0f && f[2] == 1.0f, "Python 2: the view's bytes are the ones");
			free(bytes);
		}
		vt_pth_close(&pth);
	}
}

static void test_tree_write(const char *tmpdir)
{
	struct vt_pth a, b;
	struct vt_err err = { 0, "" };
	struct vt_weights wa, wb;
	char out[512];
	int rc;

	snprintf(out, sizeof(out), "%s/tree.pth", tmpdir);
	rc = open_any(&a, "tiny_user_legacy.pth", &err);
	if (rc == 0 && (rc = vt_weights_find(&a, NULL, &wa, &err)) == 0)
		rc = vt_pth_write_tree(out, &a.src, wa.node, &err);
	CHECK(rc == 0, "a legacy whole model written back as a zip (%s)", err.msg);
	if (rc == 0 && (rc = vt_pth_open(&b, out, &err)) == 0) {
		char *ta = NULL, *tb = NULL;
		CHECK(b.is_zip, "the written file is a zip");
		if (vt_weights_find(&b, NULL, &wb, &err) == 0) {
			ta = vt_mod_repr(wa.node, VT_TORCH_TEXT_2X);
			tb = vt_mod_repr(wb.node, VT_TORCH_TEXT_2X);
		}
		CHECK(ta && tb && strcmp(ta, tb) == 0, "the written model prints the same");
		free(ta);
		free(tb);
		vt_pth_close(&b);
	}
	if (a.name)
		vt_pth_close(&a);
	unlink(out);
}

static void test_scan(void)
{
	struct vt_scan sc;
	struct vt_err err = { 0, "" };
	char path[512];
	size_t i, calls = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/any/evil_p0.pkl", fixtures);
	rc = vt_scan_file(&sc, path, &err);
	for (i = 0; i < sc.n; i++)
		calls += sc.items[i].op == VT_SCAN_CALL && strcmp(sc.items[i].name, "os.system") == 0 &&
			 sc.items[i].verdict == VT_SCAN_DANGEROUS;
	CHECK(rc == 0 && strcmp(sc.container, "pickle") == 0 && sc.dangerous == 2 && calls == 1,
	      "protocol-0 os.system: import and call, both dangerous (%s)", err.msg);
	vt_scan_release(&sc);
	{
		static const char *const clean[] = { "tiny_user.pth", "tiny_user_legacy.pth", "tiny_script.pt",
						     "train_dict.pth", "py2.pth" };
		for (i = 0; i < sizeof(clean) / sizeof(clean[0]); i++) {
			snprintf(path, sizeof(path), "%s/any/%s", fixtures, clean[i]);
			rc = vt_scan_file(&sc, path, &err);
			CHECK(rc == 0 && sc.findings == 0 && sc.n > 0, "scan %s: clean, %zu kinds of event (%s)", clean[i], sc.n,
			      rc ? err.msg : "ok");
			vt_scan_release(&sc);
		}
	}
}

/* Every fixture cut at every length: each reader fails cleanly or succeeds, never crashes. */
static void test_truncations(void)
{
	static const char *const files[] = { "tiny_user.pth", "tiny_user_legacy.pth", "train_dict.pth", "py2.pth",
					     "evil_p0.pkl" };
	size_t f, k;

	for (f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		char path[512];
		size_t len = 0, bad = 0;
		unsigned char *data;
		snprintf(path, sizeof(path), "%s/any/%s", fixtures, files[f]);
		data = harness_slurp(path, &len);
		for (k = 0; data && k < len; k++) {
			unsigned char *copy = malloc(k ? k : 1);
			struct vt_src src;
			struct vt_pth pth;
			struct vt_scan sc;
			struct vt_err err = { 0, "" };
			memcpy(copy, data, k);
			vt_src_mem(&src, copy, k, "cut");
			if (vt_pth_open_src(&pth, &src, &err) == 0) {
				struct vt_weights w;
				if (vt_weights_find(&pth, NULL, &w, &err) == 0 && w.kind == VT_WEIGHTS_MODULE)
					free(vt_mod_repr(w.node, VT_TORCH_TEXT_1_13));
			} else {
				bad += err.msg[0] != '\0';
			}
			vt_pth_close(&pth);
			if (vt_scan_src(&sc, &src, &err) != 0 && !err.msg[0])
				bad = 0; /* an error without a message fails the check below */
			vt_scan_release(&sc);
			free(copy);
		}
		CHECK(data && bad == len, "%s: all %zu truncations refused with a message", files[f], len);
		free(data);
	}
}

int main(void)
{
	char tmpdir[256];

	if (getenv("VT_FIXTURES"))
		fixtures = getenv("VT_FIXTURES");
	snprintf(tmpdir, sizeof(tmpdir), "%s/vt_test_module.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_user_class();
	test_script_and_dicts();
	test_tree_write(tmpdir);
	test_scan();
	test_truncations();
	rmdir(tmpdir);
	return harness_done();
}
