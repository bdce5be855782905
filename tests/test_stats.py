"""orchestrator.stats against hand-computed numbers.

Fixture: 2 arms x 3 seeds x 3 languages (values are fractions):

    arm   seed   en    de    fr   | avg = (de+fr)/2 | avg_en = (en+de+fr)/3
    base   1    .80   .70   .60   |     .650        |  2.10/3 = .70
    base   2    .82   .72   .62   |     .670        |  2.16/3 = .72
    base   3    .84   .71   .64   |     .675        |  2.19/3 = .73
    salt   1    .81   .73   .66   |     .695        |  2.20/3 = .7333..
    salt   2    .83   .77   .60   |     .685        |  2.20/3 = .7333..
    salt   3    .85   .75   .66   |     .705        |  2.26/3 = .7533..

Differences salt - base per seed:
    en:  .01  .01  .01   (constant: zero variance, no test)
    de:  .03  .05  .04   (significant)
    fr:  .06 -.02  .02   (not significant)
    avg: .045 .015 .030  (not significant)

For df = 2 the t distribution has a closed form, sf(t) = (1 - t / sqrt(t^2 + 2)) / 2,
so the two-sided p = 1 - t / sqrt(t^2 + 2); the tests check it against
scipy.stats.t.sf as well.
"""

from __future__ import annotations

import math
import warnings

import pandas as pd
import pytest
from scipy import stats as sps

from orchestrator.stats import summarize
from orchestrator.stats_summary import AVG, AVG_EN, Cell, Summary

LANGUAGES = ["en", "de", "fr"]
VALUES = {
    "base": {1: (0.80, 0.70, 0.60), 2: (0.82, 0.72, 0.62), 3: (0.84, 0.71, 0.64)},
    "salt": {1: (0.81, 0.73, 0.66), 2: (0.83, 0.77, 0.60), 3: (0.85, 0.75, 0.66)},
}


def long_frame(values: dict[str, dict[int, tuple[float, ...]]]) -> pd.DataFrame:
    rows = [
        {"arm": arm, "seed": seed, "language": language, "value": value}
        for arm, seeds in values.items()
        for seed, per_language in seeds.items()
        for language, value in zip(LANGUAGES, per_language)
    ]
    return pd.DataFrame(rows)


def summary_of(frame: pd.DataFrame, arms=("base", "salt"), **kwargs) -> Summary:
    """Raw p-values (no family correction): these tests are about one paired t-test at a time;
    tests/test_significance.py covers the correction."""
    kwargs.setdefault("correction", "none")
    return summarize(frame, arms=list(arms), languages=LANGUAGES, baseline_arm="base", **kwargs)


@pytest.fixture
def results() -> pd.DataFrame:
    return long_frame(VALUES)


@pytest.fixture
def summary(results: pd.DataFrame) -> Summary:
    return summary_of(results)


def two_sided_p(t: float, df: int) -> float:
    return 2 * sps.t.sf(abs(t), df)


# --------------------------------------------------------------------------- layout


def test_columns_are_languages_then_averages(summary: Summary) -> None:
    assert summary.columns == ["en", "de", "fr", AVG, AVG_EN]
    assert summary.arms == ["base", "salt"]
    assert summary.expected_seeds == [1, 2, 3]
    assert summary.baseline_arm == "base"
    assert summary.alpha == 0.05


# --------------------------------------------------------------------------- mean / std per language


