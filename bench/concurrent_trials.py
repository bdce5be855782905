"""Several trials on one device at once: the aggregate training samples/s of k concurrent runs of our loop.

A sweep that gives each trial a fraction of a GPU (``--gpus-per-trial 0.25``) runs k trainings as k
separate processes on the GPU (Ray's workers), each with its own CUDA context. This measures exactly
that, without Ray: k OS processes (``python bench/concurrent_trials.py --child ...``), each one run of
our loop (``trainables.loop.train_and_evaluate``) on the same workload. Each child imports everything,
touches its device, says it is ready and waits for a barrier file; the parent removes the barrier when all
are ready, so they start training together.

Aggregate samples/s = the children's training samples summed, over the common wall window: from the
first child's start of training to the last child's end of its last step (the loop's ``train_began_at``
and ``train_ended_at``). That window holds all of their training, so the figure never flatters.

Memory: each child reports its peak (``torch.cuda.max_memory_allocated`` on GPU; its peak RSS,
``ru_maxrss``, on CPU). A k whose estimated need (k x (k=1's peak + a CUDA context's allowance)) exceeds
the device's free memory is skipped, with what it would need.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()
CONTEXT_GB = 1.0  # per process beyond its tensors' peak: the CUDA context (~0.5 GB) and the allocator's slack
READY_TIMEOUT_S = 300.0


@dataclass
class Concurrent:
    """What k concurrent runs did: per child its samples, window and peak memory; or why k was skipped."""

    k: int
    children: list[dict] = field(default_factory=list)
    skipped: str = ""

    @property
    def aggregate(self) -> float:
        return aggregate_samples_per_second(self.children)

    @property
    def peak_memory_gb(self) -> float:
        return max((child["peak_memory_gb"] for child in self.children), default=0.0)


def aggregate_samples_per_second(children: list[dict]) -> float:
    """Training samples of all children over the common window (first start of training to last end)."""
    if not children:
        return 0.0
    window = max(c["train_ended_at"] for c in children) - min(c["train_began_at"] for c in children)
    return sum(c["train_samples"] for c in children) / window if window > 0 else 0.0


def memory_need_gb(k: int, single_peak_gb: float, *, gpu: bool) -> float:
    """Memory k processes need, from one process's peak (on GPU plus a context's allowance each)."""
    return k * (single_peak_gb + (CONTEXT_GB if gpu else 0.0))


def free_memory_gb(gpu: bool) -> float:
    """Free memory now: the GPU's (``torch.cuda.mem_get_info``) or the machine's available RAM (Linux's
    ``MemAvailable``: free pages plus the page cache the kernel gives back; ``SC_AVPHYS_PAGES`` counts free pages
    only, so after a data build it said 15.5 GB on a machine with 22 GB available and skipped a k that fit)."""
    if gpu:
        import torch

        return torch.cuda.mem_get_info()[0] / 2 ** 30
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2 ** 20  # kB
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2 ** 30


def run_concurrent(k: int, work_dir: Path, *, model_dir: str, data_dir: str, batch: int, steps: int,
                   max_length: int, threads: int, timeout_s: float) -> Concurrent:
    """Start k children together behind a barrier; wait for them; collect their reports."""
    work_dir.mkdir(parents=True, exist_ok=True)
    barrier = work_dir / "barrier"
    barrier.touch()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}
    procs = []
    for i in range(k):
        cmd = [sys.executable, str(HERE), "--child", "--model-dir", model_dir, "--data-dir", data_dir,
               "--batch", str(batch), "--steps", str(steps), "--max-length", str(max_length),
               "--threads", str(threads), "--barrier", str(barrier), "--ready", str(work_dir / f"ready-{i}"),
               "--out", str(work_dir / f"child-{i}.json")]
        log = open(work_dir / f"child-{i}.log", "w")
        procs.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all((work_dir / f"ready-{i}").exists() for i in range(k)):
            if any(p.poll() is not None for p, _ in procs) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        barrier.unlink()  # go
        for p, _ in procs:
            p.wait(timeout=timeout_s)
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    failed = [i for i, (p, _) in enumerate(procs) if p.returncode != 0]
    if failed:
        tail = (work_dir / f"child-{failed[0]}.log").read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"{len(failed)} of {k} runs failed (rc {procs[failed[0]][0].returncode}): "
                           + " | ".join(tail))
    return Concurrent(k, [json.loads((work_dir / f"child-{i}.json").read_text()) for i in range(k)])


def _child(args: argparse.Namespace) -> None:
    """One training run: ready, wait at the barrier, train, write what it measured."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(HERE.parent))
    import torch

    torch.set_num_threads(args.threads)
    from workloads import ours  # noqa: E402  (after the path set-up)

    gpu = torch.cuda.is_available()
    if gpu:
        torch.zeros(1, device="cuda")  # the CUDA context before the barrier, not inside the window
    Path(args.ready).touch()
    while Path(args.barrier).exists():
        time.sleep(0.005)
    final = ours(args.model_dir, args.data_dir, args.batch, args.steps, args.max_length)
    peak = final.get("peak_gpu_memory_gb") if gpu else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    Path(args.out).write_text(json.dumps({
        "train_samples": final["train_samples"], "train_samples_per_second": final["train_samples_per_second"],
        "train_began_at": final["train_began_at"], "train_ended_at": final["train_ended_at"],
        "peak_memory_gb": float(peak or 0.0)}))


def main() -> None:
    parser = argparse.ArgumentParser(description="one child of bench/gpu_report.py's concurrent-trials section")
    parser.add_argument("--child", action="store_true", required=True)
    for name in ("--model-dir", "--data-dir", "--barrier", "--ready", "--out"):
        parser.add_argument(name, required=True)
    for name in ("--batch", "--steps", "--max-length", "--threads"):
        parser.add_argument(name, type=int, required=True)
    _child(parser.parse_args())


if __name__ == "__main__":
    main()
