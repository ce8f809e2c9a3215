/* fuzz_pth.c - libFuzzer target for torch.save files (src/pth.c, src/model.c, src/model_repr.c,
 * src/module.c, src/module_repr.c).
 *
 * Opens the input from memory as vggtl load does (zip or legacy, the torch hooks), checks
 * CRCs and tensor bounds, finds the weights of any model in it (module tree, state_dict,
 * TorchScript), computes their state_dict and prints the module tree; then finds a VGG in
 * it, prints it and lists its state_dict and _metadata; frees everything.  The state_dict's
 * storages are streamed as save-weights --dtype streams them (stored, deflated or legacy
 * bytes, cast to float16 or bfloat16) into a sink that checks the byte count.
 * Build and run: make fuzz (tools/fuzz.sh).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vt_cast.h"
#include "vt_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_put(void *ctx, const void *p, size_t n, struct vt_err *err)
{
	(void)p;
	(void)err;
	*(uint64_t *)ctx += n;
	return 0;
}

/* Streams every storage of a state_dict, cast, and checks that each gives its byte count. */
static void stream_all(struct vt_named *t, size_t n, const struct vt_src *src, int to)
{
	struct vt_cast_set set;
	struct vt_err err = { 0, "" };
	size_t i;

	if (vt_cast_state_dict(t, n, to, &set, &err) != 0)
		return;
	for (i = 0; i < n; i++) {
		const struct vt_storage *s = t[i].t->storage;
		uint64_t got = 0;
		if (vt_storage_nbytes(s) > (64u << 20))
			continue;
		if (vt_storage_stream(s, src, 0, s->numel, count_put, &got, &err) == 0 && got != vt_storage_nbytes(s))
			abort();
	}
	vt_cast_set_release(&set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vt_src src;
	struct vt_pth pth;
	struct vt_model m;
	struct vt_err err = { 0, "" };
	int rc;

	vt_src_mem(&src, data, size, "fuzz");
	rc = vt_pth_open_src(&pth, &src, &err);
	if (rc != 0) {
		if (!err.msg[0] || rc >= 0)
			abort(); /* every failure carries a negative code and a message */
		vt_pth_close(&pth);
		return 0;
	}
	(void)vt_pth_verify(&pth, &err);
	{
		struct vt_weights w;
		struct vt_named *t = NULL;
		struct vt_meta *meta = NULL;
		size_t n = 0, nmeta = 0, i;
		if (vt_weights_find(&pth, NULL, &w, &err) == 0) {
			if (vt_weights_state_dict(&w, &t, &n, &meta, &nmeta, &err) == 0) {
				for (i = 0; i < n; i++)
					if (!t[i].t || !t[i].t->storage || !t[i].t->storage->resolved)
						abort();
				stream_all(t, n, &src, size & 2 ? VT_F16 : VT_BF16);
				vt_named_free(t, n);
				vt_meta_free(meta, nmeta);
			} else if (!err.msg[0]) {
				abort();
			}
			if (w.kind == VT_WEIGHTS_MODULE)
				free(vt_mod_repr(w.node, size & 1 ? VT_TORCH_TEXT_2X : VT_TORCH_TEXT_1_13));
		} else if (!err.msg[0]) {
			abort();
		}
		err.msg[0] = '\0';
	}
	if (vt_model_from_pth(&m, &pth, &err) == 0) {
		struct vt_named *t = NULL;
		struct vt_meta *meta = NULL;
		size_t n = 0, nmeta = 0, i;
		char *repr = vt_model_repr(&m);
		if (!repr || strncmp(repr, "VGG(", 4) != 0)
			abort();
		free(repr);
		(void)vt_model_check(&m, &err);
		if (vt_model_state_dict(&m, "module.", &t, &n, &err) == 0) {
			for (i = 0; i < n; i++)
				if (!t[i].t || !t[i].t->storage || !t[i].t->storage->resolved)
					abort(); /* every tensor of a file has its bytes located */
			vt_named_free(t, n);
		}
		if (vt_model_metadata(&m, NULL, &meta, &nmeta, &err) == 0)
			vt_meta_free(meta, nmeta);
		vt_model_release(&m);
	} else if (!err.msg[0]) {
		abort();
	}
	vt_pth_close(&pth);
	return 0;
}
