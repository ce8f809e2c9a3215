/* vt_pickle.h - a Python pickle reader (a small VM that builds a value tree) and writer.
 *
 * The reader is a data parser, never an evaluator.  It understands every opcode of
 * protocols 0 to 5 but the extension registry and out-of-band buffers (see pickle.c).  Every
 * GLOBAL goes through the caller's find_class hook, which may refuse it; nothing is ever
 * called: REDUCE (and INST/OBJ, protocol 0's calls) goes to the caller's reduce hook, which
 * turns what it understands into data and anything else into an inert call record; NEWOBJ
 * makes an inert object record, BUILD stores the state in it, SETITEMS/APPENDS on an object
 * (a dict or list subclass) keep the items beside it.  The note hook sees every GLOBAL, call,
 * NEWOBJ and BUILD as it happens, for a scanner.
 * Containers may be shared or even cyclic (the memo allows it), so every walker of the tree
 * bounds its depth (VT_PK_MAX_DEPTH).
 *
 * All values live in an arena owned by the unpickler and die with vt_unpickler_release().
 */
#ifndef VT_PICKLE_H
#define VT_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "vt_err.h"
#include "vt_io.h"

#define VT_PK_MAX_DEPTH 200

enum vt_pk_kind {
	VT_PK_NONE,
	VT_PK_BOOL,
	VT_PK_INT,
	VT_PK_FLOAT,
	VT_PK_STR,    /* utf-8 text, u.str */
	VT_PK_BYTES,  /* u.str */
	VT_PK_TUPLE,  /* u.seq */
	VT_PK_LIST,   /* u.seq */
	VT_PK_SET,    /* u.seq */
	VT_PK_DICT,   /* u.dict; also OrderedDict */
	VT_PK_GLOBAL, /* a class or function, by name only: u.global */
	VT_PK_OBJECT, /* an inert object record (NEWOBJ) or call record (u.obj.call): u.obj */
	VT_PK_EXT     /* a hook's own value (tensor, storage, array): u.ext */
};

struct vt_pk {
	enum vt_pk_kind kind;
	union {
		int b;
		int64_t i;
		double f;
		struct { char *s; size_t len; } str;
		struct { struct vt_pk **items; size_t n, cap; } seq;
		/* ordered: made by OrderedDict(); attrs: its BUILD state (a state_dict's _metadata) */
		struct { struct vt_pk **keys, **vals; size_t n, cap; struct vt_pk *attrs; int ordered; } dict;
		struct { const char *module, *name; int tag; } global;
		/* cls: the class (NEWOBJ) or the callable (call records: any value, usually a
		 * GLOBAL); items: what SETITEMS/APPENDS added (a DICT or LIST), or NULL */
		struct { struct vt_pk *cls, *args, *state, *items; int call; } obj;
		struct { int type; void *p; } ext;
	} u;
};

struct vt_arena_block;
struct vt_arena {
	struct vt_arena_block *head;
	size_t used; /* bytes handed out, for limits */
};

void *vt_arena_alloc(struct vt_arena *a, size_t n);
void vt_arena_release(struct vt_arena *a);

struct vt_unpickler;

/* What the note hook is told about. */
enum vt_pk_event {
	VT_PK_EV_GLOBAL, /* GLOBAL/STACK_GLOBAL/INST: Python imports the module */
	VT_PK_EV_CALL,   /* REDUCE/INST/OBJ: Python calls the callable */
	VT_PK_EV_NEWOBJ, /* NEWOBJ: Python runs cls.__new__ */
	VT_PK_EV_BUILD   /* BUILD on an object of class cls: Python runs __setstate__ or updates __dict__ */
};

struct vt_pk_hooks {
	/* Returns a tag >= 0 for an allowed global, or fails (VT_EUNSAFE) naming it. */
	int (*find_class)(void *ctx, const char *module, const char *name, struct vt_err *err);
	/* BINPERSID: turns a persistent id into a value. NULL hook: persistent ids refused. */
	int (*persistent_load)(void *ctx, struct vt_unpickler *u, struct vt_pk *pid,
			       struct vt_pk **out, struct vt_err *err);
	/* REDUCE of a global (callable->u.global.tag) with an args tuple; REDUCE of any other
	 * value becomes a call record without the hook. */
	int (*reduce)(void *ctx, struct vt_unpickler *u, struct vt_pk *callable, struct vt_pk *args,
		      struct vt_pk **out, struct vt_err *err);
	/* BUILD on a VT_PK_EXT value; NULL: ignored. */
	int (*build_ext)(void *ctx, struct vt_unpickler *u, struct vt_pk *obj, struct vt_pk *state,
			 struct vt_err *err);
	/* Optional: told of each event at offset at; what is the GLOBAL, callable or class. */
	void (*note)(void *ctx, enum vt_pk_event ev, const struct vt_pk *what, uint64_t at);
};

struct vt_unpickler {
	struct vt_arena arena;
	const struct vt_pk_hooks *hooks;
	void *ctx;
	/* the byte cursor: a window over src */
	const struct vt_src *src;
	uint64_t pos, end;
	unsigned char *buf;
	uint64_t buf_off;
	size_t buf_len;
	/* VM state */
	struct vt_pk **stack;
	size_t sp, stack_cap;
	size_t *marks;
	size_t nmarks, marks_cap;
	struct vt_pk **memo;
	size_t memo_cap;
};

