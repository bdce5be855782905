"""What a trial cost: the device-hours it held, and how fast it trained.

A trial's cost is its wall time times the devices it held, in hours: GPU-hours where its training runs
hold GPUs, CPU-hours (wall time x CPUs held) on a CPU-only cluster, named so (``gpu_hours`` /
``cpu_hours``), never mixed into one number. The devices are what ``TrainLaunch`` asks for per run
(workers x GPUs, or CPUs, per worker) times the runs a trial holds at once: K for a search trial over K
seeds (``orchestrator.seed_group``), else 1; a recipe of several phases (self-training: teachers, the
pseudo-labelling pass, students) holds its resources for every phase, one after another.

The wall time is Tune's ``time_total_s`` of the trial's last result: from its driver's start to its last
report, so it covers every phase of a recipe and every seed of a group, the placement of its workers
included. It is an upper bound for a seed group whose seeds end apart (a finished seed's workers go back
early) and counts the last attempt only of a trial whose driver Tune started again.

The MLflow callback (``orchestrator.tracking``) logs these on each trial's run when it ends, with the
trial's non-padding tokens per second, which follows from the counts the loop reports
(``trainables.training.pace``); the sweep's totals are ``orchestrator.cost_report``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from trainables.training.pace import SAMPLES_PER_SECOND, TOKENS_PER_SECOND, TRAIN_SAMPLES, TRAIN_TOKENS, tokens_per_second

if TYPE_CHECKING:
    from orchestrator.trial import TrainLaunch

GPU, CPU = "gpu", "cpu"
HOURS_METRICS = (f"{GPU}_hours", f"{CPU}_hours")
"""A trial run's cost metric, one of these (``DeviceShare.metric``)."""
WALL_SECONDS = "time_total_s"  # Tune's: the trial's driver, start to last report
DEVICES_HELD = "devices_held"  # GPUs (or CPUs) the trial held: per run x runs at once
TRIAL_SECONDS = "trial_seconds"  # the wall time its device-hours are of


@dataclass(frozen=True)
class DeviceShare:
    """What one training run of a sweep holds: ``per_run`` GPUs (``kind`` "gpu") or, with none, CPUs."""

    kind: str
    per_run: float

    @classmethod
    def of(cls, launch: TrainLaunch) -> "DeviceShare":
        """The devices ``launch`` asks for per run: its workers' GPUs, or their CPUs where they ask for no GPU."""
        if launch.gpus_per_worker > 0:
            return cls(GPU, launch.num_workers * launch.gpus_per_worker)
        return cls(CPU, launch.num_workers * launch.cpus_per_worker)

    @property
    def metric(self) -> str:
        """``gpu_hours`` or ``cpu_hours``."""
        return f"{self.kind}_hours"


def device_hours(seconds: float, devices: float) -> float:
    """Wall seconds x devices held, in hours."""
    return seconds * devices / 3600.0


def trial_cost(result: Mapping[str, Any], share: DeviceShare, *, runs_at_once: int = 1) -> dict[str, float]:
    """The metrics a trial's run gets when it ends, from its last result: ``gpu_hours`` (or ``cpu_hours``),
    ``devices_held``, ``trial_seconds``, and ``train_tokens_per_second`` where the result has the loop's
    counts. Empty of the cost where the trial reported nothing (no wall time to measure)."""
    metrics: dict[str, float] = {}
    seconds = result.get(WALL_SECONDS)
    if _is_number(seconds):
        devices = share.per_run * max(1, runs_at_once)
        metrics.update({share.metric: device_hours(seconds, devices), DEVICES_HELD: devices,
                        TRIAL_SECONDS: float(seconds)})
    rate, samples, tokens = (result.get(key) for key in (SAMPLES_PER_SECOND, TRAIN_SAMPLES, TRAIN_TOKENS))
    if all(_is_number(value) for value in (rate, samples, tokens)):
        metrics[TOKENS_PER_SECOND] = tokens_per_second(rate, samples, tokens)
    return metrics


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
