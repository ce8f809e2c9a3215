/* write_state_dict.c - writing a state_dict from C arrays with the vggtl library: two
 * tensors (a 2x3 float32 weight and a float32 bias of 2) in memory, written as
 * torch.save(model.state_dict()) writes them.  Python loads the result with
 * torch.load(f, weights_only=True) and load_state_dict(nn.Linear(3, 2).state_dict()).
 *
 *   cc write_state_dict.c $(pkg-config --cflags --libs vggtl) -o write_state_dict
 *   ./write_state_dict linear.pth
 */
#include <stdio.h>
#include <string.h>

#include <vggtl.h>

/* A contiguous float32 tensor over data (the caller keeps data alive until the write). */
static void tensor(struct vt_tensor *t, struct vt_storage *s, float *data, int ndim, const int64_t *shape)
{
	int64_t numel = 1, stride = 1;
	int d;

	for (d = 0; d < ndim; d++)
		numel *= shape[d];
	memset(s, 0, sizeof(*s));
	s->key = "";
	s->location = "cpu";
	s->dtype = VT_F32;
	s->numel = (uint64_t)numel;
	s->src = VT_STORAGE_MEM;
	s->mem = data;
	memset(t, 0, sizeof(*t));
	t->storage = s;
	t->dtype = VT_F32;
	t->ndim = ndim;
	for (d = ndim - 1; d >= 0; d--) {
		t->size[d] = shape[d];
		t->stride[d] = stride;
		stride *= shape[d];
	}
}

int main(int argc, char **argv)
{
	float weight[6] = { 1, 2, 3, 4, 5, 6 }, bias[2] = { 0.5f, -0.5f };
	const int64_t wshape[2] = { 2, 3 }, bshape[1] = { 2 };
	struct vt_storage ws, bs;
	struct vt_tensor wt, bt;
	struct vt_named sd[2] = { { "weight", &wt }, { "bias", &bt } };
	struct vt_meta meta[1] = { { "", 1 } }; /* state_dict()._metadata: the root module, version 1 */
	struct vt_err err = { 0 };

	if (argc != 2) {
		fprintf(stderr, "usage: write_state_dict OUT.pth\n");
		return 2;
	}
	tensor(&wt, &ws, weight, 2, wshape);
	tensor(&bt, &bs, bias, 1, bshape);
	if (vt_pth_write_state_dict(argv[1], NULL, sd, 2, meta, 1, &err)) {
		fprintf(stderr, "write_state_dict: %s\n", err.msg);
		return 1;
	}
	return 0;
}
