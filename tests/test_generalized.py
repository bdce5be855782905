"""SALT's generalized XNLI setting: the cross-language pairs, the run's scores, the flag's defaults, the report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from mlflow.entities import Metric

from orchestrator import cli
from orchestrator.experiments import get_experiment
from orchestrator.generalized import FILES, collect_generalized, matrix_to_long, overall_tests, report_generalized, \
    seed_tables
from orchestrator.plan import TrialResolver
from orchestrator.significance import SignificanceOptions
from orchestrator.sweep import main
from orchestrator.tracking import PARENT_TAG, SweepTracker
from smoke import build_smoke_data, examples
from smoke.lexicon import language_lexicon
from trainables import generalized
from trainables.config import TrainConfig
from trainables.data import DataUnavailable, load_raw, tokenize_cached
from trainables.generalized import generalized_test_set, matrix_rows, summary_metrics
from trainables.loop import train_and_evaluate
from trainables.tasks import XNLI, TaskSpec

# A tiny parallel XNLI: row i is one example in every language (labels 0 = entailment, 1 = neutral, 2 = contradiction).
PARALLEL = {
    "en": (("a cat sleeps", "an animal rests", 0), ("it rains", "the sun shines", 2), ("he reads", "he is tall", 1)),
    "de": (("eine Katze schläft", "ein Tier ruht", 0), ("es regnet", "die Sonne scheint", 2),
           ("er liest", "er ist groß", 1)),
    "fr": (("un chat dort", "un animal se repose", 0), ("il pleut", "le soleil brille", 2),
           ("il lit", "il est grand", 1)),
}
TINY = TaskSpec(name="xnli", hub_id="none", languages=("en", "de", "fr"), text_fields=("premise", "hypothesis"),
                label_names=XNLI.label_names)


def raw_tests(rows: dict[str, tuple]) -> DatasetDict:
    features = Features({"premise": Value("string"), "hypothesis": Value("string"),
                         "label": ClassLabel(names=list(XNLI.label_names))})
    return DatasetDict({f"test_{lang}": Dataset.from_dict({"premise": [r[0] for r in part],
                                                           "hypothesis": [r[1] for r in part],
                                                           "label": [r[2] for r in part]}, features=features)
                        for lang, part in rows.items()})


def test_pairs_take_the_premise_of_one_language_and_the_hypothesis_of_another_row_by_row():
    pairs = generalized_test_set(raw_tests(PARALLEL), TINY)
    assert list(pairs) == ["en-en", "en-de", "en-fr", "de-en", "de-de", "de-fr", "fr-en", "fr-de", "fr-fr"]
    assert pairs["de-fr"].to_dict() == {"premise": ["eine Katze schläft", "es regnet", "er liest"],
                                        "hypothesis": ["un animal se repose", "le soleil brille", "il est grand"],
                                        "label": [0, 2, 1]}
    assert pairs["fr-en"][1] == {"premise": "il pleut", "hypothesis": "the sun shines", "label": 2}
    assert pairs["en-en"].to_dict() == raw_tests(PARALLEL)["test_en"].to_dict()  # the diagonal: the test set
    assert pairs["en-de"].features == raw_tests(PARALLEL)["test_en"].features


def test_a_filtered_split_is_paired_by_its_visible_rows():
    """A split read through an index mapping (``filter`` drops unknown labels) pairs by the rows it shows."""
    raw = raw_tests({lang: (("x", "y", 1), *part) for lang, part in PARALLEL.items()})
    raw = DatasetDict({name: ds.select([1, 2, 3]) for name, ds in raw.items()})
    assert generalized_test_set(raw, TINY)["en-fr"]["hypothesis"] == ["un animal se repose", "le soleil brille",
                                                                      "il est grand"]


@pytest.mark.parametrize("rows, expected", [
    ({**PARALLEL, "fr": PARALLEL["fr"][:2]}, "their sizes differ (en 3, de 3, fr 2)"),
    ({**PARALLEL, "de": (PARALLEL["de"][0], PARALLEL["de"][2], PARALLEL["de"][1])},
     "2 of 3 rows of test_de have another label than test_en (row 1: neutral vs contradiction)"),
])
def test_test_sets_that_are_not_parallel_are_refused_in_one_line(rows, expected):
    with pytest.raises(DataUnavailable) as error:
        generalized_test_set(raw_tests(rows), TINY)
    assert expected in str(error.value) and "\n" not in str(error.value)
    assert "--no-generalized-xnli" in str(error.value)


def test_row_column_and_overall_averages():
    accuracy = {("en", "en"): 0.9, ("en", "de"): 0.6, ("de", "en"): 0.7, ("de", "de"): 0.8}
    metrics = summary_metrics(accuracy, ["en", "de"])
    assert metrics == pytest.approx({
        "gen_pair_acc_en_en": 0.9, "gen_pair_acc_en_de": 0.6, "gen_pair_acc_de_en": 0.7, "gen_pair_acc_de_de": 0.8,
        "gen_acc_premise_en": 0.75, "gen_acc_premise_de": 0.75,  # (.9 + .6) / 2, (.7 + .8) / 2
        "gen_acc_hypothesis_en": 0.8, "gen_acc_hypothesis_de": 0.7,  # (.9 + .7) / 2, (.6 + .8) / 2
        "gen_acc_avg": 0.75}, abs=1e-12)
    assert matrix_rows(metrics, ["en", "de", "fr"]) == [{"premise": "en", "en": 0.9, "de": 0.6, "fr": ""},
                                                        {"premise": "de", "en": 0.7, "de": 0.8, "fr": ""}]
    assert [key for key in metrics if generalized.is_pair_metric(key)] == list(metrics)[:4]


def test_smoke_xnli_test_and_dev_sets_are_translations_of_the_english_ones():
    english = examples(XNLI, "en", "test", 12, 0)
    forms = language_lexicon("bg", 0).forms
    bulgarian = examples(XNLI, "bg", "test", 12, 0)
    assert bulgarian["label"] == english["label"]
    for name in XNLI.text_fields:
        assert bulgarian[name] == [" ".join(forms.get(w, w) for w in text.split(" ")) for text in english[name]]
    assert examples(XNLI, "bg", "validation", 12, 0)["label"] == examples(XNLI, "en", "validation", 12, 0)["label"]
    assert examples(XNLI, "bg", "train", 12, 0)["premise"] != examples(XNLI, "en", "train", 12, 0)["premise"]


def test_the_run_scores_every_pair_with_its_kept_weights(smoke_root, smoke_model, smoke_train_config):
    """The diagonal equals the run's own test accuracy (same rows, same tokens, same weights); a few steps."""
    raw = load_raw(XNLI, str(build_smoke_data(XNLI, smoke_root)), languages=("en", "de", "ar", "fr"),
                   eval_splits=("test",))
    path = tokenize_cached(generalized_test_set(raw, XNLI, ("en", "de", "ar", "fr")), XNLI, smoke_model, 64,
                           smoke_root / "cache")
    cfg = smoke_train_config.replace(max_steps=10, eval_every_steps=10, languages=("en", "de", "ar"),
                                     generalized_path=str(path))
    final = train_and_evaluate(cfg)
    pairs = {key: value for key, value in final.items() if generalized.is_pair_metric(key)}
    assert len(pairs) == 9  # the run's 3 languages, not the 4 prepared
    for lang in cfg.languages:
        assert final[generalized.pair_metric(lang, lang)] == pytest.approx(final[f"test_acc_{lang}"], abs=1e-12)
    assert final["gen_acc_premise_de"] == pytest.approx(sum(final[f"gen_pair_acc_de_{h}"] for h in cfg.languages) / 3)
    assert final["gen_acc_avg"] == pytest.approx(sum(pairs.values()) / 9)
    assert final[generalized.SECONDS] > 0


