"""A search trial scored over several seeds: K training runs of one sampled setting, one mean for Optuna.

On XNLI-size tasks the spread between seeds of one setting (0.5-1 point) is as large as the
differences a search ranks, so one seed per trial largely ranks noise. With ``--search-seeds K``
a search trial trains its setting on K seeds (none of them a confirm seed), each its own Ray Train
run that Ray places wherever there is room, and reports to Tune:

* at each evaluation, once **every** seed has made its n-th report, the mean over the seeds of
  that report (the seeds of one setting evaluate at the same steps, so the n-th reports are the
  same step): a curve of means that ASHA can stop early, like a single run's;
* at the end, the mean of the seeds' final metrics (``dev_<metric>`` is what Optuna records) with
  ``dev_<metric>_std`` and ``search_seeds`` (K) beside it.

Every report carries ``per_seed`` (seed -> that seed's own report), from which the MLflow callback
logs each seed's run under the trial's run. A seed that fails (a diverged loss) fails the trial: a
setting that diverges on one seed in K is not one to pick.

Ray's own ``tune.search.Repeater`` does the same for plain trainables but reports only the mean,
has known restore bugs (ray#19879, ray#43489) and does not fit a Train V2 trial driver.

:class:`SeedGroup` is the bookkeeping alone (no Ray): ``orchestrator.trial`` runs the seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trainables.training.memory import PEAK_MEMORY_METRICS

PER_SEED = "per_seed"
"""Key of a seed group's report that holds each seed's own report (seed as a string -> metrics)."""
SEARCH_SEEDS = "search_seeds"
"""Key of a seed group's report: how many seeds its means are over."""


def search_training_seeds(first: int, count: int) -> tuple[int, ...]:
    """The training seeds of every search trial: ``first, first + 1, ..., first + count - 1``."""
    return tuple(range(first, first + count))


def is_final(metrics: dict) -> bool:
    """A run's last report (its final metrics: test scores of the kept checkpoint), not an evaluation."""
    return any(key.startswith("test_") for key in metrics)


@dataclass
class SeedGroup:
    """Collects the reports of one trial's seed runs and says when a mean over all of them is due."""

    seeds: tuple[int, ...]
    objective: str  # "dev_acc": the selection score, reported with its std
    _reports: dict[int, list[dict]] = field(default_factory=dict)
    _emitted: int = 0

    def __post_init__(self) -> None:
        self._reports = {seed: [] for seed in self.seeds}

    def add(self, seed: int, metrics: dict) -> list[dict]:
        """Record one evaluation report of ``seed``; return the group reports it completes (oldest first).

        A final report (test scores) is not an evaluation: :meth:`final` takes those.
        """
        if is_final(metrics):
            return []
        self._reports[seed].append(dict(metrics))
        ready = min(len(reports) for reports in self._reports.values())
        out = []
        while self._emitted < ready:
            out.append(self._mean({seed: reports[self._emitted] for seed, reports in self._reports.items()}))
            self._emitted += 1
        return out

    def final(self, finals: dict[int, dict]) -> dict:
        """The trial's result: the mean of the seeds' final metrics, the objective's std, K, and each seed's."""
        return self._mean({seed: finals[seed] for seed in self.seeds})

    def _mean(self, by_seed: dict[int, dict]) -> dict:
        """Mean over the seeds of every number all of them report (of a peak memory, the largest: one run's
        peak, like a single-seed trial's); ``<objective>_std`` (sample std)."""
        shared = set.intersection(*(set(metrics) for metrics in by_seed.values()))
        out: dict = {}
        for key in sorted(shared):
            values = [metrics[key] for metrics in by_seed.values()]
            if all(_is_number(value) for value in values):
                out[key] = max(values) if key in PEAK_MEMORY_METRICS else sum(values) / len(values)
        if self.objective in out:
            out[f"{self.objective}_std"] = _sample_std([metrics[self.objective] for metrics in by_seed.values()])
        out[SEARCH_SEEDS] = len(by_seed)
        out[PER_SEED] = {str(seed): dict(metrics) for seed, metrics in by_seed.items()}
        return out


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _sample_std(values: list[float]) -> float:
    """Sample std (ddof=1), as the tables report spread over seeds; 0.0 for one seed (nothing to spread)."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))
