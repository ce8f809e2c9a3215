/* list_tensors.c - what the vggtl library does in a few lines: open any torch.save (or
 * safetensors) file, find its weights (a whole model of any class, a state_dict, a training
 * dict), and print each tensor's state_dict name, dtype and shape.  Nothing in the file runs.
 *
 *   cc list_tensors.c $(pkg-config --cflags --libs vggtl) -o list_tensors
 *   ./list_tensors model.pth
 */
#include <stdio.h>

#include <vggtl.h>

int main(int argc, char **argv)
{
	struct vt_pth pth;
	struct vt_weights w;
	struct vt_named *t;
	struct vt_err err = { 0 };
	size_t n, i;
	int d;

	if (argc != 2) {
		fprintf(stderr, "usage: list_tensors FILE\n");
		return 2;
	}
	if (vt_pth_open(&pth, argv[1], &err) || vt_weights_find(&pth, NULL, &w, &err) ||
	    vt_weights_state_dict(&w, &t, &n, NULL, NULL, &err)) {
		fprintf(stderr, "list_tensors: %s\n", err.msg);
		vt_pth_close(&pth);
		return 1;
	}
	for (i = 0; i < n; i++) {
		printf("%s %s [", t[i].name, vt_dtype_info(t[i].t->dtype)->name);
		for (d = 0; d < t[i].t->ndim; d++)
			printf("%s%lld", d ? ", " : "", (long long)t[i].t->size[d]);
		printf("]\n");
	}
	vt_named_free(t, n);
	vt_pth_close(&pth);
	return 0;
}