@pytest.mark.parametrize("args, expected", [
    (["salt_xnli"], True),  # the paper ran it (SALT section 4)
    (["salt_xnli", "--no-generalized-xnli"], False),
    (["salt_xnli", "--profile", "smoke"], False),  # its cost, on a CPU: asked for with the flag
    (["salt_xnli", "--profile", "smoke", "--generalized-xnli"], True),
    (["baseline_xnli"], False),
    (["baseline_xnli", "--generalized-xnli"], True),
    (["xmixup_xnli", "--generalized-xnli"], True),
    (["salt_pawsx"], False),
])
def test_the_flag_defaults_per_experiment_and_profile(args, expected):
    assert cli.parse(args).generalized_xnli is expected


@pytest.mark.parametrize("args, expected", [
    (["salt_pawsx", "--generalized-xnli"], "--generalized-xnli pairs XNLI test premises and hypotheses across "
                                           "languages; salt_pawsx is a pawsx experiment"),
    (["xmixup_xnli", "--arms", "xmixup", "--generalized-xnli"], "no confirmed arm can score cross-language pairs"),
])
def test_a_flag_that_cannot_apply_is_one_line(args, expected):
    with pytest.raises(cli.UsageError) as error:  # main prints it as one line with exit code 2
        cli.parse(args)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_only_confirm_trials_of_arms_that_score_pairs_get_the_set(capsys):
    experiment = get_experiment("xmixup_xnli")
    resolver = TrialResolver(base=TrainConfig(task="xnli").to_dict(), arms={a.name: a for a in experiment.arms},
                             searched_arm="xmixup", generalized_path="/cache/tokenized/gen")
    paths = {arm.name: resolver.resolve({"pair": {"arm": arm.name, "seed": 1}})[0].generalized_path
             for arm in experiment.arms}
    assert paths == {"baseline": "/cache/tokenized/gen", "translate_train": "/cache/tokenized/gen", "xmixup": "",
                     "xmixup_no_mixup_inference": "/cache/tokenized/gen", "xmixup_no_sched_sampling": "",
                     "xmixup_no_consistency": "", "xmixup_const_ratio": "",
                     # Table 5's w/o mixup predicts from the target alone; the Table 9 and seen arms mix at inference
                     "xmixup_no_mixup": "/cache/tokenized/gen", "xmixup_no_mse": "", "xmixup_no_kl": "",
                     "xmixup_seen": ""}
    assert resolver.resolve({"lambda0": 0.5})[0].generalized_path == ""  # a search trial
    # (a hub id: the dry run leaves fetching and checking it to the sweep's start)
    assert main(["xmixup_xnli", "--generalized-xnli", "--xmixup-translations", "org/translations", "--dry-run"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("generalized"))
    assert "15 x 15 = 225 (premise language, hypothesis language) pairs" in line
    assert ("arms baseline, translate_train, xmixup_no_mixup, xmixup_no_mixup_inference; not xmixup, "
            "xmixup_no_sched_sampling, xmixup_no_consistency, xmixup_const_ratio, xmixup_no_mse, xmixup_no_kl, "
            "xmixup_seen") in line


def test_dry_run_says_whether_it_runs(capsys):
    assert main(["salt_xnli", "--dry-run"]) == 0
    assert "generalized  on: after each confirm run's test pass" in capsys.readouterr().out
    assert main(["salt_xnli", "--profile", "smoke", "--dry-run"]) == 0
    assert "generalized  off (--generalized-xnli" in capsys.readouterr().out
    assert main(["baseline_pawsx", "--dry-run"]) == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("generalized")]


