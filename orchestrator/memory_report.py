"""The sweep's peak memory: per arm, the largest any of its trials needed, on the parent run and under the table.

Beside what the sweep cost (``orchestrator.cost_report``), what it needed of a machine: each trial's final
report carries its workers' peak host memory (``peak_host_memory_gb``: every worker process's resident-set
high-water mark, summed over its ranks) and, on a GPU, its peak device memory (``peak_gpu_memory_gb``, rank
0's), both of its largest run (``trainables.training.memory``); the MLflow callback logs them on the trial's run.
Here the largest per arm over every stage (a tuned arm's search trials count towards it) is what a user sizes
a machine by: the largest, not the mean, since a machine that fits the mean fails the largest trial.

Read from MLflow like the cost: every trial run under the parent, failed ones too where they reported their
final metrics; not the copies of a twin's run (``reused_from``: nothing ran for them) nor the seed runs nested
under a search trial's run (the trial's own run has the largest of its seeds).

Parent metrics: ``memory.arm.<arm>.host_gb`` and, where runs trained on GPUs, ``memory.arm.<arm>.gpu_gb``
(GiB). Legend line: ``Peak memory per arm (largest trial, GiB): baseline host 3.1, GPU 7.9; salt host 4.2, GPU 9.5``.
"""

from __future__ import annotations

import math

import pandas as pd

from orchestrator.reuse import REUSED_FROM
from orchestrator.tracking import PARENT_TAG, SweepTracker
from trainables.training.memory import PEAK_GPU_MEMORY, PEAK_HOST_MEMORY

# metric of a trial run -> (name in the parent's metrics, label in the legend line)
MEMORY_METRICS = {PEAK_HOST_MEMORY: ("host_gb", "host"), PEAK_GPU_MEMORY: ("gpu_gb", "GPU")}


def trial_memory_frame(tracker: SweepTracker) -> pd.DataFrame:
    """One row per trial run under the parent (``arm`` and, where it logged them, its peak-memory metrics)."""
    query = f"tags.`{PARENT_TAG}` = '{tracker.parent_run_id}'"
    runs = tracker.client.search_runs([tracker.experiment_id], filter_string=query, max_results=10000)
    rows = [{"arm": run.data.tags.get("arm", ""),
             **{key: run.data.metrics[key] for key in MEMORY_METRICS if key in run.data.metrics}}
            for run in runs if "stage" in run.data.tags and REUSED_FROM not in run.data.tags]
    return pd.DataFrame(rows, columns=["arm", *MEMORY_METRICS])


def largest_per_arm(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """arm -> {metric: the largest of its trials'} for the peak-memory metrics any of its trials logged."""
    out: dict[str, dict[str, float]] = {}
    for arm, rows in frame.groupby("arm", sort=True):
        largest = {key: float(rows[key].max()) for key in MEMORY_METRICS
                   if key in rows and rows[key].notna().any()}
        if largest:
            out[str(arm)] = largest
    return out


def memory_metrics(largest: dict[str, dict[str, float]]) -> dict[str, float]:
    """The parent run's metrics: ``memory.arm.<arm>.host_gb``, ``memory.arm.<arm>.gpu_gb``."""
    return {f"memory.arm.{arm}.{MEMORY_METRICS[key][0]}": value
            for arm, peaks in largest.items() for key, value in peaks.items()}


def memory_line(largest: dict[str, dict[str, float]]) -> str:
    """The legend's line (empty when no trial logged its memory), arms by name."""
    if not largest:
        return ""
    arms = "; ".join(f"{arm} " + ", ".join(f"{MEMORY_METRICS[key][1]} {_gib(peaks[key])}"
                                          for key in MEMORY_METRICS if key in peaks)
                     for arm, peaks in sorted(largest.items()))
    return f"Peak memory per arm (largest trial, GiB): {arms}"


def log_sweep_memory(tracker: SweepTracker) -> list[str]:
    """The largest peaks per arm, logged on the parent run; its line for the table's legend ([] before any trial
    reported its memory)."""
    largest = largest_per_arm(trial_memory_frame(tracker))
    if largest:
        tracker.log_metrics(memory_metrics(largest))
    line = memory_line(largest)
    return [line] if line else []


def _gib(value: float) -> str:
    """Two decimals below 10 GiB (a smoke trial's workers hold about 1), one above."""
    return f"{value:.2f}" if math.isfinite(value) and value < 10 else f"{value:.1f}"
