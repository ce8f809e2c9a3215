#!/usr/bin/python3
"""safetensors both ways, against Debian's python3-torch 1.13 (which has no safetensors package).

    /usr/bin/python3 tests/test_safetensors.py      # VGGTL=path/to/vggtl picks a binary

What vggtl writes is checked by an independent reader written here from the format (json +
struct + torch.frombuffer): the header length, the compact JSON text serde_json writes with
"__metadata__": {"format": "pt"} first, save_file's order (descending safetensors Dtype, then
name), the space padding to a multiple of 8, contiguous data_offsets, and every tensor's bytes
equal to the torch tensor's.  Then the chain torch.save -> safetensors -> .pth -> torch.load
(weights_only=True) must give back every tensor bit for bit, and a VGG read from a safetensors
file must print, predict, evaluate, train and convert as the same VGG read from its .pth.
TAP output as test_interop.py's (its helpers).
"""
import collections
import json
import os
import struct
import sys
import zipfile

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_interop as ti  # noqa: E402  (TAP, vggtl(), comparisons)
from test_interop import check, path, rm, check_fail, tensor_lines, vggtl  # noqa: E402

# safetensors' Dtype enum (safetensors/src/tensor.rs) in declared order, for the ten dtypes
# torch 1.13 shares with it; save_file sorts by it, descending
RANK = ["BOOL", "U8", "I8", "I16", "F16", "BF16", "I32", "F32", "F64", "I64"]
ST = {torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16", torch.float16: "F16",
      torch.bfloat16: "BF16", torch.int32: "I32", torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
TORCH = {v: k for k, v in ST.items()}



def tbytes(t):
    """A tensor's elements in C order as little-endian bytes (this machine's order)."""
    t = t.contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def read_st(f):
    """An independent safetensors reader: (the file's bytes, N, the header text, its parsed
    pairs at every level, {name: tensor})."""
    with open(f, "rb") as fh:
        b = fh.read()
    n = struct.unpack("<Q", b[:8])[0]
    text = b[8:8 + n].decode("utf-8")
    pairs = json.loads(text, object_pairs_hook=lambda p: p)
    tensors = collections.OrderedDict()
    for name, info in pairs:
        if name == "__metadata__":
            continue
        info = dict(info)
        lo, hi = info["data_offsets"]
        raw = b[8 + n + lo:8 + n + hi]
        dt = TORCH[info["dtype"]]
        t = torch.frombuffer(bytearray(raw), dtype=dt) if raw else torch.empty(0, dtype=dt)
        tensors[name] = t.reshape(info["shape"])
    return b, n, text, pairs, tensors


def check_layout(f, want, desc):
    """f is what save_file would write for the dict want (metadata {"format": "pt"})."""
    b, n, text, pairs, got = read_st(f)
    compact = text.rstrip(" ")
    check((8 + n) % 8 == 0 and len(text) - len(compact) < 8 and text == compact + " " * (len(text) - len(compact)),
          f"{desc}: header length {n}, space-padded so that the data starts 8-byte aligned")
    reparsed = json.loads(compact, object_pairs_hook=collections.OrderedDict)
    check(json.dumps(reparsed, separators=(",", ":"), ensure_ascii=False) == compact,
          f"{desc}: the header is serde_json's compact text", compact[:300])
    check(pairs and pairs[0] == ("__metadata__", [("format", "pt")]), f"{desc}: \"__metadata__\": {{\"format\": \"pt\"}} first",
          pairs[:1])
    order = sorted(want, key=lambda k: (-RANK.index(ST[want[k].dtype]), k.encode()))
    names = [p[0] for p in pairs[1:]]
    check(names == order, f"{desc}: tensors in save_file's order (descending Dtype, then name)", names, order)
    pos, ok, why = 0, True, ""
    for name, info in pairs[1:]:
        keys = [k for k, _ in info]
        info = dict(info)
        w = want.get(name)
        if w is None or keys != ["dtype", "shape", "data_offsets"] or info["dtype"] != ST[w.dtype] or \
                info["shape"] != list(w.shape) or info["data_offsets"] != [pos, pos + w.numel() * w.element_size()]:
            ok, why = False, f"{name}: {keys} {info}"
            break
        pos = info["data_offsets"][1]
    check(ok and len(b) == 8 + n + pos, f"{desc}: entries {{dtype, shape, data_offsets}}, offsets contiguous from 0, "
          "the file ends with the last tensor", why)
    bad = [k for k in want if k not in got or tbytes(got[k]) != tbytes(want[k])]
    check(not bad, f"{desc}: every tensor's bytes are the torch tensor's, in C order", bad[:5])
    return names


def same_bits(got, want):
    """None when the dicts hold the same names with the same dtype, shape and bytes."""
    if set(got) != set(want):
        return f"names differ: {sorted(set(got) ^ set(want))[:6]}"
    for k, w in want.items():
        g = got[k]
        if g.dtype != w.dtype or g.shape != w.shape or tbytes(g) != tbytes(w):
            return f"{k}: {g.dtype} {tuple(g.shape)} vs {w.dtype} {tuple(w.shape)} or bytes differ"
    return None


def state_dict():
    """Every dtype, a transposed tensor, an offset view, a 0-dim and a zero-size tensor, names
    that need escaping, and tensors over vggtl's 1 MiB copy chunk (contiguous and strided)."""
    g = torch.Generator().manual_seed(3)
    big = torch.randn(40, generator=g)
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.randn(4, 3, 3, 3, generator=g)
    sd["f64"] = torch.randn(5, generator=g).double()
    sd["f16"] = torch.randn(7, generator=g).half()
    sd["bf16"] = torch.randn(3, 2, generator=g).bfloat16()
    sd["i64"] = torch.tensor([1, -1, 1 << 40, -(1 << 62)])
    sd["i32"] = torch.tensor([[7, -8], [9, 2 ** 31 - 1]], dtype=torch.int32)
    sd["i16"] = torch.tensor([-300, 32767], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 5, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255, 128], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["transposed"] = torch.randn(5, 3, generator=g).t()
    sd["offset_view"] = big[7:19].view(3, 4)
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 4)
    sd["bn.num_batches_tracked"] = torch.tensor(12)
    sd["caf\u00e9 \"q\" \\ /"] = torch.ones(2)
    sd["big"] = torch.randn(700, 500, generator=g)
    sd["big_strided"] = torch.randn(600, 520, generator=g).t()[::2]
    return sd


