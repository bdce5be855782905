"""The rows of a comparison across sweeps: each sweep's main arm and one shared baseline, paired by seed.

A sweep's *main arm* is the arm its search tuned (``Experiment.searched_arm``): ``salt`` for ``salt_xnli``,
``xmixup`` for ``xmixup_xnli``, ``btf_self_training`` for ``btf_*``. For a baseline experiment
(``baseline_xnli``) that is ``baseline_tuned``, the baseline searched with the same budget as the methods:
its untuned ``baseline`` arm is the shared baseline already, so the tuned one is the row that adds
something (is a method better than the baseline given the same search?).

The shared baseline is the ``baseline_arm`` (the arm the sweep itself tested against) of the baseline
experiment's sweep when one is compared, else of the first sweep that confirmed it: one row every other row
is t-tested against, rather than each method against its own sweep's copy. The rows come from the sweeps'
finished confirm runs (``orchestrator.results.collect_confirm_results``), so arms pair by seed exactly as
within a sweep (the sweeps were checked to share their confirm seeds: ``orchestrator.compare_sweeps``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from orchestrator.compare_sweeps import CompareRefused, SweepRecord
from orchestrator.experiments import ZERO_SHOT
from orchestrator.results import collect_confirm_results, runs_at_chance
from orchestrator.tracking import SweepTracker
from trainables.tasks import TaskSpec


@dataclass(frozen=True)
class Row:
    """A row of the comparison: which arm of which sweep it is."""

    name: str
    arm: str
    sweep: SweepRecord


@dataclass(frozen=True)
class Comparison:
    """The long results frame (arm = row name, seed, language, value), its rows (shared baseline first)
    and the seeds flagged at chance per row (``orchestrator.results.runs_at_chance``)."""

    results: pd.DataFrame
    rows: list[Row]
    at_chance: dict[str, list[int]] = field(default_factory=dict)

    @property
    def baseline(self) -> Row:
        return self.rows[0]

    @property
    def arms(self) -> list[str]:
        return [row.name for row in self.rows]

    def notes(self) -> list[str]:
        """Legend lines: every sweep read, and where each row (the shared baseline first) came from."""
        sweeps = list({row.sweep.run_id: row.sweep for row in self.rows}.values())
        lines = ["compared sweeps: " + "; ".join(sweep.label for sweep in sweeps)]
        base = self.baseline
        lines.append(f"row {base.name}, the shared baseline: arm {base.arm} of {base.sweep.label}; every other "
                     "row is paired with it by seed")
        lines += [f"row {row.name}: main arm {row.arm} of {row.sweep.label}" for row in self.rows[1:]]
        return lines


def main_arm(sweep: SweepRecord) -> str:
    """The arm the sweep's search tuned (see the module's docstring for the baseline experiments).

    A sweep of a comparison experiment (``compare_xnli``: one search per method) has no one main arm: its
    own table already sets every method beside the shared baseline, so it is refused here."""
    searched = sweep.experiment.searched_arm
    if searched is None:
        raise CompareRefused(f"{sweep.label} is itself a comparison of methods (one search each); its own results "
                             "table compares them: compare single-method sweeps here")
    return searched.name


def build_comparison(uri: str, sweeps: list[SweepRecord], task: TaskSpec) -> Comparison:
    """Each sweep's main arm and the shared baseline, read from the sweeps' finished confirm runs.

    Refuses (``CompareRefused``) a sweep without confirm runs of its main arm, and a set of sweeps none of
    which confirmed its baseline arm.
    """
    frames, at_chance = {}, {}
    for sweep in sweeps:
        tracker = SweepTracker(uri, sweep.mlflow_experiment)
        tracker.parent_run_id = sweep.run_id
        frames[sweep.run_id] = collect_confirm_results(tracker, task)
        at_chance[sweep.run_id] = runs_at_chance(tracker, [main_arm(sweep), sweep.experiment.baseline_arm])
    base_sweep = _baseline_sweep(sweeps, frames)
    picks = [(base_sweep, base_sweep.experiment.baseline_arm)]
    for sweep in sweeps:
        arm = main_arm(sweep)
        if not (frames[sweep.run_id]["arm"] == arm).any():
            raise CompareRefused(f"{sweep.label} has no finished confirm runs of its main arm {arm} (was it "
                                 "left out by --arms?); compare sweeps that confirmed it")
        picks.append((sweep, arm))
    rows, parts, flagged = [], [], {}
    for sweep, arm in picks:
        name = _unique(arm, {row.name for row in rows})
        rows.append(Row(name=name, arm=arm, sweep=sweep))
        frame = frames[sweep.run_id]
        parts.append(frame[frame["arm"] == arm].assign(arm=name))
        if arm in at_chance[sweep.run_id]:
            flagged[name] = at_chance[sweep.run_id][arm]
    results = pd.concat(parts, ignore_index=True)
    return Comparison(results=results, rows=rows, at_chance=flagged)


def _baseline_sweep(sweeps: list[SweepRecord], frames: dict[str, pd.DataFrame]) -> SweepRecord:
    """The baseline experiment's sweep when one is compared (and confirmed its baseline), else the first sweep
    that confirmed its baseline arm."""
    confirmed = [s for s in sweeps if (frames[s.run_id]["arm"] == s.experiment.baseline_arm).any()]
    if not confirmed:
        raise CompareRefused("none of the sweeps has finished confirm runs of its baseline arm (left out by "
                             "--arms?); add a sweep that confirmed one, e.g. --experiments "
                             f"baseline_{sweeps[0].task}")
    baseline_sweeps = [s for s in confirmed if s.experiment.method == ZERO_SHOT.method]
    return (baseline_sweeps or confirmed)[0]


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``, ... when two sweeps of one experiment bring the same arm."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate
