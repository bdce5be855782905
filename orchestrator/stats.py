"""Statistics over seeds for paper-style cross-lingual transfer tables.

The tables follow SALT's Table 1: every cell is the mean over seeds (5 in the
papers) of one arm (method) on one language, and a non-baseline arm is marked
when a paired t-test against the baseline arm is significant after correcting
for the arm's many columns (:mod:`orchestrator.significance`): ``better`` when
its mean is higher than the baseline's, ``worse`` when lower. SALT's Table 1
marks significant improvements only; a significant degradation gets its own
mark here rather than none, so that it is not mistaken for "no difference".

Why these choices:

* **Paired test, paired by seed.** Each seed fixes data order, dropout masks and
  head initialisation for every arm, so the arms' results for one seed are
  correlated. ``scipy.stats.ttest_rel`` on the per-seed differences removes that
  shared seed noise; an unpaired test would throw it away and lose power. Only
  seeds present in both arms can be paired, so a missing run shrinks
  ``n_pairs`` instead of silently pairing the wrong seeds.
* **Macro averages, computed per seed first.** The papers and XTREME's
  ``evaluate.py`` report the macro average over languages (each language counts
  once, whatever its test-set size), not a micro average over examples. The
  average is formed inside each seed and the mean/std/t-test are taken over
  those per-seed averages, so the std and the test of ``avg`` reflect seed
  variance of the average itself (the per-language stds cannot be combined
  into it, since languages of one seed are correlated). A seed missing one
  language of an average gets no average rather than an average over fewer
  languages, which would not be comparable with the other seeds.
* **One family per arm.** An arm's tests on every language and both averages
  are corrected together (Holm by default): that is the set of claims a row of
  the table makes. Arms are not pooled: each arm is its own comparison with
  the baseline, as in the papers' tables.
* **Two averages.** ``avg`` leaves out the source language (zero-shot transfer
  is about the target languages; including the supervised source inflates it),
  ``avg_en`` includes it, because some papers report that number instead.

Values are fractions (accuracy 0.734, F1 0.812); rendering them as percentages
is :mod:`orchestrator.report`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from orchestrator.significance import PairedTest, SignificanceOptions, adjust_p_values, paired_test

AVG = "avg"
"""Column name of the macro average over the target languages (no source)."""
AVG_EN = "avg_en"
"""Column name of the macro average over all languages, source included."""

REQUIRED_COLUMNS: tuple[str, ...] = ("arm", "seed", "language", "value")

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
# Means closer than this are a tie for "best": summation order alone must not
# decide which arm is bold.
_TIE_ATOL = 1e-12


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
class Summary:
    """All cells of a results table plus what is needed to render its legend.

    ``seeds_by_arm`` records which seeds each arm has any result for, so that
    missing runs can be reported instead of only showing up as a smaller ``n``.
    ``baseline_arm`` is ``None`` when nothing was tested (see :func:`summarize`).
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
        languages = [column for column in self.columns if column not in (AVG, AVG_EN)]
        cells = [self.cell(arm, column) for column in languages]
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


