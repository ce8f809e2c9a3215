/* cast.c - save-weights --dtype: floating-point tensors cast as torch 2.x's CPU .to(dtype)
 * casts them, bit for bit, while their bytes stream to the output (see include/vt_cast.h).
 *
 * The rounding is to nearest-even everywhere; what follows is how torch treats the corners,
 * measured on Debian's torch 1.13 and Debian 13's torch 2.6 (tests/test_cast.py checks every
 * line against both):
 *  - float32 -> bfloat16 takes torch's vectorized path: every NaN becomes 0xFFFF.
 *  - float64 -> bfloat16 goes through float32 first (double rounding: c10::BFloat16 and
 *    c10::Half have no double constructor), vectorized too, so NaN is 0xFFFF; but torch does
 *    the last numel % 16 elements of each thread's share (32 with AVX-512) on its scalar
 *    path, where NaN is 0x7FC0: which ones depends on the vector width and the thread count,
 *    so no fixed rule can match torch there, and vggtl writes 0xFFFF.
 *  - float16 -> bfloat16 is scalar in torch: every NaN becomes 0x7FC0.
 *  - -> float16 is IEEE's conversion (F16C's vcvtps2ph in torch 2.x): a NaN keeps its sign
 *    and the top 10 bits of its payload, quiet.  torch 1.13 writes sign | 0x7E00 for every
 *    NaN instead; the test allows exactly that difference against 1.13.
 *  - float16 -> float32 quiets a signalling NaN (torch's fp16_ieee_to_fp32_value multiplies);
 *    bfloat16 -> float32 is a shift and keeps it; float64 -> float32 is the C cast.
 * What it does not do: float64 as a target, complex (not is_floating_point() in torch, so
 * model.half() leaves it), quantized, integer and bool tensors, which stay as they are.
 */
#include "vt_cast.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { CAST_CHUNK = 1 << 20 };

int vt_cast_dtype(const char *name)
{
	if (strcmp(name, "float16") == 0 || strcmp(name, "half") == 0)
		return VT_F16;
	if (strcmp(name, "bfloat16") == 0)
		return VT_BF16;
	if (strcmp(name, "float32") == 0 || strcmp(name, "float") == 0)
		return VT_F32;
	return -1;
}

int vt_cast_is_float(int dtype)
{
	return dtype == VT_F32 || dtype == VT_F64 || dtype == VT_F16 || dtype == VT_BF16;
}

/* ---- one element ----------------------------------------------------------------------- */

static uint32_t f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

/* bits + 0x7FFF + lsb, the high half: round to nearest-even (overflow carries into inf) */
static uint16_t bf16_round(uint32_t u)
{
	return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static uint16_t f32_to_bf16_vec(uint32_t u)
{
	return (u & 0x7fffffffu) > 0x7f800000u ? 0xffff : bf16_round(u);
}

static uint16_t f32_to_bf16_scalar(uint32_t u)
{
	return (u & 0x7fffffffu) > 0x7f800000u ? 0x7fc0 : bf16_round(u);
}

static uint16_t f32_to_f16(uint32_t u)
{
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
	uint32_t a = u & 0x7fffffffu, r, e, m, q, rem, halfway;
	int shift;

	if (a > 0x7f800000u) /* NaN: quiet, the payload's top 10 bits */
		return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
	if (a >= 0x477ff000u) /* 65520 and up round to inf (65504 is odd) */
		return (uint16_t)(sign | 0x7c00u);
	if (a >= 0x38800000u) { /* a normal half: rebias the exponent, round off 13 bits */
		r = a - 0x38000000u;
		return (uint16_t)(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
	}
	if (a <= 0x33000000u) /* up to 2^-25, half the smallest subnormal: 0 (a tie goes to even) */
		return sign;
	/* a subnormal half: the value in units of 2^-24 is m * 2^(e - 126) */
	e = a >> 23;
	m = (a & 0x7fffffu) | 0x800000u;
	shift = 126 - (int)e; /* 14..24 */
	q = m >> shift;
	rem = m & ((1u << shift) - 1u);
	halfway = 1u << (shift - 1);
	if (rem > halfway || (rem == halfway && (q & 1u)))
		q++;
	return (uint16_t)(sign | q);
}

static uint32_t f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;

	if (e == 31)
		return sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0);
	if (e == 0) {
		if (m == 0)
			return sign;
		e = 113;
		while (!(m & 0x400u)) {
			m <<= 1;
			e--;
		}
		return sign | (e << 23) | ((m & 0x3ffu) << 13);
	}
	return sign | ((e + 112) << 23) | (m << 13);
}

/* Any floating element as float32 bits, as torch's casts see it on the way. */
static uint32_t load_f32(int from, const unsigned char *p)
{
	uint16_t h;
	uint32_t u;
	double d;

	switch (from) {
	case VT_F64:
		memcpy(&d, p, 8);
		return f32_bits((float)d);
	case VT_F16:
		memcpy(&h, p, 2);
		return f16_to_f32(h);
	case VT_BF16:
		memcpy(&h, p, 2);
		return (uint32_t)h << 16;
	default:
		memcpy(&u, p, 4);
		return u;
	}
}

