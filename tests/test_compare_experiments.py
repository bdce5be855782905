"""Comparing methods in one sweep: ``compare_xnli`` / ``compare_pawsx`` run one search per method (each its own
stage, study and best), and ``--best-from`` takes a finished search of an earlier sweep instead. No Ray here:
the plan, the resolver, the searches' records and the refusals, on a real sqlite MLflow store."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from orchestrator import cli
from orchestrator.best_from import find_best_from
from orchestrator.experiments import get_experiment
from orchestrator.plan import TrialResolver
from orchestrator.searches import log_search, should_search, take_reused
from orchestrator.state import SweepState
from orchestrator.sweep import main
from orchestrator.tracking import SweepTracker, open_client
from trainables.config import TrainConfig
from trainables.tasks import get_task


@pytest.mark.parametrize("task", ["xnli", "pawsx"])
def test_compare_dry_run_shows_its_arms_searches_and_seeds(capsys, task):
    assert main([f"compare_{task}", "--profile", "smoke", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert ("arms         baseline [baseline, paper defaults]; salt [salt, tuned]; xmixup [xmixup, tuned]; "
            "btf_self_training [self_training, tuned]; t-tests vs baseline") in out
    assert ("stages       search-salt (2 trials of the salt, its own Optuna study, same sampler and training seeds) "
            "-> search-xmixup (2 trials of the xmixup, its own Optuna study, same sampler and training seeds) "
            "-> search-self_training (2 trials of the self_training, its own Optuna study, same sampler and training "
            "seeds) -> confirm (every arm x every seed)") in out
    assert ("searches     one per searched method, each tuning its arm: search-salt tunes salt (salt); search-xmixup "
            "tunes xmixup (xmixup); search-self_training tunes btf_self_training (self_training)") in out
    # each search's own space, as its method's preparation shapes it (SALT: one threshold per scan language)
    assert "salt space learning_rate=loguniform(0.001, 0.01), threshold_en=" in out and "threshold_<lang>=" in out
    assert "xmixup space learning_rate=loguniform(0.001, 0.01), lambda0=uniform(0.1, 1), mixup_layer=" in out
    assert "self_training space learning_rate=loguniform(0.001, 0.01), target_precision=" in out
    assert "seeds        1, 2, 3 (confirm); search trains on training seed 9001" in out
    assert "trials       6 search + 12 confirm = 18" in out  # 3 searches x 2 trials; 4 arms x 3 seeds
    # every method's preparation is described: SALT's scan, X-Mixup's translations, the BTF MLM run
    heads = [line.split()[0] for line in out.splitlines() if line and not line[0].isspace()]
    assert {"salt", "translations", "btf", "self-train"} <= set(heads)
    assert "search space" not in out  # no main search


def test_each_tuned_arm_takes_its_own_searchs_best():
    experiment = get_experiment("compare_xnli", tune_baseline=True)
    assert [(s.name, s.stage, s.arm, s.method) for s in experiment.searches] == [
        ("baseline", "search-baseline", "baseline_tuned", "baseline"), ("salt", "search-salt", "salt", "salt"),
        ("xmixup", "search-xmixup", "xmixup", "xmixup"),
        ("self_training", "search-self_training", "btf_self_training", "self_training")]
    assert experiment.searched_arm is None
    best = {"baseline": {"learning_rate": 1e-5}, "salt": {"learning_rate": 2e-5, "threshold_en": 3e-3},
            "xmixup": {"learning_rate": 3e-5, "mixup_layer": 4}, "self_training": {"learning_rate": 4e-5, "rounds": 3}}
    resolver = TrialResolver(base=TrainConfig(task="xnli", languages=get_task("xnli").languages).to_dict(),
                             arms={arm.name: arm for arm in experiment.arms}, other_best=best)
    paper = resolver.arm_config("baseline", 1)
    assert paper.learning_rate == TrainConfig().learning_rate  # the untuned baseline takes no search's best
    assert resolver.arm_config("baseline_tuned", 1).learning_rate == 1e-5
    salt = resolver.arm_config("salt", 1)
    assert salt.learning_rate == 2e-5 and salt.method_params["threshold_en"] == 3e-3
    xmixup = resolver.arm_config("xmixup", 1)
    assert xmixup.learning_rate == 3e-5 and xmixup.method_params["mixup_layer"] == 4
    assert "threshold_en" not in xmixup.method_params  # another search's knob never reaches an arm
    st = resolver.arm_config("btf_self_training", 1)
    assert st.learning_rate == 4e-5 and st.method_params["rounds"] == 3
    # a search trial of one search samples its arm's knobs on top of the others' bests, which do not touch it
    sampled, arm, seed = TrialResolver(**{**resolver.__dict__, "searched_arm": "xmixup",
                                          "search_seeds": (9001,)}).resolve({"learning_rate": 7e-6})
    assert (arm, seed, sampled.learning_rate, sampled.method_params["mixup_layer"]) == ("xmixup", 9001, 7e-6, 4)
    # existing experiments keep their stage names
    assert [s.stage for s in get_experiment("salt_xnli", tune_baseline=True).searches] == ["search", "search-baseline"]


def test_space_entries_reach_the_searches_whose_method_knows_them():
    cfg = cli.parse(["compare_xnli", "--profile", "smoke", "--space", "learning_rate=loguniform(2e-3,3e-3)",
                     "--space", "threshold_en=loguniform(1e-4,2e-4)", "--best-from", "a,b", "--best-from", "c"])
    assert cfg.space == {} and sorted(cfg.spaces) == ["salt", "self_training", "xmixup"]
    assert {name: str(space["learning_rate"]) for name, space in cfg.spaces.items()} == {
        name: "loguniform(0.002, 0.003)" for name in ("salt", "self_training", "xmixup")}
    assert str(cfg.spaces["salt"]["threshold_en"]) == "loguniform(0.0001, 0.0002)"
    assert "threshold_en" not in cfg.spaces["xmixup"] and "threshold_en" not in cfg.spaces["self_training"]
    assert cfg.best_from == ("a", "b", "c") and cfg.to_dict()["best_from"] == ["a", "b", "c"]
    with pytest.raises(cli.UsageError, match="--space bogus: no search of compare_xnli has a setting 'bogus'"):
        cli.parse(["compare_xnli", "--space", "bogus=uniform(0,1)"])


# -- searches on the parent run and in sweep.json ---------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One real sqlite MLflow store for the module (creating one takes seconds), with earlier sweeps' parent runs:
    id -> (experiment, its searches' logged bests, model, status)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    sweeps = {
        "salt-done": ("salt_xnli", {"best.learning_rate": 2.5e-3, "best.threshold_en": 8e-4, "best.threshold_de": 3e-7},
                      "None", "FINISHED"),
        "salt-again": ("salt_xnli", {"best.learning_rate": 1e-3}, "None", "FINISHED"),
        "pawsx": ("salt_pawsx", {"best.learning_rate": 1e-3}, "None", "FINISHED"),
        "uncased": ("salt_xnli", {"best.learning_rate": 1e-3}, "bert-base-multilingual-uncased", "FINISHED"),
        "baseline": ("baseline_xnli", {"best.learning_rate": 1e-3}, "None", "FINISHED"),
        "running": ("salt_xnli", {}, "None", "RUNNING"),
        "three-languages": ("salt_xnli", {"best.learning_rate": 1e-3, "languages": "en,de,fr"}, "None", "FINISHED"),
        "multilingual-dev": ("salt_xnli", {"best.learning_rate": 1e-3, "sweep.select_on": "multilingual-dev"}, "None",
                             "FINISHED"),
    }
    runs = {sweep_id: _earlier_sweep(uri, sweep_id, *spec) for sweep_id, spec in sweeps.items()}
    return uri, runs


def _earlier_sweep(uri: str, sweep_id: str, experiment: str, params: dict, model: str, status: str) -> str:
    """A parent run shaped like a sweep's: tags stage=sweep and sweep_id, the sweep.* params, its searches' bests."""
    tracker = SweepTracker(uri, experiment)
    tracker.open_parent(None, name=f"sweep-{sweep_id}", tags={"stage": "sweep", "sweep_id": sweep_id})
    tracker.log_params({"sweep.experiment": experiment, "sweep.model": model, "sweep.tune_baseline": False, **params})
    if params:
        tracker.log_metrics({"search_best_dev_acc": 0.61})
    if status != "RUNNING":
        tracker.finish(status)
    return tracker.parent_run_id


def test_best_from_takes_a_finished_search_of_the_same_method(store, tmp_path):
    uri, runs = store
    reused = find_best_from(open_client(uri), ("salt-done",), get_experiment("compare_xnli"), None)
    assert list(reused) == ["salt"]  # the salt_xnli search tuned SALT: only compare's SALT search is replaced
    salt = reused["salt"]
    assert salt.best == {"learning_rate": 2.5e-3, "threshold_en": 8e-4, "threshold_de": 3e-7}  # typed again
    assert (salt.sweep_id, salt.run_id, salt.value) == ("salt-done", runs["salt-done"], 0.61)

    # The search is recorded as finished (a resume does not run it) and logged like one.
    cfg = cli.parse(["compare_xnli", "--profile", "smoke"])
    experiment = get_experiment("compare_xnli")
    state, tracker = SweepState(sweep_id="s", experiment="compare_xnli"), SweepTracker(uri, "compare_xnli")
    tracker.open_parent(None, name="sweep-s", tags={"stage": "sweep", "sweep_id": "s"})
    assert should_search(cfg, state, experiment.search("salt"))
    take_reused(tracker, state, tmp_path, experiment.search("salt"), salt)
    assert not should_search(cfg, state, experiment.search("salt"))
    assert should_search(cfg, state, experiment.search("xmixup"))
    loaded = SweepState.load(tmp_path)
    assert loaded.stages_done == ["search-salt"] and loaded.best_of("salt") == salt.best
    assert loaded.best_from == {"salt": "salt-done"} and loaded.best_of("") == {}
    params = tracker.client.get_run(tracker.parent_run_id).data.params
    assert params["best_salt.learning_rate"] == "0.0025" and params["best_from_salt"] == "salt-done"


def test_best_from_takes_a_search_on_the_same_languages_and_selection(store):
    experiment, client = get_experiment("compare_xnli"), open_client(store[0])
    reused = find_best_from(client, ("three-languages",), experiment, None, languages=("en", "de", "fr"),
                            select_on="en-dev")
    assert reused["salt"].best == {"learning_rate": 1e-3}
    reused = find_best_from(client, ("multilingual-dev",), experiment, None, languages=("en", "de", "fr"),
                            select_on="multilingual-dev")
    assert reused["salt"].sweep_id == "multilingual-dev"


def test_each_search_logs_its_own_best_beside_the_main_ones(store, tmp_path):
    experiment = get_experiment("compare_xnli")
    tracker = SweepTracker(store[0], "compare_xnli")
    tracker.open_parent(None, name="sweep-s", tags={"stage": "sweep", "sweep_id": "s"})
    resolver = TrialResolver(base=TrainConfig(task="xnli").to_dict(), arms={a.name: a for a in experiment.arms},
                             search_seeds=(9001,))
    frame = pd.DataFrame({"dev_acc": [0.5, 0.7], "learning_rate": [1e-5, 3e-5]})
    log_search(tracker, tmp_path, resolver, experiment.search("xmixup"), {"learning_rate": 3e-5, "mixup_layer": 1},
               0.7, "dev_acc", frame)
    run = tracker.client.get_run(tracker.parent_run_id)
    assert run.data.params["best_xmixup.learning_rate"] == "3e-05" and run.data.params["best_xmixup.mixup_layer"] == "1"
    assert run.data.metrics["search_xmixup_best_dev_acc"] == 0.7 and run.data.metrics["search_xmixup_trials"] == 2
    config = json.loads((tmp_path / "best_config_xmixup.json").read_text())
    assert config["method"] == "xmixup" and config["learning_rate"] == 3e-5 and config["method_params"]["mixup_layer"] == 1
    assert len(pd.read_csv(tmp_path / "search_xmixup_trials.csv")) == 2
    assert resolver.other_best == {"xmixup": {"learning_rate": 3e-5, "mixup_layer": 1}}


def test_a_sweep_before_named_searches_resumes_with_its_baseline_search(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({
        "sweep_id": "old", "experiment": "salt_xnli", "stages_done": ["search", "search-baseline"],
        "best": {"learning_rate": 2e-5}, "best_value": 0.6, "baseline_best": {"learning_rate": 3e-5},
        "baseline_best_value": 0.5}))
    state = SweepState.load(tmp_path)
    assert state.best_of("baseline") == {"learning_rate": 3e-5} and state.other_best_value == {"baseline": 0.5}
    assert state.best_of("") == {"learning_rate": 2e-5}


# -- refusals: one line, exit 2, before any Ray work ------------------------------------------------------------

@pytest.mark.parametrize("sweep_id, expected", [
    ("nowhere", "--best-from nowhere: no sweep nowhere in the MLflow store"),
    ("pawsx", "--best-from pawsx: a pawsx sweep (salt_pawsx); compare_xnli is a xnli experiment"),
    ("uncased", "--best-from uncased: it trained model bert-base-multilingual-uncased, this sweep trains None"),
    ("baseline", "--best-from baseline: its searches tuned baseline; compare_xnli searches salt, xmixup, self_training"),
    ("running", "--best-from running: its search of salt (stage search) did not finish (parent run"),
    ("salt-done,salt-again", "--best-from salt-again: salt's best comes from --best-from salt-done already"),
    ("three-languages", "--best-from three-languages: its searches ran on languages en,de,fr, this sweep on "
                        "en,ar,bg,de,el,es,fr,hi,ru,sw,th,tr,ur,vi,zh; pass the same --languages, or search here"),
    ("multilingual-dev", "--best-from multilingual-dev: its searches selected on multilingual-dev, this sweep on "
                         "en-dev; pass --select-on multilingual-dev, or search here"),
])
def test_best_from_refusals_are_one_line_before_ray(store, tmp_path, capsys, sweep_id, expected):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["compare_xnli", "--profile", "smoke", "--best-from", sweep_id, "--storage", str(tmp_path / "sweeps"),
              "--tracking-uri", store[0]])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert expected in err, err
    assert not (tmp_path / "sweeps").exists()  # no sweep folder, no assets, no Ray


def test_a_resumed_comparison_runs_no_finished_search_and_gives_every_arm_its_best(store, tmp_path):
    """Resume: searches recorded in sweep.json (run, or taken with --best-from) are not run again (no Ray
    starts here: a search to run would need it), and the resolver gets each search's recorded best."""
    from orchestrator.best_from import ReusedSearch
    from orchestrator.searches import run_searches

    cfg = cli.parse(["compare_xnli", "--profile", "smoke"])
    experiment = get_experiment("compare_xnli")
    state = SweepState(sweep_id="s", experiment="compare_xnli", stages_done=["search-xmixup", "search-self_training"])
    state.record_best("xmixup", {"learning_rate": 3e-3}, 0.5)
    state.record_best("self_training", {"learning_rate": 4e-3}, 0.4)
    tracker = SweepTracker(store[0], "compare_xnli")
    tracker.open_parent(None, name="sweep-r", tags={"stage": "sweep", "sweep_id": "r"})
    resolver = TrialResolver(base=TrainConfig(task="xnli").to_dict(), arms={a.name: a for a in experiment.arms})
    reused = {"salt": ReusedSearch("salt", "salt-done", {"learning_rate": 2e-3}, 0.6, store[1]["salt-done"])}
    run_searches(cfg, experiment, state, tmp_path, resolver, (None, tracker, "dev_acc", 1), reused)
    assert state.stages_done == ["search-xmixup", "search-self_training", "search-salt"]
    assert {arm: resolver.arm_config(arm, 1).learning_rate for arm in ("salt", "xmixup", "btf_self_training")} == {
        "salt": 2e-3, "xmixup": 3e-3, "btf_self_training": 4e-3}
    assert resolver.arm_config("baseline", 1).learning_rate == TrainConfig().learning_rate  # untuned
