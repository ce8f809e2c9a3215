/* vt_pth.h - torch.save files: reading them as a value tree with tensors, and writing them.
 *
 * Reading (pth.c): zip (PyTorch >= 1.6) or legacy (pre-1.6 pickle stream) containers, and
 * safetensors files (vt_safetensors.h), read as a state_dict of file-backed tensors; the
 * pickle is run by the allow-listed unpickler of vt_pickle.h with torch's persistent ids and
 * tensor rebuild functions as hooks.  Tensor data is never read: a storage records where its
 * bytes are, so a writer can stream them from the source.
 *
 * Writing (pth_write.c): the zip layout of torch 1.13 (vt_zip.h) with a protocol-2 pickle:
 * state_dicts that load with torch.load(weights_only=True), and whole VGG models.
 */
#ifndef VT_PTH_H
#define VT_PTH_H

#include <stdint.h>

#include "vt_io.h"
#include "vt_pickle.h"
#include "vt_zip.h"

#define VT_MAX_DIMS 16

enum vt_dtype {
	VT_F32, VT_F64, VT_F16, VT_BF16, VT_I64, VT_I32, VT_I16, VT_I8, VT_U8, VT_BOOL,
	VT_C64, VT_C128,
	VT_QI8, VT_QU8, VT_QI32, /* quantized: the integer representation; see vt_tensor.qscheme */
	VT_DTYPE_COUNT
};

struct vt_dtype_info {
	const char *name;    /* "float32", as in torch.float32 */
	const char *storage; /* legacy storage class: "FloatStorage" */
	int size;            /* bytes per element */
};

const struct vt_dtype_info *vt_dtype_info(int dtype);

/* How a generated storage is filled (fresh networks, added layers). */
enum vt_init_kind { VT_INIT_NONE, VT_INIT_NORMAL, VT_INIT_UNIFORM, VT_INIT_CONST };
struct vt_init {
	enum vt_init_kind kind;
	double a;      /* NORMAL: std; UNIFORM: bound (values in [-a, a)); CONST: the value */
	uint64_t seed; /* per storage: the stream does not depend on how it is chunked */
};

/* The deterministic generator behind VT_INIT_* (xoshiro256**, Box-Muller normals). */
struct vt_rng {
	uint64_t s[4];
	int has_spare;
	double spare;
};
void vt_rng_seed(struct vt_rng *r, uint64_t seed);
double vt_rng_uniform(struct vt_rng *r); /* [0, 1) */
double vt_rng_normal(struct vt_rng *r);
/* Fills n consecutive float32 values of a generated storage; r must be seeded with
 * init->seed before the first call. */
void vt_init_fill(struct vt_rng *r, const struct vt_init *init, float *out, size_t n);

/* Generates all of a VT_STORAGE_INIT storage (float32, or int64 constants) into out, on every
 * CPU: blocks of 2^18 elements have generators of their own (storage.c), so the values do not
 * depend on the thread count or on how a stream is chunked. */
struct vt_storage;
int vt_storage_generate(const struct vt_storage *s, void *out, struct vt_err *err);

enum vt_storage_src { VT_STORAGE_FILE, VT_STORAGE_INIT, VT_STORAGE_MEM, VT_STORAGE_CAST };

struct vt_storage {
	char *key;               /* key in the source file (opaque string) */
	int dtype;
	uint64_t numel;          /* elements of dtype */
	char *location;          /* "cpu", "cuda:0"... as saved; ignored when loading */
	enum vt_storage_src src;
	/* VT_STORAGE_FILE */
	const struct vt_zip_entry *entry; /* zip record, or NULL for legacy */
	uint64_t offset;         /* first data byte in the source file (stored records, legacy) */
	int resolved;            /* legacy: offset known */
	struct vt_storage *base; /* legacy views (pre-1.0): numel elements from element base_off of base */
	uint64_t base_off;
	/* VT_STORAGE_INIT */
	struct vt_init init;
	/* VT_STORAGE_MEM: numel elements of dtype (owned by whoever made the storage) */
	void *mem;
	/* VT_STORAGE_CAST: cast_of's numel elements converted to dtype (vt_cast.h) */
	const struct vt_storage *cast_of;
};

