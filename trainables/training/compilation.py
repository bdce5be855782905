"""``torch.compile`` of the training forward and backward (``TrainConfig.torch_compile``), with length buckets.

Compiled with ``dynamic=False``, a graph is specialised to its input shapes, and dynamic padding gives
nearly every batch a new length: without buckets each would recompile. So each training batch is padded up to
the next of a few bucket widths (multiples of ``compile_bucket``, the last one ``max_length``), and the compiler
sees at most ``buckets x 2`` shapes (the full batch and an epoch's shorter last one). The extra padding is
masked: with dropout off the metrics equal the uncompiled run's within float tolerance
(tests/test_speed_settings.py).

Only the training step is compiled: ``compiled`` returns a compiled view of the model that shares its
parameters, and the evaluation, the kept weights and the checkpoints use the model itself (its state dict
keys unchanged, and eval batches of other sizes never reach the compiler).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from trainables.labels import IGNORE_INDEX

_PADDED = ("input_ids", "attention_mask", "token_type_ids")
BACKEND = "inductor"  # torch.compile's default: generated kernels (Triton on CUDA, C++ on CPU)


def bucket_widths(bucket: int, max_length: int) -> list[int]:
    """The widths a batch is padded to: multiples of ``bucket`` below ``max_length``, then ``max_length``."""
    return [*range(bucket, max_length, bucket), max_length]


def bucket_width(length: int, bucket: int, max_length: int) -> int:
    """The smallest bucket width >= ``length`` (a longer batch than ``max_length`` keeps its own length)."""
    return max(length, min(math.ceil(length / bucket) * bucket, max_length))


class BucketPadding:
    """Wraps a padding collator: pads its batch's length up to the bucket width (``bucket_width``).

    Pads the columns of the width of ``input_ids`` whose names end in ``input_ids``, ``attention_mask`` or
    ``token_type_ids`` (a method's ``source_input_ids`` aligned with ``input_ids`` too; a pair's own
    ``<prefix>`` group of another width keeps its width) and a token task's ``labels`` (with ``IGNORE_INDEX``),
    on the side the tokenizer pads."""

    def __init__(self, collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]], *, bucket: int,
                 max_length: int, pad_token_id: int, left: bool = False):
        self.collate, self.bucket, self.max_length = collate, bucket, max_length
        self.pad_token_id, self.left = pad_token_id, left

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate(examples)
        length = batch["input_ids"].shape[1]
        extra = bucket_width(length, self.bucket, self.max_length) - length
        if extra == 0:
            return batch
        out = dict(batch)
        for name, value in batch.items():
            if not (isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[1] == length):
                continue
            if name.endswith("input_ids"):
                pad = self.pad_token_id
            elif name.endswith(_PADDED[1:]):
                pad = 0
            elif name == "labels":
                pad = IGNORE_INDEX
            else:
                continue
            out[name] = torch.nn.functional.pad(value, (extra, 0) if self.left else (0, extra), value=pad)
        return out


def compiled(model: torch.nn.Module, *, bucket: int, max_length: int) -> torch.nn.Module:
    """``model`` compiled for the training step (``dynamic=False``), sharing its parameters.

    Dynamo's recompile limit is raised to the shapes the buckets can give (each width with the full batch
    and a shorter last one), so no bucket falls back to eager mode."""
    import torch._dynamo

    shapes = 2 * len(bucket_widths(bucket, max_length)) + 2
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, shapes)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, shapes * 4)
    return torch.compile(model, dynamic=False, backend=BACKEND)
