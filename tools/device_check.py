#!/usr/bin/env python3
"""device_check.py - the CUDA half of the training issue, for a session with a GPU machine.

usage: python3 tools/device_check.py [DEVICE]   (DEVICE: cuda (default), cuda:N or cpu)

Run by the python3 that holds a CUDA torch and torchvision, after the shim was built against
that torch (tools/device_check.sh does both). Against torch on the same device it checks:
- vggtl's logits equal torchvision's within 1e-3 of the largest (TF32 convolutions on CUDA),
  for vgg16 + add_linear and vgg11_bn with non-trivial batch-norm statistics;
- eval on the device agrees with eval on the CPU (accuracy within 2 of 200 images, loss
  within 1e-3);
- full fine-tuning on the device lowers the test loss; the output and the epoch checkpoint
  load in Python, and PyTorch's SGD takes the optimizer state;
- --freeze features on the device (the folded first-Linear update, its non-CPU branch) ends
  within 1e-3 of the same run on the CPU;
and prints vggtl's and PyTorch's training speed on the device. Prints TAP lines.
"""
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import test_train as tt  # noqa: E402 - the CPU suite's helpers: check, vggtl, logits_match

DEV = sys.argv[1] if len(sys.argv) > 1 else "cuda"
check, vggtl = tt.check, tt.vggtl


def logits_match(model, weights, tmp, name):
    tt.logits_match(model, weights, tmp, name, device=DEV, tol=1e-3)  # TF32 convolutions on CUDA


def main():
    torch.manual_seed(0)
    print(f"# torch {torch.__version__}, torchvision {torchvision.__version__}, device {DEV}"
          + (f" ({torch.cuda.get_device_name(DEV)})" if DEV.startswith("cuda") else ""))
    with tempfile.TemporaryDirectory() as tmp:
        j = lambda *p: os.path.join(tmp, *p)
        m = tt.vgg16_add_linear()
        torch.save(m.state_dict(), j("v16.pth"))
        logits_match(m, j("v16.pth"), tmp, "vgg16+add_linear")
        b = tt.vgg11_bn_with_statistics()
        torch.save(b.state_dict(), j("v11bn.pth"))
        logits_match(b, j("v11bn.pth"), tmp, "vgg11_bn")

        r_dev = vggtl("eval", j("v11bn.pth"), "--json", "--device", DEV)
        r_cpu = vggtl("eval", j("v11bn.pth"), "--json", "--device", "cpu")
        ok = r_dev.returncode == 0 and r_cpu.returncode == 0
        e_dev = json.loads(r_dev.stdout) if ok else {}
        e_cpu = json.loads(r_cpu.stdout) if ok else {}
        # TF32 convolutions may flip a near tie: at most 2 of the 200 images
        check(ok and abs(e_dev["accuracy"] - e_cpu["accuracy"]) <= 0.01 and abs(e_dev["loss"] - e_cpu["loss"]) <= 1e-3,
              f"eval on {DEV} agrees with eval on the CPU (accuracy within 2 images, loss within 1e-3)",
              r_dev.stderr + r_cpu.stderr + (f"{e_dev} {e_cpu}" if ok else ""))
        if ok:
            print(f"# eval images/s: {DEV} {e_dev['images_per_s']:.0f}, cpu {e_cpu['images_per_s']:.0f}")

        # full fine-tuning on the device
        r = vggtl("extend", "--arch", "vgg11_bn", "--replace-last", 10, "--style", "weights", "-o", j("start.pth"))
        check(r.returncode == 0, "extend vgg11_bn for 10 classes", r.stderr)
        before = json.loads(vggtl("eval", j("start.pth"), "--json", "--device", DEV).stdout or "{}").get("loss", 0)
        r = vggtl("train", j("start.pth"), "--device", DEV, "--epochs", 3, "--seed", 7, "--checkpoint-dir", j("ck"),
                  "--metrics", j("m.jsonl"), "-o", j("tuned.pth"), "--style", "weights")
        check(r.returncode == 0, f"train 3 epochs on {DEV}", r.stderr)
        after = json.loads(vggtl("eval", j("tuned.pth"), "--json", "--device", DEV).stdout or "{}").get("loss", 1e9)
        check(after < before, f"test loss went down on {DEV}: {before:.4f} -> {after:.4f}")
        if os.path.exists(j("m.jsonl")):
            steps = [json.loads(l) for l in open(j("m.jsonl")) if '"step"' in l]
            if steps:
                print(f"# vggtl full fine-tuning on {DEV}: {np.median([s['images_per_s'] for s in steps]):.0f} img/s "
                      "(median over steps, batch 64)")
        try:
            sd = torch.load(j("tuned.pth"), weights_only=True)
            net = torchvision.models.vgg11_bn(num_classes=10)
            net.load_state_dict(sd, strict=True)
            ck = torch.load(j("ck", "epoch_3.pth"), weights_only=False)
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
            opt.load_state_dict(ck["optimizer_state_dict"])
            check(ck["epoch"] == 3, "the output and the epoch checkpoint load in Python; SGD takes the state")
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            check(False, "the output and the epoch checkpoint load in Python", e)

        # --freeze features: the folded update on the device against the CPU
        common = ["train", j("v16.pth"), "--freeze", "features", "--no-augment", "--epochs", 2, "--limit", 256,
                  "--seed", 3, "--style", "weights"]
        r_dev = vggtl(*common, "--device", DEV, "-o", j("fz_dev.pth"))
        r_cpu = vggtl(*common, "--device", "cpu", "-o", j("fz_cpu.pth"))
        if r_dev.returncode == 0 and r_cpu.returncode == 0:
            a = torch.load(j("fz_dev.pth"), weights_only=True)
            c = torch.load(j("fz_cpu.pth"), weights_only=True)
            worst = max(((a[k] - c[k]).abs().max() / c[k].abs().max().clamp_min(1e-12)).item() for k in a)
            check(worst <= 1e-3, f"--freeze features on {DEV} ends within 1e-3 of the CPU run (worst {worst:.3g})")
        else:
            check(False, f"--freeze features on {DEV} and on the CPU", r_dev.stderr + r_cpu.stderr)

        # PyTorch's own speed on the device, for the same model and batch (a reference, not a check)
        if DEV.startswith("cuda"):
            torch.backends.cudnn.benchmark = True
            net = tt.vgg16_add_linear().to(DEV).train()
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
            x = torch.randn(64, 3, 32, 32, device=DEV)
            y = torch.randint(0, 10, (64,), device=DEV)
            for k in range(60):
                if k == 10:
                    torch.cuda.synchronize(DEV)
                    t = time.perf_counter()
                opt.zero_grad()
                nn.functional.cross_entropy(net(x), y).backward()
                opt.step()
            torch.cuda.synchronize(DEV)
            print(f"# PyTorch vgg16+add_linear full fine-tuning on {DEV}: {50 * 64 / (time.perf_counter() - t):.0f} img/s")
    print(f"1..{tt.N}")
    return 1 if tt.FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
