// shim.cpp - the extern "C" API of include/vt_shim.h over libtorch.
//
// The only C++ in vggtl. Every entry point runs its body through GUARD, which turns any C++
// exception into -1 and a message for vt_shim_last_error(). The network is run functionally
// (torch::conv2d, torch::batch_norm, ...) over tensors held by index, so there is no module
// tree to keep in sync with the C side; the optimizers are PyTorch's SGD and Adam update
// rules written out (torch/optim/sgd.py, adam.py, single-tensor path) so that their state
// has exactly PyTorch's names and meaning.
//
// 32x32 inputs: features end at 512x1x1 and AdaptiveAvgPool2d((7,7)) only replicates each
// value 49 times, so "avgpool, flatten, Linear(25088, N)" equals Linear(512, N) with the
// weight summed over each channel's 49 columns. run_layers() takes that path (autograd
// still reaches the full weight) whenever the pooled input is 1x1.
#include <c10/core/CPUAllocator.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

extern "C" {
#include "vt_shim.h"
}
#include "internal.hpp"

namespace vt_shim_internal {
thread_local std::string last_error;

void set_error(const char *what)
{
	last_error = what;
	auto nl = last_error.find('\n');
	if (nl != std::string::npos)
		last_error.resize(nl);
}
} // namespace vt_shim_internal

namespace {

// libtorch's CPU allocator returns every block to malloc, and glibc serves blocks of 32 MiB
// or more with a fresh mmap (below that, its heap reuses freed memory): each training step
// page-faulted its large gradients and momentum buffers in again. This allocator keeps freed
// blocks of 32 MiB or more, up to kCacheMax in all, for the next request of exactly the same
// size, which is what every step after the first asks for, and backs them with transparent
// huge pages. A 3-epoch --freeze run of VGG16: 0.41 s per epoch, against 0.61-0.73 s with
// libtorch's allocator and 0.41-0.61 s (varying from process to process) when caching without
// huge pages; peak memory +60 MB. Caching from 1 MiB up gained nothing more and cost another
// 100 MB (and for full fine-tuning, measured again: +5% images/s within this machine's noise,
// kernel page clearing 10% -> 6% of the samples, +120 MB). It is installed when the shim is loaded, before any tensor exists, because ideep
// frees through raw_deallocate() what it allocated through this allocator.
class CachingCPUAllocator final : public c10::Allocator {
public:
	static constexpr size_t kHeader = 64; // keeps c10's 64-byte alignment; holds the size
	static constexpr size_t kCacheMin = size_t(32) << 20;
	static constexpr size_t kCacheMax = size_t(2) << 30;
	static constexpr size_t kHuge = size_t(2) << 20; // the huge page size

	// const in libtorch 1.x, not in 2.x: both are declared so that either overrides
	c10::DataPtr allocate(size_t n) const
	{
		if (n == 0)
			return { nullptr, nullptr, &release, c10::Device(c10::DeviceType::CPU) };
		if (n > SIZE_MAX / 2)
			throw std::runtime_error("cannot allocate " + std::to_string(n) + " bytes");
		void *base = take(n);
		if (!base && !(base = fresh(n))) {
			trim();
			if (!(base = fresh(n)))
				throw std::runtime_error("out of memory: cannot allocate " + std::to_string(n) +
							 " bytes");
		}
		*static_cast<size_t *>(base) = n;
		void *data = static_cast<char *>(base) + kHeader;
		return { data, data, &release, c10::Device(c10::DeviceType::CPU) };
	}
	c10::DataPtr allocate(size_t n)
	{
		return static_cast<const CachingCPUAllocator *>(this)->allocate(n);
	}
	c10::DeleterFnPtr raw_deleter() const
	{
		return &release;
	}
	void copy_data(void *dest, const void *src, size_t count) const // pure virtual in 2.x
	{
		std::memcpy(dest, src, count);
	}

private:
	// Never destroyed: libtorch's own static tensors may be freed after this file's statics.
	struct Cache {
		std::mutex mu;
		std::multimap<size_t, void *> blocks; // size -> block
		size_t bytes = 0;
	};
	static Cache &cache()
	{
		static Cache *c = new Cache;
		return *c;
	}
	// Blocks of kCacheMin or more start on a 2 MiB boundary and ask for transparent huge pages.
	static void *fresh(size_t n)
	{
		void *base = nullptr;
		bool huge = n >= kCacheMin;
		if (posix_memalign(&base, huge ? kHuge : kHeader, n + kHeader) != 0)
			return nullptr;
		if (huge)
			madvise(base, (n + kHeader + kHuge - 1) / kHuge * kHuge, MADV_HUGEPAGE);
		return base;
	}
	static void *take(size_t n)
	{
		if (n < kCacheMin)
			return nullptr;
		Cache &c = cache();
		std::lock_guard<std::mutex> lock(c.mu);
		auto it = c.blocks.find(n);
		if (it == c.blocks.end())
			return nullptr;
		void *base = it->second;
		c.blocks.erase(it);
		c.bytes -= n;
		return base;
	}
	static void release(void *data)
	{
		if (!data)
			return;
		void *base = static_cast<char *>(data) - kHeader;
		size_t n = *static_cast<size_t *>(base);
		if (n >= kCacheMin) {
			Cache &c = cache();
			std::lock_guard<std::mutex> lock(c.mu);
			if (c.bytes + n <= kCacheMax) {
				c.blocks.emplace(n, base);
				c.bytes += n;
				return;
			}
		}
		std::free(base);
	}
	static void trim()
	{
		Cache &c = cache();
		std::lock_guard<std::mutex> lock(c.mu);
		for (auto &b : c.blocks)
			std::free(b.second);
		c.blocks.clear();
		c.bytes = 0;
	}
};

struct InstallAllocator {
	InstallAllocator()
	{
		// never destroyed, like its cache: c10 keeps using it until the process ends
		c10::SetCPUAllocator(new CachingCPUAllocator, /*priority=*/1);
	}
} install_allocator;

struct OptState {
	torch::Tensor a, b; // momentum_buffer / exp_avg, exp_avg_sq
	int64_t step = 0;
};

} // namespace

