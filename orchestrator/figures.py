"""The results table as figures: per-language grouped bars, and the differences to the baseline.

* :func:`language_bars`: for each column of the table (its languages in order, then ``avg`` and
  ``avg+<source>``) one bar per arm at the table's mean over seeds, an error bar for the 95 %
  t-interval of that mean (none with one seed), every seed as a dot, and the table's mark (†
  better, ▼ worse than the baseline, corrected as the table is) above the bars of significant cells.
  The averages per seed are formed exactly as the table forms them (``per_seed_values``).
* :func:`forest`: per column the mean paired difference of each tested arm to the baseline with its
  interval (the table's own ``ci_low`` / ``ci_high``), a line at zero, the averages last.

Both read a :class:`orchestrator.stats_summary.Summary`, so a figure never disagrees with the table it
illustrates. Artists carry ``gid`` s (``bar|<arm>|<column>``, ``ci|<arm>``, ``seeds|<arm>|<column>``,
``mark|<arm>|<column>``, ``diff|<arm>``) so a reader (and the tests) can find each one.
"""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from orchestrator.figures_style import (arm_colours, axis_label, difference_unit, mean_half_width, new_figure,
                                        seed_offsets)
from orchestrator.report_cells import MARKS, PERCENT, ValueFormat, column_label
from orchestrator.stats_input import clean_results, per_seed_values
from orchestrator.stats_summary import AVG, AVG_EN, BETTER, WORSE, Summary

PANEL_WIDTH = 16.0
"""Inches of one row of bar groups; more columns wrap onto further rows (PAN-X has 40 languages)."""
BAR_GROUP = 0.8
"""Width of a column's group of bars (1 = touching the next group)."""
SCORE_RANGE = (0.0, 1.0)
"""Every score drawn as bars (accuracy, F1, macro-F1, CKA) is a fraction: the axis and the intervals stay in it."""


def seed_values(summary: Summary, results: pd.DataFrame) -> dict[str, pd.Series]:
    """Column -> value per (arm, seed) of every column of ``summary``, averages formed per seed as the
    table forms them (:func:`orchestrator.stats_input.per_seed_values`)."""
    languages = [column for column in summary.columns if column not in (AVG, AVG_EN)]
    frame = clean_results(results, summary.arms, languages)
    return per_seed_values(frame, languages, summary.source_language)


def bar_positions(n_arms: int) -> list[float]:
    """Offsets of each arm's bar centre from its column's centre."""
    width = BAR_GROUP / n_arms
    return [(i - (n_arms - 1) / 2) * width for i in range(n_arms)]


def language_bars(summary: Summary, results: pd.DataFrame, *, title: str, metric_label: str,
                  value_format: ValueFormat = PERCENT) -> Figure:
    """Grouped bars of ``summary``'s columns (see the module docstring); ``results`` is the long frame
    (arm, seed, language, value) the summary was computed from."""
    values = seed_values(summary, results)
    arms, columns = summary.arms, summary.columns
    colours, width, offsets = arm_colours(arms), BAR_GROUP / len(arms), bar_positions(len(arms))
    group = 0.22 * len(arms) + 0.3  # inches of one column's bars
    n_rows = math.ceil(len(columns) / max(1, math.floor(PANEL_WIDTH / group)))
    per_row = math.ceil(len(columns) / n_rows)  # rows of equal length, so every bar has the same width
    rows = [columns[i:i + per_row] for i in range(0, len(columns), per_row)]
    figure = new_figure(max(8.0, min(PANEL_WIDTH, 1.5 + per_row * group)), 1.6 + 3.4 * len(rows))
    axes = figure.subplots(len(rows), 1, squeeze=False, sharey=True)[:, 0]
    scale = value_format.scale
    ceiling = SCORE_RANGE[1] * scale
    cut = False  # some interval runs past the score's range: the legend says its whisker is cut there
    for ax, row_columns in zip(axes, rows):
        for i, arm in enumerate(arms):
            xs, heights, halves = [], [], []
            for x, column in enumerate(row_columns):
                cell = summary.cell(arm, column)
                if cell.n == 0 or not math.isfinite(cell.mean):
                    continue
                centre = x + offsets[i]
                seeds = values[column].get(arm, pd.Series(dtype="float64")).sort_index()
                half = mean_half_width(seeds.to_numpy())
                bar = ax.bar(centre, cell.mean * scale, width * 0.92, color=colours[arm],
                             label="_nolegend_" if xs else arm)
                bar.patches[0].set_gid(f"bar|{arm}|{column}")
                dots = [centre + d for d in seed_offsets(len(seeds), width)]
                ax.scatter(dots, seeds.to_numpy() * scale, s=9, color="black", zorder=3, linewidths=0,
                           gid=f"seeds|{arm}|{column}")
                top = max([cell.mean + (half if math.isfinite(half) else 0.0), *seeds.to_numpy()]) * scale
                mark = MARKS.get(cell.direction, "")
                if mark:
                    ax.text(centre, min(top, ceiling), mark, ha="center", va="bottom", fontsize=11,
                            gid=f"mark|{arm}|{column}", color="black", fontweight="bold")
                xs.append(centre)
                heights.append(cell.mean * scale)
                halves.append(half * scale)
            if xs:
                cut = _intervals(ax, arm, xs, heights, halves, ceiling) or cut
        ax.set_xticks(range(len(row_columns)), [column_label(summary, c) for c in row_columns])
        ax.set_xlim(-0.6, per_row - 0.4)
        ax.set_ylabel(axis_label(metric_label, value_format))
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        _shade_averages(ax, row_columns)
    # A bar's length is its value, so the axis starts at zero; it ends where the score does (100 %), with room
    # for the marks. The forest plot is where small differences between arms are read.
    axes[0].set_ylim(0.0, ceiling * 1.1)
    axes[-1].set_xlabel("language (table order), then the averages: avg = targets only, "
                        f"avg+{summary.source_language} = all languages")
    figure.suptitle(title)
    _bars_legend(figure, axes[0], summary, cut=cut)
    return figure


