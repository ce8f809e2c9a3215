/* pth.c - reading torch.save files (see include/vt_pth.h).
 *
 * Formats (shared/research/pth-format.md): zip containers with "<archive>/data.pkl",
 * "<archive>/data/<key>" and "<archive>/version" (section 1), and the legacy stream of
 * pickles: magic number, protocol version 1001, sys_info, the object, the storage keys, then
 * each storage as an int64 element count and its bytes (section 3).
 *
 * torch knowledge lives in the unpickler hooks below: find_class (known names, and the
 * denylist that makes a file hostile), persistent_load (storages, with the views of pre-1.0
 * legacy files) and reduce (the callables that become data: tensor, parameter and quantized
 * tensor rebuilders, OrderedDict, set, torch.Size/device, numpy scalars, dtypes and arrays,
 * _codecs.encode, copyreg._reconstructor, defaultdict).  Any other class or function is an
 * inert symbol: NEWOBJ of it makes an object record, REDUCE a call record.  Nothing is called.
 * TorchScript archives read like torch.save files (their data.pkl).  safetensors files
 * (safetensors.c parses the header) become a dict of tensors, as a state_dict would.
 * Not supported: the pre-0.3 tar layout, big-endian files, sparse and meta tensors.
 */
#include "vt_pth.h"
#include "vt_safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct vt_dtype_info dtypes[VT_DTYPE_COUNT] = {
	[VT_F32] = { "float32", "FloatStorage", 4 },
	[VT_F64] = { "float64", "DoubleStorage", 8 },
	[VT_F16] = { "float16", "HalfStorage", 2 },
	[VT_BF16] = { "bfloat16", "BFloat16Storage", 2 },
	[VT_I64] = { "int64", "LongStorage", 8 },
	[VT_I32] = { "int32", "IntStorage", 4 },
	[VT_I16] = { "int16", "ShortStorage", 2 },
	[VT_I8] = { "int8", "CharStorage", 1 },
	[VT_U8] = { "uint8", "ByteStorage", 1 },
	[VT_BOOL] = { "bool", "BoolStorage", 1 },
	[VT_C64] = { "complex64", "ComplexFloatStorage", 8 },
	[VT_C128] = { "complex128", "ComplexDoubleStorage", 16 },
	[VT_QI8] = { "qint8", "QInt8Storage", 1 },
	[VT_QU8] = { "quint8", "QUInt8Storage", 1 },
	[VT_QI32] = { "qint32", "QInt32Storage", 4 },
};

const struct vt_dtype_info *vt_dtype_info(int dtype)
{
	return dtype >= 0 && dtype < VT_DTYPE_COUNT ? &dtypes[dtype] : NULL;
}

uint64_t vt_tensor_numel(const struct vt_tensor *t)
{
	uint64_t n = 1;
	int d;

	for (d = 0; d < t->ndim; d++)
		n *= (uint64_t)t->size[d];
	return n;
}

uint64_t vt_storage_nbytes(const struct vt_storage *s)
{
	return s->numel * (uint64_t)dtypes[s->dtype].size;
}

struct vt_tensor *vt_pk_tensor(const struct vt_pk *v)
{
	return v && v->kind == VT_PK_EXT && v->u.ext.type == VT_EXT_TENSOR ? v->u.ext.p : NULL;
}

static struct vt_storage *pk_storage(const struct vt_pk *v)
{
	return v && v->kind == VT_PK_EXT && v->u.ext.type == VT_EXT_STORAGE ? v->u.ext.p : NULL;
}

/* ---- find_class: known names, the denylist, and symbols --------------------------------- */

enum tag {
	T_SYMBOL, T_ORDEREDDICT, T_SET, T_FROZENSET, T_BYTEARRAY, T_DEFAULTDICT, T_COUNTER,
	T_REBUILD_V1, T_REBUILD_V2, T_REBUILD_V3, T_REBUILD_PARAM, T_REBUILD_PARAM_STATE,
	T_REBUILD_FROM_TYPE, T_REBUILD_QTENSOR, T_SIZE, T_DEVICE, T_RECONSTRUCTOR, T_NEWOBJ, T_CODECS_ENCODE,
	T_NP_SCALAR, T_NP_DTYPE, T_NP_RECONSTRUCT, T_JIT_IDENTITY, T_PARTIAL,
	T_STORAGE = 100, /* + dtype */
	T_DTYPE = 200,   /* + dtype */
	T_QSCHEME = 250, /* + enum vt_qscheme */
	T_UNTYPED_STORAGE = 300
};

const char *const vt_qscheme_names[VT_QSCHEME_COUNT] = {
	"", "per_tensor_affine", "per_channel_affine", "per_tensor_symmetric", "per_channel_symmetric",
	"per_channel_affine_float_qparams"
};

/* Callables whose result vggtl builds as data; every other REDUCE is a call record. */
static const struct {
	const char *module, *name;
	int tag;
} known[] = {
	{ "collections", "OrderedDict", T_ORDEREDDICT },
	{ "collections", "defaultdict", T_DEFAULTDICT },
	{ "collections", "Counter", T_COUNTER },
	{ "builtins", "set", T_SET },
	{ "__builtin__", "set", T_SET },
	{ "builtins", "frozenset", T_FROZENSET },
	{ "__builtin__", "frozenset", T_FROZENSET },
	{ "builtins", "bytearray", T_BYTEARRAY },
	{ "__builtin__", "bytearray", T_BYTEARRAY },
	{ "copyreg", "_reconstructor", T_RECONSTRUCTOR },
	{ "copy_reg", "_reconstructor", T_RECONSTRUCTOR },
	{ "copyreg", "__newobj__", T_NEWOBJ },
	{ "copy_reg", "__newobj__", T_NEWOBJ },
	{ "_codecs", "encode", T_CODECS_ENCODE },
	{ "torch._utils", "_rebuild_tensor", T_REBUILD_V1 },
	{ "torch._utils", "_rebuild_tensor_v2", T_REBUILD_V2 },
	{ "torch._utils", "_rebuild_tensor_v3", T_REBUILD_V3 },
	{ "torch._utils", "_rebuild_parameter", T_REBUILD_PARAM },
	{ "torch._utils", "_rebuild_parameter_with_state", T_REBUILD_PARAM_STATE },
	{ "torch._utils", "_rebuild_qtensor", T_REBUILD_QTENSOR },
	{ "torch._tensor", "_rebuild_from_type_v2", T_REBUILD_FROM_TYPE },
	{ "torch", "Size", T_SIZE },
	{ "torch", "device", T_DEVICE },
	{ "torch.storage", "UntypedStorage", T_UNTYPED_STORAGE },
	{ "torch", "UntypedStorage", T_UNTYPED_STORAGE },
	{ "numpy.core.multiarray", "scalar", T_NP_SCALAR },
	{ "numpy._core.multiarray", "scalar", T_NP_SCALAR },
	{ "numpy", "dtype", T_NP_DTYPE },
	{ "numpy.core.multiarray", "_reconstruct", T_NP_RECONSTRUCT },
	{ "numpy._core.multiarray", "_reconstruct", T_NP_RECONSTRUCT },
	/* partial(f, ...) binds arguments without calling f (torchvision keeps norm_layer =
	 * partial(nn.LayerNorm, eps=1e-6)); it stays an inert call record, and a call of the
	 * partial itself is a call of a non-global, which scan reports */
	{ "functools", "partial", T_PARTIAL },
	/* TorchScript's data.pkl: typed lists and type tags around plain values */
	{ "torch.jit._pickle", "build_intlist", T_JIT_IDENTITY },
	{ "torch.jit._pickle", "build_tensorlist", T_JIT_IDENTITY },
	{ "torch.jit._pickle", "build_doublelist", T_JIT_IDENTITY },
	{ "torch.jit._pickle", "build_boollist", T_JIT_IDENTITY },
	{ "torch.jit._pickle", "build_genericlist", T_JIT_IDENTITY },
	{ "torch.jit._pickle", "restore_type_tag", T_JIT_IDENTITY },
};

