/* test_model.c - the VGG module tree (src/model.c, src/model_repr.c, src/model_write.c).
 *
 * Known answers from Debian's python3-torch 1.13 / torchvision 0.14, made once by
 * tests/fixtures/make_fixtures.py: print(torchvision.models.<arch>()) and its state_dict()
 * names, dtypes and shapes for the 8 architectures; Python's repr() of floats (the table
 * below); the small fixtures' models read from state_dicts and whole-model pickles; edits
 * (add_linear, replace_last) and the round trip through both writers.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "vt_model.h"

static const char *fixtures = "tests/fixtures";
static char tmpdir[256];

static char *slurp_text(const char *name)
{
	char path[512];
	size_t n = 0;
	char *buf;

	snprintf(path, sizeof(path), "%s/%s", fixtures, name);
	buf = (char *)harness_slurp(path, &n);
	if (buf && n > 0 && buf[n - 1] == '\n') /* print() adds the newline, repr does not */
		buf[n - 1] = '\0';
	return buf;
}

/* The first line where a and b differ, for messages. */
static int first_diff_line(const char *a, const char *b)
{
	int line = 1;

	for (; *a && *a == *b; a++, b++)
		line += *a == '\n';
	return line;
}

/* ---- Python's float repr ------------------------------------------------------------------ */

static void test_float_repr(void)
{
	/* repr(x) from /usr/bin/python3 (3.11) */
	static const struct {
		double v;
		const char *want;
	} cases[] = {
		{ 1e-05, "1e-05" },
		{ 0.1, "0.1" },
		{ 0.5, "0.5" },
		{ 1.0, "1.0" },
		{ 100.0, "100.0" },
		{ 1e16, "1e+16" },
		{ 1e15, "1000000000000000.0" },
		{ 0.0001, "0.0001" },
		{ 0.00001, "1e-05" },
		{ 123456789.123, "123456789.123" },
		{ -2.5, "-2.5" },
		{ 1.0 / 3.0, "0.3333333333333333" },
		{ 5e-324, "5e-324" },
		{ 1.7976931348623157e308, "1.7976931348623157e+308" },
		{ 0.0, "0.0" },
		{ -0.0, "-0.0" },
		{ 9.999999999999999e15, "1e+16" },
		{ 1e17, "1e+17" },
		{ 2.5e-5, "2.5e-05" },
		{ 123456789012345680.0, "1.2345678901234568e+17" },
		{ 0.001, "0.001" },
		{ 1e22, "1e+22" },
		{ 1.5e-7, "1.5e-07" },
		{ 9007199254740992.0, "9007199254740992.0" },
		{ 0.25, "0.25" },
		{ 1e-4 * 3, "0.00030000000000000003" },
		{ -1e-300, "-1e-300" },
		{ 2.2250738585072014e-308, "2.2250738585072014e-308" },
	};
	char buf[64];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		vt_py_float_repr(cases[i].v, buf, sizeof(buf));
		CHECK(strcmp(buf, cases[i].want) == 0, "repr(%.17g) = '%s', Python says '%s'", cases[i].v, buf,
		      cases[i].want);
	}
	vt_py_float_repr(INFINITY, buf, sizeof(buf));
	CHECK(strcmp(buf, "inf") == 0, "repr(inf) = '%s'", buf);
	vt_py_float_repr(-INFINITY, buf, sizeof(buf));
	CHECK(strcmp(buf, "-inf") == 0, "repr(-inf) = '%s'", buf);
	vt_py_float_repr(NAN, buf, sizeof(buf));
	CHECK(strcmp(buf, "nan") == 0, "repr(nan) = '%s'", buf);
	vt_py_float_repr(1.7976931348623157e308, buf, 8);
	CHECK(strlen(buf) == 7, "a short buffer truncates: '%s'", buf);
}

/* ---- the state_dict against the fixture's keys -------------------------------------------- */

static void shape_text(const struct vt_tensor *t, char *buf, size_t size)
{
	size_t at = 0;
	int i;

	if (t->ndim == 0) {
		snprintf(buf, size, "-");
		return;
	}
	buf[0] = '\0';
	for (i = 0; i < t->ndim && at < size; i++)
		at += (size_t)snprintf(buf + at, size - at, "%s%lld", i ? "x" : "", (long long)t->size[i]);
}