def test_language_mean_and_sample_std(summary: Summary) -> None:
    # base en: .80 .82 .84 -> mean .82; deviations -.02 0 .02 -> SS .0008, /(3-1) = .0004 -> std .02
    cell = summary.cell("base", "en")
    assert cell.mean == pytest.approx(0.82, abs=1e-12)
    assert cell.std == pytest.approx(0.02, abs=1e-12)
    assert cell.n == 3
    # base de: .70 .72 .71 -> mean .71; deviations -.01 .01 0 -> SS .0002, /2 -> std .01
    assert summary.cell("base", "de").mean == pytest.approx(0.71, abs=1e-12)
    assert summary.cell("base", "de").std == pytest.approx(0.01, abs=1e-12)
    # salt fr: .66 .60 .66 -> mean .64; deviations .02 -.04 .02 -> SS .0024, /2 = .0012 -> std sqrt(.0012)
    cell = summary.cell("salt", "fr")
    assert cell.mean == pytest.approx(0.64, abs=1e-12)
    assert cell.std == pytest.approx(math.sqrt(0.0012), abs=1e-12)  # 0.034641...


def test_avg_is_macro_average_without_source_per_seed(summary: Summary) -> None:
    # base per-seed avg (de+fr)/2: .65 .67 .675 -> mean 1.995/3 = .665
    # deviations -.015 .005 .01 -> SS .000225 + .000025 + .0001 = .00035, /2 = .000175
    cell = summary.cell("base", AVG)
    assert cell.mean == pytest.approx(0.665, abs=1e-12)
    assert cell.std == pytest.approx(math.sqrt(0.000175), abs=1e-12)  # 0.013229...
    assert cell.n == 3
    # the en values (.80 .82 .84) must not enter it: with en the mean would be .7167
    assert cell.mean != pytest.approx(summary.cell("base", AVG_EN).mean)


def test_avg_en_is_macro_average_over_all_languages_per_seed(summary: Summary) -> None:
    # base per-seed avg_en: .70 .72 .73 -> mean 2.15/3 = .71666..
    # in percent: 70 72 73, mean 215/3, deviations -5/3 1/3 4/3 -> SS 42/9, /2 = 7/3 (%^2)
    cell = summary.cell("base", AVG_EN)
    assert cell.mean == pytest.approx(2.15 / 3, abs=1e-12)
    assert cell.std == pytest.approx(math.sqrt(7 / 3) / 100, abs=1e-12)  # 0.015275...
    # salt per-seed avg_en: 73.33 73.33 75.33 (%) -> mean 74; deviations -2/3 -2/3 4/3 -> SS 24/9, /2 = 4/3
    cell = summary.cell("salt", AVG_EN)
    assert cell.mean == pytest.approx(0.74, abs=1e-12)
    assert cell.std == pytest.approx(math.sqrt(4 / 3) / 100, abs=1e-12)


# --------------------------------------------------------------------------- paired t-test


def test_significant_paired_ttest_by_hand(summary: Summary) -> None:
    # de differences .03 .05 .04: mean .04; deviations -.01 .01 0 -> SS .0002, /2 -> sd .01
    # t = .04 / (.01 / sqrt(3)) = 4 * sqrt(3) = 6.9282; df = 2
    # p = 1 - t / sqrt(t^2 + 2) = 1 - sqrt(48 / 50) = 0.020204 <= 0.05 -> significant
    t_by_hand = 0.04 / (0.01 / math.sqrt(3))
    cell = summary.cell("salt", "de")
    assert cell.t_stat == pytest.approx(4 * math.sqrt(3), rel=1e-9)
    assert cell.t_stat == pytest.approx(t_by_hand, rel=1e-9)
    assert cell.p_value == pytest.approx(1 - math.sqrt(48 / 50), rel=1e-9)
    assert cell.p_value == pytest.approx(two_sided_p(t_by_hand, df=2), rel=1e-9)
    assert cell.n_pairs == 3
    assert cell.mean_diff == pytest.approx(0.04, abs=1e-12)
    assert cell.significant is True


