"""The benchmarks' shared workloads: random-weight BERTs, XNLI-shaped tokenized data, and the two trainers.

``trainer_throughput.py``, ``salt_scan.py`` and ``gpu_report.py`` all build their models and data here, so
they measure the same thing: a BERT of a named size (``tiny`` or ``small`` on CPU; ``mbert``: mBERT-base's
768 x 12 with its 119,547-token vocabulary; random weights), data whose lengths spread like XNLI pairs under mBERT
(mean ~58 tokens, at most ``max_length``), our loop (``trainables.loop``, as a sweep's trial runs it) and a
Hugging Face ``Trainer`` (plain: default arguments; tuned: bf16 on GPU and length grouping).

Imported by the bench scripts, which put the repository root on ``sys.path`` first.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict

from smoke import build_smoke_model, smoke_vocab
from trainables.config import TrainConfig
from trainables.loop import train_and_evaluate

SIZES = {
    # name: (hidden, layers, heads, intermediate, vocab)
    "tiny": (128, 2, 2, 512, 8000),  # gpu_report.py on CPU: its whole table in CI's minutes
    "small": (256, 4, 4, 1024, 8000),
    "mbert": (768, 12, 12, 3072, 119547),
}
# The names orchestrator/throughput.csv keys rows by.
SIZE_NAMES = {"tiny": "tiny", "small": "small", "mbert": "mbert-base"}
# The scan's WordPiece vocabulary (its word lists need room).
SCAN_VOCAB = {"tiny": 30000, "small": 30000, "mbert": 119547}
LANGUAGE_VOCAB = 15_000  # about what 10,000 words (plus capitalised forms) give per language in mBERT


def _bert_config(size: str, vocab: int):
    from transformers import BertConfig

    hidden, layers, heads, inter, _ = SIZES[size]
    return BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=inter, max_position_embeddings=512)


def make_model_dir(root: Path, size: str) -> str:
    """A randomly initialised BERT of ``size`` plus a tokenizer (only its padding is used)."""
    from transformers import AutoTokenizer, BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM(_bert_config(size, SIZES[size][4]))
    out = root / f"bench-{size}"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(build_smoke_model(root)).save_pretrained(out)
    return str(out)


def make_scan_model_dir(root: Path, size: str) -> str:
    """A random BERT MLM and a WordPiece tokenizer whose vocabulary is as large as the model's (SALT's scan)."""
    from transformers import BertForMaskedLM, BertTokenizerFast

    vocab_size = SCAN_VOCAB[size]
    vocab = dict(smoke_vocab(0))
    for index in range(len(vocab), vocab_size):  # filler word tokens up to the model's size
        vocab[f"w{index}"] = index
    out = root / f"scan-bench-{size}"
    BertTokenizerFast(vocab=vocab, do_lower_case=False, strip_accents=False).save_pretrained(out)
    torch.manual_seed(0)
    BertForMaskedLM(_bert_config(size, vocab_size)).save_pretrained(out)
    return str(out)


def make_data(root: Path, vocab: int, n_train: int, max_length: int, seed: int = 0) -> str:
    """Tokenized XNLI-shaped data: lengths spread like XNLI pairs under mBERT (mean ~58, max ``max_length``)."""
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

    # and one target language's dev and test: a run is on a source and at least one target (TaskSpec.restrict)
    parts = {"train_en": split(n_train), "validation_en": split(64), "test_en": split(64),
             "validation_de": split(64), "test_de": split(64)}
    path = root / "bench-data"
    DatasetDict(parts).save_to_disk(str(path))
    return str(path)


def train_lengths(data_dir: str) -> np.ndarray:
    """The non-padding lengths of the training examples (what model FLOPs are counted on)."""
    from datasets import load_from_disk

    return np.asarray(load_from_disk(data_dir)["train_en"]["length"], dtype=np.float64)


def non_embedding_parameters(size: str) -> int:
    """Parameters of the sequence classifier our loop trains, without its embeddings (word, position, type):
    the ``N`` of the 6 N FLOPs per token rule. Counted on the meta device: nothing is allocated."""
    from transformers import BertForSequenceClassification

    config = _bert_config(size, SIZES[size][4])
    config.num_labels = 3  # XNLI's classes
    with torch.device("meta"):
        model = BertForSequenceClassification(config)
    return sum(p.numel() for name, p in model.named_parameters() if ".embeddings." not in f".{name}")


def our_config(model_dir: str, data_dir: str, batch: int, steps: int, max_length: int, **settings) -> TrainConfig:
    """Our loop's configuration for a timing run: the sweep's defaults, one evaluation at the end; ``settings``
    change training settings (``padding_free=True``, ``torch_compile=True``, ...)."""
    return TrainConfig(task="xnli", model=model_dir, tokenized_path=data_dir, languages=("en", "de"), seed=1,
                       learning_rate=2e-5, max_steps=steps, per_device_batch_size=batch, grad_accum_steps=1,
                       max_length=max_length, eval_every_steps=10 ** 9, eval_batch_size=64).replace(**settings)


def ours(model_dir: str, data_dir: str, batch: int, steps: int, max_length: int, **settings) -> dict:
    """One run of our loop in this process (``settings`` as ``our_config``'s); its final report
    (``train_samples_per_second``, ``train_samples``, ``train_tokens``, ...)."""
    return train_and_evaluate(our_config(model_dir, data_dir, batch, steps, max_length, **settings),
                              report=lambda _: None)


def hf_trainer(model_dir: str, data_dir: str, batch: int, steps: int, tuned: bool) -> float:
    """Training samples/s of a Hugging Face ``Trainer`` on the same model, data and batch."""
    from datasets import load_from_disk
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments)

    # Our loop (seed_everything) turns deterministic kernels on for the whole process; a Trainer run after it in
    # the same process would inherit them. Off, as in a script that runs only the Trainer.
    torch.use_deterministic_algorithms(False)
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


def scan_workload(root: Path, size: str, examples: int, languages: int, top_k: int = 1, *,
                  language_vocab: int = LANGUAGE_VOCAB):
    """SALT's candidate scan over ``examples`` XNLI-shaped pairs: ``(plan, train, sentences)``.

    ``languages`` word lists of ``language_vocab`` tokens each (about what 10,000 words and their capitalised
    forms give per language in mBERT), drawn from the model's vocabulary.
    """
    from datasets import concatenate_datasets

    from smoke import build_smoke_data
    from trainables.data import load_raw
    from trainables.methods.salt.scan import ScanPlan
    from trainables.tasks import get_task

    task = get_task("xnli")
    model_dir = make_scan_model_dir(root, size)
    raw = load_raw(task, str(build_smoke_data(task, root)), languages=["en"], eval_splits=())["train_en"]
    train = concatenate_datasets([raw] * -(-examples // len(raw))).select(range(examples))
    generator = torch.Generator().manual_seed(0)
    vocab_size = SCAN_VOCAB[size]
    vocab = {f"l{i}": tuple(sorted(torch.randperm(vocab_size - 10, generator=generator)[:language_vocab].add(5).tolist()))
             for i in range(languages)}
    plan = ScanPlan(model_dir, task.text_fields, 128, top_k, vocab, "bench", "bench")
    return plan, train, len(train) * len(task.text_fields)
