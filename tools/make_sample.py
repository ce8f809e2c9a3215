#!/usr/bin/env python3
"""Writes vggtl's bundled sample: a small synthetic data set in CIFAR-10's binary format.

    python3 tools/make_sample.py [OUT]          (OUT defaults to data/cifar-10-batches-bin)
    python3 tools/make_sample.py --preview F    also writes a PNG grid of the first images

Output: data_batch_1.bin (500 images, 50 per class), test_batch.bin (200, 20 per class) and
batches.meta.txt, laid out as cifar-10-binary.tar.gz lays them out: each record is one label
byte then 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each plane 32x32 row-major).

The images are synthetic (see data/README.md): each class has its own dominant colour and
its own simple shape, drawn at a random place and size on a random dark background, with
per-image colour jitter and per-pixel noise, so a network must look at the pixels and not
memorise them.  Python's standard library only; the pseudo-random generator is SplitMix64,
written out below, so the bytes are the same on every Python version and machine.
"""
import os
import struct
import sys
import zlib

SIDE = 32
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# the dominant colour of each class and the shape drawn in it (data/README.md lists them)
COLOURS = [(220, 40, 40), (40, 200, 60), (50, 80, 230), (230, 210, 40), (210, 50, 200),
           (40, 210, 210), (240, 140, 30), (235, 235, 235), (140, 90, 40), (250, 150, 170)]
SHAPES = ["horizontal stripes", "vertical stripes", "checkerboard", "filled disk", "ring",
          "diagonal stripes", "plus sign", "filled square", "triangle", "X"]
TRAIN_PER_CLASS, TEST_PER_CLASS = 50, 20
SEED_TRAIN, SEED_TEST = 20240601, 20240602


class Rng:
    """SplitMix64 (Steele, Lea and Flood 2014): 64-bit state, one multiply-xorshift output."""
    M = (1 << 64) - 1

    def __init__(self, seed):
        self.s = seed & self.M

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & self.M
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.M
        return z ^ (z >> 31)

    def int(self, lo, hi):
        """Uniform in lo..hi inclusive (the bias of a modulo over 2^64 is negligible here)."""
        return lo + self.next() % (hi - lo + 1)


