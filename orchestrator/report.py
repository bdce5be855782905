"""Render a :class:`orchestrator.stats.Summary` as paper-style results tables.

Rows are arms (in the summary's order), columns are the languages, then
``avg`` (macro average without the source language) and ``avg+<source>``
(macro average with it; ``avg+en`` for an English source).

Cell format, identical in every renderer apart from the bold markup
(Markdown ``**...**``, HTML ``<b>...</b>``, shown here in Markdown)::

    73.4 ± 0.5              mean ± sample std over seeds, percent, one decimal
    **73.4 ± 0.5**          best mean of the column (ties are all bold)
    73.4 ± 0.5†             significantly better than the baseline arm (corrected p <= alpha)
    73.4 ± 0.5▼             significantly worse than the baseline arm (corrected p <= alpha)
    **73.4 ± 0.5**†         both
    73.4 ± 0.5 (n=4)        fewer seeds than expected: the n actually used
    **73.4 ± 0.5**† (n=4)   all of it; the order is always bold, mark, (n=..)
    73.4 (n=1)              a single seed has no std
    –                       the arm has no result in this column

The mark sits outside the bold so that it reads as a mark on the cell, like
the papers' superscript, and ``(n=...)`` comes last because it qualifies the
whole cell. SALT's Table 1 marks significant improvements only; a significant
degradation gets its own mark (▼, not ‡, which is too easily read as †).
The HTML table adds, under every tested cell, the mean paired difference to the
baseline with its confidence interval, and the raw and adjusted p as a tooltip.
Values are multiplied by 100 here only: the CSV files keep the summary's
fractions at full precision so they can be re-analysed.

That is the default :data:`PERCENT` format. A score that is itself read on
[0, 1], such as X-Mixup's linear CKA (its Table 7: ``0.81``), is shown with
:data:`FRACTION` instead: unscaled, two decimals (``0.81 ± 0.01``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from orchestrator.stats import AVG, AVG_EN, BETTER, WORSE, Cell, Summary

DAGGER = "†"
"""Significantly better than the baseline."""
WORSE_MARK = "▼"
"""Significantly worse than the baseline."""
MARKS = {BETTER: DAGGER, WORSE: WORSE_MARK}
CHANCE_MARK = "⚠"
"""After an arm's name: some of its runs never selected above chance (their kept checkpoint is arbitrary)."""
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
    "span.diff{display:block;font-size:75%;color:#555}"
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
    difference_unit: str = " points"

    def number(self, value: float, *, signed: bool = False) -> str:
        return f"{value * self.scale:{'+' if signed else ''}.{self.digits}f}"


PERCENT = ValueFormat()
"""Accuracy and F1 as the papers print them: percent, one decimal."""
FRACTION = ValueFormat(scale=1.0, digits=2, label_suffix=";", difference_unit="")
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
    text += MARKS.get(cell.direction, "")
    if cell.n < expected_n:
        text += f" (n={cell.n})"
    return text


def format_difference(cell: Cell, value_format: ValueFormat = PERCENT) -> str:
    """``+1.2 [+0.3, +2.1]``: the mean paired difference to the baseline and its interval ("" if untested)."""
    if cell.mean_diff is None:
        return ""
    text = value_format.number(cell.mean_diff, signed=True)
    if cell.ci_low is not None and cell.ci_high is not None:
        text += f" [{value_format.number(cell.ci_low, signed=True)}, {value_format.number(cell.ci_high, signed=True)}]"
    return text


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


# --------------------------------------------------------------------------- legend