def summarize(
    results: pd.DataFrame,
    *,
    arms: Sequence[str],
    languages: Sequence[str],
    baseline_arm: str | None,
    source_language: str = "en",
    alpha: float = 0.05,
    expected_seeds: Iterable[int] | None = None,
    correction: str = "holm",
    ci_method: str = "t",
    options: SignificanceOptions | None = None,
) -> Summary:
    """Mean/std over seeds and paired t-tests vs ``baseline_arm`` for every arm x column.

    ``results`` is long: one row per (arm, seed, language) with a ``value``.
    Rows of arms or languages not asked for are ignored (so one results frame
    can feed several tables); a NaN value counts as a missing result.
    Columns are ``languages`` (in the given order), then ``avg`` and ``avg_en``.
    ``expected_seeds`` defaults to every seed seen for the requested arms; it is
    what "complete" means for :meth:`Summary.missing_seeds` and the report.
    ``baseline_arm=None`` tests nothing (no cell gets a test or a dagger). It is
    for a secondary metric the baseline arm does not log (X-Mixup's CKA), where
    listing the baseline anyway would only add an empty row. A named baseline
    must still be one of ``arms``, so that a typo cannot silently drop every test.
    ``correction`` (``holm``, ``bh``, ``none``) adjusts each arm's p-values over its columns;
    ``ci_method`` (``t``, ``bootstrap``) picks the interval of the mean difference. ``options``
    gives all of it at once (it then wins over ``alpha``/``correction``/``ci_method``).
    """
    arms = list(arms)
    languages = list(languages)
    if options is None:
        options = SignificanceOptions(alpha=alpha, correction=correction, ci_method=ci_method)
    _validate_options(arms, languages, baseline_arm, source_language, options.alpha)
    frame = _clean_results(results, arms, languages)
    per_column = _per_seed_values(frame, languages, source_language)
    cells: dict[tuple[str, str], Cell] = {}
    for column, values in per_column.items():
        cells.update(_column_cells(column, values, arms, baseline_arm, options))
    cells = _correct_families(cells, arms, list(per_column), options)
    seeds_by_arm = {arm: sorted(int(s) for s in frame.loc[frame["arm"] == arm, "seed"].unique()) for arm in arms}
    if expected_seeds is None:
        expected = sorted({seed for seeds in seeds_by_arm.values() for seed in seeds})
    else:
        expected = sorted({int(seed) for seed in expected_seeds})
    return Summary(
        arms=arms,
        columns=list(per_column),
        baseline_arm=baseline_arm,
        alpha=options.alpha,
        cells=cells,
        expected_seeds=expected,
        source_language=source_language,
        seeds_by_arm=seeds_by_arm,
        options=options,
    )


# --------------------------------------------------------------------------- validation


