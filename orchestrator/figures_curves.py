"""Learning curves of the confirm runs: the selection metric at every evaluation, per arm over seeds.

Each confirm run logs ``eval_dev_<metric>`` (the selection score at that evaluation; ``dev_<metric>`` is
the best so far) with the training step (``orchestrator.tracking``). :func:`fetch_histories` reads them
back from MLflow (``MlflowClient.get_metric_history``) for the newest finished run of each (arm, seed),
the runs the table reports; :func:`learning_curves` draws per arm the mean over seeds at each step and a
band from the lowest to the highest seed, so a reader sees when an arm peaks and how far seeds disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from orchestrator.figures_style import FigureSkipped, arm_colours, axis_label, new_figure
from orchestrator.report_cells import PERCENT, ValueFormat

if TYPE_CHECKING:
    from orchestrator.tracking import SweepTracker

HISTORY_COLUMNS = ("arm", "seed", "step", "value")


def fetch_histories(tracker: "SweepTracker", key: str, arms: list[str] | None = None) -> pd.DataFrame:
    """Long frame (arm, seed, step, value) of ``key``'s history in the finished confirm runs (newest run per
    (arm, seed)), arms in ``arms``' order when given; a run that never logged ``key`` adds no rows."""
    rows = []
    for (arm, seed), run in tracker.finished_confirm_runs().items():
        if arms is not None and arm not in arms:
            continue
        for metric in tracker.client.get_metric_history(run.info.run_id, key):
            rows.append({"arm": arm, "seed": int(seed), "step": int(metric.step), "value": float(metric.value)})
    frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    if arms is not None and not frame.empty:
        frame["arm"] = pd.Categorical(frame["arm"], categories=arms, ordered=True)
        frame = frame.sort_values(["arm", "seed", "step"]).astype({"arm": str})
    return frame.reset_index(drop=True)


def curve_bands(histories: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, step): the mean, min and max over the seeds that evaluated at that step, and how many."""
    grouped = histories.groupby(["arm", "step"], sort=False)["value"]
    return grouped.agg(mean="mean", low="min", high="max", n="count").reset_index().sort_values(
        ["arm", "step"], kind="stable")


def learning_curves(histories: pd.DataFrame, *, title: str, metric_label: str,
                    value_format: ValueFormat = PERCENT, arms: list[str] | None = None) -> Figure:
    """One line per arm (mean over seeds at each step) and a band (min..max over seeds) where two or more
    seeds evaluated; ``histories`` is :func:`fetch_histories`' frame. ``arms`` (the table's) give the
    colours, so an arm has its colour of the other figures; default: the arms in their order of appearance."""
    if histories.empty:
        raise FigureSkipped("no confirm run logged the metric's history")
    present = list(dict.fromkeys(histories["arm"]))
    colours = arm_colours([*(arms or []), *(arm for arm in present if arm not in (arms or []))])
    arms = [arm for arm in colours if arm in present]
    bands = curve_bands(histories)
    figure = new_figure(9.0, 5.5)
    ax = figure.subplots()
    scale = value_format.scale
    for arm in arms:
        of_arm = bands[bands["arm"] == arm]
        ax.plot(of_arm["step"], of_arm["mean"] * scale, color=colours[arm], linewidth=1.6, label=arm,
                gid=f"mean|{arm}", marker="." if len(of_arm) < 30 else None)
        several = of_arm[of_arm["n"] >= 2]
        if not several.empty:
            ax.fill_between(several["step"], several["low"] * scale, several["high"] * scale, color=colours[arm],
                            alpha=0.18, linewidth=0, gid=f"band|{arm}")
    n_seeds = histories.groupby("arm")["seed"].nunique()
    seeds = f"{n_seeds.min()}" if n_seeds.min() == n_seeds.max() else f"{n_seeds.min()}-{n_seeds.max()}"
    ax.set_xlabel("training step (optimizer updates)")
    ax.set_ylabel(axis_label(metric_label, value_format))
    ax.grid(alpha=0.3)
    figure.suptitle(f"{title}\nline: mean over {seeds} seeds; band: lowest to highest seed")
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(color="0.5", alpha=0.3))
    labels.append("min..max over seeds")
    ax.legend(handles, labels, fontsize=8, loc="best", ncol=1 if len(labels) <= 8 else 2)
    return figure
