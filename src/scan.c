/* scan.c - listing what a file's pickles would make Python do (see include/vt_scan.h).
 *
 * The unpickler runs with recording hooks: find_class accepts every name, persistent ids
 * become None, every REDUCE becomes a call record, and the note hook counts each GLOBAL,
 * call, NEWOBJ and BUILD by (pickle, op, name).  No tensor, storage or value is built for
 * use: this reads the pickles only, never the tensor data.
 */
#include "vt_scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vt_pickle.h"
#include "vt_pth.h"
#include "vt_safetensors.h"
#include "vt_zip.h"

const char *const vt_scan_op_names[] = { "import", "call", "newobj", "build" };
const char *const vt_scan_verdict_names[] = { "data", "clean", "unknown call", "dangerous" };

struct ctx {
	struct vt_scan *sc;
	const char *pickle;
	uint64_t at; /* the offset of the last event noted */
	int oom;
};

static size_t hash(const char *pickle, enum vt_scan_op op, const char *name)
{
	size_t h = (size_t)(uintptr_t)pickle * 31u + (size_t)op;

	while (*name)
		h = (h ^ (unsigned char)*name++) * 1099511628211u;
	return h;
}

static size_t *slot(const struct vt_scan *sc, const char *pickle, enum vt_scan_op op, const char *name)
{
	size_t i = hash(pickle, op, name) & (sc->nslots - 1);

	while (sc->slots[i]) {
		const struct vt_scan_item *it = &sc->items[sc->slots[i] - 1];
		if (it->pickle == pickle && it->op == op && strcmp(it->name, name) == 0)
			break;
		i = (i + 1) & (sc->nslots - 1);
	}
	return &sc->slots[i];
}

static int grow(struct vt_scan *sc)
{
	size_t ncap = sc->cap ? 2 * sc->cap : 64, i;
	struct vt_scan_item *p = realloc(sc->items, ncap * sizeof(*p));
	size_t *slots = calloc(2 * ncap, sizeof(*slots));

	if (!p || !slots) {
		free(slots);
		if (p)
			sc->items = p;
		return -1;
	}
	sc->items = p;
	sc->cap = ncap;
	free(sc->slots);
	sc->slots = slots;
	sc->nslots = 2 * ncap;
	for (i = 0; i < sc->n; i++)
		*slot(sc, sc->items[i].pickle, sc->items[i].op, sc->items[i].name) = i + 1;
	return 0;
}

static enum vt_scan_verdict verdict(enum vt_scan_op op, const struct vt_pk *g)
{
	enum vt_global_kind k;

	if (!g || g->kind != VT_PK_GLOBAL) /* a call of what another call returned */
		return op == VT_SCAN_CALL ? VT_SCAN_UNKNOWN : VT_SCAN_CLEAN;
	k = vt_pth_global_kind(g->u.global.module, g->u.global.name);
	if (k == VT_GLOBAL_DANGEROUS)
		return VT_SCAN_DANGEROUS;
	if (op == VT_SCAN_CALL)
		return k == VT_GLOBAL_DATA ? VT_SCAN_DATA : VT_SCAN_UNKNOWN;
	return VT_SCAN_CLEAN;
}

static void record(struct ctx *c, enum vt_scan_op op, const struct vt_pk *what, uint64_t at)
{
	struct vt_scan *sc = c->sc;
	const struct vt_pk *g = what && what->kind == VT_PK_OBJECT ? what->u.obj.cls : what;
	char name[600];
	size_t *s;
	struct vt_scan_item *it;

	if (c->oom)
		return;
	if (g && g->kind == VT_PK_GLOBAL)
		snprintf(name, sizeof(name), "%s.%s", g->u.global.module, g->u.global.name);
	else
		snprintf(name, sizeof(name), "%s", op == VT_SCAN_CALL ? "(the result of another call)" : "(an object)");
	if (!sc->nslots && grow(sc)) {
		c->oom = 1;
		return;
	}
	s = slot(sc, c->pickle, op, name);
	if (*s) {
		sc->items[*s - 1].count++;
		return;
	}
	if (sc->n == sc->cap) {
		if (grow(sc)) {
			c->oom = 1;
			return;
		}
		s = slot(sc, c->pickle, op, name);
	}
	it = &sc->items[sc->n];
	it->pickle = c->pickle;
	it->offset = at;
	it->op = op;
	it->name = strdup(name);
	it->verdict = verdict(op, g);
	it->count = 1;
	if (!it->name) {
		c->oom = 1;
		return;
	}
	*s = ++sc->n;
	if (it->verdict >= VT_SCAN_UNKNOWN)
		sc->findings++;
	if (it->verdict == VT_SCAN_DANGEROUS)
		sc->dangerous++;
}

/* ---- hooks: accept everything, build nothing that could act -------------------------------- */

static int any_class(void *ctx, const char *module, const char *name, struct vt_err *err)
{
	(void)ctx;
	(void)module;
	(void)name;
	(void)err;
	return 0;
}

/* Storages become None; a legacy whole model's ('module', cls, file, source) is its class,
 * which NEWOBJ follows. */
