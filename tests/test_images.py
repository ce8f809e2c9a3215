#!/usr/bin/python3
"""test_images.py - JPEG and PNG images, image folders and archives, against torchvision.

The reference is Debian's torchvision 0.14 on PIL 9.4 (both under /usr/bin/python3): every
fixture is made here by PIL in the temporary folder (JPEG quality 50 and 95, progressive,
greyscale, CMYK, odd sizes from 1x1 to 640x480, greyscale and RGBA PNGs), nothing binary is
committed.  Checked:
  1. the input tensors vggtl computes for an image folder (tests/dump_tensors: vt_data_load +
     vt_data_batch, what eval and train feed the network) equal torchvision's
     ImageFolder(Resize((S, S)), ToTensor(), Normalize) within 1/255 per value, at S = 32 and
     224, with the same classes, labels and image order; the largest difference is printed;
  2. the same tree as .zip (at the root), .tar.gz and .tgz (under one top folder), .tar and
     .tar.xz gives the same tensors; names escaping the archive, a lying zip member and a
     truncated archive are refused with the archive's name;
  3. predict on JPEGs gives torchvision's top classes and probabilities within 1e-4 (and its
     logits); a truncated or corrupt JPEG is an error naming it, and predict skips it;
  4. train and eval run on a JPEG folder and on a zip of it.

    /usr/bin/python3 tests/test_images.py      # VGGTL=build/vggtl, BUILD=build
"""
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_interop as ti  # noqa: E402  (TAP, vggtl(), temporary folder)
from test_interop import check, check_fail, diag, path, vggtl  # noqa: E402

DUMP = os.path.abspath(os.path.join(os.environ.get("BUILD", "build"), "tests", "dump_tensors"))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CIFAR = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
# ASan's leak check at exit trips over libtorch's threads (as tests/run.sh knows)
ENV = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"}


def photo(w, h, seed):
    """A smooth picture with noise: what JPEG is made for, and resizing has work to do."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255.0 / max(w - 1, 1), y * 255.0 / max(h - 1, 1), (x + 2 * y) * 3.0 % 256], -1)
    a += 40 * np.sin(x / 5.0 + seed)[..., None] + rng.normal(0, 18, a.shape)
    return np.clip(a, 0, 255).astype(np.uint8)


# class -> [(relative name, how PIL writes it)]; the tree has train/ and test/ splits
def save_jpeg(a, f, **kw):
    Image.fromarray(a).save(f, "JPEG", **kw)


FIXTURES = {
    "cat": [("q50.jpg", lambda f: save_jpeg(photo(640, 480, 1), f, quality=50)),
            ("q95.JPG", lambda f: save_jpeg(photo(640, 480, 2), f, quality=95)),
            ("progressive.jpeg", lambda f: save_jpeg(photo(300, 7, 3), f, quality=80, progressive=True)),
            ("sub/tall.jpg", lambda f: save_jpeg(photo(7, 300, 4), f, quality=90)),
            ("one.png", lambda f: Image.fromarray(photo(1, 1, 5)).save(f))],
    "dog": [("grey.jpg", lambda f: save_jpeg(photo(333, 251, 6)[:, :, 0], f, quality=85)),
            ("cmyk.jpg", lambda f: Image.fromarray(photo(97, 61, 7)).convert("CMYK").save(f, "JPEG", quality=90)),
            ("one.jpg", lambda f: save_jpeg(photo(1, 1, 8), f, quality=95)),
            ("grey.png", lambda f: Image.fromarray(photo(640, 480, 9)[:, :, 1]).save(f)),
            ("rgba.png", lambda f: Image.fromarray(np.dstack([photo(7, 300, 10), photo(7, 300, 11)[:, :, 0]]),
                                                   "RGBA").save(f)),
            ("notes.txt", lambda f: open(f, "w").write("not an image: ignored, as ImageFolder ignores it"))],
}


def make_tree(root):
    for split in ("train", "test"):
        for cls, files in FIXTURES.items():
            for name, write in files:
                f = os.path.join(root, split, cls, name)
                os.makedirs(os.path.dirname(f), exist_ok=True)
                write(f)


def dump(data, split, size):
    """vggtl's tensors for a dataset: (classes, labels, array n x 3 x size x size) or the error."""
    out = path("dump.bin")
    r = subprocess.run([DUMP, data, split, str(size), out], capture_output=True, text=True)
    if r.returncode:
        return r.stderr.strip()
    raw = open(out, "rb").read()
    head, rest = raw.split(b"\n", 1)
    n, nc, s = map(int, head.split())
    lines = rest.split(b"\n", nc + 1)
    classes = [c.decode() for c in lines[:nc]]
    labels = [int(v) for v in lines[nc].split()]
    return classes, labels, np.frombuffer(lines[nc + 1], dtype=np.float32).reshape(n, 3, s, s)


