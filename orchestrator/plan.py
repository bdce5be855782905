"""How a trial's configuration is put together, in one place.

Precedence, lowest first: the training loop's defaults (``TrainConfig``: xtreme settings) <
the method's paper defaults (``search_spaces.<method>.DEFAULTS``) < the profile's and the
user's fixed settings (``--set``) < the arm's own switches (ablations must hold) < the search
stage's best values (tuned arms) < the values a search trial samples < the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.experiments import Arm
from search_spaces import get_space
from trainables.config import TrainConfig
from trainables.methods import get_method


@dataclass
class TrialResolver:
    """Turns what Tune samples for a trial into the trial's whole ``TrainConfig``.

    Picklable: Tune ships it to every trial driver, and the MLflow callback uses the same
    object to log each trial's whole configuration.
    """

    base: dict[str, Any]  # TrainConfig.to_dict() with task, model, data and selection filled in
    arms: dict[str, Arm]
    fixed: dict[str, Any] = field(default_factory=dict)  # profile + --set
    best: dict[str, Any] = field(default_factory=dict)  # the search stage's best values
    searched_arm: str = ""
    search_seed: int = 1  # the training seed of every search trial

    def arm_config(self, arm_name: str, seed: int, sampled: dict[str, Any] | None = None) -> TrainConfig:
        arm = self.arms[arm_name]
        cfg = TrainConfig.from_dict(self.base).replace(method=arm.method)
        cfg = cfg.replace(**get_space(arm.method).defaults).replace(**self.fixed).replace(**arm.overrides)
        if arm.tuned:
            cfg = cfg.replace(**self.best)
        if sampled:
            cfg = cfg.replace(**sampled)
        # Knobs of other arms' methods (e.g. SALT's thresholds in the baseline arm) do not apply.
        method = get_method(arm.method)
        cfg.method_params = {k: v for k, v in cfg.method_params.items() if method.accepts(k)}
        return cfg.replace(seed=seed)

    def resolve(self, trial_config: dict[str, Any]) -> tuple[TrainConfig, str, int]:
        """``(config, arm, seed)`` of a trial: confirm trials name arm and seed, search trials sample knobs."""
        if "pair" in trial_config:  # a confirm trial: {"pair": {"arm": ..., "seed": ...}}
            arm, seed = trial_config["pair"]["arm"], int(trial_config["pair"]["seed"])
            return self.arm_config(arm, seed), arm, seed
        return self.arm_config(self.searched_arm, self.search_seed, trial_config), self.searched_arm, self.search_seed


def describe_plan(cfg, experiment, task) -> str:
    """The resolved plan of a sweep, as ``--dry-run`` prints it (nothing is started)."""
    import os

    from orchestrator.preparation import describe_preparation
    from orchestrator.profiles import PROFILES
    from search_spaces.spec import describe

    profile = PROFILES[cfg.profile]
    resolver = TrialResolver(base=TrainConfig(task=task.name, model=cfg.model or "(smoke model)",
                                              languages=task.languages, select_on=cfg.select_on).to_dict(),
                             arms={arm.name: arm for arm in experiment.arms}, fixed=dict(cfg.train_overrides),
                             searched_arm=experiment.searched_arm.name, search_seed=cfg.seeds[0])
    preparation, space = describe_preparation(cfg, experiment, task)
    searching = "search" in cfg.stages and cfg.num_samples > 0 and bool(cfg.space)
    n_search = cfg.num_samples if searching else 0
    n_confirm = len(experiment.confirm_arms) * len(cfg.seeds) if "confirm" in cfg.stages else 0
    res = cfg.resources
    gpus = "1 if the cluster has GPUs, else 0" if res.gpus_per_trial is None else f"{res.gpus_per_trial:g}"
    where = f"join Ray at {res.address}" if res.address else f"local Ray on this machine ({os.cpu_count()} CPUs)"
    model = cfg.model or "tiny BERT built offline (smoke)"
    data = cfg.data_dir or ("generated in the task's schema (smoke)" if profile.builds_smoke_assets
                            else f"hub {task.hub_id}")
    first, searched = experiment.arms[0], experiment.searched_arm
    training = [_training_line(resolver.arm_config(first.name, cfg.seeds[0]), "training    ")]
    if searched.method != first.method:  # a method with its own paper settings (X-Mixup: lr 5e-6, batch 64, 4 epochs)
        training = [_training_line(resolver.arm_config(first.name, cfg.seeds[0]), f"training     {first.method}:"),
                    _training_line(resolver.arm_config(searched.name, cfg.seeds[0]),
                                   f"             {searched.method} (before the search):")]
    lines = [
        f"experiment   {experiment.name}: {experiment.description}",
        f"profile      {profile.name}: {profile.description}",
        f"task         {task.name}: {len(task.languages)} languages ({' '.join(task.languages)}); "
        f"train on {task.source_language} only; metric {task.metric}",
        f"model        {model}",
        f"data         {data}",
        "stages       " + " -> ".join(
            ([f"search ({n_search} trials, Optuna TPE seed {cfg.search_seed}, objective dev_{task.metric} on "
              f"{cfg.select_on}, ASHA {'on' if cfg.asha else 'off'}, training seed {cfg.seeds[0]})"] if searching else [])
            + ([f"confirm ({'every arm' if not experiment.confirmed else '--arms'} x every seed)"] if n_confirm else [])),
        f"search space {describe(space) if searching else '(no search)'}",
        *preparation,
        "arms         " + "; ".join(
            f"{arm.name} [{arm.method}{', tuned' if arm.tuned else ', paper defaults'}"
            + (", " + ", ".join(f"{k}={v}" for k, v in arm.overrides.items()) if arm.overrides else "") + "]"
            for arm in experiment.confirm_arms)
        + (f"; t-tests vs {experiment.baseline_arm}" if any(arm.name == experiment.baseline_arm
                                                          for arm in experiment.confirm_arms) else "; no t-tests")
        + (f" (--arms: {len(experiment.confirm_arms)} of {len(experiment.arms)})" if experiment.confirmed else ""),
        f"seeds        {', '.join(map(str, cfg.seeds))}",
        f"trials       {n_search} search + {n_confirm} confirm = {n_search + n_confirm}",
        f"resources    per trial {res.workers_per_trial} worker(s) x {res.cpus_per_worker:g} CPU, GPUs per trial: "
        f"{gpus}; {where}; concurrent trials = "
        + (str(res.max_concurrent_trials) if res.max_concurrent_trials else "what the cluster fits")
        + f"; a lost worker restarts a trial from its last checkpoint up to {res.max_failures} time(s)",
        *training,
        f"storage      {cfg.storage_path}" + (f" (resume {cfg.resume})" if cfg.resume else ""),
        f"tracking     {cfg.tracking_uri or 'sqlite:///' + os.path.join(os.getcwd(), 'mlflow.db')}",
    ]
    return "\n".join(lines)


def _training_line(train: TrainConfig, label: str) -> str:
    return (f"{label} lr {train.learning_rate:g}, batch {train.per_device_batch_size} x accumulation "
            f"{train.grad_accum_steps} x workers, {train.num_train_epochs:g} epochs, max length {train.max_length}, "
            f"warmup {train.warmup_ratio:g}, weight decay {train.weight_decay:g}, eval every {train.eval_every_steps} "
            f"steps, bf16 {'on (where supported)' if train.bf16 else 'off'}")
