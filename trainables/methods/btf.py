"""BTF: zero-shot fine-tuning that starts from the Bilingual-Task-Fitted encoder (2310.04726, step 1).

Bilingual Task Fitting continues the encoder's masked-LM pre-training on unlabelled task text in
English and the target languages. That MLM run happens once per sweep, before any trial
(``orchestrator.preparation`` -> ``trainables.btf``), and keeps a checkpoint at every MLM step
count the sweep may ask for; a trial's ``mlm_steps`` picks one. Fine-tuning, selection and
testing are then the baseline's: the ``btf`` arm differs from ``baseline`` only in its encoder.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import torch

from trainables.btf.mlm import checkpoint_dir
from trainables.config import ConfigError
from trainables.methods.base import Method
from trainables.paired import parse_languages


@dataclass(frozen=True)
class Params:
    btf_path: str = ""  # the cached BTF run (one folder per MLM step count); filled in by the sweep
    btf: bool = True  # False: start from the pre-trained encoder (the self_training arm)
    mlm_steps: int = 3000  # which BTF checkpoint: MLM optimizer steps on the task text
    train_languages: tuple[str, ...] = ()  # target languages whose unlabelled text is used; empty: the task's


class Btf(Method):
    name = "btf"
    Params = Params

    @classmethod
    def parse_params(cls, values: dict[str, Any]) -> Any:
        values = dict(values)
        values["train_languages"] = parse_languages(values.get("train_languages"))
        params = super().parse_params(values)
        if not (isinstance(params.mlm_steps, numbers.Integral) and params.mlm_steps > 0):
            raise ConfigError(f"mlm_steps must be a whole number of MLM steps > 0, got {params.mlm_steps!r}")
        return params

    def encoder_dir(self) -> str:
        """Where fine-tuning starts: the BTF checkpoint, or the pre-trained model with ``btf=False``."""
        if not self.params.btf:
            return self.cfg.model
        if not self.params.btf_path:
            raise ConfigError("BTF needs the task-fitted encoder (btf_path); run it through orchestrator.sweep")
        path = checkpoint_dir(self.params.btf_path, self.params.mlm_steps)
        if not (path / "config.json").is_file():
            raise ConfigError(f"no BTF checkpoint for mlm_steps={self.params.mlm_steps} in {self.params.btf_path}; "
                              "the sweep prepares one per value of the mlm_steps choice")
        return str(path)

    def build_model(self) -> torch.nn.Module:
        return self.load_model(self.encoder_dir())
