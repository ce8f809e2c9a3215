/* fuzz_safetensors.c - libFuzzer target for safetensors files (src/safetensors.c and the
 * safetensors path of src/pth.c).
 *
 * Reads the input's header directly (vt_st_read_header), then opens it as vggtl load does
 * (vt_pth_open_src: zip, safetensors or legacy by content); for a safetensors file checks
 * that every tensor is contiguous, inside the file and that together they tile the data
 * section; then finds the weights and their state_dict and tries it as a VGG.  Every failure
 * must carry a negative code and a message.  Build and run: make fuzz (tools/fuzz.sh).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vt_model.h"
#include "vt_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vt_src src;
	struct vt_st_header h;
	struct vt_pth pth;
	struct vt_model m;
	struct vt_err err = { 0, "" };
	size_t i;
	int rc;

	vt_src_mem(&src, data, size, "fuzz");
	rc = vt_st_read_header(&h, &src, &err);
	if (rc != 0 && (rc >= 0 || !err.msg[0]))
		abort();
	if (rc == 0) {
		uint64_t covered = 0;
		for (i = 0; i < h.n; i++) {
			if (h.t[i].end < h.t[i].begin || h.t[i].end > size - h.data_start)
				abort();
			covered += h.t[i].end - h.t[i].begin;
		}
		if (covered != size - h.data_start)
			abort(); /* no gap, no overlap */
	}
	vt_st_header_release(&h);
	err.msg[0] = '\0';
	rc = vt_pth_open_src(&pth, &src, &err);
	if (rc != 0) {
		if (!err.msg[0] || rc >= 0)
			abort();
		vt_pth_close(&pth);
		return 0;
	}
	if (pth.is_safetensors) {
		for (i = 0; i < pth.nstorages; i++) {
			const struct vt_storage *s = pth.storages[i];
			if (s->src != VT_STORAGE_FILE || !s->resolved || s->offset > size ||
			    vt_storage_nbytes(s) > size - s->offset)
				abort();
		}
		for (i = 0; i < pth.root->u.dict.n; i++) {
			const struct vt_tensor *t = vt_pk_tensor(pth.root->u.dict.vals[i]);
			if (!t || vt_tensor_numel(t) != t->storage->numel || t->offset != 0)
				abort();
		}
	}
	{
		struct vt_weights w;
		struct vt_named *t = NULL;
		struct vt_meta *meta = NULL;
		size_t n = 0, nmeta = 0;
		if (vt_weights_find(&pth, NULL, &w, &err) == 0 &&
		    vt_weights_state_dict(&w, &t, &n, &meta, &nmeta, &err) == 0) {
			vt_named_free(t, n);
			vt_meta_free(meta, nmeta);
		}
	}
	if (vt_model_from_pth(&m, &pth, &err) == 0) {
		char *repr = vt_model_repr(&m);
		if (!repr || strncmp(repr, "VGG(", 4) != 0)
			abort();
		free(repr);
		vt_model_release(&m);
	} else if (!err.msg[0]) {
		abort();
	}
	vt_pth_close(&pth);
	return 0;
}