/* Code execution and system access: whole modules, then single names (after picklescan's
 * and modelscan's lists, widened). A file that names any of them is hostile. */
static const char *const denied_modules[] = {
	"os", "posix", "nt", "posixpath", "ntpath", "subprocess", "sys", "socket", "shutil", "runpy",
	"importlib", "imp", "pkgutil", "zipimport", "pickle", "_pickle", "cPickle", "dill", "joblib",
	"marshal", "ctypes", "_ctypes", "code", "codeop", "pty", "webbrowser", "commands", "popen2",
	"multiprocessing", "asyncio", "threading", "_thread", "thread", "signal", "requests", "httplib",
	"http", "urllib", "urllib2", "urllib3", "ftplib", "telnetlib", "smtplib", "poplib", "imaplib",
	"xmlrpc", "bdb", "pdb", "trace", "timeit", "profile", "cProfile", "platform", "tempfile",
	"glob", "io", "_io", "fileinput", "site", "sysconfig", "setuptools", "distutils", "pip",
	"venv", "ensurepip", "builtins.__import__", "aiohttp", "paramiko", "pexpect", "sh",
	"torch.hub", "torch.utils.cpp_extension", "torch._dynamo", "torch._inductor", "torch.fx.experimental",
	"torch.jit", "torch.package", "numpy.testing", "numpy.distutils", "numpy.f2py", "pydoc",
	"linecache", "logging.config", "_posixsubprocess", "_winapi", "msvcrt", "winreg", "_winreg",
	"gc", "inspect", "atexit", "_operator", "codecs", "_pyio", "tarfile", "zipfile", "shelve", "dbm",
	"sqlite3", "gzip", "bz2", "lzma", "logging.handlers", "nntplib", "socketserver", "mmap", "xmlrpclib",
	"SimpleHTTPServer", "BaseHTTPServer", "CGIHTTPServer", "SocketServer", "StringIO", "cStringIO",
	"anydbm", "dumbdbm", "gdbm", "dbhash", "whichdb", "cookielib", "Cookie",
	NULL
};
static const struct {
	const char *module, *name;
} denied_names[] = {
	{ "builtins", "eval" }, { "builtins", "exec" }, { "builtins", "execfile" }, { "builtins", "compile" },
	{ "builtins", "open" }, { "builtins", "__import__" }, { "builtins", "getattr" }, { "builtins", "setattr" },
	{ "builtins", "delattr" }, { "builtins", "globals" }, { "builtins", "locals" }, { "builtins", "vars" },
	{ "builtins", "input" }, { "builtins", "raw_input" }, { "builtins", "breakpoint" }, { "builtins", "apply" },
	{ "builtins", "file" }, { "builtins", "reload" }, { "builtins", "help" }, { "builtins", "exit" },
	{ "builtins", "quit" }, { "builtins", "type" }, { "builtins", "memoryview" }, { "builtins", "super" },
	{ "builtins", "classmethod" }, { "builtins", "staticmethod" }, { "builtins", "property" },
	{ "torch", "load" }, { "torch.serialization", "load" }, { "torch", "_load_global_deps" },
	{ "torch.storage", "_load_from_bytes" }, { "numpy", "load" }, { "numpy.lib.npyio", "load" },
	{ "numpy", "fromfile" }, { "numpy", "loadtxt" }, { "torch.utils.data.datapipes.utils.decoder", "basichandlers" },
	{ "logging", "FileHandler" }, { "logging", "StreamHandler" },
	{ "operator", "attrgetter" }, { "operator", "methodcaller" }, { "operator", "getitem" },
	{ "types", "FunctionType" }, { "types", "CodeType" }, { "types", "MethodType" }, { "types", "ModuleType" },
	{ "types", "LambdaType" }, { "types", "BuiltinFunctionType" },
};

static int module_is(const char *module, const char *m)
{
	size_t n = strlen(m);

	return strncmp(module, m, n) == 0 && (module[n] == '\0' || module[n] == '.');
}

enum vt_global_kind vt_pth_global_kind(const char *module, const char *name)
{
	const char *mod = module;
	size_t i;

	if (strcmp(module, "__builtin__") == 0 || strcmp(module, "__builtins__") == 0)
		mod = "builtins"; /* Python 2's name, as pickle's fix_imports maps it */
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(known[i].module, module) == 0 && strcmp(known[i].name, name) == 0)
			return VT_GLOBAL_DATA;
	for (i = 0; denied_modules[i]; i++)
		if (module_is(mod, denied_modules[i]))
			return VT_GLOBAL_DANGEROUS;
	for (i = 0; i < sizeof(denied_names) / sizeof(denied_names[0]); i++)
		if (strcmp(mod, denied_names[i].module) == 0 && strcmp(name, denied_names[i].name) == 0)
			return VT_GLOBAL_DANGEROUS;
	/* protocol 4 resolves dotted names attribute by attribute, through whatever a module
	 * imported: torch 'serialization.os.system' is os.system */
	if (strchr(name, '.'))
		return VT_GLOBAL_DANGEROUS;
	if (module_is(module, "torch")) /* the storage classes, by their exact names */
		for (i = 0; i < VT_DTYPE_COUNT; i++)
			if (strcmp(name, dtypes[i].storage) == 0)
				return VT_GLOBAL_DATA;
	return VT_GLOBAL_SYMBOL;
}

int vt_pth_is_object_type(const struct vt_pk *v)
{
	return v && v->kind == VT_PK_GLOBAL && strcmp(v->u.global.name, "object") == 0 &&
	       (strcmp(v->u.global.module, "builtins") == 0 || strcmp(v->u.global.module, "__builtin__") == 0);
}

static int find_class(void *ctx, const char *module, const char *name, struct vt_err *err)
{
	size_t i;
	int d;

	(void)ctx;
	if (vt_pth_global_kind(module, name) == VT_GLOBAL_DANGEROUS)
		return vt_err_set(err, VT_EUNSAFE,
				  "global '%s.%s' is not allowed: it can run code or reach the system; vggtl never runs code from a file (see 'vggtl scan')",
				  module, name);
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(known[i].module, module) == 0 && strcmp(known[i].name, name) == 0)
			return known[i].tag;
	if (strcmp(module, "torch") == 0)
		for (d = 1; d < VT_QSCHEME_COUNT; d++)
			if (strcmp(name, vt_qscheme_names[d]) == 0)
				return T_QSCHEME + d;
	/* storage classes: torch.FloatStorage, torch.cuda.FloatStorage (the module is ignored,
	 * as torch's own loader does) */
	if (module_is(module, "torch"))
		for (d = 0; d < VT_DTYPE_COUNT; d++) {
			if (strcmp(name, dtypes[d].storage) == 0)
				return T_STORAGE + d;
			if (strcmp(module, "torch") == 0 && strcmp(name, dtypes[d].name) == 0)
				return T_DTYPE + d;
		}
	return T_SYMBOL;
}

