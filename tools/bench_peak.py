#!/usr/bin/python3
"""bench_peak.py - the compute ceilings make bench reports its training rows against.

usage: bench_peak.py peak THREADS        one JSON line: GFLOP/s of torch's own GEMM and
                                         convolution in fp32 and bf16 on THREADS threads
       bench_peak.py flops               one JSON line: FLOPs per image of VGG16 + add_linear
                                         at 32x32, by part (see below)
       bench_peak.py report PEAK RATES   the GFLOP/s table: PEAK is peak's JSON line, RATES
                                         has a line "MODE PRECISION EPOCHS VGGTL PY113 PY26"
                                         (images/s; "-" for a side not run) per bench row

The peak is the better of two microbenchmarks on the same libraries the training uses
(OpenBLAS / oneDNN through torch): a 2048x2048 matmul, and a 256->256 3x3 convolution on 8x8
maps at batch 64 (VGG16's widest layers at 32x32 input). Each runs for about a second after a
warm-up. On a CPU without AVX512_BF16 or AMX, oneDNN emulates bf16 and the bf16 figures are
that emulation's (a 1024 matmul then, to keep it short); they say so ("bf16_hw": false).

FLOPs are counted from the layer shapes, 2 per multiply-add: a convolution is
2 Cin Cout k^2 Hout Wout, a Linear 2 in out. Training counts backward as 2x forward (3x in
all), as the issue and the usual rule of thumb do. At 32x32, VGG16's features end 512x1x1 and
AdaptiveAvgPool2d((7, 7)) repeats each value 49 times, so the first Linear, nominally
25088->4096, is the same function as a 512->4096 Linear with its weight's 49 columns summed:
vggtl trains and evaluates that folded form, torch the nominal one. Each side's GFLOP/s is
reported on the FLOPs it executes ("first_linear" vs "first_linear_folded").
"""
import json
import sys
import time

import torch

CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def flops():
    conv, c, hw = 0, 3, 32
    for v in CFG:
        if v == "M":
            hw //= 2
            continue
        conv += 2 * c * v * 9 * hw * hw
        c = v
    rest = 2 * 4096 * 4096 + 2 * 4096 * 1000 + 2 * 1000 * 10
    return {"features": conv, "first_linear": 2 * 512 * 49 * 4096, "first_linear_folded": 2 * 512 * 4096,
            "classifier_rest": rest}


def executed(mode, epochs, folded):
    """FLOPs per image and epoch one side executes in a bench row (MODE full, freeze, eval).
    vggtl's frozen run computes the features once and caches them (folded: vggtl's side)."""
    f = flops()
    first = f["first_linear_folded"] if folded else f["first_linear"]
    head = first + f["classifier_rest"]
    if mode == "full":
        return 3 * (f["features"] + head)
    if mode == "freeze":
        return (f["features"] / epochs if folded else f["features"]) + 3 * head
    return f["features"] + head


def report(peak_line, rates_file):
    p = json.loads(peak_line)
    print(f"| compute, {p['threads']} threads                    | vggtl GFLOP/s | % of peak | py1.13 GFLOP/s | "
          f"% of peak | py2.6 GFLOP/s | % of peak |")
    print("|------------------------------------------|----------|----------|----------|----------|----------|----------|")
    with open(rates_file) as f:
        for line in f:
            mode, prec, epochs, *ips = line.split()
            top = p[f"peak_{prec}"]
            cells = []
            for side, v in enumerate(ips):
                if v == "-":
                    cells += ["-", "-"]
                    continue
                g = float(v) * executed(mode, int(epochs), side == 0) / 1e9
                cells += [f"{g:8.1f}", f"{100 * g / top:7.1f}%"]
            label = {"full": "full fine-tuning", "freeze": "--freeze features", "eval": "eval"}[mode] + f" ({prec})"
            print(f"| {label:<40} | " + " | ".join(f"{c:>8}" for c in cells) + " |")
    rows = {}
    with open(rates_file) as f:
        for line in f:
            mode, prec, _, v, *_ = line.split()
            rows[(mode, prec)] = float(v)
    ratios = [f"{m} {rows[(m, 'bf16')] / rows[(m, 'fp32')]:.2f}x" for m in ("full", "freeze", "eval")
              if (m, "bf16") in rows and (m, "fp32") in rows]
    if ratios:
        print("vggtl bf16 / vggtl fp32 images/s: " + ", ".join(ratios) + " (targets: full >= 1.6x, eval >= 1.8x)")
    print(f"peak (torch's best of a 2048^2 GEMM and a 256->256 3x3 conv at 8x8, batch 64): fp32 {p['peak_fp32']:.1f} "
          f"GFLOP/s (GEMM {p['gemm_fp32']:.1f}, conv {p['conv_fp32']:.1f}); bf16 {p['peak_bf16']:.1f} "
          f"(GEMM {p['gemm_bf16']:.1f}, conv {p['conv_bf16']:.1f}){'' if p['bf16_hw'] else ', emulated: no AVX512_BF16 or AMX'}")
    print("(FLOPs from the layer shapes, 2 per multiply-add, backward = 2x forward; vggtl's first Linear counted "
          "folded, 512->4096, and its frozen features once; targets: fp32 full >= 75%, bf16 full >= 60% of peak)")


def rate(fn, work, seconds=1.0):
    fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        t = time.perf_counter() - start
        if t >= seconds:
            return work * n / t / 1e9


def bf16_hw():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def peak(threads):
    torch.set_num_threads(threads)
    out = {"threads": threads, "bf16_hw": bf16_hw()}
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        n = 2048 if dt == torch.float32 or out["bf16_hw"] else 1024
        a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
        out[f"gemm_{name}"] = rate(lambda: a @ b, 2 * n ** 3)
        batch = 64 if dt == torch.float32 or out["bf16_hw"] else 8
        x, w = torch.randn(batch, 256, 8, 8).to(dt), torch.randn(256, 256, 3, 3).to(dt)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            out[f"conv_{name}"] = rate(lambda: torch.nn.functional.conv2d(x, w, padding=1),
                                       2 * batch * 256 * 256 * 9 * 64)
        out[f"peak_{name}"] = max(out[f"gemm_{name}"], out[f"conv_{name}"])
    return out


def main():
    if sys.argv[1:2] == ["flops"]:
        print(json.dumps(flops()))
    elif sys.argv[1:2] == ["peak"] and len(sys.argv) == 3:
        print(json.dumps(peak(int(sys.argv[2]))))
    elif sys.argv[1:2] == ["report"] and len(sys.argv) == 4:
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
