#!/usr/bin/python3
"""test_dist.py - data-parallel training across processes, on one machine over loopback:
two ranks started by hand with the launcher's variables, under Debian's torchrun (torch 1.13),
and as two "nodes" through torchrun's c10d rendezvous.

- Exactness: a step of 2 ranks x B images equals a step of 1 rank x 2B images on the same
  images. The model is a VGG11 whose dropout has p = 0, trained without augmentation, so no
  random draw differs between the two runs; what remains is the order of float32 sums (the
  gradient of a 2B batch summed in one pass, against two B halves averaged by all-reduce).
  Per step that is a few ulps of each gradient; after 8 SGD steps of lr 0.01 the weights
  may differ by ~1e-8, four orders below how far training moved them. The test asks for
  1e-6 and that the weights moved by more than 1e-3, and prints the largest difference.
- A 2-rank run learns as a 1-rank run does (cached frozen features, shared across ranks);
  its checkpoint (DDP-style with --add-prefix module.) loads in Python and resumes on 1 rank.
- Failures end the job: a killed rank, a peer that never arrives, a port already taken.

Debian 12's torchrun dies at start under its default options (torch 1.13's Std.from_str on
Python 3.11, see README "Troubleshooting"): it runs here with --redirects 1 --tee 1.
"""
import os
import socket
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_interop as ti  # noqa: E402
from test_interop import VGGTL, check, path  # noqa: E402

TORCHRUN = "/usr/bin/torchrun"
DIST_VARS = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
             "TORCHELASTIC_USE_AGENT_STORE", "OMP_NUM_THREADS", "GROUP_RANK"]
SMALL = ["--no-augment", "--device", "cpu", "--seed", 3]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(**kw):
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    env.update({k: str(v) for k, v in kw.items()})
    return env


class Done:
    def __init__(self, rc, out, err, seconds):
        self.rc, self.out, self.err, self.seconds = rc, out, err, seconds

    def __str__(self):
        return f"exit {self.rc} after {self.seconds:.1f} s\nstdout: {self.out[-800:]}\nstderr: {self.err[-1500:]}"


