"""Paired batches: a target side (``input_ids`` ...) and its translation (``source_input_ids`` ...).

X-Mixup trains and predicts on such pairs, and every arm of an X-Mixup experiment measures the
representation discrepancy (CKA) on them, so the helpers live here rather than in one method.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

SOURCE = "source_"  # the English side: the original in training, translate-test at test time
BACK = "backtrans_"  # the English back-translation (en -> target -> en), for scheduled sampling
TRAIN_PART = "translate_train"  # the paired data's training split
SIDE_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")
PAIRED_COLUMNS = tuple(SOURCE + column for column in SIDE_COLUMNS)


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


def parse_languages(value) -> tuple[str, ...]:
    """A language list as a knob may hold it: ``("de", "ar")``, ``"de,ar"`` or empty (every language)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    return tuple(value or ())


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
