"""Figures of the two analyses beside the main table: X-Mixup's CKA against the score per language, and
SALT's generalized XNLI matrix.

* :func:`cka_scatter`: per arm that logged CKA, one point per target language at (mean CKA over seeds,
  mean score over seeds), labelled with the language: the points Spearman's ρ ranks
  (``orchestrator.transfer_analysis.language_points``), with ρ beside each arm (X-Mixup Table 2).
* :func:`generalized_heatmap`: an arm's mean accuracy over seeds on the 15 x 15 premise x hypothesis
  pairs, every cell annotated (SALT Tables 4-6), from the same cell means as ``generalized.md``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from orchestrator.figures_style import FigureSkipped, arm_colours, axis_label, new_figure
from orchestrator.generalized import AVG as GENERALIZED_AVG
from orchestrator.report_cells import PERCENT, ValueFormat
from orchestrator.transfer_analysis import cka_spearman, language_points


def cka_scatter(scores: pd.DataFrame, cka: pd.DataFrame, arms: list[str], languages: list[str], *, title: str,
                metric_label: str, value_format: ValueFormat = PERCENT) -> Figure:
    """One panel per arm of ``arms`` with CKA (both long frames: arm, seed, language, value), sharing axes;
    ``arms`` (the table's) also give the colours; ``languages`` are the target languages ρ is computed over.
    Raises ``FigureSkipped`` when no arm has a point."""
    drawn = [arm for arm in arms if not language_points(scores, cka, arm, languages).empty]
    if not drawn:
        raise FigureSkipped("no arm has both CKA and a score on a target language")
    rho = cka_spearman(scores, cka, drawn, languages).set_index("arm")
    colours = arm_colours(arms)
    n_cols = min(3, len(drawn))
    n_rows = math.ceil(len(drawn) / n_cols)
    figure = new_figure(4.2 * n_cols + 0.6, 3.6 * n_rows + 1.0)
    axes = figure.subplots(n_rows, n_cols, squeeze=False, sharex=True, sharey=True).ravel()
    scale = value_format.scale
    for ax, arm in zip(axes, drawn):
        points = language_points(scores, cka, arm, languages)
        label = f"{arm}: {_rho_text(rho, arm)}"
        ax.scatter(points["cka"], points["score"] * scale, color=colours[arm], s=22, label=label, gid=f"cka|{arm}")
        for language, row in points.iterrows():
            ax.annotate(language, (row["cka"], row["score"] * scale), xytext=(3, 2), textcoords="offset points",
                        fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[len(drawn):]:
        ax.set_visible(False)
    for ax in axes[(n_rows - 1) * n_cols:]:
        ax.set_xlabel("linear CKA to English (mean over seeds)")
    for ax in axes[::n_cols]:
        ax.set_ylabel(axis_label(f"test {metric_label}", value_format))
    figure.suptitle(f"{title}\none point per target language (mean over seeds); ρ: Spearman over those languages")
    handles = [ax.collections[0] for ax in axes[:len(drawn)]]
    figure.legend(handles, [h.get_label() for h in handles], loc="outside lower center",
                  ncol=min(len(handles), 3), fontsize=8, frameon=False)
    return figure


def _rho_text(rho: pd.DataFrame, arm: str) -> str:
    if arm not in rho.index or not math.isfinite(rho.loc[arm, "rho"]):
        return "ρ undefined (fewer than 3 languages or constant)"
    row = rho.loc[arm]
    rho = round(float(row["rho"]), 2) + 0.0  # + 0.0: a rho that rounds to zero prints 0.00, not -0.00
    return f"ρ = {rho:.2f} (p = {row['p_value']:.2g}, {int(row['n_languages'])} languages)"


def heatmap_matrix(cells: pd.DataFrame, arm: str, languages: list[str]) -> np.ndarray:
    """``arm``'s mean over seeds per pair, premise languages down, hypothesis languages across (NaN: missing)."""
    of_arm = cells[(cells["arm"] == arm) & (cells["premise"] != GENERALIZED_AVG)
                   & (cells["hypothesis"] != GENERALIZED_AVG)]
    table = of_arm.pivot(index="premise", columns="hypothesis", values="mean")
    return table.reindex(index=languages, columns=languages).to_numpy(dtype="float64")


def generalized_heatmap(cells: pd.DataFrame, arm: str, languages: list[str], *, title: str,
                        metric_label: str = "accuracy", value_format: ValueFormat = PERCENT) -> Figure:
    """The premise x hypothesis matrix of ``arm`` from ``cells`` (``generalized.describe_over_seeds``), each
    cell annotated with its mean (one decimal); the overall average (all pairs) in the title."""
    matrix = heatmap_matrix(cells, arm, languages) * value_format.scale
    if np.isnan(matrix).all():
        raise FigureSkipped(f"arm {arm!r} has no generalized XNLI pair")
    n = len(languages)
    figure = new_figure(max(6.0, 0.5 * n + 2.5), max(5.0, 0.45 * n + 1.8))
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="viridis", aspect="auto", gid=f"heatmap|{arm}")
    low, high = np.nanmin(matrix), np.nanmax(matrix)
    middle = (low + high) / 2
    for i in range(n):
        for j in range(n):
            if math.isfinite(matrix[i, j]):
                ax.text(j, i, f"{matrix[i, j]:.{value_format.digits}f}", ha="center", va="center", fontsize=6.5,
                        color="black" if matrix[i, j] > middle else "white")
    ax.set_xticks(range(n), languages)
    ax.set_yticks(range(n), languages)
    ax.set_xlabel("hypothesis language")
    ax.set_ylabel("premise language")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    figure.colorbar(image, ax=ax, label=axis_label(f"test {metric_label}", value_format), shrink=0.85)
    overall = cells[(cells["arm"] == arm) & (cells["premise"] == GENERALIZED_AVG)
                    & (cells["hypothesis"] == GENERALIZED_AVG)]
    seeds = cells.loc[cells["arm"] == arm, "n"].max()
    suffix = "" if overall.empty else f"; all {n * n} pairs: {overall['mean'].iloc[0] * value_format.scale:.1f}"
    figure.suptitle(f"{title}\n{arm}, mean over {seeds} seeds{suffix}")
    return figure
