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

A confirm trial's final test pass also writes every test example's prediction
(``predictions_path``: beside its Ray Train run, on the sweep's shared storage); the MLflow
callback attaches the file to the trial's run, for the paired bootstrap.

A method of several jobs in a row (self-training: teachers, a Ray Data pseudo-labelling pass,
students) names a recipe in its spec (``MethodSpec.recipe``); the trial driver runs it with
``TrainLaunch.fit`` and the resources the trial's training runs use in turn (``RecipeTools``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray.train
from ray import tune
from ray.train.torch import TorchTrainer
from ray.train import UserCallback
from ray.tune.integration.ray_train import TuneReportCallback

from orchestrator.plan import TrialResolver
from orchestrator.seed_group import SeedGroup
from trainables.config import TrainConfig
from trainables.disk_space import EndRunOnFullDisk
from trainables.methods import get_spec
from trainables.method_spec import PhaseResult, RecipeTools
from trainables.predictions import PREDICTIONS_FILE
from trainables.training.memory import largest_peaks
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

    def fit(self, cfg: TrainConfig, name: str, *, forward: bool = True, callbacks: list | None = None):
        """One Ray Train run of ``cfg``; its reports reach Tune when ``forward``, and ``callbacks`` (Ray Train
        ``UserCallback``s) get them. A full disk ends the run without its restarts (``EndRunOnFullDisk``).
        Returns Ray's ``Result``.

        ``name`` is deterministic per trial and phase, so a restored trial finds its runs.
        """
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={"train": cfg.to_dict()},
            scaling_config=self.scaling_config(),
            run_config=ray.train.RunConfig(
                name=name,
                storage_path=self.storage_path,
                callbacks=[*([TuneReportCallback()] if forward else []), *(callbacks or []), EndRunOnFullDisk()],
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


def predictions_path(storage_path: str, trial_id: str) -> str:
    """Where a confirm trial's test predictions go: beside its Ray Train run, on the sweep's shared storage."""
    return str(Path(storage_path) / f"train-{trial_id}" / PREDICTIONS_FILE)


class SeedReportCallback(UserCallback):
    """Sends a seed run's reports (rank 0's) to its trial driver, which averages the seeds for Tune.

    Runs in the Train run's controller, another process: the reports cross by a Ray queue."""

    def __init__(self, queue, seed: int):
        self.queue, self.seed = queue, seed

    def after_report(self, run_context, metrics: list[dict], checkpoint) -> None:
        self.queue.put((self.seed, dict(metrics[0])))


def run_trial(config: dict[str, Any], *, resolver: TrialResolver, launch: TrainLaunch) -> None:
    train_cfg, _arm, _seed = resolver.resolve(config)
    trial_id = tune.get_context().get_trial_id()
    if "pair" in config:  # a confirm trial: its predictions are the evidence of the paired bootstrap
        train_cfg = train_cfg.replace(predictions_path=predictions_path(launch.storage_path, trial_id))
    if "pair" not in config and len(resolver.search_seeds) > 1:
        _run_seed_group(train_cfg, resolver.search_seeds, launch, trial_id, objective=resolver.objective)
    elif get_spec(train_cfg.method).recipe is not None:
        _run_recipe(train_cfg, launch, f"train-{trial_id}", report=tune.report)
    else:
        launch.fit(train_cfg, f"train-{trial_id}")


def _run_seed_group(cfg: TrainConfig, seeds: tuple[int, ...], launch: TrainLaunch, trial_id: str, *,
                    objective: str) -> None:
    """A search trial over several seeds (``orchestrator.seed_group``): one training run per seed, all at
    once (Ray places them where there is room), their evaluations averaged into the trial's reports.

    Each seed run has its own deterministic name (``train-<trial>-seed<s>``), so a restarted driver
    resumes every seed from its own checkpoint, and a finished seed returns its stored outcome.
    """
    from ray.util.queue import Empty, Queue

    group = SeedGroup(seeds, objective)
    # Outside the trial's placement group (like the Train runs' own controllers), on the head with the driver.
    queue = Queue(actor_options={"num_cpus": 0, "resources": {"node:__internal_head__": 0.001},
                                 "scheduling_strategy": "DEFAULT"})

    def run(seed: int) -> dict:
        seed_cfg, name = cfg.replace(seed=seed), f"train-{trial_id}-seed{seed}"
        if get_spec(seed_cfg.method).recipe is not None:
            return _run_recipe(seed_cfg, launch, name, report=lambda metrics: queue.put((seed, metrics)))
        return dict(launch.fit(seed_cfg, name, forward=False,
                               callbacks=[SeedReportCallback(queue, seed)]).return_value or {})

    with ThreadPoolExecutor(max_workers=len(seeds), thread_name_prefix="seed-run") as pool:
        futures = {pool.submit(run, seed): seed for seed in seeds}
        while True:
            finished = all(future.done() for future in futures)
            try:
                seed, metrics = queue.get(timeout=0.5)
            except Empty:
                if finished:
                    break
                continue
            for report in group.add(seed, metrics):
                tune.report(report)
        finals = {seed: future.result() for future, seed in futures.items()}  # a failed seed fails the trial
    tune.report(group.final(finals))


def _run_recipe(cfg: TrainConfig, launch: TrainLaunch, name: str, *, report) -> dict:
    """A trial of several training runs: the method's recipe, each phase one Ray Train run ``<name>-<phase>``.

    Its reports carry the largest peak memory of the phases so far (``trainables.training.memory``), not the
    last phase's: the phases run one after another, so the trial needed the largest."""
    peaks: dict[str, float] = {}

    def fit(phase_cfg: TrainConfig, phase: str) -> PhaseResult:
        result = launch.fit(phase_cfg, f"{name}-{phase}", forward=False)
        kept = result.checkpoint.path if phase_cfg.keep_model and result.checkpoint else None
        metrics = dict(result.return_value or {})
        peaks.update(largest_peaks(peaks, metrics))
        return PhaseResult(metrics, kept)

    def report_with_peaks(metrics: dict) -> None:
        report({**metrics, **largest_peaks(peaks, metrics)})

    tools = RecipeTools(fit=fit, report=report_with_peaks, work_dir=Path(launch.storage_path) / f"{name}-pseudo",
                        gpus_per_actor=launch.gpus_per_worker * launch.num_workers)
    result = get_spec(cfg.method).recipe(cfg, tools)
    return {**result, **largest_peaks(peaks, result)}


def trainable(resolver: TrialResolver, launch: TrainLaunch):
    return tune.with_resources(tune.with_parameters(run_trial, resolver=resolver, launch=launch),
                               TRIAL_DRIVER_RESOURCES)
