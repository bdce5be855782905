"""Puts a sweep's figures where its tables are: PNGs under ``<results>/figures/`` and the same images on
the MLflow parent run (``figures/<name>.png``).

A figure illustrates a table; it must never cost the table or the sweep. :func:`publish_figures` draws
each one, and one that cannot be drawn (:class:`orchestrator.figures_style.FigureSkipped`, or any error
while drawing or logging it) is skipped with one printed line. The drawing functions themselves raise,
so their tests see every mistake. :func:`result_drawers` lists the result figures of a report,
:func:`log_search_figures` publishes a search's (``orchestrator.figures_search``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from orchestrator.figures import forest, language_bars
from orchestrator.figures_curves import fetch_histories, learning_curves
from orchestrator.figures_style import DPI, FigureSkipped
from orchestrator.figures_transfer import cka_scatter, generalized_heatmap
from orchestrator.generalized import describe_over_seeds, present_languages, seed_tables
from orchestrator.stats_summary import Summary

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from orchestrator.tracking import SweepTracker

FIGURES_DIR = "figures"
"""Folder of the PNGs, under the report's folder and among the parent run's artifacts."""


@dataclass(frozen=True)
class ResultFigures:
    """What a report's figures are drawn from: the main table's summary and long results, the metric's
    labels, the confirm runs' selection metric (``eval_dev_<metric>``), and the analyses' frames."""

    summary: Summary
    results: pd.DataFrame
    experiment: str
    metric_label: str  # "accuracy"
    selection_metric: str  # "eval_dev_acc"
    selection_label: str  # "en-dev accuracy (selection score)"
    target_languages: list[str] = field(default_factory=list)
    cka: pd.DataFrame | None = None  # long CKA results (X-Mixup), or None: arms without CKA are no panel
    generalized: pd.DataFrame | None = None  # long generalized XNLI results (SALT), or None
    languages: list[str] = field(default_factory=list)  # the task's languages, in its order


def result_drawers(spec: ResultFigures, tracker: "SweepTracker") -> dict[str, Callable[[], "Figure | None"]]:
    """Figure name -> a function drawing it: bars and forest of the table, the learning curves, and where the
    runs logged them, CKA against the score and one generalized XNLI heatmap per arm."""
    summary, name = spec.summary, spec.experiment
    drawers: dict[str, Callable[[], Figure | None]] = {
        "results_bars": lambda: language_bars(summary, spec.results, metric_label=f"test {spec.metric_label}",
                                              title=f"{name}: test {spec.metric_label} per language"),
        "results_forest": lambda: forest(summary, metric_label=f"test {spec.metric_label}",
                                         title=f"{name}: difference to {summary.baseline_arm} per language"),
        "learning_curves": lambda: learning_curves(
            fetch_histories(tracker, spec.selection_metric, summary.arms), metric_label=spec.selection_label,
            title=f"{name}: {spec.selection_metric} of the confirm runs", arms=summary.arms),
    }
    if spec.cka is not None and not spec.cka.empty:
        drawers[f"cka_vs_{spec.metric_label.replace('-', '_')}"] = lambda: cka_scatter(
            spec.results, spec.cka, summary.arms, spec.target_languages, metric_label=spec.metric_label,
            title=f"{name}: linear CKA against test {spec.metric_label}")
    if spec.generalized is not None and not spec.generalized.empty:
        languages = present_languages(spec.generalized, spec.languages)
        cells: list[pd.DataFrame] = []  # the arms' cell means, computed by the first heatmap drawn

        def heatmap(arm: str) -> "Figure":
            if not cells:
                cells.append(describe_over_seeds(seed_tables(spec.generalized, languages)))
            return generalized_heatmap(cells[0], arm, languages,
                                       title=f"{name}: generalized XNLI accuracy (premise x hypothesis)")

        for arm in [arm for arm in summary.arms if arm in set(spec.generalized["arm"])]:
            drawers[f"generalized_{arm}"] = lambda arm=arm: heatmap(arm)
    return drawers


def publish_figures(tracker: "SweepTracker", out_dir: Path, drawers: dict[str, Callable[[], "Figure | None"]]
                    ) -> list[Path]:
    """Draw each figure, write ``out_dir/figures/<name>.png``, attach it to the parent run and close it; a
    figure that cannot be drawn is skipped with one printed line. The PNGs written."""
    import matplotlib.pyplot as plt

    folder = Path(out_dir) / FIGURES_DIR
    written = []
    for name, draw in drawers.items():
        figure = None
        try:
            figure = draw()
            if figure is None:
                raise FigureSkipped("nothing to compare (no baseline, or no other arm)")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{name}.png"
            figure.savefig(path, dpi=DPI, bbox_inches="tight")  # tick labels past the axes stay in
            tracker.log_figure(path, FIGURES_DIR)
            written.append(path)
        except FigureSkipped as reason:
            print(f"figure {name} skipped: {reason}", flush=True)
        except Exception as error:  # a figure never fails the sweep; the report goes on without it
            print(f"figure {name} skipped: {type(error).__name__}: {error}".splitlines()[0], flush=True)
        finally:
            if figure is not None:
                plt.close(figure)
    return written


def log_search_figures(tracker: "SweepTracker", sweep_dir: Path, stage: str, target_label: str) -> list[Path]:
    """The Optuna figures of the search ``stage`` (``search``, ``search-baseline``) from its persisted study,
    under ``<sweep_dir>/results/figures/<stage>_<figure>.png`` and on the parent run."""
    from orchestrator.figures_search import search_drawers
    from orchestrator.stages import study_name, study_storage

    drawers = search_drawers(study_storage(sweep_dir), study_name(sweep_dir, stage), prefix=stage.replace("-", "_"),
                             title=f"{sweep_dir.parent.name} {stage}", target_label=target_label)
    return publish_figures(tracker, sweep_dir / "results", drawers)
