#!/usr/bin/python3
"""Any model, any class: reading, listing, converting and scanning torch.save files that are
not VGGs, against Debian's python3-torch 1.13 + torchvision 0.14 (issue 8).

    /usr/bin/python3 tests/test_anymodel.py        # VGGTL=path/to/vggtl picks a binary
    LARGE=1 /usr/bin/python3 tests/test_anymodel.py   # also the big torchvision families

Python writes each file; vggtl reads it without the classes' code; what vggtl writes is loaded
back by Python and compared tensor for tensor (bit-exact).  Files Python cannot write any more
(Python 2 legacy streams, the 2017 layout of torchvision's vgg16-397923af.pth, early 1.x zips
with pointer keys) are built byte by byte here and checked against torch.load of the same
bytes.  Hostile pickles check `vggtl scan`.  TAP output as test_interop.py's (its helpers).
"""
import argparse
import collections
import enum
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_interop as ti  # noqa: E402  (TAP, vggtl(), comparisons)
from test_interop import check, path, rm, check_fail, first_diff, same_tensors, tensor_lines, tensor_paths, vggtl  # noqa: E402

LARGE = os.environ.get("LARGE") == "1"
TORCH2 = not torch.__version__.startswith("1.")



# ---- models Python can only load with their classes ------------------------------------------


class Tudui(nn.Module):
    """The seed tutorial's model: a class of __main__ (here: of this script)."""

    def __init__(self):
        super().__init__()
        self.model1 = nn.Sequential(nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(2), nn.Conv2d(32, 32, 5, padding=2),
                                    nn.MaxPool2d(2), nn.Conv2d(32, 64, 5, padding=2), nn.MaxPool2d(2), nn.Flatten(),
                                    nn.Linear(1024, 64), nn.Linear(64, 10))

    def forward(self, x):
        return self.model1(x)


class Odd(nn.Module):
    """Non-persistent buffers, a None bias, a None child, tied weights, nested containers."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 6)
        self.blocks = nn.ModuleList([nn.Linear(6, 6, bias=False), nn.Sequential(nn.LayerNorm(6), nn.GELU())])
        self.heads = nn.ModuleDict({"a": nn.Linear(6, 3), "b": nn.Identity()})
        self.out = nn.Linear(6, 11)
        self.out.weight = self.emb.weight  # tied
        self.register_buffer("steps", torch.tensor(3))
        self.register_buffer("cache", torch.ones(2, 2), persistent=False)
        self.register_parameter("unused", None)
        self.register_module("empty", None)


MODULE_SRC = '''
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)
'''


class Color(enum.Enum):
    RED = 1


def lenet():
    """The CIFAR-10 tutorial's Net, as a state_dict saved to cifar_net.pth."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))))
    return Net()


# ---- checks shared by the cases ----------------------------------------------------------------


def weights_roundtrip(f, want, desc, key=None, load=True):
    """save-weights f: loads with weights_only=True, the same keys in order, bit-equal tensors."""
    out = f + ".w.pth"
    args = ["save-weights", f, "-o", out] + (["--key", key] if key else [])
    r = vggtl(*args)
    if not check(r.rc == 0, f"{desc}: save-weights exits 0", r):
        return None
    # torch 2.x: its default torch.load(f), which is weights_only=True
    got = torch.load(path(out)) if TORCH2 and load else torch.load(path(out), weights_only=load)
    d = same_tensors(got, want, layout=False)
    check(d is None, f"{desc}: save-weights gives state_dict(): same keys, order and tensors", d)
    rm(out)
    return got


def prints_like_python(f, model, desc):
    r = vggtl("load", f, *(["--torch-version", "1.13"] if not TORCH2 else []))
    text = str(model) + "\n"
    check(r.rc == 0 and r.out == text, f"{desc}: load prints what print(model) prints", r, first_diff(r.out, text))


# ---- 1. user classes, the tutorial's trap ---------------------------------------------------------


