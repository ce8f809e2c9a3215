/* shim_load.c - finding and opening libvggtl_shim.so (see include/vt_net.h). Loading it
 * costs libtorch's start-up (~0.4 s), which only the computing commands pay. */
#include "vt_net.h"

#include <dlfcn.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int try_open(struct vt_shim_api *api, const char *path, char *why, size_t size)
{
	api->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!api->dl) {
		snprintf(why, size, "%s", dlerror());
		return -1;
	}
	return 0;
}

int vt_shim_open(struct vt_shim_api *api, struct vt_err *err)
{
	char exe[4096], path[4200], why[512] = "";
	const char *env = getenv("VGGTL_SHIM");
	ssize_t n;
	size_t at;

	memset(api, 0, sizeof(*api));
	if (env && *env) {
		if (try_open(api, env, why, sizeof(why)))
			return vt_err_set(err, VT_ENOTFOUND, "cannot load the libtorch shim '%s' ($VGGTL_SHIM): %s", env, why);
	} else {
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n > 0) {
			exe[n] = '\0';
			/* beside vggtl (the build folder), then PREFIX/lib/vggtl for PREFIX/bin/vggtl */
			snprintf(path, sizeof(path), "%s/libvggtl_shim.so", dirname(exe));
			if (try_open(api, path, why, sizeof(why)) == 0)
				goto found;
			at = strlen(path) - strlen("libvggtl_shim.so");
			snprintf(path + at, sizeof(path) - at, "../lib/vggtl/libvggtl_shim.so");
			if (try_open(api, path, why, sizeof(why)) == 0)
				goto found;
		}
		if (try_open(api, "libvggtl_shim.so", why, sizeof(why)))
			return vt_err_set(err, VT_ENOTFOUND,
					  "cannot load the libtorch shim libvggtl_shim.so (looked beside vggtl, in ../lib/vggtl and on the library path: %s); build it with 'make'",
					  why);
	}
found:
#define SYM(field, name)                                                                         \
	do {                                                                                     \
		*(void **)(&api->field) = dlsym(api->dl, name);                                  \
		if (!api->field) {                                                               \
			vt_shim_close(api);                                                      \
			return vt_err_set(err, VT_EUNSUPPORTED, "the libtorch shim lacks %s", name); \
		}                                                                                \
	} while (0)
	SYM(abi, "vt_shim_abi");
	SYM(last_error, "vt_shim_last_error");
	SYM(device, "vt_shim_device");
	SYM(set_threads, "vt_shim_set_threads");
	SYM(seed, "vt_shim_seed");
	SYM(net_new, "vt_shim_net_new");
	SYM(net_free, "vt_shim_net_free");
	SYM(net_set, "vt_shim_net_set");
	SYM(net_get, "vt_shim_net_get");
	SYM(net_optimizer, "vt_shim_net_optimizer");
	SYM(net_precision, "vt_shim_net_precision");
	SYM(net_scaler, "vt_shim_net_scaler");
	SYM(net_state_get, "vt_shim_net_state_get");
	SYM(net_state_set, "vt_shim_net_state_set");
	SYM(net_step_count, "vt_shim_net_step_count");
	SYM(net_run, "vt_shim_net_run");
	SYM(net_train_step, "vt_shim_net_train_step");
	SYM(dist_init, "vt_shim_dist_init");
	SYM(dist_free, "vt_shim_dist_free");
	SYM(dist_allreduce, "vt_shim_dist_allreduce");
	SYM(net_broadcast, "vt_shim_net_broadcast");
#undef SYM
	if (api->abi() != VT_SHIM_ABI) {
		int got = api->abi();
		vt_shim_close(api);
		return vt_err_set(err, VT_EUNSUPPORTED, "the libtorch shim has ABI %d, vggtl needs %d: rebuild with 'make'",
				  got, VT_SHIM_ABI);
	}
	return 0;
}

/* libtorch is never unloaded: its thread pools and static destructors do not survive
 * dlclose, and the process is about to end anyway. */
void vt_shim_close(struct vt_shim_api *api)
{
	memset(api, 0, sizeof(*api));
}
