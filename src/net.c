/* net.c - a vt_model on the libtorch shim (see include/vt_net.h).
 *
 * The module tree becomes VGG.forward's flat sequence: features' layers, avgpool, a flatten,
 * the classifier's layers.  Tensors keep their state_dict() numbering, so optimizer ids,
 * checkpoint keys and shim indices all agree.
 */
#include "vt_net.h"

#include <stdlib.h>
#include <string.h>

int vt_net_fail(const struct vt_net *net, const char *what, struct vt_err *err)
{
	return vt_err_set(err, VT_EFORMAT, "%s: %s", what, net->api->last_error());
}

struct flat {
	struct vt_shim_layer *l;
	int n, cap;
	int features_end;
	int next_tensor;
	int oom;
};

static void push_layer(struct flat *f, const struct vt_shim_layer *l)
{
	if (f->n == f->cap) {
		int ncap = f->cap ? f->cap * 2 : 64;
		struct vt_shim_layer *p = realloc(f->l, (size_t)ncap * sizeof(*p));
		if (!p) {
			f->oom = 1;
			return;
		}
		f->l = p;
		f->cap = ncap;
	}
	f->l[f->n++] = *l;
}

static int flatten_tree(struct flat *f, const struct vt_module *m, struct vt_err *err)
{
	struct vt_shim_layer l;
	size_t i;
	int k, rc;

	memset(&l, 0, sizeof(l));
	for (k = 0; k < 5; k++)
		l.t[k] = m->t[k] ? f->next_tensor++ : -1;
	switch (m->kind) {
	case VT_MOD_VGG:
	case VT_MOD_SEQUENTIAL:
		for (i = 0; i < m->nchild; i++) {
			if (m->kind == VT_MOD_VGG && m->child[i]->kind == VT_MOD_ADAPTIVEAVGPOOL2D)
				f->features_end = f->n;
			if ((rc = flatten_tree(f, m->child[i], err)))
				return rc;
			if (m->kind == VT_MOD_VGG && m->child[i]->kind == VT_MOD_ADAPTIVEAVGPOOL2D) {
				struct vt_shim_layer fl;
				memset(&fl, 0, sizeof(fl));
				fl.kind = VT_L_FLATTEN; /* torch.flatten(x, 1) in VGG.forward */
				for (k = 0; k < 5; k++)
					fl.t[k] = -1;
				push_layer(f, &fl);
			}
		}
		return 0;
	case VT_MOD_CONV2D:
		if (strcmp(m->padding_mode, "zeros") != 0)
			return vt_err_set(err, VT_EUNSUPPORTED, "padding_mode '%s' cannot be trained", m->padding_mode);
		l.kind = VT_L_CONV;
		break;
	case VT_MOD_BATCHNORM2D:
		l.kind = VT_L_BN;
		l.eps = m->eps;
		l.momentum = m->momentum_none ? -1.0 : m->momentum;
		break;
	case VT_MOD_RELU:
		l.kind = VT_L_RELU;
		break;
	case VT_MOD_MAXPOOL2D:
		l.kind = VT_L_MAXPOOL;
		l.ceil_mode = m->ceil_mode;
		break;
	case VT_MOD_ADAPTIVEAVGPOOL2D:
		l.kind = VT_L_AVGPOOL;
		l.output_size[0] = m->output_size.v[0];
		l.output_size[1] = m->output_size.v[1];
		break;
	case VT_MOD_FLATTEN:
		l.kind = VT_L_FLATTEN;
		break;
	case VT_MOD_LINEAR:
		l.kind = VT_L_LINEAR;
		break;
	case VT_MOD_DROPOUT:
		l.kind = VT_L_DROPOUT;
		l.p = m->p;
		break;
	default:
		return vt_err_set(err, VT_EUNSUPPORTED, "module '%s' cannot be run", m->name);
	}
	for (k = 0; k < 2; k++) {
		l.kernel[k] = m->kernel.v[k];
		l.stride[k] = m->stride.v[k];
		l.padding[k] = m->padding.v[k];
		l.dilation[k] = m->dilation.v[k];
	}
	l.groups = m->groups;
	push_layer(f, &l);
	return 0;
}

static int contiguous_whole(const struct vt_tensor *t)
{
	uint64_t numel = 1;
	int d;

	for (d = t->ndim - 1; d >= 0; d--) {
		if (t->size[d] != 1 && (uint64_t)t->stride[d] != numel)
			return 0;
		numel *= (uint64_t)t->size[d];
	}
	return t->offset == 0 && numel == t->storage->numel;
}

/* Hands tensor i to the shim as float32 (or the int64 batch counter), converting only when
 * the stored layout or dtype differs; the buffer goes to the shim without a copy on the CPU. */
