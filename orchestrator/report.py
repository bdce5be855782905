"""Render a :class:`orchestrator.stats_summary.Summary` as paper-style results tables.

Rows are arms (in the summary's order), columns are the languages, then
``avg`` (macro average without the source language) and ``avg+<source>``
(macro average with it; ``avg+en`` for an English source).

Each cell's text (mean ± std, bold, marks, ``(n=...)``) is :mod:`orchestrator.report_cells`, whose
docstring shows the format; the legend under the table is :mod:`orchestrator.report_legend`. This
module puts them together as Markdown, terminal text and HTML, and writes the report's files.
The HTML table adds, under every tested cell, the mean paired difference to the
baseline with its confidence interval, and the raw and adjusted p as a tooltip.
The CSV files keep the summary's fractions at full precision so they can be re-analysed.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from orchestrator.report_cells import (CHANCE_MARK, MARKS, PERCENT, ValueFormat, column_label, format_cell,
                                       format_difference)
from orchestrator.report_legend import legend_lines
from orchestrator.stats_summary import AVG, AVG_EN, Cell, Summary

ARM_HEADER = "arm"

REPORT_FILES: tuple[str, ...] = ("results.md", "results.csv", "results.html", "ttest.csv")
"""The accuracy (task metric) report: Markdown, summary CSV, HTML, t-test CSV, in that order."""

_HTML_STYLE = (
    "body{font-family:sans-serif;margin:2em}"
    "table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right;white-space:nowrap}"
    "th:first-child,td:first-child{text-align:left}"
    "p.legend{font-size:90%;color:#444}"
    "span.diff{display:block;font-size:75%;color:#555}"
)


# --------------------------------------------------------------------------- table


def _html_cell(cell: Cell, summary: Summary, text: str, value_format: ValueFormat) -> str:
    """A ``<td>``: the cell, then its difference and interval on a second line, p-values as the tooltip."""
    difference = format_difference(cell, value_format)
    if not difference:
        return f"<td>{text}</td>"
    tooltip = f"{difference}{value_format.difference_unit} vs {summary.baseline_arm}"
    if cell.p_value is not None:
        tooltip += f"; p = {cell.p_value:.3g}, p adjusted ({summary.options.correction_name}) = {cell.p_adjusted:.3g}"
    return (f'<td title="{html.escape(tooltip)}">{text}'
            f'<span class="diff">{html.escape(difference)}</span></td>')


def _table(
    summary: Summary, *, html_markup: bool, value_format: ValueFormat
) -> tuple[list[str], list[list[str]]]:
    """Header labels and body rows (arm name first), as plain strings / HTML ``<td>`` elements."""
    expected_n = len(summary.expected_seeds)
    headers = [ARM_HEADER, *(column_label(summary, column) for column in summary.columns)]
    rows = []
    for arm in summary.arms:
        row = [f"{arm} {CHANCE_MARK}" if summary.at_chance.get(arm) else arm]
        for column in summary.columns:
            cell = summary.cell(arm, column)
            text = format_cell(cell, expected_n=expected_n, html_markup=html_markup, value_format=value_format)
            row.append(_html_cell(cell, summary, text, value_format) if html_markup else text)
        rows.append(row)
    return headers, rows


def table_frame(summary: Summary, *, value_format: ValueFormat = PERCENT) -> "pd.DataFrame":
    """The table as a frame of its cells' text (arm rows; the headers as columns; no bold markup), for
    MLflow's table view (``MlflowClient.log_table``); the numbers at full precision are ``results.csv``."""
    import pandas as pd

    headers, rows = _table(summary, html_markup=False, value_format=value_format)
    return pd.DataFrame([[text.replace("**", "") for text in row] for row in rows], columns=headers)


# --------------------------------------------------------------------------- renderers


def render_markdown(
    summary: Summary, *, title: str | None = None, metric_label: str = "accuracy", value_format: ValueFormat = PERCENT,
    notes: Sequence[str] = (), extra: str = "",
) -> str:
    """A GitHub Markdown table with the legend as paragraphs below it, then ``extra`` (Markdown)."""
    headers, rows = _table(summary, html_markup=False, value_format=value_format)
    parts = [f"## {title}"] if title else []
    parts.append(_markdown_table(headers, rows))
    parts.extend(legend_lines(summary, metric_label=metric_label, value_format=value_format, notes=notes))
    if extra:
        parts.append(extra.strip())
    return "\n\n".join(parts) + "\n"


def render_text(
    summary: Summary, *, title: str | None = None, metric_label: str = "accuracy", value_format: ValueFormat = PERCENT,
    notes: Sequence[str] = (), extra: str = "",
) -> str:
    """For a terminal: the (column-aligned) Markdown table, a plain title, the averages' differences to the
    baseline with their intervals, a compact legend, then ``extra``."""
    headers, rows = _table(summary, html_markup=False, value_format=value_format)
    parts = [f"{title}\n{'=' * len(title)}"] if title else []
    parts.append(_markdown_table(headers, rows))
    differences = difference_lines(summary, value_format)
    if differences:
        parts.append("\n".join(differences))
    parts.append("\n".join(legend_lines(summary, metric_label=metric_label, value_format=value_format, notes=notes)))
    if extra:
        parts.append(extra.strip())
    return "\n\n".join(parts) + "\n"


