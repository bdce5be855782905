"""Task scores from predictions: accuracy for sequence tasks, entity-level F1 for token tasks.

Token tasks are scored as XTREME scores PAN-X: one prediction per word (the word's first
sub-word; every position whose gold label is -100 is skipped), the words' tag names compared
as entity spans with ``seqeval``'s default (conlleval-style) matching, micro-averaged over
all sentences of a split.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trainables.data import IGNORE_INDEX


def tag_sequences(
    predictions: torch.Tensor, labels: torch.Tensor, names: Sequence[str]
) -> tuple[list[list[str]], list[list[str]]]:
    """(gold, predicted) tag-name sequences, one per row, of the positions whose gold label is scored.

    ``predictions`` and ``labels`` are (batch, sequence) ids; ``names`` maps an id to its tag.
    """
    gold, predicted = [], []
    for row_predictions, row_labels in zip(predictions.tolist(), labels.tolist()):
        kept = [(label, prediction) for label, prediction in zip(row_labels, row_predictions) if label != IGNORE_INDEX]
        gold.append([names[label] for label, _ in kept])
        predicted.append([names[prediction] for _, prediction in kept])
    return gold, predicted


def entity_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Micro entity F1 of tag sequences (IOB2 names like ``B-PER``), as XTREME computes it; NaN for no sentences.

    No gold and no predicted entity scores 0, seqeval's convention (its warning is silenced).
    """
    import warnings

    from seqeval.metrics import f1_score

    if not gold:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(f1_score([list(tags) for tags in gold], [list(tags) for tags in predicted]))
