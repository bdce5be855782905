"""Peak device memory of a run, for the sweep's cost accounting: how much of its GPU a trial needed.

On CUDA it is ``torch.cuda.max_memory_allocated`` (the tensors' peak, reset when a run starts, so that a
process running several runs reports each one's own): what the model, its activations and the optimizer
needed, not what the caching allocator reserved. On CPU nothing is reported: the process's peak RSS
would count the Ray worker, the tokenizer and the data alongside the run, so it would not say what the
run needed, and a CPU trial's cost is its CPU-hours (``orchestrator.cost``). Each worker measures its own
device; a trial's report carries rank 0's (the ranks of a data-parallel run hold the same model).
"""

from __future__ import annotations

import torch

PEAK_GPU_MEMORY = "peak_gpu_memory_gb"
GIB = 2 ** 30


def reset_peak_memory(device: torch.device) -> None:
    """Start measuring the peak afresh on ``device`` (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, float]:
    """``{peak_gpu_memory_gb: GiB}`` on CUDA since the last reset; ``{}`` elsewhere."""
    if device.type != "cuda":
        return {}
    return {PEAK_GPU_MEMORY: torch.cuda.max_memory_allocated(device) / GIB}
