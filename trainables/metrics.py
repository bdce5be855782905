"""Task scores from predictions: accuracy (and macro-F1 where the task asks for it) for sequence tasks,
entity-level F1 for token tasks.

Token tasks are scored as XTREME scores PAN-X: one prediction per word (the word's first
sub-word; every position whose gold label is -100 is skipped), the words' tag names compared
as entity spans with ``seqeval``'s default (conlleval-style) matching, micro-averaged over
all sentences of a split. A sentence longer than the maximum length is tokenised as several segments
(``trainables.data.tokenization.encode_token_batch``); ``merge_segments`` joins their word predictions
again, so every word is scored and entities are taken over the whole sentence.

Macro-F1 (MARC) is computed from the split's confusion matrix, which sums over DDP ranks like the
accuracy's counts: the unweighted mean over classes of 2·tp / (2·tp + fp + fn), over the classes that
occur in the gold labels or the predictions, which is ``sklearn.metrics.f1_score(average="macro")``
(tests/test_metrics.py checks both).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from trainables.labels import IGNORE_INDEX


def tag_sequences(
    predictions: torch.Tensor, labels: torch.Tensor, names: Sequence[str]
) -> tuple[list[list[str]], list[list[str]]]:
    """(gold, predicted) tag-name sequences, one per row, of the positions whose gold label is scored.

    ``predictions`` and ``labels`` are (batch, sequence) ids; ``names`` maps an id to its tag.
    """
    gold_ids, predicted_ids = scored_ids(predictions, labels)
    return ([[names[label] for label in row] for row in gold_ids],
            [[names[prediction] for prediction in row] for row in predicted_ids])


def scored_ids(predictions: torch.Tensor, labels: torch.Tensor) -> tuple[list[list[int]], list[list[int]]]:
    """(gold, predicted) tag-id sequences, one per row, of the positions whose gold label is scored (the words)."""
    gold, predicted = [], []
    for row_predictions, row_labels in zip(predictions.tolist(), labels.tolist()):
        kept = [(label, prediction) for label, prediction in zip(row_labels, row_predictions) if label != IGNORE_INDEX]
        gold.append([label for label, _ in kept])
        predicted.append([prediction for _, prediction in kept])
    return gold, predicted


def merge_segments(rows: Sequence[int], sentences: Sequence[int], gold: Sequence[Sequence[int]],
                   predicted: Sequence[Sequence[int]]) -> tuple[np.ndarray, list[list[int]], list[list[int]]]:
    """Whole sentences from their segments: ``(sentence ids, gold, predicted)``, ordered by sentence id.

    ``rows`` are the segments' rows in the tokenised split, in any order (a length-sorted, rank-sharded
    evaluation), ``sentences`` each row's sentence id, ``gold`` / ``predicted`` each row's scored tag ids.
    A sentence's segments are consecutive rows, in word order, so its words are the rows' words
    joined by row.
    """
    rows, sentences = np.asarray(rows, np.int64), np.asarray(sentences, np.int64)
    if not len(rows) == len(sentences) == len(gold) == len(predicted):
        raise ValueError(f"{len(rows)} rows, {len(sentences)} sentence ids, {len(gold)} gold and "
                         f"{len(predicted)} predicted sequences: one of each per row")
    order = np.lexsort((rows, sentences))  # by sentence, then by row (the segments' word order)
    ids: list[int] = []
    merged_gold: list[list[int]] = []
    merged_predicted: list[list[int]] = []
    for index in order.tolist():
        if not ids or ids[-1] != sentences[index]:
            ids.append(int(sentences[index]))
            merged_gold.append([])
            merged_predicted.append([])
        merged_gold[-1].extend(gold[index])
        merged_predicted[-1].extend(predicted[index])
    return np.asarray(ids, np.int64), merged_gold, merged_predicted


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


def entity_counts(gold: Sequence[str], predicted: Sequence[str]) -> tuple[int, int, int]:
    """(true positives, predicted entities, gold entities) of one sentence, with seqeval's entity extraction.

    ``entity_f1`` over sentences equals 2·Σtp / (Σpredicted + Σgold) of these counts (seqeval ends every
    entity at its sentence's end, and its micro F1 is that ratio), so the counts score any subset of
    sentences: what a bootstrap over test sentences resamples.
    """
    from seqeval.metrics.sequence_labeling import get_entities

    gold_entities, predicted_entities = set(get_entities(list(gold))), set(get_entities(list(predicted)))
    return len(gold_entities & predicted_entities), len(predicted_entities), len(gold_entities)


def confusion_counts(predictions: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """[num_labels, num_labels] counts, row = gold label, column = prediction (int64, on their device)."""
    index = labels.reshape(-1).long() * num_labels + predictions.reshape(-1).long()
    return torch.bincount(index, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def macro_f1(confusion) -> float:
    """Macro-averaged F1 of a confusion matrix (row = gold, column = prediction); NaN when it is empty.

    Each class's F1 is 2·tp / (2·tp + fp + fn); the mean runs over the classes present in the gold
    labels or the predictions (a class absent from both has no F1), as scikit-learn's default.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    gold, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    present = (gold + predicted) > 0
    if not present.any():
        return float("nan")
    return float(np.mean(2 * tp[present] / (gold[present] + predicted[present])))
