"""One rank per node: a gloo all_reduce across the nodes proves they reach each other over TCP."""

import os
import socket

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
print(
    f"ALLREDUCE rank={rank} world={world} sum={t.item():g} node={os.environ.get('SLURMD_NODENAME')} "
    f"host={socket.gethostname()}",
    flush=True,
)
dist.destroy_process_group()
