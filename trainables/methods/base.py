"""The small interface a method implements to plug into the shared training loop.

The loop (``trainables.loop``) owns optimisation, precision, distribution, evaluation and
checkpoint selection. A method says only what differs: which model it trains, which training
examples it adds, and how a batch becomes a loss. A method file reads top to bottom as the
paper's recipe.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from datasets import Dataset, DatasetDict

from trainables.config import ConfigError, TrainConfig
from trainables.paired import SOURCE, mean_pool, side_inputs
from trainables.tasks import TaskSpec, split_key


@dataclasses.dataclass(frozen=True)
class NoParams:
    """A method without knobs of its own."""


class Method:
    """Base class: plain supervised fine-tuning on the source-language training set."""

    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    # Columns the loop batches besides the model inputs, where a split has them (e.g. a translation).
    extra_batch_columns: ClassVar[tuple[str, ...]] = ()
    # Set by the loop: the optimizer step the current micro-batch belongs to, and steps per epoch
    # (for schedules inside a method, e.g. X-Mixup's scheduled sampling).
    step: int = 0
    steps_per_epoch: int = 1

    def __init__(self, cfg: TrainConfig, task: TaskSpec):
        self.cfg = cfg
        self.task = task
        self.params = self.parse_params(cfg.method_params)

    @classmethod
    def parse_params(cls, values: dict[str, Any]) -> Any:
        """Validate the method's knobs against its ``Params`` dataclass (one-line errors)."""
        known = {f.name for f in dataclasses.fields(cls.Params)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"method {cls.name!r} has no setting(s) {', '.join(unknown)}"
                + (f"; its settings are {', '.join(sorted(known))}" if known else "")
            )
        return cls.Params(**values)

    @classmethod
    def param_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls.Params))

    @classmethod
    def accepts(cls, key: str) -> bool:
        """Whether ``key`` is one of the method's knobs (``--set`` / ``--space`` check this)."""
        return key in cls.param_names()

    @classmethod
    def knob_names(cls) -> frozenset[str]:
        """The fixed-name knobs a user may set or search (for messages listing them)."""
        return frozenset(name for name in cls.param_names() if cls.accepts(name))

    @classmethod
    def effective_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Every knob's value once ``values`` are resolved (what the search's paper point reads)."""
        params = cls.parse_params(values)
        return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}

    # -- what the loop asks of a method -------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        return self.load_model(self.cfg.model)

    def load_model(self, model_dir: str) -> torch.nn.Module:
        """The task's classifier (sentence or token) on the encoder in ``model_dir``, head seeded by the run."""
        from trainables.models import load_classifier

        return load_classifier(model_dir, self.task.num_labels, seed=self.cfg.seed, kind=self.task.kind)

    def wrap_collator(self, collate):
        """The training batches' collator; a method whose rows carry more than the task's columns pads them here."""
        return collate

    def train_dataset(self, data: DatasetDict) -> Dataset:
        """Training examples: the source-language train split (zero-shot transfer)."""
        return data[split_key(self.task.train_split, self.task.source_language)]

    def evaluation_data(self, data: DatasetDict) -> DatasetDict:
        """The dev and test splits the loop scores (X-Mixup: the same splits paired with translations)."""
        return data

    def training_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**batch).loss

    def run_metrics(self) -> dict[str, float]:
        """Metrics of the run the method adds to the final report (e.g. augmentation statistics)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What the method accumulates while training (for ``run_metrics``): saved in the loop's checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from ``state_dict()`` (a resumed run)."""

    def logits(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        return model(**inputs).logits

    def sentence_representations(self, model: torch.nn.Module,
                                 batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(source, target) representations of a paired batch for CKA: the encoder alone on each side.

        The paper's sequence representation, the mean-pooled last layer (X-Mixup Eq. 1 / Table 7).
        """
        encoder = getattr(model, model.base_model_prefix)
        source, target = (side_inputs(batch, prefix) for prefix in (SOURCE, ""))
        return tuple(mean_pool(encoder(input_ids=side.input_ids, attention_mask=side.attention_mask,
                                       token_type_ids=side.token_type_ids).last_hidden_state, side.attention_mask)
                     for side in (source, target))