def case_user_classes():
    torch.manual_seed(0)
    t = Tudui()
    torch.save(t, path("tudui_method1.pth"))
    # Python needs the class: without it, torch.load fails
    code = ("import torch,sys\ntry:\n torch.load(sys.argv[1], weights_only=False)\n"
            "except AttributeError as e:\n print('AttributeError', e)")
    import subprocess
    p = subprocess.run([sys.executable, "-c", code, path("tudui_method1.pth")], capture_output=True, text=True)
    check("Can't get attribute 'Tudui'" in p.stdout, "Python cannot open tudui_method1.pth without the class", p.stdout)
    prints_like_python("tudui_method1.pth", t, "Tudui of __main__")
    got = weights_roundtrip("tudui_method1.pth", t.state_dict(), "Tudui of __main__")
    if got is not None:
        fresh = Tudui()
        fresh.load_state_dict(got, strict=True)
        x = torch.randn(2, 3, 32, 32)
        check(torch.equal(fresh(x), t(x)), "Tudui: the recovered weights give the same outputs")
    r = vggtl("load", "tudui_method1.pth", "--tensors")
    check(r.rc == 0 and r.out == tensor_lines(t.state_dict()), "Tudui: load --tensors lists state_dict() names", r)
    r = vggtl("save-full", "tudui_method1.pth", "-o", "tudui2.pth")
    back = torch.load(path("tudui2.pth"), weights_only=False) if r.rc == 0 else None
    check(back is not None and str(back) == str(t) and same_tensors(back.state_dict(), t.state_dict()) is None,
          "save-full of Tudui: loads where the class is importable, same text and tensors", r)
    torch.save(t, path("tudui_legacy.pth"), _use_new_zipfile_serialization=False)
    prints_like_python("tudui_legacy.pth", t, "Tudui, legacy format")
    r = vggtl("save-full", "tudui_legacy.pth", "-o", "tudui3.pth")
    check(r.rc == 0 and zipfile.is_zipfile(path("tudui3.pth")) and
          same_tensors(torch.load(path("tudui3.pth"), weights_only=False).state_dict(), t.state_dict()) is None,
          "save-full of a legacy Tudui writes a zip with the same tensors", r)
    for cmd in (["train", "tudui_method1.pth", "--epochs", "1", "-o", "never.pth"], ["eval", "tudui_method1.pth"],
                ["extend", "tudui_method1.pth", "--add-linear", "10:2", "-o", "never.pth"]):
        check_fail(vggtl(*cmd), 1, f"{cmd[0]} of a Tudui: VGG only", "Tudui", "not a VGG")
    check(not os.path.exists(path("never.pth")), "nothing written by the VGG-only commands")
    r = vggtl("scan", "tudui_method1.pth", "tudui_legacy.pth", "tudui2.pth")
    check(r.rc == 0 and r.out.count("clean (") == 3, "scan: Tudui files (zip, legacy, written back) are clean", r)
    rm("tudui_method1.pth", "tudui2.pth", "tudui_legacy.pth", "tudui3.pth")

    # a class from a module file (model.py), imported by Python only for the comparison
    with open(path("model_def.py"), "w") as fh:
        fh.write(MODULE_SRC)
    sys.path.insert(0, ti.T.dir)
    import model_def
    net = model_def.Net()
    torch.save(net, path("net.pth"))
    prints_like_python("net.pth", net, "a class of model_def.py")
    weights_roundtrip("net.pth", net.state_dict(), "a class of model_def.py")
    got = torch.load(path("net.pth"), weights_only=False)
    check(type(got).__module__ == "model_def", "net.pth names model_def.Net")
    rm("net.pth")

    o = Odd()
    torch.save(o, path("odd.pth"))
    prints_like_python("odd.pth", o, "ModuleList, ModuleDict, None child, tied weights")
    got = weights_roundtrip("odd.pth", o.state_dict(), "non-persistent buffer, None bias and child, tied weights")
    if got is not None:
        check(got["emb.weight"].data_ptr() == got["out.weight"].data_ptr(), "tied weights stay one storage")
        check("cache" not in got and "unused" not in got, "the non-persistent buffer and the None parameter are left out")
        Odd().load_state_dict(got, strict=True)
    dp = nn.DataParallel(Tudui())
    torch.save(dp, path("dp.pth"))
    prints_like_python("dp.pth", dp, "DataParallel(Tudui)")
    weights_roundtrip("dp.pth", dp.module.state_dict(), "DataParallel(Tudui): module. stripped")
    r = vggtl("scan", "odd.pth", "dp.pth")
    check(r.rc == 0 and r.out.count("clean (") == 2, "scan: nested containers and DataParallel are clean", r)
    rm("odd.pth", "dp.pth")


# ---- 2. state_dicts and training dicts of any model ------------------------------------------------


