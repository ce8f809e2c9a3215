/* ckpt.c - training checkpoints (see include/vt_ckpt.h). The pickle is protocol 2 with
 * floats (lr, loss), so like any checkpoint with hyper-parameters it needs
 * torch.load(..., weights_only=False) in Python. */
#include "vt_ckpt.h"

#include <stdlib.h>
#include <string.h>

int vt_optim_state_init(struct vt_optim_state *o, int n)
{
	memset(o, 0, sizeof(*o));
	o->n = n;
	o->numel = calloc((size_t)n + 1, sizeof(*o->numel));
	o->shape = calloc((size_t)n + 1, sizeof(*o->shape));
	o->a = calloc((size_t)n + 1, sizeof(*o->a));
	o->b = calloc((size_t)n + 1, sizeof(*o->b));
	o->step = calloc((size_t)n + 1, sizeof(*o->step));
	return o->numel && o->shape && o->a && o->b && o->step ? 0 : VT_ENOMEM;
}

void vt_optim_state_release(struct vt_optim_state *o)
{
	int i;

	for (i = 0; o->a && i < o->n; i++) {
		free(o->a[i]);
		free(o->b[i]);
	}
	free(o->numel);
	free(o->shape);
	free(o->a);
	free(o->b);
	free(o->step);
	memset(o, 0, sizeof(*o));
}

/* A float32 tensor over host memory, for the writer (contiguous, shape of like). */
struct memt {
	struct vt_tensor t;
	struct vt_storage s;
};

static void memt_init(struct memt *x, const struct vt_tensor *like, void *data, int dtype, int ndim_override)
{
	uint64_t numel = 1;
	int i;

	memset(x, 0, sizeof(*x));
	x->t.ndim = ndim_override >= 0 ? ndim_override : like->ndim;
	for (i = x->t.ndim - 1; i >= 0; i--) {
		x->t.size[i] = like->size[i];
		x->t.stride[i] = (int64_t)numel;
		numel *= (uint64_t)like->size[i];
	}
	x->t.dtype = dtype;
	x->t.storage = &x->s;
	x->s.key = (char *)"";
	x->s.location = (char *)"cpu";
	x->s.dtype = dtype;
	x->s.numel = numel;
	x->s.src = VT_STORAGE_MEM;
	x->s.mem = data;
}

static void key_float(struct vt_pkw *pk, const char *k, double v)
{
	vt_pkw_str_interned(pk, k);
	vt_pkw_float(pk, v);
}

static void key_bool(struct vt_pkw *pk, const char *k, int v)
{
	vt_pkw_str_interned(pk, k);
	vt_pkw_bool(pk, v);
}

static void param_group(struct vt_pkw *pk, const struct vt_optim_state *o)
{
	const struct vt_shim_opt *p = &o->opt;
	int i;

	vt_pkw_op(pk, VT_OP_EMPTY_DICT);
	vt_pkw_put(pk);
	vt_pkw_op(pk, VT_OP_MARK);
	key_float(pk, "lr", p->lr);
	if (p->kind == VT_OPT_SGD) {
		key_float(pk, "momentum", p->momentum);
		vt_pkw_str_interned(pk, "dampening");
		vt_pkw_int(pk, 0);
		key_float(pk, "weight_decay", p->weight_decay);
		key_bool(pk, "nesterov", 0);
		key_bool(pk, "maximize", 0);
		vt_pkw_str_interned(pk, "foreach");
		vt_pkw_none(pk);
		key_bool(pk, "differentiable", 0);
	} else {
		vt_pkw_str_interned(pk, "betas");
		vt_pkw_float(pk, p->beta1);
		vt_pkw_float(pk, p->beta2);
		vt_pkw_tuple_end(pk, 2);
		key_float(pk, "eps", p->eps);
		key_float(pk, "weight_decay", p->weight_decay);
		key_bool(pk, "amsgrad", 0);
		key_bool(pk, "maximize", 0);
		vt_pkw_str_interned(pk, "foreach");
		vt_pkw_none(pk);
		key_bool(pk, "capturable", 0);
		key_bool(pk, "differentiable", 0);
		key_bool(pk, "fused", 0);
	}
	vt_pkw_str_interned(pk, "params");
	vt_pkw_op(pk, VT_OP_EMPTY_LIST);
	vt_pkw_put(pk);
	for (i = 0; i < o->n; i++) {
		vt_pkw_batch_begin(pk, (size_t)i, (size_t)o->n);
		vt_pkw_int(pk, i);
		vt_pkw_batch_end(pk, (size_t)i, (size_t)o->n, 1);
	}
	vt_pkw_op(pk, VT_OP_SETITEMS);
}

