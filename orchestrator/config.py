"""The sweep's typed configuration: what the command line resolves to, validated once.

``SweepConfig`` is built by ``orchestrator.cli`` from the flags and the profile, checked
before Ray starts, printed by ``--dry-run`` and logged whole on the MLflow parent run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.experiments import BASELINE_SEARCH
from search_spaces.spec import Dimension

STAGES = ("search", "confirm")

DEFAULT_BOOTSTRAP = 1000
"""Resamples of the paired bootstrap over test examples. On by default: on 2 cores it costs 3.6 s for a
whole XNLI table (4 arms x 5 seeds x 15 languages x 5010 examples; bench/bootstrap.py), nothing beside
the sweep; ``--bootstrap 0`` turns it off."""

SEARCH_TRAINING_SEED = 9001
"""The training seed of search trials. A search picks the setting that did best *on its seed*; were
that seed also a confirm seed, the tuned arm would be favoured on exactly the seed it was selected
on. 9001 lies outside every seed list a sweep normally confirms on (1..N) and outside the voter seeds
self-training derives from them (seed + 1000 k); the command line refuses confirm seeds that include it
(docs/methods.md, "Seeds")."""


@dataclass
class Resources:
    """What one trial asks of the cluster. ``gpus_per_trial``: a number, or "auto" (``orchestrator.sharing``);
    None means auto if the cluster has GPUs, else 0."""

    gpus_per_trial: float | str | None = None
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    address: str | None = None
    # Trials at once; None: what the cluster fits when the sweep starts (an autoscaling cluster that
    # starts small needs it set to what it can grow to).
    max_concurrent_trials: int | None = None
    # Restarts of a trial's training run after a worker or its node was lost, each from its latest checkpoint.
    max_failures: int = 3
    # The local Ray's dashboard (a sweep without --address); off by default: on a small machine its
    # processes take ~15% of the CPU the trials need. A cluster's dashboard comes with `ray start`.
    ray_dashboard: bool = False


@dataclass
class SweepConfig:
    experiment: str
    profile: str
    model: str | None
    data_dir: str | None
    num_samples: int
    seeds: tuple[int, ...]
    # --languages: the source and the chosen targets, in the task's order (the CLI resolves the default to every
    # language of the task); empty: every language. The sweep's task follows it (``TaskSpec.restrict``).
    languages: tuple[str, ...] = ()
    sampler_seed: int = 0  # Optuna's TPE sampler (--sampler-seed)
    search_training_seed: int = SEARCH_TRAINING_SEED  # the (first) training seed of every search trial
    search_seeds: int = 1  # K: each search trial trains on K seeds and is scored by their mean
    select_on: str = "en-dev"
    asha: bool = False
    stages: tuple[str, ...] = STAGES
    arms: tuple[str, ...] = ()  # the arms the confirm stage runs (--arms); empty: every arm of the experiment
    resources: Resources = field(default_factory=Resources)
    storage: str = ""
    resume: str | None = None  # None: a new sweep; "latest" or a sweep id
    dry_run: bool = False
    probe: bool = False  # measure the training rate on the cluster first (orchestrator.probe)
    tracking_uri: str | None = None
    train_overrides: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Dimension] = field(default_factory=dict)
    # --tune-baseline: a second search, over the baseline's space with the method's budget.
    tune_baseline: bool = False
    # The spaces of the named searches (``Experiment.searches``: the baseline's of --tune-baseline, a comparison's
    # one per method), by search name; ``space`` is the main search's.
    spaces: dict[str, dict[str, Dimension]] = field(default_factory=dict)
    # --best-from: earlier sweeps whose finished searches give their methods' arms their best instead of a search.
    best_from: tuple[str, ...] = ()
    # The tables' statistics: family correction, interval of the paired difference, paired bootstrap
    # over test examples (resamples; 0: off).
    correction: str = "holm"
    ci_method: str = "t"
    bootstrap: int = DEFAULT_BOOTSTRAP
    # SALT's generalized XNLI evaluation (premise and hypothesis in different languages, 225 pairs) after each
    # confirm run's test pass, with its kept weights (--generalized-xnli; ``trainables.generalized``).
    generalized_xnli: bool = False
    # Each preparation step's sweep-level settings, by step key (``PrepareStep.key``: "salt", "xmixup", "btf"):
    # its flags (--salt-*, --xmixup-*) and the profile's values. Every registered step's, used or not.
    method_settings: dict[str, Any] = field(default_factory=dict)
    verbose: bool = False

    @property
    def search_training_seeds(self) -> tuple[int, ...]:
        """The K training seeds of every search trial (never confirm seeds)."""
        return tuple(range(self.search_training_seed, self.search_training_seed + self.search_seeds))

    @property
    def baseline_space(self) -> dict[str, Dimension]:
        """The space of the baseline's search (--tune-baseline), logged as ``baseline_space.*``."""
        return self.spaces.get(BASELINE_SEARCH, {})

    def space_of(self, search: str) -> dict[str, Dimension]:
        """The space of search ``search`` ("": the main one)."""
        return self.space if not search else self.spaces.get(search, {})

    @property
    def storage_path(self) -> Path:
        return Path(self.storage).expanduser().resolve()

    @property
    def cache_dir(self) -> Path:
        """Content-addressed caches shared by every sweep under this storage."""
        return self.storage_path / "cache"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["space"] = {k: str(v) for k, v in self.space.items()}
        out["baseline_space"] = {k: str(v) for k, v in self.baseline_space.items()}  # as sweeps before `spaces` saved it
        out["spaces"] = {name: {k: str(v) for k, v in space.items()} for name, space in self.spaces.items()}
        out["best_from"] = list(self.best_from)
        out["seeds"] = list(self.seeds)
        out["stages"] = list(self.stages)
        out["arms"] = list(self.arms)
        out["languages"] = list(self.languages)
        out["method_settings"] = {key: {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
                                  for key, values in out["method_settings"].items()}
        return out
