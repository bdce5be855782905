"""The sweep's cost: its trials' device-hours summed per stage and per arm, on the parent run and under the table.

MLflow is the record, as for the results: the totals are summed over the trial runs under the sweep's
parent run (``orchestrator.cost`` logged each one's ``gpu_hours`` or ``cpu_hours`` when it ended), every
run counted, failed and superseded ones too (they held their devices all the same). Not counted: the
copies of a twin's run (``orchestrator.reuse``, tagged ``reused_from``: nothing trained for them) and the
seed runs nested under a search trial's run (the trial's own run holds the cost of all its seeds).

Parent metrics, one set per unit the runs logged (GPU-hours, or CPU-hours on a CPU-only cluster):
``cost.stage.<stage>.gpu_hours`` (``search``, ``search-<name>``, ``confirm``), ``cost.arm.<arm>.gpu_hours``
(over every stage: a tuned arm's search counts towards it) and ``cost.total.gpu_hours``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.cost import HOURS_METRICS
from orchestrator.reuse import REUSED_FROM
from orchestrator.tracking import PARENT_TAG, SweepTracker

UNIT_LABELS = {"gpu_hours": "GPU-hours", "cpu_hours": "CPU-hours"}


@dataclass
class SweepCost:
    """One unit's totals (``gpu_hours`` or ``cpu_hours``): per stage and per arm."""

    unit: str
    stages: dict[str, float] = field(default_factory=dict)
    arms: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.stages.values())

    def add(self, stage: str, arm: str, hours: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + hours
        self.arms[arm] = self.arms.get(arm, 0.0) + hours

    def metrics(self) -> dict[str, float]:
        """The parent run's metrics: ``cost.stage.<stage>.<unit>``, ``cost.arm.<arm>.<unit>``, ``cost.total.<unit>``."""
        return {**{f"cost.stage.{stage}.{self.unit}": hours for stage, hours in self.stages.items()},
                **{f"cost.arm.{arm}.{self.unit}": hours for arm, hours in self.arms.items()},
                f"cost.total.{self.unit}": self.total}

    def line(self) -> str:
        """``GPU-hours per arm: baseline 0.12, salt 0.34; per stage: search 0.3, confirm 0.16; total 0.46``:
        arms by name, the searches by name, then confirm."""
        label = UNIT_LABELS.get(self.unit, self.unit)
        arms = ", ".join(f"{arm} {_hours(self.arms[arm])}" for arm in sorted(self.arms))
        stages = ", ".join(f"{stage} {_hours(self.stages[stage])}"
                           for stage in sorted(self.stages, key=lambda stage: (stage == "confirm", stage)))
        return f"{label} per arm: {arms}; per stage: {stages}; total {_hours(self.total)}"


def collect_sweep_cost(tracker: SweepTracker) -> list[SweepCost]:
    """The totals of the trial runs under the parent run, one ``SweepCost`` per unit they logged (oldest run first)."""
    query = f"tags.`{PARENT_TAG}` = '{tracker.parent_run_id}'"
    runs = tracker.client.search_runs([tracker.experiment_id], filter_string=query, max_results=10000,
                                      order_by=["attributes.start_time ASC"])
    costs: dict[str, SweepCost] = {}
    for run in runs:
        tags = run.data.tags
        if REUSED_FROM in tags or "stage" not in tags:
            continue
        for unit in HOURS_METRICS:
            hours = run.data.metrics.get(unit)
            if hours is not None:
                costs.setdefault(unit, SweepCost(unit)).add(tags["stage"], tags.get("arm", ""), hours)
    return [costs[unit] for unit in HOURS_METRICS if unit in costs]


def log_sweep_cost(tracker: SweepTracker) -> list[str]:
    """Sum the sweep's cost, log it on the parent run; its lines for the table's legend ([] before any trial ended)."""
    costs = collect_sweep_cost(tracker)
    for cost in costs:
        tracker.log_metrics(cost.metrics())
    return [cost.line() for cost in costs]


def _hours(value: float) -> str:
    """Three significant digits (a smoke sweep's CPU-hours are thousandths), whole hours from 100 on."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"