# -- the report ---------------------------------------------------------------------------------------------
LANGS = ["en", "de"]
MATRICES = {  # arm -> per seed the 2 x 2 matrix [[en-en, en-de], [de-en, de-de]]
    "baseline": ([[0.80, 0.50], [0.60, 0.70]], [[0.82, 0.52], [0.60, 0.70]]),  # overall .65, .66
    "salt": ([[0.84, 0.60], [0.64, 0.72]], [[0.86, 0.62], [0.66, 0.74]]),  # overall .70, .72
}


def long_results() -> pd.DataFrame:
    frames = [matrix_to_long(pd.DataFrame([{"premise": p, **dict(zip(LANGS, row))} for p, row in zip(LANGS, m)]),
                             arm, seed)
              for arm, per_seed in MATRICES.items() for seed, m in enumerate(per_seed, start=1)]
    return pd.concat(frames, ignore_index=True)


def test_seed_tables_and_the_paired_test_of_the_overall_average():
    per_seed = seed_tables(long_results(), LANGS).set_index(["arm", "seed", "premise", "hypothesis"])["value"]
    assert per_seed[("salt", 2, "de", "avg")] == pytest.approx(0.70)  # (.66 + .74) / 2
    assert per_seed[("salt", 2, "avg", "de")] == pytest.approx(0.68)  # (.62 + .74) / 2
    assert per_seed[("baseline", 1, "avg", "avg")] == pytest.approx(0.65)
    tests = overall_tests(seed_tables(long_results(), LANGS), ["baseline", "salt"], "baseline", SignificanceOptions())
    row = tests.iloc[0]
    # differences .05, .06: mean .055, sd .00707, t = .055 / (.00707 / sqrt 2) = 11.0, df 1
    assert (row["arm"], row["n_pairs"], row["mean_diff"]) == ("salt", 2, pytest.approx(0.055, abs=1e-12))
    assert row["t_stat"] == pytest.approx(11.0, rel=1e-9) and row["p_value"] == pytest.approx(0.05771, abs=1e-4)
    assert not row["significant"] and row["direction"] == "none"


