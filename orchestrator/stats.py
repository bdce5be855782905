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

The cells and the summary they form are :mod:`orchestrator.stats_summary`; checking the input
and forming the per-seed values is :mod:`orchestrator.stats_input`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace

import pandas as pd

from orchestrator.significance import PairedTest, SignificanceOptions, adjust_p_values, paired_test
from orchestrator.stats_input import clean_results, per_seed_values, validate_options
from orchestrator.stats_summary import BETTER, WORSE, Cell, Summary

# Means closer than this are a tie for "best": summation order alone must not
# decide which arm is bold.
_TIE_ATOL = 1e-12


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
    validate_options(arms, languages, baseline_arm, source_language, options.alpha)
    frame = clean_results(results, arms, languages)
    per_column = per_seed_values(frame, languages, source_language)
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


# --------------------------------------------------------------------------- cells


def _arm_values(values: pd.Series, arm: str) -> pd.Series:
    """The per-seed values of one arm, indexed by seed (empty if the arm has none)."""
    mask = values.index.get_level_values("arm") == arm
    return values[mask].droplevel("arm").sort_index()


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
