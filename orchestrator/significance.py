"""One arm against the baseline: the paired test, its interval, its power, and the family correction.

What a table's marks rest on, each from the library that owns it:

* **Paired t-test over seeds** (``scipy.stats.ttest_rel``): the arms' results of one seed share
  data order, dropout masks and head initialisation, so the test is on the per-seed differences.
* **Confidence interval of the mean paired difference**: t-based by default (the interval that
  goes with the t-test, ``TtestResult.confidence_interval``); ``scipy.stats.bootstrap`` over the
  per-seed differences as an option (with 5 seeds its percentile interval is coarse; it is there
  for readers who distrust the normality assumption, not because it is better at n = 5).
* **Minimal detectable difference** at 80 % power (``statsmodels``' ``TTestPower``): the
  standardised effect a paired test with this many seeds detects 80 % of the time at the
  nominal alpha, times the observed spread of the differences. It tells "not significant
  because there is no effect" from "not significant because 5 seeds cannot see it".
* **Multiple comparisons** (``statsmodels.stats.multitest.multipletests``): one arm is tested on
  every language and both averages; at alpha 0.05 about one column in twenty is significant under
  the null. Holm (family-wise error) by default, Benjamini-Hochberg (false discovery rate) or
  none on request.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

CORRECTIONS: dict[str, str | None] = {"holm": "holm", "bh": "fdr_bh", "none": None}
"""``--correction`` values -> the ``multipletests`` method (None: raw p-values)."""
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no correction"}
CI_METHODS = ("t", "bootstrap")

# Differences whose spread is below this (relative to the size of the values) are treated as
# constant: the t statistic is then 0/0 or x/0, and the huge finite t that floating-point rounding
# produces (e.g. a constant +0.01 offset) would give a meaningless p ~ 0.
_DEGENERATE_RTOL = 1e-12


@dataclass(frozen=True)
class SignificanceOptions:
    """How every paired test of a table is done; one object so the legend can state it whole."""

    alpha: float = 0.05
    correction: str = "holm"
    confidence: float = 0.95
    ci_method: str = "t"
    power: float = 0.8
    bootstrap_resamples: int = 9999
    seed: int = 0  # of the bootstrap interval's resampling

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}")
        if self.ci_method not in CI_METHODS:
            raise ValueError(f"ci_method must be one of {', '.join(CI_METHODS)}, got {self.ci_method!r}")
        if not 0.0 < self.confidence < 1.0 or not 0.0 < self.power < 1.0:
            raise ValueError("confidence and power must be in (0, 1)")

    @property
    def correction_name(self) -> str:
        return CORRECTION_NAMES[self.correction]


@dataclass(frozen=True)
class PairedTest:
    """The paired comparison of one arm with the baseline in one column (raw, before correction).

    Fields are ``None`` where they cannot be computed: no pair at all (everything), one pair (all
    but ``mean_diff``), or differences of zero variance (no t, p, interval or power).
    """

    n_pairs: int = 0
    mean_diff: float | None = None
    t_stat: float | None = None
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    mdd: float | None = None


def paired_test(arm: np.ndarray, base: np.ndarray, options: SignificanceOptions) -> PairedTest:
    """Paired t-test, interval and minimal detectable difference of ``arm - base`` (same seeds, same order)."""
    arm, base = np.asarray(arm, dtype="float64"), np.asarray(base, dtype="float64")
    n = len(arm)
    if n == 0:
        return PairedTest()
    diff = arm - base
    untested = PairedTest(n_pairs=n, mean_diff=float(diff.mean()))
    if n < 2 or _is_constant(diff, scale=max(np.abs(arm).max(), np.abs(base).max(), 1.0)):
        return untested
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sps.ttest_rel(arm, base)
    t_stat, p_value = float(result.statistic), float(result.pvalue)
    if not (math.isfinite(t_stat) and math.isfinite(p_value)):
        return untested
    if options.ci_method == "bootstrap":
        low, high = bootstrap_interval(diff, confidence=options.confidence, resamples=options.bootstrap_resamples,
                                       seed=options.seed)
    else:
        interval = result.confidence_interval(options.confidence)
        low, high = float(interval.low), float(interval.high)
    sd = float(diff.std(ddof=1))
    return PairedTest(n_pairs=n, mean_diff=untested.mean_diff, t_stat=t_stat, p_value=p_value, ci_low=low,
                      ci_high=high, mdd=minimal_detectable_difference(sd, n, alpha=options.alpha, power=options.power))


def bootstrap_interval(diff: np.ndarray, *, confidence: float, resamples: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diff`` (``scipy.stats.bootstrap``).

    Percentile, not BCa: BCa's jackknife acceleration is undefined for the few distinct values a
    handful of seeds gives.
    """
    result = sps.bootstrap((np.asarray(diff, dtype="float64"),), np.mean, confidence_level=confidence,
                           n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def minimal_detectable_difference(sd_diff: float, n_pairs: int, *, alpha: float, power: float) -> float | None:
    """The smallest true mean difference a two-sided paired t-test on ``n_pairs`` seeds detects with
    probability ``power`` at level ``alpha``, given the observed std of the paired differences.

    ``TTestPower`` solves for the standardised effect (Cohen's d_z = mean diff / sd diff); times the
    sd it is in the metric's units.
    """
    from statsmodels.stats.power import TTestPower

    if n_pairs < 2 or not math.isfinite(sd_diff) or sd_diff <= 0:
        return None
    effect = TTestPower().solve_power(effect_size=None, nobs=n_pairs, alpha=alpha, power=power,
                                      alternative="two-sided")
    return float(effect) * sd_diff


def adjust_p_values(p_values: list[float | None], correction: str, alpha: float) -> list[float | None]:
    """The family's adjusted p-values (``None`` stays ``None``: an untested column is no member).

    ``multipletests`` does the procedure; ``none`` returns the raw values.
    """
    method = CORRECTIONS[correction]
    present = [i for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = list(p_values)
    if method is None or not present:
        return adjusted
    from statsmodels.stats.multitest import multipletests

    _reject, corrected, _sidak, _bonferroni = multipletests([p_values[i] for i in present], alpha=alpha,
                                                            method=method)
    for i, value in zip(present, corrected):
        adjusted[i] = float(value)
    return adjusted


def _is_constant(diff: np.ndarray, *, scale: float) -> bool:
    """True when the differences only vary by floating-point rounding (zero variance)."""
    return float(np.ptp(diff)) <= _DEGENERATE_RTOL * scale
