"""Tracking outages end to end (issue 20, item 1): a one-trial-per-stage smoke sweep against a real ``mlflow
server`` on 127.0.0.1 that is killed once the sweep's first child run exists.

- Back within MLflow's own retries (restarted on the same port and store ~20 s later): the sweep does not
  notice beyond the wait; every child run holds every result Tune recorded, the parent its report, no run twice.
- Down past the retries (set small here) until the sweep ends: the trials train on, one line says so, the sweep
  exits with 3 (``EXIT_TRACKING_DOWN``); with the server back ``--resume`` writes the missing runs, metrics and
  artifacts and the report, and a second ``--resume`` writes nothing.

The fast parts (the one line, the sync's comparisons) are in tests/test_tracking_outage.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.tracking import PARENT_TAG, result_metrics
from orchestrator.tracking_sync import EXIT_TRACKING_DOWN
from orchestrator.tune_records import read_experiment
from tests.smoke_cache import seed_smoke_cache
from tests.test_tracking_server import free_port, wait_healthy

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ARGS = ("baseline_xnli", "--profile", "smoke", "--num-samples", "1", "--seeds", "1", "--arms", "baseline")
REPORT = {"results.md", "results.csv", "results.html", "ttest.csv", "best_config.json", "search_trials.csv"}


class Server:
    """``mlflow server`` on a fixed port and store, in its own process group (killed whole, like an OOM kill)."""

    def __init__(self, store: Path, port: int):
        self.store, self.port, self.url, self.proc = store, port, f"http://127.0.0.1:{port}", None

    def start(self) -> None:
        (self.store / "artifacts").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{self.store / 'mlflow.db'}",
             "--artifacts-destination", str(self.store / "artifacts")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_healthy(self.url, 180)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path):
    running = Server(tmp_path / "store", free_port())
    running.start()
    yield running
    running.kill()


def sweep(workdir: Path, url: str, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestrator.sweep", *ARGS, "--tracking-uri", url, *extra],
                            cwd=workdir, env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
                                              **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def runs(url: str):
    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("baseline_xnli")
    found = client.search_runs([experiment.experiment_id], max_results=1000) if experiment else []
    return client, [r for r in found if r.data.tags.get("stage") == "sweep"], \
        [r for r in found if r.data.tags.get("stage") in ("search", "confirm")]


def kill_once_a_child_run_exists(proc: subprocess.Popen, server: Server) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if runs(server.url)[2]:
                server.kill()
                return
        except Exception:  # the experiment is being created
            pass
        time.sleep(0.5)
    proc.kill()
    raise AssertionError("no child run appeared: " + proc.communicate(timeout=60)[1][-3000:])


def assert_complete(url: str, workdir: Path) -> None:
    """One run per trial, each holding every (metric, step) Tune recorded and its end; the parent's report."""
    client, parents, children = runs(url)
    (parent,) = parents
    assert parent.info.status == "FINISHED"
    assert Counter(c.data.tags["trial_id"] for c in children).most_common(1)[0][1] == 1  # nothing twice
    assert Counter(c.data.tags["stage"] for c in children) == {"search": 1, "confirm": 1}
    (sweep_dir,) = [p.parent for p in (workdir / "sweeps" / "baseline_xnli").glob("*/sweep.json")]
    records = {r.trial_id: r for stage in ("search", "confirm") for r in read_experiment(sweep_dir / stage)}
    assert set(records) == {c.data.tags["trial_id"] for c in children}
    for child in children:
        assert child.data.tags[PARENT_TAG] == parent.info.run_id and child.info.status == "FINISHED"
        record = records[child.data.tags["trial_id"]]
        wanted = {(m.key, m.step) for row in record.rows for m in result_metrics(row, 0)}
        held = {(m.key, m.step) for key in child.data.metrics for m in client.get_metric_history(child.info.run_id, key)}
        assert wanted <= held, sorted(wanted - held)[:10]
        assert "cpu_hours" in child.data.metrics and "learning_rate" in child.data.params  # its end and its start
        if child.data.tags["stage"] == "confirm":
            assert "test_acc_avg" in child.data.metrics
            assert [a.path for a in client.list_artifacts(child.info.run_id, "predictions")] == \
                ["predictions/predictions.parquet"]
    assert REPORT <= {a.path for a in client.list_artifacts(parent.info.run_id)}


def snapshot(url: str) -> list:
    """Every run, its status, each metric's history length and its artifacts: what a sync could add to."""
    client, parents, children = runs(url)
    return sorted((r.info.run_id, r.info.status, tuple(sorted(
        (key, len(client.get_metric_history(r.info.run_id, key))) for key in r.data.metrics)),
        tuple(sorted(a.path for a in client.list_artifacts(r.info.run_id)))) for r in parents + children)


def test_a_server_back_within_the_retries_costs_the_sweep_nothing(server, tmp_path):
    seed_smoke_cache(tmp_path, *ARGS)
    proc = sweep(tmp_path, server.url)
    kill_once_a_child_run_exists(proc, server)
    time.sleep(20)  # down for 20 s (and the restart's own start-up): within MLflow's ~4 min of retries
    server.start()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert "unreachable" not in out + err
    assert_complete(server.url, tmp_path)


def test_a_server_down_past_the_retries_is_written_by_resume_once(server, tmp_path):
    seed_smoke_cache(tmp_path, *ARGS)
    retries = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    proc = sweep(tmp_path, server.url, env=retries)
    kill_once_a_child_run_exists(proc, server)
    out, err = proc.communicate(timeout=600)  # the server stays down until every trial ended
    assert proc.returncode == EXIT_TRACKING_DOWN, out[-3000:] + err[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("tracking: MLflow at")]
    assert len(lines) == 1, out[-3000:]
    assert f"{server.url} unreachable since" in lines[0] and "trials keep training" in lines[0]
    sweep_id = lines[0].rsplit("--resume ", 1)[1].split("`")[0]
    assert f"run `python -m orchestrator.sweep {' '.join(ARGS)} --tracking-uri {server.url} --resume {sweep_id}`" \
        in lines[0]
    assert "[confirm] done  baseline seed 1" in out  # trained on through the outage
    assert "is still unreachable, so its report waits" in err

    server.start()
    resumed = sweep(tmp_path, server.url, "--resume", sweep_id)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:] + err[-3000:]
    assert "tracking: wrote " in out and "baseline_xnli: test accuracy per language" in out
    assert_complete(server.url, tmp_path)

    before = snapshot(server.url)
    again = sweep(tmp_path, server.url, "--resume", sweep_id)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:] + err[-3000:]
    assert f"sweep {sweep_id} is complete and MLflow has all of it: nothing to write" in out
    assert snapshot(server.url) == before
