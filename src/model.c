/* model.c - the VGG family as a module tree (see include/vt_model.h).
 *
 * Sources of a model:
 *  - an architecture name: torchvision's cfgs A, B, D, E (vgg11, 13, 16, 19), optionally with
 *    BatchNorm (torchvision/models/vgg.py: make_layers, VGG.__init__, _initialize_weights);
 *  - a whole-model pickle: the NEWOBJ/BUILD tree of torch.nn modules, read attribute by
 *    attribute (shared/research/pth-format.md section 5);
 *  - a state_dict: the architecture is the cfg whose convolutions sit at exactly the
 *    state_dict's features indices with the same channel counts, and a classifier of
 *    Linear layers at 0, 3, 6 (ReLU and Dropout between them, as torchvision builds them)
 *    followed by any extra Linear layers in key order.
 * Not supported: modules other than those of enum vt_mod_kind, convolutions with string
 * padding ('same'), classifiers with extra non-Linear layers in a state_dict (they have no
 * keys to be seen by).
 */
#include "vt_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const vt_arch_names[] = {
	"vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", NULL
};

/* torchvision's cfgs; 0 is 'M' (max pooling) */
static const int cfgs[4][22] = {
	{ 64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0, -1 },
	{ 64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0, -1 },
	{ 64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0, -1 },
	{ 64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0, -1 },
};
static const int cfg_depth[4] = { 11, 13, 16, 19 };

static const char *const tensor_names[VT_T_COUNT] = {
	"weight", "bias", "running_mean", "running_var", "num_batches_tracked"
};

/* ---- building blocks ------------------------------------------------------------------ */

static struct vt_module *mod_new(const char *name, enum vt_mod_kind kind)
{
	struct vt_module *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->name = strdup(name);
	if (!m->name) {
		free(m);
		return NULL;
	}
	m->kind = kind;
	m->training = 1;
	return m;
}

static void mod_free(struct vt_module *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->nchild; i++)
		mod_free(m->child[i]);
	free(m->child);
	free(m->name);
	free(m);
}

static int mod_add(struct vt_module *parent, struct vt_module *c)
{
	struct vt_module **p;

	if (!c)
		return VT_ENOMEM;
	p = realloc(parent->child, (parent->nchild + 1) * sizeof(*p));
	if (!p) {
		mod_free(c);
		return VT_ENOMEM;
	}
	parent->child = p;
	parent->child[parent->nchild++] = c;
	return 0;
}

static struct vt_module *mod_child(const struct vt_module *m, const char *name)
{
	size_t i;

	for (i = 0; m && i < m->nchild; i++)
		if (strcmp(m->child[i]->name, name) == 0)
			return m->child[i];
	return NULL;
}

static struct vt_pair pair(int64_t v, int is_tuple)
{
	struct vt_pair p = { { v, v }, is_tuple };

	return p;
}

static struct vt_module *conv_new(const char *name, int64_t in, int64_t out)
{
	struct vt_module *m = mod_new(name, VT_MOD_CONV2D);

	if (m) {
		m->in = in;
		m->out = out;
		m->kernel = pair(3, 1);
		m->stride = pair(1, 1);
		m->padding = pair(1, 1);
		m->dilation = pair(1, 1);
		m->groups = 1;
		strcpy(m->padding_mode, "zeros");
	}
	return m;
}

static struct vt_module *bn_new(const char *name, int64_t n)
{
	struct vt_module *m = mod_new(name, VT_MOD_BATCHNORM2D);

	if (m) {
		m->in = n;
		m->eps = 1e-5;
		m->momentum = 0.1;
		m->affine = 1;
		m->track_running_stats = 1;
	}
	return m;
}

static struct vt_module *relu_new(const char *name)
{
	struct vt_module *m = mod_new(name, VT_MOD_RELU);

	if (m)
		m->inplace = 1;
	return m;
}

static struct vt_module *pool_new(const char *name)
{
	struct vt_module *m = mod_new(name, VT_MOD_MAXPOOL2D);

	if (m) {
		m->kernel = pair(2, 0);
		m->stride = pair(2, 0);
		m->padding = pair(0, 0);
		m->dilation = pair(1, 0);
	}
	return m;
}

static struct vt_module *linear_new(const char *name, int64_t in, int64_t out)
{
	struct vt_module *m = mod_new(name, VT_MOD_LINEAR);

	if (m) {
		m->in = in;
		m->out = out;
	}
	return m;
}

static struct vt_module *dropout_new(const char *name)
{
	struct vt_module *m = mod_new(name, VT_MOD_DROPOUT);

	if (m)
		m->p = 0.5;
	return m;
}

static struct vt_module *avgpool_new(void)
{
	struct vt_module *m = mod_new("avgpool", VT_MOD_ADAPTIVEAVGPOOL2D);

	if (m)
		m->output_size = pair(7, 1);
	return m;
}

/* Builds features for cfg c (with BatchNorm if bn) and appends its layers to seq. */
static int build_features(struct vt_module *seq, int c, int bn)
{
	int64_t in = 3;
	int i, idx = 0, rc = 0;
	char name[16];

	for (i = 0; cfgs[c][i] >= 0 && rc == 0; i++) {
		snprintf(name, sizeof(name), "%d", idx++);
		if (cfgs[c][i] == 0) {
			rc = mod_add(seq, pool_new(name));
			continue;
		}
		rc = mod_add(seq, conv_new(name, in, cfgs[c][i]));
		if (bn && rc == 0) {
			snprintf(name, sizeof(name), "%d", idx++);
			rc = mod_add(seq, bn_new(name, cfgs[c][i]));
		}
		snprintf(name, sizeof(name), "%d", idx++);
		if (rc == 0)
			rc = mod_add(seq, relu_new(name));
		in = cfgs[c][i];
	}
	return rc;
}

/* torchvision's classifier: Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear. */
static int build_classifier(struct vt_module *seq, const int64_t dims[4])
{
	int rc = 0, i;

	for (i = 0; i < 3 && rc == 0; i++) {
		char name[4];
		snprintf(name, sizeof(name), "%d", 3 * i);
		rc = mod_add(seq, linear_new(name, dims[i], dims[i + 1]));
		if (i < 2 && rc == 0) {
			snprintf(name, sizeof(name), "%d", 3 * i + 1);
			rc = mod_add(seq, relu_new(name));
			snprintf(name, sizeof(name), "%d", 3 * i + 2);
			if (rc == 0)
				rc = mod_add(seq, dropout_new(name));
		}
	}
	return rc;
}