def _intervals(ax, arm: str, xs: list[float], heights: list[float], halves: list[float], ceiling: float) -> bool:
    """The t intervals of one arm's bars, cut at the score's range [0, ``ceiling``] (with few seeds a t interval
    easily runs past 100 %, which no score reaches); a cut end gets a caret. Returns whether any was cut."""
    shown = [(x, h, e) for x, h, e in zip(xs, heights, halves) if math.isfinite(e)]
    if not shown:
        return False
    low = [max(h - e, 0.0) for _, h, e in shown]
    high = [min(h + e, ceiling) for _, h, e in shown]
    container = ax.errorbar([x for x, _, _ in shown], [h for _, h, _ in shown],
                            yerr=[[h - lo for (_, h, _), lo in zip(shown, low)],
                                  [hi - h for (_, h, _), hi in zip(shown, high)]],
                            fmt="none", ecolor="0.25", elinewidth=1, capsize=2, zorder=2)
    container.lines[2][0].set_gid(f"ci|{arm}")
    ends = [(x, ceiling, "^") for (x, h, e) in shown if h + e > ceiling] + \
           [(x, 0.0, "v") for (x, h, e) in shown if h - e < 0.0]
    for x, y, marker in ends:
        ax.plot([x], [y], marker=marker, color="0.25", markersize=4, linestyle="none", zorder=3, gid=f"cut|{arm}")
    return bool(ends)


def _shade_averages(ax, row_columns: list[str]) -> None:
    """A light background behind the average columns: they are no languages."""
    for x, column in enumerate(row_columns):
        if column in (AVG, AVG_EN):
            ax.axvspan(x - 0.5, x + 0.5, color="0.93", zorder=0)


def _bars_legend(figure: Figure, ax, summary: Summary, *, cut: bool) -> None:
    handles, labels = ax.get_legend_handles_labels()
    n_seeds = len(summary.expected_seeds)
    handles += [Line2D([], [], marker="o", color="black", linestyle="none", markersize=3),
                Line2D([], [], color="0.25", marker="_", markersize=8)]
    labels += [f"one seed ({n_seeds} expected)", f"{summary.options.confidence:.0%} t-interval of the mean"]
    if cut:
        handles.append(Line2D([], [], marker="^", color="0.25", linestyle="none", markersize=4))
        labels.append("interval runs past the score's range (cut there; its ends are in the table)")
    handles, labels = _mark_entries(summary, handles, labels)
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)


