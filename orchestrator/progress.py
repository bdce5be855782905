"""The console's progress lines between a trial's start and end, so a user can follow a sweep that trains
for hours: a running trial's line at its evaluations, and the stage's line at each trial's end.

    [confirm] salt seed 3: step 1200/9375 (13 %), 85.3 samples/s, dev_acc 0.7312 (best 0.7401), ETA 27 min
    [confirm] 3 of 10 trials done (1 failed), 2 running, 5 left, ETA 1 h 05 min

A trial's numbers come from its training loop's report (``trainables.training.pace``: ``total_steps``,
``train_samples_per_second``, ``eta_seconds``); a search trial over several seeds reports the means of its
seed runs and each seed's own report, so its line says so and takes the slowest seed's ETA; a trial of
several training runs in a row (self-training's recipe) reports only when a phase ends, without steps, and
its line says only that. The stage's ETA is a mean finished trial's duration spread over the concurrency
the stage has had so far; until a trial finished it is unknown.

One line per event, never a redraw, so a log file stays readable: a trial's evaluation lines are at most
one per ``PROGRESS_EVERY_S`` (its first always printed). Everything here is a pure function or a clock
that takes the time as an argument; ``orchestrator.stages.ProgressPrinter`` prints what they make.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from orchestrator.seed_group import PER_SEED, SEARCH_SEEDS, is_final
from trainables.training.pace import ETA_SECONDS, SAMPLES_PER_SECOND, TOTAL_STEPS

PROGRESS_EVERY_S = 30.0
"""At most one evaluation line per trial in this many seconds: a smoke run evaluates every second or so."""

DONE, FAILED, RUNNING = ("TERMINATED", "ERROR"), "ERROR", "RUNNING"  # Tune's ``Trial.status`` values


def format_duration(seconds: float) -> str:
    """``45 s``, ``27 min``, ``2 h 05 min``: as precise as a reader of an ETA needs."""
    seconds = max(seconds, 0.0)
    if seconds < 59.5:  # not "60 s"
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def percent(step: int, total: int) -> int:
    """The share of the steps done, rounded, but 100 only at the last step (99.7 % is not done)."""
    share = round(100 * step / total) if total > 0 else 0
    return min(share, 99) if step < total else share


def trial_line(label: str, result: dict, objective: str) -> str | None:
    """A running trial's line for one of its reports; None for a report that is not a step of progress (the
    final one, which the trial's ``done`` line shows, or a failed run's last one)."""
    if is_final(result) or result.get("failed"):
        return None
    seeds = result.get(SEARCH_SEEDS)
    of_seeds = f" (means of {seeds:.0f} seeds)" if seeds else ""
    score = _score(result, objective)
    if "step" not in result:  # a recipe's trial: a phase ended (teachers, a round of students)
        return f"{label}: a phase of its recipe ended, {score}{of_seeds}" if score else None
    step, total = int(result["step"]), result.get(TOTAL_STEPS)
    parts = [f"step {step}/{total:.0f} ({percent(step, int(total))} %)" if total else f"step {step}"]
    if SAMPLES_PER_SECOND in result:
        parts.append(f"{result[SAMPLES_PER_SECOND]:.1f} samples/s" + (" per seed run" if seeds else ""))
    if score:
        parts.append(score + of_seeds)
    eta = _eta(result)
    if eta is not None:
        parts.append(f"ETA {format_duration(eta)}")
    return f"{label}: {', '.join(parts)}"


def _score(result: dict, objective: str) -> str:
    """``dev_acc 0.7312 (best 0.7401)``: this evaluation's score and the best so far (the kept checkpoint's)."""
    best, now = result.get(objective), result.get(f"eval_{objective}")
    if best is None:
        return ""
    if now is None:
        return f"{objective} {best:.4f}"
    return f"{objective} {now:.4f} (best {best:.4f})"


def _eta(result: dict) -> float | None:
    """The run's ETA; of a trial over seeds, the slowest seed run's (the trial ends with it)."""
    per_seed = result.get(PER_SEED)
    if isinstance(per_seed, dict) and per_seed:
        etas = [seed.get(ETA_SECONDS) for seed in per_seed.values()]
        return max(etas) if all(_finite(eta) for eta in etas) else None
    eta = result.get(ETA_SECONDS)
    return eta if _finite(eta) else None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


class Throttle:
    """Says whether a key's line is due: the first always, then at most one per ``every_s`` seconds."""

    def __init__(self, every_s: float = PROGRESS_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.every_s, self.clock = every_s, clock
        self._last: dict[str, float] = {}

    def due(self, key: str) -> bool:
        now = self.clock()
        if key in self._last and now - self._last[key] < self.every_s:
            return False
        self._last[key] = now
        return True


@dataclass(frozen=True)
class StageCounts:
    expected: int
    done: int
    failed: int
    running: int

    @property
    def left(self) -> int:
        return max(self.expected - self.done - self.running, 0)


def stage_counts(trials: Iterable, *, expected: int, ended: str | None = None) -> StageCounts:
    """Count the stage's trials by their ``status`` (Tune's ``Trial``s). ``ended`` is the id of the trial whose
    end is being reported: Tune calls ``on_trial_complete`` while its status still says RUNNING. Trials the
    searcher has not made yet are ``left`` (``expected`` is the stage's whole count)."""
    done = failed = running = 0
    for trial in trials:
        status = "TERMINATED" if trial.trial_id == ended and trial.status == RUNNING else trial.status
        done += status in DONE
        failed += status == FAILED
        running += status == RUNNING
    return StageCounts(expected=expected, done=done, failed=failed, running=running)


def stage_eta(left: int, *, durations: list[float], running_elapsed: list[float], concurrency: float) -> float | None:
    """Seconds until the stage ends, or None before a trial finished (nothing to go by).

    The work left is a mean finished trial's duration for every trial not started and what a mean trial
    has still to do for every running one, shared over the concurrency observed; but never less than the
    longest running trial's rest, nor a mean trial if one is still to start.
    """
    if not durations:
        return None
    mean = sum(durations) / len(durations)
    rests = [max(mean - elapsed, 0.0) for elapsed in running_elapsed]
    work = left * mean + sum(rests)
    return max(work / max(concurrency, 1.0), max(rests, default=0.0), mean if left else 0.0)


def stage_line(counts: StageCounts, eta: float | None) -> str:
    """``3 of 10 trials done (1 failed), 2 running, 5 left, ETA 14 min``; nothing about an ETA once none is left."""
    failed = f" ({counts.failed} failed)" if counts.failed else ""
    line = f"{counts.done} of {counts.expected} trials done{failed}, {counts.running} running, {counts.left} left"
    if not counts.running and not counts.left:
        return line
    return f"{line}, ETA {format_duration(eta) if eta is not None else 'unknown'}"


class StageClock:
    """When this session saw each trial start and end: the finished trials' durations, the running ones'
    elapsed time, and the stage's mean concurrency (trial-seconds over wall seconds since its first start).

    Trials that ended in an earlier session of a resumed stage are not timed here: their durations are unknown.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.started: dict[str, float] = {}
        self.durations: list[float] = []  # of the trials that completed (a failure's duration says nothing)
        self._busy = 0.0  # trial-seconds of the trials that ended
        self._first: float | None = None

    def start(self, trial_id: str) -> None:
        now = self.clock()
        self._first = now if self._first is None else self._first
        self.started[trial_id] = now

    def end(self, trial_id: str, *, completed: bool) -> float:
        """The trial's duration (0.0 if its start was not seen)."""
        began = self.started.pop(trial_id, None)
        took = self.clock() - began if began is not None else 0.0
        self._busy += took
        if completed and began is not None:
            self.durations.append(took)
        return took

    def running_elapsed(self) -> list[float]:
        now = self.clock()
        return [now - began for began in self.started.values()]

    def concurrency(self) -> float:
        if self._first is None:
            return 1.0
        wall = self.clock() - self._first
        busy = self._busy + sum(self.running_elapsed())
        return busy / wall if wall > 0 else 1.0
