"""torchrun26.py - torch 2.6's torchrun, as Debian 13 ships it, with one packaging bug worked
around: python3-torch 2.6 is built without libuv, yet every TCPStore its rendezvous makes asks
for libuv (the C++ default), so plain `torchrun` fails with "use_libuv was requested but
PyTorch was build without libuv support". Here TCPStore defaults to use_libuv=False; the
launcher is otherwise torch's own (torch.distributed.run.main). Used by tests/test_dist.py."""
import sys

import torch.distributed as dist
import torch.distributed.elastic.rendezvous.c10d_rendezvous_backend as c10d_backend
import torch.distributed.elastic.rendezvous.static_tcp_rendezvous as static_rdzv
from torch.distributed.run import main


class TCPStore(dist.TCPStore):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("use_libuv", False)
        super().__init__(*args, **kwargs)


dist.TCPStore = c10d_backend.TCPStore = static_rdzv.TCPStore = TCPStore
if __name__ == "__main__":
    sys.argv[0] = "torchrun"
    sys.exit(main())
