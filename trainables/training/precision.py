"""Numeric precision: bf16 autocast on GPUs that support it, full precision elsewhere."""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

Autocast = Callable[[], contextlib.AbstractContextManager]


def autocast_factory(bf16: bool, device: torch.device) -> Autocast:
    """A factory of contexts for the forward passes: bf16 autocast when ``bf16`` and the GPU supports it."""
    if bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext
