"""BTF: zero-shot fine-tuning that starts from the Bilingual-Task-Fitted encoder (2310.04726, step 1).

Bilingual Task Fitting continues the encoder's masked-LM pre-training on unlabelled task text in
English and the target languages. That MLM run happens once per sweep, before any trial
(``orchestrator.preparation`` -> ``trainables.task_fitting``), and keeps a checkpoint at every MLM step
count the sweep may ask for; a trial's ``mlm_steps`` picks one. Fine-tuning, selection and
testing are then the baseline's: the ``btf`` arm differs from ``baseline`` only in its encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trainables.method_base import Method
from trainables.task_fitting.encoder import TaskFitInputs, TaskFitParams, check_task_fit, encoder_dir, task_fit_values


@dataclass(frozen=True)
class Params(TaskFitParams):
    """BTF's knobs are the task-fitting ones (``trainables.task_fitting.encoder``)."""


@dataclass(frozen=True)
class Inputs(TaskFitInputs):
    """Filled in by the sweep: the cached BTF run (``btf_path``)."""


class Btf(Method):
    name = "btf"
    Params = Params
    Inputs = Inputs

    @classmethod
    def parse_params(cls, values: dict[str, Any]) -> Any:
        params = super().parse_params(task_fit_values(values))
        check_task_fit(params)
        return params

    def encoder_dir(self) -> str:
        """Where fine-tuning starts: the BTF checkpoint, or the pre-trained model with ``btf=False``."""
        return encoder_dir(self.cfg.model, self.params, self.inputs)

    def build_model(self) -> torch.nn.Module:
        return self.load_model(self.encoder_dir())
