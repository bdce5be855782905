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

import numpy as np
import torch
from datasets import Dataset, DatasetDict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainables.config import TrainConfig  # noqa: E402
from trainables.loop import train_and_evaluate  # noqa: E402
from smoke import build_smoke_model  # noqa: E402

SIZES = {
    # name: (hidden, layers, heads, intermediate, vocab)
    "small": (256, 4, 4, 1024, 8000),
    "mbert": (768, 12, 12, 3072, 119547),
}


def make_model_dir(root: Path, size: str) -> str:
    """A randomly initialised BERT of ``size`` plus a tokenizer (only its padding is used)."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    hidden, layers, heads, inter, vocab = SIZES[size]
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                       num_attention_heads=heads, intermediate_size=inter,
                                       max_position_embeddings=512))
    out = root / f"bench-{size}"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(build_smoke_model(root)).save_pretrained(out)
    return str(out)


def make_data(root: Path, vocab: int, n_train: int, max_length: int, seed: int = 0) -> str:
    """Tokenized XNLI-shaped data: lengths spread like XNLI pairs under mBERT (mean ~50, max 128)."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> Dataset:
        lengths = np.clip(rng.gamma(shape=4.0, scale=12.5, size=n).astype(int) + 8, 8, max_length)
        ids = [[101] + rng.integers(1000, vocab, size=k - 2).tolist() + [102] for k in lengths]
        return Dataset.from_dict({
            "input_ids": ids,
            "attention_mask": [[1] * len(x) for x in ids],
            "token_type_ids": [[0] * len(x) for x in ids],
            "labels": rng.integers(0, 3, size=n).tolist(),
            "length": lengths.tolist(),
        })

    parts = {"train_en": split(n_train), "validation_en": split(64), "test_en": split(64)}
    path = root / "bench-data"
    DatasetDict(parts).save_to_disk(str(path))
    return str(path)


def ours(model_dir: str, data_dir: str, batch: int, steps: int, max_length: int) -> float:
    cfg = TrainConfig(task="xnli", model=model_dir, tokenized_path=data_dir, languages=("en",), seed=1,
                      learning_rate=2e-5, max_steps=steps, per_device_batch_size=batch, grad_accum_steps=1,
                      max_length=max_length, eval_every_steps=10 ** 9, eval_batch_size=64)
    return train_and_evaluate(cfg, report=lambda _: None)["train_samples_per_second"]


def hf_trainer(model_dir: str, data_dir: str, batch: int, steps: int, tuned: bool) -> float:
    from datasets import load_from_disk
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments)

    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=3)
    train = load_from_disk(data_dir)["train_en"]
    gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, max_steps=steps,
                                 learning_rate=2e-5, report_to=[], save_strategy="no", eval_strategy="no",
                                 logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=1,
                                 bf16=tuned and gpu_bf16,
                                 train_sampling_strategy="group_by_length" if tuned else "random")
        trainer = Trainer(model=model, args=args, train_dataset=train,
                          data_collator=DataCollatorWithPadding(AutoTokenizer.from_pretrained(model_dir)))
        return trainer.train().metrics["train_samples_per_second"]


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
        runs["ours"].append(ours(model_dir, data_dir, args.batch, args.steps, args.max_length))
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
