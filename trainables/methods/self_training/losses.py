"""Self-training losses: soft pseudo-labels with MSE, kept hard pseudo-labels with cross-entropy.

Works for sentence classification (logits [B, C]) and token classification (logits [B, T, C]).
Which hard labels are kept (confident enough, agreed by the voters) is decided once, when the
pseudo-labels are made (``voting.kept_labels``): a dropped one is stored as ``IGNORE`` (-100, the
id the HF token-classification heads ignore), so the loss only reads labels. ``mask`` marks the
positions that carry a soft label (first sub-words for NER); default all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainables.labels import IGNORE_INDEX as IGNORE


def _flat(logits: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    flat = logits.reshape(-1, logits.shape[-1]).float()
    keep = torch.ones(flat.shape[0], dtype=torch.bool, device=flat.device) if mask is None else mask.reshape(-1).bool()
    return flat, keep


def soft_label_loss(logits: torch.Tensor, target_probs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """MSE between the model's distribution and the teacher's, mean over classes and labelled positions."""
    flat, keep = _flat(logits, mask)
    targets = target_probs.reshape(-1, target_probs.shape[-1]).float()
    if not keep.any():
        return flat.sum() * 0.0
    return F.mse_loss(torch.softmax(flat[keep], -1), targets[keep])


def hard_label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the kept hard labels (``IGNORE`` elsewhere); zero, with a gradient path, when none is kept."""
    flat = logits.reshape(-1, logits.shape[-1]).float()
    labels = labels.reshape(-1)
    if not (labels != IGNORE).any():
        return flat.sum() * 0.0
    return F.cross_entropy(flat, labels, ignore_index=IGNORE)


def self_training_loss(logits: torch.Tensor, target_probs: torch.Tensor, labels: torch.Tensor, hard_weight: float,
                       mask: torch.Tensor | None = None) -> torch.Tensor:
    """(1 - w) · soft + w · hard: ``hard_weight`` w balances the two kinds of pseudo-label."""
    soft = soft_label_loss(logits, target_probs, mask)
    hard = hard_label_loss(logits, labels)
    return (1 - hard_weight) * soft + hard_weight * hard
