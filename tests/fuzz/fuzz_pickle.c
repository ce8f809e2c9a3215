/* fuzz_pickle.c - libFuzzer target for the unpickler VM (src/pickle.c).
 *
 * Hooks that allow every GLOBAL and turn persistent ids, calls and BUILDs into inert values,
 * so every opcode path of the VM is reachable; then the result is walked (bounded in depth
 * and in values, since memoized containers may be shared or cyclic).  The input is a
 * sequence of pickles, as in a legacy torch.save stream.
 * Build and run: make fuzz (tools/fuzz.sh).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vt_pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int allow_all(void *ctx, const char *module, const char *name, struct vt_err *err)
{
	(void)ctx;
	(void)err;
	return (int)((strlen(module) + strlen(name)) & 0xff);
}

static int persistent_load(void *ctx, struct vt_unpickler *u, struct vt_pk *pid, struct vt_pk **out,
			   struct vt_err *err)
{
	(void)ctx;
	if (pid->kind == VT_PK_INT && pid->u.i == 13)
		return vt_err_set(err, VT_EFORMAT, "fuzz: persistent id 13 refused");
	*out = vt_pk_ext(u, 1, pid);
	return *out ? 0 : vt_err_set(err, VT_ENOMEM, "out of memory");
}

static int reduce(void *ctx, struct vt_unpickler *u, struct vt_pk *fn, struct vt_pk *args, struct vt_pk **out,
		  struct vt_err *err)
{
	(void)ctx;
	if (fn->u.global.tag == 0)
		return vt_err_set(err, VT_EUNSAFE, "fuzz: tag 0 may not be called");
	*out = vt_pk_new(u, VT_PK_OBJECT);
	if (!*out)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	(*out)->u.obj.cls = fn;
	(*out)->u.obj.args = args;
	return 0;
}

static int build_ext(void *ctx, struct vt_unpickler *u, struct vt_pk *obj, struct vt_pk *state, struct vt_err *err)
{
	(void)ctx;
	(void)u;
	(void)obj;
	(void)err;
	return state && state->kind == VT_PK_NONE ? vt_err_set(err, VT_EFORMAT, "fuzz: BUILD with None") : 0;
}

static const struct vt_pk_hooks hooks = { allow_all, persistent_load, reduce, build_ext };

/* Touches every value reachable within the bounds; returns a checksum so nothing is elided. */
static size_t walk(const struct vt_pk *v, int depth, size_t *budget)
{
	size_t i, sum = 0;

	if (!v || depth > VT_PK_MAX_DEPTH || *budget == 0)
		return 0;
	(*budget)--;
	switch (v->kind) {
	case VT_PK_STR:
	case VT_PK_BYTES:
		return v->u.str.len + (unsigned char)v->u.str.s[v->u.str.len];
	case VT_PK_TUPLE:
	case VT_PK_LIST:
	case VT_PK_SET:
		for (i = 0; i < v->u.seq.n; i++)
			sum += walk(v->u.seq.items[i], depth + 1, budget);
		return sum;
	case VT_PK_DICT:
		for (i = 0; i < v->u.dict.n; i++)
			sum += walk(v->u.dict.keys[i], depth + 1, budget) + walk(v->u.dict.vals[i], depth + 1, budget);
		return sum + walk(v->u.dict.attrs, depth + 1, budget);
	case VT_PK_GLOBAL:
		return strlen(v->u.global.module) + strlen(v->u.global.name);
	case VT_PK_OBJECT:
		return walk(v->u.obj.cls, depth + 1, budget) + walk(v->u.obj.args, depth + 1, budget) +
		       walk(v->u.obj.state, depth + 1, budget);
	case VT_PK_EXT:
		return walk(v->u.ext.p, depth + 1, budget);
	default:
		return (size_t)v->kind;
	}
}

volatile size_t fuzz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vt_unpickler u;
	struct vt_src src;
	struct vt_err err = { 0, "" };
	struct vt_pk *v;
	uint64_t pos = 0;
	int i;

	vt_src_mem(&src, data, size, "fuzz");
	vt_unpickler_init(&u, &hooks, NULL);
	for (i = 0; i < 8 && pos < size; i++) {
		size_t budget = 100000;
		if (vt_unpickle(&u, &src, &pos, &v, &err) != 0) {
			if (!err.msg[0] || err.code >= 0)
				abort();
			break;
		}
		fuzz_sink += walk(v, 0, &budget);
		(void)vt_pk_dict_get(v, "state_dict");
		(void)vt_pk_seq_len(v);
		(void)vt_pk_obj_state(v);
	}
	vt_unpickler_release(&u);
	return 0;
}
