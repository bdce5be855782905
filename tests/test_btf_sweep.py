"""BTF + self-training through the real CLI, Ray Train/Tune/Data, Optuna and MLflow (no mocks):
both experiments' smoke sweeps end to end, and the BTF model reused from the cache by a second sweep."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tests.smoke_cache import seed_smoke_cache
from tests.test_sweep_smoke import env, runs_of, sweep_command
from trainables.tasks import get_task

pytestmark = pytest.mark.slow
ARMS = ("baseline", "btf", "self_training", "btf_self_training", "btf_self_training_voters")
SEARCHED = {"learning_rate", "target_precision", "hard_weight", "rounds", "mlm_steps"}


# Between them the two sweeps run the main arms (the table of each has the arms it ran). MARC runs one
# search trial, BTF alone and BTF + self-training; PAN-X (40 test languages per trial) no search (its
# tuned arms run the defaults) and the voters, which add the most for a token task: per-word agreement.
# Self-training without BTF is the same recipe with the BTF switch off: that switch is tested in-process
# (test_self_training) and the arm's resolution without Ray (test_experiments). MARC's sweep is then
# followed by a second one that finds the BTF models in the cache.
@pytest.mark.timeout(2400)  # MARC's sweep and the second one (one confirm run); the suite's 900 s is for one sweep
@pytest.mark.parametrize("experiment, samples, arms", [("btf_marc", 1, ("baseline", "btf", "btf_self_training")),
                                                       ("btf_panx", 0, ("baseline", "btf_self_training_voters"))])
def test_btf_sweep_compares_every_arm_and_reuses_the_cached_btf_model(tmp_path, experiment, samples, arms):
    task = get_task(experiment.split("_")[1])
    metric = task.metric
    args = (experiment, "--profile", "smoke", "--seeds", "1,2", "--num-samples", str(samples), "--set", "num_train_epochs=1",
            "--set", "rounds=1", "--arms", ",".join(arms))
    seed_smoke_cache(tmp_path, *args)
    proc = subprocess.run(sweep_command(*args), cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=1500)  # a hang's bound: ~800 s measured beside another sweep
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    label = {"f1": "F1", "macro_f1": "macro-F1"}.get(task.reported_metric, "accuracy")  # MARC: macro-F1
    assert f"{experiment}: test {label} per language" in proc.stdout
    assert "rows loaded" in proc.stdout and "train_en" in proc.stdout  # the data accounting, printed once
    assert "[btf] MLM on" in proc.stdout and "to run" in proc.stdout

    client, parents, children = runs_of(tmp_path, experiment)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.tags["augment.cache"] == "miss"
    assert parent.data.params["btf.languages"] == "en,de,fr"
    assert parent.data.params["btf.steps"] == ("20,40" if samples else "20")  # no search: the arms' own 20 only
    best = {k[len("best."):]: v for k, v in parent.data.params.items() if k.startswith("best.")}
    if samples:
        assert set(best) == SEARCHED - {"rounds"}  # rounds is fixed by --set, so not searched
    else:  # no search: the tuned arms run the profile's values
        assert not best
        best = {"mlm_steps": "20", "learning_rate": "0.001", "target_precision": "0.9"}
    confirm = [c for c in children if c.data.tags["stage"] == "confirm"]
    assert Counter((c.data.tags["arm"], c.data.tags["seed"]) for c in confirm) == {
        (arm, seed): 1 for arm in arms for seed in ("1", "2")}
    for run in confirm:
        arm, params, metrics = run.data.tags["arm"], run.data.params, run.data.metrics
        assert run.info.status == "FINISHED", arm
        assert {f"test_{m}_{lang}" for m in (metric, *task.extra_metrics) for lang in task.languages} <= set(metrics)
        if arm == "baseline":
            assert params["method"] == "baseline" and not any(k.startswith("st_") for k in metrics)
            continue
        assert int(params["method.mlm_steps"]) == int(best["mlm_steps"])
        assert float(params["learning_rate"]) == pytest.approx(float(best["learning_rate"]))
        if arm == "btf":
            assert params["method"] == "btf" and not any(k.startswith("st_") for k in metrics)
            continue
        assert params["method"] == "self_training"
        assert params.get("method.btf", "True") == str(arm != "self_training")  # logged when set
        assert float(params["method.target_precision"]) == pytest.approx(float(best["target_precision"]))
        # The rounds' bookkeeping: threshold from English dev, the share of target words/rows kept.
        assert {"teacher_dev_" + metric, f"teacher_test_{metric}_avg", "st_r1_dev_coverage", "st_r1_kept",
                "st_r1_kept_de", "st_r1_kept_fr", "st_r1_agreed"} <= set(metrics), arm
        assert metrics["st_pool_rows"] == 1200  # 600 unlabelled rows of de and of fr
        assert metrics["st_pool_seed"] == int(run.data.tags["seed"])  # the pool is drawn with the trial's seed
        assert 0 <= metrics["st_r1_kept"] <= metrics["st_r1_agreed"] + 1e-9 <= 1 + 1e-9
        if arm == "btf_self_training_voters":
            assert params["method.voting"] == "True" and params["method.voters"] == "2"
        else:
            assert metrics["st_r1_agreed"] == 1.0  # one teacher always agrees with itself

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.md", "results.csv", "ttest.csv", "data_accounting.csv"} <= artifacts
    assert int(parent.data.params["data.kept_rows"]) == int(parent.data.params["data.loaded_rows"]) > 0
    assert ("best_config.json" in artifacts) == bool(samples)
    ttest = pd.read_csv(Path(client.download_artifacts(parent.info.run_id, "ttest.csv", str(tmp_path))))
    assert set(ttest.arm) == set(arms) - {"baseline"} and set(ttest.baseline) == {"baseline"}

    if experiment != "btf_marc":
        return
    # A second sweep in the same storage trains no MLM: the BTF checkpoints come from the cache. It confirms the btf
    # arm (one seed): a sweep whose arms never start from the task-fitted encoder does not run the BTF step at all.
    again = subprocess.run(sweep_command(experiment, "--profile", "smoke", "--seeds", "1", "--stages", "confirm",
                                         "--arms", "btf", "--set", "num_train_epochs=1"),
                           cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "cached:" in again.stdout and "[btf] cache hit" in again.stdout
    _, parents, _ = runs_of(tmp_path, experiment)
    second = next(p for p in parents if p.info.run_id != parent.info.run_id)
    assert second.data.tags["augment.cache"] == "hit"
    assert second.data.params["augment.cache_key"] == parent.data.params["augment.cache_key"]
