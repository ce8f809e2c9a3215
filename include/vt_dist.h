/* vt_dist.h - this process's place in a distributed training job, read from the launcher's
 * environment as torch.distributed's env:// does (torchrun, or srun/mpirun wrappers that
 * export the same variables), and joining it through the shim's c10d process group.
 *
 * Read: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT,
 * TORCHELASTIC_USE_AGENT_STORE and TORCHELASTIC_RESTART_COUNT (the agent hosts the store;
 * keys go under /worker/attempt_N/, as torch does), GLOO_SOCKET_IFNAME.
 */
#ifndef VT_DIST_H
#define VT_DIST_H

#include "vt_err.h"
#include "vt_net.h"

struct vt_dist {
	int rank, world;             /* 0 and 1 outside a job */
	int local_rank, local_world; /* on this machine; local_world 1 when not given */
	char addr[256];
	int port;
	int agent_store;             /* every rank is a client of the launcher's store */
	char prefix[64];
	const char *ifname;
	int joined;                  /* vt_dist_start succeeded */
};

/* Fills d from the environment. No RANK or WORLD_SIZE: world 1. A partial or inconsistent
 * set (RANK without WORLD_SIZE, rank >= world, no MASTER_ADDR / MASTER_PORT) is an error. */
int vt_dist_from_env(struct vt_dist *d, struct vt_err *err);
/* Joins the job (world > 1; nothing otherwise) with backend and timeout (seconds), and gives
 * every rank rank 0's weights and buffers. */
int vt_dist_start(struct vt_dist *d, struct vt_net *net, const char *backend, double timeout, struct vt_err *err);
void vt_dist_stop(struct vt_dist *d, const struct vt_shim_api *api);

#endif
