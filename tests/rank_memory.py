"""What each rank of ``tests/test_memory.py``'s two-process run does, in a module that imports only torch and the
memory helpers: ``torch.multiprocessing.spawn`` imports the function's module in every child, and the test
module's imports (Ray, MLflow) would cost each child a minute on a small machine."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from trainables.training.distributed import DistContext
from trainables.training.memory import peak_host_memory, process_peak_rss_bytes

MIB = 2 ** 20


def current_rss_bytes() -> int:
    """This process's resident set now (Linux), to which a freshly touched buffer adds its size."""
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def touch(nbytes: int) -> torch.Tensor:
    """A buffer of ``nbytes`` with every page written (an untouched allocation is not resident)."""
    return torch.ones(nbytes // 4, dtype=torch.float32)


def peak_on_rank(rank: int, world_size: int, port: int, out: str) -> None:
    """Rank r touches (r + 1) x 128 MiB, then writes (RSS before, its own peak, the run's summed peak in GiB)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        before = current_rss_bytes()
        buffer = touch((rank + 1) * 128 * MIB)
        own = process_peak_rss_bytes()
        total = peak_host_memory(DistContext(rank=rank, world_size=world_size))["peak_host_memory_gb"]
        Path(out, f"rank{rank}").write_bytes(pickle.dumps((before, own, total)))
        del buffer
    finally:
        dist.destroy_process_group()