// SGD on the folded first Linear. Its 49 copies of each input column all receive the same
// gradient gf, so with w = the weight and b = the momentum buffer, each element follows
//   b' = m b + g + wd w,  w' = w - lr b'
// a linear recurrence whose coefficients are the same for every element. Hence
//   w(t) = aw w(0) + cw b(0) + U,  b(t) = ab w(0) + cb b(0) + V
// with four scalars and two (out, C) tensors U, V: a step costs O(out x C) instead of
// O(out x 49C), and the full weight and buffer are written once, by sync(), before anything
// reads them (an evaluation, a checkpoint, the end of training).
struct Fold {
	bool active = false;
	int w = -1;                     // tensor index of the folded weight
	int64_t k = 0;                  // copies per column (49 for a 7x7 pool)
	torch::Tensor w0f, b0f, u, v;   // folded sums of w(0), b(0); the shared terms
	double aw = 1, cw = 0, ab = 0, cb = 1;
	int64_t steps = 0;              // updates taken (a step the loss scaler skips takes none)
	torch::Tensor leaf;             // this step's folded weight, whose gradient is gf
};

struct vt_shim_net {
	std::vector<vt_shim_layer> layers;
	std::vector<torch::Tensor> t;
	std::vector<bool> trainable;
	std::vector<OptState> state;
	vt_shim_opt opt{};
	bool has_opt = false;
	vt_shim_scaler scaler{};
	int precision = VT_PREC_FP32;
	torch::Device device{torch::kCPU};
	Fold fold;
	// Evaluation caches, valid until the weights change (forget_eval_cache):
	torch::Tensor eval_wf;             // the folded first Linear
	std::vector<torch::Tensor> eval_w; // oneDNN-reordered conv weights, by tensor index
};

