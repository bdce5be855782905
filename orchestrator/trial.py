"""The Tune trainable: one trial = one Ray Train run (the Train V2 pattern).

Ray 2.60 no longer takes a trainer as a Tune trainable (``Tuner(trainer)``). A trial is a
small driver function that resolves its configuration and starts a ``TorchTrainer``; the
``TuneReportCallback`` forwards the workers' reports to Tune. The driver asks for no CPU
(``TRIAL_DRIVER_RESOURCES``): the workers carry the CPUs and GPUs, and fractional CPU
requests from several drivers would otherwise keep whole-CPU workers from being placed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray.train
from ray import tune
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from orchestrator.plan import TrialResolver
from trainables.worker import train_loop_per_worker

TRIAL_DRIVER_RESOURCES = {"cpu": 0, "memory": 1}


@dataclass
class TrainLaunch:
    """How every trial of a sweep starts its Ray Train run."""

    storage_path: str
    num_workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    max_failures: int = 0

    def scaling_config(self) -> ray.train.ScalingConfig:
        resources: dict[str, float] = {"CPU": self.cpus_per_worker}
        if self.gpus_per_worker > 0:
            resources["GPU"] = self.gpus_per_worker
        return ray.train.ScalingConfig(num_workers=self.num_workers, use_gpu=self.gpus_per_worker > 0,
                                       resources_per_worker=resources)


def run_trial(config: dict[str, Any], *, resolver: TrialResolver, launch: TrainLaunch) -> None:
    train_cfg, _arm, _seed = resolver.resolve(config)
    trial_id = tune.get_context().get_trial_id()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"train": train_cfg.to_dict()},
        scaling_config=launch.scaling_config(),
        run_config=ray.train.RunConfig(
            name=f"train-{trial_id}",  # deterministic, so a restored trial finds its run
            storage_path=launch.storage_path,
            callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=launch.max_failures),
        ),
    )
    trainer.fit()


def trainable(resolver: TrialResolver, launch: TrainLaunch):
    return tune.with_resources(tune.with_parameters(run_trial, resolver=resolver, launch=launch),
                               TRIAL_DRIVER_RESOURCES)
