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
import shutil
import subprocess
import sys
import tempfile

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
    r = vggtl("train", "v11.pth", "--precision", "fp16", "--limit", 4, "--device", "cpu")
    check_fail(r, 2, "train --precision fp16 on the CPU", "fp16", "CUDA")
    r = vggtl("train", "v11.pth", "--precision", "fp16", "--loss-scale", "none", "--limit", 4)
    check_fail(r, 2, "train --precision fp16 --loss-scale none", "--loss-scale dynamic")
    r = vggtl("train", "v11.pth", "--loss-scale", "static", "--limit", 4)
    check_fail(r, 2, "--loss-scale static", "dynamic or none")
    r = vggtl("train", "v11.pth", "--loss-scale", "dynamic", "--loss-scale-interval", 0, "--limit", 4)
    check_fail(r, 2, "--loss-scale-interval 0", "--loss-scale-interval")
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
    # batch norm: bf16 activations into fp32 running statistics and affine terms
    b = torchvision.models.vgg11_bn(num_classes=10)
    with torch.no_grad():
        for mod in b.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.1)
    b.eval()
    torch.save(b, path("v11bn.pth"))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref = b(x.contiguous(memory_format=torch.channels_last)).float().numpy()
    r = vggtl("predict", "v11bn.pth", *files, "--logits", "--precision", "bf16", "--threads", 2, env=BF16)
    if check(r.rc == 0, "predict --precision bf16 on vgg11_bn runs", r):
        got = logits(r)
        largest = np.abs(ref).max()
        tol = 2 * 2.0 ** (math.floor(math.log2(largest)) - 7) + 1e-6  # + the printed digits
        d = np.abs(got - ref).max()
        check(d <= tol, f"vgg11_bn bf16 logits equal torchvision's under torch.autocast within 2 bf16 ulps "
              f"({d:.3g} <= {tol:.3g})")


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


SCALER_KEYS = ["scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"]