/* Compares the state_dict of m with the lines of fixture "<key> <dtype> <shape>". */
static int keys_match(const struct vt_model *m, const char *fixture, size_t *nkeys, char *why, size_t whysize)
{
	char *text = slurp_text(fixture), *line, *save = NULL;
	struct vt_named *t = NULL;
	struct vt_err err = { 0, "" };
	size_t n = 0, i = 0;
	int ok = 1;

	*nkeys = 0;
	snprintf(why, whysize, "ok");
	if (!text) {
		snprintf(why, whysize, "no fixture %s", fixture);
		return 0;
	}
	if (vt_model_state_dict(m, NULL, &t, &n, &err)) {
		snprintf(why, whysize, "state_dict: %s", err.msg);
		free(text);
		return 0;
	}
	*nkeys = n;
	for (line = strtok_r(text, "\n", &save); line && ok; line = strtok_r(NULL, "\n", &save), i++) {
		char got[512], shape[128];
		if (i >= n) {
			snprintf(why, whysize, "missing key '%s'", line);
			ok = 0;
			break;
		}
		shape_text(t[i].t, shape, sizeof(shape));
		snprintf(got, sizeof(got), "%s %s %s", t[i].name, vt_dtype_info(t[i].t->dtype)->name, shape);
		if (strcmp(got, line) != 0) {
			snprintf(why, whysize, "key %zu is '%.200s', torchvision has '%.200s'", i, got, line);
			ok = 0;
		}
	}
	if (ok && i != n) {
		snprintf(why, whysize, "%zu keys, torchvision has %zu", n, i);
		ok = 0;
	}
	vt_named_free(t, n);
	free(text);
	return ok;
}

static void check_repr(const struct vt_model *m, const char *fixture, const char *what)
{
	char *want = slurp_text(fixture), *got = vt_model_repr(m);

	CHECK(want && got && strcmp(want, got) == 0, "%s: repr equals %s (first difference on line %d)", what, fixture,
	      want && got ? first_diff_line(want, got) : -1);
	free(want);
	free(got);
}

/* ---- architectures ------------------------------------------------------------------------ */

static void test_archs(void)
{
	/* len(torchvision.models.<arch>().state_dict()): 2 per conv and Linear, 5 per BatchNorm */
	static const size_t counts[] = { 22, 26, 32, 38, 62, 76, 97, 118 };
	struct vt_model m;
	struct vt_err err = { 0, "" };
	char fixture[128], why[512];
	int i, rc;

	for (i = 0; vt_arch_names[i]; i++) {
		const char *a = vt_arch_names[i];
		size_t n;
		rc = vt_model_from_arch(&m, a, 0, &err);
		CHECK(rc == 0 && strcmp(m.arch, a) == 0, "from_arch %s (%s)", a, rc ? err.msg : m.arch);
		if (rc)
			continue;
		snprintf(fixture, sizeof(fixture), "arch/%s.txt", a);
		check_repr(&m, fixture, a);
		snprintf(fixture, sizeof(fixture), "arch/%s.keys", a);
		CHECK(keys_match(&m, fixture, &n, why, sizeof(why)) && n == counts[i],
		      "%s: %zu state_dict tensors (want %zu) with torchvision's names, dtypes and shapes: %s", a, n,
		      counts[i], why);
		CHECK(vt_model_check(&m, &err) == 0, "%s: shapes check", a);
		vt_model_release(&m);
	}
	CHECK(i == 8, "8 architectures");
	rc = vt_model_from_arch(&m, "vgg15", 0, &err);
	CHECK(rc == VT_EUSAGE && strstr(err.msg, "unknown architecture 'vgg15'"), "vgg15: %s", err.msg);
	CHECK(m.root == NULL, "nothing left after a failure");
	vt_model_release(&m);
}

/* The module at path "classifier.6" etc. */
static struct vt_module *mod_at(const struct vt_model *m, const char *a, const char *b)
{
	struct vt_module *x = m->root;
	size_t i;

	for (i = 0; x && i < x->nchild && strcmp(x->child[i]->name, a) != 0; i++)
		;
	x = x && i < x->nchild ? x->child[i] : NULL;
	if (!b || !x)
		return x;
	for (i = 0; i < x->nchild && strcmp(x->child[i]->name, b) != 0; i++)
		;
	return i < x->nchild ? x->child[i] : NULL;
}

static void test_init(void)
{
	struct vt_model m, m2;
	struct vt_err err = { 0, "" };
	const struct vt_module *c0, *l0, *bn;

	if (vt_model_from_arch(&m, "vgg16_bn", 7, &err) || vt_model_from_arch(&m2, "vgg16_bn", 8, &err)) {
		CHECK(0, "vgg16_bn: %s", err.msg);
		return;
	}
	c0 = mod_at(&m, "features", "0");
	bn = mod_at(&m, "features", "1");
	l0 = mod_at(&m, "classifier", "0");
	CHECK(c0 && c0->t[VT_T_WEIGHT]->storage->init.kind == VT_INIT_NORMAL &&
	      fabs(c0->t[VT_T_WEIGHT]->storage->init.a - sqrt(2.0 / (64 * 9))) < 1e-15 &&
	      c0->t[VT_T_BIAS]->storage->init.kind == VT_INIT_CONST && c0->t[VT_T_BIAS]->storage->init.a == 0.0,
	      "conv: kaiming normal (fan_out, std sqrt(2/576)), zero bias");
	CHECK(l0 && l0->t[VT_T_WEIGHT]->storage->init.kind == VT_INIT_NORMAL &&
	      l0->t[VT_T_WEIGHT]->storage->init.a == 0.01 && l0->t[VT_T_BIAS]->storage->init.a == 0.0,
	      "Linear: N(0, 0.01), zero bias");
	CHECK(bn && bn->t[VT_T_WEIGHT]->storage->init.a == 1.0 && bn->t[VT_T_BIAS]->storage->init.a == 0.0 &&
	      bn->t[VT_T_RUNNING_MEAN]->storage->init.a == 0.0 && bn->t[VT_T_RUNNING_VAR]->storage->init.a == 1.0 &&
	      bn->t[VT_T_NUM_BATCHES]->dtype == VT_I64 && bn->t[VT_T_NUM_BATCHES]->ndim == 0,
	      "BatchNorm: weight 1, bias 0, mean 0, var 1, num_batches_tracked int64 0-dim");
	CHECK(c0 && c0->t[VT_T_WEIGHT]->is_param && c0->t[VT_T_WEIGHT]->requires_grad && bn &&
	      !bn->t[VT_T_RUNNING_MEAN]->is_param, "parameters vs buffers");
	CHECK(c0 && mod_at(&m2, "features", "0")->t[VT_T_WEIGHT]->storage->init.seed !=
			    c0->t[VT_T_WEIGHT]->storage->init.seed &&
	      c0->t[VT_T_WEIGHT]->storage->init.seed != c0->t[VT_T_BIAS]->storage->init.seed,
	      "seeds differ per run seed and per tensor");
	{
		struct vt_meta *meta = NULL;
		size_t n = 0, i, bn_v2 = 0, v1 = 0;
		CHECK(vt_model_metadata(&m, NULL, &meta, &n, &err) == 0, "metadata");
		for (i = 0; i < n; i++) {
			bn_v2 += meta[i].version == 2;
			v1 += meta[i].version == 1;
		}
		/* '', features, 44 features children, avgpool, classifier, 7 classifier children */
		CHECK(n == 55 && bn_v2 == 13 && v1 == 42 && strcmp(meta[0].prefix, "") == 0 &&
		      strcmp(meta[1].prefix, "features") == 0 && strcmp(meta[2].prefix, "features.0") == 0,
		      "_metadata: %zu prefixes, %zu BatchNorm at version 2", n, bn_v2);
		vt_meta_free(meta, n);
		CHECK(vt_model_metadata(&m, "module.", &meta, &n, &err) == 0 && n == 56 &&
		      strcmp(meta[0].prefix, "") == 0 && strcmp(meta[1].prefix, "module") == 0 &&
		      strcmp(meta[2].prefix, "module.features") == 0, "_metadata under 'module.'");
		vt_meta_free(meta, n);
	}
	{
		struct vt_named *t = NULL;
		size_t n = 0;
		CHECK(vt_model_state_dict(&m, "module.", &t, &n, &err) == 0 && n == 97 &&
		      strcmp(t[0].name, "module.features.0.weight") == 0 &&
		      strcmp(t[n - 1].name, "module.classifier.6.bias") == 0, "state_dict names under 'module.'");
		vt_named_free(t, n);
	}
	vt_model_release(&m);
	vt_model_release(&m2);
}

static void test_edits(void)
{
	struct vt_model m;
	struct vt_err err = { 0, "" };
	struct vt_named *t = NULL;
	size_t n = 0;
	char *repr;
	int rc;

	if (vt_model_from_arch(&m, "vgg16", 1, &err)) {
		CHECK(0, "vgg16: %s", err.msg);
		return;
	}
	rc = vt_model_add_linear(&m, "add_linear", 1000, 10, 1, &err);
	CHECK(rc == 0, "add_linear 1000:10 (%s)", rc ? err.msg : "ok");
	repr = vt_model_repr(&m);
	CHECK(repr && strstr(repr, "    (6): Linear(in_features=4096, out_features=1000, bias=True)\n"
				   "    (add_linear): Linear(in_features=1000, out_features=10, bias=True)\n  )\n)"),
	      "the repr ends with the new layer");
	free(repr);
	CHECK(vt_model_state_dict(&m, NULL, &t, &n, &err) == 0 && n == 34 &&
	      strcmp(t[32].name, "classifier.add_linear.weight") == 0 && t[32].t->ndim == 2 &&
	      t[32].t->size[0] == 10 && t[32].t->size[1] == 1000 && strcmp(t[33].name, "classifier.add_linear.bias") == 0 &&
	      t[33].t->size[0] == 10, "state_dict gains classifier.add_linear.weight [10, 1000] and .bias [10]");
	CHECK(n == 34 && t[32].t->storage->init.kind == VT_INIT_UNIFORM &&
	      fabs(t[32].t->storage->init.a - 1.0 / sqrt(1000.0)) < 1e-15 &&
	      t[33].t->storage->init.kind == VT_INIT_UNIFORM, "nn.Linear's default init: U(-1/sqrt(1000), 1/sqrt(1000))");
	vt_named_free(t, n);

	rc = vt_model_add_linear(&m, "second", 999, 10, 1, &err);
	CHECK(rc == VT_EUSAGE && strstr(err.msg, "IN must be 10"), "add_linear 999:10 after it: %s", err.msg);
	rc = vt_model_add_linear(&m, "add_linear", 10, 5, 1, &err);
	CHECK(rc == VT_EUSAGE && strstr(err.msg, "already has a layer named 'add_linear'"), "the same name twice: %s",
	      err.msg);
	rc = vt_model_add_linear(&m, "a.b", 10, 5, 1, &err);
	CHECK(rc == VT_EUSAGE, "a name with a dot: %s", err.msg);
	rc = vt_model_add_linear(&m, "", 10, 5, 1, &err);
	CHECK(rc == VT_EUSAGE, "an empty name: %s", err.msg);
	rc = vt_model_add_linear(&m, "z", 10, 0, 1, &err);
	CHECK(rc == VT_EUSAGE, "OUT 0: %s", err.msg);
	CHECK(vt_model_check(&m, &err) == 0, "the model still checks");

	rc = vt_model_replace_last(&m, 3, 2, &err);
	CHECK(rc == 0, "replace_last 3 (%s)", rc ? err.msg : "ok");
	repr = vt_model_repr(&m);
	CHECK(repr && strstr(repr, "(add_linear): Linear(in_features=1000, out_features=3, bias=True)\n  )\n)"),
	      "replace_last replaces the added layer");
	free(repr);
	rc = vt_model_replace_last(&m, 0, 2, &err);
	CHECK(rc == VT_EUSAGE, "replace_last 0: %s", err.msg);
	vt_model_release(&m);

	if (vt_model_from_arch(&m, "vgg11_bn", 1, &err)) {
		CHECK(0, "vgg11_bn: %s", err.msg);
		return;
	}
	rc = vt_model_replace_last(&m, 10, 5, &err);
	repr = vt_model_repr(&m);
	CHECK(rc == 0 && repr && strstr(repr, "    (6): Linear(in_features=4096, out_features=10, bias=True)\n  )\n)"),
	      "vgg11_bn replace_last 10: classifier.6 is Linear(4096, 10)");
	free(repr);
	CHECK(vt_model_state_dict(&m, NULL, &t, &n, &err) == 0 && n == 62 && t[60].t->size[0] == 10 &&
	      t[60].t->size[1] == 4096 && t[61].t->size[0] == 10, "state_dict: classifier.6 [10, 4096]");
	vt_named_free(t, n);
	CHECK(vt_model_check(&m, &err) == 0, "the model still checks");
	vt_model_release(&m);
}

/* ---- models from files -------------------------------------------------------------------- */

static int open_model(const char *name, struct vt_pth *pth, struct vt_model *m, struct vt_err *err)
{
	char path[512];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", fixtures, name);
	rc = vt_pth_open(pth, path, err);
	if (rc == 0)
		rc = vt_model_from_pth(m, pth, err);
	else
		memset(m, 0, sizeof(*m));
	return rc;
}

static void test_from_pth(void)
{
	static const struct {
		const char *file, *arch, *txt, *keys;
	} cases[] = {
		{ "vgg11_sd.pth", "vgg11", "arch/vgg11.txt", "arch/vgg11.keys" },
		{ "vgg11_bn_sd.pth", "vgg11_bn", "arch/vgg11_bn.txt", "arch/vgg11_bn.keys" },
		{ "tiny_whole.pth", "", "tiny_whole.txt", NULL },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vt_pth pth;
		struct vt_model m;
		struct vt_err err = { 0, "" };
		char why[512];
		size_t n;
		int rc = open_model(cases[i].file, &pth, &m, &err);
		CHECK(rc == 0 && strcmp(m.arch, cases[i].arch) == 0, "%s: a model, arch '%s' (%s)", cases[i].file,
		      rc ? "" : m.arch, rc ? err.msg : "ok");
		if (rc == 0) {
			check_repr(&m, cases[i].txt, cases[i].file);
			if (cases[i].keys)
				CHECK(keys_match(&m, cases[i].keys, &n, why, sizeof(why)), "%s: state_dict as torchvision's: %s",
				      cases[i].file, why);
		}
		vt_model_release(&m);
		vt_pth_close(&pth);
	}
	{
		struct vt_pth pth;
		struct vt_model m;
		struct vt_err err = { 0, "" };
		int rc = open_model("sd.pth", &pth, &m, &err);
		CHECK(rc == VT_EFORMAT && strstr(err.msg, "state_dict matches no VGG: unexpected key 'f32'"),
		      "sd.pth is no VGG: %s", err.msg);
		CHECK(m.root == NULL, "and leaves no model");
		vt_model_release(&m);
		vt_pth_close(&pth);
	}
	{
		/* the whole-model tree keeps what the file says: training flags, Dropout p */
		struct vt_pth pth;
		struct vt_model m;
		struct vt_err err = { 0, "" };
		if (open_model("tiny_whole.pth", &pth, &m, &err) == 0) {
			const struct vt_module *d = mod_at(&m, "classifier", "2"), *bn = mod_at(&m, "features", "1");
			CHECK(!m.root->training && d && d->p == 0.25 && bn && bn->t[VT_T_NUM_BATCHES] &&
			      bn->t[VT_T_RUNNING_VAR]->is_param == 0 && mod_at(&m, "features", "0")->t[VT_T_WEIGHT]->is_param,
			      "tiny_whole: eval mode, Dropout(0.25), BatchNorm buffers, Conv parameters");
		}
		vt_model_release(&m);
		vt_pth_close(&pth);
	}
}

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), k = strlen(tail);

	return n >= k && strcmp(s + n - k, tail) == 0;
}

/* Saves m both ways (only whole when its classifier is not torchvision's: a state_dict does
 * not say where ReLU and Dropout go), reads each back, and compares repr and tensors. */
