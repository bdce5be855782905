"""``--languages``: a sweep on the source and some target languages of a benchmark (a partial local copy).

The flag is refused in one line before Ray when it names no source, no target or a language the benchmark
lacks; the data loader reads only the chosen languages (a copy without the others loads, and without the
flag the missing language is named with the flag that gets round it); the methods that choose languages
themselves stay inside the chosen ones; the tables' columns and averages follow, and their legend never
calls the average the benchmark's; one real sweep runs a partial copy end to end (slow).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import Metric, Param

from orchestrator import cli
from orchestrator.assets import load_assets
from orchestrator.experiments import get_experiment
from orchestrator.paper_numbers import paper_block
from orchestrator.preparation import check_method_inputs
from orchestrator.results import ReportSettings, collect_confirm_results, report_results
from orchestrator.sweep import main
from orchestrator.tracking import AT_CHANCE, PARENT_TAG, SweepTracker
from smoke import build_smoke_data
from trainables.data import DataUnavailable, check_data_available, load_raw
from trainables.method_spec import PreparationError, PrepareContext
from trainables.tasks import get_task

CHOSEN = ("en", "de", "fr")


def refusal(capsys, *args: str) -> str:
    """The one stderr line of a sweep refused with exit code 2."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    lines = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(lines) == 1, lines
    return lines[0]


# ----------------------------------------------------------------------- the flag


@pytest.mark.parametrize("value, expected", [
    ("de,fr", "--languages must include the source language en (training and English dev are on it), e.g. en,de,fr"),
    ("en,de,xx", "--languages xx: not pawsx languages (en,de,es,fr,ja,ko,zh)"),
    ("en", "--languages en: name at least one target language too, e.g. en,de"),
])
def test_bad_languages_are_refused_in_one_line_before_ray(capsys, value, expected):
    import ray

    assert refusal(capsys, "baseline_pawsx", "--profile", "smoke", "--languages", value, "--dry-run") == \
        f"error: {expected}"
    assert not ray.is_initialized()