static int build_vgg(struct vt_model *m, int c, int bn, const int64_t dims[4])
{
	struct vt_module *features, *classifier;
	int rc;

	m->root = mod_new("", VT_MOD_VGG);
	features = mod_new("features", VT_MOD_SEQUENTIAL);
	classifier = mod_new("classifier", VT_MOD_SEQUENTIAL);
	if (!m->root || !features || !classifier) {
		mod_free(features);
		mod_free(classifier);
		return VT_ENOMEM;
	}
	if ((rc = mod_add(m->root, features)) || (rc = build_features(features, c, bn))) {
		mod_free(classifier);
		return rc;
	}
	if ((rc = mod_add(m->root, avgpool_new())) || (rc = mod_add(m->root, classifier)))
		return rc;
	if ((rc = build_classifier(classifier, dims)))
		return rc;
	snprintf(m->arch, sizeof(m->arch), "vgg%d%s", cfg_depth[c], bn ? "_bn" : "");
	return 0;
}

/* ---- generated tensors ---------------------------------------------------------------- */

static uint64_t name_seed(uint64_t seed, const char *path, const char *tname)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a over "path.tname" */
	const char *s;

	for (s = path; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	h = (h ^ '.') * 0x100000001b3ULL;
	for (s = tname; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h ^ (seed * 0x9e3779b97f4a7c15ULL);
}

static int own(struct vt_model *m, struct vt_tensor *t, struct vt_storage *s)
{
	if (m->nown == m->own_cap) {
		size_t ncap = m->own_cap ? m->own_cap * 2 : 64;
		struct vt_tensor **pt = realloc(m->own_t, ncap * sizeof(*pt));
		struct vt_storage **ps;
		if (!pt)
			return VT_ENOMEM;
		m->own_t = pt;
		ps = realloc(m->own_s, ncap * sizeof(*ps));
		if (!ps)
			return VT_ENOMEM;
		m->own_s = ps;
		m->own_cap = ncap;
	}
	m->own_t[m->nown] = t;
	m->own_s[m->nown++] = s;
	return 0;
}

/* A new model-owned contiguous tensor replacing mod->t[slot]; returns its storage to fill. */
static struct vt_storage *new_tensor(struct vt_model *m, struct vt_module *mod, int slot, int dtype, int ndim,
				     const int64_t *dims)
{
	struct vt_tensor *t = calloc(1, sizeof(*t));
	struct vt_storage *s = calloc(1, sizeof(*s));
	uint64_t numel = 1;
	int i;

	if (!t || !s || own(m, t, s)) {
		free(t);
		free(s);
		return NULL;
	}
	for (i = ndim - 1; i >= 0; i--) {
		t->size[i] = dims[i];
		t->stride[i] = (int64_t)numel;
		numel *= (uint64_t)dims[i];
	}
	t->ndim = ndim;
	t->dtype = dtype;
	t->storage = s;
	t->requires_grad = slot <= VT_T_BIAS;
	t->is_param = slot <= VT_T_BIAS;
	s->key = (char *)"";
	s->location = (char *)"cpu";
	s->dtype = dtype;
	s->numel = numel;
	mod->t[slot] = t;
	return s;
}

/* A new tensor of shape dims filled by init (seeded by its state_dict name). */
static int gen_tensor(struct vt_model *m, struct vt_module *mod, int slot, const char *path, int dtype,
		      int ndim, const int64_t *dims, enum vt_init_kind kind, double a, uint64_t seed)
{
	struct vt_storage *s = new_tensor(m, mod, slot, dtype, ndim, dims);

	if (!s)
		return VT_ENOMEM;
	s->src = VT_STORAGE_INIT;
	s->init.kind = kind;
	s->init.a = a;
	s->init.seed = name_seed(seed, path, tensor_names[slot]);
	return 0;
}

/* Fills the parameters of mod (at state_dict path) as torchvision's VGG initialises them,
 * or with nn.Linear's own default when pytorch_default. */
static int init_module(struct vt_model *m, struct vt_module *mod, const char *path, uint64_t seed,
		       int pytorch_default)
{
	int64_t d[4];
	int rc = 0;

	switch (mod->kind) {
	case VT_MOD_CONV2D: {
		double fan_out = (double)(mod->out * mod->kernel.v[0] * mod->kernel.v[1]);
		d[0] = mod->out;
		d[1] = mod->in / mod->groups;
		d[2] = mod->kernel.v[0];
		d[3] = mod->kernel.v[1];
		rc = gen_tensor(m, mod, VT_T_WEIGHT, path, VT_F32, 4, d, VT_INIT_NORMAL, sqrt(2.0 / fan_out), seed);
		if (rc == 0)
			rc = gen_tensor(m, mod, VT_T_BIAS, path, VT_F32, 1, d, VT_INIT_CONST, 0.0, seed);
		break;
	}
	case VT_MOD_BATCHNORM2D:
		d[0] = mod->in;
		rc = gen_tensor(m, mod, VT_T_WEIGHT, path, VT_F32, 1, d, VT_INIT_CONST, 1.0, seed);
		if (rc == 0)
			rc = gen_tensor(m, mod, VT_T_BIAS, path, VT_F32, 1, d, VT_INIT_CONST, 0.0, seed);
		if (rc == 0)
			rc = gen_tensor(m, mod, VT_T_RUNNING_MEAN, path, VT_F32, 1, d, VT_INIT_CONST, 0.0, seed);
		if (rc == 0)
			rc = gen_tensor(m, mod, VT_T_RUNNING_VAR, path, VT_F32, 1, d, VT_INIT_CONST, 1.0, seed);
		if (rc == 0)
			rc = gen_tensor(m, mod, VT_T_NUM_BATCHES, path, VT_I64, 0, d, VT_INIT_CONST, 0.0, seed);
		break;
	case VT_MOD_LINEAR: {
		/* nn.Linear.reset_parameters: kaiming_uniform(a=sqrt(5)) is U(-1/sqrt(in), 1/sqrt(in)) */
		double bound = 1.0 / sqrt((double)mod->in);
		d[0] = mod->out;
		d[1] = mod->in;
		if (pytorch_default) {
			rc = gen_tensor(m, mod, VT_T_WEIGHT, path, VT_F32, 2, d, VT_INIT_UNIFORM, bound, seed);
			if (rc == 0)
				rc = gen_tensor(m, mod, VT_T_BIAS, path, VT_F32, 1, d, VT_INIT_UNIFORM, bound, seed);
		} else {
			rc = gen_tensor(m, mod, VT_T_WEIGHT, path, VT_F32, 2, d, VT_INIT_NORMAL, 0.01, seed);
			if (rc == 0)
				rc = gen_tensor(m, mod, VT_T_BIAS, path, VT_F32, 1, d, VT_INIT_CONST, 0.0, seed);
		}
		break;
	}
	default:
		break;
	}
	return rc;
}

static int init_tree(struct vt_model *m, struct vt_module *mod, const char *path, uint64_t seed)
{
	size_t i;
	int rc = init_module(m, mod, path, seed, 0);

	for (i = 0; i < mod->nchild && rc == 0; i++) {
		char sub[256];
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", mod->child[i]->name);
		rc = init_tree(m, mod->child[i], sub, seed);
	}
	return rc;
}

int vt_model_set_mem_tensor(struct vt_model *m, struct vt_module *mod, int slot, int dtype, int ndim,
			    const int64_t *shape, void *data)
{
	struct vt_storage *s;
	size_t i;

	/* a tensor already downloaded (an earlier epoch's checkpoint) is replaced, not kept */
	for (i = 0; mod->t[slot] && i < m->nown; i++)
		if (m->own_t[i] == mod->t[slot] && m->own_s[i]->src == VT_STORAGE_MEM) {
			free(m->own_s[i]->mem);
			m->own_s[i]->mem = NULL;
			break;
		}
	s = new_tensor(m, mod, slot, dtype, ndim, shape);

	if (!s)
		return VT_ENOMEM;
	s->src = VT_STORAGE_MEM;
	s->mem = data;
	return 0;
}

void vt_model_release(struct vt_model *m)
{
	size_t i;

	mod_free(m->root);
	for (i = 0; i < m->nown; i++) {
		if (m->own_s[i]->src == VT_STORAGE_MEM)
			free(m->own_s[i]->mem);
		free(m->own_t[i]);
		free(m->own_s[i]);
	}
	free(m->own_t);
	free(m->own_s);
	memset(m, 0, sizeof(*m));
}

static int arch_lookup(const char *arch, int *c, int *bn)
{
	int i;

	for (i = 0; vt_arch_names[i]; i++)
		if (strcmp(arch, vt_arch_names[i]) == 0) {
			*c = i % 4;
			*bn = i >= 4;
			return 0;
		}
	return -1;
}

int vt_model_from_arch(struct vt_model *m, const char *arch, uint64_t seed, struct vt_err *err)
{
	static const int64_t dims[4] = { 512 * 7 * 7, 4096, 4096, 1000 };
	int c, bn, rc;

	memset(m, 0, sizeof(*m));
	if (arch_lookup(arch, &c, &bn))
		return vt_err_set(err, VT_EUSAGE,
				  "unknown architecture '%s' (known: vgg11, vgg13, vgg16, vgg19 and their _bn variants)",
				  arch);
	rc = build_vgg(m, c, bn, dims);
	if (rc == 0)
		rc = init_tree(m, m->root, "", seed);
	if (rc) {
		vt_model_release(m);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	return 0;
}

/* ---- whole-model pickles -------------------------------------------------------------- */

static const struct {
	const char *name;
	enum vt_mod_kind kind;
} class_kinds[] = {
	{ "VGG", VT_MOD_VGG }, { "Sequential", VT_MOD_SEQUENTIAL }, { "Conv2d", VT_MOD_CONV2D },
	{ "BatchNorm2d", VT_MOD_BATCHNORM2D }, { "ReLU", VT_MOD_RELU }, { "MaxPool2d", VT_MOD_MAXPOOL2D },
	{ "AdaptiveAvgPool2d", VT_MOD_ADAPTIVEAVGPOOL2D }, { "Linear", VT_MOD_LINEAR },
	{ "Dropout", VT_MOD_DROPOUT }, { "Flatten", VT_MOD_FLATTEN },
};

static int get_int(const struct vt_pk *st, const char *key, int64_t *v, const char *path, struct vt_err *err)
{
	const struct vt_pk *x = vt_pk_dict_get(st, key);

	if (!x || (x->kind != VT_PK_INT && x->kind != VT_PK_BOOL))
		return vt_err_set(err, VT_EFORMAT, "module '%s': '%s' is missing or not an integer", path, key);
	*v = x->kind == VT_PK_INT ? x->u.i : x->u.b;
	return 0;
}

static int get_bool(const struct vt_pk *st, const char *key, int *v, const char *path, struct vt_err *err)
{
	int64_t i;
	int rc = get_int(st, key, &i, path, err);

	*v = (int)i;
	return rc;
}

static int get_float(const struct vt_pk *st, const char *key, double *v, int *is_none, const char *path,
		     struct vt_err *err)
{
	const struct vt_pk *x = vt_pk_dict_get(st, key);

	if (is_none)
		*is_none = x && x->kind == VT_PK_NONE;
	if (is_none && *is_none)
		return 0;
	if (x && x->kind == VT_PK_FLOAT)
		*v = x->u.f;
	else if (x && x->kind == VT_PK_INT)
		*v = (double)x->u.i;
	else
		return vt_err_set(err, VT_EFORMAT, "module '%s': '%s' is missing or not a number", path, key);
	return 0;
}

static int get_pair(const struct vt_pk *st, const char *key, struct vt_pair *p, const char *path,
		    struct vt_err *err)
{
	const struct vt_pk *x = vt_pk_dict_get(st, key);

	if (x && x->kind == VT_PK_INT) {
		*p = pair(x->u.i, 0);
		return 0;
	}
	if (x && x->kind == VT_PK_TUPLE && x->u.seq.n == 2 && x->u.seq.items[0]->kind == VT_PK_INT &&
	    x->u.seq.items[1]->kind == VT_PK_INT) {
		p->v[0] = x->u.seq.items[0]->u.i;
		p->v[1] = x->u.seq.items[1]->u.i;
		p->is_tuple = 1;
		return 0;
	}
	return vt_err_set(err, VT_EUNSUPPORTED, "module '%s': '%s' is not an integer or a pair", path, key);
}

static int read_attrs(struct vt_module *m, const struct vt_pk *st, const char *path, struct vt_err *err)
{
	int rc = 0;

	switch (m->kind) {
	case VT_MOD_CONV2D: {
		const struct vt_pk *pm = vt_pk_dict_get(st, "padding_mode");
		int transposed = 0;
		if ((rc = get_int(st, "in_channels", &m->in, path, err)) ||
		    (rc = get_int(st, "out_channels", &m->out, path, err)) ||
		    (rc = get_pair(st, "kernel_size", &m->kernel, path, err)) ||
		    (rc = get_pair(st, "stride", &m->stride, path, err)) ||
		    (rc = get_pair(st, "padding", &m->padding, path, err)) ||
		    (rc = get_pair(st, "dilation", &m->dilation, path, err)) ||
		    (rc = get_int(st, "groups", &m->groups, path, err)) ||
		    (rc = get_bool(st, "transposed", &transposed, path, err)))
			return rc;
		if (transposed)
			return vt_err_set(err, VT_EUNSUPPORTED, "module '%s': transposed convolutions are not supported", path);
		if (m->groups < 1 || m->in % m->groups)
			return vt_err_set(err, VT_EFORMAT, "module '%s': bad groups", path);
		if (!pm || pm->kind != VT_PK_STR || pm->u.str.len >= sizeof(m->padding_mode))
			return vt_err_set(err, VT_EFORMAT, "module '%s': bad padding_mode", path);
		memcpy(m->padding_mode, pm->u.str.s, pm->u.str.len + 1);
		break;
	}
	case VT_MOD_BATCHNORM2D:
		if ((rc = get_int(st, "num_features", &m->in, path, err)) ||
		    (rc = get_float(st, "eps", &m->eps, NULL, path, err)) ||
		    (rc = get_float(st, "momentum", &m->momentum, &m->momentum_none, path, err)) ||
		    (rc = get_bool(st, "affine", &m->affine, path, err)) ||
		    (rc = get_bool(st, "track_running_stats", &m->track_running_stats, path, err)))
			return rc;
		break;
	case VT_MOD_RELU:
		return get_bool(st, "inplace", &m->inplace, path, err);
	case VT_MOD_MAXPOOL2D:
		if ((rc = get_pair(st, "kernel_size", &m->kernel, path, err)) ||
		    (rc = get_pair(st, "padding", &m->padding, path, err)) ||
		    (rc = get_pair(st, "dilation", &m->dilation, path, err)) ||
		    (rc = get_bool(st, "return_indices", &m->return_indices, path, err)) ||
		    (rc = get_bool(st, "ceil_mode", &m->ceil_mode, path, err)))
			return rc;
		/* stride=None means kernel_size */
		if (vt_pk_dict_get(st, "stride") && vt_pk_dict_get(st, "stride")->kind == VT_PK_NONE)
			m->stride = m->kernel;
		else if ((rc = get_pair(st, "stride", &m->stride, path, err)))
			return rc;
		break;
	case VT_MOD_ADAPTIVEAVGPOOL2D:
		return get_pair(st, "output_size", &m->output_size, path, err);
	case VT_MOD_LINEAR:
		if ((rc = get_int(st, "in_features", &m->in, path, err)) ||
		    (rc = get_int(st, "out_features", &m->out, path, err)))
			return rc;
		break;
	case VT_MOD_DROPOUT:
		if ((rc = get_float(st, "p", &m->p, NULL, path, err)) ||
		    (rc = get_bool(st, "inplace", &m->inplace, path, err)))
			return rc;
		break;
	case VT_MOD_FLATTEN:
		if ((rc = get_int(st, "start_dim", &m->start_dim, path, err)) ||
		    (rc = get_int(st, "end_dim", &m->end_dim, path, err)))
			return rc;
		break;
	default:
		break;
	}
	return 0;
}

static int read_tensors(struct vt_module *m, const struct vt_pk *dict, const char *path, struct vt_err *err)
{
	size_t i;
	int slot;

	if (!dict)
		return 0;
	if (dict->kind != VT_PK_DICT)
		return vt_err_set(err, VT_EFORMAT, "module '%s': parameters or buffers are not a dict", path);
	for (i = 0; i < dict->u.dict.n; i++) {
		const struct vt_pk *k = dict->u.dict.keys[i], *v = dict->u.dict.vals[i];
		if (v->kind == VT_PK_NONE)
			continue; /* bias=False */
		for (slot = 0; slot < VT_T_COUNT; slot++)
			if (vt_pk_is_str(k, tensor_names[slot]))
				break;
		if (slot == VT_T_COUNT || !vt_pk_tensor(v))
			return vt_err_set(err, VT_EUNSUPPORTED, "module '%s': unexpected parameter or buffer '%s'", path,
					  k->kind == VT_PK_STR ? k->u.str.s : "?");
		m->t[slot] = vt_pk_tensor(v);
	}
	return 0;
}

/* A VGG has about 60 modules; the bound stops a file whose tree shares one subtree many
 * times through the memo (k children, d levels: k^d modules to copy) from exhausting memory. */
#define MAX_MODULES 4096

static int parse_module(const struct vt_pk *obj, const char *name, const char *path, int depth,
			size_t *budget, struct vt_module **out, struct vt_err *err)
{
	const struct vt_pk *st, *mods, *tr;
	struct vt_module *m;
	size_t i;
	int rc;

	*out = NULL;
	if (depth > 16)
		return vt_err_set(err, VT_EUNSUPPORTED, "module '%s': modules nested too deep", path);
	if (*budget == 0)
		return vt_err_set(err, VT_EUNSUPPORTED, "the model has more than %d modules", MAX_MODULES);
	(*budget)--;
	if (!obj || obj->kind != VT_PK_OBJECT || !(st = vt_pk_obj_state(obj)) || st->kind != VT_PK_DICT)
		return vt_err_set(err, VT_EFORMAT, "module '%s' is not a pickled nn.Module", path);
	for (i = 0; i < sizeof(class_kinds) / sizeof(class_kinds[0]); i++)
		if (strcmp(obj->u.obj.cls->u.global.name, class_kinds[i].name) == 0)
			break;
	if (i == sizeof(class_kinds) / sizeof(class_kinds[0]))
		return vt_err_set(err, VT_EUNSUPPORTED, "module '%s' is a %s, not part of a VGG", path,
				  obj->u.obj.cls->u.global.name);
	m = mod_new(name, class_kinds[i].kind);
	if (!m)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	tr = vt_pk_dict_get(st, "training");
	m->training = !tr || tr->kind != VT_PK_BOOL || tr->u.b;
	if ((rc = read_attrs(m, st, path, err)) ||
	    (rc = read_tensors(m, vt_pk_dict_get(st, "_parameters"), path, err)) ||
	    (rc = read_tensors(m, vt_pk_dict_get(st, "_buffers"), path, err))) {
		mod_free(m);
		return rc;
	}
	mods = vt_pk_dict_get(st, "_modules");
	for (i = 0; mods && mods->kind == VT_PK_DICT && i < mods->u.dict.n; i++) {
		const struct vt_pk *k = mods->u.dict.keys[i];
		char sub[256];
		struct vt_module *c;
		if (k->kind != VT_PK_STR || k->u.str.len > 64) {
			mod_free(m);
			return vt_err_set(err, VT_EFORMAT, "module '%s': a child name is not a short string", path);
		}
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", k->u.str.s);
		if ((rc = parse_module(mods->u.dict.vals[i], k->u.str.s, sub, depth + 1, budget, &c, err)) ||
		    (rc = mod_add(m, c))) {
			mod_free(m);
			return rc ? rc : vt_err_set(err, VT_ENOMEM, "out of memory");
		}
	}
	*out = m;
	return 0;
}

/* ---- state_dicts ---------------------------------------------------------------------- */

static int has_tensor_values(const struct vt_pk *d)
{
	size_t i;

	for (i = 0; d && d->kind == VT_PK_DICT && i < d->u.dict.n; i++)
		if (vt_pk_tensor(d->u.dict.vals[i]))
			return 1;
	return 0;
}

/* The prefix all keys share among module. and _orig_mod., or 0. */
static size_t common_prefix(const struct vt_pk *d)
{
	static const char *const prefixes[] = { "module.", "_orig_mod.", NULL };
	size_t skip = 0, i;
	int p;

	for (;;) {
		for (p = 0; prefixes[p]; p++) {
			size_t n = strlen(prefixes[p]);
			for (i = 0; i < d->u.dict.n; i++) {
				const struct vt_pk *k = d->u.dict.keys[i];
				if (k->kind != VT_PK_STR || k->u.str.len < skip + n ||
				    strncmp(k->u.str.s + skip, prefixes[p], n) != 0)
					break;
			}
			if (d->u.dict.n > 0 && i == d->u.dict.n) {
				skip += n;
				break;
			}
		}
		if (!prefixes[p])
			return skip;
	}
}

struct sd_layer {
	char name[65];
	struct vt_tensor *t[VT_T_COUNT];
};

/* Groups "<section>.<name>.<tensor>" keys by layer name, in order of first appearance. */
static int sd_layers(const struct vt_pk *d, size_t skip, const char *section, struct sd_layer **out, size_t *n,
		     struct vt_err *err)
{
	size_t i, j, slen = strlen(section);
	struct sd_layer *l = NULL;

	*n = 0;
	for (i = 0; i < d->u.dict.n; i++) {
		const struct vt_pk *k = d->u.dict.keys[i];
		const char *key = k->u.str.s + skip, *dot;
		size_t nlen;
		int slot;
		if (strncmp(key, section, slen) != 0 || key[slen] != '.')
			continue;
		key += slen + 1;
		dot = strchr(key, '.');
		nlen = dot ? (size_t)(dot - key) : 0;
		if (!dot || nlen == 0 || nlen > 64) {
			free(l);
			return vt_err_set(err, VT_EFORMAT, "state_dict key '%s' is not '%s.<layer>.<tensor>'",
					  k->u.str.s, section);
		}
		for (slot = 0; slot < VT_T_COUNT; slot++)
			if (strcmp(dot + 1, tensor_names[slot]) == 0)
				break;
		if (slot == VT_T_COUNT) {
			free(l);
			return vt_err_set(err, VT_EFORMAT, "state_dict key '%s': unknown tensor '%s'", k->u.str.s, dot + 1);
		}
		for (j = 0; j < *n; j++)
			if (strlen(l[j].name) == nlen && strncmp(l[j].name, key, nlen) == 0)
				break;
		if (j == *n) {
			struct sd_layer *p;
			if (*n == 1024) { /* a VGG has 53 at most; the search above is quadratic */
				free(l);
				return vt_err_set(err, VT_EFORMAT, "state_dict matches no VGG: more than 1024 layers in '%s'",
						  section);
			}
			p = realloc(l, (*n + 1) * sizeof(*l));
			if (!p) {
				free(l);
				return vt_err_set(err, VT_ENOMEM, "out of memory");
			}
			l = p;
			memset(&l[j], 0, sizeof(l[j]));
			memcpy(l[j].name, key, nlen);
			(*n)++;
		}
		l[j].t[slot] = vt_pk_tensor(d->u.dict.vals[i]);
	}
	*out = l;
	return 0;
}

static const struct sd_layer *sd_find(const struct sd_layer *l, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(l[i].name, name) == 0)
			return &l[i];
	return NULL;
}

/* Attaches state_dict tensors to the modules of seq by name; returns the number attached,
 * or -1 if a parameterised module has no tensors or a layer has no module. */
static int attach(struct vt_module *seq, const struct sd_layer *l, size_t n)
{
	size_t i, used = 0;
	int slot;

	for (i = 0; i < seq->nchild; i++) {
		struct vt_module *c = seq->child[i];
		const struct sd_layer *s = sd_find(l, n, c->name);
		int wants = c->kind == VT_MOD_CONV2D || c->kind == VT_MOD_BATCHNORM2D || c->kind == VT_MOD_LINEAR;
		if (!wants) {
			if (s)
				return -1;
			continue;
		}
		if (!s || !s->t[VT_T_WEIGHT])
			return -1;
		for (slot = 0; slot < VT_T_COUNT; slot++)
			c->t[slot] = s->t[slot];
		used++;
	}
	return used == n ? 0 : -1;
}

static int tensor_is(const struct vt_tensor *t, int ndim, int64_t d0, int64_t d1)
{
	return t && t->ndim == ndim && (ndim < 1 || t->size[0] == d0) && (ndim < 2 || t->size[1] == d1);
}

static int check_tree(const struct vt_module *mod, const char *path, struct vt_err *err);

static int from_state_dict(struct vt_model *m, const struct vt_pk *d, struct vt_err *err)
{
	struct sd_layer *feat = NULL, *cls = NULL;
	size_t nfeat = 0, ncls = 0, skip = common_prefix(d), i;
	int64_t dims[4];
	int c, rc;

	for (i = 0; i < d->u.dict.n; i++) {
		const struct vt_pk *k = d->u.dict.keys[i];
		if (k->kind != VT_PK_STR)
			return vt_err_set(err, VT_EFORMAT, "state_dict has a key that is not a string");
		if (!vt_pk_tensor(d->u.dict.vals[i]))
			return vt_err_set(err, VT_EFORMAT, "state_dict entry '%s' is not a tensor", k->u.str.s);
		if (strncmp(k->u.str.s + skip, "features.", 9) != 0 && strncmp(k->u.str.s + skip, "classifier.", 11) != 0)
			return vt_err_set(err, VT_EFORMAT,
					  "state_dict matches no VGG: unexpected key '%s' (VGG has features.* and classifier.*)",
					  k->u.str.s);
	}
	if ((rc = sd_layers(d, skip, "features", &feat, &nfeat, err)) ||
	    (rc = sd_layers(d, skip, "classifier", &cls, &ncls, err))) {
		free(feat);
		return rc;
	}
	/* the classifier: Linear at 0, 3, 6, then any extra Linear layers */
	rc = vt_err_set(err, VT_EFORMAT,
			"state_dict matches no VGG: classifier is not Linear layers at classifier.0, .3 and .6");
	if (ncls >= 3 && strcmp(cls[0].name, "0") == 0 && strcmp(cls[1].name, "3") == 0 &&
	    strcmp(cls[2].name, "6") == 0 && tensor_is(cls[0].t[VT_T_WEIGHT], 2, 4096, 25088) &&
	    tensor_is(cls[1].t[VT_T_WEIGHT], 2, 4096, 4096) && cls[2].t[VT_T_WEIGHT] &&
	    tensor_is(cls[2].t[VT_T_WEIGHT], 2, cls[2].t[VT_T_WEIGHT]->size[0], 4096)) {
		dims[0] = 25088;
		dims[1] = dims[2] = 4096;
		dims[3] = cls[2].t[VT_T_WEIGHT]->size[0];
		rc = 0;
	}
	for (c = 0; rc == 0 && c < 8; c++) {
		struct vt_model try_m;
		memset(&try_m, 0, sizeof(try_m));
		if (build_vgg(&try_m, c % 4, c >= 4, dims)) {
			vt_model_release(&try_m);
			rc = vt_err_set(err, VT_ENOMEM, "out of memory");
			break;
		}
		if (attach(try_m.root->child[0], feat, nfeat) == 0 && check_tree(try_m.root->child[0], "features", NULL) == 0) {
			*m = try_m;
			break;
		}
		vt_model_release(&try_m);
	}
	if (rc == 0 && c == 8) {
		char convs[200] = "";
		size_t len = 0;
		for (i = 0; i < nfeat && len + 8 < sizeof(convs); i++)
			len += (size_t)snprintf(convs + len, sizeof(convs) - len, "%s%s", i ? "," : "", feat[i].name);
		rc = vt_err_set(err, VT_EFORMAT,
				"state_dict matches no VGG: no vgg11/13/16/19 (with or without batch norm) has layers with these shapes at features.{%s}",
				convs);
	}
	if (rc == 0) {
		struct vt_module *seq = m->root->child[2];
		for (i = 0; i < 3; i++) {
			seq->child[3 * i]->t[VT_T_WEIGHT] = cls[i].t[VT_T_WEIGHT];
			seq->child[3 * i]->t[VT_T_BIAS] = cls[i].t[VT_T_BIAS];
		}
		for (i = 3; rc == 0 && i < ncls; i++) {
			struct vt_tensor *w = cls[i].t[VT_T_WEIGHT];
			struct vt_module *lin;
			if (!w || w->ndim != 2 || cls[i].t[VT_T_RUNNING_MEAN]) {
				rc = vt_err_set(err, VT_EUNSUPPORTED,
						"state_dict: extra classifier layer '%s' is not a Linear layer", cls[i].name);
				break;
			}
			lin = linear_new(cls[i].name, w->size[1], w->size[0]);
			if ((rc = mod_add(seq, lin))) {
				rc = vt_err_set(err, VT_ENOMEM, "out of memory");
				break;
			}
			lin->t[VT_T_WEIGHT] = w;
			lin->t[VT_T_BIAS] = cls[i].t[VT_T_BIAS];
		}
		if (rc == 0)
			rc = vt_model_check(m, err);
		if (rc)
			vt_model_release(m);
	}
	free(feat);
	free(cls);
	return rc;
}

/* A VGG from a module record (DataParallel seen through) or a state_dict. */
static int find_model(struct vt_model *m, const struct vt_pk *v, int depth, struct vt_err *err)
{
	if (depth > 4 || !v)
		return VT_ENOTFOUND;
	if (v->kind == VT_PK_OBJECT) {
		const char *cls = vt_pk_obj_class(v);
		struct vt_module *root;
		size_t budget = MAX_MODULES;
		int rc;
		if (!cls)
			return vt_err_set(err, VT_EFORMAT, "the saved model is not a class instance");
		if (strcmp(cls, "DataParallel") == 0 || strcmp(cls, "DistributedDataParallel") == 0) {
			const struct vt_pk *mods = vt_pk_dict_get(vt_pk_obj_state(v), "_modules");
			return find_model(m, vt_pk_dict_get(mods, "module"), depth + 1, err);
		}
		if (strcmp(cls, "VGG") != 0)
			return vt_err_set(err, VT_EUNSUPPORTED, "the saved model is a %s, not a VGG", cls);
		if ((rc = parse_module(v, "", "", 0, &budget, &root, err)))
			return rc;
		m->root = root;
		return vt_model_check(m, err);
	}
	if (v->kind == VT_PK_DICT && has_tensor_values(v))
		return from_state_dict(m, v, err);
	return VT_ENOTFOUND;
}

static void name_arch(struct vt_model *m);

int vt_model_from_weights(struct vt_model *m, const struct vt_weights *w, struct vt_err *err)
{
	int rc;

	memset(m, 0, sizeof(*m));
	if (w->kind == VT_WEIGHTS_SCRIPT)
		return vt_err_set(err, VT_EUNSUPPORTED, "this is a TorchScript archive, not a torch.save of a VGG");
	rc = find_model(m, w->node, 0, err);
	if (rc == VT_ENOTFOUND)
		rc = vt_err_set(err, VT_EFORMAT, "no VGG in this file");
	if (rc) {
		vt_model_release(m);
		return rc;
	}
	if (!m->arch[0])
		name_arch(m);
	return 0;
}

int vt_model_from_pth(struct vt_model *m, struct vt_pth *pth, struct vt_err *err)
{
	struct vt_weights w;
	int rc;

	memset(m, 0, sizeof(*m));
	if ((rc = vt_weights_find(pth, NULL, &w, err)))
		return rc;
	return vt_model_from_weights(m, &w, err);
}

/* Names a whole-model tree after the cfg its features match, if any. */
static void name_arch(struct vt_model *m)
{
	const struct vt_module *f = mod_child(m->root, "features");
	int c, i;

	for (c = 0; f && c < 8; c++) {
		size_t at = 0;
		for (i = 0; cfgs[c % 4][i] >= 0; i++) {
			int conv = cfgs[c % 4][i] != 0;
			if (at >= f->nchild)
				break;
			if (!conv) {
				if (f->child[at++]->kind != VT_MOD_MAXPOOL2D)
					break;
				continue;
			}
			if (f->child[at]->kind != VT_MOD_CONV2D || f->child[at]->out != cfgs[c % 4][i])
				break;
			at++;
			if (c >= 4 && (at >= f->nchild || f->child[at++]->kind != VT_MOD_BATCHNORM2D))
				break;
			if (at >= f->nchild || f->child[at++]->kind != VT_MOD_RELU)
				break;
		}
		if (cfgs[c % 4][i] < 0 && at == f->nchild) {
			snprintf(m->arch, sizeof(m->arch), "%s", vt_arch_names[c]);
			return;
		}
	}
}

/* ---- checks and edits ----------------------------------------------------------------- */

static int check_shape(const struct vt_tensor *t, int ndim, const int64_t *d, const char *path, const char *tn,
		       struct vt_err *err)
{
	int i;

	if (!t)
		return 0;
	for (i = 0; t->ndim == ndim && i < ndim; i++)
		if (t->size[i] != d[i])
			break;
	if (t->ndim == ndim && i == ndim)
		return 0;
	if (err) {
		char want[96] = "", got[96] = "";
		size_t a = 0, b = 0;
		for (i = 0; i < ndim; i++)
			a += (size_t)snprintf(want + a, sizeof(want) - a, "%s%lld", i ? ", " : "", (long long)d[i]);
		for (i = 0; i < t->ndim && i < 8; i++)
			b += (size_t)snprintf(got + b, sizeof(got) - b, "%s%lld", i ? ", " : "", (long long)t->size[i]);
		vt_err_set(err, VT_EFORMAT, "'%s%s%s' has shape [%s], the module needs [%s]", path, *path ? "." : "", tn,
			   got, want);
	}
	return VT_EFORMAT;
}

static int check_tree(const struct vt_module *mod, const char *path, struct vt_err *err)
{
	int64_t d[4];
	size_t i;
	int rc = 0;

	switch (mod->kind) {
	case VT_MOD_CONV2D:
		d[0] = mod->out;
		d[1] = mod->groups > 0 ? mod->in / mod->groups : 0;
		d[2] = mod->kernel.v[0];
		d[3] = mod->kernel.v[1];
		rc = check_shape(mod->t[VT_T_WEIGHT], 4, d, path, "weight", err);
		if (rc == 0)
			rc = check_shape(mod->t[VT_T_BIAS], 1, d, path, "bias", err);
		if (rc == 0 && !mod->t[VT_T_WEIGHT])
			rc = err ? vt_err_set(err, VT_EFORMAT, "'%s' has no weight", path) : VT_EFORMAT;
		break;
	case VT_MOD_LINEAR:
		d[0] = mod->out;
		d[1] = mod->in;
		rc = check_shape(mod->t[VT_T_WEIGHT], 2, d, path, "weight", err);
		if (rc == 0)
			rc = check_shape(mod->t[VT_T_BIAS], 1, d, path, "bias", err);
		if (rc == 0 && !mod->t[VT_T_WEIGHT])
			rc = err ? vt_err_set(err, VT_EFORMAT, "'%s' has no weight", path) : VT_EFORMAT;
		break;
	case VT_MOD_BATCHNORM2D:
		d[0] = mod->in;
		for (i = 0; i < VT_T_NUM_BATCHES && rc == 0; i++)
			rc = check_shape(mod->t[i], 1, d, path, tensor_names[i], err);
		if (rc == 0)
			rc = check_shape(mod->t[VT_T_NUM_BATCHES], 0, d, path, tensor_names[VT_T_NUM_BATCHES], err);
		break;
	default:
		break;
	}
	for (i = 0; i < mod->nchild && rc == 0; i++) {
		char sub[256];
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", mod->child[i]->name);
		rc = check_tree(mod->child[i], sub, err);
	}
	return rc;
}

int vt_model_check(const struct vt_model *m, struct vt_err *err)
{
	return check_tree(m->root, "", err);
}

static struct vt_module *last_linear(struct vt_module *seq, size_t *at)
{
	size_t i;

	for (i = seq ? seq->nchild : 0; i-- > 0;)
		if (seq->child[i]->kind == VT_MOD_LINEAR) {
			*at = i;
			return seq->child[i];
		}
	return NULL;
}

int vt_model_add_linear(struct vt_model *m, const char *name, int64_t in, int64_t out, uint64_t seed,
			struct vt_err *err)
{
	struct vt_module *cls = mod_child(m->root, "classifier"), *last, *lin;
	size_t at;
	char path[128];

	last = last_linear(cls, &at);
	if (!last)
		return vt_err_set(err, VT_EUSAGE, "the model has no classifier with a Linear layer to extend");
	if (in != last->out)
		return vt_err_set(err, VT_EUSAGE,
				  "cannot add Linear(%lld, %lld): the classifier's output width is %lld (classifier.%s), so IN must be %lld",
				  (long long)in, (long long)out, (long long)last->out, last->name, (long long)last->out);
	if (out < 1 || !*name || strlen(name) > 64 || strchr(name, '.'))
		return vt_err_set(err, VT_EUSAGE, "bad layer: OUT must be positive and NAME a non-empty name without dots");
	if (mod_child(cls, name))
		return vt_err_set(err, VT_EUSAGE, "the classifier already has a layer named '%s'", name);
	lin = linear_new(name, in, out);
	if (!lin || mod_add(cls, lin))
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "classifier.%s", name);
	if (init_module(m, lin, path, seed, 1))
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	return 0;
}

