"""The NaN guard: the training loss since the last report, and the check that it is still finite.

A loss that is no longer finite does not come back: the run fails with ``TrainingDiverged`` (a
``FloatingPointError``) and one line saying where, rather than training on to garbage. The sum
stays on the device between reports (no synchronisation per step); where the run is distributed
it is summed over ranks first, so every rank decides alike.
"""

from __future__ import annotations

import math

import torch


class TrainingDiverged(FloatingPointError):
    """The loss is no longer finite: the run cannot recover, and running it again would not help."""


class RunningLoss:
    """The losses added since the last ``reset``, summed on the device, and how many were added here."""

    def __init__(self, device: torch.device):
        self.device = device
        self.total = torch.zeros((), device=device)
        self.count = 0

    def add(self, loss: torch.Tensor) -> None:
        self.total += loss.detach().float()
        self.count += 1

    def mean(self, distributed: bool) -> float:
        """The mean of every loss added on every rank."""
        totals = torch.stack([self.total, torch.tensor(float(self.count), device=self.device)])
        if distributed:
            torch.distributed.all_reduce(totals)
        return (totals[0] / totals[1].clamp(min=1)).item()

    def sum_over_ranks(self, distributed: bool) -> float:
        """The sum of every rank's total (each rank adds its share of a global value)."""
        if distributed:
            torch.distributed.all_reduce(self.total)
        return self.total.item()

    def reset(self) -> None:
        self.total.zero_()
        self.count = 0


def ensure_finite(loss: float, *, name: str, where: str, learning_rate: float) -> float:
    """``loss``, or ``TrainingDiverged`` when it is NaN or infinite (``where``: e.g. "at step 20")."""
    if not math.isfinite(loss):
        raise TrainingDiverged(f"{name} became {loss} {where} (lr {learning_rate:g}); the run cannot recover")
    return loss
