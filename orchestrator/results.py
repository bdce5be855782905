"""From the confirm stage's MLflow runs to the results tables on the parent run.

MLflow is the record of truth: the table is built from the finished confirm runs under the
sweep's parent run, so a resumed sweep reports every trial it ever finished, each once.

Runs that also log linear CKA per language (``cka_<lang>``: X-Mixup's representation
discrepancy, its Table 7) get a second set of tables, ``cka.*``, beside the accuracy ones, with
Spearman's ρ between CKA and the test score per arm (its Table 2). An arm trained on part of the
target languages (X-Mixup's Table 6) adds the seen / unseen averages (``seen_unseen.*``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.experiments import Experiment
from orchestrator.paper_numbers import (paper_block, render_paper_block_html, render_paper_block_markdown,
                                        repro_gap_avg)
from orchestrator.report import render_text, table_frame, write_reports
from orchestrator.report_cells import FRACTION, PERCENT
from orchestrator.bootstrap import bootstrap_tests
from orchestrator.figures_report import ResultFigures, log_search_figures, publish_figures, result_drawers
from orchestrator.figures_style import axis_label
from orchestrator.generalized import collect_generalized, report_generalized
from orchestrator.predictions import confirm_predictions
from orchestrator.significance import SignificanceOptions, adjust_p_values
from orchestrator.stats import summarize
from orchestrator.stats_summary import AVG, AVG_EN, LanguageSubset, Summary
from orchestrator.transfer_analysis import (cka_spearman, language_split, render_spearman, render_split,
                                            spearman_metrics, split_metrics, split_table, write_split)
from orchestrator.tracking import AT_CHANCE, SweepTracker
from trainables.config import TrainConfig
from trainables.generalized import TASKS as GENERALIZED_TASKS
from trainables.tasks import TaskSpec

METRIC_LABELS = {"acc": "accuracy", "f1": "F1", "macro_f1": "macro-F1"}

SELECTION_LABELS = {"en-dev": "English dev {}", "multilingual-dev": "dev {} averaged over all languages"}
"""``--select-on`` -> how the learning curves' axis names the selection score (``{}``: the metric's label)."""
RESULTS_TABLE = "results_table.json"
"""The results table (arm rows, its cells' text) as an MLflow table on the parent run."""

CKA_METRIC = "cka"
CKA_LABEL = ("linear CKA between source and target sentence representations (mean-pooled last layer) "
             "on each language's test set; higher = smaller discrepancy")
CKA_FILES = ("cka.md", "cka.csv", "cka.html", "cka_ttest.csv")


def collect_confirm_results(tracker: SweepTracker, task: TaskSpec, metric: str | None = None) -> pd.DataFrame:
    """Long frame (arm, seed, language, value) of the finished confirm runs; newest run per (arm, seed).

    ``metric`` picks the per-language family ``<metric>_<lang>`` (``"cka"``: X-Mixup's CKA);
    the default is the task's reported test score, ``test_<task.reported_metric>_<lang>`` (accuracy;
    entity F1 for PAN-X; macro-F1 for MARC). Runs without it add no rows.
    """
    prefix = f"{metric}_" if metric else f"test_{task.reported_metric}_"
    rows = []
    for key, run in tracker.finished_confirm_runs().items():
        for lang in task.languages:
            value = run.data.metrics.get(f"{prefix}{lang}")
            if value is not None:
                rows.append({"arm": key[0], "seed": key[1], "language": lang, "value": value})
    return pd.DataFrame(rows, columns=["arm", "seed", "language", "value"])


@dataclass(frozen=True)
class ReportSettings:
    """What a sweep's report needs beyond the results: how to test, what to say, what to set beside.

    ``notes`` join the table's legend (the search protocol, whether the baseline was tuned);
    ``model`` is the sweep's encoder (None: the smoke model) for the published numbers' block;
    ``reproduction`` logs ``<arm>.repro_gap_avg`` (the paper profile on the paper's model); ``select_on``
    names what the runs' selection metric (``eval_dev_<metric>``, the learning curves) averages over;
    ``predictions`` is the confirm runs' per-example predictions for the paired bootstrap
    (``bootstrap`` resamples; 0: off).
    """

    options: SignificanceOptions = field(default_factory=SignificanceOptions)
    notes: tuple[str, ...] = ()
    model: str | None = None
    reproduction: bool = False
    bootstrap: int = 0
    select_on: str = TrainConfig.select_on  # the dev set(s) the runs selected on: the learning curves' label


def report_results(results: pd.DataFrame, tracker: SweepTracker, experiment: Experiment, task: TaskSpec,
                   seeds, out_dir: Path, settings: ReportSettings | None = None) -> str:
    """Write the four tables, attach them to the parent run, log per-arm aggregates; return the text table.

    The published numbers of the experiment follow the legend (:mod:`orchestrator.paper_numbers`).
    When confirm runs also logged CKA, its tables follow (:func:`report_cka`), text included; when they
    evaluated SALT's generalized XNLI setting, its 15 x 15 tables and overall test (``orchestrator.generalized``).
    """
    settings = settings or ReportSettings()
    arms = [arm.name for arm in experiment.confirm_arms]
    baseline = experiment.baseline_arm if experiment.baseline_arm in arms else None  # --arms without it: no t-tests
    summary = summarize(results, arms=arms, languages=list(task.languages), baseline_arm=baseline,
                        source_language=task.source_language, expected_seeds=list(seeds), options=settings.options)
    summary = replace(summary, at_chance=runs_at_chance(tracker, arms), subset=language_subset(task))
    label = METRIC_LABELS.get(task.reported_metric, task.reported_metric)
    title = f"{experiment.name}: test {label} per language{subset_title(task)}"
    block = paper_block(summary.to_frame(), experiment.name, settings.model, languages_only=task.is_subset)
    ttests = summary.ttests()
    if settings.bootstrap and baseline is not None:
        ttests = with_bootstrap(ttests, tracker, summary, task, settings)
    paths = write_reports(summary, out_dir, title=title, metric_label=label, notes=settings.notes,
                          extra_markdown=render_paper_block_markdown(block, sweep_model=settings.model),
                          extra_html=render_paper_block_html(block, sweep_model=settings.model), ttests=ttests)
    tracker.log_artifacts(list(paths.values()))
    tracker.log_table(table_frame(summary), RESULTS_TABLE)
    tracker.log_metrics(arm_metrics(summary, f"test_{task.reported_metric}"))
    if settings.reproduction:
        gaps = {f"{arm}.repro_gap_{column}": gap for column in (AVG, AVG_EN)
                for arm, gap in repro_gap_avg(block, column=column).items()}
        tracker.log_metrics(gaps)
    text = render_text(summary, title=title, metric_label=label, notes=settings.notes,
                       extra=render_paper_block_markdown(block, sweep_model=settings.model))
    split_text = report_split(results, tracker, experiment, task, out_dir, settings.options)
    cka = collect_confirm_results(tracker, task, metric=CKA_METRIC)
    cka_text = report_cka(cka, tracker, experiment, task, seeds, out_dir, scores=results)
    generalized_text, generalized_results = "", None
    if task.name in GENERALIZED_TASKS:  # SALT's generalized setting, where confirm runs evaluated it
        generalized_results = collect_generalized(tracker)
        generalized_text = report_generalized(generalized_results, tracker, experiment, task, seeds, out_dir,
                                              settings.options)
    figures = ResultFigures(
        summary=summary, results=results, experiment=experiment.name, metric_label=label,
        selection_metric=f"eval_dev_{task.metric}", selection_label=selection_label(task, settings.select_on),
        target_languages=list(task.target_languages), cka=cka, generalized=generalized_results,
        languages=list(task.languages))
    publish_figures(tracker, out_dir, result_drawers(figures, tracker))
    return "\n".join(part for part in (text, split_text, cka_text, generalized_text) if part)


def language_subset(task: TaskSpec) -> LanguageSubset | None:
    """What a table's legend says of a sweep on ``--languages``: the benchmark and all its targets; None: all."""
    return LanguageSubset(task.name.upper(), task.benchmark.target_languages) if task.is_subset else None


def subset_title(task: TaskSpec) -> str:
    """The title's note on a sweep on ``--languages``: `` (3 of XNLI's 14 target languages)``; "" on all of them."""
    if not task.is_subset:
        return ""
    return f" ({len(task.target_languages)} of {task.name.upper()}'s {len(task.benchmark.target_languages)} target languages)"


def selection_label(task: TaskSpec, select_on: str) -> str:
    """How a figure's axis names the selection score (``dev_<metric>``, ``eval_dev_<metric>``)."""
    metric = METRIC_LABELS.get(task.metric, task.metric)
    return SELECTION_LABELS.get(select_on, "dev {}").format(metric) + " (selection score)"


def report_search_figures(tracker: SweepTracker, sweep_dir: Path, stage: str, task: TaskSpec, select_on: str) -> None:
    """The search stage's Optuna figures on the parent run (``orchestrator.figures_report``)."""
    log_search_figures(tracker, sweep_dir, stage, axis_label(selection_label(task, select_on), PERCENT))


def report_split(results: pd.DataFrame, tracker: SweepTracker, experiment: Experiment, task: TaskSpec,
                 out_dir: Path, options: SignificanceOptions) -> str:
    """Seen / unseen averages (X-Mixup Table 6) when a confirmed arm trains on part of the targets; "" otherwise."""
    split = language_split(experiment, task)
    if split is None:
        return ""
    arms = [arm.name for arm in experiment.confirm_arms]
    baseline = experiment.baseline_arm if experiment.baseline_arm in arms else None
    table = split_table(results, split, arms, baseline, options)
    label = METRIC_LABELS.get(task.metric, task.metric)
    markdown = render_split(table, split, title=f"{experiment.name}: test {label} on seen and unseen languages",
                            source_language=task.source_language, baseline=baseline,
                            correction=options.correction_name)
    tracker.log_artifacts(write_split(table, markdown, out_dir))
    tracker.log_metrics(split_metrics(table, f"test_{task.metric}"))
    return markdown


def runs_at_chance(tracker: SweepTracker, arms: list[str]) -> dict[str, list[int]]:
    """Arm -> seeds of its finished confirm runs flagged ``selection_at_chance`` (newest run per pair)."""
    flagged: dict[str, list[int]] = {}
    for (arm, seed), run in tracker.finished_confirm_runs().items():
        if arm in arms and run.data.metrics.get(AT_CHANCE) == 1.0:
            flagged.setdefault(arm, []).append(seed)
    return {arm: sorted(flagged[arm]) for arm in arms if arm in flagged}


def arm_metrics(summary: Summary, prefix: str) -> dict[str, float]:
    """Parent-run metrics per arm and column, so MLflow's compare view can chart arms across sweeps:
    ``<arm>.<prefix>_<column>.mean`` and ``.std``; for tested arms ``.diff``, ``.ci_low``, ``.ci_high``
    (arm - baseline) and ``.p_adj``. Undefined values are not logged."""
    metrics: dict[str, float] = {}
    for arm in summary.arms:
        for column in summary.columns:
            cell = summary.cell(arm, column)
            name = f"{arm}.{prefix}_{column}"
            values = {"mean": cell.mean, "std": cell.std, "diff": cell.mean_diff, "ci_low": cell.ci_low,
                      "ci_high": cell.ci_high, "p_adj": cell.p_adjusted}
            metrics.update({f"{name}.{key}": value for key, value in values.items()
                            if value is not None and np.isfinite(value)})
    return metrics


def report_cka(cka: pd.DataFrame, tracker: SweepTracker, experiment: Experiment, task: TaskSpec,
               seeds, out_dir: Path, scores: pd.DataFrame | None = None) -> str:
    """The CKA tables (``cka.*``), attached and logged as ``<arm>.cka_avg``; their text, "" without CKA.

    With ``scores`` (the task metric's results), Spearman's ρ between CKA and the score over the target
    languages follows the legend and is logged per arm (``<arm>.cka_spearman_rho`` / ``_p``; Table 2).

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
    summary = replace(summary, columns=[c for c in summary.columns if c not in (task.source_language, AVG_EN)],
                      subset=language_subset(task))
    title = f"{experiment.name}: linear CKA per language{subset_title(task)}"
    rho = None if scores is None else cka_spearman(scores, cka, arms, list(task.target_languages))
    spearman = "" if rho is None else render_spearman(rho, METRIC_LABELS.get(task.metric, task.metric))
    paths = write_reports(summary, out_dir, title=title, metric_label=CKA_LABEL, value_format=FRACTION,
                          files=CKA_FILES, extra_markdown=spearman, extra_html=_markdown_as_html(spearman))
    tracker.log_artifacts(list(paths.values()))
    tracker.log_metrics(arm_metrics(summary, CKA_METRIC))
    if rho is not None:
        tracker.log_metrics(spearman_metrics(rho))
    return render_text(summary, title=title, metric_label=CKA_LABEL, value_format=FRACTION, extra=spearman)


def _markdown_as_html(markdown: str) -> str:
    """A Markdown block shown as preformatted text in an HTML page."""
    import html

    return f"<pre>{html.escape(markdown)}</pre>" if markdown else ""


def with_bootstrap(ttests: pd.DataFrame, tracker: SweepTracker, summary: Summary, task: TaskSpec,
                   settings: ReportSettings) -> pd.DataFrame:
    """``ttests`` with the paired bootstrap over test examples beside the t-test, seed by seed.

    Columns added: ``bootstrap_diff_seed<s>`` and ``bootstrap_p_seed<s>`` (raw, two-sided) per seed,
    and ``bootstrap_better_seeds`` / ``bootstrap_worse_seeds``: on how many seeds the arm is
    significantly better / worse, the p-values corrected like the t-tests' within each (arm, seed)
    family of columns. Seeds without predictions on either side are left out.
    """
    predictions = confirm_predictions(tracker)
    if predictions.empty or ttests.empty:
        return ttests
    options = settings.options
    tests = bootstrap_tests(predictions, arms=summary.arms, baseline_arm=summary.baseline_arm,
                            languages=[c for c in summary.columns if c not in (AVG, AVG_EN)],
                            source_language=summary.source_language, n_resamples=settings.bootstrap,
                            seed=options.seed, metric=task.reported_metric)
    if tests.empty:
        return ttests
    tests = tests.copy()
    tests["p_adjusted"] = np.nan
    for _key, family in tests.groupby(["arm", "seed"]):
        adjusted = adjust_p_values(family["p_value"].tolist(), options.correction, options.alpha)
        tests.loc[family.index, "p_adjusted"] = adjusted
    significant = tests["p_adjusted"] <= options.alpha
    tests["better"] = significant & (tests["diff"] > 0)
    tests["worse"] = significant & (tests["diff"] < 0)
    out = ttests.copy()
    for seed in sorted(tests["seed"].unique()):
        of_seed = tests[tests["seed"] == seed].set_index(["arm", "column"])
        keys = list(zip(out["arm"], out["column"]))
        out[f"bootstrap_diff_seed{seed}"] = [of_seed["diff"].get(key, np.nan) for key in keys]
        out[f"bootstrap_p_seed{seed}"] = [of_seed["p_value"].get(key, np.nan) for key in keys]
    counts = tests.groupby(["arm", "column"])[["better", "worse"]].sum()
    keys = list(zip(out["arm"], out["column"]))
    out["bootstrap_better_seeds"] = [int(counts["better"].get(key, 0)) for key in keys]
    out["bootstrap_worse_seeds"] = [int(counts["worse"].get(key, 0)) for key in keys]
    return out
