#!/usr/bin/python3
"""test_zip64.py - opt-in (make test-large): files over 4 GiB, which need zip64 records.

A VGG16 state_dict whose classifier.6.bias is a view into a 4.4 GB float32 storage (a storage
larger than its tensor is legal, and torch.save writes all of it). Python writes it; vggtl
lists, verifies and rewrites it (the writer's zip64 path: a record >= 4 GiB and headers past
4 GiB); Python loads vggtl's file and compares. Needs about 10 GB of disk and 10 GB of memory.
"""
import os
import subprocess
import sys
import tempfile

import torch
import torchvision

VGGTL = os.path.abspath(os.environ.get("VGGTL", "build/vggtl"))
N = FAILED = 0


def check(cond, desc, diag=""):
    global N, FAILED
    N += 1
    FAILED += not cond
    print(f"{'ok' if cond else 'not ok'} {N} - {desc}")
    for line in str(diag).splitlines()[:10] if not cond else []:
        print(f"# {line}")


def main():
    with tempfile.TemporaryDirectory(dir=os.environ.get("LARGE_TMP", "build")) as tmp:
        sd = torchvision.models.vgg16().state_dict()
        big = torch.empty(1_100_000_000)  # 4.4 GB, more than 2^32 bytes
        big[:1000] = torch.arange(1000.0)
        big[-1000:] = -torch.arange(1000.0)
        sd["classifier.6.bias"] = big[-1000:]
        src, out = os.path.join(tmp, "big.pth"), os.path.join(tmp, "out.pth")
        torch.save(sd, src)
        del big, sd
        check(os.path.getsize(src) > 2**32, f"Python wrote a {os.path.getsize(src)}-byte file")
        r = subprocess.run([VGGTL, "load", "--tensors", src], capture_output=True, text=True)
        check(r.returncode == 0 and "classifier.6.bias\tfloat32\t[1000]\t4000" in r.stdout, "vggtl load --tensors", r.stderr)
        r = subprocess.run([VGGTL, "verify", src], capture_output=True, text=True)
        check(r.returncode == 0, "vggtl verify (CRCs of the 4.4 GB record)", r.stderr)
        r = subprocess.run([VGGTL, "save-weights", src, "-o", out], capture_output=True, text=True)
        check(r.returncode == 0, "vggtl save-weights writes zip64 records", r.stderr)
        os.unlink(src)
        if r.returncode == 0:
            got = torch.load(out, weights_only=True)
            b = got["classifier.6.bias"]
            check(b.storage().size() == 1_100_000_000 and b.storage_offset() == 1_100_000_000 - 1000,
                  "Python loads it: the whole storage, the view's offset")
            check(torch.equal(b, -torch.arange(1000.0)), "the viewed values are exact")
    print(f"1..{N}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
