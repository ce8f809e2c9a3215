#!/usr/bin/python3
"""Interop tests: Debian's python3-torch 1.13 + torchvision 0.14 against vggtl.

Python writes checkpoints for vggtl to read, and loads what vggtl writes.  Run from the
repository root with the system interpreter (the only one that imports torch here):

    /usr/bin/python3 tests/test_interop.py          # VGGTL=path/to/vggtl to pick a binary

Prints TAP ("ok N - ...", "not ok N - ..." with "# " diagnostics, then "1..N") and exits 1
if anything failed.  Everything lives in one temporary folder; nothing is downloaded.

Cost: a full VGG16 file is 553 MB and takes a second or two to write, so the suite makes
one reference model (vgg16 + add_linear, seed 0), writes each full-size file once and
deletes it when its case is done.  Models that are only printed or used as a strict
load_state_dict target are built with their weight initialisation skipped (see tv()).
"""
import collections
import contextlib
import filecmp
import io
import json
import math
import os
import pickle
import re
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile

import torch
import torch.nn as nn
import torchvision

VGGTL = os.path.abspath(os.environ.get("VGGTL", "build/vggtl"))
URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
ARCHS = ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]

# ---- TAP -----------------------------------------------------------------------------------

n_checks = 0
n_failed = 0


def diag(text):
    for line in str(text).rstrip("\n").splitlines():
        print("# " + line)


def check(cond, desc, *diagnostics):
    """One TAP line. diagnostics are printed (as '# ' lines) only when cond is false."""
    global n_checks, n_failed
    n_checks += 1
    if cond:
        print(f"ok {n_checks} - {desc}")
    else:
        n_failed += 1
        print(f"not ok {n_checks} - {desc}")
        for d in diagnostics:
            diag(d)
    sys.stdout.flush()
    return bool(cond)


# ---- helpers -------------------------------------------------------------------------------


class Run:
    def __init__(self, p):
        self.rc, self.out, self.err = p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def __str__(self):
        return f"exit {self.rc}\nstdout: {self.out[:600]!r}\nstderr: {self.err[:600]!r}"


def vggtl(*args, env=None, cwd=None):
    """Run the binary; args are converted with str()."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    for k in [k for k, v in full_env.items() if v is None]:
        del full_env[k]
    p = subprocess.run([VGGTL] + [str(a) for a in args], capture_output=True, env=full_env, cwd=cwd or T.dir,
                       timeout=300)
    return Run(p)


def check_fail(r, rc, desc, *words):
    """A failure the way DESIGN.md wants it: exit rc (not a signal), a message on stderr that
    names every word in words, no traceback or sanitizer report, nothing on stdout.  Exit 1
    (bad file) must come with a one-line message."""
    ok = r.rc == rc and r.out == "" and r.err.startswith("vggtl") and all(w in r.err for w in words)
    ok = ok and not any(s in r.err for s in ("Traceback", "Sanitizer", "runtime error"))
    if rc == 1:
        ok = ok and len(r.err.strip().splitlines()) == 1
    return check(ok, f"{desc}: exit {rc}" + (f", message names {', '.join(words)}" if words else ""), r)


def dtype_name(dt):
    return str(dt).replace("torch.", "")


def tensor_lines(sd):
    """What `vggtl load --tensors` prints for a dict of tensors."""
    return "".join(f"{k}\t{dtype_name(t.dtype)}\t[{', '.join(map(str, t.shape))}]\t{t.numel() * t.element_size()}\n"
                   for k, t in sd.items())


def tensor_paths(obj, prefix=""):
    """Every tensor in a value by its path of keys and indices, as `vggtl load --tensors` names them."""
    out = collections.OrderedDict()
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(tensor_paths(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(tensor_paths(v, f"{prefix}.{i}" if prefix else str(i)))
    return out


def tensor_json(sd):
    return [{"name": k, "dtype": dtype_name(t.dtype), "shape": list(t.shape), "bytes": t.numel() * t.element_size()}
            for k, t in sd.items()]


def first_diff(a, b):
    """Where two texts differ, for diagnostics."""
    for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines())):
        if x != y:
            return f"line {i + 1}: got {x!r}, expected {y!r}"
    return f"lengths {len(a)} vs {len(b)} (a prefix of the other)"


def same_tensors(got, want, layout=True):
    """None if the two dicts hold the same tensors in the same key order (bit-equal, same dtype,
    and, with layout, the same strides and storage offsets); else what differs."""
    if list(got.keys()) != list(want.keys()):
        return f"keys differ: {sorted(set(got) ^ set(want))[:8]} / order {list(got)[:4]}..."
    for k, w in want.items():
        g = got[k]
        if g.dtype != w.dtype or g.shape != w.shape:
            return f"{k}: {g.dtype} {tuple(g.shape)} vs {w.dtype} {tuple(w.shape)}"
        if layout and (g.stride() != w.stride() or g.storage_offset() != w.storage_offset()):
            return f"{k}: stride {g.stride()} offset {g.storage_offset()} vs {w.stride()} {w.storage_offset()}"
        if not torch.equal(g, w):
            return f"{k}: values differ"
    return None


@contextlib.contextmanager
def no_init():
    """Skip Linear/Conv weight initialisation: printing a VGG or using it as a strict
    load_state_dict target does not need 138M random numbers (seconds on this machine)."""
    saved = {cls: cls.reset_parameters for cls in (nn.Linear, nn.modules.conv._ConvNd)}
    for cls in saved:
        cls.reset_parameters = lambda self: None
    try:
        yield
    finally:
        for cls, fn in saved.items():
            cls.reset_parameters = fn


def tv(name, add_linear=False, **kw):
    """A torchvision VGG (or other model) with uninitialised weights: for structure only."""
    with no_init():
        m = getattr(torchvision.models, name)(**({"init_weights": False} if name.startswith("vgg") else {}), **kw)
    if add_linear:
        m.classifier.add_module("add_linear", nn.Linear(1000, 10))
    return m


def path(name):
    return os.path.join(T.dir, name)


def rm(*names):
    for n in names:
        with contextlib.suppress(FileNotFoundError):
            os.remove(n if os.path.isabs(n) else path(n))


def rezip(src, dst, edit):
    """Copy a zip record by record with Python's zipfile (ZIP_STORED); edit(name, data) -> data."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))


