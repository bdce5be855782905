"""The function each Ray Train worker runs: the shared loop, wired to Ray Train.

Ray Train starts one process per worker (``ScalingConfig.num_workers``), sets up the process
group, and gives each its device; this file turns that into a ``DistContext`` and gives the loop
the run's Ray Train checkpoints as its store: reports reach Tune through ``TuneReportCallback``,
and a worker group that Ray Train restarts after a fault (``FailureConfig``) goes on from the
latest checkpoint. With ``keep_model`` the last checkpoint holds the selected weights (a
self-training phase hands its model to the next one this way).
"""

from __future__ import annotations

from typing import Any

import ray.train
import ray.train.torch

from trainables import faults
from trainables.checkpoints import RayTrainStore
from trainables.config import TrainConfig
from trainables.loop import train_and_evaluate
from trainables.training.distributed import DistContext
from trainables.training.divergence import TrainingDiverged

TRAIN_NODE = "train_node"  # the Ray node id of rank 0, in every report
FAILED = "failed"  # key of the return value of a run that cannot succeed: the reason


def train_loop_per_worker(config: dict[str, Any]) -> dict:
    """Entry point given to ``TorchTrainer``: ``config = {"train": TrainConfig.to_dict()}``.

    Returns the final metrics: Ray Train hands rank 0's return value to the driver
    (``Result.return_value``), where ``Result.metrics`` holds only reports that carried a checkpoint.
    A diverged run returns ``{FAILED: reason}`` rather than raising: Ray Train would retry it, and it
    would diverge again.
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
    store = RayTrainStore(ctx.rank, extra={TRAIN_NODE: ray.get_runtime_context().get_node_id()},
                          full_from_step=faults.storage_full_step(cfg.seed))
    try:
        return train_and_evaluate(cfg, ctx=ctx, store=store)
    except TrainingDiverged as error:
        return {FAILED: str(error)}
