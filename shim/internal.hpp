// internal.hpp - what the shim's translation units share inside libvggtl_shim.so: the
// exception guard of every extern "C" entry point, and what shim.cpp's training step asks of
// the process group (shim/dist.cpp). The C API is include/vt_shim.h.
#ifndef VT_SHIM_INTERNAL_HPP
#define VT_SHIM_INTERNAL_HPP

#include <torch/torch.h>

#include <string>
#include <vector>

namespace vt_shim_internal {
extern thread_local std::string last_error;
void set_error(const char *what);
} // namespace vt_shim_internal

// Runs body; any C++ exception becomes -1 and a one-line vt_shim_last_error().
#define GUARD(body)                                                   \
	try {                                                         \
		body;                                                 \
		return 0;                                             \
	} catch (const std::exception &e) {                           \
		vt_shim_internal::set_error(e.what());                \
	} catch (...) {                                               \
		vt_shim_internal::set_error("unknown C++ exception"); \
	}                                                             \
	return -1;

namespace vt_dist {

// A process group of more than one rank exists: gradients are averaged.
bool active();

// After the forward pass, before backward: the parameters (by tensor index into t) whose
// gradients this step averages. Their gradients are copied into buckets as autograd
// produces them, and each full bucket's all-reduce starts while backward goes on.
void expect(const std::vector<torch::Tensor> &t, const std::vector<int> &params);

// After backward: starts what is left, waits, and writes the averages into the parameters'
// .grad; extra (the folded first Linear's gradient, when defined) is averaged as well.
void finish(const std::vector<torch::Tensor> &t, torch::Tensor extra);

// Rank 0's values of every tensor in t, to every rank.
void broadcast(std::vector<torch::Tensor> &t);

} // namespace vt_dist

#endif
