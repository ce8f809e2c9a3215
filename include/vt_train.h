/* vt_train.h - the loops around the shim: evaluation, cached frozen features, optimizer
 * state in and out, learning-rate schedules. The command layer (cmd_train.c, cmd_eval.c,
 * cmd_predict.c) adds options, progress and output. */
#ifndef VT_TRAIN_H
#define VT_TRAIN_H

#include "vt_ckpt.h"
#include "vt_data.h"
#include "vt_net.h"

struct vt_eval_result {
	double loss;        /* mean cross-entropy */
	int64_t correct, total;
	int64_t *class_correct, *class_total; /* nclasses each (owned) */
	int nclasses;
};

/* Eval-mode pass over the whole dataset (no augmentation). */
int vt_evaluate(struct vt_net *net, const struct vt_dataset *d, const struct vt_transform *t, int batch,
		struct vt_eval_result *r, struct vt_err *err);
void vt_eval_result_release(struct vt_eval_result *r);

/* Runs images idx[0..n) through layers [from, to): out gets n x per floats (malloc'ed). */
int vt_net_forward(struct vt_net *net, const struct vt_dataset *d, const int *idx, int n, const struct vt_transform *t,
		   int from, int to, float **out, size_t *per, struct vt_err *err);

/* Optimizer state of the trainable parameters, from the shim or into it. */
int vt_optim_collect(struct vt_net *net, struct vt_optim_state *o, const struct vt_shim_opt *opt, struct vt_err *err);
int vt_optim_prepare(struct vt_net *net, struct vt_optim_state *o, const struct vt_shim_opt *opt, struct vt_err *err);
int vt_optim_restore(struct vt_net *net, const struct vt_optim_state *o, struct vt_err *err);

enum vt_schedule { VT_SCHED_NONE, VT_SCHED_COSINE, VT_SCHED_STEP };
/* The learning rate of epoch e (0-based) of epochs, as CosineAnnealingLR(T_max=epochs) or
 * StepLR(step_size, gamma) stepped once per epoch. */
double vt_schedule_lr(enum vt_schedule s, double lr0, int e, int epochs, int step_size, double gamma);

/* Cross-entropy of one row of logits against label, and whether argmax == label. */
double vt_cross_entropy(const float *logits, int n, int64_t label, int *right);

#endif