def case_state_dicts():
    torch.manual_seed(0)
    net = lenet()
    sd = net.state_dict()
    torch.save(sd, path("cifar_net.pth"))
    r = vggtl("load", "cifar_net.pth")
    nb = sum(t.numel() * t.element_size() for t in sd.values())
    check(r.rc == 0 and r.out.startswith(f"state_dict: {len(sd)} tensors, {sum(t.numel() for t in sd.values())} "
                                         f"elements, {nb} bytes\n") and "float32 (10)" in r.out,
          "LeNet cifar_net.pth: load prints a summary", r)
    got = weights_roundtrip("cifar_net.pth", sd, "LeNet state_dict")
    if got is not None:
        lenet().load_state_dict(got, strict=True)
    torch.save(collections.OrderedDict(("module." + k, v) for k, v in sd.items()), path("lenet_dp.pth"),
               _use_new_zipfile_serialization=False)
    weights_roundtrip("lenet_dp.pth", sd, "legacy LeNet with module. keys: stripped, zip written")

    # PyTorch's "saving a general checkpoint" recipe, for a VGG and for LeNet
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    loss = torch.tensor(0.734)
    ck = {"epoch": 5, "model_state_dict": net.state_dict(), "optimizer_state_dict": opt.state_dict(), "loss": loss}
    torch.save(ck, path("recipe.pth"))
    r = vggtl("load", "recipe.pth", "--tensors")
    check(r.rc == 0 and r.out == tensor_lines(tensor_paths(ck)),
          "recipe checkpoint: --tensors lists every tensor by path (model, Adam state, the 0-dim loss)", r,
          first_diff(r.out, tensor_lines(tensor_paths(ck))))
    check("optimizer_state_dict.state.0.exp_avg\t" in r.out and "\nloss\tfloat32\t[]\t4\n" in r.out,
          "recipe checkpoint: optimizer moments and the loss are listed", r)
    weights_roundtrip("recipe.pth", net.state_dict(), "recipe checkpoint")
    r = vggtl("load", "recipe.pth", "--json")
    j = json.loads(r.out) if r.rc == 0 else {}
    v = j.get("values", {})
    check(j.get("kind") == "state_dict" and j.get("where") == "model_state_dict" and v.get("epoch") == 5 and
          v.get("loss", {}).get("tensor", {}).get("shape") == [],
          "recipe checkpoint: --json says where the weights are and describes epoch and loss", r)
    vgg = ti.tv("vgg11")
    torch.save({"epoch": 5, "model_state_dict": vgg.state_dict(), "optimizer_state_dict": {}, "loss": loss},
               path("vgg_recipe.pth"))
    r = vggtl("load", "vgg_recipe.pth")
    check(r.rc == 0 and r.out == str(vgg) + "\n", "recipe checkpoint of a VGG: load prints the VGG", r)
    rm("cifar_net.pth", "lenet_dp.pth", "recipe.pth", "vgg_recipe.pth")

    # what training scripts put in checkpoints beside the weights
    ns = argparse.Namespace(lr=0.1, arch="resnet18", epochs=90)
    busy = {
        "epoch": 12, "arch": "lenet", "state_dict": sd, "best_acc1": np.float64(0.7125), "best_i": np.int64(3),
        "args": ns, "mean": np.array([0.4914, 0.4822, 0.4465]), "hist": np.arange(6, dtype=np.int32).reshape(2, 3),
        "loss_fn": F.cross_entropy, "color": Reduce(Color, (1,)), "device": torch.device("cpu"), "flag": np.bool_(True),
        "ids": {140234: "x", 140235: "y"}, "tags": {"a", "b"}, "blob": b"\x00\xffbytes",
    }
    torch.save(busy, path("busy.pth"))
    r = vggtl("load", "busy.pth", "--json")
    j = json.loads(r.out) if r.rc == 0 else {}
    v = j.get("values", {})
    check(r.rc == 0 and abs(v.get("best_acc1", 0) - 0.7125) < 1e-12 and v.get("best_i") == 3 and v.get("flag") is True,
          "numpy scalars (float64, int64, bool_) read as numbers", r)
    check(v.get("args", {}).get("object") == "argparse.Namespace" and v["args"].get("state", {}).get("lr") == 0.1,
          "argparse.Namespace: an inert object record with its attributes", v.get("args"))
    check(v.get("mean", {}).get("ndarray") == {"dtype": "float64", "shape": [3]} and
          v.get("hist", {}).get("ndarray") == {"dtype": "int32", "shape": [2, 3]}, "numpy arrays: dtype and shape",
          v.get("mean"), v.get("hist"))
    check(v.get("loss_fn", {}).get("global") == "torch.nn.functional.cross_entropy", "a function reference is a global",
          v.get("loss_fn"))
    # an enum member as Python < 3.11 pickles it, Color(1) (3.11 pickles getattr(Color, 'RED'):
    # builtins.getattr, which is denylisted)
    check(v.get("color", {}).get("call") == "__main__.Color", "an enum member is an inert call record", v.get("color"))
    check(v.get("device") == "cpu" and v.get("blob") == {"bytes": 7} and sorted(v.get("tags", [])) == ["a", "b"],
          "torch.device, bytes and sets", v.get("device"), v.get("blob"), v.get("tags"))
    weights_roundtrip("busy.pth", sd, "a training dict of numpy, Namespace, functions and enums")
    r = vggtl("scan", "busy.pth")
    check(r.rc == 1 and "unknown call" in r.out and "__main__.Color" in r.out and "dangerous" not in r.out.split(
        "findings")[-1].replace("(0 dangerous)", ""), "scan: the enum's REDUCE is the only finding, not dangerous", r)
    del busy["color"]
    torch.save(busy, path("busy.pth"))
    r = vggtl("scan", "busy.pth")
    check(r.rc == 0 and r.out.rstrip().endswith("clean (zip, 1 pickle)"),
          "scan: numpy scalars and arrays, Namespace, functions, devices are clean", r)
    rm("busy.pth")

    # Lightning's layout, and a Hugging Face pytorch_model.bin with tied embeddings
    lightning = {"epoch": 3, "global_step": 300, "pytorch-lightning_version": "1.9.0",
                 "state_dict": collections.OrderedDict(("model." + k, v) for k, v in sd.items()),
                 "loops": {"fit_loop": {"state_dict": {}}}, "callbacks": {"ModelCheckpoint{'monitor': 'val_loss'}": {
                     "best_model_path": "C:\\runs\\best.ckpt", "best_model_score": torch.tensor(0.31)}},
                 "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]}],
                 "lr_schedulers": [], "hparams_name": "kwargs", "hyper_parameters": {"lr": 1e-3}}
    torch.save(lightning, path("epoch=3-step=300.ckpt"))
    weights_roundtrip("epoch=3-step=300.ckpt", lightning["state_dict"], "a Lightning checkpoint")
    emb = torch.randn(50, 8)
    hf = collections.OrderedDict([("embeddings.word_embeddings.weight", emb), ("encoder.layer.0.weight", torch.ones(8, 8)),
                                  ("lm_head.weight", emb)])
    torch.save(hf, path("pytorch_model.bin"))
    got = weights_roundtrip("pytorch_model.bin", hf, "HF pytorch_model.bin")
    if got is not None:
        check(got["lm_head.weight"].data_ptr() == got["embeddings.word_embeddings.weight"].data_ptr(),
              "HF: tied embeddings stay one storage")
    # --key chooses among several
    two = {"model": sd, "ema": collections.OrderedDict((k, v + 1) for k, v in sd.items())}
    torch.save(two, path("two.pth"))
    weights_roundtrip("two.pth", two["ema"], "--key ema", key="ema")
    check_fail(vggtl("save-weights", "two.pth", "--key", "nope", "-o", "never.pth"), 1, "--key of a missing key", "nope")
    torch.save({"epoch": 3, "note": "no weights"}, path("none.pth"))
    r = vggtl("load", "none.pth")
    check(r.rc == 0 and "no model" in r.out and "epoch: int 3" in r.out, "a file without a model says what it holds", r)
    check_fail(vggtl("save-weights", "none.pth", "-o", "never.pth"), 1, "save-weights of a file without weights",
               "no model", "'epoch'")
    check(not os.path.exists(path("never.pth")), "no output when there are no weights")
    rm("epoch=3-step=300.ckpt", "pytorch_model.bin", "two.pth", "none.pth")


