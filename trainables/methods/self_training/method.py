"""Self-training on unlabelled target-language text, after BTF (2310.04726, steps 2-4).

One trial runs the whole recipe (``trainables.methods.self_training.recipe``, started by the trial
driver because each phase is its own Ray job):

1. Teachers: fine-tune on English (from the BTF encoder, or the pre-trained one with
   ``btf=False``), one per voter (``voting``: ``voters`` seeds; else one, the trial's seed).
2. Each round: the teachers label the unlabelled target-language text and English dev on Ray
   Data; the hard-label confidence threshold is chosen on English dev (the lowest confidence at
   which the kept predictions reach ``target_precision``) or fixed (``confidence_threshold``);
   soft labels are the (voters') mean distribution, hard labels the agreed argmax above it.
3. Students: start from their teacher and train on the pseudo-labelled text with
   (1 - w) MSE(soft) + w CE(hard) (this file: the loop-side part). They teach the next round.

The reported model is the trial seed's student of the last round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from datasets import Dataset, DatasetDict

from trainables.config import ConfigError
from trainables.method_base import Method, run_samples
from trainables.methods.self_training.losses import self_training_loss
from trainables.methods.self_training.voting import required_votes
from trainables.task_fitting.encoder import TaskFitInputs, TaskFitParams, check_task_fit, encoder_dir, task_fit_values

SOFT_LABELS = "soft_labels"


@dataclass(frozen=True)
class Params(TaskFitParams):  # the task-fitting knobs first (btf, mlm_steps, ...), then these
    target_precision: float = 0.9  # the automatic threshold: kept English dev predictions this accurate
    confidence_threshold: float = 0.0  # > 0: a fixed hard-label threshold instead of the automatic one
    hard_weight: float = 0.5  # w in (1 - w) MSE(soft) + w CE(hard)
    rounds: int = 1  # teacher -> student rounds
    student_epochs: float = 1.0  # epochs over the pseudo-labelled text per round
    unlabelled_per_language: int = 20000  # at most this many unlabelled rows per target language
    voting: bool = False  # the Voters module: several teachers vote on the labels
    voters: int = 3  # K, when voting
    agreement: str | int = "unanimous"  # how many voters must agree: unanimous, majority, or a number


@dataclass(frozen=True)
class Inputs(TaskFitInputs):
    """Filled in by the sweep (``btf_path``) and, for a student run, by the recipe (not settings)."""

    init_path: str = ""  # the teacher's checkpoint the student starts from
    pseudo_path: str = ""  # the pseudo-labelled rows of this round


class SelfTraining(Method):
    name = "self_training"
    Params = Params
    Inputs = Inputs
    extra_batch_columns: ClassVar[tuple[str, ...]] = (SOFT_LABELS,)

    @classmethod
    def parse_params(cls, values: dict[str, Any]) -> Params:
        values = dict(values)
        if isinstance(values.get("agreement"), str) and values["agreement"].isdigit():
            values["agreement"] = int(values["agreement"])  # "2" from --set: two voters must agree
        params = super().parse_params(task_fit_values(values))
        check_task_fit(params)
        checks = [(0 < params.target_precision <= 1, f"target_precision must be in (0, 1], got {params.target_precision!r}"),
                  (0 <= params.confidence_threshold <= 1,
                   f"confidence_threshold must be in [0, 1] (0: automatic), got {params.confidence_threshold!r}"),
                  (0 <= params.hard_weight <= 1, f"hard_weight must be in [0, 1], got {params.hard_weight!r}"),
                  (isinstance(params.rounds, int) and params.rounds >= 1, f"rounds must be >= 1, got {params.rounds!r}"),
                  (params.student_epochs > 0, f"student_epochs must be > 0, got {params.student_epochs!r}"),
                  (params.unlabelled_per_language > 0,
                   f"unlabelled_per_language must be > 0, got {params.unlabelled_per_language!r}"),
                  (isinstance(params.voters, int) and params.voters >= 2,
                   f"voters must be a number of models >= 2, got {params.voters!r}")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        try:
            required_votes(params.agreement, params.voters)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return params

    @classmethod
    def training_sequences(cls, cfg, rows: int) -> float:
        """The recipe's runs (``recipe.run_self_training``): a teacher per voter over the English rows, then per round
        a student per teacher (the last round: one) over the pseudo-labelled pool, at most
        ``unlabelled_per_language`` rows of each target language (taken as about ``rows`` each before loading)."""
        from trainables.tasks import get_task

        params = cls.parse_params(cfg.method_params)
        voters = params.voters if params.voting else 1
        languages = params.train_languages or get_task(cfg.task).target_languages
        pool = min(params.unlabelled_per_language, rows) * len(languages)
        students = (params.rounds - 1) * voters + 1
        return voters * run_samples(cfg, rows) + students * run_samples(
            cfg.replace(num_train_epochs=params.student_epochs), pool)

    # -- the student's part of the recipe (the loop runs it) -------------------------------------
    def build_model(self) -> torch.nn.Module:
        """A student starts from its teacher; without one (a plain run) from the (BTF) encoder."""
        return self.load_model(self.inputs.init_path or encoder_dir(self.cfg.model, self.params, self.inputs))

    def train_dataset(self, data: DatasetDict) -> Dataset:
        if not self.inputs.pseudo_path:
            raise ConfigError("a self-training student needs its pseudo-labelled rows (pseudo_path); the sweep's "
                              "self-training recipe makes them")
        from trainables.data import load_tokenized

        return load_tokenized(self.inputs.pseudo_path)["train"]

    def wrap_collator(self, collate):
        return SoftLabelCollator(collate)

    def training_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        logits = model(**inputs).logits
        soft = batch[SOFT_LABELS]
        mask = soft.sum(-1) > 0 if soft.dim() == 3 else None  # tokens: only first sub-words carry a soft label
        return self_training_loss(logits, soft, batch["labels"], self.params.hard_weight, mask)


class SoftLabelCollator:
    """Pads the soft labels beside the task's collator: [B, C] for sentences, [B, T, C] (zeros) for tokens."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, examples):
        soft = [example[SOFT_LABELS] for example in examples]
        batch = self.collate([{k: v for k, v in example.items() if k != SOFT_LABELS} for example in examples])
        if soft and soft[0] and isinstance(soft[0][0], (list, tuple)):  # token classification
            width, classes = batch["input_ids"].shape[1], len(soft[0][0])
            padded = torch.zeros(len(soft), width, classes)
            for index, rows in enumerate(soft):
                padded[index, :len(rows)] = torch.as_tensor(rows, dtype=torch.float32)
            batch[SOFT_LABELS] = padded
        else:
            batch[SOFT_LABELS] = torch.as_tensor(soft, dtype=torch.float32)
        return batch
