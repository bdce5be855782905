"""Render a :class:`orchestrator.stats.Summary` as paper-style results tables.

Rows are arms (in the summary's order), columns are the languages, then
``avg`` (macro average without the source language) and ``avg+<source>``
(macro average with it; ``avg+en`` for an English source).

Cell format, identical in every renderer apart from the bold markup
(Markdown ``**...**``, HTML ``<b>...</b>``, shown here in Markdown)::

    73.4 ± 0.5              mean ± sample std over seeds, percent, one decimal
    **73.4 ± 0.5**          best mean of the column (ties are all bold)
    73.4 ± 0.5†             paired t-test vs the baseline arm has p <= alpha
    **73.4 ± 0.5**†         both
    73.4 ± 0.5 (n=4)        fewer seeds than expected: the n actually used
    **73.4 ± 0.5**† (n=4)   all of it; the order is always bold, dagger, (n=..)
    73.4 (n=1)              a single seed has no std
    –                       the arm has no result in this column

The dagger sits outside the bold so that it reads as a mark on the cell, like
the papers' superscript, and ``(n=...)`` comes last because it qualifies the
whole cell. Values are multiplied by 100 here only: the CSV files keep the
summary's fractions at full precision so they can be re-analysed.

That is the default :data:`PERCENT` format. A score that is itself read on
[0, 1], such as X-Mixup's linear CKA (its Table 7: ``0.81``), is shown with
:data:`FRACTION` instead: unscaled, two decimals (``0.81 ± 0.01``).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

from orchestrator.stats import AVG, AVG_EN, Cell, Summary

DAGGER = "†"
EMPTY_CELL = "–"
ARM_HEADER = "arm"

REPORT_FILES: tuple[str, ...] = ("results.md", "results.csv", "results.html", "ttest.csv")
"""The accuracy (task metric) report: Markdown, summary CSV, HTML, t-test CSV, in that order."""

_HTML_STYLE = (
    "body{font-family:sans-serif;margin:2em}"
    "table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right;white-space:nowrap}"
    "th:first-child,td:first-child{text-align:left}"
    "p.legend{font-size:90%;color:#444}"
)


@dataclass(frozen=True)
class ValueFormat:
    """How a summary's fractions are shown in the cells, and how the legend names their unit.

    ``label_suffix`` follows the metric label at the start of the legend: ``" (%):"`` after a
    short name such as "accuracy", ``";"`` after a label that is a whole description.
    """

    scale: float = 100.0
    digits: int = 1
    label_suffix: str = " (%):"


PERCENT = ValueFormat()
"""Accuracy and F1 as the papers print them: percent, one decimal."""
FRACTION = ValueFormat(scale=1.0, digits=2, label_suffix=";")
"""Scores on [0, 1] that papers print unscaled, such as linear CKA: two decimals."""


# --------------------------------------------------------------------------- cells and headers


def column_label(summary: Summary, column: str) -> str:
    """Header text: languages as their codes, averages spelled so the source's role is visible."""
    if column == AVG:
        return "avg"
    if column == AVG_EN:
        return f"avg+{summary.source_language}"
    return column


def format_cell(
    cell: Cell, *, expected_n: int, html_markup: bool = False, value_format: ValueFormat = PERCENT
) -> str:
    """The text of one cell (see the module docstring for the format).

    With ``html_markup`` the result is an HTML fragment (``<b>`` for bold);
    otherwise Markdown (``**``).
    """
    if cell.n == 0 or not math.isfinite(cell.mean):
        return EMPTY_CELL
    text = _mean_std(cell, value_format)
    if cell.best:
        text = f"<b>{text}</b>" if html_markup else f"**{text}**"
    if cell.significant:
        text += DAGGER
    if cell.n < expected_n:
        text += f" (n={cell.n})"
    return text


def _mean_std(cell: Cell, value_format: ValueFormat) -> str:
    """``mean ± std`` scaled and rounded; just the mean when the std is undefined (one seed)."""
    scale, digits = value_format.scale, value_format.digits
    mean = f"{cell.mean * scale:.{digits}f}"
    if not math.isfinite(cell.std):
        return mean
    return f"{mean} ± {cell.std * scale:.{digits}f}"


def _table(
    summary: Summary, *, html_markup: bool, value_format: ValueFormat
) -> tuple[list[str], list[list[str]]]:
    """Header labels and body rows (arm name first), as plain strings / HTML fragments."""
    expected_n = len(summary.expected_seeds)
    headers = [ARM_HEADER, *(column_label(summary, column) for column in summary.columns)]
    rows = [
        [arm, *(format_cell(summary.cell(arm, column), expected_n=expected_n, html_markup=html_markup,
                            value_format=value_format)
                for column in summary.columns)]
        for arm in summary.arms
    ]
    return headers, rows


# --------------------------------------------------------------------------- legend


def legend_lines(
    summary: Summary, *, metric_label: str = "accuracy", value_format: ValueFormat = PERCENT
) -> list[str]:
    """Plain-text legend: what a cell means, what the averages are, which seeds are missing.

    The t-test and ``avg+<source>`` are only explained when the table has them: a summary
    without a baseline has no daggers, and a table may leave out the source's columns.
    """
    seeds = ", ".join(str(seed) for seed in summary.expected_seeds) or "none"
    source = summary.source_language
    ttest = (f"{DAGGER} paired t-test vs {summary.baseline_arm} p <= {summary.alpha:g}; "
             if summary.baseline_arm is not None else "")
    averages = f"avg = macro average over the target languages (without {source})"
    if AVG_EN in summary.columns:
        averages += f"; avg+{source} = macro average over all languages"
    lines = [
        f"{metric_label}{value_format.label_suffix} mean ± std over {len(summary.expected_seeds)} seeds "
        f"(seeds: {seeds}); {ttest}bold = best",
        averages,
    ]
    missing = summary.missing_seeds()
    if missing:
        per_arm = "; ".join(f"{arm}: {', '.join(str(seed) for seed in seeds)}" for arm, seeds in missing.items())
        lines.append(f"missing seeds: {per_arm}")
    return lines


# --------------------------------------------------------------------------- renderers


def render_markdown(
    summary: Summary, *, title: str | None = None, metric_label: str = "accuracy", value_format: ValueFormat = PERCENT
) -> str:
    """A GitHub Markdown table with the legend as paragraphs below it."""
    headers, rows = _table(summary, html_markup=False, value_format=value_format)
    parts = [f"## {title}"] if title else []
    parts.append(_markdown_table(headers, rows))
    parts.extend(legend_lines(summary, metric_label=metric_label, value_format=value_format))
    return "\n\n".join(parts) + "\n"


def render_text(
    summary: Summary, *, title: str | None = None, metric_label: str = "accuracy", value_format: ValueFormat = PERCENT
) -> str:
    """For a terminal: the (column-aligned) Markdown table, a plain title and a compact legend."""
    headers, rows = _table(summary, html_markup=False, value_format=value_format)
    parts = [f"{title}\n{'=' * len(title)}"] if title else []
    parts.append(_markdown_table(headers, rows))
    parts.append("\n".join(legend_lines(summary, metric_label=metric_label, value_format=value_format)))
    return "\n\n".join(parts) + "\n"


def render_html(
    summary: Summary, *, title: str | None = None, metric_label: str = "accuracy", value_format: ValueFormat = PERCENT
) -> str:
    """A small standalone HTML document with the same table and legend; all text is escaped."""
    headers, rows = _table(summary, html_markup=True, value_format=value_format)
    head_cells = "".join(f"<th>{html.escape(label)}</th>" for label in headers)
    body_rows = "\n".join(
        "<tr><td>" + html.escape(row[0]) + "</td>" + "".join(f"<td>{cell}</td>" for cell in row[1:]) + "</tr>"
        for row in rows
    )
    legend = "\n".join(
        f'<p class="legend">{html.escape(line)}</p>'
        for line in legend_lines(summary, metric_label=metric_label, value_format=value_format)
    )
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
) -> dict[str, Path]:
    """Write the Markdown, summary CSV, HTML and t-test CSV into ``out_dir``; name -> path.

    ``files`` names them, in that order (``results.md``, ``results.csv``,
    ``results.html``, ``ttest.csv`` by default), so that a second metric's
    tables can sit beside the first's in the same folder without clobbering them.
    The CSVs hold the summary's fractions at full precision (``to_frame`` /
    ``ttests``), not the rounded numbers of the tables, so that numbers
    can be re-used without re-running the sweep.
    """
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    markdown, frame, page, ttests = (directory / name for name in files)
    options = dict(title=title, metric_label=metric_label, value_format=value_format)
    markdown.write_text(render_markdown(summary, **options), encoding="utf-8")
    summary.to_frame().to_csv(frame, index=False)
    page.write_text(render_html(summary, **options), encoding="utf-8")
    summary.ttests().to_csv(ttests, index=False)
    return {path.name: path for path in (markdown, frame, page, ttests)}


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
