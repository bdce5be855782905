"""The Tune trainable: one trial = one Ray Train run (the Train V2 pattern), or a recipe of them.

Ray 2.60 no longer takes a trainer as a Tune trainable (``Tuner(trainer)``). A trial is a
small driver function that resolves its configuration and starts a ``TorchTrainer``; the
``TuneReportCallback`` forwards the workers' reports to Tune. The driver asks for no CPU
(``TRIAL_DRIVER_RESOURCES``): the workers carry the CPUs and GPUs, and fractional CPU
requests from several drivers would otherwise keep whole-CPU workers from being placed.

Faults: the drivers run on the head node (a sliver of its ``node:__internal_head__`` resource),
and so do the Train controllers they start, so removing a worker node never takes a trial's
control with it. Ray Train restarts a run whose worker died (``FailureConfig(max_failures)``)
from its latest checkpoint, on whatever node has room; Tune retries a driver that died. A run
that diverged fails at once with its reason (``TrialFailed``): retrying it would diverge again.

Self-training is several jobs in a row (teachers, a Ray Data pseudo-labelling pass, students),
so its trial driver runs ``trainables.self_training.recipe`` with ``TrainLaunch.fit`` and a
Ray Data labeller on the resources the trial's training runs use in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray.train
from ray import tune
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from orchestrator.plan import TrialResolver
from trainables.config import TrainConfig
from trainables.worker import FAILED, train_loop_per_worker

# No CPU, and a sliver of the head node's own resource: drivers (and their Train controllers) stay on the
# head, which a sweep cannot lose without losing its driver too.
TRIAL_DRIVER_RESOURCES = {"cpu": 0, "memory": 1, "node:__internal_head__": 0.001}

TRIAL_DRIVER_RETRIES = 1  # Tune starts a trial's driver again once if it dies (its Train run then resumes)


class TrialFailed(RuntimeError):
    """A training run ended without a result it could report (its loss diverged); the message says why."""


@dataclass
class TrainLaunch:
    """How every trial of a sweep starts its Ray Train runs."""

    storage_path: str
    num_workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    max_failures: int = 3  # restarts of a run whose worker died (a lost node), each from its latest checkpoint

    def scaling_config(self) -> ray.train.ScalingConfig:
        resources: dict[str, float] = {"CPU": self.cpus_per_worker}
        if self.gpus_per_worker > 0:
            resources["GPU"] = self.gpus_per_worker
        return ray.train.ScalingConfig(num_workers=self.num_workers, use_gpu=self.gpus_per_worker > 0,
                                       resources_per_worker=resources)

    def fit(self, cfg: TrainConfig, name: str, *, forward: bool = True):
        """One Ray Train run of ``cfg``; its reports reach Tune when ``forward``. Returns Ray's ``Result``.

        ``name`` is deterministic per trial and phase, so a restored trial finds its runs.
        """
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={"train": cfg.to_dict()},
            scaling_config=self.scaling_config(),
            run_config=ray.train.RunConfig(
                name=name,
                storage_path=self.storage_path,
                callbacks=[TuneReportCallback()] if forward else [],
                failure_config=ray.train.FailureConfig(max_failures=self.max_failures),
                # The latest checkpoint only: a run goes on from it, and a finished run's is its outcome.
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            ),
        )
        result = trainer.fit()
        failed = (result.return_value or {}).get(FAILED)
        if failed:
            raise TrialFailed(failed)
        return result


def run_trial(config: dict[str, Any], *, resolver: TrialResolver, launch: TrainLaunch) -> None:
    train_cfg, _arm, _seed = resolver.resolve(config)
    trial_id = tune.get_context().get_trial_id()
    if train_cfg.method == "self_training":
        _run_self_training(train_cfg, launch, trial_id)
    else:
        launch.fit(train_cfg, f"train-{trial_id}")


def _run_self_training(cfg: TrainConfig, launch: TrainLaunch, trial_id: str) -> None:
    from transformers import AutoTokenizer

    from trainables.methods.self_training import SelfTraining
    from trainables.self_training.pseudo_labels import label_with_ray_data
    from trainables.self_training.recipe import PhaseResult, run_self_training
    from trainables.tasks import get_task

    def fit(phase_cfg: TrainConfig, phase: str) -> PhaseResult:
        result = launch.fit(phase_cfg, f"train-{trial_id}-{phase}", forward=False)
        kept = result.checkpoint.path if phase_cfg.keep_model and result.checkpoint else None
        return PhaseResult(dict(result.return_value or {}), kept)

    task = get_task(cfg.task)
    pad_token_id = AutoTokenizer.from_pretrained(cfg.model).pad_token_id or 0
    agreement = SelfTraining.parse_params(cfg.method_params).agreement

    def label(parts, model_dirs):
        return label_with_ray_data(parts, model_dirs, num_labels=task.num_labels, token_task=task.kind == "token",
                                   agreement=agreement,
                                   pad_token_id=pad_token_id,
                                   gpus_per_actor=launch.gpus_per_worker * launch.num_workers,
                                   concurrency=1)

    work_dir = Path(launch.storage_path) / f"train-{trial_id}-pseudo"
    run_self_training(cfg, fit=fit, label=label, report=tune.report, work_dir=work_dir)


def trainable(resolver: TrialResolver, launch: TrainLaunch):
    return tune.with_resources(tune.with_parameters(run_trial, resolver=resolver, launch=launch),
                               TRIAL_DRIVER_RESOURCES)
