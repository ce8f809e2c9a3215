/* vt_cast.h - casting floating-point tensors between float32, float64, float16 and bfloat16
 * as torch's CPU .to(dtype) does, bit for bit (cast.c): save-weights --dtype, which writes
 * what model.half() (or .bfloat16(), .float()) before torch.save(model.state_dict()) writes.
 *
 * A cast tensor gets a VT_STORAGE_CAST storage whose bytes are its source storage's,
 * converted while they stream to the output (vt_storage_stream): nothing is held whole.
 */
#ifndef VT_CAST_H
#define VT_CAST_H

#include <stddef.h>

#include "vt_pth.h"

/* The dtype of a --dtype name (float16/half, bfloat16, float32/float), or -1. */
int vt_cast_dtype(const char *name);
/* 1 for the dtypes a cast changes (float32, float64, float16, bfloat16). */
int vt_cast_is_float(int dtype);

/* Converts n elements of dtype from at src to dtype to at dst (both floating). */
void vt_cast_elems(int to, void *dst, int from, const void *src, size_t n);

/* A converting sink: bytes of dtype from go in, in chunks of any size (an element may be
 * split between chunks), and leave converted to dtype to through sink. */
struct vt_caster {
	int from, to;
	vt_sink_fn sink;
	void *ctx;
	unsigned char carry[8];
	int ncarry;
	unsigned char *buf;
};
int vt_caster_init(struct vt_caster *c, int from, int to, vt_sink_fn sink, void *ctx, struct vt_err *err);
int vt_caster_put(void *caster, const void *p, size_t n, struct vt_err *err); /* a vt_sink_fn */
/* Fails when an element was left half-given; frees the buffer either way. */
int vt_caster_end(struct vt_caster *c, struct vt_err *err);

/* The tensors of a cast state_dict and the storages they were given (owned). */
struct vt_cast_set {
	struct vt_tensor *t;
	struct vt_storage *s;
	size_t nt, ns;
};
/* Points every floating-point tensor of t[0..n) at a copy of dtype to whose storage is a
 * VT_STORAGE_CAST of its own: tensors sharing a storage keep sharing one.  Integer, bool,
 * complex and quantized tensors, and tensors already of dtype to, are left as they are. */
int vt_cast_state_dict(struct vt_named *t, size_t n, int to, struct vt_cast_set *set, struct vt_err *err);
void vt_cast_set_release(struct vt_cast_set *set);

#endif
