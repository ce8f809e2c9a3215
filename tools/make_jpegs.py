"""Writes the image folder make bench decodes: DIR/train/<class>/<i>.jpg, N JPEGs in 10
classes, photo-like 500x375 pictures (smooth gradients and noise) at quality 90, made by PIL.

    /usr/bin/python3 tools/make_jpegs.py DIR N
"""
import os
import sys

import numpy as np
from PIL import Image

root, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
y, x = np.mgrid[0:375, 0:500]
for i in range(n):
    d = os.path.join(root, "train", f"class{i % 10}")
    os.makedirs(d, exist_ok=True)
    a = np.stack([(x + 3 * i) % 256, (y * 2 + i) % 256, (x + y) % 256], -1).astype(np.float64)
    a += 30 * np.sin(x / (7.0 + i % 5))[..., None] + rng.normal(0, 12, a.shape)
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(os.path.join(d, f"{i}.jpg"), quality=90)