namespace {

void forget_eval_cache(vt_shim_net *net)
{
	net->eval_wf = torch::Tensor();
	net->eval_w.clear();
}

bool fold_eligible(vt_shim_net *net, int w)
{
	return net->has_opt && net->opt.kind == VT_OPT_SGD && net->trainable[w] &&
	       net->t[w].scalar_type() == torch::kFloat32 && net->t[w].is_contiguous();
}

// The folded weight for this training step: aw W0f + cw B0f + k U, as a fresh leaf.
torch::Tensor fold_weight(vt_shim_net *net, int w, int64_t c, int64_t k)
{
	Fold &f = net->fold;
	torch::NoGradGuard ng;
	if (!f.active) {
		torch::Tensor W = net->t[w], B = net->state[w].a;
		f.active = true;
		f.w = w;
		f.k = k;
		f.w0f = W.detach().view({W.size(0), c, k}).sum(2);
		f.b0f = B.defined() ? B.view({W.size(0), c, k}).sum(2) : torch::zeros_like(f.w0f);
		f.u = torch::zeros_like(f.w0f);
		f.v = torch::zeros_like(f.w0f);
		f.aw = 1;
		f.cw = 0;
		f.ab = 0;
		f.cb = 1;
	}
	f.leaf = (f.w0f * f.aw + f.b0f * f.cw + f.u * (double)f.k).detach().requires_grad_(true);
	return f.leaf;
}

// One SGD step of the folded weight (see struct Fold).
void fold_update(vt_shim_net *net, double lr)
{
	Fold &f = net->fold;
	const vt_shim_opt &o = net->opt;
	if (!f.leaf.defined() || !f.leaf.grad().defined())
		return;
	torch::Tensor gf = f.leaf.grad();
	double m = o.momentum, wd = o.weight_decay;
	f.ab = m * f.ab + wd * f.aw;
	f.cb = m * f.cb + wd * f.cw;
	f.v.mul_(m).add_(gf).add_(f.u, wd);
	f.aw -= lr * f.ab;
	f.cw -= lr * f.cb;
	f.u.add_(f.v, -lr);
	f.steps++;
	f.leaf = torch::Tensor();
}

// Writes the folded weight and momentum buffer back in full, once (see struct Fold).
void sync(vt_shim_net *net)
{
	Fold &f = net->fold;
	if (!f.active)
		return;
	if (f.steps == 0) { // nothing moved, and like PyTorch no step makes no momentum buffer
		f = Fold();
		return;
	}
	forget_eval_cache(net);
	torch::NoGradGuard ng;
	torch::Tensor W = net->t[f.w], &B = net->state[f.w].a;
	bool momentum = net->opt.momentum != 0;
	if (momentum && !B.defined())
		B = torch::zeros_like(W);
	int64_t out = W.size(0), c = f.u.size(1), k = f.k;
	if (W.device().is_cpu()) {
		torch::Tensor u = f.u.contiguous(), v = f.v.contiguous();
		float *pw = W.data_ptr<float>(), *pb = B.defined() ? B.data_ptr<float>() : nullptr;
		const float *pu = u.data_ptr<float>(), *pv = v.data_ptr<float>();
		const float aw = (float)f.aw, cw = (float)f.cw, ab = (float)f.ab, cb = (float)f.cb;
		at::parallel_for(0, out * c, 1024, [&](int64_t begin, int64_t end) {
			for (int64_t oc = begin; oc < end; oc++)
				for (int64_t j = oc * k; j < (oc + 1) * k; j++) {
					float w0 = pw[j], b0 = pb ? pb[j] : 0.0f;
					pw[j] = aw * w0 + cw * b0 + pu[oc];
					if (pb)
						pb[j] = ab * w0 + cb * b0 + pv[oc];
				}
		});
	} else {
		torch::Tensor w0 = W.clone(), b0 = B.defined() ? B.clone() : torch::zeros_like(W);
		W.copy_((w0 * f.aw + b0 * f.cw).view({out, c, k}) + f.u.unsqueeze(2));
		if (momentum)
			B.copy_((w0 * f.ab + b0 * f.cb).view({out, c, k}) + f.v.unsqueeze(2));
	}
	if (!momentum)
		B = torch::Tensor(); // like PyTorch: no momentum, no buffer
	f = Fold();
}

// The layers run_onednn() takes: oneDNN has no batch norm without affine terms or running
// statistics, and no dilated max pool.
bool onednn_runs(const vt_shim_layer &l)
{
	switch (l.kind) {
	case VT_L_CONV:
	case VT_L_RELU:
		return true;
	case VT_L_BN:
		return l.t[0] >= 0 && l.t[1] >= 0 && l.t[2] >= 0 && l.t[3] >= 0;
	case VT_L_MAXPOOL:
		return l.dilation[0] == 1 && l.dilation[1] == 1;
	default:
		return false;
	}
}

// Evaluation on the CPU: the leading convolutions, batch norms, ReLUs and max pools run on
// oneDNN's own tensor layout, with each conv weight reordered once for all batches instead of
// once per call; 10-20% faster than channels-last dense tensors for VGG16 at 32x32, and the
// same oneDNN kernels, so the same results. Returns the first layer it did not run.
int run_onednn(vt_shim_net *net, torch::Tensor &x, int from, int to)
{
	if (!at::hasMKLDNN() || !x.device().is_cpu() || x.scalar_type() != torch::kFloat32 || x.dim() != 4 ||
	    from >= to || !onednn_runs(net->layers[from]))
		return from;
	if (net->eval_w.size() != net->t.size())
		net->eval_w.assign(net->t.size(), torch::Tensor());
	int i = from;
	torch::Tensor y = x.to_mkldnn();
	for (; i < to && onednn_runs(net->layers[i]); i++) {
		const vt_shim_layer &l = net->layers[i];
		auto T = [&](int k) { return l.t[k] >= 0 ? net->t[l.t[k]] : torch::Tensor(); };
		if (l.kind == VT_L_CONV) {
			torch::Tensor &w = net->eval_w[l.t[0]];
			if (!w.defined())
				w = at::mkldnn_reorder_conv2d_weight(net->t[l.t[0]].contiguous().to_mkldnn(),
								     {l.padding[0], l.padding[1]}, {l.stride[0], l.stride[1]},
								     {l.dilation[0], l.dilation[1]}, l.groups);
			y = at::mkldnn_convolution(y, w, T(1), {l.padding[0], l.padding[1]}, {l.stride[0], l.stride[1]},
						   {l.dilation[0], l.dilation[1]}, l.groups);
		} else if (l.kind == VT_L_BN) {
			y = torch::batch_norm(y, T(0), T(1), T(2), T(3), false, 0.0, l.eps, false);
		} else if (l.kind == VT_L_RELU) {
			y = torch::relu_(y);
		} else {
			y = torch::max_pool2d(y, {l.kernel[0], l.kernel[1]}, {l.stride[0], l.stride[1]},
					      {l.padding[0], l.padding[1]}, {l.dilation[0], l.dilation[1]}, l.ceil_mode);
		}
	}
	if (i > from)
		x = y.to_dense();
	return i;
}

// torch.autocast(device, dtype) around a forward pass, as a scope.
struct Autocast {
	bool on, cpu;
	Autocast(const vt_shim_net *net) : on(net->precision != VT_PREC_FP32), cpu(net->device.is_cpu())
	{
		if (!on)
			return;
		at::ScalarType t = net->precision == VT_PREC_BF16 ? at::kBFloat16 : at::kHalf;
		if (cpu) {
			at::autocast::set_autocast_cpu_dtype(t);
			at::autocast::set_cpu_enabled(true);
		} else {
			at::autocast::set_autocast_gpu_dtype(t);
			at::autocast::set_enabled(true);
		}
	}
	~Autocast()
	{
		if (!on)
			return;
		if (cpu)
			at::autocast::set_cpu_enabled(false);
		else
			at::autocast::set_enabled(false);
		at::autocast::clear_cache();
	}
};

torch::Tensor run_layers(vt_shim_net *net, torch::Tensor x, int from, int to, bool train)
{
	// the oneDNN path is fp32 only; under autocast the convolutions go through the dispatcher
	if (!train && !torch::GradMode::is_enabled() && net->precision == VT_PREC_FP32)
		from = run_onednn(net, x, from, to);
	if (x.dim() == 4)
		x = x.contiguous(at::MemoryFormat::ChannelsLast);
	for (int i = from; i < to; i++) {
		const vt_shim_layer &l = net->layers[i];
		auto T = [&](int k) { return l.t[k] >= 0 ? net->t[l.t[k]] : torch::Tensor(); };
		switch (l.kind) {
		case VT_L_CONV:
			x = torch::conv2d(x, T(0), T(1), {l.stride[0], l.stride[1]}, {l.padding[0], l.padding[1]},
					  {l.dilation[0], l.dilation[1]}, l.groups);
			break;
		case VT_L_BN: {
			bool use_batch = train || l.t[2] < 0;
			double mom = l.momentum;
			if (train && l.t[4] >= 0) {
				torch::NoGradGuard ng;
				net->t[l.t[4]].add_(1);
				if (mom < 0) // momentum=None: cumulative moving average
					mom = 1.0 / net->t[l.t[4]].item<int64_t>();
			}
			x = torch::batch_norm(x, T(0), T(1), T(2), T(3), use_batch, mom < 0 ? 0.0 : mom, l.eps, false);
			break;
		}
		case VT_L_RELU: // in place, as VGG's nn.ReLU(inplace=True): no layer here needs its output kept
			x = torch::relu_(x);
			break;
		case VT_L_MAXPOOL:
			x = torch::max_pool2d(x, {l.kernel[0], l.kernel[1]}, {l.stride[0], l.stride[1]},
					      {l.padding[0], l.padding[1]}, {l.dilation[0], l.dilation[1]}, l.ceil_mode);
			break;
		case VT_L_AVGPOOL: {
			int64_t oh = l.output_size[0], ow = l.output_size[1];
			if (x.dim() == 4 && x.size(2) == 1 && x.size(3) == 1 && i + 2 < to &&
			    net->layers[i + 1].kind == VT_L_FLATTEN && net->layers[i + 2].kind == VT_L_LINEAR) {
				const vt_shim_layer &lin = net->layers[i + 2];
				torch::Tensor w = net->t[lin.t[0]];
				if (w.size(1) == x.size(1) * oh * ow) {
					torch::Tensor wf;
					if (train && fold_eligible(net, lin.t[0])) {
						wf = fold_weight(net, lin.t[0], x.size(1), oh * ow);
					} else if (!train && !torch::GradMode::is_enabled()) {
						if (!net->eval_wf.defined() || net->eval_wf.size(1) != x.size(1))
							net->eval_wf = w.view({w.size(0), x.size(1), oh * ow}).sum(2);
						wf = net->eval_wf;
					} else {
						wf = w.view({w.size(0), x.size(1), oh * ow}).sum(2);
					}
					x = torch::linear(x.flatten(1), wf, lin.t[1] >= 0 ? net->t[lin.t[1]] : torch::Tensor());
					i += 2;
					break;
				}
			}
			x = torch::adaptive_avg_pool2d(x, {oh, ow});
			break;
		}
		case VT_L_FLATTEN:
			x = x.flatten(1);
			break;
		case VT_L_LINEAR:
			x = torch::linear(x, T(0), T(1));
			break;
		case VT_L_DROPOUT:
			x = torch::dropout(x, l.p, train);
			break;
		default:
			throw std::runtime_error("unknown layer kind " + std::to_string(l.kind));
		}
	}
	return x;
}

torch::Tensor from_host(const float *x, const int64_t *shape, int ndim, torch::Device dev)
{
	std::vector<int64_t> s(shape, shape + ndim);
	return torch::from_blob(const_cast<float *>(x), s, torch::kFloat32).to(dev, /*non_blocking=*/false,
										 /*copy=*/true);
}

void check_index(vt_shim_net *net, int index)
{
	if (index < 0 || index >= (int)net->t.size())
		throw std::runtime_error("tensor index " + std::to_string(index) + " out of range");
}

// SGD for a contiguous float32 CPU parameter in one pass over memory: the same arithmetic as
// below (d = g + wd p; buf = m buf + d, or d on the first step; p -= lr buf; g = 0), but the
// 400 MB first Linear is read and written once instead of five times.
bool sgd_fused(torch::Tensor &p, torch::Tensor &g, OptState &s, const vt_shim_opt &o, double lr)
{
	if (!p.device().is_cpu() || p.scalar_type() != torch::kFloat32 || !p.is_contiguous() || !g.is_contiguous())
		return false;
	bool first = o.momentum != 0 && !s.a.defined();
	if (first)
		s.a = torch::empty_like(p);
	float *pp = p.data_ptr<float>(), *gg = g.data_ptr<float>();
	float *bb = o.momentum != 0 ? s.a.data_ptr<float>() : nullptr;
	const float wd = (float)o.weight_decay, m = (float)o.momentum, step = (float)-lr;
	at::parallel_for(0, p.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
		for (int64_t i = begin; i < end; i++) {
			float d = wd != 0 ? gg[i] + wd * pp[i] : gg[i];
			if (bb) {
				d = first ? d : bb[i] * m + d;
				bb[i] = d;
			}
			pp[i] += step * d;
			gg[i] = 0;
		}
	});
	return true;
}

