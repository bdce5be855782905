"""X-Mixup's scheduled sampling: the probability of feeding the real English source.

Inverse sigmoid decay over the mini-batch index (Bengio et al. 2015): p* = k / (k + exp(step / k)),
k = pk (1000 for classification, paper Table 10). Each example draws its own coin at every step
(``use_real_source``). The reference code evaluates p* in Python inside a ``tf.function``, so it is
frozen at trace time (about once per epoch, and the gold source all through epoch 1) with one coin
per batch: ``per_epoch_probability`` reproduces its value.
"""

from __future__ import annotations

import math

import torch


def real_source_probability(step: int, k: float) -> float:
    """p* at optimizer step ``step`` (0-based): 1 / (1 + exp(step / k) / k) written stably."""
    if k <= 1:
        raise ValueError(f"the decay rate k must be > 1 (p* starts at k / (k + 1)), got {k}")
    exponent = step / k
    if exponent > 700:  # exp overflows; p* is 0 to double precision long before
        return 0.0
    return k / (k + math.exp(exponent))


def per_epoch_probability(step: int, k: float, steps_per_epoch: int) -> float:
    """The reference code's p*: fixed at the first step of each epoch after the first, 1 in epoch 1."""
    epoch = step // max(steps_per_epoch, 1)
    return 1.0 if epoch == 0 else real_source_probability(epoch * steps_per_epoch, k)


def use_real_source(batch_size: int, probability: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """One coin per example: True where the real source is used (p <= p*), else its back-translation."""
    return torch.rand(batch_size, generator=generator) <= probability