def weights_equal(a, b):
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def case_loss_scale():
    """GradScaler's dynamic loss scaling, checked on the CPU in fp32 (fp16 itself needs CUDA):
    a power-of-two scale cancels exactly, so clean steps must give the unscaled run's weights
    bit for bit; a scale of inf makes every gradient non-finite, so every step is skipped."""
    for label, extra in (("full fine-tuning", []), ("frozen features, folded first Linear", ["--freeze", "features"])):
        common = ["--data", "tiny", "--no-augment", "--batch-size", 8, "--epochs", 2, "--threads", 2, "--seed", 3,
                  *extra]
        r0 = vggtl("train", "v11.pth", *common, "-o", "ls_none.pth", "--style", "weights")
        r1 = vggtl("train", "v11.pth", *common, "--loss-scale", "dynamic", "--loss-scale-interval", 3,
                   "--checkpoint-dir", "ls_ck", "-o", "ls_dyn.pth", "--style", "weights")
        if not check(r0.rc == 0 and r1.rc == 0, f"{label}: train with and without --loss-scale dynamic", r0, r1):
            continue
        check("0 steps skipped" in r1.err and "scale now 131072" in r1.err,
              f"{label}: 4 clean steps, the scale doubled once after 3 (stderr says so)", r1.err[-300:])
        check(weights_equal(torch.load(path("ls_dyn.pth")), torch.load(path("ls_none.pth"))),
              f"{label}: scaled by 2^16..2^17 and unscaled, the weights equal the unscaled run's bit for bit")
        ck = torch.load(path("ls_ck/epoch_2.pth"))  # 1.13's weights_only lacks BINFLOAT
        sc = ck.get("scaler", {})
        check(list(sc) == SCALER_KEYS and sc["scale"] == 131072.0 and sc["_growth_tracker"] == 1 and
              sc["growth_interval"] == 3 and sc["growth_factor"] == 2.0 and sc["backoff_factor"] == 0.5,
              f"{label}: the checkpoint's 'scaler' is GradScaler.state_dict() after 4 steps", sc)
        r2 = vggtl("train", "--resume", "ls_ck/epoch_1.pth", *common, "--loss-scale", "dynamic",
                   "--loss-scale-interval", 3, "-o", "ls_res.pth", "--style", "weights")
        check(r2.rc == 0 and "scale now 131072" in r2.err and
              weights_equal(torch.load(path("ls_res.pth")), torch.load(path("ls_dyn.pth"))),
              f"{label}: --resume continues the scaler from the checkpoint, bit for bit", r2)
    common = ["--data", "tiny", "--no-augment", "--batch-size", 8, "--epochs", 2, "--threads", 2, "--seed", 3]
    src = torch.load(path("v11.pth")).state_dict()
    r = vggtl("train", "v11.pth", *common, "--loss-scale", "dynamic", "--loss-scale-init", "inf",
              "--checkpoint-dir", "inf_ck", "-o", "ls_inf.pth", "--style", "weights")
    if check(r.rc == 0 and "4 steps skipped" in r.err and "scale now inf" in r.err,
             "--loss-scale-init inf: all 4 steps skipped", r):
        got = torch.load(path("ls_inf.pth"))
        check(weights_equal({k: got[k] for k in src}, src), "and the weights are the untrained ones, bit for bit")
        ck = torch.load(path("inf_ck/epoch_2.pth"))
        check(ck["scaler"]["scale"] == float("inf") and ck["scaler"]["_growth_tracker"] == 0 and
              not ck["optimizer_state_dict"]["state"], "no step taken: no momentum buffers, growth tracker 0",
              ck["scaler"])
    # lr 1e30: the first (clean) step throws the weights so far that every later gradient is
    # NaN: those steps are skipped, the scale halves each time, and the weights stay finite
    r = vggtl("train", "v11.pth", *common, "--loss-scale", "dynamic", "--loss-scale-init", "3.4e38", "--lr", "1e30",
              "--momentum", 0, "--weight-decay", 0, "--schedule", "none", "-o", "ls_big.pth", "--style", "weights")
    want = np.float32(3.4e38)
    for _ in range(3):
        want = np.float32(want * 0.5)
    check(r.rc == 0 and "3 steps skipped" in r.err and f"scale now {float(want):g}" in r.err,
          f"lr 1e30: the 3 steps after the first are skipped for NaN gradients, and the float32 scale halved "
          f"3 times ({float(want):g})", r.err[-300:])
    if r.rc == 0:
        got = torch.load(path("ls_big.pth"))
        check(all(torch.isfinite(got[k]).all() for k in got) and not weights_equal({k: got[k] for k in src}, src),
              "and the weights are the first step's: finite, moved, never NaN")
    scaler26(path("ls_ck/epoch_2.pth"))


def scaler26(ck):
    """torch 2.6's GradScaler("cpu") takes the checkpoint's scaler and gives the same
    state_dict back (run when tests/run.sh made the Debian 13 root: VGGTL_TORCH26=1)."""
    if os.environ.get("VGGTL_TORCH26") != "1":
        return
    peer = tempfile.mkdtemp(prefix="torch26-", dir=os.path.abspath("build"))
    try:
        shutil.copyfile(ck, os.path.join(peer, "ck.pth"))
        code = ("import torch,sys; ck = torch.load(sys.argv[1], weights_only=True); s = torch.amp.GradScaler('cpu'); "
                "s.load_state_dict(ck['scaler']); print(s.get_scale(), s.state_dict() == ck['scaler'], "
                "list(s.state_dict()) == list(ck['scaler']))")
        p = subprocess.run(["sh", "tools/torch26-root.sh", "run", "python3", "-c", code, os.path.join(peer, "ck.pth")],
                           capture_output=True, text=True, timeout=300)
        check(p.returncode == 0 and p.stdout.split() == ["131072.0", "True", "True"],
              "torch 2.6: GradScaler('cpu').load_state_dict(ck['scaler']) gives scale 131072 and the same state_dict",
              p.stdout[-500:] + p.stderr[-1500:])
    finally:
        shutil.rmtree(peer, ignore_errors=True)


CASES = [
    ("1. refusals", case_refusals),
    ("2. bf16 logits against torch.autocast", case_logits),
    ("3. bf16 training, resuming, Python continuing", case_train),
    ("4. dynamic loss scaling (GradScaler)", case_loss_scale),
]

if __name__ == "__main__":
    sys.exit(ti.run_cases(CASES, "vggtl-precision-", setup))
