"""Fault injection for the fault-tolerance tests: a run told to fail fails the way a real fault would.

Set in the environment of the sweep (``orchestrator.sweep`` passes ``XLT_SWEEP_FAULT_*`` variables
on to every Ray worker). Nothing here is read unless the variable is set.
"""

from __future__ import annotations

import os

NAN_LOSS = "XLT_SWEEP_FAULT_NAN_LOSS"  # "<seed>:<step>": that seed's training loss is NaN from that optimizer step on
PREFIX = "XLT_SWEEP_FAULT_"


def nan_loss_step(seed: int) -> int | None:
    """The optimizer step from which the loss of a run with ``seed`` is made NaN, if one is set."""
    spec = os.environ.get(NAN_LOSS, "").strip()
    if not spec:
        return None
    try:
        wanted, step = (int(part) for part in spec.split(":"))
    except ValueError:
        raise ValueError(f"{NAN_LOSS}={spec!r}: expected <seed>:<step>, e.g. 3:10") from None
    return step if wanted == seed else None


def from_environment() -> dict[str, str]:
    """The fault variables set here, to pass on to Ray workers."""
    return {key: value for key, value in os.environ.items() if key.startswith(PREFIX)}