def mask(cls, r):
    """The class's shape as a 32x32 list of booleans, at a random place and size."""
    m = [[False] * SIDE for _ in range(SIDE)]
    if cls in (0, 1, 2, 5):  # periodic patterns inside a random box
        bw, bh = r.int(16, 28), r.int(16, 28)
        x0, y0 = r.int(0, SIDE - bw), r.int(0, SIDE - bh)
        period, phase = r.int(4, 6), r.int(0, 5)
        for y in range(y0, y0 + bh):
            for x in range(x0, x0 + bw):
                if cls == 0:
                    on = (y + phase) % period < period // 2
                elif cls == 1:
                    on = (x + phase) % period < period // 2
                elif cls == 2:
                    on = ((x + phase) // 3 + (y + phase) // 3) % 2 == 0
                else:
                    on = (x + y + phase) % period < period // 2
                m[y][x] = on
        return m
    if cls in (3, 4):  # disk, ring
        rad = r.int(6, 10) if cls == 3 else r.int(7, 11)
        cx, cy = r.int(rad, SIDE - 1 - rad), r.int(rad, SIDE - 1 - rad)
        width = r.int(2, 3)
        for y in range(SIDE):
            for x in range(SIDE):
                d2 = (x - cx) ** 2 + (y - cy) ** 2
                m[y][x] = d2 <= rad * rad if cls == 3 else (rad - width) ** 2 < d2 <= rad * rad
        return m
    if cls == 6:  # plus sign
        arm, th = r.int(7, 11), r.int(3, 4)
        cx, cy = r.int(arm, SIDE - 1 - arm), r.int(arm, SIDE - 1 - arm)
        for y in range(SIDE):
            for x in range(SIDE):
                m[y][x] = (abs(x - cx) <= arm and abs(y - cy) < th / 2 + 0.5) or \
                          (abs(y - cy) <= arm and abs(x - cx) < th / 2 + 0.5)
        return m
    if cls == 7:  # filled square
        s = r.int(10, 18)
        x0, y0 = r.int(0, SIDE - s), r.int(0, SIDE - s)
        for y in range(y0, y0 + s):
            for x in range(x0, x0 + s):
                m[y][x] = True
        return m
    if cls == 8:  # triangle, apex up
        hgt = r.int(12, 20)
        wide = (hgt - 1) * 2 // 3  # half the base
        x0, y0 = r.int(wide, SIDE - 1 - wide), r.int(0, SIDE - hgt)
        for y in range(y0, y0 + hgt):
            half = (y - y0) * 2 // 3
            for x in range(x0 - half, x0 + half + 1):
                m[y][x] = True
        return m
    # cls 9: X, two diagonals in a random box
    s, th = r.int(14, 22), r.int(2, 3)
    x0, y0 = r.int(0, SIDE - s), r.int(0, SIDE - s)
    for y in range(s):
        for x in range(s):
            if abs(x - y) < th or abs(x + y - (s - 1)) < th:
                m[y0 + y][x0 + x] = True
    return m


def image(cls, r):
    """One image as 3072 bytes in CIFAR's plane order."""
    bg = [r.int(0, 70) for _ in range(3)]
    fg = [max(0, min(255, c + r.int(-25, 25))) for c in COLOURS[cls]]
    m = mask(cls, r)
    planes = [bytearray(SIDE * SIDE) for _ in range(3)]
    for y in range(SIDE):
        for x in range(SIDE):
            base = fg if m[y][x] else bg
            for c in range(3):
                planes[c][y * SIDE + x] = max(0, min(255, base[c] + r.int(-16, 16)))
    return bytes(planes[0] + planes[1] + planes[2])


def split(per_class, seed):
    """Records of per_class images of each class, shuffled (Fisher-Yates) as CIFAR's are."""
    r = Rng(seed)
    labels = [c for c in range(len(NAMES)) for _ in range(per_class)]
    for i in range(len(labels) - 1, 0, -1):
        j = r.int(0, i)
        labels[i], labels[j] = labels[j], labels[i]
    return [(c, image(c, r)) for c in labels]


def write_png(path, rgb_rows):
    """A minimal RGB PNG writer (standard library only), for the preview."""
    h, w = len(rgb_rows), len(rgb_rows[0]) // 3
    raw = b"".join(b"\0" + bytes(row) for row in rgb_rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def preview(path, records, cols=20, rows=10):
    """The first cols x rows records, 2 pixels apart, each class on its own row when possible."""
    by_class = [[px for c, px in records if c == k][:cols] for k in range(len(NAMES))]
    step = SIDE + 2
    out = [bytearray(3 * cols * step) for _ in range(rows * step)]
    for k in range(min(rows, len(NAMES))):
        for i, px in enumerate(by_class[k]):
            for y in range(SIDE):
                for x in range(SIDE):
                    o = 3 * (i * step + x)
                    for c in range(3):
                        out[k * step + y][o + c] = px[c * SIDE * SIDE + y * SIDE + x]
    write_png(path, out)


def main(argv):
    out, png = "data/cifar-10-batches-bin", None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--preview" and args:
            png = args.pop(0)
        elif a in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        else:
            out = a
    os.makedirs(out, exist_ok=True)
    train = split(TRAIN_PER_CLASS, SEED_TRAIN)
    test = split(TEST_PER_CLASS, SEED_TEST)
    for name, recs in (("data_batch_1.bin", train), ("test_batch.bin", test)):
        with open(os.path.join(out, name), "wb") as f:
            for c, px in recs:
                f.write(bytes([c]) + px)
    with open(os.path.join(out, "batches.meta.txt"), "w") as f:
        f.write("".join(n + "\n" for n in NAMES))
    if png:
        preview(png, train)
    print(f"make_sample: {len(train)} train and {len(test)} test images in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