int vt_model_replace_last(struct vt_model *m, int64_t out, uint64_t seed, struct vt_err *err)
{
	struct vt_module *cls = mod_child(m->root, "classifier"), *last, *lin;
	size_t at;
	char path[128];

	last = last_linear(cls, &at);
	if (!last)
		return vt_err_set(err, VT_EUSAGE, "the model has no classifier with a Linear layer to replace");
	if (out < 1)
		return vt_err_set(err, VT_EUSAGE, "OUT must be positive");
	lin = linear_new(last->name, last->in, out);
	if (!lin)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "classifier.%s", last->name);
	if (init_module(m, lin, path, seed, 1)) {
		mod_free(lin);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	cls->child[at] = lin;
	mod_free(last);
	return 0;
}

/* ---- state_dict view ------------------------------------------------------------------ */

struct collect {
	struct vt_named *t;
	struct vt_meta *meta;
	size_t n, cap;
	int oom;
};

static void collect_push(struct collect *c, char *name, const struct vt_tensor *t, int version)
{
	if (!name) {
		c->oom = 1;
		return;
	}
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 64;
		void *p = c->t ? realloc(c->t, ncap * sizeof(*c->t)) : realloc(c->meta, ncap * sizeof(*c->meta));
		if (!p) {
			free(name);
			c->oom = 1;
			return;
		}
		if (c->t)
			c->t = p;
		else
			c->meta = p;
		c->cap = ncap;
	}
	if (c->t) {
		c->t[c->n].name = name;
		c->t[c->n].t = t;
	} else {
		c->meta[c->n].prefix = name;
		c->meta[c->n].version = version;
	}
	c->n++;
}

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 2);

	if (s)
		snprintf(s, la + lb + 2, "%s%s%s", a, la && lb ? "." : "", b);
	return s;
}

