/* model_write.c - a model as torch.save(model.state_dict()) or torch.save(model).
 *
 * Whole-model pickles follow torch 1.13 (shared/research/pth-format.md section 5): each module
 * is GLOBAL <class>, EMPTY_TUPLE NEWOBJ, then BUILD with its __dict__: the twelve base keys
 * of Module.__init__ in 1.13 order, then the class's own attributes in the order its
 * __init__ sets them.  torch 2.x's Module.__setstate__ adds the keys 1.13 lacks, so these
 * files load there too (with weights_only=False, as every whole-model file needs).
 */
#include "vt_model.h"

#include <stdlib.h>
#include <string.h>

int vt_model_save_weights(const struct vt_model *m, const char *path, const struct vt_src *src,
			  const char *prefix, struct vt_err *err)
{
	struct vt_named *t = NULL;
	struct vt_meta *meta = NULL;
	size_t n = 0, nmeta = 0;
	int rc;

	if ((rc = vt_model_state_dict(m, prefix, &t, &n, err)) ||
	    (rc = vt_model_metadata(m, prefix, &meta, &nmeta, err))) {
		vt_named_free(t, n);
		return rc;
	}
	rc = vt_pth_write_state_dict(path, src, t, n, meta, nmeta, err);
	vt_named_free(t, n);
	vt_meta_free(meta, nmeta);
	return rc;
}

static const char *const class_paths[VT_MOD_KIND_COUNT][2] = {
	[VT_MOD_VGG] = { "torchvision.models.vgg", "VGG" },
	[VT_MOD_SEQUENTIAL] = { "torch.nn.modules.container", "Sequential" },
	[VT_MOD_CONV2D] = { "torch.nn.modules.conv", "Conv2d" },
	[VT_MOD_BATCHNORM2D] = { "torch.nn.modules.batchnorm", "BatchNorm2d" },
	[VT_MOD_RELU] = { "torch.nn.modules.activation", "ReLU" },
	[VT_MOD_MAXPOOL2D] = { "torch.nn.modules.pooling", "MaxPool2d" },
	[VT_MOD_ADAPTIVEAVGPOOL2D] = { "torch.nn.modules.pooling", "AdaptiveAvgPool2d" },
	[VT_MOD_LINEAR] = { "torch.nn.modules.linear", "Linear" },
	[VT_MOD_DROPOUT] = { "torch.nn.modules.dropout", "Dropout" },
	[VT_MOD_FLATTEN] = { "torch.nn.modules.flatten", "Flatten" },
};

static void pair_value(struct vt_pkw *pk, const struct vt_pair *p)
{
	if (!p->is_tuple) {
		vt_pkw_int(pk, p->v[0]);
		return;
	}
	vt_pkw_int(pk, p->v[0]);
	vt_pkw_int(pk, p->v[1]);
	vt_pkw_tuple_end(pk, 2);
}

/* Attributes are written as "key value" pairs inside the __dict__'s SETITEMS. */
static void attr(struct vt_pkw *pk, const char *key)
{
	vt_pkw_str_interned(pk, key);
}

/* A dict of tensors (None where absent): _parameters or _buffers. */
static void tensor_dict(struct vt_pthw *w, const struct vt_module *m, int first, int last, int as_param)
{
	struct vt_pkw *pk = &w->pk;
	int slot, n = last - first + 1, i = 0;

	vt_pkw_ordereddict(pk);
	for (slot = first; slot <= last; slot++, i++) {
		vt_pkw_batch_begin(pk, (size_t)i, (size_t)n);
		vt_pkw_str_interned(pk, slot == 0 ? "weight" : slot == 1 ? "bias" : slot == 2 ? "running_mean" :
							  slot == 3 ? "running_var" : "num_batches_tracked");
		if (m->t[slot])
			vt_pthw_tensor(w, m->t[slot], as_param);
		else
			vt_pkw_none(pk);
		vt_pkw_batch_end(pk, (size_t)i, (size_t)n, 0);
	}
}

static void module(struct vt_pthw *w, const struct vt_module *m);

