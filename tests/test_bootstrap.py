"""The paired bootstrap over test examples, against exact enumerations of every resample (no Ray, no MLflow)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from orchestrator.bootstrap import (
    BootstrapTest,
    bootstrap_tests,
    paired_bootstrap_accuracy,
    paired_bootstrap_f1,
    paired_bootstrap_macro,
    shifted_p_value,
)

ARM = [1, 1, 1, 0]  # correct on 3 of 4
BASE = [1, 0, 0, 0]  # correct on 1 of 4: δ = 0.5
B = 20000
MC_TOLERANCE = 0.01  # the Monte-Carlo p's standard error at p ~ 0.1 and B = 20000 is ~0.002


def exact_shifted_p(*languages: tuple[list, list], score) -> float:
    """The shifted-bootstrap p over ALL equally likely resamples (every index tuple of every language)."""
    def diff(samples):
        return sum(score([a[i] for i in idx]) - score([b[i] for i in idx]) for (a, b), idx in samples) / len(samples)

    observed = diff([(pair, range(len(pair[0]))) for pair in languages])
    spaces = [itertools.product(range(len(a)), repeat=len(a)) for a, _ in languages]
    outcomes = [abs(diff(list(zip(languages, combo))) - observed) >= abs(observed)
                for combo in itertools.product(*spaces)]
    return sum(outcomes) / len(outcomes)


def accuracy(values) -> Fraction:
    return Fraction(sum(values), len(values))


def f1(counts) -> Fraction:
    tp, n_pred, n_gold = (sum(c[k] for c in counts) for k in range(3))
    return Fraction(2 * tp, n_pred + n_gold) if n_pred + n_gold else Fraction(0)


def test_accuracy_p_value_matches_the_exact_enumeration_of_all_256_resamples():
    exact = exact_shifted_p((ARM, BASE), score=accuracy)
    # By hand: |δ* − 1/2| >= 1/2 only when δ* is 0 (the resample holds only examples 1 and 4: 2^4 tuples) or 1
    # (only examples 2 and 3: 2^4 tuples), so p = 32 / 256.
    assert exact == 32 / 256
    test = paired_bootstrap_accuracy(np.array(ARM), np.array(BASE), n_resamples=B, rng=np.random.default_rng(0))
    assert test.diff == 0.5 and test.n_examples == 4 and test.n_resamples == B
    assert test.p_value == pytest.approx(exact, abs=MC_TOLERANCE)


def test_identical_systems_have_no_difference_and_p_one():
    test = paired_bootstrap_accuracy(np.array(ARM), np.array(ARM), n_resamples=500, rng=np.random.default_rng(0))
    assert test == BootstrapTest(diff=0.0, p_value=1.0, n_examples=4, n_resamples=500)


def test_shifted_p_value_counts_ties_and_adds_one():
    assert shifted_p_value(0.5, np.array([0.0, 1.0, 0.5, 0.75])) == 3 / 5  # 0 and 1 are as far from 0.5 as 0.5 is
    assert shifted_p_value(0.5, np.full(9, 0.5)) == 1 / 10  # never 0
    assert shifted_p_value(-0.2, np.array([0.0, -0.4, -0.2])) == 3 / 4  # two-sided


# Three sentences, (tp, n_pred, n_gold) each; the gold entities are the sentence's, the same for both systems.
F1_ARM = [(1, 1, 1), (1, 2, 1), (0, 0, 0)]  # tp 2, predicted 3, gold 2: F1 = 4/5
F1_BASE = [(0, 1, 1), (1, 1, 1), (0, 1, 0)]  # tp 1, predicted 3, gold 2: F1 = 2/5


def test_entity_f1_difference_by_hand_and_p_against_all_27_resamples():
    assert f1(F1_ARM) - f1(F1_BASE) == Fraction(2, 5)
    exact = exact_shifted_p((F1_ARM, F1_BASE), score=f1)  # includes (3, 3, 3): no entity at all, F1 0 for both
    test = paired_bootstrap_f1(np.array(F1_ARM), np.array(F1_BASE), n_resamples=B, rng=np.random.default_rng(1))
    assert test.diff == pytest.approx(0.4) and test.n_examples == 3
    assert test.p_value == pytest.approx(exact, abs=MC_TOLERANCE)


def test_macro_average_resamples_each_language_and_averages_the_differences():
    de_arm, de_base = [1, 1], [0, 1]  # δ_de = 0.5, so the macro δ = (0.5 + 0.5) / 2
    exact = exact_shifted_p((ARM, BASE), (de_arm, de_base), score=accuracy)  # 256 x 4 joint resamples
    test = paired_bootstrap_macro([(np.array(ARM), np.array(BASE)), (np.array(de_arm), np.array(de_base))],
                                  metric="acc", n_resamples=B, rng=np.random.default_rng(2))
    assert test.diff == 0.5 and test.n_examples == 6
    assert test.p_value == pytest.approx(exact, abs=MC_TOLERANCE)


def table(rows: dict[tuple[str, int, str], tuple[list, list]]) -> pd.DataFrame:
    """(arm, seed, language) -> (correct per example, example ids) as a predictions frame (gold always 1)."""
    out = []
    for (arm, seed, lang), (correct, ids) in rows.items():
        out += [{"arm": arm, "seed": seed, "language": lang, "example_id": i, "prediction": int(c), "gold": 1}
                for c, i in zip(correct, ids)]
    return pd.DataFrame(out)


def run(frame: pd.DataFrame, **options) -> pd.DataFrame:
    settings = dict(arms=["base", "arm"], baseline_arm="base", languages=["en", "de"], source_language="en",
                    n_resamples=2000, seed=0, metric="acc")
    return bootstrap_tests(frame, **{**settings, **options})


def test_table_rows_per_language_and_macro_averages_by_hand():
    frame = table({("base", 1, "en"): (BASE, [0, 1, 2, 3]), ("arm", 1, "en"): (ARM, [0, 1, 2, 3]),
                   ("base", 1, "de"): ([1, 1], [5, 9]), ("arm", 1, "de"): ([0, 1], [5, 9])})
    tests = run(frame)
    assert list(tests.columns) == ["arm", "column", "seed", "diff", "p_value", "n_examples"]
    by_column = tests.set_index("column")
    assert list(by_column.index) == ["en", "de", "avg", "avg_en"] and set(tests.arm) == {"arm"}
    assert by_column["diff"].to_dict() == pytest.approx({"en": 0.5, "de": -0.5, "avg": -0.5, "avg_en": 0.0})
    assert by_column["n_examples"].to_dict() == {"en": 4, "de": 2, "avg": 2, "avg_en": 6}
    assert by_column.loc["avg", "p_value"] == by_column.loc["de", "p_value"]  # one target: the same replicates
    assert by_column.loc["avg_en", "p_value"] == 1.0  # no difference
    assert by_column.loc["en", "p_value"] == pytest.approx(0.125, abs=0.03)


def test_entity_f1_table():
    rows = []
    for arm, counts in (("base", F1_BASE), ("arm", F1_ARM)):
        rows += [{"arm": arm, "seed": 3, "language": "en", "example_id": i, "prediction": [], "gold": [],
                  "tp": tp, "n_pred": n_pred, "n_gold": n_gold} for i, (tp, n_pred, n_gold) in enumerate(counts)]
    tests = run(pd.DataFrame(rows), languages=["en"], metric="f1")
    assert tests[["column", "seed", "n_examples"]].values.tolist() == [["en", 3, 3], ["avg_en", 3, 3]]
    assert tests["diff"].tolist() == pytest.approx([0.4, 0.4])  # no target language: no avg row


def test_seeds_either_side_lacks_are_skipped_and_arms_are_compared_on_the_same_resamples():
    rng = np.random.default_rng(5)
    rows = {}
    for arm, share in (("base", 0.6), ("arm", 0.7), ("other", 0.65)):
        for seed in (1, 2, 3):
            for lang in ("en", "de"):
                rows[(arm, seed, lang)] = ((rng.random(300) < share).tolist(), list(range(300)))
    del rows[("base", 2, "en")], rows[("base", 2, "de")]  # the baseline lacks seed 2
    del rows[("arm", 3, "de")]  # the arm lacks German on seed 3: no de, avg or avg_en row there
    frame = table(rows)
    both = run(frame, arms=["base", "arm", "other"], seed=7)
    assert set(both.seed) == {1, 3}
    assert sorted(both[(both.arm == "arm") & (both.seed == 3)].column) == ["en"]
    assert len(both[both.arm == "other"]) == 2 * 4
    # Deterministic, and an arm's rows do not depend on which other arms are tested.
    alone = run(frame, arms=["base", "arm"], seed=7)
    pd.testing.assert_frame_equal(alone, both[both.arm == "arm"].reset_index(drop=True))
    pd.testing.assert_frame_equal(run(frame, arms=["base", "arm"], seed=7), alone)
    assert not np.array_equal(run(frame, arms=["base", "arm"], seed=8)["p_value"], alone["p_value"])


def test_mismatched_examples_and_bad_options_fail_with_one_line():
    frame = table({("base", 1, "en"): (BASE, [0, 1, 2, 3]), ("arm", 1, "en"): (ARM, [0, 1, 2, 4])})
    with pytest.raises(ValueError, match=r"^arm seed 1 en: example ids differ from the baseline's \(4 vs 4 examples, 3 shared\)"):
        run(frame, languages=["en"])
    duplicated = table({("base", 1, "en"): (BASE, [0, 1, 1, 3]), ("arm", 1, "en"): (ARM, [0, 1, 2, 3])})
    with pytest.raises(ValueError, match="appears more than once"):
        run(duplicated, languages=["en"])
    with pytest.raises(ValueError, match="metric must be one of acc, f1"):
        run(frame, metric="bleu")
    with pytest.raises(ValueError, match="lack column"):
        run(frame.drop(columns=["gold"]))
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap_accuracy(np.array([1, 0]), np.array([1]), n_resamples=10, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_resamples"):
        paired_bootstrap_accuracy(np.array([1]), np.array([1]), n_resamples=0, rng=np.random.default_rng(0))
    assert run(table({("arm", 1, "en"): (ARM, [0, 1, 2, 3])})).empty  # no baseline: nothing to test
