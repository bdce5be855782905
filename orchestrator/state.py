"""A sweep's own record on disk: which stages finished, the search's best configuration, and
the MLflow parent run. ``--resume`` reads it to continue without redoing finished work.

Layout under ``--storage`` (default ``./sweeps/<experiment>``)::

    cache/                 content-addressed caches shared by all sweeps here (tokenized data, ...)
    <sweep_id>/sweep.json  this record
    <sweep_id>/search/     the Tune experiment of the search stage (restorable)
    <sweep_id>/search-<name>/  a named search: the baseline's (--tune-baseline), a comparison's per method
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
    best: dict[str, Any] = field(default_factory=dict)  # the main search's best values (stage "search")
    best_value: float | None = None
    # The named searches' best values and objectives, by search name (``Experiment.searches``: "baseline" of
    # --tune-baseline, stage "search-baseline"; a comparison's one per method, stage "search-<method>").
    other_best: dict[str, dict[str, Any]] = field(default_factory=dict)
    other_best_value: dict[str, float | None] = field(default_factory=dict)
    # Searches whose best came from an earlier sweep (--best-from), by search name: that sweep's id.
    best_from: dict[str, str] = field(default_factory=dict)
    complete: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    def best_of(self, search: str) -> dict[str, Any]:
        """The recorded best values of search ``search`` ("": the main one); empty before it ran."""
        return dict(self.best if not search else self.other_best.get(search, {}))

    def record_best(self, search: str, best: dict[str, Any], value: float | None) -> None:
        if not search:
            self.best, self.best_value = dict(best), value
        else:
            self.other_best[search], self.other_best_value[search] = dict(best), value

    def save(self, sweep_dir: Path) -> None:
        """Write atomically: an interrupted write never leaves a half record."""
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with publish_file(sweep_dir / STATE_FILE) as tmp:
            tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True, default=str))

    @classmethod
    def load(cls, sweep_dir: Path) -> "SweepState":
        data = json.loads((sweep_dir / STATE_FILE).read_text())
        # Sweeps before named searches recorded the --tune-baseline search on its own (``baseline_best``).
        old_best, old_value = data.pop("baseline_best", {}), data.pop("baseline_best_value", None)
        if old_best:
            data.setdefault("other_best", {})["baseline"] = old_best
            data.setdefault("other_best_value", {})["baseline"] = old_value
        return cls(**data)


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
