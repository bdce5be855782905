"""BTF MLM throughput: our Ray Train job vs a plain Hugging Face ``Trainer``, same model, corpus and batch.

Run: ``python bench/btf_mlm.py`` (CPU: the smoke model, a 2-layer BERT with a 2,000-token
vocabulary; GPU: an mBERT-size BERT with random weights and mBERT's 119,547-token output layer).
Both train the same MLM on the same generated bilingual corpus, in this one process run,
alternating rounds:

- ``hf``: ``Trainer`` + ``DataCollatorForLanguageModeling`` (bf16 on GPUs that support it, constant
  learning rate, no checkpoints), what a script without Ray would run;
- ``ours``: ``trainables.task_fitting.run_btf_cached`` (one Ray Train worker with all the CPUs or one GPU;
  step-seeded masking, the MLM head on masked positions only, fused AdamW on CUDA), a fresh cache
  each round, one checkpoint at the last step.

Tokens/s counts real (non-padding) tokens over training time only: the ``Trainer``'s
``train_runtime`` and the job's own timer (Ray start-up and checkpoint writing excluded; the
end-to-end seconds of the job are printed too). Medians over rounds; the figure that matters is
the ratio ``ours / hf`` (also per round: on a shared machine the load drifts between rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.sweep import WORKER_ENV  # noqa: E402
from trainables.task_fitting.mlm import BtfSettings, build_corpus, make_plan, run_btf_cached  # noqa: E402
from smoke import BASE_WORDS, build_smoke_model  # noqa: E402

SIZES = {
    # name: (hidden, layers, heads, intermediate, vocab); None: the smoke model itself
    "smoke": None,
    "small": (256, 4, 4, 1024, 30000),
    "mbert": (768, 12, 12, 3072, 119547),
}


def make_model_dir(root: Path, size: str) -> str:
    """The smoke model, or a random BERT MLM of ``size`` with the smoke tokenizer (its ids are all < 2,000)."""
    smoke = build_smoke_model(root)
    if SIZES[size] is None:
        return str(smoke)
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    hidden, layers, heads, inter, vocab = SIZES[size]
    torch.manual_seed(0)
    out = root / f"btf-bench-{size}"
    BertForMaskedLM(BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                               num_attention_heads=heads, intermediate_size=inter,
                               max_position_embeddings=512)).save_pretrained(out)
    AutoTokenizer.from_pretrained(smoke).save_pretrained(out)
    return str(out)


def make_corpus(root: Path, per_language: int) -> tuple[Path, str]:
    """English smoke words and a respelled "language", 8-60 words a text (mean ~34: like XNLI premises)."""
    rng = random.Random(0)
    words = list(BASE_WORDS)

    def text(respell: bool) -> str:
        chosen = rng.choices(words, k=rng.randint(8, 60))
        return " ".join(word[::-1] if respell else word for word in chosen)

    return build_corpus({"en": [text(False) for _ in range(per_language)],
                         "xx": [text(True) for _ in range(per_language)]}, root)


def ours(plan, root: Path, round_: int) -> tuple[float, float, float]:
    """(tokens/s while training, end-to-end seconds, final loss) of one fresh Ray Train job."""
    gpu = torch.cuda.is_available()
    result = run_btf_cached(plan, root / f"cache-{round_}", storage_path=str(root / "ray"), use_gpu=gpu,
                            cpus_per_worker=1.0 if gpu else float(os.cpu_count() or 1), log=lambda _: None)
    return result.meta["tokens_per_second"], result.meta["seconds"], result.meta["mlm_loss"][str(plan.steps[-1])]


def hf_trainer(plan, steps: int) -> tuple[float, float]:
    """(tokens/s, final loss) of a plain ``Trainer`` on the same corpus, batch, max length and learning rate."""
    import datasets
    from transformers import (AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer,
                              TrainingArguments)

    s = plan.settings
    tokenizer = AutoTokenizer.from_pretrained(plan.model_dir)
    corpus = datasets.load_from_disk(plan.corpus_path)
    tokens = corpus.map(lambda b: tokenizer(b["text"], truncation=True, max_length=s.max_length,
                                            return_special_tokens_mask=True),
                        batched=True, remove_columns=["text"])
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=s.mlm_probability)
    counted = [0]

    def collate(examples):
        batch = collator(examples)
        counted[0] += int(batch["attention_mask"].sum())
        return batch

    torch.manual_seed(s.seed)
    model = AutoModelForMaskedLM.from_pretrained(plan.model_dir, attn_implementation="sdpa")
    gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=s.batch_size, max_steps=steps,
                                 learning_rate=s.learning_rate, lr_scheduler_type="constant",
                                 weight_decay=s.weight_decay,
                                 max_grad_norm=s.max_grad_norm, report_to=[], save_strategy="no", eval_strategy="no",
                                 logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=s.seed,
                                 bf16=gpu_bf16)
        trainer = Trainer(model=model, args=args, train_dataset=tokens, data_collator=collate)
        output = trainer.train()
    return counted[0] / output.metrics["train_runtime"], output.training_loss


def main() -> None:
    gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="mbert" if gpu else "smoke")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300 if gpu else 60)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--texts", type=int, default=2000, help="texts per language")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    args = parser.parse_args()

    import logging

    import ray

    root = Path(tempfile.mkdtemp(prefix="xlt-btf-bench-"))
    model_dir = make_model_dir(root, args.size)
    corpus, digest = make_corpus(root, args.texts)
    settings = BtfSettings(batch_size=args.batch, max_length=args.max_length, learning_rate=1e-4)
    plan = make_plan(model_dir, corpus, digest, ("en", "xx"), (args.steps,), settings)
    device = torch.cuda.get_device_name() if gpu else f"CPU ({os.cpu_count()} cores)"
    print(f"device {device}; model {args.size}; batch {args.batch}; {args.steps} steps; torch {torch.__version__}",
          flush=True)
    # The sweep's worker environment (Train's poll interval included), so the Ray side is timed as a sweep runs it.
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": WORKER_ENV})
    runs: dict[str, list[float]] = {"hf": [], "ours": [], "ours_end_to_end_s": []}
    losses: dict[str, float] = {}
    try:
        for round_ in range(args.rounds):
            started = time.perf_counter()
            tokens_per_s, losses["hf"] = hf_trainer(plan, args.steps)
            runs["hf"].append(tokens_per_s)
            tokens_per_s, seconds, losses["ours"] = ours(plan, root, round_)
            runs["ours"].append(tokens_per_s)
            runs["ours_end_to_end_s"].append(seconds)
            print(f"round {round_ + 1}: hf {runs['hf'][-1]:.0f} tokens/s, ours {runs['ours'][-1]:.0f} tokens/s "
                  f"(job {seconds:.1f} s end to end) ({time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        ray.shutdown()
    median = {k: statistics.median(v) for k, v in runs.items()}
    print(json.dumps({
        "device": device, "size": args.size, "batch": args.batch, "steps": args.steps,
        "tokens_per_second_median": {k: round(median[k], 1) for k in ("hf", "ours")},
        "ours_end_to_end_seconds_median": round(median["ours_end_to_end_s"], 2),
        "ratio_ours_vs_hf": round(median["ours"] / median["hf"], 3),
        "ratio_per_round": [round(o / h, 3) for o, h in zip(runs["ours"], runs["hf"])],  # paired: robust to drift
        "last_loss": {"hf_mean_over_run": round(losses["hf"], 4), "ours_last_step": round(losses["ours"], 4)},
    }, indent=2))


if __name__ == "__main__":
    main()
