#!/usr/bin/python3
"""test_precision.py - --precision fp32|bf16|fp16 of train, eval and predict (autocast in the
shim), against torch.autocast on the same machine.

This project's machine (AMD EPYC, AVX2, no AVX512_BF16 or AMX) does bf16 in software: there a
2048^2 matmul runs at 3 GFLOP/s in bf16 against 109 in fp32, so vggtl refuses bf16 unless the
CPU has it, and the refusal is checked against /proc/cpuinfo. VGGTL_CPU_BF16=1 overrides the
detection, so the numerics are checked here all the same (slowly, on small inputs).

- Logits: vggtl runs convolutions on channels-last tensors, as torch's oneDNN path does; the
  reference is torchvision under torch.autocast("cpu", torch.bfloat16) on a channels-last
  input. The logits leave the last Linear in bf16 (8 significant bits), and vggtl's folded
  first Linear sums 512 products where torchvision sums 25088, so they may differ by a unit in
  the last place of bf16: the bound is 2 bf16 ulps of the largest logit. The test also prints
  the distance to torch's NCHW bf16 path, which on this CPU takes another kernel.
- Training keeps fp32 weights and optimizer state (the checkpoint holds float32 tensors),
  resumes bit for bit within bf16, and the checkpoint continues in Python under autocast.
"""
import math
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_interop as ti  # noqa: E402
from test_interop import check, check_fail, path, vggtl  # noqa: E402

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(3, 1, 1)
BF16 = {"VGGTL_CPU_BF16": "1"}


def cpu_has_bf16():
    with open("/proc/cpuinfo") as f:
        flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def setup():
    torch.manual_seed(0)
    torch.save(torchvision.models.vgg11(num_classes=10), path("v11.pth"))
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path(f"p{i}.png"))
    # a small image folder: bf16 in software is slow, and the bundled test split has 200 images
    for split, n in (("train", 8), ("test", 2)):
        for c in ("a", "b"):
            os.makedirs(path(f"tiny/{split}/{c}"), exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path(f"tiny/{split}/{c}/{i}.png"))


def case_refusals():
    imgs = [f"p{i}.png" for i in range(2)]
    r = vggtl("predict", "v11.pth", *imgs, "--precision", "fp16", "--device", "cpu")
    check_fail(r, 2, "--precision fp16 on the CPU", "fp16", "CUDA")
    r = vggtl("predict", "v11.pth", *imgs, "--precision", "bf16", env={"VGGTL_CPU_BF16": "0"})
    check_fail(r, 2, "--precision bf16 on a CPU without bf16 (VGGTL_CPU_BF16=0)", "AVX512_BF16")
    r = vggtl("train", "v11.pth", "--precision", "fp16", "--limit", 4)
    check_fail(r, 2, "train --precision fp16 (no loss scaling yet)", "GradScaler")
    r = vggtl("eval", "v11.pth", "--precision", "fp8")
    check_fail(r, 2, "--precision fp8", "fp8")
    r = vggtl("predict", "v11.pth", *imgs, "--precision", "bf16", env={"VGGTL_CPU_BF16": None})
    has = cpu_has_bf16()
    check((r.rc == 0) == has and (has or "AVX512_BF16" in r.err),
          f"bf16 without the override follows /proc/cpuinfo (this CPU: {'has' if has else 'lacks'} bf16)", r)


def logits(r):
    return np.array([[float(v) for v in ln.split("\t")[1].split()] for ln in r.out.strip().split("\n")])