static int any_pid(void *ctx, struct vt_unpickler *u, struct vt_pk *pid, struct vt_pk **out, struct vt_err *err)
{
	(void)ctx;
	if (vt_pk_seq_len(pid) == 4 && pid->kind == VT_PK_TUPLE && vt_pk_is_str(pid->u.seq.items[0], "module") &&
	    pid->u.seq.items[1]->kind == VT_PK_GLOBAL) {
		*out = pid->u.seq.items[1];
		return 0;
	}
	*out = vt_pk_new(u, VT_PK_NONE);
	return *out ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
}

static int is_global(const struct vt_pk *v, const char *module, const char *name)
{
	return v && v->kind == VT_PK_GLOBAL && strcmp(v->u.global.module, module) == 0 &&
	       strcmp(v->u.global.name, name) == 0;
}

/* Calls that call another callable themselves: torch's _rebuild_from_type_v2(func, ...)
 * calls func, copyreg._reconstructor(cls, base, state) calls base.__new__ and __init__
 * (harmless only for object).  The inner call is recorded as one too. */
static int any_call(void *ctx, struct vt_unpickler *u, struct vt_pk *fn, struct vt_pk *args, struct vt_pk **out,
		    struct vt_err *err)
{
	struct ctx *c = ctx;
	size_t n = args->u.seq.n;

	if (n >= 1 && is_global(fn, "torch._tensor", "_rebuild_from_type_v2"))
		record(c, VT_SCAN_CALL, args->u.seq.items[0], c->at);
	if (n >= 2 && (is_global(fn, "copyreg", "_reconstructor") || is_global(fn, "copy_reg", "_reconstructor")) &&
	    !vt_pth_is_object_type(args->u.seq.items[1]))
		record(c, VT_SCAN_CALL, args->u.seq.items[1], c->at);
	*out = vt_pk_call(u, fn, args);
	return *out ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
}

static void note(void *ctx, enum vt_pk_event ev, const struct vt_pk *what, uint64_t at)
{
	static const enum vt_scan_op ops[] = {
		[VT_PK_EV_GLOBAL] = VT_SCAN_IMPORT, [VT_PK_EV_CALL] = VT_SCAN_CALL,
		[VT_PK_EV_NEWOBJ] = VT_SCAN_NEWOBJ, [VT_PK_EV_BUILD] = VT_SCAN_BUILD,
	};

	((struct ctx *)ctx)->at = at;
	record(ctx, ops[ev], what, at);
}

static const struct vt_pk_hooks hooks = { any_class, any_pid, any_call, NULL, note };

/* ---- containers ------------------------------------------------------------------------- */

static const char *add_pickle(struct vt_scan *sc, const char *name)
{
	char **p = realloc(sc->pickles, (sc->npickles + 1) * sizeof(*p));

	if (!p)
		return NULL;
	sc->pickles = p;
	if (!(p[sc->npickles] = strdup(name)))
		return NULL;
	return p[sc->npickles++];
}

/* Runs one pickle of src at *pos; name labels its items. */
static int scan_one(struct vt_scan *sc, const struct vt_src *src, uint64_t *pos, const char *name,
		    struct vt_err *err)
{
	struct ctx c = { sc, NULL, 0, 0 };
	struct vt_unpickler u;
	struct vt_pk *v;
	int rc;

	if (!(c.pickle = add_pickle(sc, name)))
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	vt_unpickler_init(&u, &hooks, &c);
	rc = vt_unpickle(&u, src, pos, &v, err);
	vt_unpickler_release(&u);
	if (c.oom)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	return rc ? vt_err_prefix(err, "%s", name) : 0;
}

static int scan_zip(struct vt_scan *sc, const struct vt_src *src, struct vt_err *err)
{
	struct vt_zip zip;
	uint64_t i;
	int rc, first = 0;

	if ((rc = vt_zip_open(&zip, src, err)))
		return rc;
	sc->container = vt_zip_find(&zip, "constants.pkl") ? "torchscript" : "zip";
	for (i = 0; i < zip.n; i++) {
		const struct vt_zip_entry *e = &zip.entries[i];
		size_t n = strlen(e->name);
		unsigned char *buf = NULL;
		struct vt_src mem;
		uint64_t pos = 0;
		struct vt_err e2 = { 0 };
		if (n < 3 || strcmp(e->name + n - 3, "pkl") != 0)
			continue;
		if ((rc = vt_zip_read(&zip, e, 1u << 28, &buf, &e2)) == 0) {
			vt_src_mem(&mem, buf, (size_t)e->size, e->name);
			rc = scan_one(sc, &mem, &pos, e->name, &e2);
		}
		free(buf);
		if (rc && !first) { /* go on with the other records; the first error is the one told */
			*err = e2;
			first = rc;
			sc->incomplete = 1;
		}
	}
	if (!sc->npickles && !first)
		first = vt_err_set(err, VT_EFORMAT, "zip archive holds no pickle");
	vt_zip_release(&zip);
	return first;
}

static const unsigned char legacy_magic[] = { 0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
					      0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e };