static int upload(struct vt_net *net, int i, const struct vt_src *src, struct vt_err *err)
{
	const struct vt_tensor *t = net->tensors[i].t;
	void *raw = NULL, *buf;
	uint64_t numel = vt_tensor_numel(t);
	int rc;

	if ((rc = vt_storage_read(t->storage, src, &raw, err)))
		return vt_err_prefix(err, "%s", net->tensors[i].name);
	if (t->dtype == VT_I64) { /* num_batches_tracked: a 0-dim counter */
		int64_t *v = calloc(1, sizeof(*v));
		if (v && numel == 1)
			memcpy(v, (char *)raw + 8 * t->offset, 8);
		free(raw);
		if (!v)
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		rc = net->api->net_set(net->h, i, 1, v, t->size, t->ndim, 0, 1);
	} else {
		if (t->dtype == VT_F32 && contiguous_whole(t)) {
			buf = raw;
		} else {
			buf = malloc((numel ? numel : 1) * sizeof(float));
			rc = buf ? vt_tensor_to_f32(t, raw, buf, err) : vt_err_set(err, VT_ENOMEM, "out of memory");
			free(raw);
			if (rc) {
				free(buf);
				return rc;
			}
		}
		rc = net->api->net_set(net->h, i, 0, buf, t->size, t->ndim, net->trainable[i], 1);
	}
	return rc ? vt_net_fail(net, net->tensors[i].name, err) : 0;
}

/* Records, for each tensor index, its module and slot (the order flatten_tree numbered them). */
static void index_tensors(struct vt_net *net, struct vt_module *m, int *next)
{
	size_t i;
	int k;

	for (k = 0; k < VT_T_COUNT; k++)
		if (m->t[k]) {
			net->mod[*next] = m;
			net->slot[*next] = k;
			(*next)++;
		}
	for (i = 0; i < m->nchild; i++)
		index_tensors(net, m->child[i], next);
}

int vt_net_build(struct vt_net *net, const struct vt_shim_api *api, const struct vt_model *m,
		 const struct vt_src *src, const char *device, int freeze_features, struct vt_err *err)
{
	struct flat f = { 0 };
	size_t n = 0;
	int i, rc, next = 0;

	memset(net, 0, sizeof(*net));
	net->api = api;
	f.features_end = -1;
	if ((rc = flatten_tree(&f, m->root, err))) {
		free(f.l);
		return rc;
	}
	net->layers = f.l;
	net->nlayers = f.n;
	net->features_end = f.features_end;
	if (f.oom)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	if (f.features_end < 0 || f.l[f.n - 1].kind != VT_L_LINEAR)
		return vt_err_set(err, VT_EUNSUPPORTED, "the model is not VGG-shaped (features, avgpool, classifier ending in Linear)");
	if ((rc = vt_model_state_dict(m, NULL, &net->tensors, &n, err)))
		return rc;
	net->ntensors = (int)n;
	net->mod = calloc(n + 1, sizeof(*net->mod));
	net->slot = calloc(n + 1, sizeof(*net->slot));
	net->trainable = calloc(n + 1, sizeof(*net->trainable));
	if (!net->mod || !net->slot || !net->trainable)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	index_tensors(net, m->root, &next);
	for (i = 0; i < net->ntensors; i++)
		net->trainable[i] = net->slot[i] <= VT_T_BIAS &&
				    !(freeze_features && strncmp(net->tensors[i].name, "features.", 9) == 0);
	net->nclasses = (int)net->mod[net->ntensors - 1]->out;
	if (api->net_new(&net->h, net->layers, net->nlayers, net->ntensors, device))
		return vt_net_fail(net, "creating the network", err);
	for (i = 0; i < net->ntensors; i++)
		if ((rc = upload(net, i, src, err)))
			return rc;
	return 0;
}

int vt_net_download(struct vt_net *net, struct vt_model *m, struct vt_err *err)
{
	int i;

	for (i = 0; i < net->ntensors; i++) {
		const struct vt_tensor *t = net->mod[i]->t[net->slot[i]];
		int dtype = t->dtype == VT_I64 ? VT_I64 : VT_F32;
		uint64_t numel = vt_tensor_numel(t);
		void *data = malloc(numel ? numel * 8 : 8);
		if (!data)
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		if (net->api->net_get(net->h, i, data, numel * (uint64_t)vt_dtype_info(dtype)->size)) {
			free(data);
			return vt_net_fail(net, net->tensors[i].name, err);
		}
		if (vt_model_set_mem_tensor(m, net->mod[i], net->slot[i], dtype, t->ndim, t->size, data)) {
			free(data);
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		}
	}
	return 0;
}

void vt_net_free(struct vt_net *net)
{
	if (net->h)
		net->api->net_free(net->h);
	free(net->layers);
	vt_named_free(net->tensors, (size_t)net->ntensors);
	free(net->mod);
	free(net->slot);
	free(net->trainable);
	memset(net, 0, sizeof(*net));
}
