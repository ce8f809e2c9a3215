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
and prints vggtl's and PyTorch's training speed on the device. For --precision bf16 and fp16
(mixed precision, with GradScaler's loss scaling for fp16 training) on the device it checks:
- predict --logits against torchvision under torch.autocast on the same device, within 4
  ulps of the precision at the largest logit (16-bit products, sums in fp32);
- eval agrees with fp32 eval (accuracy within 2 of 200 images);
- one epoch of full fine-tuning runs with a finite loss, the checkpoint holds fp32 weights,
  and for fp16 a 'scaler' that torch.amp.GradScaler("cuda") loads;
and prints images/s of vggtl and of PyTorch under autocast (+ GradScaler) for each.
Prints TAP lines.
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


def torch_speed(dt=None):
    """PyTorch's full fine-tuning images/s on the device for vgg16 + add_linear, batch 64: 50
    timed steps after 10; under autocast to dt, with GradScaler for float16, when dt is given."""
    net = tt.vgg16_add_linear().to(DEV).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=dt == torch.float16)
    x = torch.randn(64, 3, 32, 32, device=DEV)
    y = torch.randint(0, 10, (64,), device=DEV)
    for k in range(60):
        if k == 10:
            torch.cuda.synchronize(DEV)
            t = time.perf_counter()
        opt.zero_grad()
        with torch.autocast("cuda", dtype=dt or torch.float16, enabled=dt is not None):
            out = net(x)
        scaler.scale(nn.functional.cross_entropy(out.float(), y)).backward()
        scaler.step(opt)
        scaler.update()
    torch.cuda.synchronize(DEV)
    return 50 * 64 / (time.perf_counter() - t)


def precision_checks(tmp, j):
    """bf16 and fp16 on the device against torch.autocast there (see the docstring)."""
    rng = np.random.default_rng(2)
    files = []
    for i in range(4):
        files.append(j(f"prec_{i}.png"))
        tt.Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(files[-1])
    x = torch.stack([(torch.from_numpy(np.array(tt.Image.open(f))).permute(2, 0, 1).float() / 255 - tt.MEAN) / tt.STD
                     for f in files])
    m = tt.vgg16_add_linear().eval()
    torch.save(m.state_dict(), j("prec.pth"))
    e32 = json.loads(vggtl("eval", j("prec.pth"), "--json", "--device", DEV).stdout or "{}")
    for prec, dt, bits in (("bf16", torch.bfloat16, 8), ("fp16", torch.float16, 11)):
        r = vggtl("predict", j("prec.pth"), "--logits", "--device", DEV, "--precision", prec, *files)
        if check(r.returncode == 0, f"predict --precision {prec} on {DEV} runs", r.stderr):
            got = np.array([[float(v) for v in ln.split("\t")[1].split()] for ln in r.stdout.strip().split("\n")])
            with torch.no_grad(), torch.autocast("cuda", dtype=dt):
                ref = m.to(DEV)(x.to(DEV)).float().cpu().numpy()
            m.cpu()
            largest = np.abs(ref).max()
            tol = 4 * 2.0 ** (np.floor(np.log2(largest)) - (bits - 1))
            d = np.abs(got - ref).max()
            check(d <= tol, f"{prec} logits equal torchvision's under torch.autocast on {DEV} within 4 ulps "
                  f"({d:.3g} <= {tol:.3g})")
        e = json.loads(vggtl("eval", j("prec.pth"), "--json", "--device", DEV, "--precision", prec).stdout or "{}")
        check(e and e32 and abs(e["accuracy"] - e32["accuracy"]) <= 0.01,
              f"eval --precision {prec} agrees with fp32 (accuracy within 2 of 200 images)", f"{e} {e32}")
        if e:
            print(f"# eval --precision {prec} on {DEV}: {e['images_per_s']:.0f} img/s "
                  f"(fp32 {e32.get('images_per_s', 0):.0f})")
        r = vggtl("train", j("prec.pth"), "--device", DEV, "--precision", prec, "--epochs", 1, "--seed", 7,
                  "--checkpoint-dir", j(f"ck_{prec}"), "--metrics", j(f"m_{prec}.jsonl"))
        if not check(r.returncode == 0 and "nan" not in r.stdout, f"train --precision {prec} on {DEV}: 1 epoch, finite loss",
                     r.stderr[-1500:]):
            continue
        steps = [json.loads(ln) for ln in open(j(f"m_{prec}.jsonl")) if '"step"' in ln]
        if steps:
            print(f"# vggtl full fine-tuning --precision {prec} on {DEV}: "
                  f"{np.median([s['images_per_s'] for s in steps]):.0f} img/s; {r.stderr.strip().splitlines()[-1]}")
        ck = torch.load(j(f"ck_{prec}", "epoch_1.pth"), weights_only=False)
        check(all(t.dtype == torch.float32 for t in ck["model_state_dict"].values()),
              f"the {prec} checkpoint holds fp32 weights")
        if prec == "fp16":
            try:
                sc = torch.amp.GradScaler("cuda")
                sc.load_state_dict(ck["scaler"])
                check(sc.state_dict() == ck["scaler"], "GradScaler('cuda') takes the fp16 checkpoint's scaler", ck["scaler"])
            except Exception as ex:  # noqa: BLE001
                check(False, "GradScaler('cuda') takes the fp16 checkpoint's scaler", ex)
        # PyTorch's speed under autocast (+ GradScaler for fp16), same model and batch
        print(f"# PyTorch full fine-tuning under autocast {prec} on {DEV}: {torch_speed(dt):.0f} img/s")


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

        if DEV.startswith("cuda"):
            precision_checks(tmp, j)

        # PyTorch's own speed on the device, for the same model and batch (a reference, not a check)
        if DEV.startswith("cuda"):
            torch.backends.cudnn.benchmark = True
            print(f"# PyTorch vgg16+add_linear full fine-tuning on {DEV}: {torch_speed():.0f} img/s")
    print(f"1..{tt.N}")
    return 1 if tt.FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
