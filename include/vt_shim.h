/* vt_shim.h - the C API of shim/, the only C++ in vggtl: a VGG-shaped network run by libtorch.
 *
 * Conventions (after PyTorch's AOTI C shim): opaque handles, every call returns 0 or -1,
 * vt_shim_last_error() holds the message of the last failure on this thread, no C++
 * exception crosses this boundary, and only pointers, integers, floats and these structs do.
 *
 * The shim lives in libvggtl_shim.so, opened with dlopen by the commands that compute
 * (src/shim_load.c), so that load/extend/save-* never pay libtorch's start-up.
 *
 * The network is a flat list of layers run in order (VGG.forward: features, avgpool,
 * flatten, classifier). Tensors are numbered as in state_dict() order; each layer names its
 * tensors by index. Parameters train with PyTorch's own SGD or Adam update rules, whose
 * state (momentum_buffer; exp_avg, exp_avg_sq, step) can be read and written for checkpoints.
 *
 * Data-parallel training (shim/dist.cpp) runs on c10d: once vt_shim_dist_init has joined a
 * process group of more than one rank, every training step averages its gradients across
 * the ranks before the optimizer update.
 */
#ifndef VT_SHIM_H
#define VT_SHIM_H

#include <stddef.h>
#include <stdint.h>

#define VT_SHIM_ABI 5

enum vt_shim_layer_kind {
	VT_L_CONV, VT_L_BN, VT_L_RELU, VT_L_MAXPOOL, VT_L_AVGPOOL, VT_L_FLATTEN, VT_L_LINEAR, VT_L_DROPOUT
};

struct vt_shim_layer {
	int kind;
	int64_t kernel[2], stride[2], padding[2], dilation[2], groups; /* conv, maxpool */
	int ceil_mode;                                                /* maxpool */
	int64_t output_size[2];                                       /* avgpool */
	double p;                                                     /* dropout */
	double eps, momentum;                                         /* bn (momentum < 0: None) */
	int t[5]; /* tensor indices: weight, bias, running_mean, running_var, num_batches_tracked; -1 none */
};

enum vt_shim_optim { VT_OPT_SGD, VT_OPT_ADAM };

struct vt_shim_opt {
	int kind;
	double lr, momentum, weight_decay; /* SGD: dampening 0, no nesterov, as PyTorch's defaults */
	double beta1, beta2, eps;          /* Adam */
};

typedef struct vt_shim_net vt_shim_net;

int vt_shim_abi(void);
const char *vt_shim_last_error(void);
/* Resolves "auto", "cpu", "cuda", "cuda:N" to a usable device name, or fails clearly. */
int vt_shim_device(const char *want, char *resolved, size_t size);
int vt_shim_set_threads(int n);
int vt_shim_seed(uint64_t seed);

int vt_shim_net_new(vt_shim_net **out, const struct vt_shim_layer *layers, int nlayers, int ntensors,
		    const char *device);
void vt_shim_net_free(vt_shim_net *net);
/* Sets tensor index from contiguous host data: dtype 0 float32, 1 int64. trainable marks a
 * parameter the optimizer updates (frozen parameters and buffers pass 0). With adopt, data
 * is a malloc'ed buffer the shim takes over (and frees), on success or failure: on the CPU
 * it becomes the tensor without a copy. */
int vt_shim_net_set(vt_shim_net *net, int index, int dtype, void *data, const int64_t *shape, int ndim,
		    int trainable, int adopt);
/* Copies tensor index back to host memory (nbytes must match). */
int vt_shim_net_get(vt_shim_net *net, int index, void *data, size_t nbytes);
int vt_shim_net_optimizer(vt_shim_net *net, const struct vt_shim_opt *opt);
/* Mixed precision of every later run and training step, as torch.autocast: fp32 weights,
 * gradients and optimizer state; convolutions and linear layers in bf16 (CPU with AVX512_BF16
 * or AMX, or CUDA) or fp16 (CUDA only); the loss in fp32. Refused where the device lacks it. */
enum vt_shim_precision { VT_PREC_FP32, VT_PREC_BF16, VT_PREC_FP16 };
int vt_shim_net_precision(vt_shim_net *net, int precision);
/* Optimizer state of tensor index: which 0 = momentum_buffer / exp_avg, 1 = exp_avg_sq.
 * get fails when the state does not exist yet; step is Adam's step count. */
int vt_shim_net_state_get(vt_shim_net *net, int index, int which, float *data, size_t numel, int *exists);
int vt_shim_net_state_set(vt_shim_net *net, int index, int which, const float *data, size_t numel);
int vt_shim_net_step_count(vt_shim_net *net, int index, int64_t *get, const int64_t *set);

/* Dynamic loss scaling, as torch.amp.GradScaler: each training step backpropagates
 * loss x scale, unscales the gradients (x 1/scale in float32), and when any is inf or NaN
 * skips the optimizer update and multiplies scale by backoff_factor; after growth_interval
 * clean steps in a row it multiplies scale by growth_factor (kept only when finite). scale
 * is a float32, as GradScaler's _scale tensor. skipped counts the steps skipped so far. */
struct vt_shim_scaler {
	int on;
	double scale, growth_factor, backoff_factor;
	int64_t growth_interval, growth_tracker, skipped;
};
/* Sets (set != NULL) and/or reads (get != NULL) the scaler. */
int vt_shim_net_scaler(vt_shim_net *net, const struct vt_shim_scaler *set, struct vt_shim_scaler *get);

/* Eval-mode forward (no autograd) of layers [from, to) on x of shape xshape (ndim 2 or 4);
 * writes the output to out (capacity out_numel floats) and its shape to oshape/ondim. */
int vt_shim_net_run(vt_shim_net *net, const float *x, const int64_t *xshape, int xndim, int from, int to,
		    float *out, size_t out_numel, int64_t *oshape, int *ondim);
/* One training step of layers [from, end) on x with labels y (cross-entropy, mean over the
 * batch): forward in train mode, backward, optimizer update with learning rate lr (skipped
 * when the loss scaler finds inf or NaN gradients). loss is the unscaled loss. */
int vt_shim_net_train_step(vt_shim_net *net, const float *x, const int64_t *xshape, int xndim, int from,
			   const int64_t *y, double lr, double *loss, int64_t *correct);

/* One process's place in a distributed job, as torch.distributed's env:// reads it. */
struct vt_shim_dist {
	const char *backend;   /* "gloo" (or "nccl", refused by a shim built without it) */
	const char *addr;      /* MASTER_ADDR */
	int port;              /* MASTER_PORT */
	int rank, world;
	int client_only;       /* the launcher's agent hosts the store: every rank connects to it */
	const char *prefix;    /* store key prefix ("" none) */
	double timeout;        /* seconds: the rendezvous and every collective */
	const char *ifname;    /* network interface for Gloo (GLOO_SOCKET_IFNAME), or NULL */
};

/* Joins the job: the store (rank 0 hosts it unless client_only), then the Gloo group. */
int vt_shim_dist_init(const struct vt_shim_dist *d);
void vt_shim_dist_free(void);
/* Sums data (n values; dtype 0 float32, 2 float64) over the ranks, in place. */
int vt_shim_dist_allreduce(void *data, size_t n, int dtype);
/* Rank 0's tensors (parameters and buffers) to every rank. */
int vt_shim_net_broadcast(vt_shim_net *net);

#endif
