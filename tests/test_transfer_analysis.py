"""X-Mixup's Table 2 (Spearman's ρ between CKA and accuracy) and Table 6 (seen / unseen averages), against
hand-computed values, and both on a sweep's parent run through ``report_results`` (a real MLflow store)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import Metric

from orchestrator.experiments import XNLI_SEEN_LANGUAGES, Arm, Experiment, get_experiment
from orchestrator.results import collect_confirm_results, report_results
from orchestrator.significance import SignificanceOptions
from orchestrator.tracking import PARENT_TAG, SweepTracker
from orchestrator.transfer_analysis import (SEEN, UNSEEN, LanguageSplit, cka_spearman, language_split,
                                            spearman_metrics, split_table)
from trainables.tasks import TaskSpec, get_task


def long(values: dict[tuple[str, int], dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"arm": arm, "seed": seed, "language": lang, "value": value}
                         for (arm, seed), by_lang in values.items() for lang, value in by_lang.items()])


# Seed means: CKA a .9, b .8, c .7, d .6 (ranks 4 3 2 1); accuracy a .80, b .70, c .75, d .60 (ranks 4 2 3 1).
# d = (0, 1, -1, 0): ρ = 1 - 6 Σd² / (n (n² - 1)) = 1 - 12 / 60 = 0.8. With n = 4 the t-test of ρ has 2 degrees
# of freedom, whose two-sided p is 1 - t / sqrt(t² + 2) = 1 - ρ = 0.2.
CKA = long({("x", 1): {"en": 1.0, "a": 0.95, "b": 0.80, "c": 0.65, "d": 0.60},
            ("x", 2): {"en": 1.0, "a": 0.85, "b": 0.80, "c": 0.75, "d": 0.60}})
ACC = long({("x", 1): {"en": 0.10, "a": 0.78, "b": 0.70, "c": 0.70, "d": 0.61, "e": 0.99},
            ("x", 2): {"en": 0.10, "a": 0.82, "b": 0.70, "c": 0.80, "d": 0.59, "e": 0.99}})


def test_spearman_over_target_languages_of_seed_means_by_hand():
    table = cka_spearman(ACC, CKA, ["x"], ["a", "b", "c", "d", "e"])
    row = table.iloc[0]
    # English (CKA 1, lowest accuracy here) is not among the languages; e has no CKA and is left out.
    assert (row["arm"], row["n_languages"]) == ("x", 4)
    assert row["rho"] == pytest.approx(0.8, abs=1e-12) and row["p_value"] == pytest.approx(0.2, abs=1e-9)
    assert spearman_metrics(table) == {"x.cka_spearman_rho": pytest.approx(0.8), "x.cka_spearman_p": pytest.approx(0.2)}


def test_spearman_needs_three_languages_and_keeps_an_undefined_rho_out_of_the_metrics():
    assert cka_spearman(ACC, CKA, ["x"], ["a", "b"]).empty  # two points: ±1 by construction, no row
    flat = long({("x", 1): {"a": 0.5, "b": 0.5, "c": 0.5}})  # constant CKA: ρ undefined
    table = cka_spearman(ACC, flat, ["x"], ["a", "b", "c"])
    assert math.isnan(table.iloc[0]["rho"]) and spearman_metrics(table) == {}


# Table 6 on a toy task: targets a, b (seen by arm "seen") and c, d (unseen); three seeds.
SPLIT_RESULTS = long({
    ("base", 1): {"en": .9, "a": .60, "b": .70, "c": .50, "d": .40},
    ("base", 2): {"en": .9, "a": .62, "b": .70, "c": .52, "d": .40},
    ("base", 3): {"en": .9, "a": .64, "b": .70, "c": .50, "d": .44},
    ("seen", 1): {"en": .9, "a": .70, "b": .80, "c": .50, "d": .42},
    ("seen", 2): {"en": .9, "a": .74, "b": .80, "c": .55, "d": .41},
    ("seen", 3): {"en": .9, "a": .72, "b": .82, "c": .51},  # d missing: no unseen average for seed 3
})


def test_seen_and_unseen_averages_and_their_paired_tests_by_hand():
    from scipy.stats import ttest_rel

    split = LanguageSplit("seen", ("a", "b"), ("c", "d"))
    table = split_table(SPLIT_RESULTS, split, ["base", "seen"], "base", SignificanceOptions())
    cell = {(r.arm, r.column): r for r in table.itertuples(index=False)}
    # seen averages per seed: base .65 .66 .67, seen .75 .77 .77 -> differences .10 .11 .10
    assert cell[("base", SEEN)].mean == pytest.approx(0.66) and cell[("base", SEEN)].std == pytest.approx(0.01)
    assert cell[("seen", SEEN)].mean == pytest.approx((0.75 + 0.77 + 0.77) / 3)
    assert cell[("seen", SEEN)].mean_diff == pytest.approx(0.31 / 3) and cell[("seen", SEEN)].n_pairs == 3
    # unseen: seen's seeds 1, 2 only (.46, .48) against base's (.45, .46): differences .01 .02
    assert cell[("seen", UNSEEN)].n == 2 and cell[("seen", UNSEEN)].n_pairs == 2
    assert cell[("seen", UNSEEN)].mean_diff == pytest.approx(0.015)
    p_seen = ttest_rel([0.75, 0.77, 0.77], [0.65, 0.66, 0.67]).pvalue
    p_unseen = ttest_rel([0.46, 0.48], [0.45, 0.46]).pvalue
    # Holm over an arm's two columns: the smaller p times 2, the larger times 1 (kept monotone).
    low, high = sorted([p_seen, p_unseen])
    expected = {p_seen: None, p_unseen: None}
    expected[low] = min(1.0, 2 * low)
    expected[high] = max(expected[low], high)
    assert cell[("seen", SEEN)].p_adjusted == pytest.approx(expected[p_seen])
    assert cell[("seen", UNSEEN)].p_adjusted == pytest.approx(expected[p_unseen])
    assert cell[("seen", SEEN)].direction == ("better" if expected[p_seen] <= 0.05 else "none")
    assert math.isnan(cell[("base", SEEN)].p_value) and cell[("base", SEEN)].n_pairs == 0  # the baseline is untested


def test_the_registry_s_seen_arm_splits_xnli_as_table_6():
    split = language_split(get_experiment("xmixup_xnli"), get_task("xnli"))
    # Table 6's header: seen en bg el fr ru th ur zh, unseen ar de es hi sw tr vi.
    assert split == LanguageSplit("xmixup_seen", ("bg", "el", "fr", "ru", "th", "ur", "zh"),
                                  ("ar", "de", "es", "hi", "sw", "tr", "vi"))
    assert XNLI_SEEN_LANGUAGES == split.seen
    assert language_split(get_experiment("xmixup_pawsx"), get_task("pawsx")) is None  # Table 6 is XNLI's
    assert language_split(get_experiment("xmixup_xnli", ("baseline", "xmixup")), get_task("xnli")) is None


# --------------------------------------------------------------------------- on the parent run

TOY = TaskSpec(name="toy", hub_id="none", languages=("en", "a", "b", "c", "d"), text_fields=("text",),
               label_names=("no", "yes"))
TOY_EXPERIMENT = Experiment(name="xmixup_toy", task="toy", method="xmixup", description="toy", arms=(
    Arm("base", "baseline"), Arm("seen", "xmixup", tuned=True, overrides={"train_languages": "a,b"})), baseline_arm="base")


def test_report_results_logs_rho_and_the_seen_unseen_split_on_the_parent_run(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the store's default artifact root is relative
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "xmixup_toy")
    tracker.open_parent(None, name="sweep", tags={"stage": "sweep"})
    cka = {"base": {"en": 1.0, "a": 0.8, "b": 0.9, "c": 0.7, "d": 0.6},  # every seed alike
           "seen": {"en": 1.0, "a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}}
    for (arm, seed), accuracy in long_dict(SPLIT_RESULTS).items():
        tags = {PARENT_TAG: tracker.parent_run_id, "stage": "confirm", "arm": arm, "seed": str(seed)}
        run_id = tracker.client.create_run(tracker.experiment_id, tags=tags).info.run_id
        metrics = {**{f"test_acc_{k}": v for k, v in accuracy.items()}, **{f"cka_{k}": v for k, v in cka[arm].items()}}
        tracker.client.log_batch(run_id, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()])
        tracker.client.set_terminated(run_id, status="FINISHED")
    out = tmp_path / "out"
    text = report_results(collect_confirm_results(tracker, TOY), tracker, TOY_EXPERIMENT, TOY, [1, 2, 3], out)

    metrics = tracker.client.get_run(tracker.parent_run_id).data.metrics
    # base: accuracy means a .62 b .70 c .5067 d .4133 against CKA .8 .9 .7 .6: the same ranking, ρ = 1.
    assert metrics["base.cka_spearman_rho"] == pytest.approx(1.0)
    # seen: a .72 b .8067 c .52 d .415: a and b swap ranks against CKA: ρ = 1 - 6 * 2 / 60 = 0.8.
    assert metrics["seen.cka_spearman_rho"] == pytest.approx(0.8)
    assert metrics["seen.test_acc_avg_seen.mean"] == pytest.approx((0.75 + 0.77 + 0.77) / 3)
    assert metrics["seen.test_acc_avg_unseen.diff"] == pytest.approx(0.015)
    assert metrics["base.test_acc_avg_unseen.mean"] == pytest.approx((0.45 + 0.46 + 0.47) / 3)
    artifacts = {a.path for a in tracker.client.list_artifacts(tracker.parent_run_id)}
    assert {"seen_unseen.md", "seen_unseen.csv", "cka.md"} <= artifacts
    assert "Spearman's ρ between linear CKA and test accuracy" in (out / "cka.md").read_text()
    assert "| seen | 0.80 | 0.200 | 4 |" in text
    assert "seen = the 2 target languages seen trains on (a, b; and en); unseen = the other 2 (c, d)" in text


def long_dict(frame: pd.DataFrame) -> dict[tuple[str, int], dict[str, float]]:
    out: dict[tuple[str, int], dict[str, float]] = {}
    for row in frame.itertuples(index=False):
        out.setdefault((row.arm, row.seed), {})[row.language] = row.value
    return out