/* ---- persistent_load: storages -------------------------------------------------------- */

static int storage_class_dtype(const struct vt_pk *cls)
{
	if (!cls || cls->kind != VT_PK_GLOBAL)
		return -1;
	if (cls->u.global.tag >= T_STORAGE && cls->u.global.tag < T_STORAGE + VT_DTYPE_COUNT)
		return cls->u.global.tag - T_STORAGE;
	if (cls->u.global.tag == T_UNTYPED_STORAGE)
		return VT_U8;
	return -1;
}

static size_t key_hash(const char *key)
{
	size_t h = 1469598103934665603u; /* FNV-1a */

	while (*key)
		h = (h ^ (unsigned char)*key++) * 1099511628211u;
	return h;
}

/* The slot of key in the hash index: where it is, or the empty one where it would go. */
static size_t *storage_slot(const struct vt_pth *pth, const char *key)
{
	size_t i = key_hash(key) & (pth->nslots - 1);

	while (pth->slots[i] && strcmp(pth->storages[pth->slots[i] - 1]->key, key) != 0)
		i = (i + 1) & (pth->nslots - 1);
	return &pth->slots[i];
}

static int add_storage(struct vt_pth *pth, struct vt_storage *s, struct vt_err *err)
{
	size_t i;

	if (pth->nstorages == pth->storages_cap) {
		size_t ncap = pth->storages_cap ? pth->storages_cap * 2 : 64;
		struct vt_storage **p = realloc(pth->storages, ncap * sizeof(*p));
		size_t *slots = calloc(2 * ncap, sizeof(*slots)); /* at most half full */
		if (!p || !slots) {
			free(slots);
			if (p)
				pth->storages = p;
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		}
		pth->storages = p;
		pth->storages_cap = ncap;
		free(pth->slots);
		pth->slots = slots;
		pth->nslots = 2 * ncap;
		for (i = 0; i < pth->nstorages; i++)
			*storage_slot(pth, pth->storages[i]->key) = i + 1;
	}
	pth->storages[pth->nstorages++] = s;
	*storage_slot(pth, s->key) = pth->nstorages;
	return 0;
}

static struct vt_storage *find_storage(struct vt_pth *pth, const char *key)
{
	size_t slot;

	if (!pth->nslots)
		return NULL;
	slot = *storage_slot(pth, key);
	return slot ? pth->storages[slot - 1] : NULL;
}

