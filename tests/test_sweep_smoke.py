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
from mlflow.tracking import MlflowClient

from trainables.tasks import get_task

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.sweep", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def runs_of(workdir: Path, experiment: str):
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("stage") == "sweep"]
    children = [r for r in runs if r.data.tags.get("stage") in ("search", "confirm")]
    return client, parents, children


def _interrupt_after_first_confirm_trial(args: tuple[str, ...], workdir: Path) -> tuple[list, list]:
    """Start a sweep, Ctrl-C it once a confirm trial has finished; the finished runs' (id, end time)."""
    proc = subprocess.Popen(sweep_command(*args), cwd=workdir, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    confirm_done: list[tuple[str, int]] = []
    deadline = time.monotonic() + 500
    while time.monotonic() < deadline and proc.poll() is None and not confirm_done:
        time.sleep(2)
        if not (workdir / "mlflow.db").exists():
            continue
        try:
            _, _, children = runs_of(workdir, args[0])
        except Exception:  # the store is being created
            continue
        confirm_done = [(c.info.run_id, c.info.end_time) for c in children
                        if c.data.tags["stage"] == "confirm" and c.info.status == "FINISHED"]
    assert confirm_done, "no confirm trial finished in time"
    search_done = [(c.info.run_id, c.info.end_time) for c in children if c.data.tags["stage"] == "search"]
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 130, output[-3000:]
    assert "--resume" in output
    return search_done, confirm_done


def test_smoke_sweep_interrupted_and_resumed_end_to_end(tmp_path):
    """The README's main job (the whole smoke profile: search, then every arm x 3 seeds), Ctrl-C'd once
    its first confirm trials end (three waves of two, so trials are left), then ``--resume``: the
    search is not rerun, no finished trial reruns, and what a researcher opens is complete."""
    args = ("baseline_xnli", "--profile", "smoke")
    search_done, confirm_done = _interrupt_after_first_confirm_trial(args, tmp_path)
    assert len(search_done) == 2

    started = time.monotonic()
    proc = subprocess.run(sweep_command(*args, "--resume"), cwd=tmp_path, env=env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"the resumed sweep took {time.monotonic() - started:.0f} s")
    assert "[search]" not in proc.stdout  # the finished stage is not run again
    assert "baseline_xnli: test accuracy per language" in proc.stdout and "baseline_tuned" in proc.stdout
    assert len(list((tmp_path / "sweeps" / "baseline_xnli").glob("*/sweep.json"))) == 1

    task = get_task("xnli")
    client, parents, children = runs_of(tmp_path, "baseline_xnli")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    stages = Counter(c.data.tags["stage"] for c in children)
    assert stages == {"search": 2, "confirm": 6}

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
    assert {"results.md", "results.csv", "results.html", "ttest.csv", "best_config.json"} <= artifacts
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

    # Nothing that had finished ran again: same runs, same end times.
    by_id = {c.info.run_id: c for c in children}
    for run_id, end_time in search_done + confirm_done:
        assert by_id[run_id].info.end_time == end_time
