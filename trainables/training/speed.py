"""The training step under the loop's speed settings (``padding_free``, ``torch_compile``; both off by default).

One place decides, from the run's configuration, how a training batch is collated, which module the forward
runs on and how its loss is taken, so the loop reads the same with the settings on or off. Evaluation is
not touched: it always runs the model itself on padded batches, so the two settings change how fast a run
trains, never how it is scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from trainables.config import ConfigError, TrainConfig
from trainables.training import compilation, padding_free
from trainables.training.distributed import DistContext

Batch = dict[str, Any]


@dataclass
class TrainingStep:
    """How the loop turns a training batch into a loss: its collator, and the loss on the forward's module."""

    collate: Callable[[list[dict[str, Any]]], Batch]
    loss: Callable[[Batch], torch.Tensor]

    @staticmethod
    def samples(batch: Batch) -> int:
        """The sequences in ``batch`` (a packed batch is one row of several)."""
        offsets = batch.get(padding_free.OFFSETS)
        return len(offsets) - 1 if offsets is not None else batch["input_ids"].shape[0]


def training_step(cfg: TrainConfig, method: Any, model: torch.nn.Module, collate: Any, tokenizer: Any, *,
                  token_labels: bool) -> TrainingStep:
    """The step for ``cfg``: ``model`` (DDP-wrapped where distributed; padding-free attention already set by
    ``prepare_model``), the method's training collator ``collate`` (``method.wrap_collator`` of the task's),
    the ``tokenizer`` it pads with."""
    if cfg.padding_free:
        return TrainingStep(collate=padding_free.Flattening(collate),
                            loss=lambda batch: padding_free.packed_loss(model, batch, token_labels=token_labels))
    if cfg.torch_compile:
        collate = compilation.BucketPadding(collate, bucket=cfg.compile_bucket, max_length=cfg.max_length,
                                            pad_token_id=tokenizer.pad_token_id,
                                            left=tokenizer.padding_side == "left")
        forward = compilation.compiled(model, bucket=cfg.compile_bucket, max_length=cfg.max_length)
        return TrainingStep(collate=collate, loss=lambda batch: method.training_loss(forward, batch))
    return TrainingStep(collate=collate, loss=lambda batch: method.training_loss(model, batch))


def check_speed_settings(cfg: TrainConfig, method: Any, *, workers: int) -> None:
    """``ConfigError`` (one line) where ``cfg``'s speed settings cannot run for ``method`` (a ``Method`` class)
    on ``workers`` workers per trial: the sweep's edge check (``orchestrator.cli``) and the loop's."""
    if cfg.padding_free and not method.trains_plain_loss():
        raise ConfigError(f"padding_free applies to methods that train with the model's plain loss (baseline, "
                          f"btf, translate_train), not {method.name}; drop --set padding_free=true")
    if cfg.padding_free and workers > 1:
        raise ConfigError("padding_free runs one worker per trial (its packed forward is not DDP's); "
                          "use --workers-per-trial 1 or drop --set padding_free=true")


def check_model_folder(model_dir: str | Path) -> None:
    """``ConfigError`` (one line) where the model in ``model_dir`` (an HF folder) cannot train padding-free:
    read from its ``config.json`` at the sweep's edge, so the refusal comes before any trial starts."""
    config = Path(model_dir) / "config.json"
    model_type = json.loads(config.read_text()).get("model_type", "") if config.is_file() else ""
    reason = padding_free.unsupported_model_type(model_type)
    if reason:
        raise ConfigError(f"model {model_dir}: {reason}")


def prepare_model(cfg: TrainConfig, method: Any, model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """``model`` ready for ``cfg``'s settings before it is wrapped for DDP: padding-free attention where asked
    (``ConfigError``, one line, where the method, the model or the run cannot train padding-free)."""
    if not cfg.padding_free:
        return model
    check_speed_settings(cfg, method, workers=ctx.world_size)
    reason = padding_free.unsupported_model(model)
    if reason:
        raise ConfigError(reason)
    return padding_free.enable(model)