struct vt_tensor {
	struct vt_storage *storage;
	int dtype;
	int ndim;
	int64_t size[VT_MAX_DIMS], stride[VT_MAX_DIMS];
	int64_t offset;          /* in elements */
	int requires_grad;
	int is_param;            /* came from _rebuild_parameter (whole-model files) */
	/* quantized tensors (_rebuild_qtensor): VT_QSCHEME_NONE for all others */
	int qscheme;
	double q_scale;          /* per tensor */
	int64_t q_zero_point;
	const struct vt_tensor *q_scales, *q_zero_points; /* per channel, along q_axis */
	int64_t q_axis;
};

enum vt_qscheme {
	VT_QSCHEME_NONE, VT_QSCHEME_PER_TENSOR_AFFINE, VT_QSCHEME_PER_CHANNEL_AFFINE,
	VT_QSCHEME_PER_TENSOR_SYMMETRIC, VT_QSCHEME_PER_CHANNEL_SYMMETRIC,
	VT_QSCHEME_PER_CHANNEL_AFFINE_FLOAT_QPARAMS, VT_QSCHEME_COUNT
};
extern const char *const vt_qscheme_names[VT_QSCHEME_COUNT]; /* "per_tensor_affine"... */

/* numpy values met in training dicts: a dtype, and arrays (bytes kept, in the arena). */
struct vt_np_dtype {
	char kind;  /* 'f', 'i', 'u', 'b', 'c', or 0 when not understood */
	int size;   /* bytes per element */
	char order; /* '<', '>', '|' or '=' */
};
struct vt_np_array {
	struct vt_np_dtype dtype;
	int ndim;
	int64_t shape[VT_MAX_DIMS];
	int fortran;
	const unsigned char *data; /* NULL when the data is not raw bytes (object arrays) */
	size_t nbytes;
};

enum { VT_EXT_TENSOR = 1, VT_EXT_STORAGE = 2, VT_EXT_NP_DTYPE = 3, VT_EXT_NP_ARRAY = 4 };

/* How the reader treats a global: a callable it turns into data (tensor rebuilders,
 * containers, numpy scalars...), any other name (an inert symbol: classes become object
 * records, calls call records), or a name on the denylist of code-execution and system
 * primitives, which makes the file hostile. */
enum vt_global_kind { VT_GLOBAL_DATA, VT_GLOBAL_SYMBOL, VT_GLOBAL_DANGEROUS };
enum vt_global_kind vt_pth_global_kind(const char *module, const char *name);
/* 1 when v is the GLOBAL builtins.object (__builtin__.object in Python 2 pickles). */
int vt_pth_is_object_type(const struct vt_pk *v);
/* numpy's name for a dtype ("float64"), or NULL. */
const char *vt_np_dtype_name(const struct vt_np_dtype *d, char *buf, size_t size);

struct vt_pth {
	struct vt_src src;
	int is_zip;
	struct vt_zip zip;
	struct vt_unpickler up;
	struct vt_pk *root;
	struct vt_storage **storages;
	size_t nstorages, storages_cap;
	size_t *slots, nslots; /* hash index of storages by key: index + 1, 0 when empty */
	int is_torchscript;      /* a torch.jit.save archive: data.pkl holds __torch__ objects */
	int is_safetensors;      /* a safetensors file: root is a dict of its tensors (vt_safetensors.h) */
	char *name;              /* file name for messages (owned) */
};

/* Opens path and unpickles it. Storage bytes are not read. */
int vt_pth_open(struct vt_pth *pth, const char *path, struct vt_err *err);
/* The same on an already open source (owned by the caller; fuzzers use memory sources). */
int vt_pth_open_src(struct vt_pth *pth, const struct vt_src *src, struct vt_err *err);
void vt_pth_close(struct vt_pth *pth);

