"""``python -m orchestrator.compare``: one table across sweeps, from a real MLflow store.

The store is written by the real ``MlflowClient`` in the shape a sweep leaves it (``orchestrator.sweep``:
the parent run's tags and ``_log_sweep_config``'s params from a real parsed ``SweepConfig``; the confirm
runs' tags from ``tracking.NestedRunCallback.run_id``, their ``test_acc_<lang>`` metrics), with made-up
scores, so every number of the table can be computed here by hand.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from scipy import stats

from orchestrator import cli
from orchestrator.compare import compare_figures, main
from orchestrator.stats import summarize
from orchestrator.stats_summary import AVG
from orchestrator.tracking import AT_CHANCE, PARENT_TAG, SweepTracker
from trainables.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
TASK = get_task("xnli")
LANGS = TASK.languages
TARGETS = [lang for lang in LANGS if lang != TASK.source_language]
SEED_EFFECT = {1: 0.00, 2: 0.06, 3: -0.04, 4: 0.02}  # large and shared by every arm: pairing by seed removes it
DATA_KEY = "3f9a1c0de4b5a6f7"
_SWEEP_NUMBERS = itertools.count(1)


def scores(offset: float, seeds, noise_seed: int) -> dict[tuple[int, str], float]:
    """(seed, language) -> a made-up accuracy: offset + the seed's effect + the language's + a little noise."""
    rng = np.random.default_rng(noise_seed)
    return {(seed, lang): 0.55 + offset + SEED_EFFECT[seed] - 0.004 * i + float(rng.normal(0, 0.003))
            for seed in seeds for i, lang in enumerate(LANGS)}


def write_sweep(uri: str, tmp_path: Path, experiment: str, arm_scores: dict[str, dict], *, flags=(),
                status: str = "FINISHED", data_key: str = DATA_KEY) -> str:
    """A sweep's parent run and its confirm runs, as ``orchestrator.sweep.main`` and the MLflow callback
    write them; returns the parent run id. ``arm_scores``: arm -> (seed, language) -> score."""
    cfg = cli.parse([experiment, "--profile", "smoke", *flags])
    sweep_id = f"20261201-{next(_SWEEP_NUMBERS):06d}"
    sweep_dir = tmp_path / "sweeps" / experiment / sweep_id
    tracker = SweepTracker(uri, experiment)
    tracker.open_parent(None, name=f"sweep-{sweep_id}", tags={"stage": "sweep", "sweep_id": sweep_id,
                                                                "profile": cfg.profile, "sweep_dir": str(sweep_dir)})
    config = cfg.to_dict()  # sweep._log_sweep_config's params
    params = {f"sweep.{k}": v for k, v in config.items()
              if k not in ("resources", "train_overrides", "space", "baseline_space", "method_settings")}
    params.update({f"sweep.resources.{k}": v for k, v in config["resources"].items()})
    params.update({f"sweep.set.{k}": v for k, v in cfg.train_overrides.items()})
    params.update({f"space.{k}": str(v) for k, v in cfg.space.items()})
    storage = tmp_path / "sweeps" / experiment
    params.update({"model_dir": str(storage / "cache" / "smoke-model"),
                   "tokenized_path": str(storage / "cache" / "tokenized" / data_key),
                   "tracking_uri": uri, "sweep_dir": str(sweep_dir)})
    params.update({"data.parts": 31, "data.loaded_rows": 9300, "data.kept_rows": 9300, "data.dropped_rows": 0})
    tracker.log_params(params)
    client = tracker.client
    for arm, table in arm_scores.items():
        for seed in sorted({seed for seed, _ in table}, reverse=True):  # not in seed order: pairing must not care
            tags = {PARENT_TAG: tracker.parent_run_id, "stage": "confirm", "arm": arm, "seed": str(seed),
                    "trial_id": f"{arm}_{seed}", "method": arm.split("_")[0]}
            run = client.create_run(tracker.experiment_id, run_name=f"confirm-{arm}-seed{seed}", tags=tags)
            metrics = {f"test_acc_{lang}": table[(seed, lang)] for lang in LANGS}
            client.log_batch(run.info.run_id, params=[Param("stage", "confirm"), Param("seed", str(seed))],
                             metrics=[Metric(k, v, 0, 0) for k, v in {**metrics, AT_CHANCE: 0.0}.items()])
            client.set_terminated(run.info.run_id, "FINISHED")
    if status != "RUNNING":
        tracker.finish(status)
    return tracker.parent_run_id


def per_seed_avg(table: dict, seeds) -> np.ndarray:
    """Per seed, the macro average over the target languages (what ``avg`` is tested on)."""
    return np.array([np.mean([table[(seed, lang)] for lang in TARGETS]) for seed in seeds])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store: first (older) sweeps that cannot be compared, then baseline_xnli, two finished salt_xnli
    sweeps and a running one (the newest), xmixup_xnli, on one model and seeds 1-3."""
    tmp = tmp_path_factory.mktemp("compare")
    patch = pytest.MonkeyPatch()
    patch.chdir(tmp)  # the store's default artifact root is relative to the working directory
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    seeds = (1, 2, 3)
    s = {
        "baseline": scores(0.0, seeds, 1), "baseline_tuned": scores(0.004, seeds, 2),
        "salt_own_baseline": scores(-0.2, seeds, 3),  # salt_xnli's own baseline arm: must not be the shared one
        "salt_old": scores(0.01, seeds, 4), "salt": scores(0.03, seeds, 5), "salt_ablation": scores(0.5, seeds, 6),
        "xmixup": scores(-0.01, seeds, 7),
    }
    four = {arm: scores(0.0, (1, 2, 3, 4), 8) for arm in ("baseline", "salt")}
    pair = {"baseline": s["salt_own_baseline"], "salt": s["salt"]}
    ids = {
        "cased": write_sweep(uri, tmp, "baseline_xnli", {"baseline": s["baseline"]},
                             flags=("--model", "bert-base-multilingual-cased")),
        "uncased": write_sweep(uri, tmp, "salt_xnli", pair, flags=("--model", "bert-base-multilingual-uncased")),
        "four_seeds": write_sweep(uri, tmp, "salt_xnli", four, flags=("--seeds", "1,2,3,4")),
        "other_data": write_sweep(uri, tmp, "salt_xnli", pair, data_key="0000aaaa1111bbbb"),
        "search_only": write_sweep(uri, tmp, "salt_xnli", {}),
    }
    ids["baseline_xnli"] = write_sweep(uri, tmp, "baseline_xnli",
                                       {"baseline": s["baseline"], "baseline_tuned": s["baseline_tuned"]})
    ids["salt_old"] = write_sweep(uri, tmp, "salt_xnli", {"baseline": s["salt_own_baseline"], "salt": s["salt_old"]})
    ids["salt_xnli"] = write_sweep(uri, tmp, "salt_xnli", {**pair, "salt_no_mixup": s["salt_ablation"]})
    ids["salt_running"] = write_sweep(uri, tmp, "salt_xnli", {"salt": s["salt_ablation"]}, status="RUNNING")
    ids["xmixup_xnli"] = write_sweep(uri, tmp, "xmixup_xnli", {"baseline": s["salt_own_baseline"],
                                                              "xmixup": s["xmixup"]})
    yield types.SimpleNamespace(uri=uri, ids=ids, scores=s, seeds=seeds, tmp=tmp)
    patch.undo()