def _mark_entries(summary: Summary, handles: list, labels: list) -> tuple[list, list]:
    """Legend entries for the marks, only when the table tests against a baseline."""
    if summary.baseline_arm is None:
        return handles, labels
    rule = summary.options.correction_name
    for direction, word in ((BETTER, "better"), (WORSE, "worse")):
        handles.append(Line2D([], [], marker=f"${MARKS[direction]}$", color="black", linestyle="none"))
        labels.append(f"significantly {word} than {summary.baseline_arm} (paired t-test, {rule})")
    return handles, labels


def forest(summary: Summary, *, title: str, metric_label: str, value_format: ValueFormat = PERCENT) -> Figure | None:
    """Per column (rows, top to bottom in the table's order, averages last) the mean paired difference of
    every tested arm to the baseline and its interval, from the summary's cells; None without a baseline
    or without an arm to compare. Filled markers (and the table's mark) are the significant cells."""
    if summary.baseline_arm is None:
        return None
    arms = [arm for arm in summary.arms if arm != summary.baseline_arm]
    if not arms:
        return None
    colours, columns = arm_colours(summary.arms), summary.columns
    figure = new_figure(9.0, 1.6 + len(columns) * max(0.32, 0.16 * len(arms)))
    ax = figure.subplots()
    scale = value_format.scale
    step = 0.7 / len(arms)
    legend: list[tuple[Line2D, str]] = []
    for i in range(0, len(columns), 2):  # every other row shaded, so a row's markers read as one group
        ax.axhspan(row_position(i, len(columns)) - 0.5, row_position(i, len(columns)) + 0.5, color="0.95", zorder=0)
    for j, arm in enumerate(arms):
        ys, xs, lows, highs, filled = [], [], [], [], []
        for i, column in enumerate(columns):
            cell = summary.cell(arm, column)
            if cell.mean_diff is None or not math.isfinite(cell.mean_diff):
                continue
            y = row_position(i, len(columns)) - (j - (len(arms) - 1) / 2) * step
            ys.append(y)
            xs.append(cell.mean_diff * scale)
            has_ci = cell.ci_low is not None and cell.ci_high is not None
            lows.append(cell.ci_low * scale if has_ci else math.nan)
            highs.append(cell.ci_high * scale if has_ci else math.nan)
            filled.append(cell.significant)
            mark = MARKS.get(cell.direction, "")
            if mark:
                end = highs[-1] if has_ci else xs[-1]
                ax.annotate(mark, (end, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=11,
                            gid=f"mark|{arm}|{column}")
        if not ys:
            continue
        with_ci = [k for k in range(len(ys)) if math.isfinite(lows[k])]
        if with_ci:
            ax.hlines([ys[k] for k in with_ci], [lows[k] for k in with_ci], [highs[k] for k in with_ci],
                      color=colours[arm], linewidth=1.5, gid=f"ci|{arm}")
        ax.scatter(xs, ys, s=30, zorder=3, edgecolors=[colours[arm]] * len(xs),
                   facecolors=[colours[arm] if f else "white" for f in filled], gid=f"diff|{arm}")
        legend.append((Line2D([], [], marker="o", color=colours[arm], linestyle="-"), arm))
    ax.axvline(0.0, color="0.3", linewidth=1)
    languages = sum(column not in (AVG, AVG_EN) for column in columns)
    if languages < len(columns):
        ax.axhline(row_position(languages, len(columns)) + 0.5, color="0.6", linewidth=0.8, linestyle="--")
    ax.set_yticks([row_position(i, len(columns)) for i in range(len(columns))],
                  [column_label(summary, column) for column in columns])
    ax.set_ylim(-0.6, len(columns) - 0.4)
    ax.set_xlabel(f"{metric_label}: arm − {summary.baseline_arm} ({difference_unit(value_format)})")
    ax.set_ylabel("language (table order), then the averages")
    ax.grid(axis="x", alpha=0.3)
    figure.suptitle(title)
    interval = "t" if summary.options.ci_method == "t" else "bootstrap"
    handles, labels = [h for h, _ in legend], [label for _, label in legend]
    handles += [Line2D([], [], marker="o", color="0.3", markerfacecolor="0.3", linestyle="-"),
                Line2D([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="-")]
    labels += [f"significant ({summary.options.correction_name}); line: {summary.options.confidence:.0%} "
               f"{interval} interval", "not significant"]
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3), fontsize=8, frameon=False)
    return figure


def row_position(index: int, n_rows: int) -> float:
    """y of the ``index``-th column's row: the first column on top."""
    return float(n_rows - 1 - index)