def difference_lines(summary: Summary, value_format: ValueFormat = PERCENT) -> list[str]:
    """``salt - baseline: avg +1.2 [+0.3, +2.1] p_adj 0.04; ...``: the averages' paired differences per arm."""
    if summary.baseline_arm is None:
        return []
    lines = []
    for arm in summary.arms:
        if arm == summary.baseline_arm:
            continue
        parts = []
        for column in (AVG, AVG_EN):
            if column not in summary.columns:
                continue
            cell = summary.cell(arm, column)
            difference = format_difference(cell, value_format)
            if difference:
                p = f", p_adj {cell.p_adjusted:.3g}" if cell.p_adjusted is not None else ""
                parts.append(f"{column_label(summary, column)} {difference}{p}{MARKS.get(cell.direction, '')}")
        if parts:
            lines.append(f"{arm} - {summary.baseline_arm}: " + "; ".join(parts))
    return lines


def render_html(
    summary: Summary, *, title: str | None = None, metric_label: str = "accuracy", value_format: ValueFormat = PERCENT,
    notes: Sequence[str] = (), extra: str = "",
) -> str:
    """A small standalone HTML document with the same table and legend, then ``extra`` (an HTML
    fragment); all text is escaped."""
    headers, rows = _table(summary, html_markup=True, value_format=value_format)
    head_cells = "".join(f"<th>{html.escape(label)}</th>" for label in headers)
    body_rows = "\n".join(
        "<tr><td>" + html.escape(row[0]) + "</td>" + "".join(row[1:]) + "</tr>"
        for row in rows
    )
    legend = "\n".join(
        f'<p class="legend">{html.escape(line)}</p>'
        for line in legend_lines(summary, metric_label=metric_label, value_format=value_format, notes=notes)
    )
    if extra:
        legend += "\n" + extra
    page_title = html.escape(title or "results")
    heading = f"<h1>{html.escape(title)}</h1>\n" if title else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{page_title}</title>\n<style>{_HTML_STYLE}</style>\n</head>\n<body>\n"
        f"{heading}<table>\n<thead><tr>{head_cells}</tr></thead>\n<tbody>\n{body_rows}\n</tbody>\n</table>\n"
        f"{legend}\n</body>\n</html>\n"
    )


def write_reports(
    summary: Summary,
    out_dir: str | Path,
    *,
    title: str | None = None,
    metric_label: str = "accuracy",
    value_format: ValueFormat = PERCENT,
    files: tuple[str, ...] = REPORT_FILES,
    notes: Sequence[str] = (),
    extra_markdown: str = "",
    extra_html: str = "",
    ttests: "pd.DataFrame | None" = None,
) -> dict[str, Path]:
    """Write the Markdown, summary CSV, HTML and t-test CSV into ``out_dir``; name -> path.

    ``files`` names them, in that order (``results.md``, ``results.csv``,
    ``results.html``, ``ttest.csv`` by default), so that a second metric's
    tables can sit beside the first's in the same folder without clobbering them.
    The CSVs hold the summary's fractions at full precision (``to_frame`` /
    ``ttests``), not the rounded numbers of the tables, so that numbers
    can be re-used without re-running the sweep. ``notes`` join the legend; ``extra_markdown`` /
    ``extra_html`` follow it (the published numbers' block); ``ttests`` replaces
    ``summary.ttests()`` (with a second test's columns added).
    """
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    markdown, frame, page, ttest_path = (directory / name for name in files)
    options = dict(title=title, metric_label=metric_label, value_format=value_format, notes=notes)
    markdown.write_text(render_markdown(summary, **options, extra=extra_markdown), encoding="utf-8")
    summary.to_frame().to_csv(frame, index=False)
    page.write_text(render_html(summary, **options, extra=extra_html), encoding="utf-8")
    (summary.ttests() if ttests is None else ttests).to_csv(ttest_path, index=False)
    return {path.name: path for path in (markdown, frame, page, ttest_path)}


# --------------------------------------------------------------------------- markdown helpers


def _markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A pipe table padded to aligned columns, so the same text reads well in a terminal."""
    cells = [[_escape_markdown_cell(text) for text in row] for row in [headers, *rows]]
    widths = [max(3, *(len(row[i]) for row in cells)) for i in range(len(headers))]
    rule = [":" + "-" * (widths[0] - 1)] + ["-" * (width - 1) + ":" for width in widths[1:]]
    lines = [_markdown_row(cells[0], widths), _markdown_row(rule, widths)]
    lines.extend(_markdown_row(row, widths) for row in cells[1:])
    return "\n".join(lines)


def _markdown_row(cells: list[str], widths: list[int]) -> str:
    """One table line; the first (arm) column is left-aligned, numbers right-aligned."""
    padded = [cells[0].ljust(widths[0])] + [text.rjust(width) for text, width in zip(cells[1:], widths[1:])]
    return "| " + " | ".join(padded) + " |"


def _escape_markdown_cell(text: str) -> str:
    """A literal ``|`` would end the cell early (e.g. in an arm name)."""
    return text.replace("|", "\\|")
