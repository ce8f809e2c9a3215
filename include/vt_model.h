/* vt_model.h - the VGG family as data: a tree of modules shaped like torch.nn's.
 *
 * A model comes from a torch.save file (whole-model pickle or state_dict, architecture
 * inferred from keys and shapes), or fresh from an architecture name.  It prints exactly as
 * Python's print(model) does, names its tensors as state_dict() does, can be edited
 * (append a Linear to the classifier, replace the last one) and written in either form.
 *
 * Tensors point into the checkpoint they came from (struct vt_pth) or are generated
 * (VT_STORAGE_INIT, owned by the model), so nothing here holds tensor bytes.
 */
#ifndef VT_MODEL_H
#define VT_MODEL_H

#include <stdio.h>

#include "vt_module.h"
#include "vt_pth.h"

enum vt_mod_kind {
	VT_MOD_VGG, VT_MOD_SEQUENTIAL, VT_MOD_CONV2D, VT_MOD_BATCHNORM2D, VT_MOD_RELU,
	VT_MOD_MAXPOOL2D, VT_MOD_ADAPTIVEAVGPOOL2D, VT_MOD_LINEAR, VT_MOD_DROPOUT, VT_MOD_FLATTEN,
	VT_MOD_KIND_COUNT
};

/* An int or a pair, as nn modules keep them (MaxPool2d(2) vs Conv2d's (3, 3)). */
struct vt_pair {
	int64_t v[2];
	int is_tuple;
};

enum { VT_T_WEIGHT, VT_T_BIAS, VT_T_RUNNING_MEAN, VT_T_RUNNING_VAR, VT_T_NUM_BATCHES, VT_T_COUNT };

struct vt_module {
	char *name;               /* key in the parent's _modules: "features", "0", "add_linear" */
	enum vt_mod_kind kind;
	int training;
	/* hyper-parameters; which ones matter depends on kind */
	int64_t in, out;          /* Conv2d channels, Linear features, BatchNorm2d num_features (in) */
	struct vt_pair kernel, stride, padding, dilation, output_size;
	int64_t groups;
	char padding_mode[16];
	int ceil_mode, return_indices, inplace, affine, track_running_stats;
	double p, eps, momentum;  /* Dropout p; BatchNorm2d eps, momentum */
	int momentum_none;
	int64_t start_dim, end_dim;
	/* parameters (weight, bias) then buffers, in state_dict order; NULL when absent */
	struct vt_tensor *t[VT_T_COUNT];
	struct vt_module **child;
	size_t nchild;
};

struct vt_model {
	struct vt_module *root;
	char arch[16];            /* "vgg16", "vgg16_bn"... or "" when no standard name fits */
	/* generated tensors and storages, owned here */
	struct vt_tensor **own_t;
	struct vt_storage **own_s;
	size_t nown, own_cap;
};

extern const char *const vt_arch_names[]; /* NULL-terminated: vgg11 ... vgg19_bn */

void vt_model_release(struct vt_model *m);
/* A fresh network as torchvision builds it: conv kaiming-normal (fan-out), Linear N(0, 0.01),
 * zero biases, BatchNorm weight 1 / bias 0, running mean 0 / var 1. */
int vt_model_from_arch(struct vt_model *m, const char *arch, uint64_t seed, struct vt_err *err);
/* Finds the model in a checkpoint: a whole-model pickle, a state_dict, or either under a
 * training dict key; strips module. / _orig_mod. prefixes. */
int vt_model_from_pth(struct vt_model *m, struct vt_pth *pth, struct vt_err *err);
/* The same from weights vt_weights_find found; fails naming what they are when not a VGG. */
int vt_model_from_weights(struct vt_model *m, const struct vt_weights *w, struct vt_err *err);
/* Appends Linear(in, out) named name to the classifier (PyTorch's default init). */
int vt_model_add_linear(struct vt_model *m, const char *name, int64_t in, int64_t out, uint64_t seed,
			struct vt_err *err);
/* Replaces the classifier's last Linear with Linear(its in_features, out). */
int vt_model_replace_last(struct vt_model *m, int64_t out, uint64_t seed, struct vt_err *err);
/* Replaces mod->t[slot] with a model-owned contiguous in-memory tensor (dtype VT_F32 or
 * VT_I64) over data, which the model takes over (freed with the model). */
int vt_model_set_mem_tensor(struct vt_model *m, struct vt_module *mod, int slot, int dtype, int ndim,
			    const int64_t *shape, void *data);
/* Checks that every tensor has the shape its module implies. */
int vt_model_check(const struct vt_model *m, struct vt_err *err);

/* print(model), byte for byte, into a malloc'ed string. */
char *vt_model_repr(const struct vt_model *m);

/* state_dict() order and names, with an optional key prefix ("module."). The array and the
 * names are malloc'ed; free with vt_named_free. */
int vt_model_state_dict(const struct vt_model *m, const char *prefix, struct vt_named **out, size_t *n,
			struct vt_err *err);
/* state_dict()._metadata: every module's prefix and _version. */
int vt_model_metadata(const struct vt_model *m, const char *prefix, struct vt_meta **out, size_t *n,
		      struct vt_err *err);

/* Writers: torch.save(model.state_dict()) and torch.save(model). */
int vt_model_save_weights(const struct vt_model *m, const char *path, const struct vt_src *src,
			  const char *prefix, struct vt_err *err);
int vt_model_save_full(const struct vt_model *m, const char *path, const struct vt_src *src,
		       struct vt_err *err);

/* Python's repr() of a float: the shortest text that reads back as the same double. */
void vt_py_float_repr(double v, char *buf, size_t size);

#endif
