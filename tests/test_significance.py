"""Direction of significance, family correction, intervals and power, against hand-computed values.

The summary fixture is tests/test_stats.py's (salt vs base, 3 seeds, en/de/fr):

    differences salt - base:  en .01 .01 .01 (constant: untested)   de .03 .05 .04
                              fr .06 -.02 .02                        avg (de+fr)/2 .045 .015 .030
                              avg_en (en+de+fr)/3 .10/3 .04/3 .07/3

so salt's family has four tested columns: de, fr, avg, avg_en.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from orchestrator.report import render_html, render_markdown
from orchestrator.report_cells import DAGGER, WORSE_MARK
from orchestrator.report_legend import legend_lines
from orchestrator.significance import SignificanceOptions, minimal_detectable_difference, paired_test
from orchestrator.stats import summarize
from orchestrator.stats_summary import AVG, AVG_EN, BETTER, WORSE
from tests.test_stats import LANGUAGES, VALUES, long_frame


def salt_summary(**kwargs):
    return summarize(long_frame(VALUES), arms=["base", "salt"], languages=LANGUAGES, baseline_arm="base", **kwargs)


def raw_p(t: float) -> float:
    """Two-sided p of a t statistic with 2 degrees of freedom (closed form)."""
    return 1 - abs(t) / math.sqrt(t * t + 2)


def t_of(diffs: list[float]) -> float:
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    return mean / (sd / math.sqrt(len(diffs)))


# Salt's four raw p-values, each from its per-seed differences by hand.
RAW = {
    "de": raw_p(t_of([0.03, 0.05, 0.04])),  # 0.0202
    "fr": raw_p(t_of([0.06, -0.02, 0.02])),  # 0.4778
    AVG: raw_p(t_of([0.045, 0.015, 0.030])),  # 0.0742
    AVG_EN: raw_p(t_of([0.10 / 3, 0.04 / 3, 0.07 / 3])),
}


def holm_by_hand(p: dict[str, float]) -> dict[str, float]:
    """Holm: sort ascending; the i-th (1-based) of m gets max over j <= i of min(1, (m - j + 1) p_(j))."""
    order = sorted(p, key=p.get)
    m, running, out = len(order), 0.0, {}
    for i, key in enumerate(order, start=1):
        running = max(running, min(1.0, (m - i + 1) * p[key]))
        out[key] = running
    return out


def bh_by_hand(p: dict[str, float]) -> dict[str, float]:
    """Benjamini-Hochberg: the i-th of m gets min over j >= i of min(1, m p_(j) / j)."""
    order = sorted(p, key=p.get)
    m, out, running = len(order), {}, 1.0
    for i in range(m, 0, -1):
        key = order[i - 1]
        running = min(running, min(1.0, m * p[key] / i))
        out[key] = running
    return out


def test_holm_adjusted_p_by_hand_and_equal_to_statsmodels() -> None:
    summary = salt_summary()  # Holm is the default
    assert summary.correction == "holm"
    expected = holm_by_hand(RAW)
    library = multipletests(list(RAW.values()), method="holm")[1]
    for (column, raw), from_library in zip(RAW.items(), library):
        cell = summary.cell("salt", column)
        assert cell.p_value == pytest.approx(raw, rel=1e-9)
        assert cell.p_adjusted == pytest.approx(expected[column], rel=1e-9)
        assert cell.p_adjusted == pytest.approx(from_library, rel=1e-12)
    # de: raw 0.0202 <= 0.05, but Holm multiplies the smallest of four by 4: 0.0808, no longer significant.
    assert summary.cell("salt", "de").p_adjusted == pytest.approx(4 * RAW["de"], rel=1e-9)
    assert summary.cell("salt", "de").significant is False
    assert summary.cell("salt", "en").p_adjusted is None  # constant differences: not a member of the family


def test_bh_adjusted_p_by_hand_and_equal_to_statsmodels() -> None:
    summary = salt_summary(correction="bh")
    expected = bh_by_hand(RAW)
    library = multipletests(list(RAW.values()), method="fdr_bh")[1]
    for (column, _raw), from_library in zip(RAW.items(), library):
        assert summary.cell("salt", column).p_adjusted == pytest.approx(expected[column], rel=1e-9)
        assert summary.cell("salt", column).p_adjusted == pytest.approx(from_library, rel=1e-12)


def test_no_correction_marks_on_the_raw_p() -> None:
    summary = salt_summary(correction="none")
    de = summary.cell("salt", "de")
    assert de.p_adjusted == de.p_value and de.significant and de.direction == BETTER
    assert summary.ttests()["correction"].unique().tolist() == ["none"]


def test_t_interval_by_hand() -> None:
    # de: mean .04, sd .01, n 3. t_{0.975, 2}: for 2 df, F(t) = 1/2 + t / (2 sqrt(t^2 + 2)) = 0.975
    # -> t / sqrt(t^2 + 2) = 0.95 -> t^2 = 2 * 0.9025 / 0.0975.
    t_crit = math.sqrt(2 * 0.9025 / 0.0975)  # 4.3027
    half = t_crit * 0.01 / math.sqrt(3)
    cell = salt_summary().cell("salt", "de")
    assert cell.ci_low == pytest.approx(0.04 - half, rel=1e-9)
    assert cell.ci_high == pytest.approx(0.04 + half, rel=1e-9)
    assert summary_row(salt_summary(), "salt", "de")["ci_low"] == pytest.approx(0.04 - half, rel=1e-9)


def test_bootstrap_interval_option_brackets_the_mean_and_is_seeded() -> None:
    arm, base = np.array([0.73, 0.77, 0.75, 0.74, 0.76]), np.array([0.70, 0.72, 0.71, 0.70, 0.71])
    options = SignificanceOptions(ci_method="bootstrap", seed=3)
    first, again = paired_test(arm, base, options), paired_test(arm, base, options)
    diffs = arm - base  # .03 .05 .04 .04 .05: the percentile interval lies within their range
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert diffs.min() <= first.ci_low < first.mean_diff < first.ci_high <= diffs.max()
    t_only = paired_test(arm, base, SignificanceOptions())
    assert t_only.p_value == first.p_value  # the interval option does not change the test


def test_minimal_detectable_difference_has_the_stated_power() -> None:
    # de: sd of the differences .01, n 3. The MDD is the true mean difference at which a two-sided
    # paired t-test at alpha .05 rejects with probability .8: check it with the noncentral t directly.
    cell = salt_summary().cell("salt", "de")
    d = cell.mdd / 0.01
    t_crit = sps.t.ppf(0.975, 2)
    power = sps.nct.sf(t_crit, 2, d * math.sqrt(3)) + sps.nct.cdf(-t_crit, 2, d * math.sqrt(3))
    assert power == pytest.approx(0.8, abs=1e-6)
    # more seeds, same spread: a smaller difference is detectable
    assert minimal_detectable_difference(0.01, 10, alpha=0.05, power=0.8) < cell.mdd
    assert minimal_detectable_difference(0.0, 5, alpha=0.05, power=0.8) is None


def summary_row(summary, arm, column) -> pd.Series:
    frame = summary.ttests()
    return frame[(frame["arm"] == arm) & (frame["column"] == column)].iloc[0]


# --------------------------------------------------------------------------- direction


BASE = [0.70, 0.71, 0.72, 0.69, 0.70]
SHIFT = [0.05, 0.06, 0.05, 0.04, 0.05]


def directions_frame() -> pd.DataFrame:
    """base; up = base + SHIFT on both languages; down = base - SHIFT: clearly better / clearly worse."""
    rows = []
    for seed, (base, shift) in enumerate(zip(BASE, SHIFT), start=1):
        for language, offset in (("en", 0.10), ("de", 0.0)):
            rows.append({"arm": "base", "seed": seed, "language": language, "value": base + offset})
            rows.append({"arm": "up", "seed": seed, "language": language, "value": base + offset + shift})
            rows.append({"arm": "down", "seed": seed, "language": language, "value": base + offset - shift})
    return pd.DataFrame(rows)


def test_better_and_worse_arms_get_different_marks_and_signed_differences() -> None:
    summary = summarize(directions_frame(), arms=["base", "up", "down"], languages=["en", "de"], baseline_arm="base")
    # t = .05 / (sd(SHIFT) / sqrt 5), sd = sqrt(.0002 / 4): t = 15.8, p ~ 1e-4, still <= .05 times 4 (Holm).
    for column in ("en", "de", AVG, AVG_EN):
        up, down = summary.cell("up", column), summary.cell("down", column)
        assert (up.direction, down.direction) == (BETTER, WORSE)
        assert up.mean_diff == pytest.approx(0.05, abs=1e-12) and down.mean_diff == pytest.approx(-0.05, abs=1e-12)
        assert up.p_adjusted == pytest.approx(down.p_adjusted, rel=1e-9)
        assert up.p_adjusted <= 0.05
    markdown = render_markdown(summary)
    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| ")}
    assert DAGGER in rows["up"] and WORSE_MARK not in rows["up"]
    assert WORSE_MARK in rows["down"] and DAGGER not in rows["down"]
    legend = legend_lines(summary)
    assert legend[1].startswith(f"{DAGGER} significantly better, {WORSE_MARK} significantly worse than base")
    assert "vs base (Holm): up better on 2, worse on 0 of 2 languages; down better on 0, worse on 2 of 2 languages" \
        in legend
    ttests = summary.ttests()
    assert set(ttests.loc[ttests["arm"] == "down", "direction"]) == {WORSE}
    assert (ttests.loc[ttests["arm"] == "down", "mean_diff"] < 0).all()
    page = render_html(summary)
    assert f"{DAGGER}<span" in page and f"{WORSE_MARK}<span" in page
    assert '<span class="diff">-5.0 [' in page  # the signed difference and its interval under the cell


def test_legend_reports_the_detectable_difference_of_the_averages() -> None:
    summary = summarize(directions_frame(), arms=["base", "up"], languages=["en", "de"], baseline_arm="base")
    line = next(line for line in legend_lines(summary) if line.startswith("smallest true difference"))
    mdd = summary.cell("up", AVG).mdd
    assert f"up avg {mdd * 100:.1f}, avg+en {summary.cell('up', AVG_EN).mdd * 100:.1f}" in line


def test_an_arm_identical_to_the_baseline_is_said_to_be_so():
    frame = directions_frame()
    twin = frame[frame["arm"] == "base"].assign(arm="twin")
    summary = summarize(pd.concat([frame, twin]), arms=["base", "twin", "up"], languages=["en", "de"],
                        baseline_arm="base")
    assert all(summary.cell("twin", column).p_value is None for column in summary.columns)
    verdicts = next(line for line in legend_lines(summary) if line.startswith("vs base (Holm): "))
    assert verdicts == ("vs base (Holm): twin equals base on every paired seed (no test); "
                        "up better on 2, worse on 0 of 2 languages")
