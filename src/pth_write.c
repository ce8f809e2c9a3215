/* pth_write.c - writing torch.save files (see include/vt_pth.h).
 *
 * Layout: what torch 1.13's torch.save writes (shared/research/pth-format.md sections 1.3,
 * 2.4, 2.8): records "archive/data.pkl", "archive/data/<k>" for storages numbered in the
 * order first met and written in string order ("0", "1", "10", "2"...), "archive/version"
 * = "3\n".  Tensors are _rebuild_tensor_v2 with 6 arguments and storages tagged 'cpu', so
 * files load with weights_only=True in torch 1.13 and 2.x and on machines without a GPU.
 * Quantized tensors are _rebuild_qtensor, as torch writes them (2.x's weights_only accepts
 * it; 1.13's does not, for torch's own files either).
 *
 * Storage bytes are streamed, never held whole: copied from the source file (reusing the
 * CRC-32 of the source zip's directory when it has one), or given by vt_storage_stream:
 * inflated from a deflated record, generated chunk by chunk for fresh layers, taken from
 * memory (trained weights), or converted from another dtype (save-weights --dtype).
 */
#include "vt_pth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- storage streaming ---------------------------------------------------------------- */

static int zipw_put(void *w, const void *p, size_t n, struct vt_err *err)
{
	return vt_zipw_data(w, p, n, err);
}

static int write_storage(struct vt_zipw *w, const char *name, const struct vt_src *src,
			 const struct vt_storage *s, struct vt_err *err)
{
	int rc = vt_zipw_begin(w, name, vt_storage_nbytes(s), err);

	if (rc)
		return rc;
	if (s->src == VT_STORAGE_FILE && !(s->entry && s->entry->method != 0))
		/* a stored zip record is exactly the storage, so its directory CRC is ours */
		rc = vt_zipw_copy(w, src, s->offset, vt_storage_nbytes(s), s->entry ? &s->entry->crc : NULL, err);
	else /* generated, in memory, deflated or cast */
		rc = vt_storage_stream(s, src, 0, s->numel, zipw_put, w, err);
	return rc ? rc : vt_zipw_end(w, err);
}

/* ---- the pickle ----------------------------------------------------------------------- */

void vt_pthw_init(struct vt_pthw *w)
{
	memset(w, 0, sizeof(*w));
	vt_pkw_init(&w->pk);
	vt_pkw_op(&w->pk, VT_OP_PROTO);
	vt_pkw_op(&w->pk, 2);
}

void vt_pthw_release(struct vt_pthw *w)
{
	vt_pkw_release(&w->pk);
	free(w->stor);
	memset(w, 0, sizeof(*w));
}

static int storage_index(struct vt_pthw *w, const struct vt_storage *s)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		if (w->stor[i] == s)
			return (int)i;
	if (w->n == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 64;
		const struct vt_storage **p = realloc(w->stor, ncap * sizeof(*p));
		if (!p) {
			w->oom = 1;
			return 0;
		}
		w->stor = p;
		w->cap = ncap;
	}
	w->stor[w->n] = s;
	return (int)w->n++;
}

static void int_tuple(struct vt_pkw *pk, const int64_t *v, int n)
{
	int i;

	vt_pkw_tuple_begin(pk, n);
	for (i = 0; i < n; i++)
		vt_pkw_int(pk, v[i]);
	vt_pkw_tuple_end(pk, n);
}

/* OrderedDict(), memoized */
void vt_pkw_ordereddict(struct vt_pkw *pk)
{
	vt_pkw_global(pk, "collections", "OrderedDict");
	vt_pkw_op(pk, VT_OP_EMPTY_TUPLE);
	vt_pkw_op(pk, VT_OP_REDUCE);
	vt_pkw_put(pk);
}

/* The persistent id ('storage', torch.<X>Storage, key, 'cpu', numel), loaded */
static void storage_pid(struct vt_pthw *w, const struct vt_storage *s)
{
	struct vt_pkw *pk = &w->pk;
	char key[24];

	snprintf(key, sizeof(key), "%d", storage_index(w, s));
	vt_pkw_op(pk, VT_OP_MARK);
	vt_pkw_str_interned(pk, "storage");
	vt_pkw_global(pk, "torch", vt_dtype_info(s->dtype)->storage);
	vt_pkw_str_key(pk, key);
	vt_pkw_str_interned(pk, "cpu");
	vt_pkw_int(pk, (int64_t)s->numel);
	vt_pkw_op(pk, VT_OP_TUPLE);
	vt_pkw_put(pk);
	vt_pkw_op(pk, VT_OP_BINPERSID);
}

/* _rebuild_qtensor(storage, offset, size, stride, quantizer_params, requires_grad,
 * OrderedDict()), as Tensor._reduce_ex_internal writes a quantized tensor */
static void qtensor(struct vt_pthw *w, const struct vt_tensor *t)
{
	struct vt_pkw *pk = &w->pk;
	int per_channel = t->q_scales != NULL;

	vt_pkw_global(pk, "torch._utils", "_rebuild_qtensor");
	vt_pkw_op(pk, VT_OP_MARK);
	storage_pid(w, t->storage);
	vt_pkw_int(pk, t->offset);
	int_tuple(pk, t->size, t->ndim);
	int_tuple(pk, t->stride, t->ndim);
	vt_pkw_tuple_begin(pk, per_channel ? 4 : 3);
	vt_pkw_global(pk, "torch", vt_qscheme_names[t->qscheme]);
	if (per_channel) {
		vt_pthw_tensor(w, t->q_scales, 0);
		vt_pthw_tensor(w, t->q_zero_points, 0);
		vt_pkw_int(pk, t->q_axis);
	} else {
		vt_pkw_float(pk, t->q_scale);
		vt_pkw_int(pk, t->q_zero_point);
	}
	vt_pkw_tuple_end(pk, per_channel ? 4 : 3);
	vt_pkw_bool(pk, t->requires_grad);
	vt_pkw_ordereddict(pk);
	vt_pkw_op(pk, VT_OP_TUPLE);
	vt_pkw_put(pk);
	vt_pkw_op(pk, VT_OP_REDUCE);
	vt_pkw_put(pk);
}