int vt_ckpt_save(const char *path, const struct vt_model *m, const struct vt_src *src, int epoch,
		 const struct vt_optim_state *o, double loss, double accuracy, const char *prefix, struct vt_err *err)
{
	struct vt_named *t = NULL;
	struct vt_meta *meta = NULL;
	struct memt *mt = NULL;
	size_t n = 0, nmeta = 0;
	struct vt_pthw w;
	struct vt_pkw *pk = &w.pk;
	float *steps = NULL;
	int i, k = 0, nstate = 0, rc;

	if ((rc = vt_model_state_dict(m, prefix, &t, &n, err)) || (rc = vt_model_metadata(m, prefix, &meta, &nmeta, err))) {
		vt_named_free(t, n);
		return rc;
	}
	mt = calloc((size_t)o->n * 3 + 1, sizeof(*mt));
	steps = calloc((size_t)o->n + 1, sizeof(*steps));
	if (!mt || !steps) {
		rc = vt_err_set(err, VT_ENOMEM, "out of memory");
		goto out;
	}
	vt_pthw_init(&w);
	vt_pkw_op(pk, VT_OP_EMPTY_DICT);
	vt_pkw_put(pk);
	vt_pkw_op(pk, VT_OP_MARK);
	vt_pkw_str_interned(pk, "epoch");
	vt_pkw_int(pk, epoch);
	vt_pkw_str_interned(pk, "model_state_dict");
	vt_pthw_state_dict(&w, t, n, meta, nmeta);
	vt_pkw_str_interned(pk, "optimizer_state_dict");
	vt_pkw_op(pk, VT_OP_EMPTY_DICT);
	vt_pkw_put(pk);
	vt_pkw_op(pk, VT_OP_MARK);
	vt_pkw_str_interned(pk, "state");
	vt_pkw_op(pk, VT_OP_EMPTY_DICT);
	vt_pkw_put(pk);
	for (i = 0; i < o->n; i++)
		nstate += o->a[i] != NULL;
	for (i = 0; i < o->n; i++) {
		if (!o->a[i])
			continue;
		vt_pkw_batch_begin(pk, (size_t)k, (size_t)nstate);
		vt_pkw_int(pk, i);
		vt_pkw_op(pk, VT_OP_EMPTY_DICT);
		vt_pkw_put(pk);
		vt_pkw_op(pk, VT_OP_MARK);
		memt_init(&mt[3 * i], o->shape[i], o->a[i], VT_F32, -1);
		if (o->opt.kind == VT_OPT_SGD) {
			vt_pkw_str_interned(pk, "momentum_buffer");
			vt_pthw_tensor(&w, &mt[3 * i].t, 0);
		} else {
			struct vt_tensor scalar = { 0 };
			steps[i] = (float)o->step[i];
			memt_init(&mt[3 * i + 2], &scalar, &steps[i], VT_F32, 0);
			memt_init(&mt[3 * i + 1], o->shape[i], o->b[i], VT_F32, -1);
			vt_pkw_str_interned(pk, "step");
			vt_pthw_tensor(&w, &mt[3 * i + 2].t, 0);
			vt_pkw_str_interned(pk, "exp_avg");
			vt_pthw_tensor(&w, &mt[3 * i].t, 0);
			vt_pkw_str_interned(pk, "exp_avg_sq");
			vt_pthw_tensor(&w, &mt[3 * i + 1].t, 0);
		}
		vt_pkw_op(pk, VT_OP_SETITEMS);
		vt_pkw_batch_end(pk, (size_t)k, (size_t)nstate, 0);
		k++;
	}
	vt_pkw_str_interned(pk, "param_groups");
	vt_pkw_op(pk, VT_OP_EMPTY_LIST);
	vt_pkw_put(pk);
	param_group(pk, o);
	vt_pkw_op(pk, VT_OP_APPEND);
	vt_pkw_op(pk, VT_OP_SETITEMS); /* optimizer_state_dict */
	key_float(pk, "loss", loss);
	key_float(pk, "accuracy", accuracy);
	if (o->scaler.on) { /* GradScaler.state_dict(), in its order */
		vt_pkw_str_interned(pk, "scaler");
		vt_pkw_op(pk, VT_OP_EMPTY_DICT);
		vt_pkw_put(pk);
		vt_pkw_op(pk, VT_OP_MARK);
		key_float(pk, "scale", o->scaler.scale);
		key_float(pk, "growth_factor", o->scaler.growth_factor);
		key_float(pk, "backoff_factor", o->scaler.backoff_factor);
		vt_pkw_str_interned(pk, "growth_interval");
		vt_pkw_int(pk, o->scaler.growth_interval);
		vt_pkw_str_interned(pk, "_growth_tracker");
		vt_pkw_int(pk, o->scaler.growth_tracker);
		vt_pkw_op(pk, VT_OP_SETITEMS);
	}
	vt_pkw_op(pk, VT_OP_SETITEMS);
	rc = vt_pthw_save(&w, path, src, err);
	vt_pthw_release(&w);
out:
	free(mt);
	free(steps);
	vt_named_free(t, n);
	vt_meta_free(meta, nmeta);
	return rc;
}

static int read_f32(const struct vt_pth *pth, const struct vt_pk *v, uint64_t numel, float **out, struct vt_err *err)
{
	const struct vt_tensor *t = vt_pk_tensor(v);
	uint64_t n;
	void *raw = NULL;
	int rc;

	if (!t)
		return vt_err_set(err, VT_EFORMAT, "optimizer state holds something that is not a tensor");
	n = vt_tensor_numel(t);
	if (n != numel)
		return vt_err_set(err, VT_EFORMAT, "optimizer state of %llu values for a parameter of %llu",
				  (unsigned long long)n, (unsigned long long)numel);
	*out = malloc((n ? n : 1) * sizeof(float));
	if (!*out)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	if ((rc = vt_storage_read(t->storage, &pth->src, &raw, err)) == 0)
		rc = vt_tensor_to_f32(t, raw, *out, err);
	free(raw);
	return rc;
}

/* A number of a scaler dict: float or int, as Python may have written either. */
static int scaler_num(const struct vt_pk *d, const char *key, double *out)
{
	const struct vt_pk *v = vt_pk_dict_get(d, key);

	if (v && v->kind == VT_PK_FLOAT)
		*out = v->u.f;
	else if (v && v->kind == VT_PK_INT)
		*out = (double)v->u.i;
	else
		return -1;
	return 0;
}

static int read_scaler(const struct vt_pk *d, struct vt_shim_scaler *s, struct vt_err *err)
{
	double interval, tracker;

	if (d->kind != VT_PK_DICT || scaler_num(d, "scale", &s->scale) || scaler_num(d, "growth_factor", &s->growth_factor) ||
	    scaler_num(d, "backoff_factor", &s->backoff_factor) || scaler_num(d, "growth_interval", &interval) ||
	    scaler_num(d, "_growth_tracker", &tracker) || !(interval >= 1 && interval < 1e18) || !(tracker >= 0 && tracker < 1e18))
		return vt_err_set(err, VT_EFORMAT, "'scaler' is not GradScaler.state_dict() (scale, growth_factor, "
						   "backoff_factor, growth_interval, _growth_tracker)");
	s->growth_interval = (int64_t)interval;
	s->growth_tracker = (int64_t)tracker;
	s->on = 1;
	return 0;
}

int vt_ckpt_read(const struct vt_pth *pth, struct vt_optim_state *o, int *epoch, struct vt_err *err)
{
	const struct vt_pk *e = vt_pk_dict_get(pth->root, "epoch"), *os, *st;
	size_t i;
	int rc;

	*epoch = e && e->kind == VT_PK_INT ? (int)e->u.i : 0;
	if ((os = vt_pk_dict_get(pth->root, "scaler")) && (rc = read_scaler(os, &o->scaler, err)))
		return rc;
	os = vt_pk_dict_get(pth->root, "optimizer_state_dict");
	st = vt_pk_dict_get(os, "state");
	for (i = 0; st && st->kind == VT_PK_DICT && i < st->u.dict.n; i++) {
		const struct vt_pk *k = st->u.dict.keys[i], *v = st->u.dict.vals[i], *x;
		int p;
		if (k->kind != VT_PK_INT || k->u.i < 0 || k->u.i >= o->n)
			return vt_err_set(err, VT_EFORMAT,
					  "optimizer state names parameter %lld, but %d parameters are trained (same --freeze as the run that saved it?)",
					  k->kind == VT_PK_INT ? (long long)k->u.i : -1LL, o->n);
		p = (int)k->u.i;
		if ((x = vt_pk_dict_get(v, "momentum_buffer")) || (x = vt_pk_dict_get(v, "exp_avg")))
			if ((rc = read_f32(pth, x, o->numel[p], &o->a[p], err)))
				return rc;
		if ((x = vt_pk_dict_get(v, "exp_avg_sq")) && (rc = read_f32(pth, x, o->numel[p], &o->b[p], err)))
			return rc;
		if ((x = vt_pk_dict_get(v, "step"))) {
			float *s = NULL;
			if (x->kind == VT_PK_INT) {
				o->step[p] = x->u.i;
			} else {
				if ((rc = read_f32(pth, x, 1, &s, err)) == 0)
					o->step[p] = (int64_t)s[0];
				free(s);
				if (rc)
					return rc;
			}
		}
	}
	return 0;
}
