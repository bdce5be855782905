"""Training throughput of our loop vs a plain Hugging Face ``Trainer``, same model, data and batch.

Run: ``python bench/trainer_throughput.py`` (CPU: a small BERT; GPU: an mBERT-size BERT with
random weights). Both trainers run in this one process on the same tokenized data, alternating,
and the figures are printed as ratios against the plain ``Trainer``:

- ``hf_plain``: ``Trainer`` with default ``TrainingArguments`` (what most fine-tuning scripts run);
- ``hf_tuned``: ``Trainer`` with bf16 (on GPU) and length grouping, for a fair second reference;
- ``ours``: ``trainables.loop`` (bf16 autocast where supported, SDPA attention, fused AdamW on CUDA,
  length-grouped batches, dynamic padding).

Samples/s count training only (our loop keeps evaluation out of its timer; the Trainer's
``train_samples_per_second`` has no evaluation in it here).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workloads import SIZES, hf_trainer, make_data, make_model_dir, ours  # noqa: E402


def main() -> None:
    gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="mbert" if gpu else "small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200 if gpu else 30)
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="xlt-bench-"))
    model_dir = make_model_dir(root, args.size)
    data_dir = make_data(root, SIZES[args.size][4], n_train=args.batch * args.steps, max_length=args.max_length)
    device = torch.cuda.get_device_name() if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device {device}; model {args.size} {SIZES[args.size][:2]}; batch {args.batch}; {args.steps} steps; "
          f"torch {torch.__version__}", flush=True)

    runs: dict[str, list[float]] = {"hf_plain": [], "hf_tuned": [], "ours": []}
    for round_ in range(args.repeats):
        started = time.perf_counter()
        runs["hf_plain"].append(hf_trainer(model_dir, data_dir, args.batch, args.steps, tuned=False))
        runs["hf_tuned"].append(hf_trainer(model_dir, data_dir, args.batch, args.steps, tuned=True))
        runs["ours"].append(ours(model_dir, data_dir, args.batch, args.steps, args.max_length)
                            ["train_samples_per_second"])
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in runs.items())
              + f" ({time.perf_counter() - started:.0f} s)", flush=True)
    median = {k: statistics.median(v) for k, v in runs.items()}
    print(json.dumps({
        "device": device, "size": args.size, "batch": args.batch, "steps": args.steps,
        "samples_per_second_median": {k: round(v, 2) for k, v in median.items()},
        "ratio_ours_vs_hf_plain": round(median["ours"] / median["hf_plain"], 3),
        "ratio_ours_vs_hf_tuned": round(median["ours"] / median["hf_tuned"], 3),
    }, indent=2))


if __name__ == "__main__":
    main()