void vt_pthw_tensor(struct vt_pthw *w, const struct vt_tensor *t, int as_param)
{
	struct vt_pkw *pk = &w->pk;

	if (t->qscheme) {
		qtensor(w, t);
		return;
	}
	if (as_param) {
		vt_pkw_global(pk, "torch._utils", "_rebuild_parameter");
		vt_pkw_op(pk, VT_OP_MARK);
	}
	vt_pkw_global(pk, "torch._utils", "_rebuild_tensor_v2");
	vt_pkw_op(pk, VT_OP_MARK);
	storage_pid(w, t->storage);
	vt_pkw_int(pk, t->offset);
	int_tuple(pk, t->size, t->ndim);
	int_tuple(pk, t->stride, t->ndim);
	vt_pkw_bool(pk, 0);
	vt_pkw_ordereddict(pk);
	vt_pkw_op(pk, VT_OP_TUPLE);
	vt_pkw_put(pk);
	vt_pkw_op(pk, VT_OP_REDUCE);
	vt_pkw_put(pk);
	if (as_param) {
		/* a tensor from a state_dict was saved detached; as a parameter it trains again,
		 * as nn.Parameter defaults to; a whole model's own flags are kept */
		vt_pkw_bool(pk, t->is_param ? t->requires_grad : 1);
		vt_pkw_ordereddict(pk);
		vt_pkw_op(pk, VT_OP_TUPLE);
		vt_pkw_put(pk);
		vt_pkw_op(pk, VT_OP_REDUCE);
		vt_pkw_put(pk);
	}
}

static int key_order(const void *a, const void *b)
{
	char ka[24], kb[24];

	snprintf(ka, sizeof(ka), "%zu", *(const size_t *)a);
	snprintf(kb, sizeof(kb), "%zu", *(const size_t *)b);
	return strcmp(ka, kb);
}

int vt_pthw_save(struct vt_pthw *w, const char *path, const struct vt_src *src, struct vt_err *err)
{
	struct vt_out out;
	struct vt_zipw z;
	size_t *order = NULL, i;
	int rc;

	vt_pkw_op(&w->pk, VT_OP_STOP);
	if (w->pk.oom || w->oom)
		return vt_err_set(err, VT_ENOMEM, "out of memory while writing the pickle");
	order = malloc((w->n ? w->n : 1) * sizeof(*order));
	if (!order)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	for (i = 0; i < w->n; i++)
		order[i] = i;
	qsort(order, w->n, sizeof(*order), key_order);
	if ((rc = vt_out_open(&out, path, err))) {
		free(order);
		return rc;
	}
	rc = vt_zipw_init(&z, &out, "archive", err);
	if (rc == 0)
		rc = vt_zipw_add(&z, "data.pkl", w->pk.buf, w->pk.len, err);
	for (i = 0; rc == 0 && i < w->n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "data/%zu", order[i]);
		rc = write_storage(&z, name, src, w->stor[order[i]], err);
	}
	if (rc == 0)
		rc = vt_zipw_add(&z, "version", "3\n", 2, err);
	if (rc == 0)
		rc = vt_zipw_finish(&z, err);
	vt_zipw_release(&z);
	free(order);
	if (rc == 0)
		return vt_out_commit(&out, err);
	vt_out_abort(&out);
	return rc;
}

void vt_pthw_state_dict(struct vt_pthw *w, const struct vt_named *t, size_t n, const struct vt_meta *meta,
			size_t nmeta)
{
	struct vt_pkw *pk = &w->pk;
	size_t i;

	vt_pkw_ordereddict(pk);
	for (i = 0; i < n; i++) {
		vt_pkw_batch_begin(pk, i, n);
		vt_pkw_str(pk, t[i].name);
		vt_pthw_tensor(w, t[i].t, 0);
		vt_pkw_batch_end(pk, i, n, 0);
	}
	if (!meta)
		return;
	/* BUILD state {'_metadata': OrderedDict(prefix -> {'version': v})} */
	vt_pkw_op(pk, VT_OP_EMPTY_DICT);
	vt_pkw_put(pk);
	vt_pkw_str(pk, "_metadata");
	vt_pkw_ordereddict(pk);
	for (i = 0; i < nmeta; i++) {
		vt_pkw_batch_begin(pk, i, nmeta);
		vt_pkw_str(pk, meta[i].prefix);
		vt_pkw_op(pk, VT_OP_EMPTY_DICT);
		vt_pkw_put(pk);
		vt_pkw_str_interned(pk, "version");
		vt_pkw_int(pk, meta[i].version);
		vt_pkw_op(pk, VT_OP_SETITEM);
		vt_pkw_batch_end(pk, i, nmeta, 0);
	}
	vt_pkw_op(pk, VT_OP_SETITEM);
	vt_pkw_op(pk, VT_OP_BUILD);
}

int vt_pth_write_state_dict(const char *path, const struct vt_src *src, const struct vt_named *t,
			    size_t n, const struct vt_meta *meta, size_t nmeta, struct vt_err *err)
{
	struct vt_pthw w;
	int rc;

	vt_pthw_init(&w);
	vt_pthw_state_dict(&w, t, n, meta, nmeta);
	rc = vt_pthw_save(&w, path, src, err);
	vt_pthw_release(&w);
	return rc;
}