# ---- 3. quantized tensors and TorchScript -------------------------------------------------------


def case_quantized_script():
    x = torch.randn(4, 3)
    q = collections.OrderedDict([
        ("qt", torch.quantize_per_tensor(x, 0.05, 3, torch.qint8)),
        ("qu", torch.quantize_per_tensor(x, 0.1, 128, torch.quint8)),
        ("qc", torch.quantize_per_channel(x, torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64),
                                          torch.tensor([0, 1, 2, 3]), 0, torch.qint8)),
        ("cl", torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)),
    ])
    torch.save(q, path("q.pth"))
    r = vggtl("load", "q.pth", "--json")
    j = {t["name"]: t for t in json.loads(r.out)["tensors"]} if r.rc == 0 else {}
    check(j.get("qt", {}).get("dtype") == "qint8" and j["qt"].get("qscheme") == "per_tensor_affine" and
          abs(j["qt"].get("scale", 0) - 0.05) < 1e-12 and j["qt"].get("zero_point") == 3,
          "quantized: dtype, qscheme, scale and zero point listed", r)
    check(j.get("qc", {}).get("qscheme") == "per_channel_affine" and j["qc"].get("axis") == 0,
          "per-channel quantized: qscheme and axis", j.get("qc"))
    r = vggtl("save-weights", "q.pth", "-o", "q2.pth")
    # torch 2.x's default weights_only=True takes quantized tensors; 1.13's weights_only does not
    got = torch.load(path("q2.pth"), **({} if TORCH2 else {"weights_only": False})) if r.rc == 0 else {}
    ok = r.rc == 0 and all(got[k].dtype == v.dtype and torch.equal(got[k].int_repr(), v.int_repr()) and
                           got[k].qscheme() == v.qscheme() for k, v in q.items() if v.is_quantized)
    ok = ok and got["qt"].q_scale() == 0.05 and got["qt"].q_zero_point() == 3 and \
        torch.equal(got["qc"].q_per_channel_scales(), q["qc"].q_per_channel_scales())
    ok = ok and got["cl"].stride() == q["cl"].stride() and torch.equal(got["cl"], q["cl"])
    check(ok, "quantized and channels-last tensors written back exactly" +
          (" (torch.load's default weights_only=True)" if TORCH2 else ""), r)
    rm("q.pth", "q2.pth")

    torch.manual_seed(0)
    m = torchvision.models.resnet18()
    s = torch.jit.script(m)
    torch.jit.save(s, path("r18_script.pt"))
    want = torch.jit.load(path("r18_script.pt")).state_dict()
    r = vggtl("load", "r18_script.pt")
    check(r.rc == 0 and r.out.startswith("TorchScript module __torch__.torchvision.models.resnet.ResNet: 122 tensors"),
          "TorchScript: load names the scripted class", r)
    r = vggtl("load", "r18_script.pt", "--tensors")
    check(r.rc == 0 and r.out == tensor_lines(want), "TorchScript: --tensors lists its state_dict", r,
          first_diff(r.out, tensor_lines(want)))
    weights_roundtrip("r18_script.pt", want, "TorchScript resnet18")
    # attributes interleaved: a submodule, a buffer, then another submodule
    with open(path("script_def.py"), "w") as fh:
        fh.write("import torch, torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                 "        self.a = nn.Linear(2, 2)\n        self.register_buffer('z', torch.ones(1))\n"
                 "        self.b = nn.Sequential(nn.Linear(2, 3))\n    def forward(self, x):\n        return self.b(self.a(x))\n")
    if ti.T.dir not in sys.path:
        sys.path.insert(0, ti.T.dir)
    import script_def
    torch.jit.save(torch.jit.script(script_def.M()), path("m.pt"))
    weights_roundtrip("m.pt", torch.jit.load(path("m.pt")).state_dict(), "TorchScript with interleaved attributes")
    rm("m.pt")
    r = vggtl("scan", "r18_script.pt")
    check(r.rc == 0 and "clean (torchscript," in r.out, "scan: a TorchScript archive is clean", r)
    check(vggtl("verify", "r18_script.pt").rc == 0, "verify: a TorchScript archive (deflated code/ records)")
    rm("r18_script.pt")


# ---- 4. torchvision families -------------------------------------------------------------------


def families():
    tv = torchvision.models
    small = [("resnet18", tv.resnet18), ("mobilenet_v2", tv.mobilenet_v2), ("mobilenet_v3_small", tv.mobilenet_v3_small),
             ("squeezenet1_0", tv.squeezenet1_0), ("shufflenet_v2_x0_5", tv.shufflenet_v2_x0_5),
             ("regnet_y_400mf", tv.regnet_y_400mf), ("efficientnet_b0", tv.efficientnet_b0),
             ("densenet121", tv.densenet121),
             ("vit (small config)", lambda: tv.vision_transformer.VisionTransformer(
                 image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)),
             ("swin (small config)", lambda: tv.swin_transformer.SwinTransformer(
                 patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=[2, 2])),
             ("convnext (small config)", lambda: tv.convnext.ConvNeXt([
                 tv.convnext.CNBlockConfig(8, 16, 1), tv.convnext.CNBlockConfig(16, None, 1)]))]
    large = [("resnet50", tv.resnet50), ("convnext_tiny", tv.convnext_tiny), ("vit_b_16", tv.vit_b_16),
             ("swin_t", tv.swin_t), ("efficientnet_b4", tv.efficientnet_b4), ("regnet_y_8gf", tv.regnet_y_8gf)]
    return small + (large if LARGE else [])


