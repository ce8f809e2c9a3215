/* data.c - image classification data (see include/vt_data.h): CIFAR-10 in its binary and
 * python versions, as folders or as the .tar.gz archives the Toronto page serves; ImageFolder
 * trees of PNG and JPEG files, as folders or inside archives (decoding in data_png.c and
 * data_jpeg.c, resizing in resize.c, archives through libarchive in data_archive.c);
 * torchvision's transforms for batches.
 *
 * Formats (shared/research/anchors.md section 4):
 *  - binary: records of 1 label byte + 3072 pixel bytes (1024 R, then 1024 G, then 1024 B,
 *    each plane 32x32 row-major), no header; batches.meta.txt names the classes one per line.
 *  - python: Python 2 cPickle protocol-2 dicts {'batch_label', 'labels': [int],
 *    'data': numpy uint8 (N, 3072) in the same plane layout, 'filenames'}; batches.meta is
 *    {'label_names': [...], ...}.  Keys may be bytes (Python 2 str) or str (Python 3).  The
 *    array is rebuilt by the hooks below from numpy.core.multiarray._reconstruct (or
 *    numpy._core.multiarray, numpy 2), numpy.ndarray and numpy.dtype, the only globals allowed;
 *    only C-order uint8 arrays of one or two dimensions are accepted.
 *  - archives (.zip, .tar, .tar.gz, .tgz, .tar.xz; see data_archive.c for what is read and
 *    refused): streamed; only the members the split needs are held in memory, one at a time,
 *    then parsed or decoded.  CIFAR-10 members are found by their folder name anywhere in the
 *    archive; otherwise the archive holds an image tree <split>/<class>/... at its root or
 *    under its one top folder, ordered as the same tree on disk would be.
 *  - ImageFolder: root/<split>/<class>/[<subfolders>/]<name>.png|.jpg|.jpeg (extensions in
 *    any case, as torchvision's IMG_EXTENSIONS check), classes sorted by byte value, and a
 *    class's images in torchvision's order (folders by path, then file names); files without
 *    an image extension are ignored as torchvision does, other image formats (.bmp, .webp...)
 *    are refused rather than silently skipped.
 *
 * Train batches are every data_batch_N present, in order of N; test is test_batch.
 * Not supported: CIFAR-100 (two label bytes; fine/coarse labels), numpy pickles written by
 * Python 3 with protocol 2 (bytes through _codecs.encode) or protocol 5 (_frombuffer),
 * class folders straight at an archive's root without a <split>/ folder above them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "vt_data.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data_archive.h"

/* torchvision's constants, converted double -> float as torch.as_tensor(list) does */
const float vt_cifar10_mean[3] = { (float)0.4914, (float)0.4822, (float)0.4465 };
const float vt_cifar10_std[3] = { (float)0.2470, (float)0.2435, (float)0.2616 };
const float vt_imagenet_mean[3] = { (float)0.485, (float)0.456, (float)0.406 };
const float vt_imagenet_std[3] = { (float)0.229, (float)0.224, (float)0.225 };

enum {
	CIFAR_SIDE = 32,
	CIFAR_PIXELS = 3 * 32 * 32, /* 3072 */
	CIFAR_RECORD = 1 + CIFAR_PIXELS,
	MAX_CLASSES = 1000,
	MAX_NAME = 255,
	MAX_PARTS = 1000,
	MAX_IMAGES = 1 << 26,        /* 200 GB of CIFAR: far above anything real */
	MAX_META = 1 << 20,          /* batches.meta(.txt) */
	MAX_MEMBER = 256 << 20,      /* one archive member held in memory (a CIFAR batch is 31 MB) */
	MAX_SIZE = 4096,             /* image resize target */
	MAX_DEPTH = 16,              /* subfolders of a class folder (symlinks are followed) */
	MAX_DIRS = 1 << 16,          /* subfolders of one class folder, all levels */
	PAD = 4                      /* RandomCrop padding */
};

static const char not_found_hint[] =
	"expected cifar-10-batches-py/, cifar-10-batches-bin/, cifar-10-python.tar.gz, "
	"cifar-10-binary.tar.gz, an image folder <split>/<class>/*.png|jpg, or a .zip, .tar, .tar.gz, .tgz "
	"or .tar.xz archive of either";

/* ---- small helpers --------------------------------------------------------------------- */

/* "dir/name"; an empty part is left out ("" and "x" give "x"). */
static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name), sep = a && b;
	char *p = malloc(a + sep + b + 1);

	if (p) {
		memcpy(p, dir, a);
		if (sep)
			p[a] = '/';
		memcpy(p + a + sep, name, b + 1);
	}
	return p;
}

static char *dupn(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static int is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

struct names {
	char **v;
	size_t n, cap;
};

static int names_push(struct names *s, const char *name, size_t len)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? 2 * s->cap : 16;
		char **v = realloc(s->v, ncap * sizeof(*v));
		if (!v)
			return VT_ENOMEM;
		s->v = v;
		s->cap = ncap;
	}
	if (!(s->v[s->n] = dupn(name, len)))
		return VT_ENOMEM;
	s->n++;
	return 0;
}

