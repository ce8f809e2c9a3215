// dist.cpp - data-parallel training on PyTorch's own c10d: a TCPStore for the rendezvous and
// a Gloo process group for the collectives, as torch.distributed.init_process_group("gloo",
// init_method="env://") makes them; the C API is the vt_shim_dist_* part of vt_shim.h.
//
// Gradients are averaged the way DistributedDataParallel's reducer does it: parameters are
// grouped into buckets of about 25 MiB in the order backward produces their gradients (the
// last layer first), a hook on each parameter copies its gradient into its bucket, and a full
// bucket's all-reduce starts at once, in bucket order on every rank, while backward computes
// the layers before it. finish() waits for them and writes gradient / world into .grad.
//
// Not here: NCCL (Debian's libtorch is CPU only; with a CUDA libtorch the buckets travel
// through host memory over Gloo), process groups other than the default one, and elastic
// restarts (a rank that fails ends the job; torchrun's --max_restarts would start it anew).
// libtorch's headers show c10d's Gloo classes only under the macros its own build defines
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#ifndef USE_DISTRIBUTED
#define USE_DISTRIBUTED 1
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" {
#include "vt_shim.h"
}
#include "internal.hpp"

namespace {

constexpr int64_t kBucketBytes = 25 << 20; // DDP's bucket_cap_mb

struct Bucket {
	std::vector<int> params;
	torch::Tensor flat; // float32, on the CPU (Gloo)
	int pending = 0;
	c10::intrusive_ptr<c10d::Work> work;
};

struct Group {
	c10::intrusive_ptr<c10d::Store> store;
	c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
	int rank = 0, world = 1;
	// the reducer
	std::vector<int> params;              // the last expect()'s parameters
	std::vector<Bucket> buckets;
	std::vector<int> bucket_of, offset;   // by tensor index: -1 when not reduced
	std::vector<char> ready;              // by tensor index: this step's gradient is in its bucket
	std::vector<c10::TensorImpl *> hooked; // by tensor index: the tensor that has our hook
	size_t next = 0;                      // the next bucket to start
	bool in_step = false;
};

Group *group;

// TCPStoreOptions::useLibUV exists from torch 2.2 on; false there, nothing before.
template <typename T> auto no_libuv(T &o, int) -> decltype(o.useLibUV = false, bool())
{
	o.useLibUV = false;
	return true;
}
template <typename T> bool no_libuv(T &, long)
{
	return false;
}

std::string prefixed(const std::exception &e)
{
	return std::string("distributed (rank ") + std::to_string(group ? group->rank : -1) + "): " + e.what();
}

void start_ready_buckets(Group &g)
{
	while (g.next < g.buckets.size() && g.buckets[g.next].pending == 0) {
		std::vector<at::Tensor> v{g.buckets[g.next].flat};
		g.buckets[g.next].work = g.pg->allreduce(v);
		g.next++;
	}
}

void on_grad(int index, const torch::Tensor &grad)
{
	Group *g = group;
	if (!g || !g->in_step || index >= (int)g->bucket_of.size() || g->bucket_of[index] < 0 || g->ready[index])
		return;
	Bucket &b = g->buckets[g->bucket_of[index]];
	torch::NoGradGuard ng;
	b.flat.narrow(0, g->offset[index], grad.numel()).copy_(grad.reshape(-1));
	g->ready[index] = 1;
	b.pending--;
	start_ready_buckets(*g);
}

// Buckets in backward order: the parameters from the last one to the first.
void plan_buckets(Group &g, const std::vector<torch::Tensor> &t, const std::vector<int> &params)
{
	g.params = params;
	g.buckets.clear();
	g.bucket_of.assign(t.size(), -1);
	g.offset.assign(t.size(), 0);
	int64_t bytes = 0;
	for (auto it = params.rbegin(); it != params.rend(); ++it) {
		int64_t n = t[*it].numel();
		if (g.buckets.empty() || (bytes > 0 && bytes + n * 4 > kBucketBytes)) {
			g.buckets.emplace_back();
			bytes = 0;
		}
		Bucket &b = g.buckets.back();
		g.bucket_of[*it] = (int)g.buckets.size() - 1;
		g.offset[*it] = bytes / 4;
		b.params.push_back(*it);
		bytes += n * 4;
	}
	for (auto &b : g.buckets) {
		int64_t n = 0;
		for (int p : b.params)
			n += t[p].numel();
		b.flat = torch::empty({n}, torch::kFloat32);
	}
}

} // namespace

