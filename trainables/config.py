"""Typed configuration of one training run: the single object a Ray Train worker receives.

A trial's whole configuration is a ``TrainConfig``. It crosses process boundaries as a plain
dict (``to_dict`` / ``from_dict``), is logged whole as MLflow params, and is validated once,
at the edge (``validate``), so that a bad value fails in the sweep driver with one line rather
than inside a Ray worker.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SELECT_ON = ("en-dev", "multilingual-dev")


class ConfigError(ValueError):
    """A setting has a value the run cannot use. The message is one line for the user."""


@dataclass
class TrainConfig:
    """Settings of one fine-tuning run (one trial, one seed).

    The defaults are the loop's fallback for a run outside a sweep's recipe (tests, the smoke
    profile's unset fields): lr 2e-5, batch 8 x accumulation 4, 5 epochs, max length 128, no
    warmup, no weight decay, evaluation every 200 steps. A sweep on the paper profile starts every
    arm from its task's or paper's reference recipe instead (``trainables.recipes``).
    """

    # What to train on (filled in by the sweep's prepare step).
    task: str = "xnli"
    method: str = "baseline"
    model: str = "bert-base-multilingual-cased"
    tokenized_path: str = ""
    languages: tuple[str, ...] = ()
    # Optimisation.
    seed: int = 42
    learning_rate: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    num_train_epochs: float = 5.0
    max_steps: int = -1
    per_device_batch_size: int = 8
    grad_accum_steps: int = 4
    max_grad_norm: float = 1.0
    max_length: int = 128
    # Speed: bf16 autocast where the GPU supports it; length-grouped batches.
    bf16: bool = True
    group_by_length: bool = True
    # Speed settings measured on and off by bench/gpu_report.py; off until a GPU's numbers say they pay
    # (README, "Benchmarks"). padding_free: each training batch as one row of its real tokens, every
    # sequence attending to itself only (``trainables.training.padding_free``; plain-loss methods, BERT-type
    # encoders, one worker per trial). torch_compile: the training step compiled, each batch padded up to
    # a multiple of compile_bucket tokens (at most max_length) so the compiler sees few shapes
    # (``trainables.training.compilation``). Not both at once.
    padding_free: bool = False
    torch_compile: bool = False
    compile_bucket: int = 32
    # Same seed -> same metrics on the same GPU (deterministic kernels); CPU runs always are.
    deterministic: bool = True
    # Selection and evaluation.
    select_on: str = "en-dev"
    eval_every_steps: int = 200
    eval_batch_size: int = 128
    # Test sets paired with their translate-test English (filled in by the sweep for X-Mixup
    # experiments): every arm then logs cka_<lang>, the representation discrepancy. Empty: not measured.
    cka_path: str = ""
    # Fault tolerance: at an evaluation, checkpoint what the run needs to go on (weights, optimizer,
    # schedule, data position, best weights) when this many seconds have passed since the last one
    # (0: at every evaluation). A run that loses a worker resumes from it. An mBERT checkpoint is ~2 GB.
    checkpoint_every_s: float = 600.0
    # Keep the selected weights as the run's Ray Train checkpoint (a self-training teacher or student
    # that a later phase of the trial loads).
    keep_model: bool = False
    # Where the final test pass writes every test example's prediction (a Parquet file, rank 0;
    # ``trainables.predictions``): set by the sweep for confirm trials, the evidence of a paired
    # bootstrap over test examples. Empty: not written.
    predictions_path: str = ""
    # The generalized XNLI test set, tokenised (``trainables.generalized``): set by the sweep for the confirm
    # trials of a sweep with --generalized-xnli; the final test pass then also scores the 225 (premise
    # language, hypothesis language) pairs with the kept weights. Empty: not evaluated.
    generalized_path: str = ""
    # The method's own knobs, validated by the method's parameter dataclass.
    method_params: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "TrainConfig":
        """Check values a worker could not recover from; raise ``ConfigError`` (one line)."""
        positive = ("learning_rate", "per_device_batch_size", "grad_accum_steps", "max_length",
                    "eval_every_steps", "eval_batch_size", "compile_bucket")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.num_train_epochs <= 0 and self.max_steps <= 0:
            raise ConfigError("set num_train_epochs > 0 or max_steps > 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.checkpoint_every_s < 0:
            raise ConfigError(f"checkpoint_every_s must be >= 0 (0: at every evaluation), got {self.checkpoint_every_s!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.padding_free and self.torch_compile:
            raise ConfigError("padding_free and torch_compile cannot both be on (a packed row has a new length "
                              "every batch, which compiling for fixed shapes does not pay for); set one of them")
        if self.select_on not in SELECT_ON:
            raise ConfigError(f"select_on must be one of {', '.join(SELECT_ON)}, got {self.select_on!r}")
        return self

    def check_types(self) -> "TrainConfig":
        """Check that each setting has its field's type (an int where an int is expected, ...): a ``--set``
        value is parsed as a Python literal, so ``--set max_length=1.5`` arrives as a float."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            expected = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,)}.get(str(f.type))
            if expected and not isinstance(value, expected) or (str(f.type) == "int" and isinstance(value, bool)):
                raise ConfigError(f"{f.name} must be of type {f.type}, got {value!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["languages"] = list(self.languages)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training setting(s): {', '.join(unknown)}")
        values = dict(values)
        if "languages" in values:
            values["languages"] = tuple(values["languages"])
        return cls(**values)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes``; keys that are not fields go to ``method_params``."""
        known = {f.name for f in dataclasses.fields(self)}
        fields_changes = {k: v for k, v in changes.items() if k in known}
        method_changes = {k: v for k, v in changes.items() if k not in known}
        out = dataclasses.replace(self, **fields_changes)
        if method_changes:
            out.method_params = {**self.method_params, **method_changes}
        return out

    def flat_params(self) -> dict[str, Any]:
        """The whole configuration flattened for MLflow params (``method.<knob>`` for knobs)."""
        # predictions_path: where the sweep has the run write its predictions, not a setting of the run
        out = {k: v for k, v in self.to_dict().items() if k not in ("method_params", "predictions_path")}
        out["languages"] = ",".join(self.languages)
        for key, value in sorted(self.method_params.items()):
            out[f"method.{key}"] = value
        return out


def field_names() -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(TrainConfig))


# Fields the sweep fills in itself (from the experiment, profile, arm and seed); a user cannot
# --set or search them.
SWEEP_OWNED = frozenset({"task", "method", "model", "tokenized_path", "languages", "seed", "method_params",
                         "cka_path", "keep_model", "predictions_path", "generalized_path"})


def user_settings() -> frozenset[str]:
    """Training settings a user may fix with --set or search with --space."""
    return field_names() - SWEEP_OWNED
