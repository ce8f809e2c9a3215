/* vt_net.h - a model on libtorch: loading the shim (dlopen), turning a vt_model into the
 * shim's flat layer list and tensor table, and bringing trained tensors back.
 *
 * Only train/eval/predict use this; the checkpoint commands never load libtorch.
 */
#ifndef VT_NET_H
#define VT_NET_H

#include "vt_model.h"
#include "vt_shim.h"

/* The shim's entry points, found with dlsym. */
struct vt_shim_api {
	void *dl;
	int (*abi)(void);
	const char *(*last_error)(void);
	int (*device)(const char *, char *, size_t);
	int (*set_threads)(int);
	int (*seed)(uint64_t);
	int (*net_new)(vt_shim_net **, const struct vt_shim_layer *, int, int, const char *);
	void (*net_free)(vt_shim_net *);
	int (*net_set)(vt_shim_net *, int, int, void *, const int64_t *, int, int, int);
	int (*net_get)(vt_shim_net *, int, void *, size_t);
	int (*net_optimizer)(vt_shim_net *, const struct vt_shim_opt *);
	int (*net_precision)(vt_shim_net *, int);
	int (*net_scaler)(vt_shim_net *, const struct vt_shim_scaler *, struct vt_shim_scaler *);
	int (*net_state_get)(vt_shim_net *, int, int, float *, size_t, int *);
	int (*net_state_set)(vt_shim_net *, int, int, const float *, size_t);
	int (*net_step_count)(vt_shim_net *, int, int64_t *, const int64_t *);
	int (*net_run)(vt_shim_net *, const float *, const int64_t *, int, int, int, float *, size_t, int64_t *, int *);
	int (*net_train_step)(vt_shim_net *, const float *, const int64_t *, int, int, const int64_t *, double,
			      double *, int64_t *);
	int (*dist_init)(const struct vt_shim_dist *);
	void (*dist_free)(void);
	int (*dist_allreduce)(void *, size_t, int);
	int (*net_broadcast)(vt_shim_net *);
};

/* Opens libvggtl_shim.so: $VGGTL_SHIM, else beside the vggtl executable, else the library path. */
int vt_shim_open(struct vt_shim_api *api, struct vt_err *err);
void vt_shim_close(struct vt_shim_api *api);

struct vt_net {
	const struct vt_shim_api *api;
	vt_shim_net *h;
	struct vt_shim_layer *layers;
	int nlayers;
	int features_end;           /* first layer after features (the avgpool) */
	int ntensors;
	struct vt_named *tensors;   /* state_dict names and source tensors, by index */
	struct vt_module **mod;     /* the module and slot each tensor index belongs to */
	int *slot;
	int *trainable;             /* parameters the optimizer updates, by index */
	int nclasses;
};

/* Builds the network on device with the model's weights (read from src, generated, or from
 * memory). With freeze_features the features' parameters are not trained. */
int vt_net_build(struct vt_net *net, const struct vt_shim_api *api, const struct vt_model *m,
		 const struct vt_src *src, const char *device, int freeze_features, struct vt_err *err);
/* Copies every tensor back into m as contiguous in-memory storages (owned by m). */
int vt_net_download(struct vt_net *net, struct vt_model *m, struct vt_err *err);
void vt_net_free(struct vt_net *net);
/* The shim's message after a failed call, as an error. */
int vt_net_fail(const struct vt_net *net, const char *what, struct vt_err *err);

#endif
