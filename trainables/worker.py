"""The function each Ray Train worker runs: the shared loop, wired to Ray Train.

Ray Train starts one process per worker (``ScalingConfig.num_workers``), sets up the process
group, and gives each its device; this file turns that into a ``DistContext`` and forwards the
loop's reports to ``ray.train.report``, which ``TuneReportCallback`` hands on to Tune. With
``keep_model`` the last report carries the selected weights as the run's checkpoint (a
self-training phase hands its model to the next one this way).
"""

from __future__ import annotations

import tempfile
from typing import Any

import ray.train
import ray.train.torch
import torch

from trainables.config import TrainConfig
from trainables.loop import DistContext, train_and_evaluate

TRAIN_NODE = "train_node"  # the Ray node id of rank 0, in every report


def train_loop_per_worker(config: dict[str, Any]) -> dict:
    """Entry point given to ``TorchTrainer``: ``config = {"train": TrainConfig.to_dict()}``.

    Returns the final metrics: Ray Train hands rank 0's return value to the driver
    (``Result.return_value``), where ``Result.metrics`` holds only reports that carried a checkpoint.
    """
    cfg = TrainConfig.from_dict(config["train"])
    context = ray.train.get_context()
    ctx = DistContext(
        rank=context.get_world_rank(),
        world_size=context.get_world_size(),
        device=ray.train.torch.get_device(),
        # Moves the model to the worker's device; wraps it in DDP when there are several workers.
        prepare_model=ray.train.torch.prepare_model,
    )
    # Every rank reports (Ray Train's report is collective); Tune keeps rank 0's metrics, which name
    # the node rank 0 trains on (the trial's MLflow run gets it as tag ``train_node``).
    node = ray.get_runtime_context().get_node_id()

    def report(metrics: dict) -> None:
        ray.train.report({**metrics, TRAIN_NODE: node})

    return train_and_evaluate(cfg, report=report, ctx=ctx,
                              final_report=_report_with_model(ctx.rank, node) if cfg.keep_model else None)


def _report_with_model(rank: int, node: str):
    def final_report(metrics: dict, model: torch.nn.Module) -> None:
        metrics = {**metrics, TRAIN_NODE: node}
        if rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder)  # safetensors + config: loads with from_pretrained
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))

    return final_report
