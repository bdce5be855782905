"""Where a process sits in a (possibly distributed) run, and the model inside DDP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class DistContext:
    """Where this process sits in the (possibly distributed) run."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    prepare_model: Callable[[torch.nn.Module], torch.nn.Module] | None = None

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def local_context() -> DistContext:
    """A single-process context on the best local device (tests, benchmarks)."""
    return DistContext(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP wrapper (``model.module``), or the model itself."""
    return model.module if hasattr(model, "module") else model


def sum_over_ranks(value: int, ctx: DistContext) -> int:
    """``value`` summed over every rank of the run (a collective: every rank calls it); itself on one process."""
    if not ctx.is_distributed:
        return value
    total = torch.tensor([value], dtype=torch.int64, device=ctx.device)
    torch.distributed.all_reduce(total)
    return int(total.item())