def reference(root, size, norm=IMAGENET):
    tf = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize(*norm)])
    return torchvision.datasets.ImageFolder(root, transform=tf)


def setup():
    make_tree(path("tree"))


# ---- 1. tensors against torchvision -------------------------------------------------------


def case_tensors():
    check(os.access(DUMP, os.X_OK), f"the helper {DUMP} is built")
    std = np.array(IMAGENET[1], dtype=np.float32).reshape(3, 1, 1)
    for size in (32, 224):
        got = dump(path("tree"), "train", size)
        ref = reference(path("tree/train"), size)
        if not check(isinstance(got, tuple), f"vggtl loads the image folder at {size}x{size}", got):
            continue
        classes, labels, x = got
        check(classes == ref.classes and labels == ref.targets and len(x) == len(ref.samples),
              f"{size}x{size}: the classes, labels and image order of torchvision's ImageFolder",
              f"vggtl {classes} {labels}", f"torchvision {ref.classes} {ref.targets}")
        worst, where = 0.0, ""
        for i, (f, _) in enumerate(ref.samples[:len(x)]):
            # in ToTensor's units (before Normalize): a difference of one 8-bit level is 1/255
            d = float(np.abs((x[i] - ref[i][0].numpy()) * std).max())
            diag(f"{size}x{size} {os.path.relpath(f, path('tree'))}: largest difference {d * 255:.4f}/255")
            if d >= worst:
                worst, where = d, os.path.basename(f)
        check(worst <= 1 / 255 + 1e-6, f"{size}x{size}: every input value equals torchvision's within 1/255 "
              f"(largest difference {worst * 255:.4f}/255, {where})")


# ---- 2. archives --------------------------------------------------------------------------


def make_zip(dst, root, prefix=""):
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for d, dirs, files in sorted(os.walk(root)):
            rel = os.path.relpath(d, root)
            if rel != ".":
                z.write(d, prefix + rel + "/")
            for f in sorted(files, reverse=True):  # the archive's order is not the dataset's
                z.write(os.path.join(d, f), prefix + os.path.normpath(os.path.join(rel, f)))


