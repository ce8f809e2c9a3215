"""The Python side of make bench's image row (tools/bench.sh): torchvision's ImageFolder with
Resize((SIZE, SIZE)), ToTensor and ImageNet's Normalize, through a DataLoader (batches of 64,
WORKERS worker processes; 0 loads in the main process, as vggtl loads in one thread), timed
from the dataset's creation to the last batch.

    /usr/bin/python3 tools/bench_images.py DATA SIZE WORKERS
"""
import json
import sys
import time

import torch
import torchvision
from torchvision import transforms

root, size, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
t0 = time.monotonic()
tf = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(),
                         transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
ds = torchvision.datasets.ImageFolder(root + "/train", transform=tf)
total, check = 0, 0.0
for x, y in torch.utils.data.DataLoader(ds, batch_size=64, num_workers=workers):
    total += len(x)
    check += float(x[0, 0, 0, 0])
secs = time.monotonic() - t0
print(json.dumps({"images": total, "seconds": round(secs, 4), "images_per_s": round(total / secs, 2), "check": check}))