def case_chain():
    sd = state_dict()
    check(not sd["transposed"].is_contiguous() and sd["offset_view"].storage_offset() == 7 and
          not sd["big_strided"].is_contiguous(), "the source has non-contiguous and offset tensors")
    torch.save(sd, path("src.pth"))
    r = vggtl("save-weights", "src.pth", "-o", "x.safetensors")
    check(r.rc == 0 and r.out == "" and r.err == "", "save-weights src.pth -o x.safetensors: exit 0, silent", r)
    if r.rc:
        return
    names = check_layout(path("x.safetensors"), sd, "x.safetensors")
    r = vggtl("load", "x.safetensors", "--tensors")
    want = tensor_lines(collections.OrderedDict((k, sd[k]) for k in names))
    check(r.rc == 0 and r.out == want, "load x.safetensors --tensors: every tensor, in the file's order",
          r, ti.first_diff(r.out, want))
    r = vggtl("load", "x.safetensors", "--json")
    check(r.rc == 0 and json.loads(r.out).get("container") == "safetensors", "load --json names the container", r)
    r = vggtl("scan", "x.safetensors")
    check(r.rc == 0 and "clean (safetensors, 0 pickles)" in r.out, "scan: a safetensors file holds no pickle: clean", r)
    r = vggtl("save-weights", "x.safetensors", "-o", "y.pth")
    check(r.rc == 0, "save-weights x.safetensors -o y.pth: exit 0", r)
    y = torch.load(path("y.pth"), weights_only=True)
    diff = same_bits(y, sd)
    check(diff is None, "torch.load(y.pth, weights_only=True): every tensor bit-identical to the original", diff)
    check(all(t.is_contiguous() and t.storage_offset() == 0 for t in y.values()),
          "y.pth: tensors contiguous, each on its own storage at offset 0")
    with zipfile.ZipFile(path("y.pth")) as zin, zipfile.ZipFile(path("deflated.pth"), "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    r = vggtl("save-weights", "deflated.pth", "-o", "x4.safetensors")
    check(r.rc == 0 and open(path("x4.safetensors"), "rb").read() == open(path("x.safetensors"), "rb").read(),
          "from a zip with deflated records: the same bytes", r)
    r = vggtl("save-weights", "x.safetensors", "-o", "x2.safetensors")
    check(r.rc == 0 and open(path("x2.safetensors"), "rb").read() == open(path("x.safetensors"), "rb").read(),
          "safetensors -> safetensors: byte-identical", r)
    r = vggtl("save-weights", "y.pth", "-o", "x3.bin", "--format", "safetensors")
    check(r.rc == 0 and open(path("x3.bin"), "rb").read() == open(path("x.safetensors"), "rb").read(),
          "--format safetensors with another suffix: the same bytes", r)
    r = vggtl("save-weights", "x.safetensors", "-o", "z.safetensors", "--format", "pth")
    z = torch.load(path("z.safetensors"), weights_only=True) if r.rc == 0 else {}
    check(r.rc == 0 and same_bits(z, sd) is None, "--format pth overrides the .safetensors suffix", r)
    r = vggtl("save-weights", "src.pth", "-o", "p.safetensors", "--add-prefix", "module.")
    _, _, _, pairs, got = read_st(path("p.safetensors")) if r.rc == 0 else (0, 0, 0, [], {})
    check(r.rc == 0 and same_bits(got, collections.OrderedDict(("module." + k, v) for k, v in sd.items())) is None,
          "--add-prefix module. names every tensor module.*", r)
    r = vggtl("save-weights", "src.pth", "-o", "never.safetensors", "--format", "npz")
    check_fail(r, 2, "--format npz", "npz")
    rm("src.pth", "x.safetensors", "y.pth", "x2.safetensors", "x3.bin", "z.safetensors", "p.safetensors", "deflated.pth",
       "x4.safetensors")


def case_refusals():
    w = torch.randn(4, 4)
    torch.save({"embed.weight": w, "head.weight": w}, path("tied.pth"))
    r = vggtl("save-weights", "tied.pth", "-o", "tied.safetensors")
    check_fail(r, 1, "tied weights (one storage, two names)", "share memory", "embed.weight", "head.weight", "save_file")
    check(not os.path.exists(path("tied.safetensors")), "tied: no output file")
    r = vggtl("save-weights", "tied.pth", "-o", "tied.pth2")
    check(r.rc == 0, "tied weights still write as .pth", r)
    base = torch.arange(10.0)
    torch.save({"a": base[:5], "b": base[5:]}, path("halves.pth"))
    r = vggtl("save-weights", "halves.pth", "-o", "halves.safetensors")
    got = read_st(path("halves.safetensors"))[4] if r.rc == 0 else {}
    check(r.rc == 0 and same_bits(got, {"a": base[:5], "b": base[5:]}) is None,
          "disjoint views of one storage are written (save_file accepts them too)", r)
    q = torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.qint8)
    torch.save({"q": q}, path("q.pth"))
    r = vggtl("save-weights", "q.pth", "-o", "q.safetensors")
    check_fail(r, 1, "a quantized tensor", "'q'", "quantized")
    torch.save({"c": torch.randn(3, dtype=torch.complex64)}, path("c.pth"))
    r = vggtl("save-weights", "c.pth", "-o", "c.safetensors")
    check_fail(r, 1, "a complex tensor", "'c'", "complex64")
    check(not any(os.path.exists(path(f)) for f in ("q.safetensors", "c.safetensors")), "no output file for either")
    with open(path("bad.safetensors"), "wb") as f:
        h = b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}'
        f.write(struct.pack("<Q", len(h)) + h + b"\0" * 4)
    r = vggtl("load", "bad.safetensors")
    check_fail(r, 1, "load of a header whose offsets disagree with its shape", "bad.safetensors", "'a'", "need 8")
    r = vggtl("scan", "bad.safetensors")
    check(r.rc == 2 and "unreadable" in r.out, "scan: a bad safetensors header is unreadable (exit 2)", r)
    rm("tied.pth", "tied.pth2", "halves.pth", "halves.safetensors", "q.pth", "c.pth", "bad.safetensors")


