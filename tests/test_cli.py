"""Bad input gets one line on stderr and exit code 2, before Ray starts; --list and --dry-run."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator import cli
from orchestrator.sweep import main
from tests.smoke_cache import seed_smoke_cache

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "orchestrator.sweep", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def exit_code_and_stderr(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return exc.value.code, capsys.readouterr().err


def test_list_prints_one_line_per_experiment(capsys):
    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert names[:8] == ["baseline_xnli", "baseline_pawsx", "salt_xnli", "salt_pawsx", "xmixup_xnli", "xmixup_pawsx",
                         "baseline_marc", "baseline_panx"]
    assert "baseline_tuned" in lines[0]


@pytest.mark.parametrize("args, expected", [
    (["no_such_experiment"], "unknown experiment 'no_such_experiment'"),
    (["baseline_xnli", "--seeds", "0"], "--seeds"),
    (["baseline_xnli", "--seeds", "1,1"], "seeds repeat"),
    (["baseline_xnli", "--gpus-per-trial", "-1"], "--gpus-per-trial"),
    (["baseline_xnli", "--workers-per-trial", "0"], "--workers-per-trial"),
    (["baseline_xnli", "--profile", "huge"], "--profile"),
    (["baseline_xnli", "--stages", "search,train"], "stages are search, confirm"),
    (["baseline_xnli", "--set", "learning_rate=-1"], "learning_rate must be > 0"),
    (["baseline_xnli", "--set", "num_train_epochs=abc"], "num_train_epochs must be of type float"),
    (["baseline_xnli", "--set", "no_such_setting=1"], "--set no_such_setting: not a setting of baseline_xnli"),
    (["baseline_xnli", "--set", "seed=3"], "--set seed: not a setting"),
    (["baseline_xnli", "--space", "no_such_knob=uniform(0,1)"], "method 'baseline' has no setting 'no_such_knob'"),
    (["baseline_xnli", "--space", "learning_rate=uniform(1,0)"], "low must be below high"),
    (["baseline_xnli", "--space", "learning_rate=normal(0,1)"], "is not a dimension"),
    (["baseline_xnli", "--select-on", "fr-dev"], "--select-on"),
    (["baseline_xnli", "--salt-languages", "fr"], "--salt-* flags apply to SALT experiments"),
    (["salt_xnli", "--salt-languages", "en,fr"], "en is the source language"),
    (["salt_xnli", "--salt-languages", "French"], "write language codes"),
    (["salt_xnli", "--salt-wordlists", "/no/such/dir"], "no such directory"),
    (["salt_xnli", "--set", "threshold_fr=2"], "threshold_fr must be a probability"),
    (["salt_xnli", "--set", "mixup_scope=word"], "mixup_scope must be one of"),
    (["salt_xnli", "--set", "candidate_rule=second"], "candidate_rule must be one of paper, exclude-original"),
    (["salt_xnli", "--space", "thresh_fr=uniform(0,1)"], "method 'salt' has no setting 'thresh_fr'"),
    (["baseline_xnli", "--xmixup-freeze-ratio"], "--xmixup-* flags apply to X-Mixup experiments"),
    (["salt_xnli", "--xmixup-translations", "/tmp"], "--xmixup-* flags apply to X-Mixup experiments"),
    (["xmixup_xnli", "--xmixup-layers", "0,4"], "layer numbers >= 1"),
    (["xmixup_xnli", "--set", "lambda0=1.5"], "lambda0 must be in (0, 1]"),
    (["xmixup_xnli", "--set", "inference=mean"], "inference must be one of probabilities, logits"),
    (["xmixup_xnli", "--space", "lambda=uniform(0,1)"], "method 'xmixup' has no setting 'lambda'"),
    (["salt_xnli", "--arms", "baseline,salt_ablation"], "salt_xnli has no arm 'salt_ablation'; its arms: baseline, salt,"),
    (["salt_xnli", "--arms", "salt,salt"], "write distinct arm names"),
    (["salt_xnli", "--seeds", "1,9001"], "--search-training-seed 9001 is one of the confirm seeds 1, 9001"),
    (["salt_xnli", "--search-training-seed", "3"], "--search-training-seed 3 is one of the confirm seeds"),
    (["baseline_xnli", "--tune-baseline"], "baseline_xnli already searches its baseline"),
    (["salt_xnli", "--correction", "bonferroni"], "--correction"),
    (["salt_xnli", "--ci", "normal"], "--ci"),
    (["salt_xnli", "--bootstrap", "-5"], "--bootstrap"),
    (["baseline_xnli", "--gpus-per-trial", "lots"], "--gpus-per-trial"),
    (["baseline_xnli", "--profile", "smoke", "--storage", "/sys/xlt-sweep"], "--storage /sys/xlt-sweep: /sys cannot be written"),
    (["baseline_xnli", "--profile", "smoke", "--storage", "/etc/hostname/sweeps"], "/etc/hostname is a file, not a folder"),
    ([], "name an experiment"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, expected):
    code, err = exit_code_and_stderr(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert expected in err


def test_set_fixes_a_setting_and_removes_it_from_the_space():
    cfg = cli.parse(["baseline_xnli", "--set", "learning_rate=3e-5", "--seeds", "1,7"])
    assert cfg.train_overrides == {"learning_rate": 3e-5}
    assert "learning_rate" not in cfg.space and "warmup_ratio" in cfg.space
    assert cfg.seeds == (1, 7)


def test_dry_run_shows_the_paper_protocol(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["baseline_xnli", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "bert-base-multilingual-cased" in out
    assert "15 languages (en ar bg de el es fr hi ru sw th tr ur vi zh)" in out
    assert "hub facebook/xnli" in out
    assert "search (20 trials, Optuna TPE sampler seed 0, objective dev_acc on en-dev" in out
    assert "training seed 9001: not a confirm seed" in out
    assert "learning_rate=loguniform(5e-06, 5e-05)" in out
    assert "seeds        1, 2, 3, 4, 5 (confirm); search trains on training seed 9001" in out
    assert "trials       20 search + 10 confirm = 30" in out
    assert "lr 2e-05, batch 8 x accumulation 4" in out and "5 epochs, max length 128" in out
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "mlflow.db").exists(), "dry run ran something"


def test_dry_run_of_smoke_profile(capsys):
    assert main(["baseline_pawsx", "--profile", "smoke", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "7 languages (en de es fr ja ko zh)" in out
    assert "trials       2 search + 6 confirm = 8" in out
    assert "learning_rate=loguniform(0.001, 0.01)" in out
    assert "concurrent trials = what the cluster fits" in out and "up to 3 time(s)" in out


def test_concurrency_and_retries_for_an_autoscaling_cluster(capsys):
    cfg = cli.parse(["baseline_xnli", "--profile", "smoke", "--max-concurrent-trials", "8", "--max-failures", "5"])
    assert cfg.resources.max_concurrent_trials == 8 and cfg.resources.max_failures == 5
    from orchestrator.sweep import max_concurrent_trials

    assert max_concurrent_trials(cfg, {"CPU": 2.0}, 0.0, cfg.resources.cpus_per_worker) == 8  # not what the cluster has now
    assert main(["baseline_xnli", "--profile", "smoke", "--max-concurrent-trials", "8", "--dry-run"]) == 0
    assert "concurrent trials = 8" in capsys.readouterr().out
    code, err = exit_code_and_stderr(capsys, "baseline_xnli", "--max-concurrent-trials", "0")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--max-concurrent-trials" in err


def test_the_ray_dashboard_is_asked_for_a_local_ray_only(capsys, monkeypatch):
    assert not cli.parse(["baseline_xnli", "--profile", "smoke"]).resources.ray_dashboard
    code, err = exit_code_and_stderr(capsys, "baseline_xnli", "--ray-dashboard", "--address", "auto")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "ray start" in err
    # It needs the cluster extra (ray[default]); the suite's install has it or not, so both cases are forced.
    monkeypatch.setattr(cli, "dashboard_installed", lambda: True)
    assert cli.parse(["baseline_xnli", "--profile", "smoke", "--ray-dashboard"]).resources.ray_dashboard
    monkeypatch.setattr(cli, "dashboard_installed", lambda: False)
    code, err = exit_code_and_stderr(capsys, "baseline_xnli", "--ray-dashboard")
    assert code == 2 and len(err.strip().splitlines()) == 1 and ".[cluster]" in err


def test_paper_profile_offline_fails_fast_with_one_line(tmp_path):
    """No local model and an unreachable hub: one line naming what is missing and the flag."""
    started, children = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = run_cli("baseline_xnli", cwd=tmp_path, timeout=120)
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    if proc.returncode == 0:
        pytest.skip("the hub is reachable from this machine")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "bert-base-multilingual-cased" in lines[0] and "--model" in lines[0]
    # Fast = no waiting on the hub (its retries sleep for minutes): the time not spent computing stays small.
    # Computing is the imports' ~10 CPU-s, which the other xdist worker's sweep can stretch to twice that.
    assert elapsed < 20 + 2 * cpu, (elapsed, cpu)
    assert not (tmp_path / "mlflow.db").exists()


def test_missing_local_data_dir_names_the_flag(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    proc = run_cli("baseline_xnli", "--model", str(model), "--data-dir", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "--data-dir" in lines[0]


def test_unreachable_tracking_server_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("XLT_TRACKING_WAIT_S", "3")  # the sweep waits this long for a (re)starting server
    proc = run_cli("baseline_xnli", "--profile", "smoke", "--tracking-uri", "http://127.0.0.1:9", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "did not answer /health in 3 s" in lines[0], proc.stderr
    assert "waiting for the MLflow tracking server http://127.0.0.1:9 to answer /health (up to 3 s)" in proc.stdout
    assert not (tmp_path / "sweeps").exists()  # checked first: no sweep folder, no Ray, no trial


def test_resume_without_a_sweep_is_one_line(tmp_path):
    proc = run_cli("baseline_xnli", "--profile", "smoke", "--resume", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no unfinished baseline_xnli sweep" in lines[0], proc.stderr


def test_resume_with_other_settings_is_refused(tmp_path):
    from orchestrator.state import SweepState

    sweep_dir = tmp_path / "sweeps" / "baseline_xnli" / "20260101-000000"
    cfg = cli.parse(["baseline_xnli", "--profile", "smoke", "--seeds", "1,2"])
    SweepState(sweep_id=sweep_dir.name, experiment="baseline_xnli", config=cfg.to_dict()).save(sweep_dir)
    proc = run_cli("baseline_xnli", "--profile", "smoke", "--seeds", "1,2,3", "--resume", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "it was started with seeds=[1, 2], not [1, 2, 3]" in lines[0], proc.stderr


def test_salt_dry_run_shows_the_paper_protocol(capsys):
    assert main(["salt_xnli", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "bert-base-multilingual-uncased" in out  # SALT's Appendix A model
    assert "15 languages" in out and "seeds        1, 2, 3, 4, 5 (confirm); search trains on training seed 9001" in out
    # the tables' statistics: correction, search seed, untuned baseline
    assert ("statistics   paired t-test over seeds vs baseline (untuned paper setting; --tune-baseline gives it the "
            "method's budget); Holm correction over each arm's languages and averages") in out
    assert "paired bootstrap over test examples per seed (1000 resamples)" in out
    assert "threshold_en=loguniform(1e-05, 0.1)" in out and "threshold_<lang>=loguniform(1e-09, 1e-05)" in out
    assert "the 3 target languages with the highest vocabulary overlap" in out
    assert "baseline [baseline" in out and "salt_en_only [salt, tuned, en_only=True]" in out
    assert main(["salt_pawsx", "--dry-run", "--salt-languages", "fr,de", "--salt-shared-threshold"]) == 0
    out = capsys.readouterr().out
    assert "threshold_target=loguniform(1e-09, 1e-05)" in out and "threshold_fr" not in out


def test_dry_run_shows_the_recipe_each_arm_follows_and_its_source(capsys):
    """SALT's experiments on Robust-XLT's scripts (the baseline too), PAN-X on xtreme's 10 epochs."""
    assert main(["salt_xnli", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert ("recipe       baseline, salt, salt_en_only, salt_no_mixup: SALT (Robust-XLT scripts): lr 2e-05, batch 8 x 4, "
            "1 epoch, max length 128, eval every 1000 steps") in out
    assert "from uclanlp/Robust-XLT scripts/train_xnli.sh" in out and "EPOCH=1" in out
    for arm in ("baseline", "salt (before the search)"):
        assert (f"{arm}: lr 2e-05, batch 8 x accumulation 4 x workers, 1 epoch, max length 128, warmup 0, "
                "weight decay 0, eval every 1000 steps") in out, arm
    assert "copies only, originals dropped (keep_original=False" in out
    assert "no substitution (candidate_rule=paper" in out
    assert main(["salt_pawsx", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "SALT (Robust-XLT scripts): lr 2e-05, batch 8 x 4, 3 epochs, max length 128, eval every 500 steps" in out
    assert "baseline: lr 2e-05, batch 8 x accumulation 4 x workers, 3 epochs" in out and "train_pawsx.sh" in out
    assert main(["baseline_panx", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "recipe       baseline, baseline_tuned: xtreme PAN-X: lr 2e-05, batch 8 x 4, 10 epochs" in out
    assert "from google-research/xtreme scripts/train_panx.sh: NUM_EPOCHS=10" in out
    assert "training     lr 2e-05, batch 8 x accumulation 4 x workers, 10 epochs, max length 128" in out
    # --set still wins over the recipe, and the plan says so; keep_original and the old rule are knobs
    assert main(["salt_xnli", "--dry-run", "--set", "num_train_epochs=2", "--set", "keep_original=true",
                 "--set", "candidate_rule=exclude-original"]) == 0
    out = capsys.readouterr().out
    assert "fixed over the recipe (profile or --set): num_train_epochs=2" in out
    assert "baseline: lr 2e-05, batch 8 x accumulation 4 x workers, 2 epochs" in out
    assert "originals kept beside the copies (keep_original=True)" in out
    assert "the best token other than the original word (candidate_rule=exclude-original)" in out
    # the smoke profile keeps its tiny settings
    assert main(["salt_xnli", "--profile", "smoke", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "recipe       none: the smoke profile's own settings" in out
    assert "baseline: lr 0.001, batch 32 x accumulation 1 x workers, 3 epochs, max length 64" in out


def test_tune_baseline_dry_run_shows_two_searches_and_the_tuned_baseline(capsys):
    assert main(["salt_xnli", "--profile", "smoke", "--tune-baseline", "--correction", "bh", "--bootstrap", "1000",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "search (2 trials" in out and "search-baseline (2 trials of the baseline, its own Optuna study" in out
    assert "baseline space learning_rate=loguniform(0.001, 0.01)" in out
    assert "baseline [baseline, paper defaults]; baseline_tuned [baseline, tuned]; salt [salt, tuned]" in out
    assert "t-tests vs baseline_tuned" in out
    assert "vs baseline_tuned (tuned: the same search budget as the method); Benjamini-Hochberg correction" in out
    assert "paired bootstrap over test examples per seed (1000 resamples)" in out
    assert "trials       4 search + 15 confirm = 19" in out
    cfg = cli.parse(["salt_xnli", "--profile", "smoke", "--tune-baseline", "--space",
                     "learning_rate=loguniform(2e-3,3e-3)", "--space", "threshold_en=loguniform(7e-4,8e-4)"])
    # the user's training-setting dimensions reach the baseline's search; the method's knobs do not
    assert str(cfg.baseline_space["learning_rate"]) == "loguniform(0.002, 0.003)"
    assert "threshold_en" not in cfg.baseline_space and "threshold_en" in cfg.space


def _encoder_only_model(smoke_model: str, where: Path) -> Path:
    """The smoke encoder saved without its MLM head (like a fine-tuned or sentence-embedding checkpoint)."""
    from transformers import AutoTokenizer, BertModel

    BertModel.from_pretrained(smoke_model).save_pretrained(where)
    AutoTokenizer.from_pretrained(smoke_model).save_pretrained(where)
    return where


def test_salt_without_an_mlm_head_is_one_line_before_ray(tmp_path, smoke_model, smoke_root):
    from smoke import build_smoke_wordlists

    model = _encoder_only_model(smoke_model, tmp_path / "encoder")
    started = time.monotonic()
    proc = run_cli("salt_pawsx", "--profile", "smoke", "--model", str(model), "--salt-wordlists",
                   str(build_smoke_wordlists(smoke_root)), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "no trained masked-language-model head" in err[0], proc.stderr
    assert "ray" not in proc.stdout.lower() and not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "sweeps" / "salt_pawsx" / "cache" / "tokenized").exists()  # refused before tokenising
    print(f"failed in {time.monotonic() - started:.1f} s")


def test_salt_without_a_word_list_is_one_line(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "en.txt").write_text("house\nriver\n")
    args = ("salt_pawsx", "--profile", "smoke", "--salt-wordlists", str(lists), "--salt-languages", "fr,de")
    seed_smoke_cache(tmp_path, *args)
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "no fr.txt, de.txt in --salt-wordlists" in err[0], proc.stderr


def test_xmixup_dry_run_shows_the_paper_protocol_and_the_space(capsys):
    code, err = exit_code_and_stderr(capsys, "xmixup_xnli", "--dry-run")  # the dry run refuses what a sweep would
    assert code == 2 and "X-Mixup needs translated data and none was given" in err
    # a hub dataset id: fetched and checked when the sweep starts
    assert main(["xmixup_xnli", "--xmixup-translations", "org/translations", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "bert-base-multilingual-cased" in out and "15 languages" in out and "seeds        1, 2, 3, 4, 5" in out
    assert ("learning_rate=loguniform(3e-06, 3e-05), lambda0=uniform(0.1, 1), mixup_layer=choice(1, 4, 8, 12), "
            "alpha=uniform(0.2, 0.8), pk=loguniform(100, 10000)") in out
    assert "translate-train (all 14 target languages) with back-translations" in out
    assert "xmixup (before the search): lr 5e-06, batch 16 x accumulation 4 x workers, 4 epochs" in out
    for arm in ("baseline [baseline", "translate_train [translate_train", "xmixup [xmixup, tuned]",
                "xmixup_no_mixup_inference [xmixup, tuned, mixup_inference=False]",
                "xmixup_no_sched_sampling [xmixup, tuned, scheduled_sampling=False]",
                "xmixup_no_consistency [xmixup, tuned, consistency=False]",
                "xmixup_const_ratio [xmixup, tuned, ratio=constant]",
                "xmixup_no_mixup [xmixup, tuned, mixup=False, mixup_inference=False]",
                "xmixup_no_mse [xmixup, tuned, consistency_mse=False]", "xmixup_no_kl [xmixup, tuned, consistency_kl=False]",
                "xmixup_seen [xmixup, tuned, train_languages=bg,el,fr,ru,th,ur,zh]"):
        assert arm in out
    assert "trials       20 search + 55 confirm = 75" in out and "t-tests vs baseline" in out
    assert ("selection    every run keeps its checkpoint with the best dev score averaged over all languages' dev sets "
            "(multilingual-dev: the experiment's paper protocol)") in out
    assert main(["xmixup_pawsx", "--dry-run", "--xmixup-translations", "org/translations", "--xmixup-layers", "1,4",
                 "--xmixup-freeze-ratio",
                 "--xmixup-reference-sampling", "--xmixup-logit-inference"]) == 0
    out = capsys.readouterr().out
    assert "mixup_layer=choice(1, 4)" in out
    assert "reference-code behaviour: λ frozen (W = 1, b = 0), p* per epoch, one coin per batch, raw-logit inference" in out


def test_xmixup_missing_translations_are_one_line_before_ray(tmp_path):
    empty = tmp_path / "translations"
    (empty / "XNLI" / "translate-train").mkdir(parents=True)
    proc = run_cli("xmixup_xnli", "--profile", "smoke", "--xmixup-translations", str(empty), cwd=tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "X-Mixup translations missing under" in err[0], proc.stderr
    # The smoke profile trains on de and fr, the seen-languages arm on bg el fr ru th ur zh: those 8 languages'
    # translate-train and back-translate; every target's translate-test, and translate-dev (multilingual-dev selection).
    assert "translate-train/en-bg-translated.tsv" in err[0] and "(44 of 44 files)" in err[0]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "sweeps" / "xmixup_xnli" / "cache" / "tokenized").exists()


def test_xmixup_layers_beyond_the_encoder_are_one_line(tmp_path):
    args = ("xmixup_pawsx", "--profile", "smoke", "--xmixup-layers", "1,4")
    seed_smoke_cache(tmp_path, *args)
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "--xmixup-layers 4: the encoder has 2 layers" in err[0], proc.stderr


def test_btf_dry_run_shows_the_recipe_and_the_space(capsys):
    assert main(["btf_panx", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "panx: 40 languages" in out and "metric f1" in out
    assert ("learning_rate=loguniform(1e-05, 5e-05), target_precision=uniform(0.8, 0.99), hard_weight=uniform(0, 1), "
            "rounds=choice(1, 2, 3), mlm_steps=choice(1000, 3000, 10000)") in out
    assert "one Ray Train run to 1000, 3000, 10000 steps (a checkpoint at each)" in out
    for arm in ("baseline [baseline", "btf [btf, tuned]", "self_training [self_training, tuned, btf=False]",
                "btf_self_training [self_training, tuned]", "btf_self_training_voters [self_training, tuned, voting=True]"):
        assert arm in out
    assert "trials       20 search + 25 confirm = 45" in out


@pytest.mark.parametrize("args, expected", [
    (["--space", "mlm_steps=int(10,40)"], "--space mlm_steps=int(10, 40): search it as a choice"),
    (["--set", "train_languages=de,xx"], "train_languages xx: not target languages of marc"),
])
def test_btf_bad_input_is_one_line_before_ray(tmp_path, monkeypatch, capsys, args, expected):
    monkeypatch.chdir(tmp_path)
    code, err = exit_code_and_stderr(capsys, "btf_marc", "--profile", "smoke", *args)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "sweeps" / "btf_marc" / "cache" / "tokenized").exists()  # nothing was prepared