def _validate_options(
    arms: list[str], languages: list[str], baseline_arm: str | None, source_language: str, alpha: float
) -> None:
    """Reject option mistakes up front: they would otherwise surface as a silently wrong table."""
    if not arms:
        raise ValueError("arms must not be empty")
    if len(set(arms)) != len(arms):
        raise ValueError(f"arms contain duplicates: {arms}")
    if baseline_arm is not None and baseline_arm not in arms:
        raise ValueError(f"baseline arm {baseline_arm!r} is not in arms {arms}")
    if not languages:
        raise ValueError("languages must not be empty")
    if len(set(languages)) != len(languages):
        raise ValueError(f"languages contain duplicates: {languages}")
    if source_language not in languages:
        raise ValueError(f"source language {source_language!r} is not in languages {languages}")
    clashes = sorted({AVG, AVG_EN} & set(languages))
    if clashes:
        raise ValueError(f"languages {clashes} clash with the average column names {AVG!r}/{AVG_EN!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _clean_results(results: pd.DataFrame, arms: list[str], languages: list[str]) -> pd.DataFrame:
    """Check and normalise the long results frame; keep only requested arms/languages with a value."""
    missing = [column for column in REQUIRED_COLUMNS if column not in results.columns]
    if missing:
        raise ValueError(
            f"results is missing columns {missing}; expected {list(REQUIRED_COLUMNS)}, got {list(results.columns)}"
        )
    frame = results.loc[:, list(REQUIRED_COLUMNS)].copy()
    frame["seed"] = _integer_seeds(frame["seed"])
    try:
        frame["value"] = pd.to_numeric(frame["value"]).astype("float64")
    except (TypeError, ValueError) as error:
        raise ValueError(f"results column 'value' must be numeric: {error}") from None
    _reject_duplicates(frame)
    keep = frame["arm"].isin(arms) & frame["language"].isin(languages) & frame["value"].notna()
    return frame.loc[keep].reset_index(drop=True)


def _integer_seeds(seeds: pd.Series) -> pd.Series:
    """Seeds must be whole numbers: they are the pairing key, so 1 and 1.5 must not blur."""
    numeric = pd.to_numeric(seeds, errors="coerce")
    bad = numeric.isna() | (numeric != np.floor(numeric))
    if bad.any():
        raise ValueError(f"results column 'seed' must hold integers; bad values: {seeds[bad].tolist()[:5]}")
    return numeric.astype("int64")


def _reject_duplicates(frame: pd.DataFrame) -> None:
    """Two values for one (arm, seed, language) mean a run was logged twice; refuse to guess which."""
    duplicated = frame.duplicated(["arm", "seed", "language"], keep=False)
    if duplicated.any():
        keys = frame.loc[duplicated, ["arm", "seed", "language"]].drop_duplicates()
        shown = [tuple(row) for row in keys.head(5).itertuples(index=False)]
        raise ValueError(f"results has duplicate (arm, seed, language) rows, e.g. {shown}")


# --------------------------------------------------------------------------- per-seed values


def _per_seed_values(frame: pd.DataFrame, languages: list[str], source_language: str) -> dict[str, pd.Series]:
    """Column -> value per (arm, seed): the languages as given, then the two macro averages."""
    wide = frame.set_index(["arm", "seed", "language"])["value"].unstack("language")
    wide = wide.reindex(columns=languages)
    targets = [language for language in languages if language != source_language]
    values = {language: wide[language].dropna() for language in languages}
    values[AVG] = _macro_average(wide, targets)
    values[AVG_EN] = _macro_average(wide, languages)
    return values


def _macro_average(wide: pd.DataFrame, languages: list[str]) -> pd.Series:
    """Per (arm, seed) mean over ``languages``, only for seeds that have all of them."""
    if not languages:
        return pd.Series(index=wide.index[:0], dtype="float64")
    complete = wide[languages].dropna(how="any")
    return complete.mean(axis=1)


def _arm_values(values: pd.Series, arm: str) -> pd.Series:
    """The per-seed values of one arm, indexed by seed (empty if the arm has none)."""
    mask = values.index.get_level_values("arm") == arm
    return values[mask].droplevel("arm").sort_index()


# --------------------------------------------------------------------------- cells


def _column_cells(
    column: str, values: pd.Series, arms: list[str], baseline_arm: str | None, options: SignificanceOptions
) -> dict[tuple[str, str], Cell]:
    """All arms' cells of one column: describe each arm, test it against the baseline, mark the best."""
    by_arm = {arm: _arm_values(values, arm) for arm in arms}
    means = {arm: float(v.mean()) if len(v) else math.nan for arm, v in by_arm.items()}
    best = _best_arms(means)
    baseline = by_arm[baseline_arm] if baseline_arm is not None else None  # None: nothing is tested
    cells = {}
    for arm, arm_values in by_arm.items():
        untested = baseline is None or arm == baseline_arm
        test = PairedTest() if untested else _paired_test(arm_values, baseline, options)
        cells[(arm, column)] = Cell(
            mean=means[arm],
            std=_sample_std(arm_values),
            n=len(arm_values),
            t_stat=test.t_stat,
            p_value=test.p_value,
            n_pairs=test.n_pairs,
            mean_diff=test.mean_diff,
            significant=False,  # decided once the arm's family is corrected
            best=arm in best,
            ci_low=test.ci_low,
            ci_high=test.ci_high,
            mdd=test.mdd,
        )
    return cells


def _correct_families(cells: dict[tuple[str, str], Cell], arms: list[str], columns: list[str],
                      options: SignificanceOptions) -> dict[tuple[str, str], Cell]:
    """Adjust each arm's p-values over its columns; mark significance and its direction on the adjusted p."""
    out = dict(cells)
    for arm in arms:
        keys = [(arm, column) for column in columns]
        adjusted = adjust_p_values([cells[key].p_value for key in keys], options.correction, options.alpha)
        for key, p_adjusted in zip(keys, adjusted):
            cell = cells[key]
            significant = p_adjusted is not None and p_adjusted <= options.alpha
            direction = ""
            if significant:
                direction = BETTER if (cell.mean_diff or 0.0) > 0 else WORSE
            out[key] = replace(cell, p_adjusted=p_adjusted, significant=significant, direction=direction)
    return out


def _sample_std(values: pd.Series) -> float:
    """Sample std (ddof=1), as papers report spread over seeds; undefined (NaN) below two seeds."""
    return float(values.std(ddof=1)) if len(values) >= 2 else math.nan


def _best_arms(means: dict[str, float]) -> set[str]:
    """Arms whose mean is the column maximum; ties are all best, arms without results never are."""
    finite = {arm: mean for arm, mean in means.items() if math.isfinite(mean)}
    if not finite:
        return set()
    top = max(finite.values())
    return {arm for arm, mean in finite.items() if mean >= top - _TIE_ATOL}


def _paired_test(values: pd.Series, baseline: pd.Series, options: SignificanceOptions) -> PairedTest:
    """Paired test of ``values`` vs ``baseline`` on the seeds both have (a missing run shrinks ``n_pairs``)."""
    shared = values.index.intersection(baseline.index).sort_values()
    return paired_test(values.loc[shared].to_numpy(dtype="float64"), baseline.loc[shared].to_numpy(dtype="float64"),
                       options)


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
