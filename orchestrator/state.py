"""A sweep's own record on disk: which stages finished, the search's best configuration, and
the MLflow parent run. ``--resume`` reads it to continue without redoing finished work.

Layout under ``--storage`` (default ``./sweeps/<experiment>``)::

    cache/                 content-addressed caches shared by all sweeps here (tokenized data, ...)
    <sweep_id>/sweep.json  this record
    <sweep_id>/search/     the Tune experiment of the search stage (restorable)
    <sweep_id>/search-baseline/  the baseline's search (--tune-baseline)
    <sweep_id>/confirm/    the Tune experiment of the confirm stage (restorable)
    <sweep_id>/optuna.db   the Optuna study of the search stage
    <sweep_id>/results/    results.md, results.csv, results.html, ttest.csv
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables.publish import publish_file

STATE_FILE = "sweep.json"


class NoSweepToResume(Exception):
    """``--resume`` found nothing to continue. ``str()`` is one line for the user."""


@dataclass
class SweepState:
    sweep_id: str
    experiment: str
    parent_run_id: str = ""
    stages_done: list[str] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    best_value: float | None = None
    # --tune-baseline: the baseline search's best values (stage "search-baseline").
    baseline_best: dict[str, Any] = field(default_factory=dict)
    baseline_best_value: float | None = None
    complete: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    def save(self, sweep_dir: Path) -> None:
        """Write atomically: an interrupted write never leaves a half record."""
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with publish_file(sweep_dir / STATE_FILE) as tmp:
            tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True, default=str))

    @classmethod
    def load(cls, sweep_dir: Path) -> "SweepState":
        return cls(**json.loads((sweep_dir / STATE_FILE).read_text()))


def new_sweep_dir(storage: Path) -> Path:
    """A fresh, time-ordered sweep directory (``20261122-093000``; suffixed if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = storage / stamp, 1
    while candidate.exists():
        n += 1
        candidate = storage / f"{stamp}-{n}"
    candidate.mkdir(parents=True)
    return candidate


def find_sweep(storage: Path, which: str, experiment: str) -> Path:
    """The sweep to resume: ``which`` is a sweep id, or "latest" (the newest unfinished one)."""
    if which != "latest":
        path = storage / which
        if not (path / STATE_FILE).is_file():
            raise NoSweepToResume(f"--resume {which}: no sweep {path}; sweeps here: {_ids(storage) or 'none'}")
        return path
    candidates = [p.parent for p in sorted(storage.glob(f"*/{STATE_FILE}"), reverse=True)]
    unfinished = [p for p in candidates if not SweepState.load(p).complete]
    if not unfinished:
        raise NoSweepToResume(f"--resume: no unfinished {experiment} sweep under {storage}; "
                              "run without --resume to start one")
    return unfinished[0]


def _ids(storage: Path) -> str:
    return ", ".join(p.parent.name for p in sorted(storage.glob(f"*/{STATE_FILE}")))
