"""Voters: K teachers (other seeds or encoders) label the same target text; only agreed labels count.

Each voter gives a probability distribution per example (or token). The soft label is the mean of
the voters' distributions; the hard label is the label most voters predict; it is kept when at
least ``min_agree`` voters predict it ("unanimous" = K, "majority" = more than half).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainables.labels import IGNORE_INDEX

RULES = ("unanimous", "majority")


@dataclass(frozen=True)
class Vote:
    probabilities: np.ndarray  # [..., C] mean of the voters' distributions (the soft label)
    labels: np.ndarray  # [...] the label most voters predict (ties: the lowest label id)
    agreed: np.ndarray  # [...] bool: enough voters predict ``labels``

    @property
    def confidence(self) -> np.ndarray:
        """[...] the mean probability the voters give the voted label (the one voter's max prob for K = 1)."""
        return np.take_along_axis(self.probabilities, self.labels[..., None], -1)[..., 0]


def required_votes(rule: str | int, voters: int) -> int:
    if isinstance(rule, int) and not isinstance(rule, bool):
        if not 1 <= rule <= voters:
            raise ValueError(f"min_agree must be in 1..{voters}, got {rule}")
        return rule
    if rule == "unanimous":
        return voters
    if rule == "majority":
        return voters // 2 + 1
    raise ValueError(f"agreement rule must be one of {', '.join(RULES)} or a number of voters, got {rule!r}")


def vote(probabilities, rule: str | int = "unanimous") -> Vote:
    """``probabilities`` [K, ..., C] from K voters -> the soft label, the hard label and its agreement."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    voters, classes = probabilities.shape[0], probabilities.shape[-1]
    need = required_votes(rule, voters)
    predicted = probabilities.argmax(-1)  # [K, ...]
    counts = np.stack([(predicted == c).sum(0) for c in range(classes)], -1)  # [..., C]
    labels = counts.argmax(-1)
    return Vote(probabilities.mean(0), labels, counts.max(-1) >= need)


def kept_labels(result: Vote, threshold: float, ignore: int = IGNORE_INDEX) -> np.ndarray:
    """The hard pseudo-labels: the voted label where it is agreed and its confidence >= ``threshold``, else ``ignore``."""
    keep = result.agreed & (result.confidence >= threshold)
    return np.where(keep, result.labels, ignore)