static void class_attrs(struct vt_pkw *pk, const struct vt_module *m)
{
	switch (m->kind) {
	case VT_MOD_CONV2D:
		attr(pk, "in_channels");
		vt_pkw_int(pk, m->in);
		attr(pk, "out_channels");
		vt_pkw_int(pk, m->out);
		attr(pk, "kernel_size");
		pair_value(pk, &m->kernel);
		attr(pk, "stride");
		pair_value(pk, &m->stride);
		attr(pk, "padding");
		pair_value(pk, &m->padding);
		attr(pk, "dilation");
		pair_value(pk, &m->dilation);
		attr(pk, "transposed");
		vt_pkw_bool(pk, 0);
		attr(pk, "output_padding");
		vt_pkw_int(pk, 0);
		vt_pkw_int(pk, 0);
		vt_pkw_tuple_end(pk, 2);
		attr(pk, "groups");
		vt_pkw_int(pk, m->groups);
		attr(pk, "padding_mode");
		vt_pkw_str_interned(pk, m->padding_mode);
		attr(pk, "_reversed_padding_repeated_twice");
		vt_pkw_tuple_begin(pk, 4);
		vt_pkw_int(pk, m->padding.v[1]);
		vt_pkw_int(pk, m->padding.v[1]);
		vt_pkw_int(pk, m->padding.v[0]);
		vt_pkw_int(pk, m->padding.v[0]);
		vt_pkw_tuple_end(pk, 4);
		break;
	case VT_MOD_BATCHNORM2D:
		attr(pk, "num_features");
		vt_pkw_int(pk, m->in);
		attr(pk, "eps");
		vt_pkw_float(pk, m->eps);
		attr(pk, "momentum");
		if (m->momentum_none)
			vt_pkw_none(pk);
		else
			vt_pkw_float(pk, m->momentum);
		attr(pk, "affine");
		vt_pkw_bool(pk, m->affine);
		attr(pk, "track_running_stats");
		vt_pkw_bool(pk, m->track_running_stats);
		break;
	case VT_MOD_RELU:
		attr(pk, "inplace");
		vt_pkw_bool(pk, m->inplace);
		break;
	case VT_MOD_MAXPOOL2D:
		attr(pk, "kernel_size");
		pair_value(pk, &m->kernel);
		attr(pk, "stride");
		pair_value(pk, &m->stride);
		attr(pk, "padding");
		pair_value(pk, &m->padding);
		attr(pk, "dilation");
		pair_value(pk, &m->dilation);
		attr(pk, "return_indices");
		vt_pkw_bool(pk, m->return_indices);
		attr(pk, "ceil_mode");
		vt_pkw_bool(pk, m->ceil_mode);
		break;
	case VT_MOD_ADAPTIVEAVGPOOL2D:
		attr(pk, "output_size");
		pair_value(pk, &m->output_size);
		break;
	case VT_MOD_LINEAR:
		attr(pk, "in_features");
		vt_pkw_int(pk, m->in);
		attr(pk, "out_features");
		vt_pkw_int(pk, m->out);
		break;
	case VT_MOD_DROPOUT:
		attr(pk, "p");
		vt_pkw_float(pk, m->p);
		attr(pk, "inplace");
		vt_pkw_bool(pk, m->inplace);
		break;
	case VT_MOD_FLATTEN:
		attr(pk, "start_dim");
		vt_pkw_int(pk, m->start_dim);
		attr(pk, "end_dim");
		vt_pkw_int(pk, m->end_dim);
		break;
	default:
		break;
	}
}

static void module(struct vt_pthw *w, const struct vt_module *m)
{
	static const char *const hook_dicts[] = {
		"_backward_hooks", "_is_full_backward_hook", "_forward_hooks", "_forward_pre_hooks",
		"_state_dict_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks", NULL
	};
	struct vt_pkw *pk = &w->pk;
	int has_params = m->kind == VT_MOD_CONV2D || m->kind == VT_MOD_LINEAR || m->kind == VT_MOD_BATCHNORM2D;
	size_t i;

	vt_pkw_global(pk, class_paths[m->kind][0], class_paths[m->kind][1]);
	vt_pkw_op(pk, VT_OP_EMPTY_TUPLE);
	vt_pkw_op(pk, VT_OP_NEWOBJ);
	vt_pkw_put(pk);
	vt_pkw_op(pk, VT_OP_EMPTY_DICT);
	vt_pkw_put(pk);
	vt_pkw_op(pk, VT_OP_MARK);
	attr(pk, "training");
	vt_pkw_bool(pk, m->training);
	attr(pk, "_parameters");
	if (has_params)
		tensor_dict(w, m, VT_T_WEIGHT, VT_T_BIAS, 1);
	else
		vt_pkw_ordereddict(pk);
	attr(pk, "_buffers");
	if (m->kind == VT_MOD_BATCHNORM2D)
		tensor_dict(w, m, VT_T_RUNNING_MEAN, VT_T_NUM_BATCHES, 0);
	else
		vt_pkw_ordereddict(pk);
	attr(pk, "_non_persistent_buffers_set");
	vt_pkw_global(pk, "__builtin__", "set");
	vt_pkw_op(pk, VT_OP_EMPTY_LIST);
	vt_pkw_put(pk);
	vt_pkw_tuple_end(pk, 1);
	vt_pkw_op(pk, VT_OP_REDUCE);
	vt_pkw_put(pk);
	for (i = 0; hook_dicts[i]; i++) {
		attr(pk, hook_dicts[i]);
		if (strcmp(hook_dicts[i], "_is_full_backward_hook") == 0)
			vt_pkw_none(pk);
		else
			vt_pkw_ordereddict(pk);
	}
	attr(pk, "_modules");
	vt_pkw_ordereddict(pk);
	for (i = 0; i < m->nchild; i++) {
		vt_pkw_batch_begin(pk, i, m->nchild);
		vt_pkw_str(pk, m->child[i]->name);
		module(w, m->child[i]);
		vt_pkw_batch_end(pk, i, m->nchild, 0);
	}
	class_attrs(pk, m);
	vt_pkw_op(pk, VT_OP_SETITEMS);
	vt_pkw_op(pk, VT_OP_BUILD);
}

int vt_model_save_full(const struct vt_model *m, const char *path, const struct vt_src *src,
		       struct vt_err *err)
{
	struct vt_pthw w;
	int rc;

	vt_pthw_init(&w);
	module(&w, m->root);
	rc = vt_pthw_save(&w, path, src, err);
	vt_pthw_release(&w);
	return rc;
}