def case_families():
    for name, make in families():
        torch.manual_seed(0)
        m = make()
        sd = m.state_dict()
        torch.save(m, path("whole.pth"))
        torch.save(sd, path("sd.pth"))
        prints_like_python("whole.pth", m, f"{name} whole")
        got = weights_roundtrip("whole.pth", sd, f"{name} whole")
        if got is not None:
            make().load_state_dict(got, strict=True)
            check(got._metadata == sd._metadata, f"{name}: _metadata versions as state_dict() gives them")
        weights_roundtrip("sd.pth", sd, f"{name} state_dict")
        r = vggtl("scan", "whole.pth", "sd.pth")
        check(r.rc == 0, f"{name}: scan finds both files clean", r)
        rm("whole.pth", "sd.pth")


# ---- 5. files built byte by byte: Python 2 legacy, the 2017 vgg16 layout, early zips ------------


class Py2Pickler:
    """Protocol-2 opcodes as Python 2's cPickle wrote them for torch 0.3: SHORT_BINSTRING / BINSTRING
    strings, LONG1 sizes, a BINPUT after each container."""

    def __init__(self, py2=True):
        self.b = bytearray(b"\x80\x02")
        self.memo = 0
        self.py2 = py2

    def put(self):
        self.b += b"q" + bytes([self.memo]) if self.memo < 256 else b"r" + struct.pack("<I", self.memo)
        self.memo += 1

    def s(self, text):
        raw = text.encode()
        if not self.py2:
            self.b += b"X" + struct.pack("<I", len(raw)) + raw
        elif len(raw) < 256:
            self.b += b"U" + bytes([len(raw)]) + raw
        else:
            self.b += b"T" + struct.pack("<I", len(raw)) + raw
        self.put()

    def long(self, v):
        n = (v.bit_length() + 8) // 8 if v else 0
        self.b += b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)

    def int(self, v):
        if self.py2:
            self.long(v)
        elif 0 <= v < 256:
            self.b += b"K" + bytes([v])
        else:
            self.b += b"J" + struct.pack("<i", v)

    def glob(self, module, name):
        self.b += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
        self.put()

    def ints(self, vs):
        self.b += b"("
        for v in vs:
            self.int(v)
        self.b += b"t"
        self.put()

    def stop(self):
        return bytes(self.b + b".")


STORAGE = {torch.float32: "FloatStorage", torch.float64: "DoubleStorage", torch.int64: "LongStorage",
           torch.float16: "HalfStorage", torch.uint8: "ByteStorage"}