static char *arena_strdup(struct vt_unpickler *u, const char *s, size_t n)
{
	char *p = vt_arena_alloc(&u->arena, n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static int persistent_load(void *ctx, struct vt_unpickler *u, struct vt_pk *pid, struct vt_pk **out,
			   struct vt_err *err)
{
	struct vt_pth *pth = ctx;
	struct vt_pk **it;
	struct vt_storage *s;
	int n = vt_pk_seq_len(pid), dtype;
	const char *key;

	if (pid->kind != VT_PK_TUPLE || n < 1)
		return vt_err_set(err, VT_EFORMAT, "persistent id is not a tuple");
	it = pid->u.seq.items;
	if (vt_pk_is_str(it[0], "module") && n == 4) {
		*out = it[1]; /* legacy whole-model files: the class, first time it is met */
		if (it[1]->kind != VT_PK_GLOBAL)
			return vt_err_set(err, VT_EFORMAT, "module persistent id without a class");
		return 0;
	}
	if (!vt_pk_is_str(it[0], "storage") || (n != 5 && n != 6))
		return vt_err_set(err, VT_EFORMAT, "persistent id is not ('storage', class, key, location, numel[, view])");
	dtype = storage_class_dtype(it[1]);
	if (dtype < 0)
		return vt_err_set(err, VT_EFORMAT, "persistent id names no storage class");
	if (it[2]->kind != VT_PK_STR || it[3]->kind != VT_PK_STR || it[4]->kind != VT_PK_INT || it[4]->u.i < 0)
		return vt_err_set(err, VT_EFORMAT, "persistent id has a bad key, location or size");
	if (n == 6 && it[5]->kind != VT_PK_NONE &&
	    (vt_pk_seq_len(it[5]) != 3 || it[5]->u.seq.items[0]->kind != VT_PK_STR ||
	     it[5]->u.seq.items[1]->kind != VT_PK_INT || it[5]->u.seq.items[2]->kind != VT_PK_INT ||
	     it[5]->u.seq.items[1]->u.i < 0 || it[5]->u.seq.items[2]->u.i < 0 || pth->is_zip))
		return vt_err_set(err, VT_EFORMAT, "persistent id has a view that is not (key, offset, size)");
	key = it[2]->u.str.s;
	s = find_storage(pth, key);
	if (s) {
		if (s->dtype != dtype || s->numel != (uint64_t)it[4]->u.i)
			return vt_err_set(err, VT_EFORMAT, "storage '%s' is declared twice with different types or sizes", key);
	} else {
		uint64_t numel = (uint64_t)it[4]->u.i;
		/* a legacy storage lies in the file; a zip record may be deflated, and is checked
		 * against its declared size below */
		if (!pth->is_zip && numel > pth->src.size / (uint64_t)dtypes[dtype].size + 1 && numel > 0)
			return vt_err_set(err, VT_EFORMAT,
					  "storage '%s' declares %llu elements, more than the %llu-byte file holds",
					  key, (unsigned long long)numel, (unsigned long long)pth->src.size);
		if (numel > (uint64_t)INT64_MAX / 16)
			return vt_err_set(err, VT_EFORMAT, "storage '%s' declares %llu elements", key,
					  (unsigned long long)numel);
		s = vt_arena_alloc(&u->arena, sizeof(*s));
		if (!s)
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		memset(s, 0, sizeof(*s));
		s->key = arena_strdup(u, key, it[2]->u.str.len);
		s->location = arena_strdup(u, it[3]->u.str.s, it[3]->u.str.len);
		if (!s->key || !s->location)
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		s->dtype = dtype;
		s->numel = numel;
		s->src = VT_STORAGE_FILE;
		if (pth->is_zip) {
			char name[300];
			const struct vt_zip_entry *e;
			if (it[2]->u.str.len > 256)
				return vt_err_set(err, VT_EFORMAT, "storage key longer than 256 bytes");
			snprintf(name, sizeof(name), "data/%s", key);
			e = vt_zip_find(&pth->zip, name);
			if (!e)
				return vt_err_set(err, VT_EFORMAT, "storage '%s' has no record '%s/%s'", key,
						  pth->zip.prefix, name);
			if (e->size != vt_storage_nbytes(s))
				return vt_err_set(err, VT_EFORMAT,
						  "record '%s' has %llu bytes, storage '%s' needs %llu (%llu x %s)",
						  e->name, (unsigned long long)e->size, key,
						  (unsigned long long)vt_storage_nbytes(s), (unsigned long long)numel,
						  dtypes[dtype].name);
			s->entry = e;
			s->offset = e->data_offset;
			s->resolved = 1;
		}
		if (add_storage(pth, s, err))
			return err->code;
	}
	if (n == 6 && it[5]->kind != VT_PK_NONE) { /* pre-1.0: a slice of the storage */
		struct vt_pk **v = it[5]->u.seq.items;
		struct vt_storage *view = find_storage(pth, v[0]->u.str.s);
		uint64_t off = (uint64_t)v[1]->u.i, len = (uint64_t)v[2]->u.i;
		if (off > s->numel || len > s->numel - off)
			return vt_err_set(err, VT_EFORMAT, "storage view '%s' reaches past storage '%s'", v[0]->u.str.s, key);
		if (view && (view->base != s || view->base_off != off || view->numel != len))
			return vt_err_set(err, VT_EFORMAT, "storage view '%s' is declared twice differently", v[0]->u.str.s);
		if (!view) {
			view = vt_arena_alloc(&u->arena, sizeof(*view));
			if (!view)
				return vt_err_set(err, VT_ENOMEM, "out of memory");
			*view = *s;
			view->key = arena_strdup(u, v[0]->u.str.s, v[0]->u.str.len);
			if (!view->key)
				return vt_err_set(err, VT_ENOMEM, "out of memory");
			view->base = s;
			view->base_off = off;
			view->numel = len;
			view->resolved = 0;
			if (add_storage(pth, view, err))
				return err->code;
		}
		s = view;
	}
	*out = vt_pk_ext(u, VT_EXT_STORAGE, s);
	return *out ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
}

/* ---- reduce: tensor rebuilders and containers ----------------------------------------- */

static int int_tuple(const struct vt_pk *v, int64_t *out, int *n, const char *what, struct vt_err *err)
{
	size_t i;

	if (!v || v->kind != VT_PK_TUPLE)
		return vt_err_set(err, VT_EFORMAT, "tensor %s is not a tuple", what);
	if (v->u.seq.n > VT_MAX_DIMS)
		return vt_err_set(err, VT_EUNSUPPORTED, "tensor with %zu dimensions (at most %d)", v->u.seq.n,
				  VT_MAX_DIMS);
	for (i = 0; i < v->u.seq.n; i++) {
		const struct vt_pk *x = v->u.seq.items[i];
		if (x->kind != VT_PK_INT || x->u.i < 0)
			return vt_err_set(err, VT_EFORMAT, "tensor %s holds a value that is not a size", what);
		out[i] = x->u.i;
	}
	*n = (int)v->u.seq.n;
	return 0;
}

/* Checks that offset/size/stride stay inside the storage, without overflow. */
static int check_bounds(const struct vt_tensor *t, struct vt_err *err)
{
	uint64_t last = (uint64_t)t->offset, numel = t->storage->numel;
	int i;

	for (i = 0; i < t->ndim; i++)
		if (t->size[i] == 0)
			return 0; /* empty: touches nothing */
	for (i = 0; i < t->ndim; i++) {
		uint64_t span;
		if (__builtin_mul_overflow((uint64_t)(t->size[i] - 1), (uint64_t)t->stride[i], &span) ||
		    __builtin_add_overflow(last, span, &last))
			return vt_err_set(err, VT_EFORMAT, "tensor on storage '%s' has sizes that overflow",
					  t->storage->key);
	}
	if (last >= numel)
		return vt_err_set(err, VT_EFORMAT,
				  "tensor on storage '%s' reaches element %llu, past the storage's %llu elements",
				  t->storage->key, (unsigned long long)last, (unsigned long long)numel);
	return 0;
}

static int rebuild_tensor(struct vt_unpickler *u, struct vt_pk **a, size_t n, int dtype,
			  struct vt_pk **out, struct vt_err *err)
{
	struct vt_storage *s = n >= 4 ? pk_storage(a[0]) : NULL; /* a is NULL for () */
	struct vt_tensor *t;
	int nstride = 0, rc;

	if (!s || a[1]->kind != VT_PK_INT || a[1]->u.i < 0)
		return vt_err_set(err, VT_EFORMAT, "tensor rebuild with bad arguments");
	t = vt_arena_alloc(&u->arena, sizeof(*t));
	if (!t)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	memset(t, 0, sizeof(*t));
	t->storage = s;
	t->offset = a[1]->u.i;
	if ((rc = int_tuple(a[2], t->size, &t->ndim, "size", err)) ||
	    (rc = int_tuple(a[3], t->stride, &nstride, "stride", err)))
		return rc;
	if (nstride != t->ndim)
		return vt_err_set(err, VT_EFORMAT, "tensor has %d sizes but %d strides", t->ndim, nstride);
	if (dtype >= 0) {
		/* _rebuild_tensor_v3: an untyped (byte) storage viewed as dtype */
		uint64_t es = (uint64_t)dtypes[dtype].size;
		if (s->dtype != VT_U8 && s->dtype != dtype)
			return vt_err_set(err, VT_EFORMAT, "tensor of %s on a %s storage", dtypes[dtype].name,
					  dtypes[s->dtype].name);
		if (s->dtype == VT_U8 && dtype != VT_U8) {
			if (s->numel % es)
				return vt_err_set(err, VT_EFORMAT, "storage '%s' is not a whole number of %s", s->key,
						  dtypes[dtype].name);
			s->numel /= es;
			s->dtype = dtype;
		}
	}
	t->dtype = s->dtype;
	if (n >= 5 && a[4]->kind == VT_PK_BOOL)
		t->requires_grad = a[4]->u.b;
	if ((rc = check_bounds(t, err)))
		return rc;
	*out = vt_pk_ext(u, VT_EXT_TENSOR, t);
	return *out ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
}

static int is_size_tuple(const struct vt_pk *v)
{
	size_t i;

	if (!v || v->kind != VT_PK_TUPLE || v->u.seq.n > VT_MAX_DIMS)
		return 0;
	for (i = 0; i < v->u.seq.n; i++)
		if (v->u.seq.items[i]->kind != VT_PK_INT || v->u.seq.items[i]->u.i < 0)
			return 0;
	return 1;
}

/* _rebuild_qtensor(storage, offset, size, stride, quantizer_params, requires_grad, hooks):
 * quantizer_params is (qscheme, scale, zero_point) per tensor, (qscheme, scales,
 * zero_points, axis) per channel. */
static int rebuild_qtensor(struct vt_unpickler *u, struct vt_pk **a, size_t n, struct vt_pk **out,
			   struct vt_err *err)
{
	struct vt_pk **q;
	struct vt_tensor *t;
	int rc, qs, nq;

	if (n < 6 || (nq = vt_pk_seq_len(a[4])) < 1 || a[4]->u.seq.items[0]->kind != VT_PK_GLOBAL)
		return vt_err_set(err, VT_EFORMAT, "_rebuild_qtensor with bad arguments");
	q = a[4]->u.seq.items;
	qs = q[0]->u.global.tag - T_QSCHEME;
	if (qs < 1 || qs >= VT_QSCHEME_COUNT)
		return vt_err_set(err, VT_EFORMAT, "_rebuild_qtensor without a known qscheme");
	if ((rc = rebuild_tensor(u, a, n, -1, out, err)))
		return rc;
	t = vt_pk_tensor(*out);
	if (t->dtype != VT_QI8 && t->dtype != VT_QU8 && t->dtype != VT_QI32)
		return vt_err_set(err, VT_EFORMAT, "quantized tensor on a %s storage", dtypes[t->dtype].name);
	t->qscheme = qs;
	t->requires_grad = a[5]->kind == VT_PK_BOOL && a[5]->u.b;
	if (qs == VT_QSCHEME_PER_TENSOR_AFFINE || qs == VT_QSCHEME_PER_TENSOR_SYMMETRIC) {
		if (nq != 3 || (q[1]->kind != VT_PK_FLOAT && q[1]->kind != VT_PK_INT) || q[2]->kind != VT_PK_INT)
			return vt_err_set(err, VT_EFORMAT, "per-tensor quantizer is not (qscheme, scale, zero_point)");
		t->q_scale = q[1]->kind == VT_PK_FLOAT ? q[1]->u.f : (double)q[1]->u.i;
		t->q_zero_point = q[2]->u.i;
		return 0;
	}
	if (nq != 4 || !vt_pk_tensor(q[1]) || !vt_pk_tensor(q[2]) || q[3]->kind != VT_PK_INT || q[3]->u.i < 0 ||
	    q[3]->u.i >= (t->ndim ? t->ndim : 1))
		return vt_err_set(err, VT_EFORMAT, "per-channel quantizer is not (qscheme, scales, zero_points, axis)");
	t->q_scales = vt_pk_tensor(q[1]);
	t->q_zero_points = vt_pk_tensor(q[2]);
	/* as torch has them: plain float and int64 tensors (a quantized one would nest, and a
	 * writer would copy the nest once per reference) */
	if (t->q_scales->qscheme || t->q_zero_points->qscheme ||
	    (t->q_scales->dtype != VT_F64 && t->q_scales->dtype != VT_F32) ||
	    (t->q_zero_points->dtype != VT_I64 && t->q_zero_points->dtype != VT_I32 && t->q_zero_points->dtype != VT_F32 &&
	     t->q_zero_points->dtype != VT_F64))
		return vt_err_set(err, VT_EFORMAT, "per-channel quantizer scales or zero points that are not plain tensors");
	t->q_axis = q[3]->u.i;
	return 0;
}

/* ---- numpy values ------------------------------------------------------------------------ */

static struct vt_np_dtype *pk_np_dtype(const struct vt_pk *v)
{
	return v && v->kind == VT_PK_EXT && v->u.ext.type == VT_EXT_NP_DTYPE ? v->u.ext.p : NULL;
}

const char *vt_np_dtype_name(const struct vt_np_dtype *d, char *buf, size_t size)
{
	const char *k = d->kind == 'f' ? "float" : d->kind == 'i' ? "int" : d->kind == 'u' ? "uint" :
			d->kind == 'c' ? "complex" : NULL;

	if (d->kind == 'b')
		snprintf(buf, size, "bool");
	else if (k)
		snprintf(buf, size, "%s%d", k, d->size * 8);
	else
		return NULL;
	return buf;
}

/* numpy.dtype('f8', False, True): the type string; BUILD later sets the byte order. */
static int np_dtype(struct vt_unpickler *u, struct vt_pk **a, size_t n, struct vt_pk **out, struct vt_err *err)
{
	struct vt_np_dtype *d = vt_arena_alloc(&u->arena, sizeof(*d));
	const char *t;
	char *end;
	long size;

	if (!d)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	memset(d, 0, sizeof(*d));
	d->order = '=';
	if (n < 1 || a[0]->kind != VT_PK_STR)
		return vt_err_set(err, VT_EFORMAT, "numpy.dtype without a type string");
	t = a[0]->u.str.s;
	if (*t == '<' || *t == '>' || *t == '|' || *t == '=')
		d->order = *t++;
	if (strchr("fiubc?", *t) && *t) {
		d->kind = *t == '?' ? 'b' : *t;
		size = *t == '?' ? 1 : strtol(t + 1, &end, 10);
		if (*t != '?' && (*end || size <= 0 || size > 16))
			d->kind = 0;
		else
			d->size = (int)size;
	}
	*out = vt_pk_ext(u, VT_EXT_NP_DTYPE, d);
	return *out ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
}

static int le_host(char order)
{
	return order != '>';
}

/* numpy.core.multiarray.scalar(dtype, bytes): a number. */
static int np_scalar(struct vt_unpickler *u, struct vt_pk *fn, struct vt_pk *args, struct vt_pk **out,
		     struct vt_err *err)
{
	struct vt_pk **a = args->u.seq.items;
	struct vt_np_dtype *d = args->u.seq.n == 2 ? pk_np_dtype(a[0]) : NULL;
	unsigned char b[16];
	uint64_t bits = 0;
	int i;

	if (!d || (a[1]->kind != VT_PK_BYTES && a[1]->kind != VT_PK_STR) || !d->kind || d->kind == 'c' ||
	    a[1]->u.str.len != (size_t)d->size || d->size > 8) {
		*out = vt_pk_call(u, fn, args); /* not a number we know: kept as a call record */
		return *out ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	memcpy(b, a[1]->u.str.s, (size_t)d->size);
	for (i = 0; i < d->size; i++)
		bits |= (uint64_t)b[le_host(d->order) ? i : d->size - 1 - i] << (8 * i);
	if (d->kind == 'b') {
		*out = vt_pk_new(u, VT_PK_BOOL);
		if (*out)
			(*out)->u.b = bits != 0;
	} else if (d->kind == 'f') {
		*out = vt_pk_new(u, VT_PK_FLOAT);
		if (*out && d->size == 8)
			memcpy(&(*out)->u.f, &bits, 8);
		else if (*out && d->size == 4) {
			uint32_t w = (uint32_t)bits;
			float f;
			memcpy(&f, &w, 4);
			(*out)->u.f = f;
		} else if (*out) {
			(*out)->u.f = vt_half_to_float((uint16_t)bits);
		}
	} else {
		*out = vt_pk_new(u, VT_PK_INT);
		if (*out) {
			if (d->kind == 'i' && d->size < 8 && (bits >> (8 * d->size - 1)) & 1)
				bits |= ~(uint64_t)0 << (8 * d->size); /* sign-extend */
			(*out)->u.i = (int64_t)bits;
		}
	}
	return *out ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
}

/* _codecs.encode(text, 'latin1'): how Python 3 pickles bytes for protocol 2. */
static int codecs_encode(struct vt_unpickler *u, struct vt_pk *fn, struct vt_pk *args, struct vt_pk **out,
			 struct vt_err *err)
{
	struct vt_pk **a = args->u.seq.items;
	const unsigned char *p;
	size_t i, n = 0;
	int latin1;

	if (args->u.seq.n < 1 || a[0]->kind != VT_PK_STR) {
		*out = vt_pk_call(u, fn, args);
		return *out ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	latin1 = args->u.seq.n >= 2 && (vt_pk_is_str(a[1], "latin1") || vt_pk_is_str(a[1], "latin-1") ||
					vt_pk_is_str(a[1], "iso-8859-1"));
	*out = vt_pk_new(u, VT_PK_BYTES);
	if (!*out || !((*out)->u.str.s = vt_arena_alloc(&u->arena, a[0]->u.str.len + 1)))
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	p = (const unsigned char *)a[0]->u.str.s;
	for (i = 0; i < a[0]->u.str.len; i++) {
		unsigned c = p[i];
		if (latin1 && c >= 0xc0 && c < 0xc4 && i + 1 < a[0]->u.str.len) /* U+0080..U+00FF */
			c = ((c & 0x1f) << 6) | (p[++i] & 0x3f);
		else if (latin1 && c >= 0x80)
			return vt_err_set(err, VT_EFORMAT, "_codecs.encode: text is not latin-1");
		(*out)->u.str.s[n++] = (char)c;
	}
	(*out)->u.str.s[n] = '\0';
	(*out)->u.str.len = n;
	return 0;
}

/* numpy.core.multiarray._reconstruct(ndarray, (0,), b'b'): an empty array; BUILD fills it. */
static int np_reconstruct(struct vt_unpickler *u, struct vt_pk **out, struct vt_err *err)
{
	struct vt_np_array *arr = vt_arena_alloc(&u->arena, sizeof(*arr));

	if (!arr)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	memset(arr, 0, sizeof(*arr));
	*out = vt_pk_ext(u, VT_EXT_NP_ARRAY, arr);
	return *out ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
}

/* ndarray.__setstate__((version, shape, dtype, is_fortran, data)) */
static int np_array_state(struct vt_np_array *arr, const struct vt_pk *st, struct vt_err *err)
{
	struct vt_pk **a;
	struct vt_np_dtype *d;
	uint64_t numel = 1;
	int i, n = vt_pk_seq_len(st);

	if (n != 5 || st->kind != VT_PK_TUPLE)
		return vt_err_set(err, VT_EFORMAT, "numpy array state is not (version, shape, dtype, fortran, data)");
	a = st->u.seq.items;
	d = pk_np_dtype(a[2]);
	if (!is_size_tuple(a[1]) || !d)
		return vt_err_set(err, VT_EFORMAT, "numpy array state has a bad shape or dtype");
	arr->dtype = *d;
	arr->ndim = (int)a[1]->u.seq.n;
	for (i = 0; i < arr->ndim; i++) {
		arr->shape[i] = a[1]->u.seq.items[i]->u.i;
		if (__builtin_mul_overflow(numel, (uint64_t)arr->shape[i], &numel))
			return vt_err_set(err, VT_EFORMAT, "numpy array shape overflows");
	}
	arr->fortran = a[3]->kind == VT_PK_BOOL && a[3]->u.b;
	if (a[4]->kind == VT_PK_BYTES || a[4]->kind == VT_PK_STR) {
		if (d->kind && (numel > SIZE_MAX / (uint64_t)d->size || a[4]->u.str.len != numel * (uint64_t)d->size))
			return vt_err_set(err, VT_EFORMAT, "numpy array data has %zu bytes, not %llu x %d",
					  a[4]->u.str.len, (unsigned long long)numel, d->size);
		arr->data = (const unsigned char *)a[4]->u.str.s;
		arr->nbytes = a[4]->u.str.len;
	}
	return 0;
}

/* ---- reduce: the callables that become data ------------------------------------------------ */

static int new_container(struct vt_unpickler *u, enum vt_pk_kind kind, struct vt_pk **out, struct vt_err *err)
{
	*out = vt_pk_new(u, kind);
	return *out ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
}

static int reduce(void *ctx, struct vt_unpickler *u, struct vt_pk *fn, struct vt_pk *args,
		  struct vt_pk **out, struct vt_err *err)
{
	struct vt_pk **a = args->u.seq.items;
	size_t n = args->u.seq.n, i;
	int tag = fn->u.global.tag, rc;

	switch (tag) {
	case T_ORDEREDDICT:
	case T_COUNTER:
		if ((rc = new_container(u, VT_PK_DICT, out, err)))
			return rc;
		(*out)->u.dict.ordered = tag == T_ORDEREDDICT;
		if (n == 1 && a[0]->kind == VT_PK_LIST) { /* OrderedDict([(k, v), ...]) */
			struct vt_pk *items = a[0];
			for (i = 0; i < items->u.seq.n; i++) {
				struct vt_pk *kv = items->u.seq.items[i];
				if (vt_pk_seq_len(kv) != 2)
					return vt_err_set(err, VT_EFORMAT, "OrderedDict item is not a pair");
				if (vt_pk_dict_set(u, *out, kv->u.seq.items[0], kv->u.seq.items[1]))
					return vt_err_set(err, VT_ENOMEM, "out of memory");
			}
		} else if (n == 1 && a[0]->kind == VT_PK_DICT) { /* Counter({...}), OrderedDict({...}) */
			(*out)->u.dict = a[0]->u.dict;
			(*out)->u.dict.cap = (*out)->u.dict.n; /* a later SETITEM reallocates: no shared slots */
			(*out)->u.dict.attrs = NULL;
			(*out)->u.dict.ordered = tag == T_ORDEREDDICT;
		} else if (n != 0) {
			return vt_err_set(err, VT_EFORMAT, "%s called with unexpected arguments", fn->u.global.name);
		}
		return 0;
	case T_DEFAULTDICT: /* defaultdict(factory): the items follow by SETITEMS */
		return new_container(u, VT_PK_DICT, out, err);
	case T_SET:
	case T_FROZENSET:
		if ((rc = new_container(u, VT_PK_SET, out, err)))
			return rc;
		if (n == 1 && (a[0]->kind == VT_PK_LIST || a[0]->kind == VT_PK_TUPLE)) {
			(*out)->u.seq = a[0]->u.seq;
			(*out)->u.seq.cap = (*out)->u.seq.n; /* ADDITEMS reallocates: no shared slots */
		}
		return 0;
	case T_BYTEARRAY:
		if (n == 1 && a[0]->kind == VT_PK_BYTES) {
			*out = a[0];
			return 0;
		}
		if (n >= 1 && a[0]->kind == VT_PK_STR) /* bytearray(text, 'latin-1') */
			return codecs_encode(u, fn, args, out, err);
		return new_container(u, VT_PK_BYTES, out, err);
	case T_RECONSTRUCTOR: /* copyreg._reconstructor(cls, base, state) */
	case T_NEWOBJ:        /* copyreg.__newobj__(cls, *args) */
		/* Python runs base.__new__ and base.__init__(obj, state): inert only for object */
		if (tag == T_RECONSTRUCTOR && !(n == 3 && vt_pth_is_object_type(a[1])))
			break;
		if (n >= 1 && a[0]->kind == VT_PK_GLOBAL) {
			*out = vt_pk_new(u, VT_PK_OBJECT);
			if (!*out)
				return vt_err_set(err, VT_ENOMEM, "out of memory");
			(*out)->u.obj.cls = a[0];
			(*out)->u.obj.args = args;
			return 0;
		}
		break;
	case T_CODECS_ENCODE:
		return codecs_encode(u, fn, args, out, err);
	case T_JIT_IDENTITY:
		if (n >= 1) {
			*out = a[0];
			return 0;
		}
		break;
	case T_NP_SCALAR:
		return np_scalar(u, fn, args, out, err);
	case T_NP_DTYPE:
		return np_dtype(u, a, n, out, err);
	case T_NP_RECONSTRUCT:
		return np_reconstruct(u, out, err);
	case T_REBUILD_V1:
	case T_REBUILD_V2:
		return rebuild_tensor(u, a, n, -1, out, err);
	case T_REBUILD_V3:
		if (n < 7 || a[6]->kind != VT_PK_GLOBAL || a[6]->u.global.tag < T_DTYPE ||
		    a[6]->u.global.tag >= T_DTYPE + VT_DTYPE_COUNT)
			return vt_err_set(err, VT_EFORMAT, "_rebuild_tensor_v3 without a known dtype");
		return rebuild_tensor(u, a, n, a[6]->u.global.tag - T_DTYPE, out, err);
	case T_REBUILD_QTENSOR:
		return rebuild_qtensor(u, a, n, out, err);
	case T_REBUILD_PARAM:
	case T_REBUILD_PARAM_STATE: {
		struct vt_tensor *t = n >= 2 ? vt_pk_tensor(a[0]) : NULL;
		if (!t || a[1]->kind != VT_PK_BOOL)
			return vt_err_set(err, VT_EFORMAT, "_rebuild_parameter of something that is not a tensor");
		t->requires_grad = a[1]->u.b;
		t->is_param = 1;
		*out = a[0];
		return 0;
	}
	case T_REBUILD_FROM_TYPE: /* (func, type, args, state): the plain tensor is func(*args) */
		if (n != 4 || a[0]->kind != VT_PK_GLOBAL || a[2]->kind != VT_PK_TUPLE)
			return vt_err_set(err, VT_EFORMAT, "_rebuild_from_type_v2 with bad arguments");
		/* torch calls func: only its own tensor rebuilders are data here (and never itself,
		 * whose recursion would be unbounded); anything else is the call torch would make */
		if (a[0]->u.global.tag != T_REBUILD_V1 && a[0]->u.global.tag != T_REBUILD_V2 &&
		    a[0]->u.global.tag != T_REBUILD_V3 && a[0]->u.global.tag != T_REBUILD_QTENSOR &&
		    a[0]->u.global.tag != T_REBUILD_PARAM && a[0]->u.global.tag != T_REBUILD_PARAM_STATE)
			break;
		return reduce(ctx, u, a[0], a[2], out, err);
	case T_SIZE:
		if (n == 1 && a[0]->kind == VT_PK_TUPLE) {
			*out = a[0];
			return 0;
		}
		return vt_err_set(err, VT_EFORMAT, "torch.Size with bad arguments");
	case T_DEVICE:
		if (n >= 1 && a[0]->kind == VT_PK_STR) {
			*out = a[0];
			return 0;
		}
		return vt_err_set(err, VT_EFORMAT, "torch.device with bad arguments");
	default:
		break;
	}
	/* any other callable: an inert record of the call */
	*out = vt_pk_call(u, fn, args);
	return *out ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
}

static int build_ext(void *ctx, struct vt_unpickler *u, struct vt_pk *obj, struct vt_pk *state,
		     struct vt_err *err)
{
	(void)ctx;
	(void)u;
	switch (obj->u.ext.type) {
	case VT_EXT_TENSOR:
		/* Tensor.__setstate__ / Parameter state: python attributes on a tensor; nothing to keep */
		return 0;
	case VT_EXT_NP_DTYPE: { /* (version, byteorder, subarray, names, fields, elsize, alignment, flags) */
		struct vt_np_dtype *d = obj->u.ext.p;
		if (vt_pk_seq_len(state) >= 2 && state->u.seq.items[1]->kind == VT_PK_STR &&
		    state->u.seq.items[1]->u.str.len == 1)
			d->order = state->u.seq.items[1]->u.str.s[0];
		return 0;
	}
	case VT_EXT_NP_ARRAY:
		return np_array_state(obj->u.ext.p, state, err);
	default:
		return vt_err_set(err, VT_EFORMAT, "BUILD on a storage");
	}
}

static const struct vt_pk_hooks torch_hooks = { find_class, persistent_load, reduce, build_ext, NULL };

/* ---- containers ----------------------------------------------------------------------- */

static int open_zip(struct vt_pth *pth, struct vt_err *err)
{
	const struct vt_zip_entry *pkl, *e;
	unsigned char *buf = NULL;
	struct vt_src mem;
	uint64_t pos = 0;
	int rc;

	if ((rc = vt_zip_open(&pth->zip, &pth->src, err)))
		return rc;
	pth->is_zip = 1;
	/* TorchScript (torch.jit.save): data.pkl holds the module's __torch__ objects, whose
	 * tensors are stored as torch.save's; constants.pkl and code/ are left alone */
	pth->is_torchscript = vt_zip_find(&pth->zip, "constants.pkl") != NULL;
	e = vt_zip_find(&pth->zip, "byteorder");
	if (e) {
		if ((rc = vt_zip_read(&pth->zip, e, 16, &buf, err)))
			return rc;
		rc = strcmp((char *)buf, "little") == 0 ? 0 :
			vt_err_set(err, VT_EUNSUPPORTED, "byte order '%.16s' (only little-endian files are supported)", buf);
		free(buf);
		if (rc)
			return rc;
	}
	e = vt_zip_find(&pth->zip, ".data/version");
	if (!e)
		e = vt_zip_find(&pth->zip, "version");
	if (e) {
		long v;
		if ((rc = vt_zip_read(&pth->zip, e, 64, &buf, err)))
			return rc;
		v = strtol((char *)buf, NULL, 10);
		free(buf);
		if (v < 1 || v > 10)
			return vt_err_set(err, VT_EUNSUPPORTED, "format version %ld (1 to 10 are readable)", v);
	}
	pkl = vt_zip_find(&pth->zip, "data.pkl");
	if (!pkl)
		return vt_err_set(err, VT_EFORMAT, "zip archive has no '%s/data.pkl' record: not a torch.save file",
				  pth->zip.prefix);
	if ((rc = vt_zip_read(&pth->zip, pkl, 1u << 28, &buf, err)))
		return rc;
	vt_src_mem(&mem, buf, (size_t)pkl->size, "data.pkl");
	rc = vt_unpickle(&pth->up, &mem, &pos, &pth->root, err);
	free(buf);
	if (rc)
		return vt_err_prefix(err, "data.pkl");
	return 0;
}

static const unsigned char legacy_magic[15] = {
	0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e
};

static int open_legacy(struct vt_pth *pth, struct vt_err *err)
{
	unsigned char head[sizeof(legacy_magic)];
	struct vt_pk *v, *keys;
	uint64_t pos = sizeof(legacy_magic);
	size_t i;
	int rc;

	if (pth->src.size < sizeof(head) || vt_src_read(&pth->src, 0, head, sizeof(head), err) ||
	    memcmp(head, legacy_magic, sizeof(head)) != 0)
		return vt_err_set(err, VT_EFORMAT,
				  "not a torch.save file: neither a zip archive nor a legacy stream (bad magic number)");
	if ((rc = vt_unpickle(&pth->up, &pth->src, &pos, &v, err)))
		return rc;
	if (v->kind != VT_PK_INT || v->u.i != 1001)
		return vt_err_set(err, VT_EUNSUPPORTED, "legacy protocol version is not 1001");
	if ((rc = vt_unpickle(&pth->up, &pth->src, &pos, &v, err))) /* sys_info */
		return rc;
	if (v->kind == VT_PK_DICT) {
		struct vt_pk *le = vt_pk_dict_get(v, "little_endian");
		if (le && le->kind == VT_PK_BOOL && !le->u.b)
			return vt_err_set(err, VT_EUNSUPPORTED, "big-endian legacy file");
	}
	if ((rc = vt_unpickle(&pth->up, &pth->src, &pos, &pth->root, err)) ||
	    (rc = vt_unpickle(&pth->up, &pth->src, &pos, &keys, err)))
		return rc;
	if (keys->kind != VT_PK_LIST)
		return vt_err_set(err, VT_EFORMAT, "legacy storage key list is not a list");
	for (i = 0; i < keys->u.seq.n; i++) {
		struct vt_pk *k = keys->u.seq.items[i];
		struct vt_storage *s = k->kind == VT_PK_STR ? find_storage(pth, k->u.str.s) : NULL;
		unsigned char nb[8];
		uint64_t numel = 0;
		int j;
		if (!s || s->base)
			return vt_err_set(err, VT_EFORMAT, "legacy key list names a storage the object does not use");
		if (s->resolved)
			return vt_err_set(err, VT_EFORMAT, "legacy key list names storage '%s' twice", s->key);
		if ((rc = vt_src_read(&pth->src, pos, nb, 8, err)))
			return vt_err_prefix(err, "legacy storage '%s'", s->key);
		for (j = 7; j >= 0; j--)
			numel = (numel << 8) | nb[j];
		if (numel != s->numel)
			return vt_err_set(err, VT_EFORMAT, "legacy storage '%s' at offset %llu has %llu elements, expected %llu",
					  s->key, (unsigned long long)pos, (unsigned long long)numel,
					  (unsigned long long)s->numel);
		s->offset = pos + 8;
		if (vt_storage_nbytes(s) > pth->src.size - s->offset)
			return vt_err_set(err, VT_EFORMAT, "legacy storage '%s' runs past the end of the file", s->key);
		s->resolved = 1;
		pos = s->offset + vt_storage_nbytes(s);
	}
	for (i = 0; i < pth->nstorages; i++) {
		struct vt_storage *s = pth->storages[i];
		if (s->base && s->base->resolved) { /* views: bounds were checked against the base */
			s->offset = s->base->offset + s->base_off * (uint64_t)dtypes[s->dtype].size;
			s->resolved = 1;
		}
		if (!s->resolved)
			return vt_err_set(err, VT_EFORMAT, "legacy storage '%s' is missing from the key list", s->key);
	}
	return 0;
}

/* A safetensors file as the state_dict it holds: a dict in header order of tensors, each
 * contiguous on a storage of its own (keyed by its name) at its bytes in the file. */
static int open_safetensors(struct vt_pth *pth, struct vt_err *err)
{
	struct vt_unpickler *u = &pth->up;
	struct vt_st_header h;
	size_t i;
	int rc = vt_st_read_header(&h, &pth->src, err);

	pth->is_safetensors = 1;
	if (rc == 0 && !(pth->root = vt_pk_new(u, VT_PK_DICT)))
		rc = vt_err_set(err, VT_ENOMEM, "out of memory");
	if (rc == 0)
		pth->root->u.dict.ordered = 1;
	for (i = 0; i < h.n && rc == 0; i++) {
		const struct vt_st_entry *e = &h.t[i];
		struct vt_storage *s = vt_arena_alloc(&u->arena, sizeof(*s));
		struct vt_tensor *t = vt_arena_alloc(&u->arena, sizeof(*t));
		struct vt_pk *k = vt_pk_new(u, VT_PK_STR), *v = t ? vt_pk_ext(u, VT_EXT_TENSOR, t) : NULL;
		size_t len = strlen(e->name);
		int64_t stride = 1;
		int d;
		if (s)
			memset(s, 0, sizeof(*s));
		if (!s || !t || !k || !v || !(k->u.str.s = arena_strdup(u, e->name, len)) ||
		    !(s->location = arena_strdup(u, "cpu", 3))) {
			rc = vt_err_set(err, VT_ENOMEM, "out of memory");
			break;
		}
		k->u.str.len = len;
		memset(t, 0, sizeof(*t));
		s->key = k->u.str.s;
		s->dtype = e->dtype;
		s->numel = 1;
		s->src = VT_STORAGE_FILE;
		s->entry = NULL;
		s->offset = h.data_start + e->begin;
		s->resolved = 1;
		t->storage = s;
		t->dtype = e->dtype;
		t->ndim = e->ndim;
		t->qscheme = VT_QSCHEME_NONE;
		for (d = e->ndim - 1; d >= 0; d--) { /* C order; a size of 0 strides as 1, as torch's */
			t->size[d] = e->shape[d];
			t->stride[d] = stride;
			s->numel *= (uint64_t)e->shape[d];
			if (e->shape[d] > 1 && stride > INT64_MAX / e->shape[d]) {
				rc = vt_err_set(err, VT_EUNSUPPORTED, "safetensors: tensor '%s': strides overflow", e->name);
				break;
			}
			stride *= e->shape[d] ? e->shape[d] : 1;
		}
		if (rc == 0)
			rc = add_storage(pth, s, err);
		if (rc == 0)
			rc = vt_pk_dict_set(u, pth->root, k, v) ? vt_err_set(err, VT_ENOMEM, "out of memory") : 0;
	}
	vt_st_header_release(&h);
	return rc;
}

int vt_pth_open_src(struct vt_pth *pth, const struct vt_src *src, struct vt_err *err)
{
	memset(pth, 0, sizeof(*pth));
	pth->src = *src;
	vt_unpickler_init(&pth->up, &torch_hooks, pth);
	if (vt_zip_detect(src))
		return open_zip(pth, err);
	if (vt_st_detect(src))
		return open_safetensors(pth, err);
	return open_legacy(pth, err);
}

int vt_pth_open(struct vt_pth *pth, const char *path, struct vt_err *err)
{
	struct vt_src src;
	int rc = vt_src_open(&src, path, err);

	if (rc) {
		memset(pth, 0, sizeof(*pth));
		pth->src.fd = -1;
		return rc;
	}
	rc = vt_pth_open_src(pth, &src, err);
	pth->name = strdup(path);
	if (rc) {
		vt_err_prefix(err, "%s", path);
		vt_pth_close(pth);
	}
	return rc;
}

void vt_pth_close(struct vt_pth *pth)
{
	if (pth->name) /* opened by vt_pth_open: the source is ours */
		vt_src_close(&pth->src);
	vt_unpickler_release(&pth->up);
	vt_zip_release(&pth->zip);
	free(pth->storages);
	free(pth->slots);
	free(pth->name);
	memset(pth, 0, sizeof(*pth));
}

int vt_pth_verify(struct vt_pth *pth, struct vt_err *err)
{
	uint64_t i;
	int rc;

	if (!pth->is_zip)
		return 0; /* legacy streams carry no checksums; bounds were checked on open */
	for (i = 0; i < pth->zip.n; i++)
		if ((rc = vt_zip_verify(&pth->zip, &pth->zip.entries[i], err)))
			return rc;
	return 0;
}
