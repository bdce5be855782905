"""From the confirm stage's MLflow runs to the results tables on the parent run.

MLflow is the record of truth: the table is built from the finished confirm runs under the
sweep's parent run, so a resumed sweep reports every trial it ever finished, each once.

Runs that also log linear CKA per language (``cka_<lang>``: X-Mixup's representation
discrepancy, its Table 7) get a second set of tables, ``cka.*``, beside the accuracy ones.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.experiments import Experiment
from orchestrator.report import FRACTION, render_text, write_reports
from orchestrator.stats import AVG, AVG_EN, summarize
from orchestrator.tracking import SweepTracker
from trainables.tasks import TaskSpec

METRIC_LABELS = {"acc": "accuracy", "f1": "F1"}

CKA_METRIC = "cka"
CKA_LABEL = ("linear CKA between source and target sentence representations (mean-pooled last layer) "
             "on each language's test set; higher = smaller discrepancy")
CKA_FILES = ("cka.md", "cka.csv", "cka.html", "cka_ttest.csv")


def collect_confirm_results(tracker: SweepTracker, task: TaskSpec, metric: str | None = None) -> pd.DataFrame:
    """Long frame (arm, seed, language, value) of the finished confirm runs; newest run per (arm, seed).

    ``metric`` picks the per-language family ``<metric>_<lang>`` (``"cka"``: X-Mixup's CKA);
    the default is the task's test score, ``test_<task.metric>_<lang>``. Runs without it add no rows.
    """
    prefix = f"{metric}_" if metric else f"test_{task.metric}_"
    rows, seen = [], set()
    for run in tracker.child_runs("confirm"):  # newest first
        if run.info.status != "FINISHED":
            continue
        key = (run.data.tags["arm"], int(run.data.tags["seed"]))
        if key in seen:
            continue
        seen.add(key)
        for lang in task.languages:
            value = run.data.metrics.get(f"{prefix}{lang}")
            if value is not None:
                rows.append({"arm": key[0], "seed": key[1], "language": lang, "value": value})
    return pd.DataFrame(rows, columns=["arm", "seed", "language", "value"])


def report_results(results: pd.DataFrame, tracker: SweepTracker, experiment: Experiment, task: TaskSpec,
                   seeds, out_dir: Path) -> str:
    """Write the four tables, attach them to the parent run, log per-arm means; return the text table.

    When confirm runs also logged CKA, its tables follow (:func:`report_cka`), text included.
    """
    arms = [arm.name for arm in experiment.confirm_arms]
    baseline = experiment.baseline_arm if experiment.baseline_arm in arms else None  # --arms without it: no t-tests
    summary = summarize(results, arms=arms, languages=list(task.languages), baseline_arm=baseline,
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
    text = render_text(summary, title=title, metric_label=label)
    cka_text = report_cka(collect_confirm_results(tracker, task, metric=CKA_METRIC), tracker, experiment, task,
                          seeds, out_dir)
    return f"{text}\n{cka_text}" if cka_text else text


def report_cka(cka: pd.DataFrame, tracker: SweepTracker, experiment: Experiment, task: TaskSpec,
               seeds, out_dir: Path) -> str:
    """The CKA tables (``cka.*``), attached and logged as ``<arm>.cka_avg``; their text, "" without CKA.

    Only arms that logged CKA are rows: the baseline has no mixup to measure, and an empty
    row would read as a failed run. The t-test is against the baseline only when it has CKA
    too; otherwise there is no test rather than one against another method. Like Table 7, the
    columns are the target languages and their average: the source against itself is no
    discrepancy, so the source column and ``avg+<source>`` are left out.
    """
    present = set(cka["arm"])
    arms = [arm.name for arm in experiment.confirm_arms if arm.name in present]
    if not arms:
        return ""
    baseline = experiment.baseline_arm if experiment.baseline_arm in arms else None
    summary = summarize(cka, arms=arms, languages=list(task.languages), baseline_arm=baseline,
                        source_language=task.source_language, expected_seeds=list(seeds))
    summary = replace(summary, columns=[c for c in summary.columns if c not in (task.source_language, AVG_EN)])
    title = f"{experiment.name}: linear CKA per language"
    paths = write_reports(summary, out_dir, title=title, metric_label=CKA_LABEL, value_format=FRACTION,
                          files=CKA_FILES)
    tracker.log_artifacts(list(paths.values()))
    tracker.log_metrics({f"{arm}.{CKA_METRIC}_{AVG}": summary.cell(arm, AVG).mean for arm in arms
                         if summary.cell(arm, AVG).n})
    return render_text(summary, title=title, metric_label=CKA_LABEL, value_format=FRACTION)