void vt_unpickler_init(struct vt_unpickler *u, const struct vt_pk_hooks *hooks, void *ctx);
void vt_unpickler_release(struct vt_unpickler *u);
/* Runs one pickle from src at *pos up to STOP; on success *pos is just past STOP and *out
 * is the result.  Messages say "pickle: ... at offset N" (offset within src). Memo and
 * arena persist across calls on the same unpickler, as in one Python Unpickler. */
int vt_unpickle(struct vt_unpickler *u, const struct vt_src *src, uint64_t *pos,
		struct vt_pk **out, struct vt_err *err);

/* Value constructors for hooks (allocated in the unpickler's arena; NULL when out of memory). */
struct vt_pk *vt_pk_new(struct vt_unpickler *u, enum vt_pk_kind kind);
struct vt_pk *vt_pk_ext(struct vt_unpickler *u, int type, void *p);
/* An inert call record: callable(*args), never called. */
struct vt_pk *vt_pk_call(struct vt_unpickler *u, struct vt_pk *callable, struct vt_pk *args);
/* Appends key/value to a dict (duplicates are kept; lookups take the last). VT_ENOMEM or 0. */
int vt_pk_dict_set(struct vt_unpickler *u, struct vt_pk *d, struct vt_pk *k, struct vt_pk *v);

/* Lookups on a tree, all tolerant of NULL and of the wrong kind (they return NULL / 0). */
struct vt_pk *vt_pk_dict_get(const struct vt_pk *dict, const char *key);
int vt_pk_is_str(const struct vt_pk *v, const char *s);
int vt_pk_seq_len(const struct vt_pk *v); /* items in a tuple/list, -1 otherwise */
/* The state dict of an object (BUILD argument), or NULL. */
struct vt_pk *vt_pk_obj_state(const struct vt_pk *obj);
/* "module.name" of a GLOBAL, of an object record's class or of a call record's callable
 * into buf; "" for anything else. */
const char *vt_pk_class_path(const struct vt_pk *v, char *buf, size_t size);
/* The class name (after the last dot) of an object record, or NULL. */
const char *vt_pk_obj_class(const struct vt_pk *obj);

/* ---- writer ---------------------------------------------------------------------------- */

/* Emits protocol-2 pickles the way CPython's C pickler does for torch.save: a fresh memo
 * entry (BINPUT) after every new string, tuple, dict, list, global and REDUCE/NEWOBJ result,
 * BINGET for repeated globals and interned strings.  Output accumulates in memory. */
struct vt_pkw_intern;
struct vt_pkw {
	unsigned char *buf;
	size_t len, cap;
	int oom;           /* set when an allocation failed; checked once at the end */
	uint32_t next_memo;
	struct vt_pkw_intern *intern; /* memoized globals and interned strings */
	size_t nintern, intern_cap;
};

void vt_pkw_init(struct vt_pkw *w);
void vt_pkw_release(struct vt_pkw *w);
void vt_pkw_op(struct vt_pkw *w, unsigned char op); /* a bare opcode: MARK, REDUCE, ... */
void vt_pkw_put(struct vt_pkw *w);                  /* memoize the top of stack (as w->next_memo) */
void vt_pkw_get(struct vt_pkw *w, uint32_t idx);    /* push memo entry idx */
void vt_pkw_global(struct vt_pkw *w, const char *module, const char *name);
void vt_pkw_str(struct vt_pkw *w, const char *s);         /* a new string object */
void vt_pkw_str_interned(struct vt_pkw *w, const char *s); /* the same object each time */
void vt_pkw_str_key(struct vt_pkw *w, const char *s);      /* likewise, a separate namespace */
void vt_pkw_int(struct vt_pkw *w, int64_t v);
void vt_pkw_float(struct vt_pkw *w, double v);
void vt_pkw_bool(struct vt_pkw *w, int v);
void vt_pkw_none(struct vt_pkw *w);
/* Tuples: begin(n) then n values then end(n). Uses EMPTY_TUPLE, TUPLE1..3 or MARK..TUPLE. */
void vt_pkw_tuple_begin(struct vt_pkw *w, int n);
void vt_pkw_tuple_end(struct vt_pkw *w, int n);
/* Dict/list items in CPython's batches of 1000: call batch_begin(i, n) before item i of n
 * and batch_end(i, n) after it; they emit MARK / SETITEM(S) / APPEND(S) as CPython does. */
void vt_pkw_batch_begin(struct vt_pkw *w, size_t i, size_t n);
void vt_pkw_batch_end(struct vt_pkw *w, size_t i, size_t n, int is_list);

enum {
	VT_OP_MARK = '(', VT_OP_STOP = '.', VT_OP_EMPTY_DICT = '}', VT_OP_EMPTY_LIST = ']',
	VT_OP_EMPTY_TUPLE = ')', VT_OP_REDUCE = 'R', VT_OP_BUILD = 'b', VT_OP_NEWOBJ = 0x81,
	VT_OP_BINPERSID = 'Q', VT_OP_PROTO = 0x80, VT_OP_TUPLE = 't', VT_OP_SETITEM = 's',
	VT_OP_SETITEMS = 'u', VT_OP_APPEND = 'a', VT_OP_APPENDS = 'e'
};

#endif
