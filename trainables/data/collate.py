"""Batches: tokenised examples padded to the longest one in the batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainables.data.tokenization import SENTENCE_ID
from trainables.labels import IGNORE_INDEX


class DynamicPaddingCollator:
    """Pads a list of tokenised examples to the longest one in the batch (torch tensors).

    A thin wrapper over ``DataCollatorWithPadding`` that drops the ``length`` column (only there
    for length-grouped sampling), ``language`` (a string) and a token task's ``SENTENCE_ID`` (only the
    evaluation's joining of segments reads it), pads token-level ``labels`` (one per
    sub-word, ``token_labels``) with ``IGNORE_INDEX`` as ``input_ids``, and pads the further encodings a
    method adds: each group ``<prefix>input_ids`` / ``<prefix>attention_mask`` /
    ``<prefix>token_type_ids`` (X-Mixup's ``source_`` and ``backtrans_`` pairs) to its own longest
    row. A group with ids only (SALT's ``source_input_ids``, position-aligned with ``input_ids``)
    has no mask of its own, so it is padded to the width of ``input_ids`` and shares its mask.
    """

    _GROUP_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")
    _DROPPED = ("length", "language", SENTENCE_ID)

    def __init__(self, tokenizer: Any, *, token_labels: bool = False) -> None:
        from transformers import DataCollatorWithPadding

        self.tokenizer = tokenizer
        self.token_labels = token_labels
        self._pad = DataCollatorWithPadding(tokenizer, return_tensors="pt")

    def _groups(self, names: Sequence[str]) -> dict[str, list[str]]:
        """prefix -> its columns, for every prefix other than "" that has an ``input_ids`` column."""
        prefixes = [name[: -len("input_ids")] for name in names if name.endswith("input_ids") and name != "input_ids"]
        return {
            prefix: [prefix + column for column in self._GROUP_COLUMNS if prefix + column in names]
            for prefix in prefixes
        }

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        groups = self._groups(list(examples[0]))
        token_labels = self.token_labels and "labels" in examples[0]
        dropped = {*self._DROPPED, *(name for columns in groups.values() for name in columns),
                   *(("labels",) if token_labels else ())}
        batch = self._pad([{name: value for name, value in example.items() if name not in dropped}
                           for example in examples])
        if token_labels:
            batch["labels"] = self._pad_column([example["labels"] for example in examples], batch["input_ids"].shape[1],
                                               IGNORE_INDEX, torch.long)
        for prefix, columns in groups.items():
            own_mask = f"{prefix}attention_mask" in columns
            width = (max(len(example[f"{prefix}input_ids"]) for example in examples) if own_mask
                     else batch["input_ids"].shape[1])
            for name in columns:
                pad = self.tokenizer.pad_token_id if name.endswith("input_ids") else 0
                batch[name] = self._pad_column([example[name] for example in examples], width, pad,
                                               batch["input_ids"].dtype)
        return batch

    def _pad_column(self, rows: Sequence[Sequence[int]], width: int, pad: int, dtype: Any) -> Any:
        import torch

        column = torch.full((len(rows), width), pad, dtype=dtype)
        right = self.tokenizer.padding_side == "right"
        for index, values in enumerate(rows):
            values = torch.as_tensor(values, dtype=dtype)
            if right:
                column[index, :len(values)] = values
            else:
                column[index, width - len(values):] = values
        return column


def make_collator(tokenizer_dir: str | Path, token_labels: bool = False) -> DynamicPaddingCollator:
    """The batch collator for data tokenised with the tokenizer in ``tokenizer_dir`` (``token_labels``:
    a token task's data, one label per sub-word)."""
    from transformers import AutoTokenizer

    return DynamicPaddingCollator(AutoTokenizer.from_pretrained(str(tokenizer_dir)), token_labels=token_labels)