def test_report_holds_a_table_per_arm_and_the_overall_test(tmp_path: Path, monkeypatch):
    """Confirm runs with matrix artifacts, read back from MLflow: the parent gets the tables and metrics."""
    monkeypatch.chdir(tmp_path)
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "salt_toy")
    tracker.open_parent(None, name="sweep", tags={"stage": "sweep"})
    for arm, per_seed in MATRICES.items():
        for seed, matrix in enumerate(per_seed, start=1):
            tags = {PARENT_TAG: tracker.parent_run_id, "stage": "confirm", "arm": arm, "seed": str(seed)}
            run_id = tracker.client.create_run(tracker.experiment_id, tags=tags).info.run_id
            tracker.client.log_batch(run_id, metrics=[Metric("test_acc_en", 0.8, 0, 0)])
            metrics = summary_metrics({(p, h): matrix[i][j] for i, p in enumerate(LANGS)
                                       for j, h in enumerate(LANGS)}, LANGS)
            csv = tmp_path / f"{arm}{seed}" / generalized.MATRIX_FILE
            csv.parent.mkdir()
            pd.DataFrame(matrix_rows(metrics, LANGS)).to_csv(csv, index=False)
            tracker.client.log_artifact(run_id, str(csv), generalized.ARTIFACT_DIR)
            tracker.client.set_terminated(run_id, status="FINISHED")
    results = collect_generalized(tracker)
    assert len(results) == 2 * 2 * 4
    experiment = get_experiment("salt_xnli", ("baseline", "salt"))
    task = TaskSpec(name="xnli", hub_id="none", languages=("en", "de"), text_fields=("premise", "hypothesis"),
                    label_names=XNLI.label_names)
    text = report_generalized(results, tracker, experiment, task, [1, 2], tmp_path / "out")
    # .055 ± t(.975, 1) 12.706 x .005 (the sd of the differences over sqrt 2): not significant with 2 seeds
    assert "salt: 71.0 ± 1.4 (n=2); - baseline +5.5 [-0.9, +11.9], p 0.0577\n" in text
    artifacts = sorted(a.path for a in tracker.client.list_artifacts(tracker.parent_run_id))
    assert artifacts == sorted(FILES)
    markdown = (tmp_path / "out" / "generalized.md").read_text()
    assert "### salt\n\n| premise \\ hypothesis | en | de | avg |" in markdown
    assert "| de | 65.0 | 73.0 | 69.0 |" in markdown  # salt: de-en (.64 + .66) / 2, de-de (.72 + .74) / 2
    assert "| avg | 75.0 | 67.0 | 71.0 |" in markdown  # salt columns (.74 + .76) / 2, (.66 + .68) / 2
    metrics = tracker.client.get_run(tracker.parent_run_id).data.metrics
    assert metrics["salt.gen_acc_avg.mean"] == pytest.approx(0.71)
    assert metrics["salt.gen_acc_avg.diff"] == pytest.approx(0.055)
    assert metrics["baseline.gen_acc_avg.mean"] == pytest.approx(0.655)
    assert "baseline.gen_acc_avg.diff" not in metrics