static void roundtrip(const char *what, const struct vt_model *m, const struct vt_src *src, int weights)
{
	static const char *const styles[] = { "weights", "full" };
	char *want = vt_model_repr(m);
	int s;

	for (s = weights ? 0 : 1; s < 2; s++) {
		char path[400];
		struct vt_pth pth;
		struct vt_model back;
		struct vt_err err = { 0, "" };
		int rc;
		snprintf(path, sizeof(path), "%s/%s.%s.pth", tmpdir, what, styles[s]);
		rc = s == 0 ? vt_model_save_weights(m, path, src, NULL, &err) : vt_model_save_full(m, path, src, &err);
		CHECK(rc == 0, "%s: save %s (%s)", what, styles[s], rc ? err.msg : "ok");
		if (rc)
			continue;
		rc = vt_pth_open(&pth, path, &err);
		if (rc == 0)
			rc = vt_pth_verify(&pth, &err);
		if (rc == 0)
			rc = vt_model_from_pth(&back, &pth, &err);
		else
			memset(&back, 0, sizeof(back));
		CHECK(rc == 0, "%s: the %s file reads back (%s)", what, styles[s], rc ? err.msg : "ok");
		if (rc == 0) {
			char *got = vt_model_repr(&back);
			struct vt_named *a = NULL, *b = NULL;
			size_t na = 0, nb = 0, i, same = 0;
			CHECK(want && got && strcmp(want, got) == 0, "%s: %s: the same repr (first difference on line %d)", what,
			      styles[s], want && got ? first_diff_line(want, got) : -1);
			free(got);
			vt_model_state_dict(m, NULL, &a, &na, &err);
			vt_model_state_dict(&back, NULL, &b, &nb, &err);
			for (i = 0; i < na && i < nb; i++) {
				const struct vt_tensor *x = a[i].t, *y = b[i].t;
				same += strcmp(a[i].name, b[i].name) == 0 && x->dtype == y->dtype && x->ndim == y->ndim &&
					memcmp(x->size, y->size, sizeof(x->size[0]) * (size_t)x->ndim) == 0 &&
					x->storage->numel == y->storage->numel && x->offset == y->offset &&
					memcmp(x->stride, y->stride, sizeof(x->stride[0]) * (size_t)x->ndim) == 0 &&
					/* a whole model holds weights and biases as nn.Parameter */
					y->is_param == (s == 1 && (ends_with(b[i].name, ".weight") ||
								   ends_with(b[i].name, ".bias")));
			}
			CHECK(na == nb && same == na,
			      "%s: %s: %zu of %zu tensors with the same name, dtype, shape, stride, offset", what,
			      styles[s], same, na);
			vt_named_free(a, na);
			vt_named_free(b, nb);
		}
		vt_model_release(&back);
		vt_pth_close(&pth);
		unlink(path);
	}
	free(want);
}

static void test_roundtrip(void)
{
	static const char *const files[] = { "vgg11_sd.pth", "vgg11_bn_sd.pth", "tiny_whole.pth" };
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct vt_pth pth;
		struct vt_model m;
		struct vt_err err = { 0, "" };
		if (open_model(files[i], &pth, &m, &err) == 0) {
			roundtrip(files[i], &m, &pth.src, i < 2);
			/* and with a fresh layer, generated into the file */
			if (vt_model_add_linear(&m, "head", m.root->child[m.root->nchild - 1]
						->child[m.root->child[m.root->nchild - 1]->nchild - 1]->out, 7, 3, &err) == 0) {
				char what[64];
				snprintf(what, sizeof(what), "%s+head", files[i]);
				roundtrip(what, &m, &pth.src, i < 2);
			} else {
				CHECK(0, "%s: add_linear: %s", files[i], err.msg);
			}
		} else {
			CHECK(0, "%s: %s", files[i], err.msg);
		}
		vt_model_release(&m);
		vt_pth_close(&pth);
	}
}

int main(void)
{
	if (getenv("VT_FIXTURES"))
		fixtures = getenv("VT_FIXTURES");
	snprintf(tmpdir, sizeof(tmpdir), "%s/vt_test_model.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_float_repr();
	test_archs();
	test_init();
	test_edits();
	test_from_pth();
	test_roundtrip();
	rmdir(tmpdir);
	return harness_done();
}
