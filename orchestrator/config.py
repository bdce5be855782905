"""The sweep's typed configuration: what the command line resolves to, validated once.

``SweepConfig`` is built by ``orchestrator.cli`` from the flags and the profile, checked
before Ray starts, printed by ``--dry-run`` and logged whole on the MLflow parent run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_spaces.spec import Dimension
from trainables.btf.mlm import BtfSettings
from trainables.salt.scan import ScanSettings

STAGES = ("search", "confirm")


@dataclass
class Resources:
    """What one trial asks of the cluster. ``gpus_per_trial=None`` means 1 if the cluster has GPUs."""

    gpus_per_trial: float | None = None
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


@dataclass(frozen=True)
class TranslationSettings:
    """X-Mixup experiments: where the translations come from, and the mixup layers searched."""

    translations: str | None = None  # a local directory or hub dataset id; None: generated (smoke) or an error
    layers: tuple[int, ...] | None = None  # None: the paper's {1, 4, 8, 12} that the encoder has


@dataclass
class SweepConfig:
    experiment: str
    profile: str
    model: str | None
    data_dir: str | None
    num_samples: int
    seeds: tuple[int, ...]
    search_seed: int = 0
    select_on: str = "en-dev"
    asha: bool = False
    stages: tuple[str, ...] = STAGES
    arms: tuple[str, ...] = ()  # the arms the confirm stage runs (--arms); empty: every arm of the experiment
    resources: Resources = field(default_factory=Resources)
    storage: str = ""
    resume: str | None = None  # None: a new sweep; "latest" or a sweep id
    dry_run: bool = False
    tracking_uri: str | None = None
    train_overrides: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Dimension] = field(default_factory=dict)
    salt: ScanSettings = field(default_factory=ScanSettings)  # SALT experiments only
    xmixup: TranslationSettings = field(default_factory=TranslationSettings)  # X-Mixup experiments only
    btf: BtfSettings = field(default_factory=BtfSettings)  # BTF + self-training experiments only: the MLM run
    verbose: bool = False

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
        out["seeds"] = list(self.seeds)
        out["stages"] = list(self.stages)
        out["arms"] = list(self.arms)
        out["salt"]["languages"] = list(self.salt.languages) if self.salt.languages else None
        out["xmixup"]["layers"] = list(self.xmixup.layers) if self.xmixup.layers else None
        return out