// PyTorch's update rules, single-tensor path.
void update(vt_shim_net *net, double lr)
{
	torch::NoGradGuard ng;
	const vt_shim_opt &o = net->opt;
	forget_eval_cache(net); // the weights are about to change
	fold_update(net, lr);
	for (size_t i = 0; i < net->t.size(); i++) {
		if (net->fold.active && (int)i == net->fold.w)
			continue;
		if (!net->trainable[i] || !net->t[i].grad().defined())
			continue; // no gradient yet: like PyTorch, no state either
		// in place on the gradient, which is zeroed afterwards: no step allocates
		// parameter-sized temporaries (the first Linear alone is 400 MB)
		torch::Tensor p = net->t[i], g = net->t[i].mutable_grad();
		OptState &s = net->state[i];
		if (o.kind == VT_OPT_SGD && sgd_fused(p, g, s, o, lr))
			continue;
		if (o.weight_decay != 0)
			g.add_(p, o.weight_decay);
		if (o.kind == VT_OPT_SGD) {
			if (o.momentum != 0) {
				if (!s.a.defined())
					s.a = g.clone();
				else
					s.a.mul_(o.momentum).add_(g);
				p.add_(s.a, -lr);
			} else {
				p.add_(g, -lr);
			}
		} else {
			if (!s.a.defined()) {
				s.a = torch::zeros_like(p);
				s.b = torch::zeros_like(p);
			}
			s.step++;
			s.a.mul_(o.beta1).add_(g, 1 - o.beta1);
			s.b.mul_(o.beta2).addcmul_(g, g, 1 - o.beta2);
			double bc1 = 1 - std::pow(o.beta1, (double)s.step);
			double bc2 = 1 - std::pow(o.beta2, (double)s.step);
			// denom = sqrt(v) / sqrt(bc2) + eps, reusing g's memory
			torch::Tensor denom = torch::sqrt_out(g, s.b).div_(std::sqrt(bc2)).add_(o.eps);
			p.addcdiv_(s.a, denom, -lr / bc1);
		}
		g.zero_();
	}
}