/* Forgets the items from index keep on (a trailing stretch that was not a pickle). */
static void drop_items(struct vt_scan *sc, size_t keep)
{
	size_t i;

	while (sc->n > keep) {
		struct vt_scan_item *it = &sc->items[--sc->n];
		sc->findings -= it->verdict >= VT_SCAN_UNKNOWN;
		sc->dangerous -= it->verdict == VT_SCAN_DANGEROUS;
		free(it->name);
	}
	if (!sc->nslots)
		return;
	memset(sc->slots, 0, sc->nslots * sizeof(*sc->slots));
	for (i = 0; i < sc->n; i++)
		*slot(sc, sc->items[i].pickle, sc->items[i].op, sc->items[i].name) = i + 1;
}

static int scan_stream(struct vt_scan *sc, const struct vt_src *src, struct vt_err *err)
{
	static const char *const legacy_names[] = { "legacy magic number", "legacy protocol version",
						    "legacy sys_info", "legacy object", "legacy storage keys" };
	unsigned char head[sizeof(legacy_magic)];
	uint64_t pos = 0;
	size_t kept = 0;
	int legacy, i, rc;

	legacy = src->size >= sizeof(head) && vt_src_read(src, 0, head, sizeof(head), err) == 0 &&
		 memcmp(head, legacy_magic, sizeof(head)) == 0;
	sc->container = legacy ? "legacy" : "pickle";
	if (legacy) /* the magic number: a 10-byte integer, compared as bytes as torch does */
		pos = sizeof(legacy_magic);
	for (i = legacy; pos < src->size && (!legacy || i < 5); i++) {
		char name[32];
		struct vt_err e2 = { 0 };
		if (!legacy)
			snprintf(name, sizeof(name), "pickle %d", i + 1);
		rc = scan_one(sc, src, &pos, legacy ? legacy_names[i] : name, &e2);
		if (rc && (legacy || i == 0)) {
			*err = e2;
			sc->incomplete = 1;
			return rc;
		}
		if (rc) { /* after the first pickle, what follows need not be one (torch.load stops) */
			drop_items(sc, kept);
			sc->npickles--;
			free(sc->pickles[sc->npickles]);
			break;
		}
		kept = sc->n;
	}
	return 0;
}

/* A tar header (the torch.save of before 0.1.10, which torch.load still tries first): its
 * checksum at 148 matches the header's bytes, as tarfile checks it. */
static int is_tar(const struct vt_src *src)
{
	unsigned char h[512];
	struct vt_err e = { 0 };
	unsigned long sum = 0, want;
	char field[9];
	int i;

	if (src->size < sizeof(h) || vt_src_read(src, 0, h, sizeof(h), &e))
		return 0;
	for (i = 0; i < 512; i++)
		sum += i >= 148 && i < 156 ? ' ' : h[i];
	memcpy(field, h + 148, 8);
	field[8] = '\0';
	return sscanf(field, "%lo", &want) == 1 && want == sum;
}

/* safetensors: a JSON header and bytes, no pickle of its own; but torch.load, which does not
 * know the format, unpickles from offset 0, so what a pickle there would do counts. */
static int scan_safetensors(struct vt_scan *sc, const struct vt_src *src, struct vt_err *err)
{
	struct vt_st_header h;
	struct vt_err e2 = { 0 };
	uint64_t pos = 0;
	int rc = vt_st_read_header(&h, src, err);

	vt_st_header_release(&h);
	sc->container = "safetensors";
	if (rc)
		return rc;
	/* what it does before a parse error, Python has done too: its items stay; an empty one
	 * (the usual case: the header's first bytes are no pickle) is not listed */
	if (scan_one(sc, src, &pos, "pickle at offset 0 (what torch.load would run)", &e2) && sc->n == 0) {
		sc->npickles--;
		free(sc->pickles[sc->npickles]);
	}
	return 0;
}

int vt_scan_src(struct vt_scan *sc, const struct vt_src *src, struct vt_err *err)
{
	memset(sc, 0, sizeof(*sc));
	if (vt_zip_detect(src))
		return scan_zip(sc, src, err);
	if (is_tar(src)) {
		sc->container = "tar";
		return vt_err_set(err, VT_EUNSUPPORTED,
				  "a tar archive (torch.save before 0.1.10): torch.load would unpickle its members, which vggtl does not scan");
	}
	if (vt_st_detect(src))
		return scan_safetensors(sc, src, err);
	return scan_stream(sc, src, err);
}

int vt_scan_file(struct vt_scan *sc, const char *path, struct vt_err *err)
{
	struct vt_src src;
	int rc = vt_src_open(&src, path, err);

	if (rc) {
		memset(sc, 0, sizeof(*sc));
		return rc;
	}
	rc = vt_scan_src(sc, &src, err);
	vt_src_close(&src);
	if (rc)
		vt_err_prefix(err, "%s", path);
	return rc;
}

void vt_scan_release(struct vt_scan *sc)
{
	size_t i;

	for (i = 0; i < sc->n; i++)
		free(sc->items[i].name);
	for (i = 0; i < sc->npickles; i++)
		free(sc->pickles[i]);
	free(sc->items);
	free(sc->slots);
	free(sc->pickles);
	memset(sc, 0, sizeof(*sc));
}