def test_languages_are_typed_config_in_the_tasks_order_and_shown_by_the_dry_run(capsys):
    assert cli.parse(["baseline_pawsx", "--profile", "smoke", "--languages", "fr, en,de,fr"]).languages == CHOSEN
    full = cli.parse(["baseline_pawsx", "--profile", "smoke"])
    assert full.languages == get_task("pawsx").languages  # the default: every language, as before
    assert cli.parse(["baseline_pawsx", "--languages", ",".join(reversed(full.languages))]).languages == full.languages
    assert cli.parse(["baseline_pawsx", "--languages", "en,de"]).to_dict()["languages"] == ["en", "de"]
    assert main(["baseline_pawsx", "--profile", "smoke", "--languages", "en,fr,de", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "task         pawsx: 3 languages (en de fr), 2 of its 6 targets (--languages: tables average these " \
           "only); train on en only" in out


def test_the_task_restricted_to_the_chosen_languages_knows_its_benchmark():
    full = get_task("xnli")
    task = get_task("xnli", ["fr", "en", "de"])
    assert task.languages == CHOSEN and task.target_languages == ("de", "fr") and task.is_subset
    assert task.benchmark == full and not full.is_subset
    assert get_task("xnli", full.languages) == full and task.restrict(()) == full


# ----------------------------------------------------------------------- a partial local copy


@pytest.fixture
def partial_pawsx(smoke_root, tmp_path) -> Path:
    """The generated PAWS-X copy (saved layout, one folder per language) without ja, ko and zh."""
    copy = tmp_path / "pawsx"
    shutil.copytree(build_smoke_data(get_task("pawsx"), smoke_root), copy)
    for lang in ("ja", "ko", "zh"):
        shutil.rmtree(copy / lang)
    return copy


def test_a_partial_copy_loads_with_the_chosen_languages_and_is_refused_without(partial_pawsx):
    with pytest.raises(DataUnavailable) as caught:
        check_data_available(get_task("pawsx"), partial_pawsx)
    message = str(caught.value)
    assert "\n" not in message and "ja/dataset_dict.json" in message
    assert message.endswith("or run on the languages it has (--languages en,de,es,fr)")

    task = get_task("pawsx", CHOSEN)
    check_data_available(task, partial_pawsx)
    raw = load_raw(task, partial_pawsx)
    assert sorted(raw) == sorted(["train_en", *(f"{split}_{lang}" for split in ("validation", "test") for lang in CHOSEN)])


def test_a_sweep_on_a_partial_copy_loads_with_languages_and_without_stops_before_ray(
        partial_pawsx, smoke_model, tmp_path, monkeypatch, capsys):
    import ray

    monkeypatch.chdir(tmp_path)
    args = ["baseline_pawsx", "--model", smoke_model, "--data-dir", str(partial_pawsx)]
    line = refusal(capsys, *args)
    assert "PAWSX data incomplete" in line and "--languages en,de,es,fr" in line
    assert not ray.is_initialized() and not (tmp_path / "mlflow.db").exists()

    cfg = cli.parse([*args, "--languages", "en,de,fr"])
    loaded = load_assets(cfg, get_task("pawsx", cfg.languages))  # what the sweep loads before Ray starts
    assert {name.rsplit("_", 1)[1] for name in loaded.raw} == set(CHOSEN)
    assert {account.split("_", 1)[1] for account in loaded.accounting.accounts} == {"en", "de", "fr"}


# ----------------------------------------------------------------------- methods that choose languages


def test_methods_own_languages_must_lie_inside_the_chosen_ones(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # SALT's code-switching languages (its rule picks among the chosen targets; named ones must be chosen too)
    line = refusal(capsys, "salt_pawsx", "--profile", "smoke", "--languages", "en,de,fr", "--salt-languages", "fr,es")
    assert line == ("error: --salt-languages es: outside --languages en,de,fr; add it to --languages, or name only "
                    "de, fr")
    # BTF / self-training's unlabelled target text, and X-Mixup's translations, through train_languages
    line = refusal(capsys, "btf_marc", "--profile", "smoke", "--languages", "en,de", "--set", "train_languages=de,fr")
    assert line == "error: train_languages fr: outside --languages en,de; add it to --languages, or name only de"
    # an arm that fixes its own (X-Mixup's seen languages, Table 6): its arm can be left out
    cfg = cli.parse(["xmixup_xnli", "--profile", "smoke", "--languages", "en,de,fr"])
    experiment = get_experiment("xmixup_xnli")
    task = get_task("xnli", cfg.languages)
    seen = next(arm for arm in experiment.arms if arm.name == "xmixup_seen").overrides
    context = PrepareContext(experiment="xmixup_xnli", task=task, model=None, generated_data=True,
                             cache_dir=tmp_path, select_on="multilingual-dev", fixed=cfg.train_overrides, space={},
                             settings=None, arm_fixed=(seen,))
    with pytest.raises(PreparationError, match=r"^train_languages bg, el, ru, th, ur, zh: outside --languages "
                                               r"en,de,fr; .*\(an arm fixes them: leave it out with --arms\)$"):
        context.target_languages()
    # inside them, the methods take the chosen languages (the smoke profile's train_languages de,fr)
    assert PrepareContext(**{**context.__dict__, "arm_fixed": ()}).target_languages() == ("de", "fr")
    check_method_inputs(cli.parse(["btf_marc", "--profile", "smoke", "--languages", "en,de,fr"]),
                        get_experiment("btf_marc"), get_task("marc", CHOSEN))


# ----------------------------------------------------------------------- the report


def write_confirm_runs(tracker: SweepTracker, scores: dict[tuple[str, int], dict[str, float]]) -> None:
    """Finished confirm runs as the MLflow callback leaves them: tags arm, seed; metrics test_acc_<lang>."""
    for (arm, seed), values in scores.items():
        tags = {PARENT_TAG: tracker.parent_run_id, "stage": "confirm", "arm": arm, "seed": str(seed)}
        run = tracker.client.create_run(tracker.experiment_id, run_name=f"confirm-{arm}-seed{seed}", tags=tags)
        metrics = {f"test_acc_{lang}": value for lang, value in values.items()} | {AT_CHANCE: 0.0}
        tracker.client.log_batch(run.info.run_id, params=[Param("stage", "confirm")],
                                 metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()])
        tracker.client.set_terminated(run.info.run_id, "FINISHED")


def test_the_table_has_the_chosen_columns_their_averages_and_says_they_are_not_the_benchmarks(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the store's default artifact root is relative
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "salt_pawsx")
    tracker.open_parent(None, name="sweep", tags={"stage": "sweep"})
    scores = {("baseline", 1): {"en": 0.90, "de": 0.60, "fr": 0.50},
              ("baseline", 2): {"en": 0.80, "de": 0.70, "fr": 0.60},
              ("salt", 1): {"en": 0.92, "de": 0.66, "fr": 0.58},
              ("salt", 2): {"en": 0.82, "de": 0.74, "fr": 0.62}}
    write_confirm_runs(tracker, scores)
    task = get_task("pawsx", CHOSEN)
    experiment = get_experiment("salt_pawsx", ("baseline", "salt"))
    results = collect_confirm_results(tracker, task)
    assert set(results.language) == set(CHOSEN)
    text = report_results(results, tracker, experiment, task, (1, 2), tmp_path / "results", ReportSettings())

    table = pd.read_csv(tmp_path / "results" / "results.csv")
    assert list(dict.fromkeys(table.column)) == ["en", "de", "fr", "avg", "avg_en"]
    baseline = table[table.arm == "baseline"].set_index("column")["mean"]
    assert baseline["avg"] == pytest.approx(((0.60 + 0.50) / 2 + (0.70 + 0.60) / 2) / 2)  # 0.60
    assert baseline["avg_en"] == pytest.approx(((0.90 + 0.60 + 0.50) / 3 + (0.80 + 0.70 + 0.60) / 3) / 2)
    assert "salt_pawsx: test accuracy per language (2 of PAWSX's 6 target languages)" in text
    assert ("avg = macro average over the 2 chosen target languages (de, fr) of PAWSX's 6, not the benchmark "
            "average; avg+en = over en and those 2 (--languages; left out: es, ja, ko, zh); published averages, "
            "over all 6, are not set beside it") in text
    assert "macro average over the target languages (without en)" not in text
    # the published numbers: per language only, never the published averages (over all six targets)
    published = text[text.index("### Published results"):]
    assert "| de " in published and "| fr " in published
    assert "| avg" not in published and "| ja " not in published
    assert not any(key.endswith("repro_gap_avg") for key in tracker.client.get_run(tracker.parent_run_id).data.metrics)


def test_paper_block_on_a_subset_compares_language_columns_only():
    ours = pd.DataFrame({"arm": ["salt"] * 3, "column": ["de", "avg", "avg_en"], "mean": [0.88, 0.8, 0.82],
                         "std": [0.01, 0.01, 0.01]})
    full = paper_block(ours, "salt_pawsx", "bert-base-multilingual-uncased")
    assert set(full.column) == {"de", "avg", "avg_en"}
    subset = paper_block(ours, "salt_pawsx", "bert-base-multilingual-uncased", languages_only=True)
    assert list(subset.column) == ["de"] and subset.published.iloc[0] == pytest.approx(87.9)


# ----------------------------------------------------------------------- end to end (slow)


@pytest.mark.slow
def test_a_sweep_runs_a_partial_copy_on_the_chosen_languages(partial_pawsx, tmp_path):
    from tests.smoke_cache import seed_smoke_cache
    from tests.test_sweep_smoke import env, runs_of, sweep_command

    args = ("baseline_pawsx", "--profile", "smoke", "--data-dir", str(partial_pawsx), "--languages", "en,de,fr",
            "--num-samples", "0", "--seeds", "1,2", "--arms", "baseline")
    seed_smoke_cache(tmp_path, *args)
    proc = subprocess.run(sweep_command(*args), cwd=tmp_path, env=env(), capture_output=True, text=True,
                          timeout=1500)  # a hang's bound
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "baseline_pawsx: test accuracy per language (2 of PAWSX's 6 target languages)" in proc.stdout
    assert "avg = macro average over the 2 chosen target languages (de, fr) of PAWSX's 6" in proc.stdout
    _, parents, children = runs_of(tmp_path, "baseline_pawsx")
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.params["languages"] == "en,de,fr"
    assert len(children) == 2
    for child in children:
        assert child.data.params["languages"] == "en,de,fr"
        assert {key for key in child.data.metrics if key.startswith("test_acc_")} == {
            "test_acc_en", "test_acc_de", "test_acc_fr", "test_acc_avg", "test_acc_avg_en"}
        assert child.data.metrics["test_acc_avg"] == pytest.approx(
            (child.data.metrics["test_acc_de"] + child.data.metrics["test_acc_fr"]) / 2)
