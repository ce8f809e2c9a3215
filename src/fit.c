/* fit.c - the training run (vt_fit, see include/vt_train.h): epochs of shuffled batches
 * through the shim's training step, the per-epoch evaluation, the feature cache of a frozen
 * run, and what changes when several ranks train together.
 *
 * Across ranks (a process group joined by vt_dist_start), as PyTorch's
 * DistributedDataParallel with a DistributedSampler does it:
 *  - every rank shuffles with the same seed and takes its strided shard of the padded order;
 *  - the shim averages gradients before each update, so the ranks' weights stay equal;
 *  - rank r > 0 draws crops, flips and dropout from its own seeds (rank 0 keeps one rank's);
 *  - the feature cache is computed a batch per rank in turn and summed across ranks;
 *  - the test set is split the same strided way and the epoch's sums are all-reduced.
 * Not here: gradient accumulation, uneven inputs (DDP's join), and SyncBatchNorm: batch
 * norm statistics stay per rank, as DDP keeps them without broadcast_buffers.
 */
#include "vt_train.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void shuffle(int *idx, int n, struct vt_rng *r)
{
	int i;

	for (i = 0; i < n; i++)
		idx[i] = i;
	for (i = n - 1; i > 0; i--) {
		int j = (int)(vt_rng_uniform(r) * (double)(i + 1)), t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
}

static int allreduce(struct vt_net *net, const struct vt_fit_plan *p, double *v, size_t n, struct vt_err *err)
{
	if (p->world > 1 && net->api->dist_allreduce(v, n, 2))
		return vt_net_fail(net, "all-reduce", err);
	return 0;
}

/* Features of every training image through layers [0, features_end), computed once: with
 * several ranks, batch k by rank k % world, then summed (the others' rows are zero). */
static int cache_features(struct vt_net *net, const struct vt_fit_plan *p, float **cache, size_t *per,
			  struct vt_err *err)
{
	const struct vt_dataset *d = p->train;
	int *idx = malloc((size_t)p->batch * sizeof(int)), i, j, k, rc = 0;

	*cache = NULL;
	if (!idx)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	for (i = 0, k = 0; i < d->n && rc == 0; i += p->batch, k++) {
		int n = d->n - i < p->batch ? d->n - i : p->batch;
		float *f = NULL;
		/* the first batch on every rank: each learns the feature size */
		if (k % p->world != p->rank && k > 0)
			continue;
		for (j = 0; j < n; j++)
			idx[j] = i + j;
		rc = vt_net_forward(net, d, idx, n, p->train_t, 0, net->features_end, &f, per, err);
		if (rc == 0 && !*cache && !(*cache = calloc((size_t)d->n * *per, sizeof(float))))
			rc = vt_err_set(err, VT_ENOMEM, "out of memory for the feature cache");
		if (rc == 0 && k % p->world == p->rank)
			memcpy(*cache + (size_t)i * *per, f, (size_t)n * *per * sizeof(float));
		free(f);
	}
	free(idx);
	if (rc == 0 && p->world > 1 && net->api->dist_allreduce(*cache, (size_t)d->n * *per, 0))
		rc = vt_net_fail(net, "sharing the feature cache", err);
	return rc;
}

/* This epoch's test pass, summed over the ranks. */
static int evaluate(struct vt_net *net, const struct vt_fit_plan *p, struct vt_fit_epoch *e, struct vt_err *err)
{
	struct vt_eval_result ev;
	double sums[3];
	int rc;

	if ((rc = vt_evaluate_part(net, p->test, p->eval_t, p->batch, p->rank, p->world, &ev, err)))
		return rc;
	sums[0] = ev.loss * (double)ev.total;
	sums[1] = (double)ev.correct;
	sums[2] = (double)ev.total;
	vt_eval_result_release(&ev);
	if ((rc = allreduce(net, p, sums, 3, err)))
		return rc;
	e->test_images = (int64_t)sums[2];
	e->test_loss = sums[2] > 0 ? sums[0] / sums[2] : 0;
	e->test_accuracy = sums[2] > 0 ? sums[1] / sums[2] : 0;
	return 0;
}

int vt_fit(struct vt_net *net, const struct vt_fit_plan *p, const struct vt_fit_hooks *h, struct vt_err *err)
{
	const struct vt_dataset *d = p->train;
	const uint64_t rank_salt = 0x9e3779b97f4a7c15ull * (uint64_t)p->rank;
	int shard = (d->n + p->world - 1) / p->world; /* DistributedSampler's num_samples */
	int *order = malloc((size_t)(d->n > 0 ? d->n : 1) * sizeof(int));
	int *mine = malloc((size_t)(shard > 0 ? shard : 1) * sizeof(int));
	float *cache = NULL, *x = NULL;
	int64_t *y = malloc((size_t)p->batch * sizeof(int64_t)), xs[4];
	size_t per = 0, in;
	int rc = 0, e;

	if (d->n < 1 || p->batch < 1 || p->world < 1 || p->rank < 0 || p->rank >= p->world) {
		rc = vt_err_set(err, VT_EUSAGE, "nothing to train: %d images, batch %d, rank %d of %d", d->n, p->batch,
				p->rank, p->world);
		goto out;
	}
	if (!order || !mine || !y) {
		rc = vt_err_set(err, VT_ENOMEM, "out of memory");
		goto out;
	}
	if (p->cache_features) {
		double t0 = now();
		if ((rc = cache_features(net, p, &cache, &per, err)))
			goto out;
		if (h->features_cached)
			h->features_cached(h->ctx, d->n, now() - t0);
	}
	in = p->cache_features ? per : (size_t)3 * (size_t)d->h * (size_t)d->w;
	if (!(x = malloc((size_t)p->batch * in * sizeof(float)))) {
		rc = vt_err_set(err, VT_ENOMEM, "out of memory");
		goto out;
	}
	for (e = p->start_epoch; e < p->epochs && rc == 0; e++) {
		struct vt_rng r, aug_rng, *aug = &r;
		struct vt_fit_progress s = { 0 };
		struct vt_fit_epoch ep = { 0 };
		uint64_t seed = p->seed * 1000003u + (uint64_t)e;
		double t0 = now(), sums[3];
		int i, k;

		s.epoch = ep.epoch = e + 1;
		s.epochs = ep.epochs = p->epochs;
		s.total = shard;
		s.lr = vt_schedule_lr(p->schedule, p->lr, e, p->epochs, p->step_size, p->gamma);
		vt_rng_seed(&r, seed);
		net->api->seed(seed + rank_salt);
		shuffle(order, d->n, &r);
		if (p->rank > 0) {
			vt_rng_seed(&aug_rng, seed + rank_salt);
			aug = &aug_rng;
		}
		for (k = 0; k < shard; k++)
			mine[k] = order[(p->rank + (int64_t)k * p->world) % d->n];
		for (i = 0; i < shard; i += p->batch) {
			int n = shard - i < p->batch ? shard - i : p->batch, j;
			if (p->cache_features) {
				for (j = 0; j < n; j++)
					memcpy(x + (size_t)j * per, cache + (size_t)mine[i + j] * per, per * sizeof(float));
				/* features halve the size five times (max pooling, rounding down) */
				xs[0] = n;
				xs[2] = d->h / 32 > 0 ? d->h / 32 : 1;
				xs[3] = d->w / 32 > 0 ? d->w / 32 : 1;
				xs[1] = (int64_t)per / (xs[2] * xs[3]);
			} else {
				vt_data_batch(d, mine + i, n, p->train_t, aug, x);
				xs[0] = n;
				xs[1] = 3;
				xs[2] = d->h;
				xs[3] = d->w;
			}
			for (j = 0; j < n; j++)
				y[j] = d->labels[mine[i + j]];
			if (net->api->net_train_step(net->h, x, xs, 4, p->cache_features ? net->features_end : 0, y, s.lr,
						     &s.loss, &s.correct)) {
				rc = vt_net_fail(net, "training step", err);
				goto out;
			}
			s.step++;
			s.n = n;
			s.loss_sum += s.loss * n;
			s.right += s.correct;
			s.done += n;
			s.seconds = now() - t0;
			if (h->step)
				h->step(h->ctx, &s);
		}
		ep.train_seconds = now() - t0;
		sums[0] = s.loss_sum;
		sums[1] = (double)s.right;
		sums[2] = (double)s.done;
		if ((rc = allreduce(net, p, sums, 3, err)) || (rc = evaluate(net, p, &ep, err)))
			goto out;
		ep.train_images = (int64_t)sums[2];
		ep.train_loss = sums[2] > 0 ? sums[0] / sums[2] : 0;
		ep.train_accuracy = sums[2] > 0 ? sums[1] / sums[2] : 0;
		ep.seconds = now() - t0;
		if (h->epoch)
			rc = h->epoch(h->ctx, &ep, err);
	}
	if (rc == 0 && p->world > 1) {
		/* every rank is done before any leaves (rank 0 may host the store) */
		double none = 0;
		rc = allreduce(net, p, &none, 1, err);
	}
out:
	free(order);
	free(mine);
	free(cache);
	free(x);
	free(y);
	return rc;
}