def case_vgg():
    r = vggtl("extend", "--arch", "vgg11", "--replace-last", 10, "--style", "weights", "-o", "a.pth")
    check(r.rc == 0, "extend --arch vgg11 --replace-last 10 --style weights -o a.pth", r)
    r = vggtl("save-weights", "a.pth", "-o", "a.safetensors")
    check(r.rc == 0, "save-weights a.pth -o a.safetensors", r)
    if r.rc:
        return
    a = torch.load(path("a.pth"), weights_only=True)
    check_layout(path("a.safetensors"), a, "vgg11 safetensors")
    pth_text, st_text = vggtl("load", "a.pth"), vggtl("load", "a.safetensors")
    with ti.no_init():
        target = torchvision.models.vgg11(num_classes=10)
    check(st_text.rc == 0 and st_text.out == pth_text.out == str(target) + "\n",
          "load a.safetensors prints the VGG, as for a.pth", st_text, ti.first_diff(st_text.out, pth_text.out))
    r = vggtl("save-weights", "a.safetensors", "-o", "b.pth")
    b = torch.load(path("b.pth"), weights_only=True) if r.rc == 0 else {}
    check(r.rc == 0 and same_bits(b, a) is None and list(b) == [p[0] for p in read_st(path("a.safetensors"))[3][1:]],
          "save-weights a.safetensors -o b.pth: a.pth's tensors, in the file's order", r)
    try:
        target.load_state_dict(b, strict=True)
        err = None
    except RuntimeError as e:
        err = e
    check(err is None, "b.pth: load_state_dict(strict=True) into torchvision vgg11(num_classes=10)", err)
    r = vggtl("save-weights", "--arch", "vgg11", "--seed", 3, "-o", "fresh.safetensors")
    r2 = vggtl("save-weights", "--arch", "vgg11", "--seed", 3, "-o", "fresh.pth")
    fresh = torch.load(path("fresh.pth"), weights_only=True) if r2.rc == 0 else {}
    got = read_st(path("fresh.safetensors"))[4] if r.rc == 0 else {}
    check(r.rc == 0 and same_bits(got, fresh) is None, "save-weights --arch vgg11 -o fresh.safetensors: the fresh weights",
          r)
    rm("b.pth", "fresh.safetensors", "fresh.pth")
    r = vggtl("save-full", "a.safetensors", "-o", "full.pth")
    m = torch.load(path("full.pth"), weights_only=False) if r.rc == 0 else None
    check(m is not None and str(m) + "\n" == str(target) + "\n" and same_bits(m.state_dict(), a) is None,
          "save-full a.safetensors: the whole VGG, a.pth's weights", r)
    del m
    rm("full.pth")
    r = vggtl("extend", "a.safetensors", "--add-linear", "10:4", "-o", "ext.pth", "--style", "weights")
    e = torch.load(path("ext.pth"), weights_only=True) if r.rc == 0 else {}
    check(r.rc == 0 and all(torch.equal(e[k], a[k]) for k in a) and len(e) == len(a) + 2,
          "extend a.safetensors --add-linear 10:4: a.pth's weights and a new layer", r)
    rm("ext.pth")
    from PIL import Image
    import numpy as np
    # LeakSanitizer's exit-time scan dies on the compute threads (as tests/run.sh knows for test_train.py)
    env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"}
    img = path("x.png")
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(img)
    p1 = vggtl("predict", "a.pth", "x.png", "--logits", "--threads", 2, "--device", "cpu", env=env)
    p2 = vggtl("predict", "a.safetensors", "x.png", "--logits", "--threads", 2, "--device", "cpu", env=env)
    check(p1.rc == 0 and p2.rc == 0 and p1.out.split("\t")[1:] == p2.out.split("\t")[1:],
          "predict --logits: the same logits from a.safetensors and a.pth", p1, p2)
    e1 = vggtl("eval", "a.pth", "--json", "--threads", 2, "--device", "cpu", env=env)
    e2 = vggtl("eval", "a.safetensors", "--json", "--threads", 2, "--device", "cpu", env=env)
    j1 = json.loads(e1.out) if e1.rc == 0 else {"x": 1}
    j2 = json.loads(e2.out) if e2.rc == 0 else {"y": 2}
    for j in (j1, j2):  # timings
        j.pop("seconds", None)
        j.pop("images_per_s", None)
    check(j1 == j2, "eval --json: the same results from a.safetensors and a.pth", e1, e2)
    t = vggtl("train", "a.safetensors", "--limit", 8, "--batch-size", 4, "--epochs", 1, "--threads", 2, "--device", "cpu",
              "--seed", 1, "-o", "trained.safetensors.pth", "--style", "weights", env=env)
    tr = torch.load(path("trained.safetensors.pth"), weights_only=True) if t.rc == 0 else {}
    check(t.rc == 0 and list(tr) == list(a) and not torch.equal(tr["classifier.6.weight"], a["classifier.6.weight"]),
          "train a.safetensors: one epoch runs and changes the weights", t)
    r = vggtl("save-weights", "trained.safetensors.pth", "-o", "trained.safetensors")
    got = read_st(path("trained.safetensors"))[4] if r.rc == 0 else {}
    check(r.rc == 0 and same_bits(got, tr) is None, "trained weights (in memory once) convert to safetensors", r)
    rm("a.pth", "a.safetensors", "x.png", "trained.safetensors.pth", "trained.safetensors")


CASES = [
    ("1. the chain torch -> safetensors -> pth -> torch", case_chain),
    ("2. refusals", case_refusals),
    ("3. a VGG through safetensors", case_vgg),
]


if __name__ == "__main__":
    sys.exit(ti.run_cases(CASES, "vggtl-safetensors-"))