def start(cmd, env):
    return subprocess.Popen([str(c) for c in cmd], cwd=ti.T.dir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(p, t0, timeout=600):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return Done(-9, out, "TIMEOUT\n" + err, time.time() - t0)
    return Done(p.returncode, out, err, time.time() - t0)


def by_hand(world, args, per_rank=None, port=None, timeout=600, **env):
    """world ranks of vggtl train started with RANK/WORLD_SIZE/MASTER_*; per_rank(r) adds args."""
    port = port or free_port()
    t0 = time.time()
    ps = [start([VGGTL, "train", *args, *(per_rank(r) if per_rank else [])],
                base_env(RANK=r, LOCAL_RANK=r, WORLD_SIZE=world, LOCAL_WORLD_SIZE=world, MASTER_ADDR="127.0.0.1",
                         MASTER_PORT=port, **env)) for r in range(world)]
    return [finish(p, t0, timeout) for p in ps]


def one(args, **env):
    t0 = time.time()
    return finish(start([VGGTL, "train", *args], base_env(**env)), t0)


def weights(name):
    return torch.load(path(name), map_location="cpu")


def max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def setup():
    torch.manual_seed(0)
    m = torchvision.models.vgg11(num_classes=10, dropout=0.0)
    # VGG's classifier layout (Linear at 0, 3, 6, so that a state_dict names the network), narrow
    m.classifier = nn.Sequential(nn.Linear(25088, 64), nn.ReLU(True), nn.Dropout(0.0), nn.Linear(64, 64),
                                 nn.ReLU(True), nn.Dropout(0.0), nn.Linear(64, 10))
    torch.save(m, path("small.pth"))


def case_exact():
    # SGD: 4 steps (the folded first Linear's gradient is all-reduced too). Adam: 1 step, and
    # its first moment is compared, which is 0.1 x the gradient: Adam's update g / sqrt(g^2)
    # turns the last-bit noise of a near-zero gradient into a step of +-lr, so its weights
    # say nothing about how exactly the gradients agree.
    for opt, extra in (("sgd", ["--limit", 64]), ("adam", ["--lr", "1e-4", "--limit", 16])):
        common = ["small.pth", *SMALL, "--epochs", 1, "--optimizer", opt, *extra, "--style", "weights"]
        r1 = one([*common, "--batch-size", 16, "-o", f"one_{opt}.pth", "--threads", 2, "--checkpoint-dir", f"c1{opt}"])
        r2 = by_hand(2, [*common, "--batch-size", 8, "-o", f"two_{opt}.pth", "--checkpoint-dir", f"c2{opt}"])
        ok = r1.rc == 0 and all(r.rc == 0 for r in r2)
        check(ok, f"{opt}: 1 rank x 16 images and 2 ranks x 8 images train", r1, *r2)
        if not ok:
            continue
        a, b, s = weights(f"one_{opt}.pth"), weights(f"two_{opt}.pth"), torch.load(path("small.pth")).state_dict()
        if opt == "sgd":
            d, moved = max_diff(a, b), max_diff(a, s)
            ti.diag(f"sgd: largest weight difference 1 rank vs 2 ranks {d:.3g}; largest change from the start {moved:.3g}")
            check(d <= 1e-6 and moved > 1e-3, "sgd: 4 steps of 2 ranks x 8 equal 4 steps of 1 rank x 16 (|diff| <= 1e-6)",
                  f"diff {d}, moved {moved}")
        else:
            m1 = torch.load(path("c1adam/epoch_1.pth"))["optimizer_state_dict"]["state"]
            m2 = torch.load(path("c2adam/epoch_1.pth"))["optimizer_state_dict"]["state"]
            worst = max(((m1[i]["exp_avg"] - m2[i]["exp_avg"]).abs().max() /
                         m1[i]["exp_avg"].abs().max().clamp(min=1e-30)).item() for i in m1)
            ti.diag(f"adam: largest exp_avg difference 1 rank vs 2 ranks, relative to the tensor's largest: {worst:.3g}")
            check(sorted(m1) == sorted(m2) and worst <= 1e-5,
                  "adam: one step's first moment (0.1 x the averaged gradient) equals 1 rank x 16's (relative 1e-5)",
                  worst)
        check(list(a) == list(b), f"{opt}: rank 0 wrote plain keys, as the 1-rank run does", list(b)[:3])
        check(r2[1].out == "" and "epoch 1/1" not in r2[1].err and "test accuracy" in r2[0].out,
              f"{opt}: rank 0 reports, rank 1 is silent", r2[1])
        check("rank 0 of 2 (1 threads each" in r2[0].err,
              f"{opt}: with LOCAL_WORLD_SIZE=2 each rank takes half of the 2 CPUs", r2[0].err[:300])
        if opt == "sgd":
            m = [ln for ln in r2[0].err.splitlines() if "train loss" in ln]
            m1 = [ln for ln in r1.err.splitlines() if "train loss" in ln]
            check(m == m1, "the epoch's train and test metrics are reduced over both ranks (equal to 1 rank's)",
                  m, m1)


def case_learns():
    common = ["small.pth", *SMALL, "--freeze", "features", "--lr", 0.05, "--epochs", 3]
    r1 = one([*common, "--batch-size", 32, "--threads", 2, "--metrics", "m1.jsonl", "-o", "f1.pth", "--style",
              "weights"])
    r2 = by_hand(2, [*common, "--batch-size", 16, "--metrics", "m2.jsonl", "-o", "f2.pth", "--style", "weights"])
    ok = r1.rc == 0 and all(r.rc == 0 for r in r2)
    check(ok, "3 frozen epochs on the bundled sample: 1 rank x 32 and 2 ranks x 16", r1, *r2)
    if not ok:
        return
    check("features of 500 images computed once" in r2[0].err, "the feature cache is computed across the ranks",
          r2[0].err[:400])
    import json
    ep1 = [json.loads(ln) for ln in open(path("m1.jsonl")) if '"train_loss"' in ln]
    ep2 = [json.loads(ln) for ln in open(path("m2.jsonl")) if '"train_loss"' in ln]
    losses = [e["train_loss"] for e in ep2]
    ti.diag(f"train loss per epoch, 2 ranks: {losses}; 1 rank: {[e['train_loss'] for e in ep1]}")
    check(len(ep2) == 3 and losses[2] < losses[0], "2 ranks learn: the train loss falls", losses)
    check(len(ep1) == 3 and all(abs(x["train_loss"] - y["train_loss"]) < 1e-4 and
                                abs(x["test_accuracy"] - y["test_accuracy"]) < 1e-9 for x, y in zip(ep1, ep2)),
          "2 ranks learn as 1 rank does: the same losses and test accuracy each epoch", ep1, ep2)
    d = max_diff(weights("f1.pth"), weights("f2.pth"))
    ti.diag(f"frozen run: largest weight difference 1 rank vs 2 ranks {d:.3g}")
    check(d <= 1e-5, "and the same weights (|diff| <= 1e-5 after 48 steps)", d)


def case_resume():
    """Checkpoints of a 2-rank run: DDP-style keys with --add-prefix module., loading in
    Python with their optimizer state, resuming on 1 rank and on 2. The model is a VGG11 with
    torchvision's classifier, dropout included: a checkpoint's state_dict must name a
    torchvision VGG, and it does not record dropout's p, so a resumed run has 0.5. Its masks
    are drawn per rank, so 1 rank resuming is checked for running and learning, and 2 ranks
    resuming for replaying the uninterrupted run exactly. Frozen features keep it quick."""
    torch.manual_seed(1)
    torch.save(torchvision.models.vgg11(num_classes=10), path("big.pth"))
    common = [*SMALL, "--freeze", "features", "--limit", 128, "--epochs", 2, "--lr", 0.02]
    r2 = by_hand(2, ["big.pth", *common, "--batch-size", 16, "--checkpoint-dir", "ckb", "--add-prefix", "module.",
                     "-o", "b2.pth", "--style", "weights"])
    ok = all(r.rc == 0 for r in r2)
    check(ok, "2 ranks x 16, 2 frozen epochs of a VGG11, checkpoints with --add-prefix module.", *r2)
    if not ok:
        return
    ck = torch.load(path("ckb/epoch_1.pth"), map_location="cpu")
    b2 = {k[len("module."):]: v for k, v in weights("b2.pth").items()}
    keys = list(ck["model_state_dict"])
    check(keys and all(k.startswith("module.") for k in keys) and len(b2) == len(keys),
          "checkpoint and weights carry DDP-style keys", keys[:3])
    net = torch.load(path("big.pth"))
    net.load_state_dict({k[len("module."):]: v for k, v in ck["model_state_dict"].items()})
    opt = torch.optim.SGD(net.classifier.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
    opt.load_state_dict(ck["optimizer_state_dict"])
    check(ck["epoch"] == 1 and len(opt.state) == 6, "the checkpoint loads in Python, with SGD's momentum", list(ck))
    r = one(["--resume", "ckb/epoch_1.pth", *common, "--batch-size", 32, "--threads", 2, "-o", "b1.pth", "--style",
             "weights"])
    check(r.rc == 0 and "resuming after epoch 1 of 2" in r.err, "the prefixed checkpoint resumes on 1 rank", r)
    if r.rc == 0:
        b1, e1 = weights("b1.pth"), {k[len("module."):]: v for k, v in ck["model_state_dict"].items()}
        moved = max_diff(b1, e1)
        check(list(b1)[0] == "features.0.weight" and 0 < moved < 1 and all(torch.isfinite(v).all() for v in b1.values()),
              f"and trains its epoch 2 (plain keys; the weights moved by {moved:.3g})", moved)
    r2 = by_hand(2, ["--resume", "ckb/epoch_1.pth", *common, "--batch-size", 16, "-o", "b2r.pth", "--style", "weights"])
    if check(all(r.rc == 0 for r in r2), "it resumes on 2 ranks", *r2):
        d = max_diff(weights("b2r.pth"), b2)
        check(d == 0, f"and 2 ranks resuming replay the uninterrupted 2-rank run bit for bit (|diff| {d:.3g})", d)
    ti.rm("big.pth", "b1.pth", "b2.pth", "b2r.pth", "ckb/epoch_1.pth", "ckb/epoch_2.pth")


def torchrun(args, *cmd, timeout=600):
    t0 = time.time()
    return finish(start([TORCHRUN, *args, "--redirects", "1", "--tee", "1", "--no_python", VGGTL, "train", *cmd],
                        base_env()), t0, timeout)


def case_torchrun():
    common = ["small.pth", *SMALL, "--limit", 64, "--epochs", 1, "--style", "weights"]
    r = torchrun(["--nproc_per_node=2", f"--master_port={free_port()}"], *common, "--batch-size", 8, "-o", "tr.pth")
    check(r.rc == 0 and "rank 0 of 2 (1 threads each" in r.err + r.out,
          "torchrun --nproc_per_node=2 --no_python vggtl train (OMP_NUM_THREADS=1 from torchrun honoured)", r)
    if r.rc == 0 and os.path.exists(path("one_sgd.pth")):
        d = max_diff(weights("one_sgd.pth"), weights("tr.pth"))
        check(d <= 1e-6, f"and equals 1 rank x 16 (|diff| {d:.3g} <= 1e-6)", d)
    # two "nodes" of one rank each: c10d rendezvous picks the ranks, so both name the output
    rdzv = ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{free_port()}"]
    t0 = time.time()
    ps = [start([TORCHRUN, *rdzv, f"--node_rank={n}", "--redirects", "1", "--tee", "1", "--no_python", VGGTL, "train",
                 *common, "--batch-size", 8, "-o", "nodes.pth", "--threads", 1], base_env()) for n in range(2)]
    rs = [finish(p, t0) for p in ps]
    ok = all(x.rc == 0 for x in rs) and os.path.exists(path("nodes.pth"))
    check(ok, "torchrun --nnodes=2 --rdzv_backend=c10d --rdzv_endpoint: two nodes of one rank train together", *rs)
    if ok and os.path.exists(path("one_sgd.pth")):
        d = max_diff(weights("one_sgd.pth"), weights("nodes.pth"))
        check(d <= 1e-6, f"and equal 1 rank x 16 (|diff| {d:.3g} <= 1e-6)", d)


def case_failures():
    # a rank killed in epoch 2: the other ends within the timeout, epoch 1's checkpoint intact
    port = free_port()
    args = ["small.pth", *SMALL, "--limit", 64, "--batch-size", 4, "--epochs", 3, "--checkpoint-dir", "ckk",
            "--dist-timeout", 30]
    env = dict(WORLD_SIZE=2, LOCAL_WORLD_SIZE=2, MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    t0 = time.time()
    p0 = start([VGGTL, "train", *args], base_env(RANK=0, **env))
    p1 = start([VGGTL, "train", *args], base_env(RANK=1, **env))
    while not os.path.exists(path("ckk/epoch_1.pth")) and time.time() - t0 < 300 and p0.poll() is None:
        time.sleep(0.1)
    time.sleep(1.0)
    p1.kill()
    t_kill = time.time()
    r0 = finish(p0, t0, timeout=120)
    waited = time.time() - t_kill
    finish(p1, t0)
    check(r0.rc == 1 and "rank 0 of 2" in r0.err and waited < 30,
          f"a rank killed mid-epoch: rank 0 exits 1 in {waited:.1f} s (timeout 30 s), naming the failure", r0)
    ck = torch.load(path("ckk/epoch_1.pth"), map_location="cpu") if os.path.exists(path("ckk/epoch_1.pth")) else {}
    check(ck.get("epoch") == 1 and not os.path.exists(path("ckk/epoch_2.pth")) and
          not [f for f in os.listdir(path("ckk")) if f.startswith(".")],
          "the previous checkpoint is intact and nothing is half-written", sorted(os.listdir(path("ckk"))))

    # a peer that never arrives: rank 0 alone, a 3 s timeout
    t0 = time.time()
    r = finish(start([VGGTL, "train", "small.pth", *SMALL, "--limit", 8, "--dist-timeout", 3],
                     base_env(RANK=0, WORLD_SIZE=2, MASTER_ADDR="127.0.0.1", MASTER_PORT=free_port())), t0, 60)
    check(r.rc == 1 and "did not all meet" in r.err and r.seconds < 20,
          f"a peer that never arrives: exit 1 after {r.seconds:.1f} s (--dist-timeout 3)", r)
    t0 = time.time()
    r = finish(start([VGGTL, "train", "small.pth", *SMALL, "--limit", 8, "--dist-timeout", 3],
                     base_env(RANK=1, WORLD_SIZE=2, MASTER_ADDR="127.0.0.1", MASTER_PORT=free_port())), t0, 60)
    check(r.rc == 1 and "cannot reach the store" in r.err and r.seconds < 20,
          f"a rank whose store never comes up: exit 1 after {r.seconds:.1f} s", r)

    # a port already taken by another program
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        t0 = time.time()
        r = finish(start([VGGTL, "train", "small.pth", *SMALL, "--limit", 8, "--dist-timeout", 3],
                         base_env(RANK=0, WORLD_SIZE=2, MASTER_ADDR="127.0.0.1", MASTER_PORT=port)), t0, 60)
    check(r.rc == 1 and "cannot host the store" in r.err and "Address already in use" in r.err,
          "a port already taken: exit 1, saying so", r)

    # the launcher's variables, incomplete or inconsistent: set wrong by the caller (exit 2)
    for desc, env, words in (
            ("RANK without WORLD_SIZE", dict(RANK=0), ["RANK", "WORLD_SIZE"]),
            ("RANK=2 of WORLD_SIZE=2", dict(RANK=2, WORLD_SIZE=2), ["RANK=2", "WORLD_SIZE=2"]),
            ("WORLD_SIZE=2 without MASTER_ADDR", dict(RANK=0, WORLD_SIZE=2, MASTER_PORT=1234), ["MASTER_ADDR"]),
            ("MASTER_PORT=http", dict(RANK=0, WORLD_SIZE=2, MASTER_ADDR="x", MASTER_PORT="http"), ["MASTER_PORT"])):
        t0 = time.time()
        r = finish(start([VGGTL, "train", "small.pth", *SMALL, "--limit", 8], base_env(**env)), t0, 60)
        check(r.rc == 2 and r.out == "" and all(w in r.err for w in words) and len(r.err.strip().splitlines()) == 1,
              f"{desc}: a usage error (exit 2) with a one-line message", r)
    r = one(["small.pth", "--dist-backend", "mpi", "--limit", 8],
            RANK=0, WORLD_SIZE=2, MASTER_ADDR="127.0.0.1", MASTER_PORT=free_port())
    check(r.rc == 1 and "unknown backend 'mpi'" in r.err, "--dist-backend mpi is refused", r)
    r = one(["small.pth", "--dist-timeout", 0])
    check(r.rc == 2 and "--dist-timeout" in r.err, "--dist-timeout 0 is a usage error", r)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def case_torchrun26():
    """torch 2.6's torchrun in the Debian 13 root (VGGTL_TORCH26=1, set by tests/run.sh when the
    root exists). Its rendezvous store speaks 2.x's TCPStore protocol, which a 1.13 client
    cannot, so the shim is built there against Debian 13's libtorch 2.6 (build/torch26); this
    machine's vggtl binary runs in the root with it. Files live under build/ (the root sees
    the repository, not this test's temporary folder)."""
    root = ["sh", os.path.join(REPO, "tools", "torch26-root.sh"), "run"]
    t0 = time.time()
    b = finish(start([*root, "make", "SHIMDIR=build/torch26", "-j2", "build/torch26/libvggtl_shim.so"], base_env()),
               t0, 900)
    if not check(b.rc == 0, f"the shim builds against Debian 13's libtorch 2.6 ({b.seconds:.0f} s)", b):
        return
    work = os.path.join(REPO, "build", "dist26")
    os.makedirs(work, exist_ok=True)
    import shutil
    shutil.copy(path("small.pth"), os.path.join(work, "small.pth"))
    rel = os.path.relpath(work, REPO)
    cmd = (f"cd {rel} && VGGTL_SHIM={REPO}/build/torch26/libvggtl_shim.so python3 {REPO}/tests/torchrun26.py "
           f"--nproc-per-node=2 --master-port={free_port()} --no-python {VGGTL} train small.pth --data {REPO}/data "
           f"--limit 64 --epochs 1 --batch-size 8 --no-augment --device cpu --seed 3 -o t26.pth --style weights")
    t0 = time.time()
    r = finish(start([*root, "sh", "-c", cmd], base_env()), t0)
    out = os.path.join(work, "t26.pth")
    ok = r.rc == 0 and "rank 0 of 2" in r.err and os.path.exists(out)
    check(ok, "torch 2.6's torchrun --nproc-per-node=2 --no-python vggtl train (shim on libtorch 2.6)", r)
    if ok and os.path.exists(path("one_sgd.pth")):
        # another libtorch (oneDNN, reduction orders): a looser bound than within one version
        d = max_diff(weights("one_sgd.pth"), torch.load(out))
        check(d <= 1e-5, f"and equals 1 rank x 16 on torch 1.13 (|diff| {d:.3g} <= 1e-5)", d)
    shutil.rmtree(work, ignore_errors=True)


CASES = [
    ("1. exactness: 2 ranks x B = 1 rank x 2B", case_exact),
    ("2. 2 ranks learn as 1 rank does", case_learns),
    ("3. checkpoints, --add-prefix, resuming on 1 rank", case_resume),
    ("4. torchrun, one node and two", case_torchrun),
    ("5. failures end the job", case_failures),
]
if os.environ.get("VGGTL_TORCH26") == "1":
    CASES.append(("6. torch 2.6's torchrun", case_torchrun26))

if __name__ == "__main__":
    sys.exit(ti.run_cases(CASES, "vggtl-dist-", setup))