def test_non_significant_paired_ttest_by_hand(summary: Summary) -> None:
    # fr differences .06 -.02 .02: mean .02; deviations .04 -.04 0 -> SS .0032, /2 = .0016 -> sd .04
    # t = .02 / (.04 / sqrt(3)) = sqrt(3) / 2 = 0.8660; p = 1 - sqrt(.75 / 2.75) = 1 - sqrt(3/11) = 0.4778
    cell = summary.cell("salt", "fr")
    assert cell.t_stat == pytest.approx(math.sqrt(3) / 2, rel=1e-9)
    assert cell.p_value == pytest.approx(1 - math.sqrt(3 / 11), rel=1e-9)
    assert cell.p_value == pytest.approx(two_sided_p(math.sqrt(3) / 2, df=2), rel=1e-9)
    assert cell.mean_diff == pytest.approx(0.02, abs=1e-12)
    assert cell.significant is False


def test_avg_ttest_uses_per_seed_averages(summary: Summary) -> None:
    # avg differences .695-.65 = .045, .685-.67 = .015, .705-.675 = .03: mean .03
    # deviations .015 -.015 0 -> SS .00045, /2 = .000225 -> sd .015
    # t = .03 / (.015 / sqrt(3)) = 2 * sqrt(3) = 3.4641; p = 1 - sqrt(12 / 14) = 0.0742 -> not significant
    cell = summary.cell("salt", AVG)
    assert cell.mean == pytest.approx(0.695, abs=1e-12)
    assert cell.std == pytest.approx(0.01, abs=1e-12)  # .695 .685 .705
    assert cell.t_stat == pytest.approx(2 * math.sqrt(3), rel=1e-9)
    assert cell.p_value == pytest.approx(1 - math.sqrt(12 / 14), rel=1e-9)
    assert cell.mean_diff == pytest.approx(0.03, abs=1e-12)
    assert cell.significant is False


def test_alpha_decides_significance(results: pd.DataFrame) -> None:
    # avg p = 0.0742: significant at alpha = 0.1, de p = 0.0202 not at alpha = 0.01
    loose = summary_of(results, alpha=0.1)
    strict = summary_of(results, alpha=0.01)
    assert loose.cell("salt", AVG).significant is True
    assert strict.cell("salt", "de").significant is False
    assert strict.alpha == 0.01


def test_baseline_has_no_test(summary: Summary) -> None:
    cell = summary.cell("base", "de")
    assert (cell.t_stat, cell.p_value, cell.mean_diff, cell.n_pairs, cell.significant) == (None, None, None, 0, False)


def test_constant_nonzero_differences_are_not_significant_and_silent(results: pd.DataFrame) -> None:
    # en differences are .01 .01 .01 up to rounding: sd(d) = 0, t would be .01/0 -> no test.
    # (scipy alone gives a huge t, p ~ 0 and a "catastrophic cancellation" RuntimeWarning.)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = summary_of(results)
    cell = summary.cell("salt", "en")
    assert cell.t_stat is None
    assert cell.p_value is None
    assert cell.n_pairs == 3
    assert cell.mean_diff == pytest.approx(0.01, abs=1e-12)
    assert cell.significant is False


