"""The hard-label confidence threshold, chosen on English dev (the paper leaves the rule open).

The paper assumes that the trade-off between confidence, accuracy and recall measured on the
source language's validation data carries over to the target languages. Our rule: the *lowest*
confidence t such that the English dev predictions with confidence >= t reach a target precision
(their accuracy). Lowest, because among the cuts that are precise enough it keeps the most
pseudo-labels. Cuts fall only between distinct confidence values (ties are kept or dropped
together), and when no cut reaches the target no hard label is kept (t = inf).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float  # keep hard labels with confidence >= threshold (inf: none)
    precision: float  # accuracy of the kept English dev predictions (nan when none are kept)
    coverage: float  # share of English dev predictions kept


def threshold_for_precision(confidence, correct, target_precision: float) -> ThresholdChoice:
    """The lowest threshold whose kept predictions are at least ``target_precision`` accurate."""
    if not 0 < target_precision <= 1:
        raise ValueError(f"target precision must be in (0, 1], got {target_precision}")
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if confidence.shape != correct.shape or confidence.ndim != 1:
        raise ValueError("confidence and correct must be 1-D arrays of the same length")
    if confidence.size == 0:
        return ThresholdChoice(math.inf, math.nan, 0.0)
    order = np.argsort(-confidence, kind="stable")
    sorted_conf, hits = confidence[order], np.cumsum(correct[order])
    kept = np.arange(1, confidence.size + 1)
    # A cut after position i is valid only where the next confidence is lower (ties stay together).
    valid = np.append(sorted_conf[1:] < sorted_conf[:-1], True)
    precise = valid & (hits / kept >= target_precision - 1e-12)
    if not precise.any():
        return ThresholdChoice(math.inf, math.nan, 0.0)
    last = int(np.flatnonzero(precise)[-1])
    return ThresholdChoice(float(sorted_conf[last]), float(hits[last] / kept[last]), float(kept[last] / confidence.size))
