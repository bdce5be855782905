"""Peak memory of a run, for the sweep's cost accounting: how much of its GPU and of its host a trial needed.

Device: on CUDA ``torch.cuda.max_memory_allocated`` (the tensors' peak, reset when a run starts, so that
a process running several runs reports each one's own): what the model, its activations and the optimizer
needed, not what the caching allocator reserved. Rank 0's is reported (the ranks of a data-parallel run hold
the same model, each on its own device). Nothing on CPU.

Host: ``peak_host_memory_gb``, the resident-set high-water mark (``getrusage(RUSAGE_SELF).ru_maxrss``) of
each of the run's Ray Train worker processes, summed over the ranks: what the run's workers held in host
memory at their peaks, the Ray worker itself, the tokenizer and the data alongside the model included. The
issue it answers: the workers (3-6 GB each on a real encoder) are Ray's processes, not the sweep's children,
so ``time -v`` on the sweep showed ~1 GB. It is the process's peak since it started, which cannot be reset;
a Train worker is a fresh process for each run, so it is the run's own (plus the worker's start-up, a few
hundred MB of imports). Not counted: the trial's driver and its Train controller, which hold no data or model.
"""

from __future__ import annotations

import resource
import sys

import torch

from trainables.training.distributed import DistContext, sum_over_ranks

PEAK_GPU_MEMORY = "peak_gpu_memory_gb"
PEAK_HOST_MEMORY = "peak_host_memory_gb"
PEAK_MEMORY_METRICS = (PEAK_HOST_MEMORY, PEAK_GPU_MEMORY)
"""A run's peak-memory metrics: peaks, so a trial of several runs (a recipe's phases, a search trial's seeds)
takes the largest of its runs' for each, not their mean."""
GIB = 2 ** 30
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux


def reset_peak_memory(device: torch.device) -> None:
    """Start measuring the peak afresh on ``device`` (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, float]:
    """``{peak_gpu_memory_gb: GiB}`` on CUDA since the last reset; ``{}`` elsewhere."""
    if device.type != "cuda":
        return {}
    return {PEAK_GPU_MEMORY: torch.cuda.max_memory_allocated(device) / GIB}


def process_peak_rss_bytes() -> int:
    """This process's resident-set high-water mark since it started, in bytes."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * _MAXRSS_UNIT


def peak_host_memory(ctx: DistContext) -> dict[str, float]:
    """``{peak_host_memory_gb: GiB}``: every rank's process peak, summed over the ranks (a collective: every
    rank calls it)."""
    return {PEAK_HOST_MEMORY: sum_over_ranks(process_peak_rss_bytes(), ctx) / GIB}


def largest_peaks(*reports: dict) -> dict[str, float]:
    """The largest value of each peak-memory metric over ``reports`` (the runs of one trial); absent ones left out."""
    out: dict[str, float] = {}
    for key in PEAK_MEMORY_METRICS:
        values = [report[key] for report in reports if isinstance(report.get(key), (int, float))]
        if values:
            out[key] = float(max(values))
    return out
