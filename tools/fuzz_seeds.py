"""Seeds for fuzz_data that are not committed (tools/fuzz.sh): small JPEGs made by PIL
(baseline, progressive, greyscale, CMYK) and an image tree in a zip, a tar, a tar.gz and a
tar.xz, written into the corpus folder given.

    /usr/bin/python3 tools/fuzz_seeds.py CORPUS
"""
import io
import os
import sys
import tarfile
import zipfile

import numpy as np
from PIL import Image

out = sys.argv[1]
rng = np.random.default_rng(0)
a = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
jpegs = {}
for name, im, kw in (("base", Image.fromarray(a), {"quality": 75}),
                     ("prog", Image.fromarray(a), {"quality": 60, "progressive": True}),
                     ("grey", Image.fromarray(a[:, :, 0]), {"quality": 90}),
                     ("cmyk", Image.fromarray(a).convert("CMYK"), {"quality": 90})):
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    jpegs[name] = b.getvalue()
    open(os.path.join(out, f"seed-{name}.jpg"), "wb").write(b.getvalue())
png = io.BytesIO()
Image.fromarray(a).save(png, "PNG")
members = {"train/cat/a.jpg": jpegs["base"], "train/dog/b.png": png.getvalue(), "test/cat/c.jpg": jpegs["grey"],
           "test/dog/sub/d.jpg": jpegs["prog"]}
with zipfile.ZipFile(os.path.join(out, "seed-tree.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for k, v in members.items():
        z.writestr(k, v)
for mode, ext in (("w", "tar"), ("w:gz", "tar.gz"), ("w:xz", "tar.xz")):
    with tarfile.open(os.path.join(out, f"seed-tree.{ext}"), mode) as t:
        for k, v in members.items():
            info = tarfile.TarInfo("top/" + k)
            info.size = len(v)
            t.addfile(info, io.BytesIO(v))
