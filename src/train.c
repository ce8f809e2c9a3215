/* train.c - evaluation, feature caching, optimizer state and schedules (see include/vt_train.h). */
#include "vt_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double vt_cross_entropy(const float *logits, int n, int64_t label, int *right)
{
	double mx = logits[0], sum = 0;
	int i, arg = 0;

	for (i = 1; i < n; i++)
		if (logits[i] > mx) {
			mx = logits[i];
			arg = i;
		}
	for (i = 0; i < n; i++)
		sum += exp((double)logits[i] - mx);
	*right = arg == label;
	return log(sum) + mx - (label >= 0 && label < n ? logits[label] : 0);
}

int vt_net_forward(struct vt_net *net, const struct vt_dataset *d, const int *idx, int n, const struct vt_transform *t,
		   int from, int to, float **out, size_t *per, struct vt_err *err)
{
	size_t in = (size_t)3 * (size_t)d->h * (size_t)d->w;
	float *x = malloc((size_t)n * in * sizeof(float));
	int64_t xs[4] = { n, 3, d->h, d->w }, os[8];
	/* the widest output asked for: the input itself, features (512 x h/32 x w/32 <= in) or logits */
	size_t cap = (size_t)n * (in > 25088 + (size_t)net->nclasses ? in : 25088 + (size_t)net->nclasses);
	int ond = 0, rc = 0;

	*out = malloc(cap * sizeof(float));
	if (!x || !*out) {
		free(x);
		free(*out);
		*out = NULL;
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	vt_data_batch(d, idx, n, t, NULL, x);
	if (net->api->net_run(net->h, x, xs, 4, from, to, *out, cap, os, &ond)) {
		rc = vt_net_fail(net, "forward pass", err);
	} else {
		int k;
		*per = 1;
		for (k = 1; k < ond; k++)
			*per *= (size_t)os[k];
	}
	free(x);
	if (rc) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

int vt_evaluate(struct vt_net *net, const struct vt_dataset *d, const struct vt_transform *t, int batch,
		struct vt_eval_result *r, struct vt_err *err)
{
	return vt_evaluate_part(net, d, t, batch, 0, 1, r, err);
}

int vt_evaluate_part(struct vt_net *net, const struct vt_dataset *d, const struct vt_transform *t, int batch,
		     int first, int stride, struct vt_eval_result *r, struct vt_err *err)
{
	int *idx = malloc((size_t)batch * sizeof(int));
	int i, j, rc = 0;

	memset(r, 0, sizeof(*r));
	r->nclasses = net->nclasses;
	r->class_correct = calloc((size_t)net->nclasses, sizeof(int64_t));
	r->class_total = calloc((size_t)net->nclasses, sizeof(int64_t));
	if (!idx || !r->class_correct || !r->class_total) {
		free(idx);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	/* the k-th image of the part is first + k * stride */
	for (i = 0; first + i * stride < d->n && rc == 0; i += batch) {
		int mine = (d->n - first + stride - 1) / stride;
		int n = mine - i < batch ? mine - i : batch;
		float *logits = NULL;
		size_t per = 0;
		for (j = 0; j < n; j++)
			idx[j] = first + (i + j) * stride;
		if ((rc = vt_net_forward(net, d, idx, n, t, 0, net->nlayers, &logits, &per, err)))
			break;
		for (j = 0; j < n; j++) {
			int64_t y = d->labels[idx[j]];
			int right;
			r->loss += vt_cross_entropy(logits + (size_t)j * per, (int)per, y, &right);
			r->correct += right;
			if (y >= 0 && y < net->nclasses) {
				r->class_correct[y] += right;
				r->class_total[y]++;
			}
		}
		r->total += n;
		free(logits);
	}
	free(idx);
	if (r->total)
		r->loss /= (double)r->total;
	return rc;
}

void vt_eval_result_release(struct vt_eval_result *r)
{
	free(r->class_correct);
	free(r->class_total);
	memset(r, 0, sizeof(*r));
}

/* Parameter id p of the optimizer is the p-th trainable tensor in state_dict order. */
static int param_tensor(const struct vt_net *net, int p)
{
	int i;

	for (i = 0; i < net->ntensors; i++)
		if (net->trainable[i] && p-- == 0)
			return i;
	return -1;
}

int vt_optim_prepare(struct vt_net *net, struct vt_optim_state *o, const struct vt_shim_opt *opt, struct vt_err *err)
{
	int i, n = 0;

	for (i = 0; i < net->ntensors; i++)
		n += net->trainable[i];
	if (vt_optim_state_init(o, n))
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	o->opt = *opt;
	for (i = 0; i < n; i++) {
		const struct vt_tensor *t = net->tensors[param_tensor(net, i)].t;
		o->numel[i] = vt_tensor_numel(t);
		o->shape[i] = t;
	}
	return 0;
}

int vt_optim_collect(struct vt_net *net, struct vt_optim_state *o, const struct vt_shim_opt *opt, struct vt_err *err)
{
	int p, rc;

	if ((rc = vt_optim_prepare(net, o, opt, err)))
		return rc;
	for (p = 0; p < o->n; p++) {
		int ti = param_tensor(net, p), exists = 0, w;
		for (w = 0; w < (opt->kind == VT_OPT_ADAM ? 2 : 1); w++) {
			float **dst = w ? &o->b[p] : &o->a[p];
			*dst = malloc(o->numel[p] * sizeof(float) + 1);
			if (!*dst)
				return vt_err_set(err, VT_ENOMEM, "out of memory");
			if (net->api->net_state_get(net->h, ti, w, *dst, o->numel[p], &exists))
				return vt_net_fail(net, "reading optimizer state", err);
			if (!exists) {
				free(*dst);
				*dst = NULL;
			}
		}
		if (net->api->net_step_count(net->h, ti, &o->step[p], NULL))
			return vt_net_fail(net, "reading optimizer state", err);
	}
	if (net->api->net_scaler(net->h, NULL, &o->scaler))
		return vt_net_fail(net, "reading the loss scaler", err);
	return 0;
}

int vt_optim_restore(struct vt_net *net, const struct vt_optim_state *o, struct vt_err *err)
{
	int p;

	for (p = 0; p < o->n; p++) {
		int ti = param_tensor(net, p);
		if ((o->a[p] && net->api->net_state_set(net->h, ti, 0, o->a[p], o->numel[p])) ||
		    (o->b[p] && net->api->net_state_set(net->h, ti, 1, o->b[p], o->numel[p])) ||
		    net->api->net_step_count(net->h, ti, NULL, &o->step[p]))
			return vt_net_fail(net, "restoring optimizer state", err);
	}
	return 0;
}

double vt_schedule_lr(enum vt_schedule s, double lr0, int e, int epochs, int step_size, double gamma)
{
	switch (s) {
	case VT_SCHED_COSINE:
		return lr0 * 0.5 * (1.0 + cos(M_PI * (double)e / (double)(epochs > 0 ? epochs : 1)));
	case VT_SCHED_STEP:
		return lr0 * pow(gamma, (double)(e / (step_size > 0 ? step_size : 1)));
	default:
		return lr0;
	}
}
