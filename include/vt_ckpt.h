/* vt_ckpt.h - training checkpoints in the common PyTorch recipe's shape:
 *   {'epoch': int, 'model_state_dict': OrderedDict, 'optimizer_state_dict': {'state': {...},
 *    'param_groups': [{...}]}, 'loss': float, 'accuracy': float, 'arch': str}
 * and, when training scales its loss, 'scaler': GradScaler.state_dict() ({'scale',
 * 'growth_factor', 'backoff_factor', 'growth_interval', '_growth_tracker'}).
 * The optimizer part has torch.optim.SGD's / Adam's exact layout, so Python can continue
 * with optimizer.load_state_dict(ckpt['optimizer_state_dict']).
 */
#ifndef VT_CKPT_H
#define VT_CKPT_H

#include "vt_model.h"
#include "vt_shim.h"

/* Optimizer state: param id p (0..n-1, the order of the trainable parameters in
 * state_dict order) has a, b (float32, numel[p] values each, NULL when absent) and step. */
struct vt_optim_state {
	struct vt_shim_opt opt;
	int n;
	uint64_t *numel;
	const struct vt_tensor **shape; /* a tensor with the parameter's shape */
	float **a, **b;                 /* momentum_buffer or exp_avg; exp_avg_sq */
	int64_t *step;
	struct vt_shim_scaler scaler;   /* on: written as 'scaler', GradScaler.state_dict() */
};

int vt_optim_state_init(struct vt_optim_state *o, int n);
void vt_optim_state_release(struct vt_optim_state *o);

/* prefix (NULL: none) goes before every model_state_dict key: "module." as DDP saves them. */
int vt_ckpt_save(const char *path, const struct vt_model *m, const struct vt_src *src, int epoch,
		 const struct vt_optim_state *o, double loss, double accuracy, const char *prefix,
		 struct vt_err *err);
/* Reads 'epoch', 'optimizer_state_dict' and 'scaler' from a checkpoint into o (whose n and
 * numel are set by the caller); a missing optimizer part leaves o empty, a missing scaler
 * leaves o->scaler.on 0. */
int vt_ckpt_read(const struct vt_pth *pth, struct vt_optim_state *o, int *epoch, struct vt_err *err);

#endif