static void names_free(struct names *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- batches: what one CIFAR file holds, before they are put in order ------------------- */

enum fmt { FMT_NONE, FMT_BIN, FMT_PY };

struct part {
	int order;             /* N of data_batch_N, 0 for test_batch */
	int n;                 /* images */
	unsigned char *pixels; /* n x 3072 (owned) */
	int64_t *labels;       /* n (owned) */
	char *name;            /* the file, for messages (owned) */
};

struct loader {
	const char *split;
	enum fmt fmt;
	struct part *parts;
	size_t nparts;
	struct names classes;  /* from batches.meta(.txt); empty when there is none */
};

static void part_free(struct part *p)
{
	free(p->pixels);
	free(p->labels);
	free(p->name);
	memset(p, 0, sizeof(*p));
}

static void loader_free(struct loader *L)
{
	size_t i;

	for (i = 0; i < L->nparts; i++)
		part_free(&L->parts[i]);
	free(L->parts);
	names_free(&L->classes);
	L->parts = NULL;
	L->nparts = 0;
}

static int part_alloc(struct part *p, uint64_t n, const char *name, struct vt_err *err)
{
	if (n == 0)
		return vt_err_set(err, VT_EFORMAT, "'%s' holds no images", name);
	if (n > MAX_IMAGES)
		return vt_err_set(err, VT_ENOMEM, "'%s' holds %llu images (at most %d)", name,
				  (unsigned long long)n, MAX_IMAGES);
	p->n = (int)n;
	p->pixels = malloc((size_t)n * CIFAR_PIXELS);
	p->labels = malloc((size_t)n * sizeof(*p->labels));
	if (!p->pixels || !p->labels)
		return vt_err_set(err, VT_ENOMEM, "out of memory for the %llu images of '%s'",
				  (unsigned long long)n, name);
	return 0;
}

/* What a file or archive member named base is to a split: a batch (with *order), the class
 * names, or nothing. */
enum { MEMBER_SKIP, MEMBER_BATCH, MEMBER_META };

static int member_kind(enum fmt fmt, const char *split, const char *base, int *order)
{
	const char *ext = fmt == FMT_BIN ? ".bin" : "";
	size_t n = strlen(base), el = strlen(ext), i;
	long v = 0;

	if (strcmp(base, fmt == FMT_BIN ? "batches.meta.txt" : "batches.meta") == 0)
		return MEMBER_META;
	if (n < el || strcmp(base + n - el, ext) != 0)
		return MEMBER_SKIP;
	n -= el;
	if (strcmp(split, "test") == 0) {
		*order = 0;
		return n == 10 && memcmp(base, "test_batch", 10) == 0 ? MEMBER_BATCH : MEMBER_SKIP;
	}
	if (n < 12 || n > 15 || memcmp(base, "data_batch_", 11) != 0 || base[11] == '0')
		return MEMBER_SKIP;
	for (i = 11; i < n; i++) {
		if (base[i] < '0' || base[i] > '9')
			return MEMBER_SKIP;
		v = v * 10 + (base[i] - '0');
	}
	*order = (int)v;
	return MEMBER_BATCH;
}

/* The binary version: whole 3073-byte records. */
static int parse_bin(struct part *p, const struct vt_src *src, struct vt_err *err)
{
	enum { CHUNK = 1024 };
	uint64_t n = src->size / CIFAR_RECORD, i;
	unsigned char *buf;
	int rc;

	if (src->size % CIFAR_RECORD != 0 || src->size == 0)
		return vt_err_set(err, VT_EFORMAT,
				  "'%s' is %llu bytes, not a whole number of 3073-byte CIFAR-10 records "
				  "(1 label byte + 3072 pixels; CIFAR-100 is not supported)",
				  src->name, (unsigned long long)src->size);
	if ((rc = part_alloc(p, n, src->name, err)))
		return rc;
	if (!(buf = malloc((size_t)CHUNK * CIFAR_RECORD)))
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	for (i = 0; i < n && rc == 0; i += CHUNK) {
		size_t k = n - i < CHUNK ? (size_t)(n - i) : CHUNK, j;
		rc = vt_src_read(src, i * CIFAR_RECORD, buf, k * CIFAR_RECORD, err);
		for (j = 0; j < k && rc == 0; j++) {
			p->labels[i + j] = buf[j * CIFAR_RECORD];
			memcpy(p->pixels + (i + j) * CIFAR_PIXELS, buf + j * CIFAR_RECORD + 1, CIFAR_PIXELS);
		}
	}
	free(buf);
	if (rc)
		return vt_err_prefix(err, "'%s'", src->name);
	return 0;
}

/* batches.meta.txt: a class name per line; blank lines (the real file ends with some) skipped. */
static int parse_meta_txt(struct names *out, const struct vt_src *src, struct vt_err *err)
{
	char *text, *line, *end;
	int rc;

	if (src->size > MAX_META)
		return vt_err_set(err, VT_EFORMAT, "'%s' is %llu bytes: too large for a list of class names",
				  src->name, (unsigned long long)src->size);
	if (!(text = malloc((size_t)src->size + 1)))
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	if ((rc = vt_src_read(src, 0, text, (size_t)src->size, err))) {
		free(text);
		return vt_err_prefix(err, "'%s'", src->name);
	}
	text[src->size] = '\0';
	for (line = text; rc == 0 && line < text + src->size; line = end + 1) {
		size_t len;
		end = memchr(line, '\n', (size_t)(text + src->size - line));
		if (!end)
			end = text + src->size;
		while (line < end && (*line == ' ' || *line == '\t'))
			line++;
		len = (size_t)(end - line);
		while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
			len--;
		if (len == 0)
			continue;
		if (len > MAX_NAME || memchr(line, '\0', len) || out->n == MAX_CLASSES)
			rc = vt_err_set(err, VT_EFORMAT, "'%s': line %zu is not a class name (a name per line, "
					"at most %d of %d bytes)", src->name, out->n + 1, MAX_CLASSES, MAX_NAME);
		else if (names_push(out, line, len))
			rc = vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	free(text);
	if (rc == 0 && out->n == 0)
		rc = vt_err_set(err, VT_EFORMAT, "'%s' names no class", src->name);
	return rc;
}

/* ---- the python version: numpy arrays through the unpickler's hooks --------------------- */

enum { T_RECONSTRUCT, T_NDARRAY, T_DTYPE };
enum { EXT_ARRAY = 1, EXT_DTYPE = 2 };

struct np_array {
	int built;                 /* BUILD seen: the fields below are set */
	int ndim;
	int64_t shape[2];
	const unsigned char *data; /* shape[0] x shape[1] bytes in the unpickler's arena */
};

static int np_find_class(void *ctx, const char *module, const char *name, struct vt_err *err)
{
	(void)ctx;
	if ((strcmp(module, "numpy.core.multiarray") == 0 || strcmp(module, "numpy._core.multiarray") == 0) &&
	    strcmp(name, "_reconstruct") == 0)
		return T_RECONSTRUCT;
	if (strcmp(module, "numpy") == 0 && strcmp(name, "ndarray") == 0)
		return T_NDARRAY;
	if (strcmp(module, "numpy") == 0 && strcmp(name, "dtype") == 0)
		return T_DTYPE;
	return vt_err_set(err, VT_EUNSAFE,
			  "global '%s.%s' is not allowed: a CIFAR-10 batch holds numpy uint8 arrays, "
			  "lists and strings only, and vggtl never runs code from a file", module, name);
}

static int is_text(const struct vt_pk *v)
{
	return v && (v->kind == VT_PK_STR || v->kind == VT_PK_BYTES);
}

static int text_is(const struct vt_pk *v, const char *s)
{
	return is_text(v) && v->u.str.len == strlen(s) && memcmp(v->u.str.s, s, v->u.str.len) == 0;
}

static int np_reduce(void *ctx, struct vt_unpickler *u, struct vt_pk *fn, struct vt_pk *args,
		     struct vt_pk **out, struct vt_err *err)
{
	(void)ctx;
	switch (fn->u.global.tag) {
	case T_RECONSTRUCT: { /* _reconstruct(numpy.ndarray, (0,), b'b'): an empty array */
		struct np_array *a;
		struct vt_pk *cls = args->u.seq.n == 3 ? args->u.seq.items[0] : NULL;
		if (!cls || cls->kind != VT_PK_GLOBAL || cls->u.global.tag != T_NDARRAY)
			return vt_err_set(err, VT_EFORMAT, "numpy _reconstruct expects (numpy.ndarray, shape, typecode)");
		if (!(a = vt_arena_alloc(&u->arena, sizeof(*a))))
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		memset(a, 0, sizeof(*a));
		*out = vt_pk_ext(u, EXT_ARRAY, a);
		break;
	}
	case T_DTYPE: { /* dtype('u1', align, copy) */
		struct vt_pk *name = args->u.seq.n >= 1 ? args->u.seq.items[0] : NULL;
		if (!is_text(name))
			return vt_err_set(err, VT_EFORMAT, "numpy dtype without a type name");
		if (!text_is(name, "u1") && !text_is(name, "|u1") && !text_is(name, "uint8"))
			return vt_err_set(err, VT_EUNSUPPORTED,
					  "numpy dtype '%.*s' is not supported: CIFAR-10 pixels are uint8 ('u1')",
					  (int)(name->u.str.len > 32 ? 32 : name->u.str.len), name->u.str.s);
		*out = vt_pk_ext(u, EXT_DTYPE, NULL);
		break;
	}
	default:
		return vt_err_set(err, VT_EUNSAFE, "call of '%s.%s' is not allowed", fn->u.global.module,
				  fn->u.global.name);
	}
	return *out ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
}

/* BUILD: the dtype's state is accepted as is (byte order means nothing for one byte); the
 * array's is (version, shape, dtype, is_fortran, raw bytes), or the same without version. */
static int np_build(void *ctx, struct vt_unpickler *u, struct vt_pk *obj, struct vt_pk *state,
		    struct vt_err *err)
{
	struct np_array *a = obj->u.ext.p;
	struct vt_pk *shape, *dtype, *fortran, *data;
	uint64_t numel = 1;
	int off, i;

	(void)ctx;
	(void)u;
	if (obj->u.ext.type == EXT_DTYPE)
		return 0;
	if (obj->u.ext.type != EXT_ARRAY)
		return vt_err_set(err, VT_EFORMAT, "BUILD on an unknown value");
	if (a->built)
		return vt_err_set(err, VT_EFORMAT, "numpy array built twice");
	if (state->kind != VT_PK_TUPLE || (state->u.seq.n != 4 && state->u.seq.n != 5))
		return vt_err_set(err, VT_EFORMAT, "numpy array state is not a (version, shape, dtype, is_fortran, data) tuple");
	off = state->u.seq.n == 5;
	if (off && (state->u.seq.items[0]->kind != VT_PK_INT || state->u.seq.items[0]->u.i != 1))
		return vt_err_set(err, VT_EUNSUPPORTED, "numpy array state version is not 1");
	shape = state->u.seq.items[off];
	dtype = state->u.seq.items[off + 1];
	fortran = state->u.seq.items[off + 2];
	data = state->u.seq.items[off + 3];
	if (dtype->kind != VT_PK_EXT || dtype->u.ext.type != EXT_DTYPE)
		return vt_err_set(err, VT_EUNSUPPORTED, "numpy array without a uint8 dtype");
	if ((fortran->kind != VT_PK_BOOL && fortran->kind != VT_PK_INT) ||
	    (fortran->kind == VT_PK_BOOL ? fortran->u.b : fortran->u.i != 0))
		return vt_err_set(err, VT_EUNSUPPORTED, "Fortran-order numpy array (C order expected)");
	if (data->kind != VT_PK_BYTES)
		return vt_err_set(err, VT_EUNSUPPORTED, "numpy array data is not a byte string");
	if (shape->kind != VT_PK_TUPLE || shape->u.seq.n < 1 || shape->u.seq.n > 2)
		return vt_err_set(err, VT_EUNSUPPORTED,
				  "numpy array of %d dimensions (CIFAR-10 data is (N, 3072))", vt_pk_seq_len(shape));
	a->ndim = (int)shape->u.seq.n;
	for (i = 0; i < a->ndim; i++) {
		struct vt_pk *d = shape->u.seq.items[i];
		if (d->kind != VT_PK_INT || d->u.i < 0 || d->u.i > INT32_MAX)
			return vt_err_set(err, VT_EFORMAT, "numpy array shape holds a bad dimension");
		a->shape[i] = d->u.i;
		numel *= (uint64_t)d->u.i; /* two factors below 2^31: no overflow */
	}
	if (numel != data->u.str.len)
		return vt_err_set(err, VT_EFORMAT, "numpy array of %llu elements holds %zu bytes",
				  (unsigned long long)numel, data->u.str.len);
	a->data = (const unsigned char *)data->u.str.s;
	a->built = 1;
	return 0;
}

static const struct vt_pk_hooks np_hooks = { np_find_class, NULL, np_reduce, np_build, NULL };

/* A dict entry whose key is key as str or bytes (last one wins, as in Python). */
static struct vt_pk *key_get(const struct vt_pk *d, const char *key)
{
	size_t i;

	if (!d || d->kind != VT_PK_DICT)
		return NULL;
	for (i = d->u.dict.n; i-- > 0;)
		if (text_is(d->u.dict.keys[i], key))
			return d->u.dict.vals[i];
	return NULL;
}

static int unpickle_dict(struct vt_unpickler *u, const struct vt_src *src, struct vt_pk **root,
			 struct vt_err *err)
{
	uint64_t pos = 0;
	int rc;

	vt_unpickler_init(u, &np_hooks, NULL);
	if ((rc = vt_unpickle(u, src, &pos, root, err)))
		return vt_err_prefix(err, "'%s'", src->name);
	if ((*root)->kind != VT_PK_DICT)
		return vt_err_set(err, VT_EFORMAT, "'%s' does not hold a dict (not a CIFAR-10 python batch)",
				  src->name);
	return 0;
}

static int parse_py(struct part *p, const struct vt_src *src, struct vt_err *err)
{
	struct vt_unpickler u;
	struct vt_pk *root, *labels, *data;
	struct np_array *a;
	int rc, i;

	if ((rc = unpickle_dict(&u, src, &root, err)))
		goto out;
	labels = key_get(root, "labels");
	data = key_get(root, "data");
	if (!labels || !data) {
		rc = vt_err_set(err, VT_EFORMAT, "'%s' has no '%s' key%s", src->name,
				labels ? "data" : "labels",
				key_get(root, "fine_labels") ? " (CIFAR-100 is not supported)" : "");
		goto out;
	}
	if (data->kind != VT_PK_EXT || data->u.ext.type != EXT_ARRAY || !((struct np_array *)data->u.ext.p)->built) {
		rc = vt_err_set(err, VT_EFORMAT, "'%s': 'data' is not a numpy array", src->name);
		goto out;
	}
	a = data->u.ext.p;
	if (a->ndim != 2 || a->shape[1] != CIFAR_PIXELS) {
		rc = vt_err_set(err, VT_EFORMAT, "'%s': 'data' has shape (%lld%s%lld), expected (N, 3072)",
				src->name, (long long)a->shape[0], a->ndim == 2 ? ", " : ",",
				a->ndim == 2 ? (long long)a->shape[1] : 0LL);
		goto out;
	}
	if (vt_pk_seq_len(labels) < 0 || (int64_t)vt_pk_seq_len(labels) != a->shape[0]) {
		rc = vt_err_set(err, VT_EFORMAT, "'%s': 'labels' is not a list of %lld numbers, one per image",
				src->name, (long long)a->shape[0]);
		goto out;
	}
	if ((rc = part_alloc(p, (uint64_t)a->shape[0], src->name, err)))
		goto out;
	memcpy(p->pixels, a->data, (size_t)p->n * CIFAR_PIXELS);
	for (i = 0; i < p->n; i++) {
		struct vt_pk *l = labels->u.seq.items[i];
		if (l->kind != VT_PK_INT) {
			rc = vt_err_set(err, VT_EFORMAT, "'%s': label %d is not an integer", src->name, i);
			goto out;
		}
		p->labels[i] = l->u.i;
	}
out:
	vt_unpickler_release(&u);
	return rc;
}

static int parse_meta_py(struct names *out, const struct vt_src *src, struct vt_err *err)
{
	struct vt_unpickler u;
	struct vt_pk *root, *list;
	int rc, i;

	if ((rc = unpickle_dict(&u, src, &root, err)))
		goto out;
	list = key_get(root, "label_names");
	if (vt_pk_seq_len(list) < 1 || vt_pk_seq_len(list) > MAX_CLASSES) {
		rc = vt_err_set(err, VT_EFORMAT, "'%s' has no 'label_names' list of 1 to %d names", src->name,
				MAX_CLASSES);
		goto out;
	}
	for (i = 0; i < vt_pk_seq_len(list) && rc == 0; i++) {
		struct vt_pk *s = list->u.seq.items[i];
		if (!is_text(s) || s->u.str.len == 0 || s->u.str.len > MAX_NAME || memchr(s->u.str.s, '\0', s->u.str.len))
			rc = vt_err_set(err, VT_EFORMAT, "'%s': label_names[%d] is not a class name", src->name, i);
		else if (names_push(out, s->u.str.s, s->u.str.len))
			rc = vt_err_set(err, VT_ENOMEM, "out of memory");
	}
out:
	vt_unpickler_release(&u);
	return rc;
}

/* One CIFAR file or archive member of the kind member_kind() said. */
static int add_member(struct loader *L, int kind, int order, const struct vt_src *src, struct vt_err *err)
{
	struct part p;
	size_t i;
	int rc;

	if (kind == MEMBER_META) {
		names_free(&L->classes); /* a later copy in an archive replaces an earlier one */
		rc = L->fmt == FMT_BIN ? parse_meta_txt(&L->classes, src, err) : parse_meta_py(&L->classes, src, err);
		return rc;
	}
	memset(&p, 0, sizeof(p));
	p.order = order;
	rc = L->fmt == FMT_BIN ? parse_bin(&p, src, err) : parse_py(&p, src, err);
	if (rc == 0 && !(p.name = dupn(src->name, strlen(src->name))))
		rc = vt_err_set(err, VT_ENOMEM, "out of memory");
	if (rc) {
		part_free(&p);
		return rc;
	}
	for (i = 0; i < L->nparts; i++)
		if (L->parts[i].order == order) { /* the same batch again in an archive: the last one counts */
			part_free(&L->parts[i]);
			L->parts[i] = p;
			return 0;
		}
	if (L->nparts == MAX_PARTS) {
		part_free(&p);
		return vt_err_set(err, VT_EFORMAT, "more than %d CIFAR-10 batches", MAX_PARTS);
	}
	{
		struct part *np = realloc(L->parts, (L->nparts + 1) * sizeof(*np));
		if (!np) {
			part_free(&p);
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		}
		L->parts = np;
		L->parts[L->nparts++] = p;
	}
	return 0;
}

static int cmp_part(const void *a, const void *b)
{
	const struct part *x = a, *y = b;

	return (x->order > y->order) - (x->order < y->order);
}

/* Checks the labels against the class names and puts the batches end to end, in order. */
static int finish(struct loader *L, struct vt_dataset *d, const char *where, struct vt_err *err)
{
	size_t i, total = 0, done = 0;
	int nclasses = L->classes.n ? (int)L->classes.n : 10, j;

	if (L->nparts == 0)
		return vt_err_set(err, VT_ENOTFOUND, "no %s batch in '%s' (expected %s%s)", L->split, where,
				  strcmp(L->split, "test") == 0 ? "test_batch" : "data_batch_1",
				  L->fmt == FMT_BIN ? ".bin" : "");
	qsort(L->parts, L->nparts, sizeof(*L->parts), cmp_part);
	for (i = 0; i < L->nparts; i++) {
		struct part *p = &L->parts[i];
		for (j = 0; j < p->n; j++)
			if (p->labels[j] < 0 || p->labels[j] >= nclasses)
				return vt_err_set(err, VT_EFORMAT, "'%s': image %d has label %lld, but there are %d classes%s",
						  p->name, j, (long long)p->labels[j], nclasses,
						  L->classes.n ? "" : " (no batches.meta names them)");
		total += (size_t)p->n;
	}
	if (total > MAX_IMAGES)
		return vt_err_set(err, VT_ENOMEM, "'%s' holds %zu images (at most %d)", where, total, MAX_IMAGES);
	memset(d, 0, sizeof(*d));
	d->labels = malloc(total * sizeof(*d->labels));
	if (!d->labels)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	/* grown batch by batch: realloc of a large block remaps pages instead of copying them,
	 * so the peak stays near the dataset plus one batch */
	for (i = 0; i < L->nparts; i++) {
		struct part *p = &L->parts[i];
		unsigned char *px = realloc(d->pixels, (done + (size_t)p->n) * CIFAR_PIXELS);
		if (!px) {
			vt_data_release(d);
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		}
		d->pixels = px;
		memcpy(d->pixels + done * CIFAR_PIXELS, p->pixels, (size_t)p->n * CIFAR_PIXELS);
		memcpy(d->labels + done, p->labels, (size_t)p->n * sizeof(*d->labels));
		done += (size_t)p->n;
		free(p->pixels);
		p->pixels = NULL;
	}
	d->n = (int)total;
	d->h = d->w = CIFAR_SIDE;
	d->nclasses = nclasses;
	if (L->classes.n) {
		d->class_names = L->classes.v; /* ownership moves */
		memset(&L->classes, 0, sizeof(L->classes));
	} else {
		if (!(d->class_names = calloc((size_t)nclasses, sizeof(*d->class_names)))) {
			vt_data_release(d);
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		}
		for (j = 0; j < nclasses; j++) {
			char buf[32];
			snprintf(buf, sizeof(buf), "class%d", j);
			if (!(d->class_names[j] = dupn(buf, strlen(buf)))) {
				vt_data_release(d);
				return vt_err_set(err, VT_ENOMEM, "out of memory");
			}
		}
	}
	return 0;
}

/* ---- CIFAR folders ---------------------------------------------------------------------- */

/* FMT_BIN if dir holds binary batches, FMT_PY if python ones, FMT_NONE otherwise. */
static enum fmt dir_format(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	int order, bin = 0, py = 0;

	if (!dp)
		return FMT_NONE;
	while ((e = readdir(dp))) {
		bin |= member_kind(FMT_BIN, "train", e->d_name, &order) == MEMBER_BATCH ||
		       member_kind(FMT_BIN, "test", e->d_name, &order) == MEMBER_BATCH;
		py |= member_kind(FMT_PY, "train", e->d_name, &order) == MEMBER_BATCH ||
		      member_kind(FMT_PY, "test", e->d_name, &order) == MEMBER_BATCH;
	}
	closedir(dp);
	return bin ? FMT_BIN : py ? FMT_PY : FMT_NONE;
}

static int load_cifar_dir(struct vt_dataset *d, const char *dir, enum fmt fmt, const char *split,
			  struct vt_err *err)
{
	struct loader L;
	struct names files = { 0 };
	struct dirent *e;
	DIR *dp;
	size_t i;
	int rc = 0;

	memset(&L, 0, sizeof(L));
	L.split = split;
	L.fmt = fmt;
	if (!(dp = opendir(dir)))
		return vt_err_set(err, VT_EIO, "cannot open '%s': %s", dir, strerror(errno));
	while (rc == 0 && (e = readdir(dp))) {
		int order;
		if (member_kind(fmt, split, e->d_name, &order) != MEMBER_SKIP && names_push(&files, e->d_name, strlen(e->d_name)))
			rc = vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	closedir(dp);
	for (i = 0; i < files.n && rc == 0; i++) {
		struct vt_src src;
		int order = 0, kind = member_kind(fmt, split, files.v[i], &order);
		char *path = join(dir, files.v[i]);
		if (!path) {
			rc = vt_err_set(err, VT_ENOMEM, "out of memory");
			break;
		}
		if ((rc = vt_src_open(&src, path, err)) == 0) {
			rc = add_member(&L, kind, order, &src, err);
			vt_src_close(&src);
		}
		free(path);
	}
	names_free(&files);
	if (rc == 0)
		rc = finish(&L, d, dir, err);
	loader_free(&L);
	return rc;
}

/* ---- ImageFolder of PNGs and JPEGs----------------------------------------------------------- */

/* Entries of dir that are folders (dirs=1) or regular files (dirs=0), symlinks followed,
 * sorted by byte value. */
static int list_dir(const char *dir, int dirs, struct names *out, struct vt_err *err)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	int rc = 0;

	if (!dp)
		return vt_err_set(err, VT_EIO, "cannot open '%s': %s", dir, strerror(errno));
	while (rc == 0 && (e = readdir(dp))) {
		char *path;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (!(path = join(dir, e->d_name)))
			rc = vt_err_set(err, VT_ENOMEM, "out of memory");
		else if ((dirs ? is_dir(path) : is_file(path)) && names_push(out, e->d_name, strlen(e->d_name)))
			rc = vt_err_set(err, VT_ENOMEM, "out of memory");
		free(path);
	}
	closedir(dp);
	if (rc == 0 && out->n)
		qsort(out->v, out->n, sizeof(*out->v), cmp_str);
	return rc;
}

static int has_ext(const char *name, const char *ext)
{
	size_t n = strlen(name), e = strlen(ext);

	return n > e && strcasecmp(name + n - e, ext) == 0;
}

/* 1: a PNG or JPEG by its extension; 0: not an image (ignored); -1: an image format vggtl
 * does not read.  The lists are torchvision's IMG_EXTENSIONS, matched without case. */
static int image_kind(const char *name)
{
	static const char *const other[] = { ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp" };
	size_t i;

	if (has_ext(name, ".png") || has_ext(name, ".jpg") || has_ext(name, ".jpeg"))
		return 1;
	for (i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		if (has_ext(name, other[i]))
			return -1;
	return 0;
}

/* The subfolders of dir/rel, and theirs, as paths relative to dir, appended to out. */
static int list_subdirs(const char *dir, const char *rel, int depth, struct names *out, struct vt_err *err)
{
	struct names sub = { 0 };
	char *here = join(dir, rel);
	size_t i;
	int rc;

	if (!here)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	if (depth > MAX_DEPTH || out->n > MAX_DIRS)
		rc = vt_err_set(err, VT_EUNSUPPORTED, "'%s': more than %d levels or %d subfolders (a symlink loop?)",
				here, MAX_DEPTH, MAX_DIRS);
	else
		rc = list_dir(here, 1, &sub, err);
	for (i = 0; i < sub.n && rc == 0; i++) {
		char *r = join(rel, sub.v[i]);
		if (!r || names_push(out, r, strlen(r)))
			rc = vt_err_set(err, VT_ENOMEM, "out of memory");
		else
			rc = list_subdirs(dir, r, depth + 1, out, err);
		free(r);
	}
	names_free(&sub);
	free(here);
	return rc;
}

/* The images of a class folder and of its subfolders, as paths relative to it, in
 * torchvision's order: sorted(os.walk(class_dir, followlinks=True)) sorts the folders by
 * path, then each folder's files are sorted by name. */
static int class_images(const char *cdir, struct names *out, struct vt_err *err)
{
	struct names dirs = { 0 };
	size_t i, j;
	int rc;

	if ((rc = names_push(&dirs, "", 0) ? vt_err_set(err, VT_ENOMEM, "out of memory") : 0) ||
	    (rc = list_subdirs(cdir, "", 0, &dirs, err)))
		goto out;
	qsort(dirs.v, dirs.n, sizeof(*dirs.v), cmp_str); /* "" (the class folder itself) first */
	for (i = 0; i < dirs.n && rc == 0; i++) {
		struct names all = { 0 };
		char *here = join(cdir, dirs.v[i]);
		rc = here ? list_dir(here, 0, &all, err) : vt_err_set(err, VT_ENOMEM, "out of memory");
		for (j = 0; j < all.n && rc == 0; j++) {
			int kind = image_kind(all.v[j]);
			char *r;
			if (kind < 0) {
				rc = vt_err_set(err, VT_EUNSUPPORTED, "'%s/%s': only PNG and JPEG images are supported "
						"(convert it, or move it out of the folder)", here, all.v[j]);
			} else if (kind > 0) {
				r = join(dirs.v[i], all.v[j]);
				if (!r || names_push(out, r, strlen(r)))
					rc = vt_err_set(err, VT_ENOMEM, "out of memory");
				free(r);
			}
		}
		names_free(&all);
		free(here);
	}
out:
	names_free(&dirs);
	return rc;
}

/* names_only: the class folders are listed, no image is looked at. */
static int load_image_folder(struct vt_dataset *d, const char *root, int size, int names_only, struct vt_err *err)
{
	struct names classes = { 0 }, *files = NULL;
	size_t i, j, total = 0, k = 0, per, nfiles = 0;
	int rc;

	if (size < 1 || size > MAX_SIZE)
		return vt_err_set(err, VT_EUSAGE, "image size %d is out of range (1 to %d)", size, MAX_SIZE);
	per = (size_t)3 * (size_t)size * (size_t)size;
	if ((rc = list_dir(root, 1, &classes, err)))
		goto out;
	if (classes.n == 0) {
		rc = vt_err_set(err, VT_ENOTFOUND, "no class folder in '%s' (expected %s/<class>/*.png|jpg)", root, root);
		goto out;
	}
	if (classes.n > MAX_CLASSES) {
		rc = vt_err_set(err, VT_EUNSUPPORTED, "'%s' has %zu class folders (at most %d)", root, classes.n,
				MAX_CLASSES);
		goto out;
	}
	if (names_only) {
		memset(d, 0, sizeof(*d));
		d->nclasses = (int)classes.n;
		d->class_names = classes.v; /* ownership moves */
		return 0;
	}
	if (!(files = calloc(classes.n, sizeof(*files)))) {
		rc = vt_err_set(err, VT_ENOMEM, "out of memory");
		goto out;
	}
	nfiles = classes.n;
	for (i = 0; i < classes.n; i++) {
		char *cdir = join(root, classes.v[i]);
		if (!cdir) {
			rc = vt_err_set(err, VT_ENOMEM, "out of memory");
			goto out;
		}
		rc = class_images(cdir, &files[i], err);
		if (rc == 0 && files[i].n == 0)
			rc = vt_err_set(err, VT_ENOTFOUND, "class folder '%s' holds no image (.png, .jpg, .jpeg), nor do its subfolders",
					cdir);
		free(cdir);
		if (rc)
			goto out;
		total += files[i].n;
	}
	if (total > MAX_IMAGES || total > SIZE_MAX / per) {
		rc = vt_err_set(err, VT_ENOMEM, "'%s' holds %zu images of %dx%d: too many", root, total, size, size);
		goto out;
	}
	memset(d, 0, sizeof(*d));
	d->pixels = malloc(total * per);
	d->labels = malloc(total * sizeof(*d->labels));
	if (!d->pixels || !d->labels) {
		rc = vt_err_set(err, VT_ENOMEM, "out of memory for %zu images of %dx%d", total, size, size);
		goto out;
	}
	for (i = 0; i < classes.n; i++)
		for (j = 0; j < files[i].n; j++, k++) {
			char *cdir = join(root, classes.v[i]), *path = cdir ? join(cdir, files[i].v[j]) : NULL;
			rc = path ? vt_image_load(path, size, d->pixels + k * per, err)
				  : vt_err_set(err, VT_ENOMEM, "out of memory");
			free(cdir);
			free(path);
			if (rc)
				goto out;
			d->labels[k] = (int64_t)i;
		}
	d->n = (int)total;
	d->h = d->w = size;
	d->nclasses = (int)classes.n;
	d->class_names = classes.v; /* ownership moves */
	memset(&classes, 0, sizeof(classes));
out:
	if (rc) {
		free(d->pixels);
		free(d->labels);
		memset(d, 0, sizeof(*d));
	}
	for (i = 0; i < nfiles; i++)
		names_free(&files[i]);
	free(files);
	names_free(&classes);
	return rc;
}

/* ---- archives: CIFAR-10 batches or an image tree, streamed (src/data_archive.c) ----------- */

/* Splits a member path into its last two components: "x/cifar-10-batches-py/data_batch_1". */
static void path_tail(const char *path, const char **dir, size_t *dlen, const char **base)
{
	const char *end = path + strlen(path), *b, *d;

	while (end > path && end[-1] == '/')
		end--;
	b = end;
	while (b > path && b[-1] != '/')
		b--;
	*base = b;
	d = b;
	while (d > path && d[-1] == '/')
		d--;
	*dlen = 0;
	*dir = d;
	while (d > path && d[-1] != '/')
		d--;
	*dlen = (size_t)(*dir - d);
	*dir = d;
}

/* Component i of path (0-based) and its length; NULL past the last one. */
static const char *component(const char *path, int i, size_t *len)
{
	const char *s = path;

	for (; i > 0; i--) {
		const char *slash = strchr(s, '/');
		if (!slash)
			return NULL;
		s = slash + 1;
	}
	*len = strcspn(s, "/");
	return s;
}

static int components(const char *path)
{
	int n = 1;

	for (; *path; path++)
		n += *path == '/';
	return n;
}

/* An image of an archive's tree, decoded as it streams past.  The tree may stand at the
 * archive's root (<split>/<class>/...: layout 0) or under its one top folder
 * (<top>/<split>/<class>/...: layout 1); which one is known at the end. */
struct arc_image {
	char *path;            /* the whole member path (owned) */
	unsigned layouts;      /* bit L: the path fits layout L */
	size_t seq;            /* order in the archive: of two copies of a path, the later counts */
	int cls;               /* class index, set at the end */
	const char *dir, *base;/* in path: the subfolders under the class folder ("" for none) and the name */
	size_t dlen;
	unsigned char *pixels; /* 3 x size x size (owned; NULL when only names are wanted) */
};

struct arc_tree {
	const char *split;
	int size, names_only;
	struct arc_image *v;
	size_t n, cap;
	struct names classes[2]; /* class folders seen in each layout (repeats allowed) */
	char *top;               /* the first component of the first entry (owned) */
	int one_top;             /* every entry so far lies under top/ */
};

static void arc_tree_free(struct arc_tree *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free(t->v[i].path);
		free(t->v[i].pixels);
	}
	free(t->v);
	names_free(&t->classes[0]);
	names_free(&t->classes[1]);
	free(t->top);
}

/* Notes what an entry says about the tree; *image tells whether it is an image of it. */
static int tree_entry(struct arc_tree *t, const char *path, int type, unsigned *image, const char *where,
		      struct vt_err *err)
{
	size_t len, sl = strlen(t->split);
	const char *c0 = component(path, 0, &len);
	int n = components(path), L;

	*image = 0;
	if (!t->top) {
		if (!(t->top = dupn(c0, len)))
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		t->one_top = 1;
	}
	if (t->one_top && (strlen(t->top) != len || memcmp(t->top, c0, len) != 0 || (n == 1 && type == ARC_FILE)))
		t->one_top = 0;
	for (L = 0; L < 2; L++) {
		const char *sp = component(path, L, &len), *cls;
		size_t clen;
		int kind;
		if (!sp || len != sl || memcmp(sp, t->split, sl) != 0 || !(cls = component(path, L + 1, &clen)))
			continue;
		if (type == ARC_FILE && n == L + 2)
			continue; /* a file beside the class folders: ignored, as ImageFolder ignores it */
		if (clen > MAX_NAME)
			return vt_err_set(err, VT_EUNSUPPORTED, "'%s': a class folder name of %zu bytes in '%s'", where,
					  clen, path);
		if (names_push(&t->classes[L], cls, clen))
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		if (type != ARC_FILE)
			continue;
		kind = image_kind(path);
		if (kind < 0)
			return vt_err_set(err, VT_EUNSUPPORTED, "'%s': '%s': only PNG and JPEG images are supported "
					  "(convert it, or leave it out of the archive)", where, path);
		if (kind > 0)
			*image |= 1u << L;
	}
	return 0;
}

static int tree_add(struct arc_tree *t, const char *path, unsigned layouts, const unsigned char *data, size_t len,
		    const char *name, struct vt_err *err)
{
	struct arc_image *im;
	int rc;

	if (t->n >= MAX_IMAGES)
		return vt_err_set(err, VT_ENOMEM, "'%s' holds more than %d images", name, MAX_IMAGES);
	if (t->n == t->cap) {
		size_t ncap = t->cap ? 2 * t->cap : 64;
		struct arc_image *nv = realloc(t->v, ncap * sizeof(*nv));
		if (!nv)
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		t->v = nv;
		t->cap = ncap;
	}
	im = &t->v[t->n];
	memset(im, 0, sizeof(*im));
	im->layouts = layouts;
	im->seq = t->n;
	if (!(im->path = dupn(path, strlen(path))))
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	if (data) {
		char *mname = malloc(strlen(name) + strlen(path) + 3);
		if (!(im->pixels = malloc((size_t)3 * (size_t)t->size * (size_t)t->size)) || !mname) {
			free(mname);
			free(im->path);
			free(im->pixels);
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		}
		sprintf(mname, "%s: %s", name, path);
		rc = vt_image_decode(data, len, mname, t->size, im->pixels, err);
		free(mname);
		if (rc) {
			free(im->path);
			free(im->pixels);
			return rc;
		}
	}
	t->n++;
	return 0;
}

static int cmp_arc_image(const void *a, const void *b)
{
	const struct arc_image *x = a, *y = b;
	size_t m = x->dlen < y->dlen ? x->dlen : y->dlen;
	int c;

	if (x->cls != y->cls)
		return x->cls < y->cls ? -1 : 1;
	/* torchvision's order: sorted(os.walk(class_dir)) sorts folders by path, then names */
	if ((c = memcmp(x->dir, y->dir, m)) != 0 || (c = (x->dlen > m) - (y->dlen > m)) != 0)
		return c;
	if ((c = strcmp(x->base, y->base)) != 0)
		return c;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static int find_name(const struct names *s, const char *name, size_t len)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) { /* s is sorted */
		size_t mid = (lo + hi) / 2;
		int c = strncmp(s->v[mid], name, len);
		if (c == 0 && s->v[mid][len] != '\0')
			c = 1;
		if (c == 0)
			return (int)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* The dataset the tree's images make: the layout found, classes sorted, images in order. */
static int tree_finish(struct arc_tree *t, struct vt_dataset *d, const char *name, struct vt_err *err)
{
	int L = t->classes[0].n ? 0 : t->one_top && t->classes[1].n ? 1 : -1;
	struct names *cl;
	size_t i, j, k, total = 0, per = (size_t)3 * (size_t)t->size * (size_t)t->size;

	memset(d, 0, sizeof(*d));
	if (L < 0)
		return vt_err_set(err, VT_ENOTFOUND, "'%s' holds no cifar-10-batches-py/ or cifar-10-batches-bin/ %s batch "
				  "and no image tree %s/<class>/<image> (at its root or under one top folder)", name,
				  t->split, t->split);
	cl = &t->classes[L];
	qsort(cl->v, cl->n, sizeof(*cl->v), cmp_str);
	for (i = j = 0; i < cl->n; i++) { /* unique */
		if (j && strcmp(cl->v[j - 1], cl->v[i]) == 0)
			free(cl->v[i]);
		else
			cl->v[j++] = cl->v[i];
	}
	cl->n = j;
	if (cl->n > MAX_CLASSES)
		return vt_err_set(err, VT_EUNSUPPORTED, "'%s' has %zu class folders (at most %d)", name, cl->n,
				  MAX_CLASSES);
	/* the images of the layout, with their class, subfolders and name */
	for (i = j = 0; i < t->n; i++) {
		struct arc_image *im = &t->v[i];
		size_t clen = 0;
		const char *c;
		if (!(im->layouts & (1u << L))) {
			free(im->path);
			free(im->pixels);
			continue;
		}
		c = component(im->path, L + 1, &clen);
		im->cls = find_name(cl, c, clen);
		im->dir = c + clen + 1;
		im->base = strrchr(im->path, '/') + 1;
		im->dlen = im->base > im->dir ? (size_t)(im->base - 1 - im->dir) : 0;
		t->v[j++] = *im;
	}
	t->n = j;
	if (t->n)
		qsort(t->v, t->n, sizeof(*t->v), cmp_arc_image);
	for (i = j = 0; i < t->n; i++) { /* a path stored twice: the later copy, as tar extracts it */
		if (i + 1 < t->n && t->v[i + 1].cls == t->v[i].cls && strcmp(t->v[i + 1].path, t->v[i].path) == 0) {
			free(t->v[i].path);
			free(t->v[i].pixels);
			continue;
		}
		t->v[j++] = t->v[i];
	}
	t->n = j;
	for (i = k = 0; i < cl->n; i++) {
		size_t here = 0;
		for (; k < t->n && t->v[k].cls == (int)i; k++)
			here++;
		if (here == 0 && !t->names_only)
			return vt_err_set(err, VT_ENOTFOUND, "'%s': class folder '%s%s%s/%s' holds no image (.png, .jpg, "
					  ".jpeg), nor do its subfolders", name, L ? t->top : "", L ? "/" : "", t->split,
					  cl->v[i]);
		total += here;
	}
	d->nclasses = (int)cl->n;
	d->class_names = cl->v; /* ownership moves */
	memset(cl, 0, sizeof(*cl));
	if (t->names_only)
		return 0;
	if (total > SIZE_MAX / per || !(d->pixels = malloc(total * per)) ||
	    !(d->labels = malloc(total * sizeof(*d->labels)))) {
		vt_data_release(d);
		return vt_err_set(err, VT_ENOMEM, "out of memory for %zu images of %dx%d", total, t->size, t->size);
	}
	for (i = 0; i < t->n; i++) {
		memcpy(d->pixels + i * per, t->v[i].pixels, per);
		free(t->v[i].pixels);
		t->v[i].pixels = NULL;
		d->labels[i] = t->v[i].cls;
	}
	d->n = (int)total;
	d->h = d->w = t->size;
	return 0;
}

/* Streams the archive (path, or the len bytes at data) into d: its CIFAR-10 batches for the
 * split, else its image tree. */
static int load_archive(struct vt_dataset *d, const char *path, const void *data, size_t len, const char *split,
			int size, int names_only, struct vt_err *err)
{
	struct loader L;
	struct arc_tree t;
	struct arc *a;
	const char *name;
	int rc, type;

	memset(d, 0, sizeof(*d));
	memset(&L, 0, sizeof(L));
	memset(&t, 0, sizeof(t));
	L.split = t.split = split;
	t.size = size;
	t.names_only = names_only;
	if (size < 1 || size > MAX_SIZE)
		return vt_err_set(err, VT_EUSAGE, "image size %d is out of range (1 to %d)", size, MAX_SIZE);
	if ((rc = arc_open(&a, path, data, len, path, err)))
		return rc;
	while ((rc = arc_next(a, &name, &type, err)) == 1) {
		const char *dir, *base;
		size_t dlen, n;
		int kind = MEMBER_SKIP, order = 0;
		unsigned image = 0;
		unsigned char *buf;
		if (type == ARC_FILE) {
			enum fmt f;
			path_tail(name, &dir, &dlen, &base);
			f = dlen == 20 && memcmp(dir, "cifar-10-batches-bin", 20) == 0 ? FMT_BIN :
			    dlen == 19 && memcmp(dir, "cifar-10-batches-py", 19) == 0 ? FMT_PY : FMT_NONE;
			if (f != FMT_NONE && (L.fmt == FMT_NONE || L.fmt == f))
				kind = member_kind(f, split, base, &order);
			if (kind != MEMBER_SKIP)
				L.fmt = f; /* the first CIFAR member decides; the other version is ignored */
		}
		if (kind == MEMBER_SKIP && L.fmt == FMT_NONE && (rc = tree_entry(&t, name, type, &image, path, err)))
			break;
		if (kind == MEMBER_SKIP && (!image || names_only)) {
			if (image && (rc = tree_add(&t, name, image, NULL, 0, path, err)))
				break;
			continue;
		}
		if ((rc = arc_read(a, MAX_MEMBER, &buf, &n, err)))
			break;
		if (kind != MEMBER_SKIP) {
			struct vt_src m;
			char *mname = malloc(strlen(path) + strlen(name) + 3);
			if (!mname) {
				free(buf);
				rc = vt_err_set(err, VT_ENOMEM, "out of memory");
				break;
			}
			sprintf(mname, "%s: %s", path, name);
			vt_src_mem(&m, buf, n, mname);
			rc = add_member(&L, kind, order, &m, err);
			free(mname);
		} else {
			rc = tree_add(&t, name, image, buf, n, path, err);
		}
		free(buf);
		if (rc)
			break;
	}
	arc_close(a);
	if (rc == 0)
		rc = L.fmt != FMT_NONE ? finish(&L, d, path, err) : tree_finish(&t, d, path, err);
	loader_free(&L);
	arc_tree_free(&t);
	return rc;
}

/* ---- path resolution -------------------------------------------------------------------- */

static int load_split(struct vt_dataset *d, const char *path, const char *split, int size, int names_only,
		      struct vt_err *err)
{
	static const char *const folders[] = { "cifar-10-batches-bin", "cifar-10-batches-py" };
	static const char *const archives[] = { "cifar-10-binary.tar.gz", "cifar-10-python.tar.gz" };
	struct stat st;
	enum fmt fmt;
	char *p = NULL;
	int rc = 1;
	size_t i;

	memset(d, 0, sizeof(*d));
	if (strcmp(split, "train") != 0 && strcmp(split, "test") != 0)
		return vt_err_set(err, VT_EUSAGE, "split must be 'train' or 'test', not '%s'", split);
	if (stat(path, &st) != 0)
		return vt_err_set(err, VT_ENOTFOUND, "no CIFAR-10 or image folder found at '%s' (%s; %s)", path,
				  strerror(errno), not_found_hint);
	if (S_ISREG(st.st_mode))
		return load_archive(d, path, NULL, 0, split, size, names_only, err);
	if (!S_ISDIR(st.st_mode))
		return vt_err_set(err, VT_ENOTFOUND, "no CIFAR-10 or image folder found at '%s' (%s)", path,
				  not_found_hint);
	/* the folders torchvision and the archives extract to win over the archives themselves */
	for (i = 0; i < 2 && rc > 0; i++) {
		if (!(p = join(path, folders[i])))
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		if (is_dir(p))
			rc = load_cifar_dir(d, p, i == 0 ? FMT_BIN : FMT_PY, split, err);
		free(p);
	}
	if (rc <= 0)
		return rc;
	if ((fmt = dir_format(path)) != FMT_NONE)
		return load_cifar_dir(d, path, fmt, split, err);
	for (i = 0; i < 2 && rc > 0; i++) {
		if (!(p = join(path, archives[i])))
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		if (is_file(p))
			rc = load_archive(d, p, NULL, 0, split, size, names_only, err);
		free(p);
	}
	if (rc <= 0)
		return rc;
	if (!(p = join(path, split)))
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	if (is_dir(p))
		rc = load_image_folder(d, p, size, names_only, err);
	else
		rc = vt_err_set(err, VT_ENOTFOUND, "no CIFAR-10 or image folder found at '%s' (%s)", path,
				not_found_hint);
	free(p);
	return rc;
}

int vt_data_load(struct vt_dataset *d, const char *path, const char *split, int size, struct vt_err *err)
{
	return load_split(d, path, split, size, 0, err);
}

int vt_data_load_names(struct vt_dataset *d, const char *path, const char *split, struct vt_err *err)
{
	int rc = load_split(d, path, split, 32, 1, err);

	if (rc == 0) { /* CIFAR sources were read whole: keep the names only */
		free(d->pixels);
		free(d->labels);
		d->pixels = NULL;
		d->labels = NULL;
		d->n = 0;
	}
	return rc;
}

void vt_data_release(struct vt_dataset *d)
{
	int i;

	if (!d)
		return;
	if (d->class_names)
		for (i = 0; i < d->nclasses; i++)
			free(d->class_names[i]);
	free(d->class_names);
	free(d->pixels);
	free(d->labels);
	memset(d, 0, sizeof(*d));
}

/* ---- transforms ------------------------------------------------------------------------- */

/* torchvision order: ToTensor (x / 255 in float32), RandomCrop(h, padding=4) with zero fill
 * (the same whether the padding is added before or after the scaling: 0 / 255 = 0), then
 * RandomHorizontalFlip, then Normalize ((x - mean) / std in float32), so padded pixels
 * become -mean/std.  Draws per image: crop top, crop left (uniform in 0..8, as
 * torch.randint(0, 9)), then flip (p = 0.5). */
void vt_data_batch(const struct vt_dataset *d, const int *idx, int n, const struct vt_transform *t,
		   struct vt_rng *rng, float *out)
{
	size_t plane = (size_t)d->h * (size_t)d->w;
	float lut[3][256];
	int b, c, v;

	for (c = 0; c < 3; c++)
		for (v = 0; v < 256; v++) {
			float x = (float)v / 255.0f;
			if (t && t->mean && t->std)
				x = (x - t->mean[c]) / t->std[c];
			lut[c][v] = x;
		}
	for (b = 0; b < n; b++) {
		const unsigned char *img = d->pixels + (size_t)idx[b] * 3 * plane;
		float *o = out + (size_t)b * 3 * plane;
		int oy = 0, ox = 0, flip = 0, y, x;
		if (t && t->augment) {
			oy = (int)(vt_rng_uniform(rng) * (2 * PAD + 1));
			ox = (int)(vt_rng_uniform(rng) * (2 * PAD + 1));
			oy = (oy > 2 * PAD ? 2 * PAD : oy) - PAD;
			ox = (ox > 2 * PAD ? 2 * PAD : ox) - PAD;
			flip = vt_rng_uniform(rng) < 0.5;
		}
		for (c = 0; c < 3; c++)
			for (y = 0; y < d->h; y++) {
				int sy = y + oy;
				float *orow = o + (size_t)c * plane + (size_t)y * (size_t)d->w;
				const unsigned char *row;
				if (sy < 0 || sy >= d->h) {
					for (x = 0; x < d->w; x++)
						orow[x] = lut[c][0];
					continue;
				}
				row = img + (size_t)c * plane + (size_t)sy * (size_t)d->w;
				for (x = 0; x < d->w; x++) {
					int sx = (flip ? d->w - 1 - x : x) + ox;
					orow[x] = lut[c][sx >= 0 && sx < d->w ? row[sx] : 0];
				}
			}
	}
}