namespace vt_dist {

bool active()
{
	return group && group->world > 1;
}

void expect(const std::vector<torch::Tensor> &t, const std::vector<int> &params)
{
	Group &g = *group;
	if (params != g.params || g.bucket_of.size() != t.size())
		plan_buckets(g, t, params);
	if (g.hooked.size() != t.size())
		g.hooked.assign(t.size(), nullptr);
	for (int p : params) {
		if (t[p].scalar_type() != torch::kFloat32)
			throw std::runtime_error("distributed training needs float32 parameters");
		if (g.hooked[p] != t[p].unsafeGetTensorImpl()) {
			t[p].register_hook([p](torch::Tensor grad) { on_grad(p, grad); });
			g.hooked[p] = t[p].unsafeGetTensorImpl();
		}
	}
	g.ready.assign(t.size(), 0);
	for (auto &b : g.buckets) {
		b.pending = (int)b.params.size();
		b.work.reset();
	}
	g.next = 0;
	g.in_step = true;
}

void finish(const std::vector<torch::Tensor> &t, torch::Tensor extra)
{
	Group &g = *group;
	g.in_step = false;
	torch::NoGradGuard ng;
	try {
		// a parameter whose hook did not run (no gradient this step) contributes zeros;
		// every rank runs the same graph, so that happens on all of them or none
		for (auto &b : g.buckets)
			for (int p : b.params)
				if (!g.ready[p]) {
					torch::Tensor slice = b.flat.narrow(0, g.offset[p], t[p].numel());
					if (t[p].grad().defined())
						slice.copy_(t[p].grad().reshape(-1));
					else
						slice.zero_();
					g.ready[p] = 1;
					b.pending--;
				}
		start_ready_buckets(g);
		c10::intrusive_ptr<c10d::Work> extra_work;
		torch::Tensor extra_cpu;
		if (extra.defined()) {
			extra_cpu = extra.to(torch::kCPU, torch::kFloat32).contiguous().clone();
			std::vector<at::Tensor> v{extra_cpu};
			extra_work = g.pg->allreduce(v);
		}
		double inv = 1.0 / g.world;
		for (auto &b : g.buckets) {
			b.work->wait();
			b.flat.mul_(inv);
			for (int p : b.params) {
				torch::Tensor avg = b.flat.narrow(0, g.offset[p], t[p].numel()).view(t[p].sizes());
				torch::Tensor &grad = const_cast<torch::Tensor &>(t[p]).mutable_grad();
				if (grad.defined())
					grad.copy_(avg);
				else
					grad = avg.to(t[p].device()).clone();
			}
		}
		if (extra_work) {
			extra_work->wait();
			extra.copy_(extra_cpu.mul_(inv));
		}
	} catch (const std::exception &e) {
		throw std::runtime_error(prefixed(e));
	}
}

void broadcast(std::vector<torch::Tensor> &t)
{
	Group &g = *group;
	torch::NoGradGuard ng;
	try {
		for (auto &x : t) {
			if (!x.defined())
				continue;
			torch::Tensor h = x.to(torch::kCPU).contiguous().clone();
			std::vector<at::Tensor> v{h};
			c10d::BroadcastOptions o;
			o.rootRank = 0;
			g.pg->broadcast(v, o)->wait();
			x.copy_(h);
		}
	} catch (const std::exception &e) {
		throw std::runtime_error(prefixed(e));
	}
}

} // namespace vt_dist

