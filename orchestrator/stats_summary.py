"""What :func:`orchestrator.stats.summarize` returns: the table's cells and what its legend needs.

``Cell`` and ``Summary`` are the data every consumer reads (the report's renderers, the results'
CSV and MLflow metrics, the transfer analysis), and the column and direction names they share. They
live apart from the statistics that fill them (``orchestrator.stats``) so that a reader of a summary
depends on its shape only, not on how the cells were computed. Values are fractions at full precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from orchestrator.significance import SignificanceOptions

AVG = "avg"
"""Column name of the macro average over the target languages (no source)."""
AVG_EN = "avg_en"
"""Column name of the macro average over all languages, source included."""

BETTER = "better"
WORSE = "worse"
NOT_SIGNIFICANT = "none"
"""``direction`` of a column in the CSV frames when no significant difference was found (or none tested)."""

FRAME_COLUMNS: tuple[str, ...] = (
    "arm", "column", "mean", "std", "n", "t_stat", "p_value", "p_adjusted", "n_pairs", "mean_diff", "ci_low",
    "ci_high", "mdd", "significant", "direction", "best",
)
TTEST_COLUMNS: tuple[str, ...] = (
    "arm", "baseline", "column", "n_pairs", "mean_diff", "ci_low", "ci_high", "t_stat", "p_value", "p_adjusted",
    "correction", "significant", "direction", "mdd",
)


@dataclass(frozen=True)
class Cell:
    """One table cell: an arm's statistics over seeds in one column.

    ``t_stat``, ``p_value`` and ``mean_diff`` are ``None`` where no test was
    computed: for the baseline arm itself, when fewer than two seeds pair up,
    or when the differences have zero variance (``mean_diff`` is still given
    when at least one seed pairs up). ``p_adjusted`` is ``p_value`` corrected
    over the arm's family of columns; ``significant`` means ``p_adjusted <=
    alpha``, and ``direction`` says which way (``"better"``, ``"worse"``, or
    ``""`` when not significant). ``ci_low``/``ci_high`` bound the mean paired
    difference (arm - baseline); ``mdd`` is the minimal difference the test
    detects at the summary's power.
    """

    mean: float
    std: float
    n: int
    t_stat: float | None
    p_value: float | None
    n_pairs: int
    mean_diff: float | None
    significant: bool
    best: bool
    p_adjusted: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    mdd: float | None = None
    direction: str = ""


@dataclass(frozen=True)
class LanguageSubset:
    """A table over some of a benchmark's target languages (``--languages``): its averages are over those only,
    and its legend must not let them pass for the benchmark's average (``TaskSpec.is_subset``)."""

    benchmark: str  # the benchmark as the legend names it, e.g. "XNLI"
    targets: tuple[str, ...]  # the benchmark's target languages, all of them


@dataclass(frozen=True)
class Summary:
    """All cells of a results table plus what is needed to render its legend.

    ``seeds_by_arm`` records which seeds each arm has any result for, so that
    missing runs can be reported instead of only showing up as a smaller ``n``.
    ``baseline_arm`` is ``None`` when nothing was tested (see :func:`orchestrator.stats.summarize`).
    """

    arms: list[str]
    columns: list[str]
    baseline_arm: str | None
    alpha: float
    cells: dict[tuple[str, str], Cell]
    expected_seeds: list[int]
    source_language: str = "en"
    seeds_by_arm: dict[str, list[int]] = field(default_factory=dict)
    options: SignificanceOptions = field(default_factory=SignificanceOptions)
    # Arm -> seeds whose run's selection metric never rose above its dev set's constant-prediction score:
    # the checkpoint such a run kept is arbitrary (set by the report from the runs' flags).
    at_chance: dict[str, list[int]] = field(default_factory=dict)
    # The benchmark whose target languages this table covers only in part (set by the report); None: all of them.
    subset: LanguageSubset | None = None

    @property
    def languages(self) -> list[str]:
        """The language columns (the averages are not languages)."""
        return [column for column in self.columns if column not in (AVG, AVG_EN)]

    @property
    def correction(self) -> str:
        return self.options.correction

    def cell(self, arm: str, column: str) -> Cell:
        """The cell of ``arm`` in ``column``; ``KeyError`` naming the valid choices otherwise."""
        try:
            return self.cells[(arm, column)]
        except KeyError:
            raise KeyError(
                f"no cell for arm={arm!r}, column={column!r}; arms={self.arms}, columns={self.columns}"
            ) from None

    def to_frame(self) -> pd.DataFrame:
        """Long format, one row per arm x column (arm order, then column order).

        Values stay fractions at full precision; ``None`` becomes NaN.
        """
        rows = [
            _cell_record(arm, column, self.cell(arm, column))
            for arm in self.arms
            for column in self.columns
        ]
        frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
        return frame.astype({"n": "int64", "n_pairs": "int64", "significant": "bool", "best": "bool"})

    def ttests(self) -> pd.DataFrame:
        """One row per non-baseline arm x column with the paired t-test against the baseline.

        ``mean_diff`` keeps its sign (arm - baseline), ``p_value`` is raw and ``p_adjusted``
        corrected (``correction`` names how). Without a baseline there are no tests, so no rows
        (the columns stay, for a uniform CSV).
        """
        frame = self.to_frame()
        if self.baseline_arm is None:
            frame = frame.iloc[:0]
        else:
            frame = frame[frame["arm"] != self.baseline_arm].reset_index(drop=True)
        frame.insert(1, "baseline", self.baseline_arm)
        frame["correction"] = self.correction
        return frame[list(TTEST_COLUMNS)]

    def direction_counts(self, arm: str) -> tuple[int, int, int]:
        """(better, worse, tested) over the language columns of ``arm`` (the averages are not languages)."""
        cells = [self.cell(arm, column) for column in self.languages]
        tested = [cell for cell in cells if cell.p_value is not None]
        return (sum(cell.direction == BETTER for cell in tested), sum(cell.direction == WORSE for cell in tested),
                len(tested))

    def missing_seeds(self) -> dict[str, list[int]]:
        """Arm -> expected seeds with no result at all, only for arms that miss any.

        Only arms with gaps are listed so that ``if summary.missing_seeds():``
        answers "is the sweep complete?".
        """
        missing: dict[str, list[int]] = {}
        for arm in self.arms:
            present = set(self.seeds_by_arm.get(arm, []))
            gaps = [seed for seed in self.expected_seeds if seed not in present]
            if gaps:
                missing[arm] = gaps
        return missing


def _cell_record(arm: str, column: str, cell: Cell) -> dict[str, object]:
    """One ``to_frame`` row; ``None`` -> NaN so numeric columns stay float."""
    def number(value: float | None) -> float:
        return math.nan if value is None else float(value)

    return {
        "arm": arm,
        "column": column,
        "mean": number(cell.mean),
        "std": number(cell.std),
        "n": cell.n,
        "t_stat": number(cell.t_stat),
        "p_value": number(cell.p_value),
        "p_adjusted": number(cell.p_adjusted),
        "n_pairs": cell.n_pairs,
        "mean_diff": number(cell.mean_diff),
        "ci_low": number(cell.ci_low),
        "ci_high": number(cell.ci_high),
        "mdd": number(cell.mdd),
        "significant": bool(cell.significant),
        "direction": cell.direction or NOT_SIGNIFICANT,
        "best": bool(cell.best),
    }