def case_archives():
    want = dump(path("tree"), "train", 32)
    want_test = dump(path("tree"), "test", 32)
    shutil.copytree(path("tree"), path("top/pets"))
    make_zip(path("pets.zip"), path("tree"))
    with tarfile.open(path("pets.tar.gz"), "w:gz") as t:
        t.add(path("top/pets"), "pets")
    shutil.copy(path("pets.tar.gz"), path("pets.tgz"))
    with tarfile.open(path("pets.tar"), "w") as t:
        t.add(path("tree"), ".")
    with tarfile.open(path("pets.tar.xz"), "w:xz") as t:
        t.add(path("top/pets"), "pets")
    for name, where in (("pets.zip", "at its root"), ("pets.tar.gz", "under one top folder"),
                        ("pets.tgz", "under one top folder"), ("pets.tar", "at its root, as ./"),
                        ("pets.tar.xz", "under one top folder")):
        for split, ref in (("train", want), ("test", want_test)):
            got = dump(path(name), split, 32)
            same = isinstance(got, tuple) and isinstance(ref, tuple) and got[0] == ref[0] and got[1] == ref[1] \
                and np.array_equal(got[2], ref[2])
            check(same, f"{name} (tree {where}), {split}: the folder's classes, labels and tensors", got
                  if not isinstance(got, tuple) else "")
    # what the commands make of an archive: eval's images per class, predict's class names
    r = vggtl("eval", "--arch", "vgg11", "--data", "pets.zip", "--json", "--threads", 2, "--device", "cpu", env=ENV)
    check(r.rc == 0 and '"images":\t10' in r.out.replace(" ", ""), "eval --data pets.zip reads the test split", r)

    # refusals, each naming the archive
    with zipfile.ZipFile(path("evil.zip"), "w") as z:
        z.write(path("tree/train/cat/one.png"), "train/cat/one.png")
        z.writestr("../evil.png", open(path("tree/train/cat/one.png"), "rb").read())
    got = dump(path("evil.zip"), "train", 32)
    check(isinstance(got, str) and "evil.zip" in got and "'../evil.png' escapes the archive" in got,
          "a zip with ../evil.png is refused, naming the entry", got)
    r = vggtl("train", "--arch", "vgg11", "--data", "evil.zip", "-o", "x.pth", "--epochs", 1, env=ENV)
    check_fail(r, 1, "train --data evil.zip", "evil.zip", "../evil.png")
    check(not os.path.exists(path("evil.png")) and not os.path.exists(path("../evil.png")),
          "...and nothing is written out of it")
    with tarfile.open(path("abs.tar.gz"), "w:gz") as t:
        info = tarfile.TarInfo("/tmp/abs.png")
        data = open(path("tree/train/cat/one.png"), "rb").read()
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    got = dump(path("abs.tar.gz"), "train", 32)
    check(isinstance(got, str) and "'/tmp/abs.png' escapes the archive" in got, "a tar with an absolute path is refused",
          got)
    # a zip member that inflates far past the size its headers declare (a bomb's trick)
    with zipfile.ZipFile(path("bomb.zip"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("train/cat/a.png", b"\x89PNG\r\n\x1a\n" + bytes(20 << 20))
    b = bytearray(open(path("bomb.zip"), "rb").read())
    for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size: local, central
        i = b.find(sig)
        b[i + at:i + at + 4] = (1000).to_bytes(4, "little")
    open(path("bomb.zip"), "wb").write(bytes(b))
    got = dump(path("bomb.zip"), "train", 32)
    check(isinstance(got, str) and "bomb.zip" in got and "a.png" in got,
          "a zip member that inflates past its declared 1000 bytes is an error naming it", got)
    whole = open(path("pets.tar.gz"), "rb").read()
    open(path("cut.tar.gz"), "wb").write(whole[:len(whole) * 2 // 3])
    got = dump(path("cut.tar.gz"), "train", 32)
    check(isinstance(got, str) and "cut.tar.gz" in got, "a truncated .tar.gz is an error naming it", got)
    with zipfile.ZipFile(path("flat.zip"), "w") as z:
        z.write(path("tree/train/cat/one.png"), "cat/one.png")
    got = dump(path("flat.zip"), "train", 32)
    check(isinstance(got, str) and "no image tree train/<class>/<image>" in got,
          "a zip without a train/ folder says what tree it expected", got)


# ---- 3. predict ---------------------------------------------------------------------------


def model_file():
    """A vgg11 with 10 outputs whose last layer is scaled so that the probabilities spread out."""
    torch.manual_seed(0)
    m = torchvision.models.vgg11(num_classes=10)
    with torch.no_grad():
        m.classifier[6].weight.mul_(60)
    m.eval()
    torch.save(m.state_dict(), path("m.pth"))
    return m


def parse_top(out):
    rows = {}
    for line in out.strip().splitlines():
        f = line.split("\t")
        rows[f[0]] = [(int(c.split()[0]), float(c.split()[1])) for c in f[1:]]
    return rows


def case_predict():
    m = model_file()
    imgs = [path(f"tree/test/{f}") for f in ("cat/q50.jpg", "cat/q95.JPG", "cat/progressive.jpeg",
                                             "dog/grey.jpg", "dog/cmyk.jpg", "cat/sub/tall.jpg")]
    tf = transforms.Compose([transforms.Resize((32, 32)), transforms.ToTensor(), transforms.Normalize(*CIFAR)])
    x = torch.stack([tf(torchvision.datasets.folder.pil_loader(f)) for f in imgs])
    with torch.no_grad():
        logits = m(x)
    probs = torch.softmax(logits.double(), 1)
    r = vggtl("predict", "m.pth", *imgs, "--top", 3, "--data", "tree", "--threads", 2, "--device", "cpu", env=ENV)
    rows = parse_top(r.out) if r.rc == 0 else {}
    worst, same_top = 0.0, len(rows) == len(imgs)
    for i, f in enumerate(imgs):
        top = torch.topk(probs[i], 3)
        got = rows.get(f, [])
        same_top &= [c for c, _ in got] == top.indices.tolist()
        for c, p in got:
            worst = max(worst, abs(p - probs[i][c].item()))
    check(r.rc == 0 and same_top, "predict on 6 JPEGs: torchvision's top 3 classes", r,
          f"torchvision: {[torch.topk(p, 3).indices.tolist() for p in probs]}")
    check(r.rc == 0 and worst <= 1e-4, f"...with torchvision's probabilities within 1e-4 (largest difference "
          f"{worst:.2g}; printed to 4 decimals)", r.out)
    r = vggtl("predict", "m.pth", *imgs, "--logits", "--threads", 2, "--device", "cpu", env=ENV)
    got = np.array([[float(v) for v in line.split("\t")[1].split()] for line in r.out.strip().splitlines()]) \
        if r.rc == 0 else np.zeros((0, 10))
    ref = logits.numpy()
    diff = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
    gotp = torch.softmax(torch.from_numpy(got).double(), 1) if got.shape == ref.shape else probs + 1
    pdiff = float((gotp - probs).abs().max())
    check(got.shape == ref.shape and pdiff <= 1e-4,
          f"predict --logits: softmax equals torchvision's within 1e-4 (largest difference {pdiff:.2g}; "
          f"logits {diff:.2g} of {np.abs(ref).max():.3g})")
    # damaged JPEGs: an error naming the file, never a grey image; predict goes on with the rest
    whole = open(imgs[0], "rb").read()
    open(path("cut.jpg"), "wb").write(whole[:len(whole) // 2])
    prog = open(imgs[2], "rb").read()
    open(path("cut_progressive.jpg"), "wb").write(prog[:len(prog) - 200])
    bad = bytearray(whole)
    sos = bad.find(b"\xff\xda")
    for k in range(sos + 400, sos + 420):
        bad[k] = 0xff if k % 2 else 0xd3  # markers in the middle of the entropy-coded data
    open(path("corrupt.jpg"), "wb").write(bytes(bad))
    for name in ("cut.jpg", "cut_progressive.jpg", "corrupt.jpg"):
        r = vggtl("predict", "m.pth", name, "--threads", 2, "--device", "cpu", env=ENV)
        check_fail(r, 1, f"predict {name}", name, "JPEG")
    r = vggtl("predict", "m.pth", imgs[0], "cut.jpg", imgs[1], "--top", 1, "--threads", 2, "--device", "cpu", env=ENV)
    lines = r.out.strip().splitlines()
    check(r.rc == 1 and [l.split("\t")[0] for l in lines] == [imgs[0], imgs[1]] and "cut.jpg" in r.err,
          "predict skips a truncated JPEG (exit 1, named) and predicts the others", r)
    with torch.no_grad():  # what PIL itself says of the same files: it refuses them too
        for name in ("cut.jpg", "cut_progressive.jpg"):
            try:
                torchvision.datasets.folder.pil_loader(path(name))
                refused = False
            except OSError:
                refused = True
            check(refused, f"PIL refuses {name} as well (the reference agrees it is broken)")


# ---- 4. train and eval on JPEGs -----------------------------------------------------------


def case_train():
    os.makedirs(path("bad/train/cat"))
    os.makedirs(path("bad/test/cat"))
    shutil.copy(path("cut.jpg"), path("bad/train/cat/cut.jpg"))
    shutil.copy(path("tree/test/cat/q50.jpg"), path("bad/test/cat/q50.jpg"))
    r = vggtl("train", "m.pth", "--data", "bad", "-o", "x.pth", "--epochs", 1, "--threads", 2, env=ENV)
    check_fail(r, 1, "train on a folder holding a truncated JPEG", "cut.jpg", "truncated JPEG")
    for data in ("tree", "pets.zip"):
        out = f"tuned_{data}.pth"
        r = vggtl("train", "m.pth", "--data", data, "--epochs", 1, "--batch-size", 5, "--threads", 2,
                  "--device", "cpu", "--seed", 1, "--style", "weights", "-o", out, env=ENV)
        check(r.rc == 0 and "10 images, 2 classes" in r.err and "test accuracy" in r.out,
              f"train --data {data}: one epoch on the JPEG and PNG tree", r)
        if r.rc == 0:
            e = vggtl("eval", out, "--data", data, "--threads", 2, "--device", "cpu", env=ENV)
            check(e.rc == 0 and re.search(r"^images 10$", e.out, re.M) and "class cat" in e.out,
                  f"eval {out} --data {data}", e)
        ti.rm(out)


CASES = [
    ("1. input tensors against torchvision", case_tensors),
    ("2. archives", case_archives),
    ("3. predict on JPEGs", case_predict),
    ("4. train and eval on JPEGs", case_train),
]


if __name__ == "__main__":
    sys.exit(ti.run_cases(CASES, "vggtl-images-", setup))