extern "C" {

int vt_shim_dist_init(const struct vt_shim_dist *d)
{
	GUARD({
		if (group)
			throw std::runtime_error("distributed: already initialised");
		std::string backend = d->backend ? d->backend : "auto";
		if (backend == "auto") // NCCL would be CUDA's choice, but this shim has only Gloo
			backend = "gloo";
		if (backend == "nccl")
			throw std::runtime_error("distributed: this build has no NCCL (Debian's libtorch is CPU only); "
						 "use --dist-backend gloo");
		if (backend != "gloo")
			throw std::runtime_error("distributed: unknown backend '" + backend + "' (auto, gloo or nccl)");
		if (d->world < 1 || d->rank < 0 || d->rank >= d->world)
			throw std::runtime_error("distributed: rank " + std::to_string(d->rank) + " is not in a world of " +
						 std::to_string(d->world));
		auto timeout = std::chrono::milliseconds((int64_t)(d->timeout * 1000));
		std::unique_ptr<Group> g(new Group);
		g->rank = d->rank;
		g->world = d->world;
		std::string where = std::string(d->addr) + ":" + std::to_string(d->port);
		try {
			c10d::TCPStoreOptions so;
			so.port = (uint16_t)d->port;
			so.isServer = !d->client_only && d->rank == 0;
			so.numWorkers = d->world;
			so.waitWorkers = false;
			so.timeout = timeout;
			c10::intrusive_ptr<c10d::TCPStore> tcp;
			try {
				tcp = c10::make_intrusive<c10d::TCPStore>(d->addr, so);
			} catch (const std::exception &e) {
				// torch 2.4+ asks for libuv by default, which some builds (Debian 13's
				// 2.6) lack: then the classic socket loop
				if (!std::strstr(e.what(), "libuv") || !no_libuv(so, 0))
					throw;
				tcp = c10::make_intrusive<c10d::TCPStore>(d->addr, so);
			}
			g->store = c10::make_intrusive<c10d::PrefixStore>(std::string(d->prefix ? d->prefix : "") + "vggtl/",
									 tcp);
		} catch (const std::exception &e) {
			throw std::runtime_error(std::string("distributed (rank ") + std::to_string(d->rank) + "): " +
						 (d->client_only || d->rank ? "cannot reach the store at " :
									     "cannot host the store at ") +
						 where + ": " + e.what());
		}
		try {
			auto o = c10d::ProcessGroupGloo::Options::create(timeout);
			if (d->ifname && *d->ifname)
				o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(d->ifname));
			else
				o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
			o->threads = 2;
			g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, d->rank, d->world, o);
		} catch (const std::exception &e) {
			throw std::runtime_error(std::string("distributed (rank ") + std::to_string(d->rank) +
						 "): the ranks did not all meet through " + where + " within " +
						 std::to_string((int64_t)d->timeout) + " s: " + e.what());
		}
		group = g.release();
	})
}

void vt_shim_dist_free(void)
{
	try {
		delete group;
	} catch (...) {
	}
	group = nullptr;
}

int vt_shim_dist_allreduce(void *data, size_t n, int dtype)
{
	GUARD({
		if (!group)
			throw std::runtime_error("distributed: not initialised");
		if (dtype != 0 && dtype != 2)
			throw std::runtime_error("distributed: all-reduce of float32 or float64 only");
		if (n == 0)
			return 0;
		try {
			std::vector<at::Tensor> v{
				torch::from_blob(data, {(int64_t)n}, dtype == 0 ? torch::kFloat32 : torch::kFloat64)};
			group->pg->allreduce(v)->wait();
		} catch (const std::exception &e) {
			throw std::runtime_error(prefixed(e));
		}
	})
}

} // extern "C"