def legend_lines(
    summary: Summary, *, metric_label: str = "accuracy", value_format: ValueFormat = PERCENT,
    notes: Sequence[str] = (),
) -> list[str]:
    """Plain-text legend: what a cell and each mark mean, the averages, the per-arm verdicts, the
    differences the seeds could detect, ``notes`` (the protocol: search, baseline tuning), missing seeds.

    The tests are only explained when the table has them (a summary without a baseline has no
    marks), and ``avg+<source>`` only when the table shows it.
    """
    seeds = ", ".join(str(seed) for seed in summary.expected_seeds) or "none"
    source = summary.source_language
    lines = [
        f"{metric_label}{value_format.label_suffix} mean ± std over {len(summary.expected_seeds)} seeds "
        f"(seeds: {seeds}); bold = best",
    ]
    if summary.baseline_arm is not None:
        lines.append(_marks_line(summary))
    averages = f"avg = macro average over the target languages (without {source})"
    if AVG_EN in summary.columns:
        averages += f"; avg+{source} = macro average over all languages"
    lines.append(averages)
    if summary.baseline_arm is not None:
        lines.extend(_verdict_lines(summary, value_format))
    lines.extend(notes)
    if summary.at_chance:
        runs = "; ".join(f"{arm}: seed {', '.join(map(str, seeds))}" for arm, seeds in summary.at_chance.items())
        lines.append(f"{CHANCE_MARK} selection metric at chance (never above the dev set's constant-prediction "
                     f"score): the kept checkpoint is arbitrary; {runs}")
    missing = summary.missing_seeds()
    if missing:
        per_arm = "; ".join(f"{arm}: {', '.join(str(seed) for seed in seeds)}" for arm, seeds in missing.items())
        lines.append(f"missing seeds: {per_arm}")
    return lines


def _same_as_baseline(summary: Summary, arm: str) -> bool:
    """Every column paired on two or more seeds with no difference at all (e.g. the search kept the paper
    setting, so the tuned arm is the baseline run again): say so rather than leave the row unexplained."""
    cells = [summary.cell(arm, column) for column in summary.columns]
    return any(cell.n_pairs >= 2 for cell in cells) and all(
        cell.mean_diff is not None and abs(cell.mean_diff) < 1e-12 for cell in cells if cell.n_pairs)


def _marks_line(summary: Summary) -> str:
    options = summary.options
    if options.correction == "none":
        rule = f"p <= {options.alpha:g}, not corrected for the many columns"
    else:
        rule = (f"p adjusted ({options.correction_name}, over each arm's {len(summary.columns)} columns) "
                f"<= {options.alpha:g}")
    interval = "t" if options.ci_method == "t" else "percentile bootstrap over seeds"
    return (f"{DAGGER} significantly better, {WORSE_MARK} significantly worse than {summary.baseline_arm}: "
            f"paired t-test over seeds, {rule}; differences to {summary.baseline_arm} with "
            f"{options.confidence:.0%} {interval} intervals in results.html and ttest.csv")


def _verdict_lines(summary: Summary, value_format: ValueFormat) -> list[str]:
    """Per arm: better/worse on how many languages; the smallest difference its seeds could detect."""
    options = summary.options
    verdicts, detectable = [], []
    for arm in summary.arms:
        if arm == summary.baseline_arm:
            continue
        better, worse, tested = summary.direction_counts(arm)
        if tested:
            verdicts.append(f"{arm} better on {better}, worse on {worse} of {tested} languages")
        elif _same_as_baseline(summary, arm):
            verdicts.append(f"{arm} equals {summary.baseline_arm} on every paired seed (no test)")
        mdd = [f"{column_label(summary, column)} {value_format.number(summary.cell(arm, column).mdd)}"
               for column in (AVG, AVG_EN) if column in summary.columns and summary.cell(arm, column).mdd is not None]
        if mdd:
            detectable.append(f"{arm} {', '.join(mdd)}")
    lines = []
    if verdicts:
        lines.append(f"vs {summary.baseline_arm} ({options.correction_name}): " + "; ".join(verdicts))
    if detectable:
        lines.append(f"smallest true difference the seeds detect with {options.power:.0%} power (paired t-test, "
                     f"two-sided, alpha {options.alpha:g} uncorrected, observed spread){value_format.difference_unit and ', in' + value_format.difference_unit}: "
                     + "; ".join(detectable))
    return lines


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