def largest_record(f):
    """(offset, size) of the data of a zip's largest record."""
    with zipfile.ZipFile(f) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    with open(f, "rb") as fh:
        fh.seek(info.header_offset)
        hdr = fh.read(30)
    name_len, extra_len = struct.unpack("<HH", hdr[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def forward(model):
    model.eval()
    with torch.no_grad():
        return model(T.x)


def add_prefix(sd, prefix):
    return collections.OrderedDict((prefix + k, v) for k, v in sd.items())


# ---- shared state --------------------------------------------------------------------------


class T:
    dir = None  # the temporary folder
    m = None  # reference: torchvision vgg16 + classifier.add_linear, seed 0, real initialisation
    sd = None  # m.state_dict()
    text = None  # str(m) + "\n", what `vggtl load` must print
    x = None  # a fixed input for forward passes
    out = None  # forward(m) on x


def setup():
    torch.manual_seed(0)
    T.m = torchvision.models.vgg16()
    T.m.classifier.add_module("add_linear", nn.Linear(1000, 10))
    T.sd = T.m.state_dict()
    T.text = str(T.m) + "\n"
    T.x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    T.out = forward(T.m)
    T.m.train()  # saved as a notebook would save it


# ---- 0. help ---------------------------------------------------------------------------------

HELP = {  # command -> options its -h must list
    "load": ["--tensors", "--json", "--arch", "--seed", "--pretrained[=PATH]"],
    "extend": ["--add-linear", "--name", "--replace-last", "--output", "--style", "--arch", "--pretrained[=PATH]"],
    "save-full": ["--output", "--arch", "--seed", "--pretrained[=PATH]"],
    "save-weights": ["--output", "--add-prefix", "--arch", "--pretrained[=PATH]"],
    "verify": ["--help"],
}


def case_help():
    r = vggtl("help")
    check(r.rc == 0 and all(c in r.out for c in HELP), "vggtl help: exit 0, lists every command", r)
    for cmd, opts in HELP.items():
        r = vggtl(cmd, "-h")
        missing = [o for o in opts if o not in r.out]
        check(r.rc == 0 and r.out.startswith("usage: vggtl " + cmd) and not missing,
              f"vggtl {cmd} -h: exit 0, usage on stdout, lists {' '.join(opts)}", r, f"missing: {missing}")
        bad = [line for line in r.out.splitlines() if re.match(r"\s+-[A-Za-z]{2}", line)]  # "-pretrained"
        check(not bad, f"vggtl {cmd} -h: long options are spelled with two dashes", *bad)


# ---- 1. Python writes, vggtl reads: the four forms of the same model -------------------------

BIG = {  # file -> (what torch.save writes, extra torch.save arguments); kept until case 7
    "whole.pth": (lambda: T.m, {}),
    "sd.pth": (lambda: T.sd, {}),
    "whole_legacy.pth": (lambda: T.m, {"_use_new_zipfile_serialization": False}),
    "sd_legacy.pth": (lambda: T.sd, {"_use_new_zipfile_serialization": False}),
}


def case_python_writes():
    for f, (obj, kw) in BIG.items():
        torch.save(obj(), path(f), **kw)
        container = "legacy" if kw else "zip"
        r = vggtl("load", f)
        check(r.rc == 0 and r.out == T.text, f"load {f}: prints str(model) byte for byte", r,
              first_diff(r.out, T.text))
        r = vggtl("load", f, "--tensors")
        want = tensor_lines(T.sd)
        check(r.rc == 0 and r.out == want, f"load {f} --tensors: name, dtype, shape, bytes of every tensor", r,
              first_diff(r.out, want))
        r = vggtl("load", f, "--json")
        try:
            j = json.loads(r.out)
        except ValueError as e:
            j = {"error": str(e)}
        check(r.rc == 0 and j.get("model") == T.text[:-1] and j.get("tensors") == tensor_json(T.sd)
              and j.get("container") == container and j.get("arch") in ("vgg16", "custom"),
              f"load {f} --json: parses; same model text and tensor list, container {container}", r)


# ---- 2. variants that must load and print the same ------------------------------------------


def cuda_tagged(f):
    """sd saved, then data.pkl's storage location 'cpu' rewritten as 'cuda:0' and re-zipped."""
    torch.save(T.sd, path("tmp_cpu.pth"))
    count = []

    def edit(name, data):
        if name.endswith("/data.pkl"):
            count.append(data.count(b"X\x03\x00\x00\x00cpu"))
            data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
        return data

    rezip(path("tmp_cpu.pth"), path(f), edit)
    rm("tmp_cpu.pth")
    check(count and count[0] >= 1, "cuda variant: data.pkl had a 'cpu' location string to rewrite", count)
    sd = torch.load(path(f), map_location="cpu")
    check(same_tensors(sd, T.sd) is None, "cuda variant: torch.load(map_location='cpu') loads it")
    del sd


def variants():
    sd = T.sd
    optim = {"state": {0: {"momentum_buffer": torch.ones(64, 3, 3, 3)}, 1: {"momentum_buffer": torch.ones(64)}},
             "param_groups": [{"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "params": [0, 1]}]}
    half = collections.OrderedDict((k, v.half()) for k, v in sd.items())
    bn = tv("vgg11_bn")
    return [
        # (description, file name, object or None, torch.save kwargs, expected print, expected tensors)
        ("training dict {'epoch', 'model_state_dict', 'optimizer_state_dict'}", "train.pth",
         {"epoch": 3, "model_state_dict": sd, "optimizer_state_dict": optim}, {}, T.text, sd),
        ("{'state_dict': sd}", "wrapped.pth", {"state_dict": sd}, {}, T.text, sd),
        ("kuangliu {'net': module.-prefixed sd, 'acc', 'epoch'}", "ckpt.pth",
         {"net": add_prefix(sd, "module."), "acc": 0.9, "epoch": 1}, {}, T.text, sd),
        ("torch.compile _orig_mod. prefix", "compiled.pth", add_prefix(sd, "_orig_mod."), {}, T.text, sd),
        ("archive folder 'a.b' (file a.b.pth)", "a.b.pth", sd, {}, T.text, sd),
        ("plain dict instead of OrderedDict", "plain.pth", dict(sd), {}, T.text, sd),
        ("pickle protocol 4", "proto4.pth", sd, {"pickle_protocol": 4}, T.text, sd),
        ("DataParallel-wrapped whole model", "dp.pth", nn.DataParallel(T.m), {}, T.text, sd),
        ("storages tagged cuda:0", "cuda.pth", None, {}, T.text, sd),
        ("vgg11_bn state_dict", "bn.pth", bn.state_dict(), {}, str(bn) + "\n", bn.state_dict()),
        ("half-precision state_dict", "half.pth", half, {}, T.text, half),
    ]


def case_variants():
    for desc, f, obj, kw, text, want in variants():
        if obj is None:
            cuda_tagged(f)
        else:
            torch.save(obj, path(f), **kw)
        if f == "a.b.pth":
            with zipfile.ZipFile(path(f)) as z:
                check(z.namelist()[0].startswith("a.b/"), "a.b.pth: torch wrote archive folder 'a.b/'", z.namelist()[0])
        r = vggtl("load", f)
        check(r.rc == 0 and r.out == text, f"{desc}: load prints the model", r, first_diff(r.out, text))
        r = vggtl("load", f, "--tensors")
        listed = want if obj is None or isinstance(obj, nn.Module) else tensor_paths(obj)
        check(r.rc == 0 and r.out == tensor_lines(listed), f"{desc}: load --tensors lists every tensor by its path", r,
              first_diff(r.out, tensor_lines(listed)))
        rm(f)


# ---- 3. vggtl writes, Python reads ------------------------------------------------------------


def check_whole_model(f, desc):
    """f (written by save-full or extend) is torch.save(model) of the reference model."""
    model = torch.load(path(f), weights_only=False)
    check(type(model) is torchvision.models.VGG and str(model) + "\n" == T.text,
          f"{desc}: torch.load(weights_only=False) gives a VGG that prints like the original", type(model))
    d = same_tensors(model.state_dict(), T.sd)
    check(d is None, f"{desc}: its state_dict is bit-equal to the original's", d)
    d = [n for n, p in model.named_parameters() if not isinstance(p, nn.Parameter) or not p.requires_grad]
    check(not d, f"{desc}: every parameter is an nn.Parameter with requires_grad=True (trainable)",
          f"{len(d)} are not, first {d[:3]}")
    check(torch.equal(forward(model), T.out), f"{desc}: eval forward pass equals the original's exactly")


def fresh_target():
    return tv("vgg16", add_linear=True)


def case_vggtl_writes():
    # state_dict from a whole model
    r = vggtl("save-weights", "whole.pth", "-o", "w1.pth")
    check(r.rc == 0, "save-weights whole.pth: exit 0", r)
    sd = torch.load(path("w1.pth"), weights_only=True)
    d = same_tensors(sd, T.sd)
    check(d is None, "save-weights: weights_only load; keys, order, dtype, stride, offset, values equal", d)
    check(getattr(sd, "_metadata", None) == T.sd._metadata, "save-weights: _metadata equals the original's",
          getattr(sd, "_metadata", None))
    target = fresh_target()
    check(target.load_state_dict(sd, strict=True) is not None and torch.equal(forward(target), T.out),
          "save-weights: load_state_dict(strict=True) into torchvision vgg16+add_linear; same forward")
    del sd, target
    r = vggtl("verify", "w1.pth")
    check(r.rc == 0 and "ok" in r.out, "verify of vggtl's own output: ok", r)
    rm("w1.pth")

    # whole model from a state_dict and from the legacy files
    for src in ("sd.pth", "whole_legacy.pth", "sd_legacy.pth"):
        r = vggtl("save-full", src, "-o", "full.pth")
        check(r.rc == 0, f"save-full {src}: exit 0", r)
        check_whole_model("full.pth", f"save-full {src}")
        rm("full.pth")

    # DataParallel keys
    r = vggtl("save-weights", "sd_legacy.pth", "-o", "mod.pth", "--add-prefix", "module.")
    check(r.rc == 0, "save-weights --add-prefix module.: exit 0", r)
    sd = torch.load(path("mod.pth"), weights_only=True)
    check(list(sd) == ["module." + k for k in T.sd], "--add-prefix module.: every key is module.<original key>",
          list(sd)[:3])
    dp = nn.DataParallel(fresh_target())
    dp.load_state_dict(sd, strict=True)
    check(torch.equal(forward(dp.module), T.out), "--add-prefix module.: loads strict into nn.DataParallel(model)")
    del sd, dp
    rm("mod.pth")


def check_init(sd, desc):
    """torchvision's VGG._initialize_weights plus nn.Linear's default for add_linear."""
    bad = []
    for k, t in sd.items():
        t = t.double()
        if k.startswith("features.") and k.endswith(".weight") and t.dim() == 4 and t.numel() >= 100000:
            want = math.sqrt(2.0 / (t.shape[0] * t.shape[2] * t.shape[3]))  # kaiming normal, fan_out, relu
            if abs(t.std().item() / want - 1) > 0.05 or abs(t.mean().item()) > want * 0.01:
                bad.append(f"{k}: std {t.std().item():.5f}, want {want:.5f}")
        elif k in ("classifier.0.weight", "classifier.3.weight", "classifier.6.weight"):
            if abs(t.std().item() / 0.01 - 1) > 0.05:
                bad.append(f"{k}: std {t.std().item():.5f}, want 0.01")
        elif k.endswith(".bias") and not k.startswith("classifier.add_linear"):
            if t.abs().max().item() != 0:
                bad.append(f"{k}: not zero")
    check(not bad, f"{desc}: conv kaiming-normal fan_out (5%), Linear N(0, 0.01) (5%), zero biases", *bad)
    bound = 1 / math.sqrt(1000)
    w, b = sd["classifier.add_linear.weight"].double(), sd["classifier.add_linear.bias"].double()
    check(w.abs().max().item() <= bound and b.abs().max().item() <= bound
          and abs(w.std().item() / (bound / math.sqrt(3)) - 1) < 0.05 and b.abs().max().item() > 0,
          f"{desc}: add_linear weight and bias uniform in +-1/sqrt(1000)",
          f"max |w| {w.abs().max().item()}, std {w.std().item()}, max |b| {b.abs().max().item()}, bound {bound}")


def case_extend():
    r = vggtl("extend", "--arch", "vgg16", "--add-linear", "1000:10", "-o", "ext.pth")
    check(r.rc == 0, "extend --arch vgg16 --add-linear 1000:10: exit 0", r)
    model = torch.load(path("ext.pth"), weights_only=False)
    check(str(model) + "\n" == T.text, "extend: the file loads in Python and prints like the Python-extended model")
    check_init(model.state_dict(), "extend --arch vgg16")
    del model
    rm("ext.pth")

    for f, seed in (("s7a.pth", 7), ("s7b.pth", 7), ("s8.pth", 8)):
        r = vggtl("extend", "--arch", "vgg16", "--seed", seed, "--add-linear", "1000:10", "--style", "weights",
                  "-o", f)
        check(r.rc == 0, f"extend --seed {seed} --style weights: exit 0", r)
    check(filecmp.cmp(path("s7a.pth"), path("s7b.pth"), shallow=False), "extend: same --seed, byte-identical files")
    check(not filecmp.cmp(path("s7a.pth"), path("s8.pth"), shallow=False), "extend: another --seed, another file")
    rm("s7a.pth", "s7b.pth", "s8.pth")

    r = vggtl("extend", "--arch", "vgg16", "--add-linear", "999:10", "-o", "never.pth")
    check_fail(r, 2, "extend --add-linear 999:10 on vgg16", "1000")
    check(not os.path.exists(path("never.pth")), "extend 999:10: no output file")

    # replace-last: torchvision NAME(num_classes=10) takes the state_dict strict
    for arch in ("vgg11", "vgg13_bn"):
        r = vggtl("extend", "--arch", arch, "--replace-last", "10", "--style", "weights", "-o", "rl.pth")
        check(r.rc == 0, f"extend --arch {arch} --replace-last 10: exit 0", r)
        target = tv(arch, num_classes=10)
        sd = torch.load(path("rl.pth"), weights_only=True)
        try:
            target.load_state_dict(sd, strict=True)
            err = None
        except RuntimeError as e:
            err = e
        check(err is None,
              f"--replace-last {arch}: load_state_dict(strict=True) into torchvision {arch}(num_classes=10)",
              err)
        r = vggtl("load", "rl.pth")
        check(r.rc == 0 and r.out == str(target) + "\n", f"--replace-last {arch}: load prints {arch}(num_classes=10)",
              r)
        rm("rl.pth")


def case_archs():
    for arch in ARCHS:
        m = tv(arch)
        r = vggtl("load", "--arch", arch)
        check(r.rc == 0 and r.out == str(m) + "\n", f"load --arch {arch} prints torchvision.models.{arch}()", r,
              first_diff(r.out, str(m) + "\n"))
        r = vggtl("load", "--arch", arch, "--tensors")
        check(r.rc == 0 and r.out == tensor_lines(m.state_dict()), f"load --arch {arch} --tensors", r)


def case_pretrained():
    home = path("torch_home")
    ckpt = os.path.join(home, "hub", "checkpoints", "vgg16-397923af.pth")
    os.makedirs(os.path.dirname(ckpt))
    plain = collections.OrderedDict((k, v) for k, v in T.sd.items() if "add_linear" not in k)
    torch.save(plain, ckpt)
    text16 = str(tv("vgg16")) + "\n"
    r = vggtl("load", "--arch", "vgg16", "--pretrained", env={"TORCH_HOME": home})
    check(r.rc == 0 and r.out == text16, "load --arch vgg16 --pretrained reads $TORCH_HOME/hub/checkpoints", r)
    r = vggtl("load", "--arch", "vgg16", f"--pretrained={ckpt}", env={"TORCH_HOME": None})
    check(r.rc == 0 and r.out == text16, "load --arch vgg16 --pretrained=PATH", r)
    r = vggtl("extend", "--arch", "vgg16", "--pretrained", "--add-linear", "1000:10", "--style", "weights",
              "-o", "pre.pth", env={"TORCH_HOME": home})
    check(r.rc == 0, "extend --arch vgg16 --pretrained --add-linear 1000:10: exit 0", r)
    sd = torch.load(path("pre.pth"), weights_only=True)
    d = same_tensors(collections.OrderedDict((k, sd[k]) for k in plain), plain) if set(plain) <= set(sd) else "keys"
    check(list(sd) == list(T.sd) and d is None,
          "extend --pretrained: the pretrained tensors, bit-equal, then add_linear",
          d, list(sd)[-4:])
    bound = 1 / math.sqrt(1000)
    check(sd["classifier.add_linear.weight"].abs().max().item() <= bound, "extend --pretrained: add_linear initialised")
    del sd
    rm("pre.pth")

    # the same file as a plain FILE source, with a layer name of our own, whole-model output
    r = vggtl("extend", ckpt, "--add-linear", "1000:10", "--name", "head", "-o", "head.pth")
    check(r.rc == 0, "extend FILE --add-linear 1000:10 --name head: exit 0", r)
    want = tv("vgg16")
    want.classifier.add_module("head", nn.Linear(1000, 10))
    model = torch.load(path("head.pth"), weights_only=False)
    sd = model.state_dict()
    check(str(model) == str(want) and list(sd) == list(want.state_dict()),
          "extend --name head: prints and names tensors like classifier.add_module('head', ...)")
    d = same_tensors(collections.OrderedDict((k, sd[k]) for k in plain), plain)
    check(d is None, "extend FILE: the file's tensors are bit-equal", d)
    d = [n for n, p in model.named_parameters() if not p.requires_grad]
    check(not d, "extend FILE --style full: every parameter has requires_grad=True (trainable)",
          f"{len(d)} are not, first {d[:3]}")
    del model, sd
    rm("head.pth", ckpt)

    empty = path("empty_home")
    os.makedirs(empty)
    want = os.path.join(empty, "hub", "checkpoints", "vgg16-397923af.pth")
    r = vggtl("load", "--arch", "vgg16", "--pretrained", env={"TORCH_HOME": empty})
    check(r.rc == 1 and want in r.err and URL in r.err and r.out == "",
          "--pretrained, file missing: exit 1, names $TORCH_HOME path and the download URL", r)
    want = os.path.join(empty, ".cache", "torch", "hub", "checkpoints", "vgg16-397923af.pth")
    r = vggtl("load", "--arch", "vgg16", "--pretrained", env={"TORCH_HOME": None, "HOME": empty})
    check(r.rc == 1 and want in r.err and URL in r.err, "--pretrained without TORCH_HOME: names ~/.cache/torch/...", r)


# ---- 4. tensors survive exactly ---------------------------------------------------------------


def odd_state_dict():
    """A VGG16+add_linear state_dict with every layout torch.save can produce."""
    sd = collections.OrderedDict(T.sd)
    sd._metadata = T.sd._metadata
    sd["classifier.6.weight"] = sd["classifier.6.weight"].t().contiguous().t()  # stride (1, 4096)
    big = torch.randn(128)
    sd["features.0.bias"], sd["features.2.bias"] = big[0:64], big[64:128]  # one storage, two offsets
    sd["features.10.bias"] = torch.randn(300)[20:276]  # storage longer than the tensor
    sd["classifier.3.bias"] = torch.randn(8192)[::2]  # stride 2
    sd["features.0.weight"] = sd["features.0.weight"].double()
    sd["features.5.weight"] = sd["features.5.weight"].half()
    sd["features.7.weight"] = sd["features.7.weight"].bfloat16()
    sd["classifier.add_linear.weight"] = sd["classifier.add_linear.weight"].double().t().contiguous().t()
    sd["classifier.add_linear.bias"] = sd["classifier.add_linear.bias"].bfloat16()
    return sd


def case_exact_tensors():
    sd = odd_state_dict()
    for f, kw in (("odd.pth", {}), ("odd_legacy.pth", {"_use_new_zipfile_serialization": False})):
        torch.save(sd, path(f), **kw)
        r = vggtl("load", f)
        check(r.rc == 0 and r.out == T.text, f"{f}, mixed dtypes and views: load still prints the model", r)
        r = vggtl("load", f, "--tensors")
        check(r.rc == 0 and r.out == tensor_lines(sd), f"{f}: --tensors names float64/float16/bfloat16", r,
              first_diff(r.out, tensor_lines(sd)))
        r = vggtl("save-weights", f, "-o", "odd2.pth")
        check(r.rc == 0, f"save-weights {f}: exit 0", r)
        got = torch.load(path("odd2.pth"), weights_only=True)
        d = same_tensors(got, sd)
        check(d is None, f"save-weights {f}: non-contiguous, offset, float64/float16/bfloat16 tensors keep "
              "strides, offsets, dtypes, values", d)
        a, b = got["features.0.bias"], got["features.2.bias"]
        check(a.storage().data_ptr() == b.storage().data_ptr() and a.storage().size() == 128,
              f"save-weights {f}: a storage shared by two tensors stays one storage of the same size")
        check(got["features.10.bias"].storage().size() == 300,
              f"save-weights {f}: a storage longer than its tensor keeps its length")
        del got
        rm("odd2.pth")
    r = vggtl("save-full", "odd.pth", "-o", "odd3.pth")
    check(r.rc == 0, "save-full odd.pth: exit 0", r)
    model = torch.load(path("odd3.pth"), weights_only=False)
    d = same_tensors(model.state_dict(), sd)
    check(d is None, "save-full odd.pth: the model's tensors keep strides, offsets, dtypes, values", d)
    del model
    rm("odd.pth", "odd_legacy.pth", "odd3.pth")

    small = collections.OrderedDict([
        ("i64", torch.arange(5)), ("i32", torch.arange(6, dtype=torch.int32).reshape(2, 3)),
        ("u8", torch.arange(4, dtype=torch.uint8)), ("b", torch.tensor([True, False])),
        ("f64", torch.ones(3, dtype=torch.float64)), ("f16", torch.ones(1, 2, dtype=torch.float16)),
        ("bf16", torch.ones(2, dtype=torch.bfloat16)), ("scalar", torch.tensor(7)),
        ("empty", torch.zeros(0, 4)),
    ])
    torch.save(small, path("small.pth"))
    r = vggtl("load", "small.pth", "--tensors")
    check(r.rc == 0 and r.out == tensor_lines(small), "load --tensors: int64/int32/uint8/bool/0-dim/empty tensors", r,
          first_diff(r.out, tensor_lines(small)))
    r = vggtl("load", "small.pth", "--json")
    check(r.rc == 0 and json.loads(r.out or "{}").get("tensors") == tensor_json(small),
          "load --json of a tensor dict", r)
    rm("small.pth")

    torch.manual_seed(0)
    rn = torchvision.models.resnet18().state_dict()
    torch.save(rn, path("resnet18.pth"))
    r = vggtl("load", "resnet18.pth", "--tensors")
    check(r.rc == 0 and r.out == tensor_lines(rn), "load --tensors of a torchvision resnet18 state_dict", r,
          first_diff(r.out, tensor_lines(rn)))
    r = vggtl("load", "resnet18.pth")
    nbytes = sum(t.numel() * t.element_size() for t in rn.values())
    check(r.rc == 0 and r.out.startswith(f"state_dict: {len(rn)} tensors, {sum(t.numel() for t in rn.values())} "
                                         f"elements, {nbytes} bytes\n"),
          "load of a resnet18 state_dict: a summary, exit 0", r)
    r = vggtl("save-weights", "resnet18.pth", "-o", "resnet18_w.pth")
    got = torch.load(path("resnet18_w.pth"), weights_only=True)
    check(r.rc == 0 and same_tensors(got, rn) is None and list(got) == list(rn) and got._metadata == rn._metadata,
          "save-weights of a resnet18 state_dict: the same keys, tensors and _metadata", r)
    torchvision.models.resnet18().load_state_dict(got, strict=True)
    rm("resnet18_w.pth")
    rm("resnet18.pth")


# ---- 5. hostile and bad input -----------------------------------------------------------------


class SystemCall:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


class EvalCall:
    def __reduce__(self):
        return (eval, ("open('PWNED2', 'w')",))


def case_hostile():
    torch.save(SystemCall(), path("evil_system.pth"))
    torch.save({"features.0.weight": torch.zeros(1), "x": EvalCall()}, path("evil_eval.pth"))
    torch.save(SystemCall(), path("evil_legacy.pth"), _use_new_zipfile_serialization=False)
    system, evaluate = ("os.system", "posix.system"), ("builtins.eval", "__builtin__.eval")  # as pickled
    for f, names in (("evil_system.pth", system), ("evil_eval.pth", evaluate), ("evil_legacy.pth", system)):
        for cmd in (["load", f], ["load", f, "--tensors"], ["save-weights", f, "-o", "never.pth"], ["verify", f]):
            r = vggtl(*cmd)
            desc = " ".join(cmd[:2]) + (" --tensors" if "--tensors" in cmd else "")
            check_fail(r, 1, desc)
            check(any(n in r.err for n in names), f"{desc}: message names {' or '.join(names)}", r)
    check(not os.path.exists(path("PWNED")) and not os.path.exists(path("PWNED2")), "nothing in the pickles ran")
    check(not os.path.exists(path("never.pth")), "no output from a hostile input")
    rm("evil_system.pth", "evil_eval.pth", "evil_legacy.pth")

    # a zip whose storage record is shorter than its tensor needs
    buf = io.BytesIO()
    torch.save({"w": torch.arange(100.0)}, buf)
    with open(path("buf.pth"), "wb") as fh:
        fh.write(buf.getvalue())
    rezip(path("buf.pth"), path("short.pth"), lambda name, data: data[:40] if name.endswith("/data/0") else data)
    for cmd in (["load", "short.pth", "--tensors"], ["verify", "short.pth"]):
        check_fail(vggtl(*cmd), 1, f"{' '.join(cmd)}: data/0 holds 40 of 400 bytes")
    rm("buf.pth", "short.pth")

    with open(path("text.pth"), "w") as fh:
        fh.write("this is not a checkpoint\n" * 10)
    open(path("empty.pth"), "wb").close()
    with open(path("pk.pth"), "wb") as fh:
        fh.write(b"PK\x03\x04" + os.urandom(200))
    with open(path("pickle.pth"), "wb") as fh:
        pickle.dump([1, 2, 3], fh, protocol=2)
    os.makedirs(path("folder.pth"), exist_ok=True)
    for f in ("text.pth", "empty.pth", "pk.pth", "pickle.pth", "folder.pth", "missing.pth"):
        check_fail(vggtl("load", f), 1, f"load {f}", f)
        check_fail(vggtl("load", f, "--tensors"), 1, f"load --tensors {f}", f)
    rm("text.pth", "empty.pth", "pk.pth", "pickle.pth")
    os.rmdir(path("folder.pth"))

    for args, desc in (([], "vggtl with no command"), (["frobnicate"], "an unknown command"),
                       (["load"], "load with no model"), (["load", "--bogus", "x.pth"], "an unknown option"),
                       (["load", "a.pth", "b.pth"], "two model files"), (["load", "--arch", "vgg17"], "unknown arch"),
                       (["load", "--arch", "vgg16", "--seed", "abc"], "--seed abc"),
                       (["save-full", "--arch", "vgg16"], "save-full without -o"),
                       (["extend", "--arch", "vgg16", "-o", "never.pth"], "extend without an edit"),
                       (["extend", "--arch", "vgg16", "--add-linear", "10", "-o", "never.pth"], "--add-linear 10"),
                       (["extend", "--arch", "vgg16", "--replace-last", "10", "--style", "half", "-o", "never.pth"],
                        "--style half")):
        r = vggtl(*args)
        check(r.rc == 2 and r.out == "" and r.err.strip() != "" and "Traceback" not in r.err,
              f"usage error, {desc}: exit 2, message on stderr", r)
    check(not os.path.exists(path("never.pth")), "no output from usage errors")


# ---- 6/7. verify, truncation, atomic output (these use and then delete the BIG files) -----------


def case_verify_and_damage():
    for f in ("whole.pth", "sd_legacy.pth"):
        r = vggtl("verify", f)
        check(r.rc == 0 and "ok" in r.out, f"verify {f}: ok, exit 0", r)

    # atomic output, while the inputs are still good: refuses to write over its input
    st = os.stat(path("whole_legacy.pth"))
    r = vggtl("save-full", "whole_legacy.pth", "-o", "whole_legacy.pth")
    check_fail(r, 2, "save-full with -o equal to the input", "whole_legacy.pth")
    os.link(path("whole_legacy.pth"), path("hardlink.pth"))
    r = vggtl("save-weights", "whole_legacy.pth", "-o", "hardlink.pth")
    check_fail(r, 2, "save-weights with -o a hard link to the input")
    st2 = os.stat(path("whole_legacy.pth"))
    check((st.st_size, st.st_mtime_ns, st.st_ino) == (st2.st_size, st2.st_mtime_ns, st2.st_ino),
          "the input is untouched")
    r = vggtl("load", "whole_legacy.pth")
    check(r.rc == 0 and r.out == T.text, "and still loads")
    rm("hardlink.pth", "whole_legacy.pth")

    # one byte flipped inside a tensor record
    off, size = largest_record(path("whole.pth"))
    with open(path("whole.pth"), "r+b") as fh:
        fh.seek(off + size // 2)
        b = fh.read(1)
        fh.seek(off + size // 2)
        fh.write(bytes([b[0] ^ 0xFF]))
    r = vggtl("verify", "whole.pth")
    check(r.rc == 1 and "CRC" in r.out + r.err, "verify: one flipped byte in a tensor record: exit 1, names CRC", r)
    r = vggtl("verify", "sd.pth", "whole.pth")
    check(r.rc == 1, "verify good.pth bad.pth: exit 1", r)
    rm("whole.pth")

    # truncated to half
    for f in ("sd.pth", "sd_legacy.pth"):
        os.truncate(path(f), os.path.getsize(path(f)) // 2)
        check_fail(vggtl("load", f), 1, f"load {f} truncated to half", f)
        check_fail(vggtl("verify", f), 1, f"verify {f} truncated to half", f)

    # a failed save leaves the previous output as it was, and no temporary file
    prev = path("prev.pth")
    torch.save({"previous": torch.arange(10)}, prev)
    with open(prev, "rb") as fh:
        before = fh.read()
    for f in ("sd.pth", "sd_legacy.pth"):
        for cmd in ("save-weights", "save-full"):
            r = vggtl(cmd, f, "-o", "prev.pth")
            with open(prev, "rb") as fh:
                same = fh.read() == before
            check(r.rc == 1 and same, f"{cmd} from truncated {f}: exit 1, previous output unchanged", r)
    left = [n for n in os.listdir(T.dir) if ".tmp." in n]
    check(not left, "no temporary files left beside the output", left)
    r = vggtl("save-weights", "sd.pth", "-o", os.path.join("no", "such", "dir", "x.pth"))
    check(r.rc == 1, "save-weights into a folder that does not exist: exit 1", r)
    rm("sd.pth", "sd_legacy.pth", "prev.pth")


# ---- main -----------------------------------------------------------------------------------

CASES = [
    ("0. help", case_help),
    ("1. Python writes, vggtl reads", case_python_writes),
    ("3a. vggtl save-weights/save-full, Python reads", case_vggtl_writes),
    ("6/7. verify, truncation, atomic output", case_verify_and_damage),
    ("2. variants", case_variants),
    ("3b. extend", case_extend),
    ("3c. eight architectures", case_archs),
    ("3d. pretrained", case_pretrained),
    ("4. tensors survive exactly", case_exact_tensors),
    ("5. hostile and bad input", case_hostile),
]


def run_cases(cases, prefix, setup_fn=None):
    """Runs each (title, function) of cases in one temporary folder (T.dir), an exception
    counting as a failure; prints the TAP plan and returns the exit status."""
    if not os.access(VGGTL, os.X_OK):
        print(f"not ok 1 - vggtl binary at {VGGTL}\n1..1")
        return 1
    start = time.time()
    with tempfile.TemporaryDirectory(prefix=prefix) as d:
        T.dir = d
        if setup_fn:
            setup_fn()
            diag(f"setup: {time.time() - start:.1f} s")
        for title, fn in cases:
            t0 = time.time()
            try:
                fn()
            except Exception:
                check(False, f"{title}: raised an exception", traceback.format_exc())
            diag(f"{title}: {time.time() - t0:.1f} s")
    diag(f"total: {time.time() - start:.1f} s")
    print(f"1..{n_checks}")
    return 1 if n_failed else 0


def main():
    return run_cases(CASES, "vggtl-interop-", setup)


if __name__ == "__main__":
    sys.exit(main())
