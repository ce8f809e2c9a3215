/* vt_train.h - the loops around the shim: the training run (vt_fit), evaluation, cached
 * frozen features, optimizer state in and out, learning-rate schedules. The command layer
 * (cmd_train.c, cmd_eval.c, cmd_predict.c) adds options, progress and output. */
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
/* The same over images first, first + stride, ... only (one rank's share of a test set). */
int vt_evaluate_part(struct vt_net *net, const struct vt_dataset *d, const struct vt_transform *t, int batch,
		     int first, int stride, struct vt_eval_result *r, struct vt_err *err);
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

/* A training run for vt_fit. */
struct vt_fit_plan {
	const struct vt_dataset *train, *test;
	const struct vt_transform *train_t, *eval_t;
	enum vt_schedule schedule;
	double lr, gamma;  /* the first epoch's learning rate; StepLR's factor */
	int epochs, step_size, batch;
	int start_epoch;   /* epochs already done (a resumed run) */
	uint64_t seed;
	int cache_features; /* frozen features, no augmentation: train the classifier on features
			     * of every image computed once */
	int rank, world;   /* 0 and 1 alone; else this process's place in a joined process group
			    * (vt_dist_start): it trains on its shard and gradients are averaged */
};

/* After each training step, on every rank, about this rank's images. */
struct vt_fit_progress {
	int epoch, epochs;  /* 1-based */
	int step;           /* 1-based, within the epoch */
	int n;              /* images of this step */
	double loss;        /* this step's mean loss */
	int64_t correct;    /* this step's right answers */
	int done, total;    /* images of this epoch so far, and in all (this rank's shard) */
	double loss_sum;    /* sum over the epoch so far of per-image losses */
	int64_t right;      /* right answers of the epoch so far */
	double seconds;     /* since the epoch began */
	double lr;
};

/* After each epoch's evaluation, on every rank: summed over all ranks. */
struct vt_fit_epoch {
	int epoch, epochs;
	double train_loss, train_accuracy;
	int64_t train_images; /* with the last shard's padding, as DistributedSampler counts */
	double test_loss, test_accuracy;
	int64_t test_images;
	double train_seconds, seconds;
};

struct vt_fit_hooks {
	void *ctx;
	void (*features_cached)(void *ctx, int images, double seconds); /* may be NULL */
	void (*step)(void *ctx, const struct vt_fit_progress *p);       /* may be NULL */
	/* May be NULL; a nonzero return ends the run with err (a checkpoint that failed). */
	int (*epoch)(void *ctx, const struct vt_fit_epoch *e, struct vt_err *err);
};

/* Trains net (whose optimizer is set) for epochs start_epoch .. epochs-1. Each epoch reseeds
 * torch's generator and vggtl's own (shuffling, crops, flips) from seed and the epoch, so a
 * resumed run replays what an uninterrupted one would have done. Across ranks, each epoch's
 * shuffled order is the same on every rank, padded to a multiple of world by repeating its
 * start, and rank r takes positions r, r + world, ... of it, as DistributedSampler does. */
int vt_fit(struct vt_net *net, const struct vt_fit_plan *p, const struct vt_fit_hooks *h, struct vt_err *err);

/* Cross-entropy of one row of logits against label, and whether argmax == label. */
double vt_cross_entropy(const float *logits, int n, int64_t label, int *right);

#endif