/* prefix has no trailing dot here; "" is the root */
static void collect_tree(struct collect *c, const struct vt_module *mod, const char *prefix, int want_tensors)
{
	size_t i;
	int slot;

	if (want_tensors) {
		for (slot = 0; slot < VT_T_COUNT; slot++)
			if (mod->t[slot])
				collect_push(c, join(prefix, tensor_names[slot]), mod->t[slot], 0);
	} else {
		int v = mod->kind == VT_MOD_BATCHNORM2D && mod->t[VT_T_NUM_BATCHES] ? 2 : 1;
		collect_push(c, strdup(prefix), NULL, v);
	}
	for (i = 0; i < mod->nchild; i++) {
		char *sub = join(prefix, mod->child[i]->name);
		if (!sub) {
			c->oom = 1;
			return;
		}
		collect_tree(c, mod->child[i], sub, want_tensors);
		free(sub);
	}
}

static char *strip_dot(const char *prefix)
{
	char *p = strdup(prefix ? prefix : "");
	size_t n = p ? strlen(p) : 0;

	if (n && p[n - 1] == '.')
		p[n - 1] = '\0';
	return p;
}

int vt_model_state_dict(const struct vt_model *m, const char *prefix, struct vt_named **out, size_t *n,
			struct vt_err *err)
{
	struct collect c = { 0 };
	char *p = strip_dot(prefix);