def legacy_stream(tensors, py2=True, views=(), locations=None):
    """A legacy torch.save stream of an OrderedDict of contiguous tensors, built as torch 0.3
    wrote it: _rebuild_tensor (v1, four arguments), 6-element persistent ids with pointer keys,
    storages in sorted key order.  views: names whose tensor lives in a view (pre-1.0
    view_metadata) of a larger storage."""
    out = bytearray(b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b".")
    out += b"\x80\x02M\xe9\x03."
    p = Py2Pickler(py2)
    p.b += b"}"
    p.put()
    p.b += b"("
    for k, v in (("protocol_version", 1001), ("little_endian", True), ("type_sizes", None)):
        p.s(k)
        if v is True:
            p.b += b"\x88"
        elif v is None:
            p.b += b"}"
            p.put()
            p.b += b"("
            for k2, v2 in (("short", 2), ("int", 4), ("long", 8)):
                p.s(k2)
                p.b += b"K" + bytes([v2])
            p.b += b"u"
        else:
            p.int(v)
    p.b += b"u"
    out += p.stop()
    p = Py2Pickler(py2)
    p.glob("collections", "OrderedDict")
    p.b += b"]"
    p.put()
    p.b += b"("
    keys, blobs = [], {}
    for i, (name, t) in enumerate(tensors.items()):
        key = str(94000000000000 + 4096 * i)
        loc = (locations or {}).get(name, "cpu")
        p.b += b"]"  # [name, tensor], as Python 2's OrderedDict.__reduce__ lists the items
        p.put()
        p.b += b"("
        p.s(name)
        p.glob("torch._utils", "_rebuild_tensor")
        p.b += b"("
        p.b += b"("
        p.s("storage")
        p.glob("torch", STORAGE[t.dtype])
        if name in views:  # the tensor lives in elements 2.. of a root storage (pre-1.0 view_metadata)
            root_key = str(int(key) + 1)
            pad = torch.zeros(2, dtype=t.dtype)
            p.s(root_key)
            p.s(loc)
            p.int(t.numel() + 2)
            p.b += b"("
            p.s(key)
            p.int(2)
            p.int(t.numel())
            p.b += b"t"
            p.put()
            keys.append(root_key)
            blobs[root_key] = (pad.numpy().tobytes() + t.contiguous().numpy().tobytes(), t.element_size())
        else:
            p.s(key)
            p.s(loc)
            p.int(t.numel())
            p.b += b"N"
            keys.append(key)
            blobs[key] = (t.contiguous().numpy().tobytes(), t.element_size())
        p.b += b"t"
        p.put()
        p.b += b"Q"
        p.int(0)
        p.ints(t.shape)
        p.ints(t.stride())
        p.b += b"t"
        p.put()
        p.b += b"R"
        p.put()
        p.b += b"e"
    p.b += b"e"
    p.b += b"\x85"
    p.put()
    p.b += b"R"
    p.put()
    out += p.stop()
    p = Py2Pickler(py2)
    p.b += b"]"
    p.put()
    p.b += b"("
    for k in sorted(keys):
        p.s(k)
    p.b += b"e"
    out += p.stop()
    for k in sorted(keys):
        data, elsize = blobs[k]
        out += struct.pack("<q", len(data) // elsize) + data
    return bytes(out)


def write_legacy(f, tensors, **kw):
    with open(path(f), "wb") as fh:
        fh.write(legacy_stream(tensors, **kw))


def case_byte_built():
    torch.manual_seed(0)
    tensors = collections.OrderedDict([
        ("conv.weight", torch.randn(4, 3, 3, 3)), ("conv.bias", torch.randn(4)),
        ("bn.running_mean", torch.randn(4, dtype=torch.float64)), ("steps", torch.tensor([7], dtype=torch.int64)),
        ("half", torch.randn(3).half()), ("mask", torch.tensor([1, 0, 1], dtype=torch.uint8)),
        ("tail", torch.randn(5)),
    ])
    write_legacy("py2.pth", tensors, py2=True, views=("tail",),
                 locations={"conv.weight": "cuda:0", "conv.bias": "cuda:1", "half": "mps"})
    want = torch.load(path("py2.pth"), map_location="cpu", weights_only=False)  # BINSTRING: not weights_only
    check(list(want) == list(tensors) and all(torch.equal(want[k], v) for k, v in tensors.items()),
          "the Python 2 fixture loads in torch 1.13 (map_location='cpu') with the tensors it was built from")
    r = vggtl("load", "py2.pth", "--tensors")
    check(r.rc == 0 and r.out == tensor_lines(want), "Python 2 legacy stream: --tensors (SHORT_BINSTRING, LONG1, "
          "_rebuild_tensor v1, a storage view, cuda:0/cuda:1/mps/cpu tags)", r, first_diff(r.out, tensor_lines(want)))
    weights_roundtrip("py2.pth", want, "Python 2 legacy stream")
    check(vggtl("verify", "py2.pth").rc == 0 and vggtl("scan", "py2.pth").rc == 0, "Python 2 stream: verify and scan pass")
    rm("py2.pth")

    # torchvision's vgg16-397923af.pth as laid out in 2017: full size, v1 rebuilds, pointer keys
    sd = collections.OrderedDict((k, torch.randn(v.shape)) for k, v in ti.tv("vgg16").state_dict().items())
    write_legacy("vgg16-397923af.pth", sd, py2=False)
    check(os.path.getsize(path("vgg16-397923af.pth")) > 528_000_000, "a full-size 2017-layout vgg16 file")
    r = vggtl("load", "vgg16-397923af.pth")
    check(r.rc == 0 and r.out == str(ti.tv("vgg16")) + "\n", "2017-layout vgg16: load prints torchvision's VGG16", r)
    r = vggtl("load", "--arch", "vgg16", "--pretrained=" + path("vgg16-397923af.pth"), "--tensors")
    check(r.rc == 0 and r.out == tensor_lines(sd), "--pretrained reads the 2017 layout", r)
    r = vggtl("save-weights", "vgg16-397923af.pth", "-o", "vgg16_w.pth")
    got = torch.load(path("vgg16_w.pth"), weights_only=True) if r.rc == 0 else {}
    check(r.rc == 0 and same_tensors(got, sd, layout=False) is None, "2017-layout vgg16: save-weights bit-exact", r)
    del got
    rm("vgg16-397923af.pth", "vgg16_w.pth")

    # an early 1.x zip: storage keys are pointers, the archive folder holds braces, no version extras
    t = collections.OrderedDict([("a", torch.randn(3, 2)), ("b", torch.arange(4))])
    buf = io.BytesIO()
    keys = {}

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, torch.storage.TypedStorage):
                k = keys.setdefault(obj._cdata, str(obj._cdata))
                return ("storage", getattr(torch, obj.pickle_storage_type()), k, "cuda:0", obj.size())
            return None
    P(buf, protocol=2).dump(t)
    with zipfile.ZipFile(path("early.pth"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("tudui_{}_GPU/data.pkl", buf.getvalue())
        for cdata, k in keys.items():
            st = t["a"].storage() if t["a"].storage()._cdata == cdata else t["b"].storage()
            z.writestr(f"tudui_{{}}_GPU/data/{k}", bytes(st.untyped()))
        z.writestr("tudui_{}_GPU/version", "3\n")
    want = torch.load(path("early.pth"), map_location="cpu", weights_only=False)
    check(all(torch.equal(want[k], v) for k, v in t.items()), "the early-zip fixture loads in torch")
    weights_roundtrip("early.pth", want, "early 1.x zip: pointer keys, braces in the folder name, cuda tags")
    # the records newer torches add: byteorder, .data/serialization_id, .format_version, .storage_alignment
    torch.save(t, path("plain.pth"))
    with zipfile.ZipFile(path("plain.pth")) as zin, zipfile.ZipFile(path("new.pth"), "w", zipfile.ZIP_STORED) as z:
        have = set(zin.namelist())
        for info in zin.infolist():
            z.writestr(info.filename, zin.read(info.filename))
        for name, data in (("byteorder", "little"), (".data/serialization_id", "0" * 40), (".format_version", "1"),
                           (".storage_alignment", "64")):
            if "plain/" + name not in have:  # torch 2.6 writes some of them itself
                z.writestr("plain/" + name, data)
    weights_roundtrip("new.pth", t, "a zip with torch 2.x's extra records")
    rm("early.pth", "plain.pth", "new.pth")


# ---- 6. hostile pickles: scan flags each, the readers refuse each --------------------------------


class Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def payloads():
    import builtins
    import runpy
    import subprocess
    import webbrowser
    return [
        # names as pickled: protocol 2's fix_imports writes __builtin__.exec, commands.Popen...
        ("os.system", Reduce(os.system, ("touch PWNED",)), ("posix.system", "os.system")),
        ("builtins.exec", Reduce(builtins.exec, ("open('PWNED','w')",)), ("builtin__.exec",)),
        ("builtins.eval", Reduce(builtins.eval, ("1",)), ("builtin__.eval",)),
        ("subprocess.Popen", Reduce(subprocess.Popen, (["true"],)), (".Popen",)),
        ("runpy._run_code", Reduce(runpy._run_code, ("x", {})), ("runpy._run_code",)),
        ("webbrowser.open", Reduce(webbrowser.open, ("http://127.0.0.1/",)), ("webbrowser.open",)),
        ("builtins.getattr", Reduce(builtins.getattr, (dict, "fromkeys")), ("getattr",)),
        ("builtins.__import__", Reduce(builtins.__import__, ("os",)), ("builtin__.__import__",)),
    ]


def case_hostile():
    for desc, obj, names in payloads():
        for f, kw in (("evil.pth", {}), ("evil_legacy.pth", {"_use_new_zipfile_serialization": False})):
            torch.save({"state_dict": lenet().state_dict(), "x": obj}, path(f), **kw)
            r = vggtl("scan", f)
            check(r.rc == 1 and "dangerous" in r.out and any(n in r.out for n in names),
                  f"scan flags {desc} as dangerous ({f})", r)
            check_fail(vggtl("save-weights", f, "-o", "never.pth"), 1, f"save-weights refuses {desc} ({f})")
            check_fail(vggtl("load", f, "--tensors"), 1, f"load --tensors refuses {desc} ({f})")
        rm("evil.pth", "evil_legacy.pth")
    # a call of anything unknown is a finding, though not a dangerous one
    torch.save({"w": torch.ones(1), "q": Reduce(collections.deque, ([1, 2],))}, path("unknown.pth"))
    r = vggtl("scan", "unknown.pth")
    check(r.rc == 1 and "unknown call" in r.out and "collections.deque" in r.out and "(0 dangerous)" in r.out,
          "scan: a call of an unknown callable is a finding", r)
    r = vggtl("load", "unknown.pth", "--json")
    check(r.rc == 0 and json.loads(r.out)["values"]["q"].get("call") == "collections.deque",
          "load: an unknown call is kept as an inert record", r)
    rm("unknown.pth")
    # protocol 0, the classic payload; a plain pickle; json output; garbage
    with open(path("p0.pkl"), "wb") as fh:
        fh.write(b"cos\nsystem\n(S'touch PWNED'\ntR.")
    r = vggtl("scan", "p0.pkl", "--json")
    j = json.loads(r.out)[0] if r.out.startswith("[") else {}
    check(r.rc == 1 and j.get("dangerous", 0) >= 1 and any(i["op"] == "call" and i["global"] == "os.system"
                                                          for i in j.get("items", [])),
          "scan --json: a protocol-0 os.system payload", r)
    with open(path("plain.pkl"), "wb") as fh:
        pickle.dump({"a": [1, 2.5, "x"]}, fh)
    r = vggtl("scan", "plain.pkl")
    check(r.rc == 0 and "clean (pickle, 1 pickle)" in r.out, "scan: a plain pickle of data is clean", r)
    with open(path("junk.bin"), "wb") as fh:
        fh.write(b"\xff\xfe" + os.urandom(100))
    r = vggtl("scan", "junk.bin")
    check(r.rc == 2 and "unreadable" in r.out, "scan: an unreadable file exits 2", r)
    check(not os.path.exists(path("PWNED")) and not os.path.exists(path("never.pth")), "nothing ran, nothing was written")
    rm("p0.pkl", "plain.pkl", "junk.bin")


# ---- 7. bypasses found in review: each must be flagged by scan and refused by the readers ---------


def su(text):
    """SHORT_BINUNICODE or BINUNICODE, for pickles written by hand."""
    b = text.encode()
    return (b"\x8c" + bytes([len(b)]) + b) if len(b) < 256 else (b"X" + struct.pack("<I", len(b)) + b)


def zip_pickle(f, pkl):
    """A torch.save-shaped zip whose data.pkl is pkl (torch.load unpickles it as it stands)."""
    with zipfile.ZipFile(path(f), "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/version", "3\n")


def polyglot_safetensors(payload):
    """A valid safetensors file that is also a pickle from offset 0: the header length's first
    byte is BINBYTES ('B'), and SHORT_BINSTRINGs hidden in a metadata string walk the pickle
    to the payload at the end of the data (built as the review that found it did)."""
    l2 = struct.unpack("<I", b'"}}\x00')[0]
    n = 1 + l2 + len(payload)
    prefix = b'{"t":{"dtype":"U8","shape":[%d],"data_offsets":[0,%d]},"__metadata__":{"k":"' % (n, n)
    suffix = b'"}}'
    l1 = 200
    h = 0x42 + 256 * l1
    fstart = 8 + len(prefix)
    filler = bytearray(b"a" * (h - len(prefix) - len(suffix)))
    pos_b = fstart + len(filler) - 1  # the last filler byte is the next 'B'
    p = 5 + l1
    ok = set(range(0x20, 0x7f)) - {0x22, 0x5c}
    while p < pos_b:
        d = pos_b - p
        if d < 34:
            for i in range(d):
                filler[p - fstart + i] = ord("N")
            p += d
            continue
        k = 126 if d >= 128 + 34 else d - 2
        if k not in ok:
            k -= 1
        filler[p - fstart], filler[p - fstart + 1] = ord("U"), k
        p += 2 + k
    filler[pos_b - fstart] = ord("B")
    return struct.pack("<Q", h) + prefix + bytes(filler) + suffix + b"\x00" * (1 + l2) + payload


def case_bypasses():
    mod_state = b"}(" + su("_modules") + b"}" + su("_parameters") + b"}" + su("_buffers") + b"}" + su("training") + b"\x88u"
    cases = [
        ("_rebuild_from_type_v2 calls its first argument (here a dotted os.system)",
         b"\x80\x04" + su("torch._tensor") + su("_rebuild_from_type_v2") + b"\x93(" + su("torch") +
         su("serialization.os.system") + b"\x93" + su("builtins") + su("int") + b"\x93" + su("touch PWNED") +
         b"\x85}tR.", "dangerous", "serialization.os.system"),
        ("a dotted name reaching through a module (torch.serialization.os.system)",
         b"\x80\x04" + su("torch") + su("serialization.os.system") + b"\x93" + su("touch PWNED") + b"\x85R.",
         "dangerous", "serialization.os.system"),
        ("a storage class's factory method (UntypedStorage.from_file)",
         b"\x80\x04" + su("torch") + su("UntypedStorage.from_file") + b"\x93" + su("x") + b"\x88M\x00\x10\x87R.",
         "dangerous", "UntypedStorage.from_file"),
        ("copyreg._reconstructor whose base is not object (logging.FileHandler creates its file)",
         b"\x80\x02ccopyreg\n_reconstructor\n(clogging\nFileHandler\nclogging\nFileHandler\n" + su("created") + b"tR.",
         "dangerous", "logging.FileHandler"),
        ("copyreg._reconstructor with another base: a call of the base",
         b"\x80\x02ccopyreg\n_reconstructor\n(ccollections\ndeque\nccollections\ndeque\nNtR.",
         "unknown call", "call       collections.deque"),
        ("a Python 2 alias of a denylisted module (StringIO.open truncates its file)",
         b"\x80\x02cStringIO\nopen\n" + su("trunc") + su("w") + b"\x86R.", "dangerous", "StringIO.open"),
    ]
    for desc, pkl, verdict, name in cases:
        zip_pickle("bp.pth", pkl)
        r = vggtl("scan", "bp.pth")
        check(r.rc == 1 and any(verdict in l and name in l for l in r.out.splitlines()),
              f"scan: {desc}: {verdict}", r)
        r = vggtl("load", "bp.pth", "--json")
        if verdict == "dangerous":
            check_fail(r, 1, f"load refuses {desc}", name.split(" ")[-1])
        else:
            check(r.rc == 0 and '"call":\t"copyreg._reconstructor"' in r.out, f"load keeps {desc} as an inert call record",
                  r)
    # a class name with a newline: a text GLOBAL written back would run the rest as opcodes
    name = "Module\ncbuiltins\nprint\n(S'INJECTED'\ntR0ctorch.nn\nModule"
    zip_pickle("bp.pth", b"\x80\x02" + su("torch.nn") + su(name) + b"\x93)\x81" + mod_state + b"b.")
    check_fail(vggtl("save-full", "bp.pth", "-o", "never.pth"), 1, "save-full refuses a class name holding a newline",
               "control character")
    check(vggtl("scan", "bp.pth").rc == 2, "scan: a class name holding a newline is unreadable")
    # per-channel scales that are themselves quantized tensors nest without end
    q = torch.quantize_per_channel(torch.randn(2, 2), torch.tensor([0.1, 0.2], dtype=torch.float64),
                                   torch.tensor([0, 0]), 0, torch.qint8)
    torch.save({"q": q}, path("q.pth"))
    with zipfile.ZipFile(path("q.pth")) as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    check(b"_rebuild_qtensor" in pkl, "the per-channel file pickles _rebuild_qtensor")
    rm("q.pth", "bp.pth")
    # torch.load tries tar first (torch.save before 0.1.10): a tar is never called clean
    import tarfile
    with tarfile.open(path("old.tar.pth"), "w", format=tarfile.USTAR_FORMAT) as t:
        for member, data in (("}.", b"x"), ("storages", b"cbuiltins\nprint\n(S'ran'\ntR.")):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    r = vggtl("scan", "old.tar.pth")
    check(r.rc == 2 and "tar archive" in r.out, "scan: a tar archive is unreadable (exit 2), not clean", r)
    # a safetensors file whose first bytes also start a pickle: torch.load would run it
    with open(path("poly.safetensors"), "wb") as fh:
        fh.write(polyglot_safetensors(b"cbuiltins\nprint\n(S'POLYGLOT RAN'\ntR."))
    r = vggtl("load", "poly.safetensors", "--tensors")
    check(r.rc == 0 and r.out.startswith("t\tuint8"), "the polyglot is a valid safetensors file", r)
    r = vggtl("scan", "poly.safetensors")
    check(r.rc == 1 and "builtins.print" in r.out and "offset 0" in r.out,
          "scan: the pickle torch.load would run from a safetensors file's first byte is scanned", r)
    # bounded work on shared values
    lin = nn.Linear(2, 2)
    t = (1, 1)
    for _ in range(24):
        t = (t, t)
    lin.in_features = t
    torch.save(lin, path("dag.pth"))
    r = vggtl("load", "dag.pth")
    check(r.rc == 0 and len(r.out) < 200000, f"a 2^24-leaf shared tuple prints in bounded text ({len(r.out)} bytes)")
    rm("old.tar.pth", "poly.safetensors", "dag.pth")


CASES = [
    ("1. user classes", case_user_classes),
    ("2. state_dicts and training dicts", case_state_dicts),
    ("3. quantized and TorchScript", case_quantized_script),
    ("4. torchvision families", case_families),
    ("5. byte-built files", case_byte_built),
    ("6. hostile pickles", case_hostile),
    ("7. bypasses found in review", case_bypasses),
]


if __name__ == "__main__":
    sys.exit(ti.run_cases(CASES, "vggtl-anymodel-"))
