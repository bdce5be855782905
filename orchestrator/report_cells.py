"""The text of one results-table cell, and the marks the tables and their legends share.

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
Values are multiplied by 100 here only: the CSV files keep the summary's
fractions at full precision so they can be re-analysed.

That is the default :data:`PERCENT` format. A score that is itself read on
[0, 1], such as X-Mixup's linear CKA (its Table 7: ``0.81``), is shown with
:data:`FRACTION` instead: unscaled, two decimals (``0.81 ± 0.01``).

It is its own module because every table prints cells and marks this way: the results tables
(:mod:`orchestrator.report`), their legend (:mod:`orchestrator.report_legend`), SALT's generalized
XNLI tables and the transfer analysis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator.stats_summary import AVG, AVG_EN, BETTER, WORSE, Cell, Summary

DAGGER = "†"
"""Significantly better than the baseline."""
WORSE_MARK = "▼"
"""Significantly worse than the baseline."""
MARKS = {BETTER: DAGGER, WORSE: WORSE_MARK}
CHANCE_MARK = "⚠"
"""After an arm's name: some of its runs never selected above chance (their kept checkpoint is arbitrary)."""
EMPTY_CELL = "–"


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


def _mean_std(cell: Cell, value_format: ValueFormat) -> str:
    """``mean ± std`` scaled and rounded; just the mean when the std is undefined (one seed)."""
    scale, digits = value_format.scale, value_format.digits
    mean = f"{cell.mean * scale:.{digits}f}"
    if not math.isfinite(cell.std):
        return mean
    return f"{mean} ± {cell.std * scale:.{digits}f}"