	c.t = calloc(1, sizeof(*c.t));
	if (!p || !c.t) {
		free(p);
		free(c.t);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	c.cap = 1;
	collect_tree(&c, m->root, p, 1);
	free(p);
	if (c.oom) {
		vt_named_free(c.t, c.n);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	*out = c.t;
	*n = c.n;
	return 0;
}

void vt_named_free(struct vt_named *t, size_t n)
{
	size_t i;

	for (i = 0; t && i < n; i++)
		free((char *)t[i].name);
	free(t);
}

int vt_model_metadata(const struct vt_model *m, const char *prefix, struct vt_meta **out, size_t *n,
		      struct vt_err *err)
{
	struct collect c = { 0 };
	char *p = strip_dot(prefix);

	c.meta = calloc(1, sizeof(*c.meta));
	if (!p || !c.meta) {
		free(p);
		free(c.meta);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	c.cap = 1;
	/* a wrapped model (module.) also records the wrapper itself at '' */
	if (*p)
		collect_push(&c, strdup(""), NULL, 1);
	collect_tree(&c, m->root, p, 0);
	free(p);
	if (c.oom) {
		vt_meta_free(c.meta, c.n);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	*out = c.meta;
	*n = c.n;
	return 0;
}

void vt_meta_free(struct vt_meta *meta, size_t n)
{
	size_t i;

	for (i = 0; meta && i < n; i++)
		free((char *)meta[i].prefix);
	free(meta);
}
