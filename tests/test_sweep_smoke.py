"""The smoke sweep through the real CLI, with real Ray, Optuna and MLflow (no mocks).

Each test runs ``python -m orchestrator.sweep`` in a subprocess in an empty directory and then
reads what a researcher would open: ``./mlflow.db`` and the parent run's artifacts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestrator.bootstrap import bootstrap_tests
from orchestrator.predictions import confirm_predictions
from orchestrator.tracking import SweepTracker, open_client
from tests.smoke_cache import seed_smoke_cache
from trainables.tasks import get_task

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.sweep", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def runs_of(workdir: Path, experiment: str, stages: tuple[str, ...] = ("search", "confirm")):
    client = open_client(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("stage") == "sweep"]
    children = [r for r in runs if r.data.tags.get("stage") in stages]
    return client, parents, children


# Lines every run printed before issue 22 (orchestrator.quiet): Ray's raylet warning about its worker processes,
# Ray's token-auth notice and MLflow's table creation. A default run prints none of them.
NOISE = ("maximum expected startup concurrency", "Token authentication is enabled for this Ray cluster",
         "Creating initial MLflow database tables", "Updating database tables")


def _interrupt_after_first_confirm_trial(args: tuple[str, ...], workdir: Path) -> tuple[list, list, str]:
    """Start a sweep, Ctrl-C it once a confirm trial has finished; the finished runs' (id, end time) and what
    the sweep printed (stdout and stderr)."""
    proc = subprocess.Popen(sweep_command(*args), cwd=workdir, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    confirm_done: list[tuple[str, int]] = []
    deadline = time.monotonic() + 500
    while time.monotonic() < deadline and proc.poll() is None and not confirm_done:
        time.sleep(0.5)  # the next wave of confirm trials may be the last one
        # Read the store only once the sweep has created it (its sweep.json follows its MLflow parent run).
        if not list((workdir / "sweeps" / args[0]).glob("*/sweep.json")):
            continue
        try:
            _, _, children = runs_of(workdir, args[0])
        except Exception:  # the store is being created
            continue
        confirm_done = [(c.info.run_id, c.info.end_time) for c in children
                        if c.data.tags["stage"] == "confirm" and c.info.status == "FINISHED"]
    if not confirm_done:
        proc.kill()
        output, _ = proc.communicate(timeout=60)
        raise AssertionError(f"no confirm trial finished in time (exit {proc.returncode}); the sweep printed:\n"
                             f"{output[-6000:]}")
    search_done = [(c.info.run_id, c.info.end_time) for c in children if c.data.tags["stage"] == "search"]
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 130, output[-3000:]
    assert "--resume" in output
    return search_done, confirm_done, output


def test_smoke_sweep_interrupted_and_resumed_end_to_end(tmp_path):
    """The README's main job (the whole smoke profile: search, then every arm x 3 seeds), Ctrl-C'd once
    its first confirm trials end (waves of two: three, or two when baseline_tuned is the baseline again and
    reuses its runs; either way a trial is left), then ``--resume``: the
    search is not rerun, no finished trial reruns, and what a researcher opens is complete."""
    args = ("baseline_xnli", "--profile", "smoke")
    seed_smoke_cache(tmp_path, *args)  # the toy method's sweep (tests/test_method_contract.py) builds its own
    search_done, confirm_done, first_output = _interrupt_after_first_confirm_trial(args, tmp_path)
    assert len(search_done) == 2

    started = time.monotonic()
    proc = subprocess.run(sweep_command(*args, "--resume"), cwd=tmp_path, env=env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"the resumed sweep took {time.monotonic() - started:.0f} s")
    assert "[search]" not in proc.stdout  # the finished stage is not run again
    # No noise (the first run created the MLflow store and started Ray; the resumed one started Ray again).
    for line in NOISE:
        assert line not in first_output and line not in proc.stdout + proc.stderr, line
    assert "baseline_xnli: test accuracy per language" in proc.stdout and "baseline_tuned" in proc.stdout
    # The legend: the marks in both directions, the correction, the search protocol, the published numbers.
    assert "† significantly better, ▼ significantly worse than baseline: paired t-test over seeds, p adjusted " \
           "(Holm, over each arm's 17 columns) <= 0.05" in proc.stdout
    # the tuned arm gets a verdict; when the search kept the paper setting it is the baseline again, and says so
    assert ("vs baseline (Holm): baseline_tuned better on " in proc.stdout
            or "vs baseline (Holm): baseline_tuned equals baseline on every paired seed (no test)" in proc.stdout)
    assert "baseline: baseline is the paper setting; baseline_tuned is the best setting of the search" in proc.stdout
    assert "search: 2 Optuna TPE trials (sampler seed 0) selected on en-dev, each trained on seed 9001, which is " \
           "not a confirm seed" in proc.stdout
    assert "baseline_tuned - baseline: avg " in proc.stdout  # the averages' differences with their intervals
    assert "### Published results" in proc.stdout
    assert "this sweep ran the smoke model" in proc.stdout or "for orientation only" in proc.stdout
    assert len(list((tmp_path / "sweeps" / "baseline_xnli").glob("*/sweep.json"))) == 1

    task = get_task("xnli")
    client, parents, children = runs_of(tmp_path, "baseline_xnli")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    stages = Counter(c.data.tags["stage"] for c in children)
    assert stages == {"search": 2, "confirm": 6}

    # The search trains on its own seed, which is not a confirm seed.
    assert {c.data.params["seed"] for c in children if c.data.tags["stage"] == "search"} == {"9001"}

    # Confirm runs: every arm on the same seeds, each once.
    confirm = [c for c in children if c.data.tags["stage"] == "confirm"]
    pairs = sorted((c.data.tags["arm"], int(c.data.tags["seed"])) for c in confirm)
    assert pairs == [(arm, seed) for arm in ("baseline", "baseline_tuned") for seed in (1, 2, 3)]
    for child in children:
        tags, params, metrics = child.data.tags, child.data.params, child.data.metrics
        assert child.info.status == "FINISHED"
        assert {"stage", "arm", "seed", "trial_id", "train_node"} <= set(tags)
        assert params["seed"] == tags["seed"] and params["method"] == "baseline"
        assert {"learning_rate", "warmup_ratio", "num_train_epochs", "per_device_batch_size", "model"} <= set(params)
        expected = {"dev_acc", "test_acc_avg", "test_acc_avg_en"} | {f"test_acc_{lang}" for lang in task.languages}
        assert expected <= set(metrics), expected - set(metrics)
        targets = [metrics[f"test_acc_{lang}"] for lang in task.target_languages]
        assert metrics["test_acc_avg"] == pytest.approx(np.mean(targets))
        curve = client.get_metric_history(child.info.run_id, "train_loss")
        assert len(curve) >= 3 and sorted(m.step for m in curve) == [m.step for m in sorted(curve, key=lambda m: m.step)]

    # The baseline arm runs the paper defaults; the tuned arm the search's best learning rate.
    best_lr = float(parent.data.params["best.learning_rate"])
    for child in confirm:
        lr = float(child.data.params["learning_rate"])
        assert lr == pytest.approx(1e-3 if child.data.tags["arm"] == "baseline" else best_lr)

    # The parent's artifacts, and the table's numbers recomputed from the child runs.
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.md", "results.csv", "results.html", "ttest.csv", "best_config.json", "results_table.json",
            "figures"} <= artifacts
    # The figures as PNGs on the parent: the table's bars and differences and the confirm runs' learning curves
    # (the resumed run's report), the search's history (the interrupted run's, after its search stage).
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert {f"figures/{name}.png" for name in ("results_bars", "results_forest", "learning_curves",
                                               "search_optimization_history")} <= figures, figures
    sweep_dir = next((tmp_path / "sweeps" / "baseline_xnli").glob("*/sweep.json")).parent
    assert (sweep_dir / "results" / "figures" / "results_bars.png").is_file()
    local = Path(client.download_artifacts(parent.info.run_id, "results.csv", str(tmp_path)))
    table = pd.read_csv(local)
    for arm in ("baseline", "baseline_tuned"):
        values = [c.data.metrics["test_acc_avg"] for c in confirm if c.data.tags["arm"] == arm]
        row = table[(table.arm == arm) & (table.column == "avg")].iloc[0]
        assert row["mean"] == pytest.approx(np.mean(values)) and row["n"] == 3
        assert row["std"] == pytest.approx(np.std(values, ddof=1))
    ttest = pd.read_csv(Path(client.download_artifacts(parent.info.run_id, "ttest.csv", str(tmp_path))))
    assert set(ttest.arm) == {"baseline_tuned"} and set(ttest.baseline) == {"baseline"}
    assert len(ttest) == len(task.languages) + 2
    # Signed differences with their intervals, raw and Holm-adjusted p, the direction, the detectable difference,
    # and the paired bootstrap over test examples seed by seed (on by default).
    for column in ("mean_diff", "ci_low", "ci_high", "p_value", "p_adjusted", "direction", "mdd",
                   "bootstrap_p_seed1", "bootstrap_p_seed2", "bootstrap_p_seed3", "bootstrap_better_seeds"):
        assert column in ttest.columns, column
    assert set(ttest.correction) == {"holm"}
    tested = ttest.dropna(subset=["p_value"])
    assert (tested.p_adjusted >= tested.p_value - 1e-12).all()
    assert ((tested.ci_low <= tested.mean_diff) & (tested.mean_diff <= tested.ci_high)).all()
    assert set(ttest.direction) <= {"better", "worse", "none"}
    metrics = parent.data.metrics
    avg = table[(table.arm == "baseline_tuned") & (table.column == "avg")].iloc[0]
    assert metrics["baseline_tuned.test_acc_avg.mean"] == pytest.approx(avg["mean"])
    assert {"baseline_tuned.test_acc_avg.diff", "baseline.test_acc_de.mean"} <= set(metrics)
    # the interval and adjusted p exist where the column was tested (an arm equal to the baseline has none)
    tested_avg = bool(ttest[ttest.column == "avg"].p_value.notna().iloc[0])
    for stat in ("ci_low", "ci_high", "p_adj"):
        assert (f"baseline_tuned.test_acc_avg.{stat}" in metrics) == tested_avg
    assert "baseline.repro_gap_avg" not in metrics  # the smoke model is no reproduction of the paper's
    # What the sweep cost (orchestrator.cost_report), in CPU-hours on this CPU-only machine: the trials that trained
    # summed per stage (baseline_tuned's copies of baseline's runs not counted), the total printed under the table.
    cost_stages = {k: v for k, v in metrics.items() if k.startswith("cost.stage.")}
    assert set(cost_stages) == {"cost.stage.search.cpu_hours", "cost.stage.confirm.cpu_hours"}
    assert all(hours > 0 for hours in cost_stages.values())
    assert metrics["cost.total.cpu_hours"] == pytest.approx(sum(cost_stages.values()))
    trained = [c for c in children if "reused_from" not in c.data.tags]
    assert metrics["cost.total.cpu_hours"] == pytest.approx(sum(c.data.metrics.get("cpu_hours", 0.0) for c in trained))
    assert "CPU-hours per arm: " in proc.stdout
    # What the trials needed (orchestrator.memory_report): every trained run its workers' peak host memory (a Ray
    # worker holding torch and the data: hundreds of MiB at least), the parent the largest per arm, printed too.
    assert all(c.data.metrics["peak_host_memory_gb"] > 0.1 for c in trained)
    for arm in ("baseline", "baseline_tuned"):
        assert metrics[f"memory.arm.{arm}.host_gb"] == pytest.approx(max(
            c.data.metrics["peak_host_memory_gb"] for c in trained if c.data.tags["arm"] == arm))
    assert "Peak memory per arm (largest trial, GiB): baseline host " in proc.stdout

    # Every confirm run carries its test predictions, which rescore to its metrics and feed the paired bootstrap.
    for child in confirm:
        assert [a.path for a in client.list_artifacts(child.info.run_id, "predictions")] == \
            ["predictions/predictions.parquet"]
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "baseline_xnli")
    tracker.parent_run_id = parent.info.run_id
    predictions = confirm_predictions(tracker)
    assert set(predictions.groupby(["arm", "seed"], observed=True).size().index) == set(pairs)
    correct = (predictions["prediction"] == predictions["gold"]).groupby(
        [predictions["arm"], predictions["seed"], predictions["language"]], observed=True).mean()
    for child in confirm:
        for lang in task.languages:
            assert correct[(child.data.tags["arm"], int(child.data.tags["seed"]), lang)] == \
                pytest.approx(child.data.metrics[f"test_acc_{lang}"], abs=1e-9)
    tests = bootstrap_tests(predictions, arms=["baseline", "baseline_tuned"], baseline_arm="baseline",
                            languages=list(task.languages), source_language="en", n_resamples=200, seed=0, metric="acc")
    assert len(tests) == 3 * (len(task.languages) + 2) and tests["p_value"].between(0, 1).all()

    # Nothing that had finished ran again: same runs, same end times.
    by_id = {c.info.run_id: c for c in children}
    for run_id, end_time in search_done + confirm_done:
        assert by_id[run_id].info.end_time == end_time