// GradScaler's unscale and update, after backward of loss x scale: torch's
// _amp_foreach_non_finite_check_and_unscale_ (every gradient x float32(1/scale), inf or NaN
// anywhere found) and _amp_update_scale_. Returns true when the step may be taken.
bool unscale(vt_shim_net *net)
{
	torch::NoGradGuard ng;
	vt_shim_scaler &sc = net->scaler;
	float inv = (float)(1.0 / (double)(float)sc.scale);
	std::vector<torch::Tensor> grads;
	for (size_t i = 0; i < net->t.size(); i++)
		if (net->trainable[i] && net->t[i].grad().defined() && !(net->fold.active && (int)i == net->fold.w))
			grads.push_back(net->t[i].mutable_grad());
	if (net->fold.leaf.defined() && net->fold.leaf.grad().defined())
		grads.push_back(net->fold.leaf.mutable_grad());
	bool found_inf = false;
	if (net->device.is_cuda()) {
		torch::Tensor found = torch::zeros({1}, torch::TensorOptions().device(net->device));
		torch::Tensor inv_t = torch::full({1}, inv, torch::TensorOptions().device(net->device));
		at::_amp_foreach_non_finite_check_and_unscale_(grads, found, inv_t);
		found_inf = found.item<float>() != 0;
	} else {
		for (torch::Tensor &g : grads) {
			if (g.scalar_type() != torch::kFloat32 || !g.is_contiguous()) {
				found_inf = found_inf || !g.isfinite().all().item<bool>();
				g.mul_(inv);
				continue;
			}
			float *p = g.data_ptr<float>();
			std::atomic<bool> bad{false};
			at::parallel_for(0, g.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
				bool b = false;
				for (int64_t i = begin; i < end; i++) { // one pass: check, then scale
					b |= !std::isfinite(p[i]);
					p[i] *= inv;
				}
				if (b)
					bad = true;
			});
			found_inf = found_inf || bad;
		}
	}
	float scale = (float)sc.scale;
	if (found_inf) {
		scale = (float)(scale * sc.backoff_factor);
		sc.growth_tracker = 0;
		sc.skipped++;
		for (torch::Tensor &g : grads)
			g.zero_(); // as optimizer.zero_grad() before the next step
		net->fold.leaf = torch::Tensor();
	} else if (sc.growth_tracker + 1 == sc.growth_interval) {
		float grown = (float)(scale * sc.growth_factor);
		if (std::isfinite(grown))
			scale = grown;
		sc.growth_tracker = 0;
	} else {
		sc.growth_tracker++;
	}
	sc.scale = scale;
	return !found_inf;
}

