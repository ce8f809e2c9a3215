/* dist.c - the launcher's environment and joining a job (see include/vt_dist.h); the
 * collectives themselves are libtorch's c10d, in shim/dist.cpp. */
#include "vt_dist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An integer variable: 0 when unset (*set = 0), an error when not a number in [lo, hi]. */
static int env_int(const char *name, long lo, long hi, int *v, int *set, struct vt_err *err)
{
	const char *s = getenv(name);
	char *end;
	long x;

	*set = s && *s;
	if (!*set)
		return 0;
	errno = 0;
	x = strtol(s, &end, 10);
	if (errno || *end || x < lo || x > hi)
		return vt_err_set(err, VT_EUSAGE, "%s='%s' is not a number from %ld to %ld", name, s, lo, hi);
	*v = (int)x;
	return 0;
}

int vt_dist_from_env(struct vt_dist *d, struct vt_err *err)
{
	const char *addr = getenv("MASTER_ADDR"), *agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
	const char *attempt = getenv("TORCHELASTIC_RESTART_COUNT");
	int has_rank, has_world, has_local, has_lw, has_port, rc;

	memset(d, 0, sizeof(*d));
	d->world = d->local_world = 1;
	if ((rc = env_int("RANK", 0, 1 << 20, &d->rank, &has_rank, err)) ||
	    (rc = env_int("WORLD_SIZE", 1, 1 << 20, &d->world, &has_world, err)) ||
	    (rc = env_int("LOCAL_RANK", 0, 1 << 20, &d->local_rank, &has_local, err)) ||
	    (rc = env_int("LOCAL_WORLD_SIZE", 1, 1 << 20, &d->local_world, &has_lw, err)) ||
	    (rc = env_int("MASTER_PORT", 1, 65535, &d->port, &has_port, err)))
		return rc;
	if (has_rank != has_world)
		return vt_err_set(err, VT_EUSAGE, "%s is set but %s is not (a launcher such as torchrun sets both)",
				  has_rank ? "RANK" : "WORLD_SIZE", has_rank ? "WORLD_SIZE" : "RANK");
	if (d->rank >= d->world)
		return vt_err_set(err, VT_EUSAGE, "RANK=%d is not below WORLD_SIZE=%d", d->rank, d->world);
	if (d->local_rank >= d->local_world && has_lw)
		return vt_err_set(err, VT_EUSAGE, "LOCAL_RANK=%d is not below LOCAL_WORLD_SIZE=%d", d->local_rank,
				  d->local_world);
	if (d->world == 1)
		return 0;
	if (!addr || !*addr || !has_port)
		return vt_err_set(err, VT_EUSAGE, "WORLD_SIZE=%d but MASTER_ADDR or MASTER_PORT is not set (where rank 0 "
				  "or the launcher hosts the rendezvous store)", d->world);
	if (strlen(addr) >= sizeof(d->addr))
		return vt_err_set(err, VT_EUSAGE, "MASTER_ADDR is too long");
	strcpy(d->addr, addr);
	/* torch's env:// reads "True" (and torchrun writes it so) */
	d->agent_store = agent && (strcmp(agent, "True") == 0 || strcmp(agent, "true") == 0 || strcmp(agent, "1") == 0);
	if (d->agent_store)
		snprintf(d->prefix, sizeof(d->prefix), "/worker/attempt_%.20s/", attempt && *attempt ? attempt : "0");
	d->ifname = getenv("GLOO_SOCKET_IFNAME");
	return 0;
}

int vt_dist_start(struct vt_dist *d, struct vt_net *net, const char *backend, double timeout, struct vt_err *err)
{
	struct vt_shim_dist sd = { 0 };

	if (d->world == 1)
		return 0;
	sd.backend = backend;
	sd.addr = d->addr;
	sd.port = d->port;
	sd.rank = d->rank;
	sd.world = d->world;
	sd.client_only = d->agent_store;
	sd.prefix = d->prefix;
	sd.timeout = timeout;
	sd.ifname = d->ifname;
	if (net->api->dist_init(&sd))
		return vt_err_set(err, VT_EIO, "%s", net->api->last_error());
	d->joined = 1;
	if (net->api->net_broadcast(net->h))
		return vt_err_set(err, VT_EIO, "%s", net->api->last_error());
	return 0;
}

void vt_dist_stop(struct vt_dist *d, const struct vt_shim_api *api)
{
	if (d->joined)
		api->dist_free();
	d->joined = 0;
}