def case_logits():
    files = [f"p{i}.png" for i in range(6)]
    m = torch.load(path("v11.pth")).eval()
    x = torch.stack([(torch.from_numpy(np.array(Image.open(path(f)))).permute(2, 0, 1).float() / 255 - MEAN) / STD
                     for f in files])
    with torch.no_grad():
        ref32 = m(x).numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ref = m(x.contiguous(memory_format=torch.channels_last)).float().numpy()
            ref_nchw = m(x).float().numpy()
    r = vggtl("predict", "v11.pth", *files, "--logits", "--precision", "bf16", "--threads", 2, env=BF16)
    if not check(r.rc == 0, "predict --logits --precision bf16 runs", r):
        return
    got = logits(r)
    largest = np.abs(ref).max()
    tol = 2 * 2.0 ** (math.floor(math.log2(largest)) - 7)
    d, d32, dn = np.abs(got - ref).max(), np.abs(got - ref32).max(), np.abs(got - ref_nchw).max()
    ti.diag(f"bf16 logits: vs torch autocast (channels-last) {d:.3g}, vs torch autocast (NCHW) {dn:.3g}, "
            f"vs fp32 {d32:.3g}; largest logit {largest:.3g}, bound {tol:.3g}")
    check(got.shape == ref.shape and d <= tol,
          f"bf16 logits equal torchvision's under torch.autocast within 2 bf16 ulps ({d:.3g} <= {tol:.3g})")
    check(d32 > 0, "and they are not fp32's (the bf16 path ran)", d32)
    r32 = vggtl("predict", "v11.pth", *files, "--logits", "--threads", 2)
    check(r32.rc == 0 and np.abs(logits(r32) - ref32).max() <= 1e-4 * np.abs(ref32).max(),
          "--precision fp32 (the default) stays torchvision's fp32", r32)
    e = vggtl("eval", "v11.pth", "--data", "tiny", "--precision", "bf16", "--json", "--threads", 2, env=BF16)
    check(e.rc == 0 and '"accuracy"' in e.out, "eval --precision bf16 runs", e)


def case_train():
    common = ["--data", "tiny", "--precision", "bf16", "--freeze", "features", "--no-augment", "--batch-size", 8,
              "--epochs", 2, "--threads", 2, "--seed", 2]
    r = vggtl("train", "v11.pth", *common, "--checkpoint-dir", "ck", "-o", "bf.pth", "--style", "weights", env=BF16)
    if not check(r.rc == 0, "train --precision bf16 (frozen features, 2 epochs)", r):
        return
    ck = torch.load(path("ck/epoch_1.pth"))
    sd = ck["model_state_dict"]
    mom = [s["momentum_buffer"] for s in ck["optimizer_state_dict"]["state"].values()]
    check(all(t.dtype == torch.float32 for t in sd.values()) and mom and all(t.dtype == torch.float32 for t in mom),
          "the checkpoint holds fp32 weights and fp32 momentum buffers")
    r2 = vggtl("train", "--resume", "ck/epoch_1.pth", *common, "-o", "bf_resumed.pth", "--style", "weights", env=BF16)
    if check(r2.rc == 0, "train --resume --precision bf16", r2):
        a, b = torch.load(path("bf.pth")), torch.load(path("bf_resumed.pth"))
        check(list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a),
              "bf16 training resumes bit for bit")
    r3 = vggtl("train", "v11.pth", *[c for c in common if c not in ("bf16", "--precision")], "-o", "fp.pth",
               "--style", "weights")
    if r3.rc == 0:
        a, c = torch.load(path("bf.pth")), torch.load(path("fp.pth"))
        d = max((a[k] - c[k]).abs().max().item() for k in a)
        check(0 < d < 0.05, f"and differs from fp32 training by a little ({d:.3g})", d)
    net = torch.load(path("v11.pth"))
    net.load_state_dict(sd)
    opt = torch.optim.SGD(net.classifier.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    opt.load_state_dict(ck["optimizer_state_dict"])
    net.train()
    x = torch.randn(4, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(net(x).float(), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    check(torch.isfinite(loss).item() and net.classifier[0].weight.dtype == torch.float32,
          "the bf16-trained checkpoint continues in Python under autocast with PyTorch's SGD")


CASES = [
    ("1. refusals", case_refusals),
    ("2. bf16 logits against torch.autocast", case_logits),
    ("3. bf16 training, resuming, Python continuing", case_train),
]

if __name__ == "__main__":
    sys.exit(ti.run_cases(CASES, "vggtl-precision-", setup))