// bf16 arithmetic in hardware, which oneDNN's bf16 kernels need to be faster than fp32
// (without it they emulate: a 2048^2 matmul in bf16 ran at 3 GFLOP/s here, in fp32 at 109).
// VGGTL_CPU_BF16=0 or 1 overrides the answer: the tests check the refusal on any machine, and
// the bf16 numerics on a machine without it (slowly).
bool cpu_has_bf16()
{
	const char *force = std::getenv("VGGTL_CPU_BF16");
	if (force && (std::strcmp(force, "0") == 0 || std::strcmp(force, "1") == 0))
		return force[0] == '1';
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512bf16") || __builtin_cpu_supports("amx-bf16");
#else
	return false;
#endif
}

// The parameters a training step from layer from on computes gradients for, in state_dict
// order; the folded first Linear's weight is replaced by its fold's leaf this step.
std::vector<int> step_params(vt_shim_net *net, int from)
{
	std::vector<int> p;
	for (size_t i = from; i < net->layers.size(); i++)
		for (int k = 0; k < 2; k++) {
			int t = net->layers[i].t[k];
			if (t >= 0 && net->trainable[t] && !(net->fold.leaf.defined() && t == net->fold.w))
				p.push_back(t);
		}
	std::sort(p.begin(), p.end());
	p.erase(std::unique(p.begin(), p.end()), p.end());
	return p;
}

} // namespace