def compare_runs(uri: str) -> int:
    """How many compare runs the store holds."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("compare_xnli")
    return 0 if experiment is None else len(client.search_runs([experiment.experiment_id]))


def compare_run(uri: str):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("compare_xnli")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.stage = 'compare'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return client, runs[0]


def test_latest_sweeps_one_table_main_arms_against_the_shared_baseline(store, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["--experiments", "baseline_xnli,salt_xnli,xmixup_xnli", "--tracking-uri", store.uri,
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    frame = pd.read_csv(out / "results.csv")
    assert list(dict.fromkeys(frame["arm"])) == ["baseline", "baseline_tuned", "salt", "xmixup"]
    cells = frame.set_index(["arm", "column"])
    s, seeds = store.scores, store.seeds
    rows = {"baseline": s["baseline"], "baseline_tuned": s["baseline_tuned"], "salt": s["salt"], "xmixup": s["xmixup"]}
    for arm, table in rows.items():  # means: the chosen sweeps' arms, the baseline from baseline_xnli
        for lang in ("en", "de", "zh"):
            assert cells.loc[(arm, lang), "mean"] == pytest.approx(np.mean([table[(seed, lang)] for seed in seeds]))
        assert cells.loc[(arm, AVG), "mean"] == pytest.approx(per_seed_avg(table, seeds).mean())
        assert cells.loc[(arm, AVG), "n"] == 3
    base = per_seed_avg(s["baseline"], seeds)
    ttests = pd.read_csv(out / "ttest.csv").set_index(["arm", "column"])
    assert set(ttests["baseline"]) == {"baseline"}
    for arm in ("baseline_tuned", "salt", "xmixup"):
        ours = per_seed_avg(rows[arm], seeds)
        row = ttests.loc[(arm, AVG)]
        assert row["mean_diff"] == pytest.approx((ours - base).mean())
        assert row["t_stat"] == pytest.approx(stats.ttest_rel(ours, base).statistic)  # paired by seed
        assert row["n_pairs"] == 3 and row["correction"] == "holm"
    # The seed effect (0.1 apart) dwarfs salt's +3 points, so only pairing by seed finds it: significant.
    assert ttests.loc[("salt", AVG), "direction"] == "better"
    assert stats.ttest_ind(per_seed_avg(s["salt"], seeds), base).pvalue > 0.05  # unpaired it would not be

    markdown = (out / "results.md").read_text()
    assert "xnli: methods compared (main arm of each sweep vs one shared baseline)" in markdown
    for experiment in ("baseline_xnli", "salt_xnli", "xmixup_xnli"):
        assert store.ids[experiment] in markdown
    assert "row baseline, the shared baseline: arm baseline of baseline_xnli sweep" in markdown
    assert "row salt: main arm salt of salt_xnli sweep 20261201-" in markdown
    assert store.ids["salt_old"] not in markdown and store.ids["salt_running"] not in markdown
    assert "| salt " in printed and "salt - baseline: avg" in printed

    client, run = compare_run(store.uri)
    ids = [store.ids[name] for name in ("baseline_xnli", "salt_xnli", "xmixup_xnli")]
    assert run.info.status == "FINISHED"
    assert run.data.tags["compared_sweeps"] == ",".join(ids)
    assert run.data.tags["sweep.baseline"] == run.data.tags["sweep.baseline_tuned"] == ids[0]
    assert run.data.tags["sweep.salt"] == ids[1] and run.data.tags["sweep.xmixup"] == ids[2]
    assert run.data.metrics["salt.test_acc_avg.mean"] == pytest.approx(per_seed_avg(s["salt"], seeds).mean())
    assert run.data.metrics["salt.test_acc_avg.diff"] == pytest.approx(ttests.loc[("salt", AVG), "mean_diff"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"results.md", "results.csv", "results.html",
                                                                     "ttest.csv"}
    assert run.info.run_id in printed


def test_sweep_ids_pick_those_sweeps_and_two_of_one_experiment_get_distinct_rows(store, tmp_path):
    out = tmp_path / "report"
    assert main([store.ids["salt_old"], store.ids["salt_xnli"], "--tracking-uri", store.uri, "--out", str(out)]) == 0
    frame = pd.read_csv(out / "results.csv").set_index(["arm", "column"])
    s, seeds = store.scores, store.seeds
    # No baseline sweep given: the first sweep's baseline arm is the shared one.
    expected = {"baseline": s["salt_own_baseline"], "salt": s["salt_old"], "salt_2": s["salt"]}
    assert list(dict.fromkeys(frame.index.get_level_values("arm"))) == list(expected)
    for arm, table in expected.items():
        assert frame.loc[(arm, AVG), "mean"] == pytest.approx(per_seed_avg(table, seeds).mean())
    _, run = compare_run(store.uri)
    assert run.data.tags["sweep.salt"] == run.data.tags["sweep.baseline"] == store.ids["salt_old"]
    assert run.data.tags["sweep.salt_2"] == store.ids["salt_xnli"]


def refusal(argv, capsys) -> str:
    capsys.readouterr()  # MLflow's lines from creating the store above
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_sweeps_on_different_models_are_refused(store, capsys):
    ids = store.ids
    err = refusal([ids["cased"], ids["uncased"], "--tracking-uri", store.uri], capsys)
    assert err.startswith("error: the sweeps differ in model: bert-base-multilingual-cased (baseline_xnli sweep")
    assert "vs bert-base-multilingual-uncased (salt_xnli sweep" in err
    # Against the smoke model too; and nothing is logged for a refused comparison.
    err = refusal([ids["baseline_xnli"], ids["uncased"], "--tracking-uri", store.uri], capsys)
    assert "differ in model: the smoke profile's generated model" in err
    before = compare_runs(store.uri)

    done = subprocess.run([sys.executable, "-m", "orchestrator.compare", ids["cased"], ids["uncased"],
                           "--tracking-uri", store.uri], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: the sweeps differ in model: ")
    assert "bert-base-multilingual-cased" in done.stderr and "bert-base-multilingual-uncased" in done.stderr
    assert compare_runs(store.uri) == before


@pytest.mark.parametrize("other, expected", [
    ("four_seeds", "differ in confirm seeds: 1, 2, 3 (baseline_xnli sweep"),
    ("other_data", f"differ in data: tokenised data {DATA_KEY} (baseline_xnli sweep"),
    ("salt_running", "is RUNNING, not FINISHED"),
    ("search_only", "has no finished confirm runs"),
    ("unknown_id", "no run 'deadbeef'"),
])
def test_sweeps_that_cannot_be_compared_are_refused(store, capsys, other, expected):
    err = refusal([store.ids["baseline_xnli"], store.ids.get(other, "deadbeef"), "--tracking-uri", store.uri], capsys)
    assert expected in err
    if other == "four_seeds":
        assert "vs 1, 2, 3, 4 (salt_xnli sweep" in err
    if other == "other_data":
        assert "vs 0000aaaa1111bbbb (salt_xnli sweep" in err


def test_an_experiment_without_sweeps_is_refused(store, capsys):
    err = refusal(["--experiments", "baseline_xnli,btf_marc", "--tracking-uri", store.uri], capsys)
    assert "no MLflow experiment 'btf_marc'" in err
    err = refusal([store.ids["cased"], "--tracking-uri", store.uri], capsys)  # confirmed its baseline only
    assert "has no finished confirm runs of its main arm baseline_tuned" in err


def test_compare_figures_are_logged_on_the_compare_run(store, tmp_path):
    """The comparison's bars and forest plot are PNGs beside its report and artifacts of its run."""
    tracker = SweepTracker(store.uri, "compare_xnli")
    run_id = tracker.open_parent(None, name="compare-xnli", tags={"stage": "compare"})
    results = pd.DataFrame([{"arm": arm, "seed": seed, "language": lang, "value": value + 0.01 * seed}
                            for arm, value in (("baseline", 0.5), ("salt", 0.6)) for seed in (1, 2, 3)
                            for lang in ("en", "de")])
    summary = summarize(results, arms=["baseline", "salt"], languages=["en", "de"], baseline_arm="baseline")
    written = compare_figures(summary, results, tmp_path / "report", tracker, title="xnli: methods compared")
    assert [p.name for p in written] == ["compare_bars.png", "compare_forest.png"]
    artifacts = {a.path for a in MlflowClient(store.uri).list_artifacts(run_id, "figures")}
    assert artifacts == {"figures/compare_bars.png", "figures/compare_forest.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
