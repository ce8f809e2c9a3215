/* vt_module.h - any model in a torch.save file, as the unpickler leaves it, whatever its
 * classes: nn.Module object records (class path, and a state holding _parameters, _buffers and
 * _modules), TorchScript objects (__torch__.* classes whose state holds every attribute), and
 * state_dicts (dicts of tensors).  Nothing here knows an architecture: vt_model.h is the VGG
 * graph, which training needs; this is what reading, listing and conversion need.
 *
 * Not done: state_dict() hooks and get_extra_state() (Python code decides those), tensors kept
 * as plain attributes (state_dict() leaves them out too), quantized modules' packed params.
 */
#ifndef VT_MODULE_H
#define VT_MODULE_H

#include "vt_pth.h"

/* 1 when v is an nn.Module record: an object whose state has _modules or _parameters. */
int vt_mod_is_module(const struct vt_pk *v);
/* A module's _modules, _parameters or _buffers dict (which: "_modules"...), or NULL. */
const struct vt_pk *vt_mod_dict(const struct vt_pk *mod, const char *which);

enum vt_weights_kind { VT_WEIGHTS_MODULE, VT_WEIGHTS_STATE_DICT, VT_WEIGHTS_SCRIPT };

struct vt_weights {
	enum vt_weights_kind kind;
	const struct vt_pk *node; /* the module record, the state_dict, or the TorchScript root */
	char where[256];          /* the key path it was found under, "" for the file's root */
};

/* The training-dict keys searched, in order, when no key is given (NULL-terminated). */
extern const char *const vt_weights_keys[];

/* Finds the weights in pth: a module tree, a state_dict (a dict whose values are all
 * tensors), or either under vt_weights_keys; key, a dotted path of dict keys, chooses
 * instead (NULL: search).  VT_ENOTFOUND, with a message saying what the file holds, when
 * there are none. */
int vt_weights_find(const struct vt_pth *pth, const char *key, struct vt_weights *w, struct vt_err *err);

/* The state_dict of what vt_weights_find found, as PyTorch's state_dict() orders it:
 * parameters (None skipped), persistent buffers, then children; a common module. or
 * _orig_mod. prefix stripped.  meta gets every module's prefix and _version (a state_dict
 * keeps the _metadata it has).  Tensors shared in the file stay shared.  Free with
 * vt_named_free and vt_meta_free. */
int vt_weights_state_dict(const struct vt_weights *w, struct vt_named **t, size_t *n, struct vt_meta **meta,
			  size_t *nmeta, struct vt_err *err);

/* Whose print() text to follow where torch versions differ (Upsample's and EmbeddingBag's
 * mode quoted, ModuleList's repeated children compacted from 2.x on). */
enum vt_torch_text { VT_TORCH_TEXT_2X, VT_TORCH_TEXT_1_13 };

/* print(model) for a module tree, byte for byte as torch prints it (text: 2.x, as 2.6 does,
 * or 1.13): Module.__repr__ with each torch.nn and torchvision class's extra_repr; user
 * classes print as Name(children).  malloc'ed; NULL when out of memory or past 100000
 * modules. */
char *vt_mod_repr(const struct vt_pk *mod, enum vt_torch_text text);

#endif