/* The tensor inside a pickle value, or NULL. */
struct vt_tensor *vt_pk_tensor(const struct vt_pk *v);
/* Elements of a tensor (the product of its sizes). */
uint64_t vt_tensor_numel(const struct vt_tensor *t);
/* Bytes a tensor's storage holds. */
uint64_t vt_storage_nbytes(const struct vt_storage *s);
/* Reads a whole storage (file, deflated zip record, generator, memory or cast) into a new malloc'ed buffer. */
int vt_storage_read(const struct vt_storage *s, const struct vt_src *src, void **out, struct vt_err *err);
/* A consumer of bytes given in chunks; nonzero stops the stream. */
typedef int (*vt_sink_fn)(void *ctx, const void *p, size_t n, struct vt_err *err);
/* Gives elements [first, first + count) of a storage to sink in chunks of at most 1 MiB
 * (memory in one), never holding the storage whole: read from the file, inflated from a
 * deflated zip record, generated, or converted from its source (VT_STORAGE_CAST). */
int vt_storage_stream(const struct vt_storage *s, const struct vt_src *src, uint64_t first, uint64_t count,
		      vt_sink_fn sink, void *ctx, struct vt_err *err);
/* Gathers a tensor's elements (strides, offset) from its storage bytes as contiguous float32;
 * float64, float16 and bfloat16 are converted. */
int vt_tensor_to_f32(const struct vt_tensor *t, const void *storage, float *out, struct vt_err *err);
/* IEEE half to float. */
float vt_half_to_float(uint16_t h);
/* Checks every zip record CRC and that every tensor fits its storage. */
int vt_pth_verify(struct vt_pth *pth, struct vt_err *err);

/* The writer: a pickle being emitted plus the storages its tensors referenced, numbered
 * 0..n-1 in the order first met (as torch.save does).  Usage: init, PROTO and objects with
 * the vt_pkw_* calls on w->pk and vt_pthw_tensor for tensors, then vt_pthw_save. */
struct vt_pthw {
	struct vt_pkw pk;
	const struct vt_storage **stor;
	size_t n, cap;
	int oom;
};

void vt_pthw_init(struct vt_pthw *w);
void vt_pthw_release(struct vt_pthw *w);
/* Emits _rebuild_tensor_v2(...) for t, wrapped in _rebuild_parameter(...) when as_param. */
void vt_pthw_tensor(struct vt_pthw *w, const struct vt_tensor *t, int as_param);
/* Ends the pickle (STOP) and writes the archive atomically to path; VT_STORAGE_FILE bytes
 * are copied from src. */
int vt_pthw_save(struct vt_pthw *w, const char *path, const struct vt_src *src, struct vt_err *err);

/* Writes a value tree read from a file (a whole model of any class) back as torch.save
 * would, atomically, tensors on 'cpu' and their bytes copied from src (pth_tree.c).  Refuses
 * call records: vggtl never writes a call it did not understand. */
int vt_pth_write_tree(const char *path, const struct vt_src *src, const struct vt_pk *root, struct vt_err *err);

/* A state_dict: tensors by name, in order, and the _metadata module versions. */
struct vt_named {
	const char *name;
	const struct vt_tensor *t;
};
struct vt_meta {
	const char *prefix; /* module path without the trailing dot; "" is the root */
	int version;
};
/* Frees an array of names or prefixes that a library call malloc'ed (names too). */
void vt_named_free(struct vt_named *t, size_t n);
void vt_meta_free(struct vt_meta *meta, size_t n);
/* Emits a state_dict object (OrderedDict with _metadata when meta is not NULL). */
void vt_pthw_state_dict(struct vt_pthw *w, const struct vt_named *t, size_t n, const struct vt_meta *meta,
			size_t nmeta);
/* Emits OrderedDict() (memoized global, REDUCE, BINPUT). */
void vt_pkw_ordereddict(struct vt_pkw *pk);
/* Writes the state_dict form (torch.save(model.state_dict())); loads with weights_only=True. */
int vt_pth_write_state_dict(const char *path, const struct vt_src *src, const struct vt_named *t,
			    size_t n, const struct vt_meta *meta, size_t nmeta, struct vt_err *err);

#endif
