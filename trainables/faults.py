"""Fault injection for the fault-tolerance tests: a run told to fail fails the way a real fault would.

Set in the environment of the sweep (``orchestrator.sweep`` passes ``XLT_SWEEP_FAULT_*`` variables
on to every Ray worker). Nothing here is read unless the variable is set.
"""

from __future__ import annotations

import os

NAN_LOSS = "XLT_SWEEP_FAULT_NAN_LOSS"  # "<seed>:<step>": that seed's training loss is NaN from that optimizer step on
# "<step>:<seconds>": every run holds that long right after its evaluation (and checkpoint) at that step, as a
# long stretch of training would; a test removes a node while runs are there. A run resumed from that
# step does not hold again.
PAUSE = "XLT_SWEEP_FAULT_PAUSE"
# "<seed>:<step>": the run with that seed finds the sweep's storage full from that optimizer step on: each of its
# checkpoint uploads at or after it raises what pyarrow's copy raises on a full disk (``trainables.checkpoints``),
# in every attempt, as a disk that stays full would. Without the variable the same run goes on normally (the disk
# was freed): the test of a sweep that fills its storage and is resumed.
STORAGE_FULL = "XLT_SWEEP_FAULT_ENOSPC"
PREFIX = "XLT_SWEEP_FAULT_"


def _seed_step(variable: str, seed: int, example: str) -> int | None:
    """The step of a ``<seed>:<step>`` fault variable when it names ``seed``; None when unset or another seed."""
    spec = os.environ.get(variable, "").strip()
    if not spec:
        return None
    try:
        wanted, step = (int(part) for part in spec.split(":"))
    except ValueError:
        raise ValueError(f"{variable}={spec!r}: expected <seed>:<step>, e.g. {example}") from None
    return step if wanted == seed else None


def nan_loss_step(seed: int) -> int | None:
    """The optimizer step from which the loss of a run with ``seed`` is made NaN, if one is set."""
    return _seed_step(NAN_LOSS, seed, "3:10")


def pause_after_step() -> tuple[int, float] | None:
    """(step, seconds) of the hold after that step's evaluation, if one is set."""
    spec = os.environ.get(PAUSE, "").strip()
    if not spec:
        return None
    try:
        step, seconds = spec.split(":")
        return int(step), float(seconds)
    except ValueError:
        raise ValueError(f"{PAUSE}={spec!r}: expected <step>:<seconds>, e.g. 10:15") from None


def storage_full_step(seed: int) -> int | None:
    """The optimizer step from which a run with ``seed`` finds its storage full, if one is set."""
    return _seed_step(STORAGE_FULL, seed, "2:10")


def from_environment() -> dict[str, str]:
    """The fault variables set here, to pass on to Ray workers."""
    return {key: value for key, value in os.environ.items() if key.startswith(PREFIX)}
