"""Checkpointed training state: what a run writes at a checkpoint to go on from it, and reads back.

Where checkpoints go (a Ray Train run's, a folder, none) and a run's outcome are
``trainables.checkpoints``; this module is what goes into a checkpoint's state file: the
optimizer and schedule (``optimization_state`` / ``load_optimization``, the same for every job)
and, for the fine-tuning loop, ``RunState`` (where the run is in its data order, its best
weights so far, the method's running statistics).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from trainables.training.data_order import ResumableSampler

if TYPE_CHECKING:
    from trainables.method_base import Method

STATE_FILE = "training_state.pt"  # the loop's: a checkpoint it goes on from (absent from an outcome checkpoint)


def write_state(folder: Path, name: str, state: dict[str, Any]) -> None:
    torch.save(state, folder / name)


def read_state(folder: Path | None, name: str, *, required: bool = False) -> dict[str, Any] | None:
    """The state file ``name`` of a checkpoint folder, on the CPU; None without a folder or (unless
    ``required``) without the file."""
    if folder is None or (not required and not (folder / name).is_file()):
        return None
    return torch.load(folder / name, map_location="cpu", weights_only=True)


def optimization_state(optimizer: torch.optim.Optimizer, scheduler) -> dict[str, Any]:
    return {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}


def load_optimization(saved: dict[str, Any], optimizer: torch.optim.Optimizer, scheduler) -> None:
    """Back to the optimizer's moments and the schedule's position of ``optimization_state``."""
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])


def cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


@dataclass
class RunState:
    """Where a run is, and what it carries between evaluations: the part of a checkpoint that is not tensors
    of the model, optimizer or schedule."""

    step: int = 0
    epoch: int = 0
    batches_done: int = 0  # of the current epoch, at the last optimizer step
    skip_batches: int = 0  # of the first epoch a resumed run goes on with
    best_value: float = -math.inf
    best_step: int = 0
    best_model: dict | None = None
    best_extras: dict[str, float] = field(default_factory=dict)  # the kept weights' other dev scores (macro-F1)
    samples: int = 0
    tokens: int = 0  # non-padding tokens of this rank's micro-batches (``pace.non_padding_tokens``)
    train_seconds: float = 0.0
    resumed_from: int = 0

    def writer(self, *, model: torch.nn.Module, optimizer, scheduler, method: Method, sampler) -> Callable[[Path], None]:
        """Fills a checkpoint folder with this state (called at once: the tensors are not copied first)."""
        state = {"step": self.step, "epoch": self.epoch, "batches_done": self.batches_done,
                 "best_value": self.best_value, "best_step": self.best_step, "best_extras": dict(self.best_extras),
                 "samples": self.samples, "tokens": self.tokens,
                 "train_seconds": self.train_seconds, "model": model.state_dict(),
                 **optimization_state(optimizer, scheduler), "method": method.state_dict(),
                 "epoch_order": sampler.epoch_state() if isinstance(sampler, ResumableSampler) else None,
                 # The best weights are the current ones when this evaluation set them.
                 "best_model": self.best_model if self.best_step != self.step else None}

        def write(folder: Path) -> None:
            write_state(folder, STATE_FILE, state)

        return write

    @classmethod
    def restore(cls, saved: dict[str, Any], *, model: torch.nn.Module, optimizer, scheduler, method: Method,
                sampler, batches_per_epoch: int) -> "RunState":
        model.load_state_dict(saved["model"])
        load_optimization(saved, optimizer, scheduler)
        method.load_state_dict(saved["method"])
        run = cls(step=saved["step"], epoch=saved["epoch"], batches_done=saved["batches_done"],
                  best_value=saved["best_value"], best_step=saved["best_step"],
                  best_extras=dict(saved.get("best_extras", {})), samples=saved["samples"],
                  tokens=saved.get("tokens", 0),  # a checkpoint written before tokens were counted: from 0
                  train_seconds=saved["train_seconds"], resumed_from=saved["step"])
        run.best_model = saved["best_model"] if saved["best_model"] is not None else cpu_copy(model.state_dict())
        if run.batches_done >= batches_per_epoch:  # the checkpoint closed its epoch
            run.epoch, run.skip_batches = run.epoch + 1, 0
        else:
            run.skip_batches = run.batches_done
            if isinstance(sampler, ResumableSampler):
                sampler.resume(saved["epoch_order"], skip_batches=run.skip_batches)
        return run
