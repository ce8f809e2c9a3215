/* storage.c - where a storage's bytes come from: the generator behind fresh layers
 * (xoshiro256** seeded per block of 2^18 elements of a storage, blocks made on every CPU;
 * Marsaglia's polar method for normals), reading a tensor's elements from its source file,
 * its generator or memory into a contiguous buffer (the training path, safetensors writing
 * of strided tensors), and streaming a storage's bytes chunk by chunk to a writer
 * (vt_storage_stream: checkpoint conversion, casts); for vt_storage_read a storage in a
 * deflated zip record is inflated whole.
 */
#include "vt_pth.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vt_cast.h"
#include "vt_zip.h"
#include <zlib.h>


static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void vt_rng_seed(struct vt_rng *r, uint64_t seed)
{
	int i;

	for (i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
	r->has_spare = 0;
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

double vt_rng_uniform(struct vt_rng *r)
{
	uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return (double)(result >> 11) * 0x1.0p-53;
}

/* Marsaglia's polar method: two normals per accepted pair, no trigonometry. */
double vt_rng_normal(struct vt_rng *r)
{
	double u, v, q, f;

	if (r->has_spare) {
		r->has_spare = 0;
		return r->spare;
	}
	do {
		u = 2.0 * vt_rng_uniform(r) - 1.0;
		v = 2.0 * vt_rng_uniform(r) - 1.0;
		q = u * u + v * v;
	} while (q >= 1.0 || q == 0.0);
	f = sqrt(-2.0 * log(q) / q);
	r->spare = v * f;
	r->has_spare = 1;
	return u * f;
}

/* n normals x a, the values vt_rng_normal would give one by one (a fresh r, no spare):
 * accepted pairs are drawn first, a batch at a time, and their logarithms and square roots
 * taken in a second loop, whose iterations do not depend on each other and so overlap in
 * the CPU (about 1.5x faster here than one call per value). */
static void normal_fill(struct vt_rng *r, double a, float *out, size_t n)
{
	enum { PAIRS = 64 };
	double u[PAIRS], v[PAIRS], q[PAIRS];
	size_t i = 0;

	while (i < n) {
		size_t want = (n - i + 1) / 2, k, m = want < PAIRS ? want : PAIRS;
		for (k = 0; k < m; k++) {
			do {
				u[k] = 2.0 * vt_rng_uniform(r) - 1.0;
				v[k] = 2.0 * vt_rng_uniform(r) - 1.0;
				q[k] = u[k] * u[k] + v[k] * v[k];
			} while (q[k] >= 1.0 || q[k] == 0.0);
		}
		for (k = 0; k < m; k++) {
			double f = sqrt(-2.0 * log(q[k]) / q[k]);
			out[i++] = (float)(a * (u[k] * f));
			if (i < n)
				out[i++] = (float)(a * (v[k] * f));
		}
	}
}

void vt_init_fill(struct vt_rng *r, const struct vt_init *init, float *out, size_t n)
{
	size_t i;

	if (init->kind == VT_INIT_NORMAL && !r->has_spare) {
		normal_fill(r, init->a, out, n);
		return;
	}
	for (i = 0; i < n; i++) {
		switch (init->kind) {
		case VT_INIT_NORMAL:
			out[i] = (float)(init->a * vt_rng_normal(r));
			break;
		case VT_INIT_UNIFORM:
			out[i] = (float)(init->a * (2.0 * vt_rng_uniform(r) - 1.0));
			break;
		case VT_INIT_CONST:
			out[i] = (float)init->a;
			break;
		default:
			out[i] = 0.0f;
		}
	}
}

/* A generated storage is made of blocks of GEN_BLOCK elements, block b drawn from its own
 * generator seeded with init.seed ^ b * golden (block 0: init.seed itself), so that any
 * range can be made without the ones before it, and blocks in parallel. */
enum { GEN_BLOCK = 1 << 18, GEN_GROUP = 16, GEN_THREADS = 8 };

static void gen_block(const struct vt_storage *s, uint64_t b, float *out, size_t n)
{
	struct vt_rng r;

	vt_rng_seed(&r, s->init.seed ^ (b * 0x9e3779b97f4a7c15ULL));
	vt_init_fill(&r, &s->init, out, n);
}

struct gen_job {
	const struct vt_storage *s;
	uint64_t first;  /* element, a multiple of GEN_BLOCK */
	size_t n;        /* elements */
	float *out;
	int part, parts; /* this thread takes blocks part, part + parts, ... */
	pthread_t th;
};

static void *gen_worker(void *arg)
{
	struct gen_job *j = arg;
	size_t nb = (j->n + GEN_BLOCK - 1) / GEN_BLOCK, k;

	for (k = (size_t)j->part; k < nb; k += (size_t)j->parts) {
		size_t m = k + 1 < nb ? GEN_BLOCK : j->n - k * GEN_BLOCK;
		gen_block(j->s, j->first / GEN_BLOCK + k, j->out + k * GEN_BLOCK, m);
	}
	return NULL;
}

static int gen_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > GEN_THREADS ? GEN_THREADS : (int)n;
}

/* Starts making n float32 elements from element first (block-aligned) on the CPUs; jobs
 * holds GEN_THREADS; returns how many threads run (0: done already, in this thread). */
static int gen_start(struct gen_job *jobs, const struct vt_storage *s, uint64_t first, float *out, size_t n)
{
	int parts = gen_threads(), i, started = 0;

	if (n > GEN_BLOCK && parts > 1)
		for (i = 0; i < parts; i++) {
			jobs[i] = (struct gen_job){ s, first, n, out, i, parts, 0 };
			if (pthread_create(&jobs[i].th, NULL, gen_worker, &jobs[i]) != 0)
				break;
			started++;
		}
	if (started < parts) { /* no threads (or fewer): this one makes the rest */
		struct gen_job rest = { s, first, n, out, started, parts, 0 };
		int p;
		for (p = started; p < parts; p++) {
			rest.part = p;
			gen_worker(&rest);
		}
	}
	return started;
}

static void gen_join(struct gen_job *jobs, int started)
{
	int i;

	for (i = 0; i < started; i++)
		pthread_join(jobs[i].th, NULL);
}

int vt_storage_generate(const struct vt_storage *s, void *out, struct vt_err *err)
{
	uint64_t i;

	if (s->dtype == VT_F32) {
		struct gen_job jobs[GEN_THREADS];
		gen_join(jobs, gen_start(jobs, s, 0, out, (size_t)s->numel));
		return 0;
	}
	if (s->dtype == VT_I64) { /* counters such as num_batches_tracked */
		int64_t v = (int64_t)s->init.a;
		for (i = 0; i < s->numel; i++)
			memcpy((char *)out + 8 * i, &v, 8);
		return 0;
	}
	return vt_err_set(err, VT_EUNSUPPORTED, "cannot generate a %s storage", vt_dtype_info(s->dtype)->name);
}

/* The bytes of a storage kept in a deflated zip record: vt_zip_read inflates them (it needs
 * only the source of the archive). */
static int inflate_storage(const struct vt_storage *s, const struct vt_src *src, void **out, struct vt_err *err)
{
	struct vt_zip zip = { 0 };
	unsigned char *buf;
	int rc;

	zip.src = src;
	if (vt_storage_nbytes(s) != s->entry->size)
		return vt_err_set(err, VT_EFORMAT, "record '%s' is not the %llu bytes of storage '%s'", s->entry->name,
				  (unsigned long long)vt_storage_nbytes(s), s->key);
	if ((rc = vt_zip_read(&zip, s->entry, s->entry->size, &buf, err)))
		return rc;
	*out = buf;
	return 0;
}

/* ---- streaming ------------------------------------------------------------------------- */

enum { CHUNK = 1 << 20 };

/* Passes on the bytes of [skip, skip + left) of what it is given. */
struct clip {
	uint64_t skip, left;
	vt_sink_fn sink;
	void *ctx;
};

static int clip_put(struct clip *c, const unsigned char *p, size_t n, struct vt_err *err)
{
	size_t k = c->skip < n ? (size_t)c->skip : n;

	c->skip -= k;
	p += k;
	n -= k;
	if (n > c->left)
		n = (size_t)c->left;
	c->left -= n;
	return n ? c->sink(c->ctx, p, n, err) : 0;
}

static int stream_file(const struct vt_storage *s, const struct vt_src *src, struct clip *c, struct vt_err *err)
{
	uint64_t pos = s->offset + c->skip;
	unsigned char *buf = malloc(CHUNK);
	int rc = 0;

	if (!buf)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	c->skip = 0;
	while (c->left > 0 && rc == 0) {
		size_t k = c->left < CHUNK ? (size_t)c->left : CHUNK;
		if ((rc = vt_src_read(src, pos, buf, k, err)) == 0)
			rc = clip_put(c, buf, k, err);
		pos += k;
	}
	free(buf);
	return rc;
}

static int stream_inflated(const struct vt_storage *s, const struct vt_src *src, struct clip *c, struct vt_err *err)
{
	const struct vt_zip_entry *e = s->entry;
	unsigned char *in, *out;
	uint64_t pos = e->data_offset, end = e->data_offset + e->csize, produced = 0;
	z_stream z;
	int rc = 0, zr = Z_OK;

	if (e->method != 8)
		return vt_err_set(err, VT_EUNSUPPORTED, "record '%s' uses zip compression method %d", e->name, e->method);
	if (e->size != vt_storage_nbytes(s))
		return vt_err_set(err, VT_EFORMAT, "record '%s' is not the %llu bytes of storage '%s'", e->name,
				  (unsigned long long)vt_storage_nbytes(s), s->key);
	in = malloc(CHUNK);
	out = malloc(CHUNK);
	memset(&z, 0, sizeof(z));
	if (!in || !out || inflateInit2(&z, -MAX_WBITS) != Z_OK) {
		free(in);
		free(out);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	while (rc == 0 && zr != Z_STREAM_END && c->left > 0) {
		if (z.avail_in == 0) {
			size_t k = end - pos < CHUNK ? (size_t)(end - pos) : CHUNK;
			if (k == 0) {
				rc = vt_err_set(err, VT_EFORMAT, "record '%s': deflate stream ends early", e->name);
				break;
			}
			if ((rc = vt_src_read(src, pos, in, k, err)))
				break;
			pos += k;
			z.next_in = in;
			z.avail_in = (uInt)k;
		}
		z.next_out = out;
		z.avail_out = CHUNK;
		zr = inflate(&z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END) {
			rc = vt_err_set(err, VT_EFORMAT, "record '%s': corrupt deflate data", e->name);
			break;
		}
		produced += CHUNK - z.avail_out;
		if (produced > e->size) {
			rc = vt_err_set(err, VT_EFORMAT, "record '%s' inflates past its declared size", e->name);
			break;
		}
		rc = clip_put(c, out, CHUNK - z.avail_out, err);
	}
	if (rc == 0 && c->left > 0)
		rc = vt_err_set(err, VT_EFORMAT, "record '%s' inflates to fewer bytes than it declares", e->name);
	inflateEnd(&z);
	free(in);
	free(out);
	return rc;
}

/* Groups of GEN_GROUP blocks, each made on the CPUs while the one before goes to the sink. */
static int stream_generated(const struct vt_storage *s, struct clip *c, struct vt_err *err)
{
	size_t group = (size_t)GEN_GROUP * GEN_BLOCK, es = (size_t)vt_dtype_info(s->dtype)->size;
	float *buf[2];
	struct gen_job jobs[GEN_THREADS];
	uint64_t at = 0;
	int rc = 0, cur = 0, started;

	if (s->dtype != VT_F32) { /* constants: small, made whole */
		void *all = NULL;
		if ((rc = vt_storage_read(s, NULL, &all, err)) == 0)
			rc = clip_put(c, all, (size_t)vt_storage_nbytes(s), err);
		free(all);
		return rc;
	}
	if (group > s->numel)
		group = (size_t)s->numel;
	buf[0] = malloc(group * es);
	buf[1] = malloc(group * es);
	if (!buf[0] || !buf[1]) {
		free(buf[0]);
		free(buf[1]);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	started = gen_start(jobs, s, 0, buf[0], (size_t)(s->numel < group ? s->numel : group));
	while (at < s->numel) {
		size_t n = (size_t)(s->numel - at < group ? s->numel - at : group);
		uint64_t next = at + n;
		gen_join(jobs, started);
		started = 0;
		if (rc != 0 || c->left == 0)
			break;
		if (next < s->numel) /* the next group, while this one goes out */
			started = gen_start(jobs, s, next, buf[!cur], (size_t)(s->numel - next < group ? s->numel - next : group));
		rc = clip_put(c, (unsigned char *)buf[cur], n * es, err);
		cur = !cur;
		at = next;
	}
	gen_join(jobs, started);
	free(buf[0]);
	free(buf[1]);
	return rc;
}

int vt_storage_stream(const struct vt_storage *s, const struct vt_src *src, uint64_t first, uint64_t count,
		      vt_sink_fn sink, void *ctx, struct vt_err *err)
{
	uint64_t es = (uint64_t)vt_dtype_info(s->dtype)->size;
	struct clip c = { first * es, count * es, sink, ctx };
	struct vt_caster k;
	int rc;

	if (first > s->numel || count > s->numel - first)
		return vt_err_set(err, VT_EFORMAT, "elements %llu..%llu are past the end of storage '%s'",
				  (unsigned long long)first, (unsigned long long)(first + count), s->key ? s->key : "?");
	if (count == 0)
		return 0;
	switch (s->src) {
	case VT_STORAGE_MEM:
		return clip_put(&c, s->mem, (size_t)vt_storage_nbytes(s), err);
	case VT_STORAGE_INIT:
		return stream_generated(s, &c, err);
	case VT_STORAGE_CAST:
		if ((rc = vt_caster_init(&k, s->cast_of->dtype, s->dtype, sink, ctx, err)))
			return rc;
		if ((rc = vt_storage_stream(s->cast_of, src, first, count, vt_caster_put, &k, err))) {
			struct vt_err ignored;
			vt_caster_end(&k, &ignored);
			return rc;
		}
		return vt_caster_end(&k, err);
	default:
		return s->entry && s->entry->method != 0 ? stream_inflated(s, src, &c, err) : stream_file(s, src, &c, err);
	}
}

struct membuf {
	unsigned char *p;
	size_t used;
};

static int mem_put(void *ctx, const void *p, size_t n, struct vt_err *err)
{
	struct membuf *m = ctx;

	(void)err;
	memcpy(m->p + m->used, p, n);
	m->used += n;
	return 0;
}

int vt_storage_read(const struct vt_storage *s, const struct vt_src *src, void **out, struct vt_err *err)
{
	uint64_t nbytes = vt_storage_nbytes(s);
	void *buf;
	int rc = 0;

	if (s->src == VT_STORAGE_FILE && s->entry && s->entry->method != 0)
		return inflate_storage(s, src, out, err);
	buf = malloc(nbytes ? (size_t)nbytes : 1);

	if (!buf || nbytes > SIZE_MAX / 2) {
		free(buf);
		return vt_err_set(err, VT_ENOMEM, "out of memory for a storage of %llu bytes", (unsigned long long)nbytes);
	}
	if (s->src == VT_STORAGE_MEM) {
		memcpy(buf, s->mem, (size_t)nbytes);
	} else if (s->src == VT_STORAGE_INIT) {
		rc = vt_storage_generate(s, buf, err);
	} else if (s->src == VT_STORAGE_CAST) {
		struct membuf m = { buf, 0 };
		rc = vt_storage_stream(s, src, 0, s->numel, mem_put, &m, err);
	} else {
		rc = vt_src_read(src, s->offset, buf, (size_t)nbytes, err);
	}
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

float vt_half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
	float f;

	if (e == 0) { /* zero or subnormal: m * 2^-24 */
		f = ldexpf((float)m, -24);
		return sign ? -f : f;
	}
	if (e == 31)
		bits = sign | 0x7f800000u | (m << 13);
	else
		bits = sign | ((e + 112) << 23) | (m << 13);
	memcpy(&f, &bits, 4);
	return f;
}

int vt_tensor_to_f32(const struct vt_tensor *t, const void *storage, float *out, struct vt_err *err)
{
	int64_t idx[VT_MAX_DIMS] = { 0 };
	uint64_t n = vt_tensor_numel(t), k;
	int d;

	for (k = 0; k < n; k++) {
		int64_t at = t->offset;
		const unsigned char *p;
		for (d = 0; d < t->ndim; d++)
			at += idx[d] * t->stride[d];
		p = (const unsigned char *)storage + (uint64_t)at * (uint64_t)vt_dtype_info(t->dtype)->size;
		switch (t->dtype) {
		case VT_F32:
			memcpy(&out[k], p, 4);
			break;
		case VT_F64: {
			double v;
			memcpy(&v, p, 8);
			out[k] = (float)v;
			break;
		}
		case VT_F16: {
			uint16_t h;
			memcpy(&h, p, 2);
			out[k] = vt_half_to_float(h);
			break;
		}
		case VT_BF16: {
			uint32_t bits = (uint32_t)(p[0] | (p[1] << 8)) << 16;
			memcpy(&out[k], &bits, 4);
			break;
		}
		default:
			return vt_err_set(err, VT_EUNSUPPORTED, "a %s tensor cannot be used as weights",
					  vt_dtype_info(t->dtype)->name);
		}
		for (d = t->ndim - 1; d >= 0; d--) { /* next index, last dimension fastest */
			if (++idx[d] < t->size[d])
				break;
			idx[d] = 0;
		}
	}
	return 0;
}
