"""Optimisation: AdamW with the usual weight-decay groups, the learning-rate schedules, one optimizer step."""

from __future__ import annotations

from typing import Protocol

import torch


class OptimizerSettings(Protocol):
    learning_rate: float
    weight_decay: float


def adamw(model: torch.nn.Module, settings: OptimizerSettings, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (fused on CUDA); biases and LayerNorm weights get no weight decay (as in xtreme and HF Trainer)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or name.endswith(".bias") else decay).append(param)
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=settings.learning_rate, fused=device.type == "cuda")


def linear_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warmup to the learning rate, then linear decay to 0 at ``total_steps`` (fine-tuning)."""
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)


def constant_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int):
    """Linear warmup, then constant: step n does not depend on how many steps follow (BTF's MLM)."""
    from transformers import get_constant_schedule_with_warmup

    return get_constant_schedule_with_warmup(optimizer, warmup_steps)


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, max_grad_norm: float) -> None:
    """Clip the gradients' norm (``max_grad_norm`` 0: no clipping), step the optimizer and schedule, clear grads."""
    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
