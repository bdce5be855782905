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

from trainables.data import load_raw  # noqa: E402
from trainables.methods.salt.scan import ScanPlan, scan_in_process, scan_with_ray_data  # noqa: E402
from smoke import build_smoke_data, smoke_vocab  # noqa: E402
from trainables.tasks import get_task  # noqa: E402

SIZES = {
    # name: (hidden, layers, heads, intermediate, vocab)
    "small": (256, 4, 4, 1024, 30000),
    "mbert": (768, 12, 12, 3072, 119547),
}
LANGUAGE_VOCAB = 15_000  # about what 10,000 words (plus capitalised forms) give per language in mBERT


def make_model_dir(root: Path, size: str) -> str:
    """A random BERT MLM and a WordPiece tokenizer whose vocabulary is as large as the model's."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    hidden, layers, heads, inter, vocab_size = SIZES[size]
    vocab = dict(smoke_vocab(0))
    for index in range(len(vocab), vocab_size):  # filler word tokens up to the model's size
        vocab[f"w{index}"] = index
    out = root / f"scan-bench-{size}"
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=False, strip_accents=False)
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                               num_attention_heads=heads, intermediate_size=inter,
                               max_position_embeddings=512)).save_pretrained(out)
    return str(out)


def main() -> None:
    gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="mbert" if gpu else "small")
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
        task = get_task("xnli")
        model_dir = make_model_dir(root, args.size)
        raw = load_raw(task, str(build_smoke_data(task, root)), languages=["en"], eval_splits=())["train_en"]
        copies = -(-args.examples // len(raw))
        from datasets import concatenate_datasets

        train = concatenate_datasets([raw] * copies).select(range(args.examples))
        generator = torch.Generator().manual_seed(0)
        vocab_size = SIZES[args.size][4]
        vocab = {f"l{i}": tuple(sorted(torch.randperm(vocab_size - 10, generator=generator)[:LANGUAGE_VOCAB].add(5).tolist()))
                 for i in range(args.languages)}
        plan = ScanPlan(model_dir, task.text_fields, 128, args.top_k, vocab, "bench", "bench")
        sentences = len(train) * len(task.text_fields)

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
    print(f"\nSALT candidate scan, {args.size} BERT (vocabulary {SIZES[args.size][4]}), {args.examples} pairs = "
          f"{sentences} sentences, {args.languages} languages x {LANGUAGE_VOCAB} tokens, top-{args.top_k}, "
          f"batch {args.batch_size}, on {device}")
    print(f"| scan | sentences/s (median of {args.rounds}) |\n| --- | --- |")
    print(f"| plain loop, one process | {plain:.1f} |")
    print(f"| Ray Data, {args.concurrency} actors x {args.gpus_per_actor:g} GPU | {ours:.1f} |")
    print(f"\nray_data / plain = {ours / plain:.2f}x")
    print(json.dumps({"plain": plain, "ray_data": ours, "ratio": ours / plain, "device": device, **vars(args)}))


if __name__ == "__main__":
    main()