def test_identical_arm_zero_differences_no_crash_no_warning(results: pd.DataFrame) -> None:
    # twin == base exactly: differences 0 0 0, scipy would return t = p = NaN with a warning.
    twin = results[results["arm"] == "base"].assign(arm="twin")
    frame = pd.concat([results, twin], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = summary_of(frame, arms=("base", "salt", "twin"))
    cell = summary.cell("twin", "de")
    assert (cell.t_stat, cell.p_value, cell.significant) == (None, None, False)
    assert cell.mean_diff == 0.0
    assert cell.n_pairs == 3


# --------------------------------------------------------------------------- missing seeds


def test_arm_missing_a_seed_pairs_on_shared_seeds(results: pd.DataFrame) -> None:
    frame = results[~((results["arm"] == "salt") & (results["seed"] == 3))]
    summary = summary_of(frame)
    cell = summary.cell("salt", "de")
    # salt de on seeds 1, 2: .73 .77 -> mean .75, sd = sqrt(((-.02)^2 + .02^2) / 1) = sqrt(.0008)
    assert cell.n == 2
    assert cell.mean == pytest.approx(0.75, abs=1e-12)
    assert cell.std == pytest.approx(math.sqrt(0.0008), abs=1e-12)
    # paired on seeds 1, 2 only: d = .03 .05, mean .04, sd = sqrt(.0002 / 1) = .014142
    # t = .04 / (.014142 / sqrt(2)) = .04 / .01 = 4; df = 1 (Cauchy): p = 1 - 2 * atan(4) / pi = 0.15596
    assert cell.n_pairs == 2
    assert cell.mean_diff == pytest.approx(0.04, abs=1e-12)
    assert cell.t_stat == pytest.approx(4.0, rel=1e-9)
    assert cell.p_value == pytest.approx(1 - 2 * math.atan(4) / math.pi, rel=1e-9)
    assert cell.p_value == pytest.approx(two_sided_p(4.0, df=1), rel=1e-9)
    assert cell.significant is False
    # the baseline still uses all three of its seeds
    assert summary.cell("base", "de").n == 3
    assert summary.expected_seeds == [1, 2, 3]
    assert summary.missing_seeds() == {"salt": [3]}


def test_seed_missing_one_language_gets_no_average(results: pd.DataFrame) -> None:
    frame = results[~((results["arm"] == "salt") & (results["seed"] == 3) & (results["language"] == "fr"))]
    summary = summary_of(frame)
    assert summary.cell("salt", "de").n == 3
    assert summary.cell("salt", "fr").n == 2
    # avg / avg_en only over seeds 1, 2: avg .695 .685 -> mean .69; avg_en 2.2/3 both -> mean .7333
    assert summary.cell("salt", AVG).n == 2
    assert summary.cell("salt", AVG).mean == pytest.approx(0.69, abs=1e-12)
    assert summary.cell("salt", AVG_EN).n == 2
    assert summary.cell("salt", AVG_EN).mean == pytest.approx(2.2 / 3, abs=1e-12)
    assert summary.cell("salt", AVG).n_pairs == 2
    # seed 3 has some result, so it is not a missing seed
    assert summary.missing_seeds() == {}


def test_nan_value_counts_as_missing(results: pd.DataFrame) -> None:
    frame = results.copy()
    frame.loc[(frame["arm"] == "base") & (frame["seed"] == 1) & (frame["language"] == "de"), "value"] = math.nan
    summary = summary_of(frame)
    # base de: .72 .71 -> mean .715
    assert summary.cell("base", "de").n == 2
    assert summary.cell("base", "de").mean == pytest.approx(0.715, abs=1e-12)
    assert summary.cell("base", AVG).n == 2


def test_expected_seeds_given_explicitly(results: pd.DataFrame) -> None:
    summary = summary_of(results, expected_seeds=[4, 1, 2, 3])
    assert summary.expected_seeds == [1, 2, 3, 4]
    assert summary.missing_seeds() == {"base": [4], "salt": [4]}


def test_arm_without_rows_gets_empty_cells(results: pd.DataFrame) -> None:
    summary = summary_of(results, arms=("base", "salt", "ghost"))
    for column in summary.columns:
        cell = summary.cell("ghost", column)
        assert cell.n == 0
        assert math.isnan(cell.mean)
        assert math.isnan(cell.std)
        assert (cell.t_stat, cell.p_value, cell.mean_diff, cell.n_pairs) == (None, None, None, 0)
        assert cell.significant is False
        assert cell.best is False
    assert summary.missing_seeds() == {"ghost": [1, 2, 3]}


def test_single_seed_has_nan_std_and_no_test(results: pd.DataFrame) -> None:
    frame = results[(results["arm"] == "base") | (results["seed"] == 1)]
    summary = summary_of(frame)
    cell = summary.cell("salt", "de")
    assert cell.n == 1
    assert math.isnan(cell.std)
    assert (cell.n_pairs, cell.t_stat, cell.p_value, cell.significant) == (1, None, None, False)
    assert cell.mean_diff == pytest.approx(0.03, abs=1e-12)


def test_rows_of_other_arms_and_languages_are_ignored(results: pd.DataFrame) -> None:
    extra = pd.DataFrame(
        [
            {"arm": "other", "seed": 9, "language": "de", "value": 0.99},
            {"arm": "base", "seed": 1, "language": "sw", "value": 0.10},
        ]
    )
    summary = summary_of(pd.concat([results, extra], ignore_index=True))
    assert summary.expected_seeds == [1, 2, 3]
    assert summary.cell("base", "de").mean == pytest.approx(0.71, abs=1e-12)
    assert summary.cell("base", AVG).mean == pytest.approx(0.665, abs=1e-12)


# --------------------------------------------------------------------------- best


def test_best_is_highest_mean(summary: Summary) -> None:
    for column in summary.columns:
        assert summary.cell("salt", column).best is True
        assert summary.cell("base", column).best is False


def test_ties_are_all_best(results: pd.DataFrame) -> None:
    # twin holds salt's runs under permuted seed labels (1->3, 2->1, 3->2): its means equal
    # salt's in every column, up to the summation order.
    salt = results[results["arm"] == "salt"]
    twin = salt.assign(arm="twin", seed=salt["seed"].map({1: 3, 2: 1, 3: 2}))
    frame = pd.concat([results, twin], ignore_index=True)
    summary = summary_of(frame, arms=("base", "salt", "twin"))
    for column in summary.columns:
        assert summary.cell("salt", column).best is True
        assert summary.cell("twin", column).best is True
        assert summary.cell("base", column).best is False


def test_exact_tie_with_baseline_marks_both() -> None:
    # one language only (the source): a = .5 .7, b = .7 .5 -> both means .6
    frame = pd.DataFrame(
        {"arm": ["a", "a", "b", "b"], "seed": [1, 2, 1, 2], "language": ["en"] * 4, "value": [0.5, 0.7, 0.7, 0.5]}
    )
    summary = summarize(frame, arms=["a", "b"], languages=["en"], baseline_arm="a")
    assert summary.cell("a", "en").best and summary.cell("b", "en").best
    # no target languages: avg has no values at all, so nobody is best there
    assert summary.cell("a", AVG).n == 0
    assert not summary.cell("a", AVG).best


# --------------------------------------------------------------------------- frames


def test_to_frame_is_long_with_one_row_per_arm_and_column(summary: Summary) -> None:
    frame = summary.to_frame()
    assert list(frame.columns) == [
        "arm", "column", "mean", "std", "n", "t_stat", "p_value", "p_adjusted", "n_pairs", "mean_diff", "ci_low",
        "ci_high", "mdd", "significant", "direction", "best",
    ]
    assert len(frame) == 2 * 5
    assert list(frame["arm"]) == ["base"] * 5 + ["salt"] * 5
    assert list(frame["column"]) == summary.columns * 2
    row = frame[(frame["arm"] == "salt") & (frame["column"] == "de")].iloc[0]
    assert row["mean"] == pytest.approx(0.75, abs=1e-12)
    assert row["t_stat"] == pytest.approx(4 * math.sqrt(3), rel=1e-9)
    assert bool(row["significant"]) is True
    assert math.isnan(frame.loc[0, "t_stat"])  # baseline: no test -> NaN


def test_ttests_rows_for_non_baseline_arms(results: pd.DataFrame) -> None:
    summary = summary_of(results, arms=("base", "salt", "ghost"))
    tests = summary.ttests()
    assert list(tests.columns) == [
        "arm", "baseline", "column", "n_pairs", "mean_diff", "ci_low", "ci_high", "t_stat", "p_value", "p_adjusted",
        "correction", "significant", "direction", "mdd",
    ]
    assert len(tests) == 2 * 5
    assert set(tests["arm"]) == {"salt", "ghost"}
    assert set(tests["baseline"]) == {"base"}
    row = tests[(tests["arm"] == "salt") & (tests["column"] == "fr")].iloc[0]
    assert row["p_value"] == pytest.approx(1 - math.sqrt(3 / 11), rel=1e-9)
    assert row["n_pairs"] == 3


def test_cell_lookup_error_names_choices(summary: Summary) -> None:
    assert isinstance(summary.cell("salt", "de"), Cell)
    with pytest.raises(KeyError, match="arms="):
        summary.cell("salt", "xx")


# --------------------------------------------------------------------------- validation


def test_missing_columns_rejected(results: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"missing columns \['value'\]"):
        summary_of(results.drop(columns=["value"]))


def test_baseline_must_be_an_arm(results: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="baseline arm 'mbert' is not in arms"):
        summarize(results, arms=["base", "salt"], languages=LANGUAGES, baseline_arm="mbert")


def test_duplicate_rows_rejected(results: pd.DataFrame) -> None:
    frame = pd.concat([results, results.iloc[[4]]], ignore_index=True)  # base, seed 2, de twice
    with pytest.raises(ValueError, match=r"duplicate \(arm, seed, language\).*\('base', 2, 'de'\)"):
        summary_of(frame)


def test_source_language_must_be_listed(results: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="source language 'es' is not in languages"):
        summary_of(results, source_language="es")


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1])
def test_alpha_must_be_a_probability(results: pd.DataFrame, alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha must be in"):
        summary_of(results, alpha=alpha)


def test_non_integer_seed_rejected(results: pd.DataFrame) -> None:
    frame = results.astype({"seed": "float64"})
    frame.loc[0, "seed"] = 1.5
    with pytest.raises(ValueError, match="'seed' must hold integers"):
        summary_of(frame)


def test_non_numeric_value_rejected(results: pd.DataFrame) -> None:
    frame = results.astype({"value": "object"})
    frame.loc[0, "value"] = "n/a"
    with pytest.raises(ValueError, match="'value' must be numeric"):
        summary_of(frame)


def test_duplicate_or_reserved_names_rejected(results: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="arms contain duplicates"):
        summarize(results, arms=["base", "base"], languages=LANGUAGES, baseline_arm="base")
    with pytest.raises(ValueError, match="clash with the average column names"):
        summarize(results, arms=["base"], languages=["en", "avg"], baseline_arm="base")


# --------------------------------------------------------------------------- no baseline


def test_no_baseline_tests_nothing(results: pd.DataFrame) -> None:
    # A secondary metric (X-Mixup's CKA) the baseline arm does not log: only "salt" has rows.
    summary = summarize(results[results["arm"] == "salt"], arms=["salt"], languages=LANGUAGES, baseline_arm=None)
    assert summary.baseline_arm is None
    de = summary.cell("salt", "de")
    assert de.mean == pytest.approx(0.75, abs=1e-12)  # (.73 + .77 + .75) / 3
    assert de.std == pytest.approx(0.02, abs=1e-12)
    for column in summary.columns:
        cell = summary.cell("salt", column)
        assert (cell.t_stat, cell.p_value, cell.mean_diff, cell.n_pairs, cell.significant) == (None, None, None, 0,
                                                                                               False)
        assert cell.best is True
    tests = summary.ttests()
    assert tests.empty
    assert list(tests.columns) == [
        "arm", "baseline", "column", "n_pairs", "mean_diff", "ci_low", "ci_high", "t_stat", "p_value", "p_adjusted",
        "correction", "significant", "direction", "mdd",
    ]


def test_no_baseline_still_rejects_a_named_baseline_outside_arms(results: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="baseline arm 'base' is not in arms"):
        summarize(results, arms=["salt"], languages=LANGUAGES, baseline_arm="base")
