"""Paired batches: a target side (``input_ids`` ...) and its translation (``source_input_ids`` ...).

X-Mixup trains and predicts on such pairs, and every arm of an X-Mixup experiment measures the
representation discrepancy (CKA) on them, so the helpers live here rather than in one method.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import pyarrow as pa
from datasets import Dataset, DatasetInfo, Features
from datasets.table import InMemoryTable
from torch import nn

SOURCE = "source_"  # the English side: the original in training, translate-test at test time
BACK = "backtrans_"  # the English back-translation (en -> target -> en), for scheduled sampling
TRAIN_PART = "translate_train"  # the paired data's training split
SIDE_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")
PAIRED_COLUMNS = tuple(SOURCE + column for column in SIDE_COLUMNS)


@dataclass(frozen=True)
class ParallelInputs:
    """The sweep-filled input of a method that trains on (target, English) pairs (X-Mixup, translate-train)."""

    parallel_path: str = ""  # the paired, tokenised data; filled in by the sweep


@dataclass
class SideInputs:
    """One side's token ids, attention mask and (BERT) token types."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None = None

    def choose(self, mine: torch.Tensor, other: "SideInputs", pad_id: int = 0) -> "SideInputs":
        """Row i from ``self`` where ``mine[i]``, else from ``other`` (both padded to the wider one)."""
        width = max(self.input_ids.shape[1], other.input_ids.shape[1])

        def pick(a: torch.Tensor | None, b: torch.Tensor | None, fill: int) -> torch.Tensor | None:
            if a is None or b is None:
                return None
            a, b = (nn.functional.pad(x, (0, width - x.shape[1]), value=fill) for x in (a, b))
            return torch.where(mine[:, None], a, b)

        return SideInputs(pick(self.input_ids, other.input_ids, pad_id),
                          pick(self.attention_mask, other.attention_mask, 0),
                          pick(self.token_type_ids, other.token_type_ids, 0))


def side_inputs(batch: dict[str, torch.Tensor], prefix: str = "") -> SideInputs:
    """One side of a paired batch: ``input_ids`` ... (the target) or ``source_input_ids`` ... ."""
    return SideInputs(batch[f"{prefix}input_ids"], batch[f"{prefix}attention_mask"],
                      batch.get(f"{prefix}token_type_ids"))


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The paper's sequence representation: mean of the last layer's states over the real tokens."""
    weights = mask.to(hidden.dtype)[..., None]
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def translated_training_rows(parallel_path: str, languages: tuple[str, ...] = ()):
    """The translate-train pairs of the prepared data, only ``languages`` when given (all otherwise)."""
    from trainables.config import ConfigError
    from trainables.data import load_tokenized

    if not parallel_path:
        raise ConfigError("this method needs the translated training data (parallel_path); run it through "
                          "orchestrator.sweep")
    rows = load_tokenized(parallel_path)[TRAIN_PART]
    if not languages:
        return rows
    present = set(rows.unique("language"))
    missing = sorted(set(languages) - present)
    if missing:
        raise ConfigError(f"train_languages {', '.join(missing)}: no translations prepared "
                          f"(prepared: {', '.join(sorted(present))})")
    wanted = set(languages)
    return rows.filter(lambda batch: [lang in wanted for lang in batch], input_columns="language", batched=True,
                       keep_in_memory=True)


def self_pairs(rows: Dataset, features: Features, language: str) -> Dataset:
    """``rows`` (one language's tokenised split) paired with themselves, in the paired data's ``features``.

    Every side is the row's own encoding: the target, the source and the back-translation. This is how
    the X-Mixup reference code trains the source language: English is one of its train languages, paired
    with its own text and its own text as back-translation (docs/methods.md, "Training pairs"), so the
    (en, en) input that English dev and test are scored on is one the model has trained on.

    The sides are the rows' own Arrow columns, not copies: XNLI's 392k English rows cost no memory and
    no pass over the data in every trial.
    """
    own = {name: _side_column(name) for name in features if _side_column(name)}
    missing = sorted(set(own.values()) - set(rows.column_names))
    if missing:
        raise ValueError(f"self_pairs: the rows lack {', '.join(missing)}, which the paired data has")
    table = rows.with_format("arrow")[:]  # zero-copy for a split read from disk (no indices mapping)
    columns = {name: table.column(column) for name, column in own.items()}
    columns.update(labels=table.column("labels"), length=table.column("length"),
                   language=pa.array([language] * table.num_rows, pa.string()))
    paired = pa.table({name: columns[name] for name in features}).cast(features.arrow_schema)
    return Dataset(InMemoryTable(paired), info=DatasetInfo(features=features))

def _side_column(name: str) -> str | None:
    """``source_input_ids`` -> ``input_ids``: the encoding a paired column holds, None for other columns."""
    for prefix in (SOURCE, BACK):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return name if name in SIDE_COLUMNS else None
