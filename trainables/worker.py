"""The function each Ray Train worker runs: the shared loop, wired to Ray Train.

Ray Train starts one process per worker (``ScalingConfig.num_workers``), sets up the process
group, and gives each its device; this file turns that into a ``DistContext`` and forwards the
loop's reports to ``ray.train.report``, which ``TuneReportCallback`` hands on to Tune.
"""

from __future__ import annotations

from typing import Any

import ray.train
import ray.train.torch

from trainables.config import TrainConfig
from trainables.loop import DistContext, train_and_evaluate


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Entry point given to ``TorchTrainer``: ``config = {"train": TrainConfig.to_dict()}``."""
    cfg = TrainConfig.from_dict(config["train"])
    context = ray.train.get_context()
    ctx = DistContext(
        rank=context.get_world_rank(),
        world_size=context.get_world_size(),
        device=ray.train.torch.get_device(),
        # Moves the model to the worker's device; wraps it in DDP when there are several workers.
        prepare_model=ray.train.torch.prepare_model,
    )
    # Every rank reports (Ray Train's report is collective); Tune keeps rank 0's metrics.
    train_and_evaluate(cfg, report=ray.train.report, ctx=ctx)
