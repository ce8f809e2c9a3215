#!/usr/bin/python3
"""bench_train.py - the Python side of make bench's training rows: torchvision's VGG16 +
add_linear (the tutorial's model) on the bundled sample, the way a PyTorch user writes it.

usage: bench_train.py MODE THREADS IMAGES EPOCHS DATA_DIR [fp32|bf16]
  MODE full   : SGD(momentum 0.9, wd 5e-4) on every parameter, batch 64
  MODE freeze : the same with features frozen (requires_grad False, optimizer on classifier)
  MODE eval   : model.eval(), torch.no_grad(), batch 64
bf16 runs the loop under torch.autocast("cpu", dtype=torch.bfloat16), channels-last input.
Prints one JSON line: images, seconds (training/eval loop only), images_per_s.
"""
import contextlib
import json
import sys
import time

import numpy as np
import torch
import torchvision
from torch import nn


def main():
    mode, threads, images, epochs, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    bf16 = sys.argv[6:7] == ["bf16"]
    cast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    raw = np.fromfile(f"{data}/cifar-10-batches-bin/data_batch_1.bin", dtype=np.uint8).reshape(-1, 3073)[:images]
    y = torch.from_numpy(raw[:, 0].astype(np.int64))
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    x = (torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32)).float() / 255 - mean) / std
    if bf16:
        x = x.contiguous(memory_format=torch.channels_last)
    model = torchvision.models.vgg16()
    model.classifier.add_module("add_linear", nn.Linear(1000, 10))
    batch = 64
    start = time.perf_counter()
    if mode == "eval":
        model.eval()
        with torch.no_grad(), cast():
            for i in range(0, len(x), batch):
                model(x[i:i + batch])
        n = len(x)
    else:
        if mode == "freeze":
            for p in model.features.parameters():
                p.requires_grad = False
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
        model.train()
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(epochs):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), batch):
                idx = perm[i:i + batch]
                opt.zero_grad()
                with cast():
                    out = model(x[idx])
                loss = loss_fn(out.float(), y[idx])
                loss.backward()
                opt.step()
        n = len(x) * epochs
    secs = time.perf_counter() - start
    print(json.dumps({"images": n, "seconds": secs, "images_per_s": n / secs}))


if __name__ == "__main__":
    main()
