"""The BTF MLM job's settings: shared by its driver (``mlm``: the plan and cache key) and its worker (``worker``).

Its own module so that neither imports the other for it: ``mlm`` imports ``worker`` (to start
the job), never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BtfSettings:
    """The MLM job's hyper-parameters (all of them enter the cache key)."""

    learning_rate: float = 5e-5
    batch_size: int = 32  # sequences per optimizer step, over all workers
    max_length: int = 128
    mlm_probability: float = 0.15
    warmup_steps: int = 0  # steps, not a ratio: a ratio of the largest step count would change the shorter runs
    seed: int = 0
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0  # 0: no clipping (1.0 is Hugging Face's run_mlm default)
    bf16: bool = True  # bf16 autocast on GPUs that support it; full precision elsewhere

    def validate(self) -> None:
        checks = [
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.max_length >= 3, f"max_length must be >= 3 (two special tokens and a word), got {self.max_length}"),
            (0 < self.mlm_probability < 1, f"mlm_probability must be in (0, 1), got {self.mlm_probability}"),
            (self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.max_grad_norm >= 0, f"max_grad_norm must be >= 0 (0: no clipping), got {self.max_grad_norm}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"BTF settings: {message}")
