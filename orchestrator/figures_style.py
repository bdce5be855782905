"""What every figure of a sweep shares: one colour per arm, the value scale of the tables, the interval
of a mean over seeds, and a bare matplotlib ``Figure``.

Figures are built as ``matplotlib.figure.Figure`` objects, not through ``pyplot``: they need no display
and no backend (``savefig`` renders with Agg), hold no global state between a sweep's reports, and
are freed like any object. Values arrive as fractions, as the summaries keep them; they are shown on
the tables' scale (:class:`orchestrator.report_cells.ValueFormat`: percent for accuracy and F1, the
raw value for CKA), so a bar reads as the number in the table's cell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from scipy import stats as sps

from orchestrator.report_cells import ValueFormat

class FigureSkipped(Exception):
    """This figure cannot be drawn from the data at hand (too few trials, no seed with all pairs, ...);
    ``str()`` is the one line the report prints instead. A sweep's report skips it and goes on."""


DPI = 150
"""Resolution of the PNGs written beside the tables (and attached to the parent run)."""
CONFIDENCE = 0.95


def new_figure(width: float, height: float) -> Figure:
    """A figure whose layout engine keeps titles, labels and outside legends from overlapping."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def arm_colours(arms: Sequence[str]) -> dict[str, tuple]:
    """Arm -> colour, by the arm's position in the table: an arm has the same colour in every figure of a
    sweep. tab10 for up to ten arms, tab20 beyond (X-Mixup's experiments confirm thirteen)."""
    palette = colormaps["tab10" if len(arms) <= 10 else "tab20"]
    return {arm: palette(i % palette.N) for i, arm in enumerate(arms)}


def axis_label(metric_label: str, value_format: ValueFormat) -> str:
    """``"test accuracy (%)"`` for values shown in percent; the bare label for unscaled ones (CKA)."""
    return f"{metric_label} (%)" if value_format.scale == 100.0 else metric_label


def difference_unit(value_format: ValueFormat) -> str:
    """The unit of a difference of two shown values: percentage points, or the value's own."""
    return "percentage points" if value_format.scale == 100.0 else "difference"


def mean_half_width(values: Sequence[float], confidence: float = CONFIDENCE) -> float:
    """Half-width of the t-interval of the mean over seeds (``scipy.stats.t``): the seeds' spread as an
    uncertainty of the mean. NaN below two seeds, where the interval is undefined."""
    values = np.asarray(values, dtype="float64")
    n = len(values)
    if n < 2:
        return math.nan
    return float(sps.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))


def seed_offsets(n: int, width: float) -> list[float]:
    """Horizontal offsets of ``n`` seed dots inside a bar of ``width``: spread over its middle 60 % (in
    seed order), so that equal values stay visible as separate dots; one dot sits in the middle."""
    if n <= 1:
        return [0.0] * n
    step = 0.6 * width / (n - 1)
    return [(i - (n - 1) / 2) * step for i in range(n)]
