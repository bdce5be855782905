"""SALT candidate-scan throughput: the Ray Data pipeline vs a plain loop in one process.

Run: ``python bench/salt_scan.py`` (CPU: a small BERT; GPU: an mBERT-size BERT, random weights,
119,547-token vocabulary). Both scan the same XNLI-shaped training pairs with the same
``CandidateScanner`` (same model, languages, k, max length, batch size), in this one process run:

- ``plain``: one scanner, batches in a Python loop (what a script without Ray would do);
- ``ray_data``: ``map_batches`` over a pool of scanner actors (``--concurrency`` actors with
  ``--gpus-per-actor`` GPUs each; fractional GPUs put several actors on one GPU so that one
  actor's tokenisation and alignment overlaps another's MLM pass), writing Parquet.

Throughput is sentences per second of wall time, start-up included (actors loading the model),
as a sweep pays it. Each variant runs ``--rounds`` times, alternating; medians are reported,
and the figure that matters is the ratio ``ray_data / plain``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainables.methods.salt.scan import scan_in_process, scan_with_ray_data  # noqa: E402
from workloads import LANGUAGE_VOCAB, SCAN_VOCAB, scan_workload  # noqa: E402


def main() -> None:
    gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SCAN_VOCAB), default="mbert" if gpu else "small")
    parser.add_argument("--examples", type=int, default=24_000 if gpu else 1_200, help="training pairs to scan")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per batch (both variants)")
    parser.add_argument("--languages", type=int, default=4, help="languages scanned (en + 3 targets)")
    parser.add_argument("--top-k", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4 if gpu else 2, help="Ray Data actors")
    parser.add_argument("--gpus-per-actor", type=float, default=0.25 if gpu else 0.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import logging

    import ray
    import ray.data
    import transformers

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    transformers.utils.logging.disable_progress_bar()
    root = Path(tempfile.mkdtemp(prefix="salt-scan-bench-"))
    try:
        plan, train, sentences = scan_workload(root, args.size, args.examples, args.languages, args.top_k)

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        timings: dict[str, list[float]] = {"plain": [], "ray_data": []}
        for round_ in range(args.rounds):
            started = time.perf_counter()
            scan_in_process(plan, train, batch_size=args.batch_size)
            timings["plain"].append(sentences / (time.perf_counter() - started))
            out = root / f"ray-{round_}"
            started = time.perf_counter()
            scan_with_ray_data(plan, train, out / "parts", batch_size=args.batch_size,
                               gpus_per_actor=args.gpus_per_actor, concurrency=args.concurrency)
            timings["ray_data"].append(sentences / (time.perf_counter() - started))
            shutil.rmtree(out, ignore_errors=True)
            print(f"round {round_ + 1}: plain {timings['plain'][-1]:.1f}, ray_data {timings['ray_data'][-1]:.1f} "
                  "sentences/s", flush=True)
        ray.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    plain, ours = statistics.median(timings["plain"]), statistics.median(timings["ray_data"])
    device = torch.cuda.get_device_name() if gpu else f"CPU ({os.cpu_count()} cores)"
    print(f"\nSALT candidate scan, {args.size} BERT (vocabulary {SCAN_VOCAB[args.size]}), {args.examples} pairs = "
          f"{sentences} sentences, {args.languages} languages x {LANGUAGE_VOCAB} tokens, top-{args.top_k}, "
          f"batch {args.batch_size}, on {device}")
    print(f"| scan | sentences/s (median of {args.rounds}) |\n| --- | --- |")
    print(f"| plain loop, one process | {plain:.1f} |")
    print(f"| Ray Data, {args.concurrency} actors x {args.gpus_per_actor:g} GPU | {ours:.1f} |")
    print(f"\nray_data / plain = {ours / plain:.2f}x")
    print(json.dumps({"plain": plain, "ray_data": ours, "ratio": ours / plain, "device": device, **vars(args)}))


if __name__ == "__main__":
    main()
