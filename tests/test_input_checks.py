"""The input checks that need no Ray: which arms need which preparation, the user's space as given, and
``--dry-run`` refusing what the sweep's start would refuse (issue 22 items 2-4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator import cli
from orchestrator.experiments import get_experiment
from orchestrator.plan import TrialResolver, recipe_settings
from orchestrator.preparation import (check_model_inputs, experiment_steps, needed_steps, step_context,
                                      unlabelled_languages)
from orchestrator.sweep import main
from search_spaces.spec import parse_dimension
from smoke import build_smoke_data, build_smoke_wordlists
from trainables.config import TrainConfig
from trainables.task_fitting.prepare import mlm_steps
from trainables.tasks import get_task


def encoder_only_model(smoke_model: str, where: Path) -> Path:
    """The smoke encoder saved without its MLM head (like a sentence-embedding or fine-tuned checkpoint)."""
    from transformers import AutoTokenizer, BertModel

    import transformers

    transformers.utils.logging.disable_progress_bar()  # its bars would join the stderr the tests read
    BertModel.from_pretrained(smoke_model).save_pretrained(where)
    AutoTokenizer.from_pretrained(smoke_model).save_pretrained(where)
    return where


def _btf_context(*args: str):
    cfg = cli.parse(["btf_marc", "--profile", "smoke", *args])
    experiment = get_experiment(cfg.experiment, cfg.arms)
    task = get_task(experiment.task)
    step = next(step for step in experiment_steps(experiment) if step.key == "btf")
    return cfg, experiment, task, step_context(cfg, experiment, task, step, dry_run=True)


def _refused(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    return err


# -- item 2: the MLM-head check only for arms that need it ----------------------------------------------

def test_self_training_alone_needs_no_mlm_run_and_no_mlm_head(tmp_path, smoke_model, monkeypatch):
    headless = str(encoder_only_model(smoke_model, tmp_path / "encoder"))
    cfg, experiment, task, ctx = _btf_context("--arms", "baseline,self_training", "--set", "btf=false")
    assert needed_steps(cfg, experiment, task) == []
    assert [use.arm for use in ctx.uses] == ["self_training", "btf_self_training"]  # confirmed, searched
    assert all(use.knobs["btf"] is False for use in ctx.uses)
    check_model_inputs(cfg, experiment, task, headless)  # nothing asks the model for an MLM head
    # self-training still reads the target languages' unlabelled text
    assert unlabelled_languages(cfg, experiment, task) == ("de", "fr")
    # BTF itself, or the search of BTF + self-training, needs the MLM run
    for args in (["--arms", "baseline,btf"], ["--arms", "baseline,self_training"]):
        cfg, experiment, task, _ctx = _btf_context(*args)
        assert [step.key for step in needed_steps(cfg, experiment, task)] == ["btf"], args
    # a searched btf needs it too, even where every arm's own value is False
    cfg, experiment, task, _ctx = _btf_context("--arms", "self_training", "--space", "btf=choice(True,False)")
    assert [step.key for step in needed_steps(cfg, experiment, task)] == ["btf"]
    # ... and not when the search does not run
    cfg, experiment, task, _ctx = _btf_context("--arms", "baseline,self_training", "--stages", "confirm")
    assert needed_steps(cfg, experiment, task) == []


def test_dry_run_of_self_training_alone_on_a_headless_model_passes_and_btf_is_refused(tmp_path, smoke_model,
                                                                                     capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    headless = str(encoder_only_model(smoke_model, tmp_path / "encoder"))
    assert main(["btf_marc", "--profile", "smoke", "--model", headless, "--arms", "baseline,self_training",
                 "--set", "btf=false", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "btf          not run: no arm or search of this sweep starts from the task-fitted encoder" in out
    assert f"model {headless}: found" in out
    err = _refused(capsys, "btf_marc", "--profile", "smoke", "--model", headless, "--arms", "baseline,btf", "--dry-run")
    assert "no trained masked-language-model head" in err and "BTF continues its MLM training" in err
    assert "self-training alone, btf=False, needs none" in err
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "mlflow.db").exists()


def test_self_training_alone_trains_on_a_model_without_mlm_head(tmp_path, smoke_model):
    """The recipe end to end in one process (tests/test_self_training.py's harness) from a head-less encoder."""
    from datasets import DatasetDict

    from tests.test_self_training import InProcess, _config
    from trainables.data import load_raw, load_unlabelled, tokenize_cached
    from trainables.methods.self_training.recipe import run_self_training

    headless = str(encoder_only_model(smoke_model, tmp_path / "encoder"))
    task = get_task("marc")
    data_dir = build_smoke_data(task, tmp_path)
    raw = load_raw(task, data_dir, languages=["en", "de", "fr"])
    raw = DatasetDict({**raw, **load_unlabelled(task, data_dir, ["de", "fr"])})
    tokenized = str(tokenize_cached(raw, task, headless, 64, tmp_path / "cache"))
    run = InProcess(tmp_path, "marc")
    result = run_self_training(_config(headless, tokenized, "marc", target_precision=0.5), fit=run.fit,
                               label=run.label, report=run.reports.append, work_dir=tmp_path / "pseudo")
    assert [name for name, _ in run.fits] == ["teacher0", "round1-student0"]
    assert run.fits[0][1].model == headless and not run.fits[0][1].method_params["btf"]
    assert 0.0 <= result["test_acc_avg"] <= 1.0


# -- item 3: the user's --space is the space ---------------------------------------------------------

def test_a_space_choice_without_the_default_runs_only_its_values(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the smoke profile's own mlm_steps (the paper point of its search) is 20
    cfg, experiment, task, ctx = _btf_context("--space", "mlm_steps=choice(10,30)")
    assert mlm_steps(ctx) == (10, 30)
    resolver = TrialResolver(base=TrainConfig(task=task.name).to_dict(), arms={a.name: a for a in experiment.arms},
                             fixed=dict(cfg.train_overrides), searched_arm="btf_self_training",
                             recipes=recipe_settings(experiment, cfg.profile))
    assert resolver.paper_point(cfg.space) == []  # the first trial is sampled from the user's space
    assert resolver.paper_point({**cfg.space, "mlm_steps": parse_dimension("choice(20,40)")})
    # a --set value joins (the space loses the dimension), the default does not
    assert mlm_steps(_btf_context("--set", "mlm_steps=30")[3]) == (30,)
    assert mlm_steps(_btf_context()[3]) == (20, 40)
    # no search: the arms run their own value
    assert mlm_steps(_btf_context("--space", "mlm_steps=choice(10,30)", "--stages", "confirm")[3]) == (20,)
    assert main(["btf_marc", "--profile", "smoke", "--space", "mlm_steps=choice(10,30)", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "one Ray Train run to 10, 30 steps" in out
    assert ("first trial  search: sampled; the paper setting lies outside the searched space "
            "(mlm_steps=20 not in choice(10, 30))") in out
    assert main(["baseline_xnli", "--profile", "smoke", "--dry-run"]) == 0
    assert "first trial  search: the paper setting (learning_rate=0.001, warmup_ratio=0)" in capsys.readouterr().out


# -- item 4: the dry run checks what needs no Ray ------------------------------------------------------

def test_dry_run_refuses_a_headless_model_for_salt(tmp_path, smoke_model, smoke_root, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    headless = str(encoder_only_model(smoke_model, tmp_path / "encoder"))
    lists = str(build_smoke_wordlists(smoke_root))
    err = _refused(capsys, "salt_pawsx", "--profile", "smoke", "--model", headless, "--salt-wordlists", lists,
                   "--dry-run")
    assert "no trained masked-language-model head" in err and "SALT predicts tokens" in err
    # the baseline alone needs no head: the plan names the model it runs on, not the profile's
    assert main(["baseline_pawsx", "--profile", "smoke", "--model", headless, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"model        {headless} (--model)" in out and "tiny random BERT" not in out.split("model ")[1]
    assert not (tmp_path / "sweeps").exists()


def test_dry_run_names_another_model_than_the_papers(capsys, tmp_path, smoke_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["baseline_xnli", "--model", smoke_model, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"model        {smoke_model} (--model; the paper ran bert-base-multilingual-cased)" in out
    assert "mBERT" not in out


def test_dry_run_refuses_a_missing_language_file(tmp_path, smoke_root, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "pawsx"
    shutil.copytree(build_smoke_data(get_task("pawsx"), smoke_root), data)
    assert main(["baseline_pawsx", "--profile", "smoke", "--data-dir", str(data), "--dry-run"]) == 0
    assert f"data {data}: every file of the train, validation and test parts of 7 languages found" in \
        capsys.readouterr().out
    shutil.rmtree(data / "fr")
    err = _refused(capsys, "baseline_pawsx", "--profile", "smoke", "--data-dir", str(data), "--dry-run")
    assert "fr" in err and "--data-dir" in err
    assert not (tmp_path / "sweeps").exists()


def test_dry_run_refuses_missing_word_lists_and_translations(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "en.txt").write_text("house\n")
    err = _refused(capsys, "salt_pawsx", "--salt-wordlists", str(lists), "--salt-languages", "fr,de", "--dry-run")
    assert "no fr.txt, de.txt in --salt-wordlists" in err
    empty = tmp_path / "translations"
    empty.mkdir()
    err = _refused(capsys, "xmixup_pawsx", "--xmixup-translations", str(empty), "--dry-run")
    assert "X-Mixup translations missing under" in err
    err = _refused(capsys, "xmixup_pawsx", "--dry-run")
    assert "X-Mixup needs translated data and none was given" in err