extern "C" {

int vt_shim_abi(void)
{
	return VT_SHIM_ABI;
}

const char *vt_shim_last_error(void)
{
	return vt_shim_internal::last_error.c_str();
}

int vt_shim_device(const char *want, char *resolved, size_t size)
{
	GUARD({
		std::string w = want ? want : "auto";
		std::string r;
		if (w == "auto") {
			r = torch::cuda::is_available() ? "cuda:0" : "cpu";
		} else if (w == "cpu") {
			r = "cpu";
		} else if (w.rfind("cuda", 0) == 0) {
			torch::Device d(w);
			if (!torch::cuda::is_available())
				throw std::runtime_error("device '" + w +
							 "' requested, but this libtorch sees no CUDA device (use --device cpu)");
			int idx = d.has_index() ? d.index() : 0;
			if (idx >= (int)torch::cuda::device_count())
				throw std::runtime_error("device '" + w + "' requested, but only " +
							 std::to_string(torch::cuda::device_count()) + " CUDA device(s) exist");
			r = "cuda:" + std::to_string(idx);
		} else {
			throw std::runtime_error("unknown device '" + w + "' (auto, cpu, cuda or cuda:N)");
		}
		std::snprintf(resolved, size, "%s", r.c_str());
	})
}

int vt_shim_set_threads(int n)
{
	GUARD({
		if (n > 0) {
			torch::set_num_threads(n);
			torch::set_num_interop_threads(n);
		}
	})
}

int vt_shim_seed(uint64_t seed)
{
	GUARD(torch::manual_seed(seed));
}

int vt_shim_net_new(vt_shim_net **out, const vt_shim_layer *layers, int nlayers, int ntensors,
		    const char *device)
{
	*out = nullptr;
	GUARD({
		auto *net = new vt_shim_net;
		net->layers.assign(layers, layers + nlayers);
		net->t.resize(ntensors);
		net->trainable.assign(ntensors, false);
		net->state.resize(ntensors);
		net->device = torch::Device(device ? device : "cpu");
		// every batch but the last has one shape: let cuDNN pick its kernels (CUDA runs are not
		// bit-reproducible anyway; --seed promises the same result on the CPU)
		if (net->device.is_cuda())
			at::globalContext().setBenchmarkCuDNN(true);
		*out = net;
	})
}

void vt_shim_net_free(vt_shim_net *net)
{
	delete net;
}

int vt_shim_net_set(vt_shim_net *net, int index, int dtype, void *data, const int64_t *shape, int ndim,
		    int trainable, int adopt)
{
	// an adopted buffer is freed whatever happens, unless a tensor takes it over
	std::unique_ptr<void, void (*)(void *)> owned(adopt ? data : nullptr, std::free);
	GUARD({
		sync(net);
		check_index(net, index);
		std::vector<int64_t> s(shape, shape + ndim);
		auto type = dtype == 1 ? torch::kInt64 : torch::kFloat32;
		torch::Tensor t;
		if (owned && net->device.is_cpu()) // the tensor takes the buffer over: no copy
			t = torch::from_blob(owned.release(), s, [](void *p) { std::free(p); },
					     torch::TensorOptions().dtype(type));
		else
			t = torch::from_blob(data, s, type).to(net->device, false, true);
		if (ndim == 4) // oneDNN's convolutions run faster on channels-last weights and inputs
			t = t.contiguous(at::MemoryFormat::ChannelsLast);
		if (trainable)
			t.set_requires_grad(true);
		net->t[index] = t;
		net->trainable[index] = trainable != 0;
		forget_eval_cache(net);
	})
}

int vt_shim_net_get(vt_shim_net *net, int index, void *data, size_t nbytes)
{
	GUARD({
		sync(net);
		check_index(net, index);
		torch::Tensor t = net->t[index].detach().to(torch::kCPU).contiguous();
		if ((size_t)t.nbytes() != nbytes)
			throw std::runtime_error("tensor " + std::to_string(index) + " has " + std::to_string(t.nbytes()) +
						 " bytes, " + std::to_string(nbytes) + " expected");
		std::memcpy(data, t.data_ptr(), nbytes);
	})
}

int vt_shim_net_precision(vt_shim_net *net, int precision)
{
	GUARD({
		if (precision == VT_PREC_FP16 && !net->device.is_cuda())
			throw std::runtime_error("--precision fp16 needs a CUDA device (on the CPU, use bf16)");
		if (precision == VT_PREC_BF16 && net->device.is_cpu() && !cpu_has_bf16())
			throw std::runtime_error("--precision bf16 needs a CPU with AVX512_BF16 or AMX (this one has "
						 "neither; use fp32)");
		if (precision != VT_PREC_FP32 && precision != VT_PREC_BF16 && precision != VT_PREC_FP16)
			throw std::runtime_error("unknown precision " + std::to_string(precision));
		net->precision = precision;
		forget_eval_cache(net);
	})
}

int vt_shim_net_optimizer(vt_shim_net *net, const vt_shim_opt *opt)
{
	GUARD({
		sync(net);
		net->opt = *opt;
		net->has_opt = true;
	})
}

int vt_shim_net_scaler(vt_shim_net *net, const vt_shim_scaler *set, vt_shim_scaler *get)
{
	GUARD({
		if (set) {
			if (set->on && !(set->growth_interval > 0 && set->growth_factor > 1 && set->backoff_factor > 0 &&
					 set->backoff_factor < 1 && set->scale > 0))
				throw std::runtime_error("loss scaler: needs scale > 0, growth_factor > 1, backoff_factor in "
							 "(0, 1) and growth_interval >= 1");
			net->scaler = *set;
			net->scaler.scale = (float)set->scale;
		}
		if (get)
			*get = net->scaler;
	})
}

int vt_shim_net_state_get(vt_shim_net *net, int index, int which, float *data, size_t numel, int *exists)
{
	GUARD({
		sync(net);
		check_index(net, index);
		torch::Tensor s = which ? net->state[index].b : net->state[index].a;
		*exists = s.defined();
		if (s.defined()) {
			torch::Tensor c = s.to(torch::kCPU).contiguous();
			if ((size_t)c.numel() != numel)
				throw std::runtime_error("optimizer state size mismatch");
			std::memcpy(data, c.data_ptr<float>(), numel * sizeof(float));
		}
	})
}

int vt_shim_net_state_set(vt_shim_net *net, int index, int which, const float *data, size_t numel)
{
	GUARD({
		sync(net);
		check_index(net, index);
		torch::Tensor p = net->t[index];
		if (!p.defined() || (size_t)p.numel() != numel)
			throw std::runtime_error("optimizer state for tensor " + std::to_string(index) +
						 " does not match its size");
		torch::Tensor s = torch::from_blob(const_cast<float *>(data), p.sizes(), torch::kFloat32)
					  .to(net->device, false, true);
		(which ? net->state[index].b : net->state[index].a) = s;
	})
}

int vt_shim_net_step_count(vt_shim_net *net, int index, int64_t *get, const int64_t *set)
{
	GUARD({
		sync(net);
		check_index(net, index);
		if (set)
			net->state[index].step = *set;
		if (get)
			*get = net->state[index].step;
	})
}

int vt_shim_net_run(vt_shim_net *net, const float *x, const int64_t *xshape, int xndim, int from, int to,
		    float *out, size_t out_numel, int64_t *oshape, int *ondim)
{
	GUARD({
		sync(net);
		torch::InferenceMode im;
		torch::Tensor y;
		{
			Autocast ac(net);
			y = run_layers(net, from_host(x, xshape, xndim, net->device), from, to, false);
		}
		y = y.to(torch::kCPU, torch::kFloat32).contiguous();
		if ((size_t)y.numel() > out_numel)
			throw std::runtime_error("output buffer too small");
		std::memcpy(out, y.data_ptr<float>(), y.numel() * sizeof(float));
		*ondim = (int)y.dim();
		for (int d = 0; d < y.dim(); d++)
			oshape[d] = y.size(d);
	})
}

int vt_shim_net_train_step(vt_shim_net *net, const float *x, const int64_t *xshape, int xndim, int from,
			   const int64_t *y, double lr, double *loss, int64_t *correct)
{
	GUARD({
		if (!net->has_opt)
			throw std::runtime_error("no optimizer set");
		torch::Tensor in = from_host(x, xshape, xndim, net->device);
		torch::Tensor target =
			torch::from_blob(const_cast<int64_t *>(y), {xshape[0]}, torch::kInt64).to(net->device, false, true);
		torch::Tensor logits;
		{
			Autocast ac(net);
			logits = run_layers(net, in, from, (int)net->layers.size(), true);
		}
		logits = logits.to(torch::kFloat32); // the loss in fp32, as autocast's cross_entropy
		torch::Tensor l = torch::nn::functional::cross_entropy(logits, target);
		bool dist = vt_dist::active();
		if (dist)
			vt_dist::expect(net->t, step_params(net, from));
		if (net->scaler.on) // GradScaler.scale(loss): a float32 product
			(l * torch::full({}, (float)net->scaler.scale, l.options())).backward();
		else
			l.backward();
		if (dist)
			vt_dist::finish(net->t, net->fold.leaf.defined() ? net->fold.leaf.grad() : torch::Tensor());
		if (!net->scaler.on || unscale(net))
			update(net, lr);
		*loss = l.item<double>();
		*correct = logits.argmax(1).eq(target).sum().item<int64_t>();
	})
}

int vt_shim_net_broadcast(vt_shim_net *net)
{
	GUARD({
		sync(net);
		forget_eval_cache(net);
		vt_dist::broadcast(net->t);
	})
}

} // extern "C"
