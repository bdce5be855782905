"""From the confirm stage's MLflow runs to the results tables on the parent run.

MLflow is the record of truth: the table is built from the finished confirm runs under the
sweep's parent run, so a resumed sweep reports every trial it ever finished, each once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.experiments import Experiment
from orchestrator.report import render_text, write_reports
from orchestrator.stats import summarize
from orchestrator.tracking import SweepTracker
from trainables.tasks import TaskSpec

METRIC_LABELS = {"acc": "accuracy", "f1": "F1"}


def collect_confirm_results(tracker: SweepTracker, task: TaskSpec) -> pd.DataFrame:
    """Long frame (arm, seed, language, value) of the finished confirm runs; newest run per (arm, seed)."""
    rows, seen = [], set()
    for run in tracker.child_runs("confirm"):  # newest first
        if run.info.status != "FINISHED":
            continue
        key = (run.data.tags["arm"], int(run.data.tags["seed"]))
        if key in seen:
            continue
        seen.add(key)
        for lang in task.languages:
            value = run.data.metrics.get(f"test_{task.metric}_{lang}")
            if value is not None:
                rows.append({"arm": key[0], "seed": key[1], "language": lang, "value": value})
    return pd.DataFrame(rows, columns=["arm", "seed", "language", "value"])


def report_results(results: pd.DataFrame, tracker: SweepTracker, experiment: Experiment, task: TaskSpec,
                   seeds, out_dir: Path) -> str:
    """Write the four tables, attach them to the parent run, log per-arm means; return the text table."""
    arms = [arm.name for arm in experiment.arms]
    summary = summarize(results, arms=arms, languages=list(task.languages), baseline_arm=experiment.baseline_arm,
                        source_language=task.source_language, expected_seeds=list(seeds))
    label = METRIC_LABELS.get(task.metric, task.metric)
    title = f"{experiment.name}: test {label} per language"
    paths = write_reports(summary, out_dir, title=title, metric_label=label)
    tracker.log_artifacts(list(paths.values()))
    means = {}
    for arm in arms:
        for column in ("avg", "avg_en"):
            cell = summary.cell(arm, column)
            if cell.n and np.isfinite(cell.mean):
                means[f"{arm}.test_{task.metric}_{column}"] = cell.mean
    tracker.log_metrics(means)
    return render_text(summary, title=title, metric_label=label)