void vt_cast_elems(int to, void *dst, int from, const void *src, size_t n)
{
	const unsigned char *s = src;
	unsigned char *d = dst;
	size_t es = (size_t)vt_dtype_info(from)->size, i;

	if (from == to) {
		memcpy(dst, src, n * es);
		return;
	}
	if (from == VT_F32 && to == VT_BF16) { /* the common case, kept simple to vectorize */
		for (i = 0; i < n; i++) {
			uint32_t u;
			uint16_t h;
			memcpy(&u, s + 4 * i, 4);
			h = f32_to_bf16_vec(u);
			memcpy(d + 2 * i, &h, 2);
		}
		return;
	}
	for (i = 0; i < n; i++, s += es) {
		uint32_t u = load_f32(from, s);
		uint16_t h;
		if (to == VT_F32) {
			memcpy(d + 4 * i, &u, 4);
			continue;
		}
		h = to == VT_F16 ? f32_to_f16(u) : from == VT_F64 ? f32_to_bf16_vec(u) : f32_to_bf16_scalar(u);
		memcpy(d + 2 * i, &h, 2);
	}
}

/* ---- streaming ------------------------------------------------------------------------- */

int vt_caster_init(struct vt_caster *c, int from, int to, vt_sink_fn sink, void *ctx, struct vt_err *err)
{
	memset(c, 0, sizeof(*c));
	c->from = from;
	c->to = to;
	c->sink = sink;
	c->ctx = ctx;
	c->buf = malloc(CAST_CHUNK);
	return c->buf ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
}

/* Converts k whole elements at p and hands them on, CAST_CHUNK bytes at a time. */
static int cast_run(struct vt_caster *c, const unsigned char *p, size_t k, struct vt_err *err)
{
	size_t ies = (size_t)vt_dtype_info(c->from)->size, oes = (size_t)vt_dtype_info(c->to)->size;
	size_t per = CAST_CHUNK / oes;
	int rc = 0;

	while (k > 0 && rc == 0) {
		size_t m = k < per ? k : per;
		vt_cast_elems(c->to, c->buf, c->from, p, m);
		rc = c->sink(c->ctx, c->buf, m * oes, err);
		p += m * ies;
		k -= m;
	}
	return rc;
}

int vt_caster_put(void *caster, const void *data, size_t n, struct vt_err *err)
{
	struct vt_caster *c = caster;
	const unsigned char *p = data;
	size_t ies = (size_t)vt_dtype_info(c->from)->size, whole;
	int rc;

	if (c->ncarry) { /* complete the element split by the last chunk */
		size_t k = ies - (size_t)c->ncarry;
		if (k > n)
			k = n;
		memcpy(c->carry + c->ncarry, p, k);
		c->ncarry += (int)k;
		p += k;
		n -= k;
		if ((size_t)c->ncarry < ies)
			return 0;
		c->ncarry = 0;
		if ((rc = cast_run(c, c->carry, 1, err)))
			return rc;
	}
	whole = n / ies;
	if ((rc = cast_run(c, p, whole, err)))
		return rc;
	c->ncarry = (int)(n - whole * ies);
	memcpy(c->carry, p + whole * ies, (size_t)c->ncarry);
	return 0;
}

int vt_caster_end(struct vt_caster *c, struct vt_err *err)
{
	int left = c->ncarry;

	free(c->buf);
	c->buf = NULL;
	if (left)
		return vt_err_set(err, VT_EFORMAT, "a storage ends %d bytes into an element", left);
	return 0;
}

/* ---- a state_dict ---------------------------------------------------------------------- */

int vt_cast_state_dict(struct vt_named *t, size_t n, int to, struct vt_cast_set *set, struct vt_err *err)
{
	size_t i, j;

	memset(set, 0, sizeof(*set));
	set->t = calloc(n ? n : 1, sizeof(*set->t));
	set->s = calloc(n ? n : 1, sizeof(*set->s));
	if (!set->t || !set->s) {
		vt_cast_set_release(set);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		const struct vt_tensor *x = t[i].t;
		struct vt_storage *cs = NULL;
		if (!vt_cast_is_float(x->dtype) || x->dtype == to || x->qscheme != VT_QSCHEME_NONE)
			continue;
		if (x->storage->dtype != x->dtype)
			return vt_err_set(err, VT_EUNSUPPORTED, "tensor '%s' views its %s storage as %s: cannot cast it",
					  t[i].name, vt_dtype_info(x->storage->dtype)->name, vt_dtype_info(x->dtype)->name);
		for (j = 0; j < set->ns && !cs; j++) /* tied tensors keep one storage */
			if (set->s[j].cast_of == x->storage)
				cs = &set->s[j];
		if (!cs) {
			cs = &set->s[set->ns++];
			cs->key = x->storage->key;
			cs->dtype = to;
			cs->numel = x->storage->numel;
			cs->location = x->storage->location;
			cs->src = VT_STORAGE_CAST;
			cs->cast_of = x->storage;
		}
		set->t[set->nt] = *x;
		set->t[set->nt].dtype = to;
		set->t[set->nt].storage = cs;
		t[i].t = &set->t[set->nt++];
	}
	return 0;
}

void vt_cast_set_release(struct vt_cast_set *set)
{
	free(set->t);
	free(set->s);
	memset(set, 0, sizeof(*set));
}
