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


@dataclasses.dataclass(frozen=True)
class NoInputs:
    """A method without sweep- or recipe-filled inputs."""


class Method:
    """Base class: plain supervised fine-tuning on the source-language training set."""

    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams  # the knobs a user may --set / --space (and a search samples)
    # What the sweep's preparation (``Preparation.method_params``) or a recipe fills in, e.g. a cache's
    # path: a frozen dataclass, read as ``self.inputs``. The trial config carries these under the
    # same keys as the knobs (``TrainConfig.method_params``); they are never --set or searched.
    Inputs: ClassVar[type] = NoInputs
    # The paper whose training recipe the method's arms follow on the paper profile (a key of
    # ``trainables.recipes.PAPER_RECIPES``, e.g. "xmixup"); "": the task's recipe. An experiment may name
    # one for all its arms instead (``Experiment.training_recipe``). Not ``MethodSpec.recipe``, a multi-phase trial.
    training_recipe: ClassVar[str] = ""
    # Columns the loop batches besides the model inputs, where a split has them (e.g. a translation).
    extra_batch_columns: ClassVar[tuple[str, ...]] = ()
    # Set by the loop: the optimizer step the current micro-batch belongs to, and steps per epoch
    # (for schedules inside a method, e.g. X-Mixup's scheduled sampling).
    step: int = 0
    steps_per_epoch: int = 1

    def __init__(self, cfg: TrainConfig, task: TaskSpec):
        self.cfg = cfg
        self.task = task
        self.params, self.inputs = self.parse(cfg.method_params)

    @classmethod
    def parse(cls, values: dict[str, Any]) -> tuple[Any, Any]:
        """The one parse path of a trial's ``method_params``: ``(Params, Inputs)``."""
        return cls.parse_params(values), cls.parse_inputs(values)

    @classmethod
    def parse_params(cls, values: dict[str, Any]) -> Any:
        """Validate the method's knobs against its ``Params`` dataclass (one-line errors).

        ``values`` may carry the method's inputs too (a trial's ``method_params`` does): they are
        not knobs, ``parse_inputs`` reads them.
        """
        inputs = cls.input_names()
        known = cls.param_names() | inputs
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"method {cls.name!r} has no setting(s) {', '.join(unknown)}"
                + (f"; its settings are {', '.join(sorted(known))}" if known else "")
            )
        return cls.Params(**{k: v for k, v in values.items() if k not in inputs})

    @classmethod
    def parse_inputs(cls, values: dict[str, Any]) -> Any:
        """The method's ``Inputs`` from ``values`` (its knobs there are ``parse_params``'s)."""
        inputs = cls.input_names()
        return cls.Inputs(**{k: v for k, v in values.items() if k in inputs})

    @classmethod
    def param_names(cls) -> frozenset[str]:
        """The knobs (``Params``' fields); the inputs are ``input_names``."""
        return frozenset(f.name for f in dataclasses.fields(cls.Params))

    @classmethod
    def input_names(cls) -> frozenset[str]:
        """The sweep- or recipe-filled inputs (``Inputs``' fields): in a trial's config, never --set."""
        return frozenset(f.name for f in dataclasses.fields(cls.Inputs))

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

    @classmethod
    def scores_inputs_alone(cls, params: Any) -> bool:
        """Whether ``logits`` predicts from a test example's own model inputs alone (not from a translation
        beside it, as X-Mixup's mixup inference does): then it can score any pair of texts, such as the
        generalized XNLI pairs of premise and hypothesis in two languages (``trainables.generalized``)."""
        return True

    @classmethod
    def training_sequences(cls, cfg: TrainConfig, rows: int) -> float:
        """About how many sequences the encoder trains on in one trial of ``cfg``, given ``rows`` source-language
        training rows: what the dry run's cost estimate divides by a measured sequences/s
        (``orchestrator.estimate``). Plain fine-tuning: its epochs over the rows (or ``max_steps`` batches)."""
        return run_samples(cfg, rows)

    @classmethod
    def trains_plain_loss(cls) -> bool:
        """Whether the method trains with the model's own loss on the task's columns alone (no
        ``training_loss``, ``wrap_collator`` or extra columns of its own): what ``padding_free`` batches
        (``trainables.training.padding_free``) can stand in for."""
        return (cls.training_loss is Method.training_loss and cls.wrap_collator is Method.wrap_collator
                and not cls.extra_batch_columns)

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


def run_samples(cfg: TrainConfig, rows: float) -> float:
    """Training examples one run of ``cfg`` draws over a training set of ``rows``: ``max_steps`` optimizer
    steps of one worker's batch x accumulation where set (a lower bound under DDP), else ``num_train_epochs``
    passes (the loop's ``total_steps``)."""
    if cfg.max_steps > 0:
        return float(cfg.max_steps * cfg.per_device_batch_size * cfg.grad_accum_steps)
    return cfg.num_train_epochs * rows
