"""Which encoder fine-tuning starts from: the BTF checkpoint of the trial's ``mlm_steps``, or the pre-trained model.

The knobs (``TaskFitParams``) and the sweep-filled input (``TaskFitInputs``: the cached run) are
shared by every method that fine-tunes from the task-fitted encoder (``btf``, ``self_training``):
their ``Params`` and ``Inputs`` extend these dataclasses, their
``parse_params`` call ``task_fit_values`` / ``check_task_fit``, and their ``build_model`` loads
``encoder_dir``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from trainables.config import ConfigError
from trainables.task_fitting.mlm import checkpoint_dir
from trainables.tasks import parse_languages


@dataclass(frozen=True)
class TaskFitParams:
    btf: bool = True  # False: start from the pre-trained encoder (the self_training arm)
    mlm_steps: int = 3000  # which BTF checkpoint: MLM optimizer steps on the task text
    train_languages: tuple[str, ...] = ()  # target languages whose unlabelled text is used; empty: the task's


@dataclass(frozen=True)
class TaskFitInputs:
    btf_path: str = ""  # the cached BTF run (one folder per MLM step count); filled in by the sweep


def task_fit_values(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``train_languages`` parsed (a comma-separated string from --set, or a sequence)."""
    values = dict(values)
    values["train_languages"] = parse_languages(values.get("train_languages"))
    return values


def check_task_fit(params: TaskFitParams) -> None:
    if not (isinstance(params.mlm_steps, numbers.Integral) and params.mlm_steps > 0):
        raise ConfigError(f"mlm_steps must be a whole number of MLM steps > 0, got {params.mlm_steps!r}")


def encoder_dir(model: str, params: TaskFitParams, inputs: TaskFitInputs) -> str:
    """Where fine-tuning starts: the BTF checkpoint, or the pre-trained ``model`` with ``btf=False``."""
    if not params.btf:
        return model
    if not inputs.btf_path:
        raise ConfigError("BTF needs the task-fitted encoder (btf_path); run it through orchestrator.sweep")
    path = checkpoint_dir(inputs.btf_path, params.mlm_steps)
    if not (path / "config.json").is_file():
        raise ConfigError(f"no BTF checkpoint for mlm_steps={params.mlm_steps} in {inputs.btf_path}; "
                          "the sweep prepares one per value of the mlm_steps choice")
    return str(path)
