"""Seeding: every generator at the start of a run, and again from (seed, step, rank) at a checkpoint point.

A run's randomness after a checkpoint must not depend on what ran before it, or a resumed run
would not be the run that was interrupted: ``reseed`` draws every generator's seed from
``trainables.checkpoints.step_seed(seed, step, 1 + rank)`` (stream 0 is BTF's masking).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from trainables.checkpoints import step_seed


def seed_everything(seed: int, *, deterministic: bool) -> None:
    """Seed every generator that decides data order, dropout and head initialisation."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic and torch.cuda.is_available():
        # Same seed -> same metrics on the same GPU: cuBLAS needs a fixed workspace, and ops
        # without a deterministic kernel warn instead of failing the run.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def reseed(seed: int, step: int, rank: int) -> None:
    """Reseed every generator from (seed, step, rank): dropout and a method's draws from here on."""
    value = step_seed(seed, step, 1 + rank)
    torch.manual_seed(value)
    np.random.seed(value % 2**32)
    random.seed(value)
