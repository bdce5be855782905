"""Translate-train: fine-tune on the English training set plus its machine translations.

The X-Mixup paper's "Trans-train" baseline (Hu et al. 2020): the English training set is
translated into every target language and the model is trained on the concatenation of all of
them, labels carried over. Selection and testing are the shared loop's, exactly as for the
zero-shot baseline, so the two arms differ only in the training examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datasets import Dataset, DatasetDict, concatenate_datasets

from trainables.method_base import Method
from trainables.paired import ParallelInputs, translated_training_rows
from trainables.tasks import parse_languages

_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels", "length")


@dataclass(frozen=True)
class Params:
    train_languages: tuple[str, ...] = ()  # the translations trained on; empty: every target language


class TranslateTrain(Method):
    name = "translate_train"
    Params = Params
    Inputs = ParallelInputs

    @classmethod
    def parse_params(cls, values: dict[str, Any]) -> Params:
        values = dict(values)
        values["train_languages"] = parse_languages(values.get("train_languages"))
        return super().parse_params(values)

    def train_dataset(self, data: DatasetDict) -> Dataset:
        english = super().train_dataset(data)
        translated = translated_training_rows(self.inputs.parallel_path, self.params.train_languages)
        columns = [c for c in _COLUMNS if c in english.column_names]
        return concatenate_datasets([english.select_columns(columns), translated.select_columns(columns)])
