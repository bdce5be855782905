"""Tracking outages, the fast parts (issue 20, item 1): a server that does not answer costs one line and the
writes, never the sweep; what it kept from MLflow is written from Tune's own records, once. Real MLflow
clients (a port nobody serves, a SQLite store) and a real Tune experiment; the whole sweeps against a real
server that is killed are in tests/test_tracking_outage_sweep.py."""

from __future__ import annotations

import socket

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from orchestrator.experiments import get_experiment
from orchestrator.plan import TrialResolver
from orchestrator.tracking import PARENT_TAG, NestedRunCallback, SweepTracker
from orchestrator.tracking_outage import TrackingOutage
from orchestrator.tracking_sync import resume_command, sync_trial
from orchestrator.tune_records import TrialRecord
from trainables.config import TrainConfig


def closed_port_uri() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once the socket is closed


def test_an_unreachable_server_costs_one_line_and_the_writes_not_the_caller(monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own retries, spent at once
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    uri = closed_port_uri()
    outage, client = TrackingOutage(uri), MlflowClient(uri)
    outage.resume_command = "python -m orchestrator.sweep baseline_xnli --resume 20261203-120000"
    assert outage.call(client.create_experiment, "x") is None  # MLflow raised; the server does not answer
    assert outage.down and outage.dropped == 1
    calls = []
    assert outage.call(calls.append, 1) is None  # while down, a write is not even tried (no retries to wait out)
    assert calls == [] and outage.dropped == 2
    assert not outage.check()  # asked now: still down
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"tracking: MLflow at {uri} unreachable since ")
    assert lines[0].endswith("trials keep training and their results are kept in Tune's records; when it is back, "
                             "run `python -m orchestrator.sweep baseline_xnli --resume 20261203-120000` to write "
                             "them to MLflow")


def test_a_local_store_has_no_outage_its_errors_are_raised(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(MlflowException):
        TrackingOutage(uri).call(MlflowClient(uri).get_run, "no-such-run")


def test_the_resume_command_repeats_the_sweeps_flags():
    assert resume_command(["baseline_xnli", "--profile", "smoke", "--seeds", "1"], "20261203-1") == \
        "python -m orchestrator.sweep baseline_xnli --profile smoke --seeds 1 --resume 20261203-1"
    assert resume_command(["baseline_xnli", "--resume", "--seeds", "1,2"], "s") == \
        "python -m orchestrator.sweep baseline_xnli --seeds 1,2 --resume s"
    assert resume_command(["baseline_xnli", "--resume", "old", "--arms", "baseline"], "s").endswith(
        "baseline_xnli --arms baseline --resume s")


def tune_records() -> dict[int, TrialRecord]:
    """Three confirm trials as Tune records them (``tune_records.read_experiment`` reads a real experiment's, in
    tests/test_tracking_outage_sweep.py): seeds 1 and 2 finished, seed 3 failed after its evaluations."""
    records = {}
    for seed in (1, 2, 3):
        rows = [{"step": step, "dev_acc": 0.5 + step / 100, "train_node": "node-a", "timestamp": 1_800_000_000 + step,
                 "training_iteration": step // 10} for step in (10, 20, 30)]
        if seed != 3:
            rows.append({"step": 30, "test_acc_en": 0.7, "test_acc_avg": 0.6, "time_total_s": 36.0,
                         "timestamp": 1_800_000_040})
        records[seed] = TrialRecord(trial_id=f"t{seed}", config={"pair": {"arm": "baseline", "seed": seed}},
                                    status="TERMINATED" if seed != 3 else "ERROR", last_result=rows[-1], rows=rows)
    return records


def test_the_sync_writes_what_mlflow_misses_and_a_second_sync_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the store's default artifact root is relative
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "baseline_xnli")
    tracker.open_parent(None, name="sweep", tags={"stage": "sweep"})
    experiment = get_experiment("baseline_xnli")
    resolver = TrialResolver(base=TrainConfig(task="xnli").to_dict(), arms={a.name: a for a in experiment.arms},
                             searched_arm="baseline_tuned")
    callback = NestedRunCallback(tracker.uri, tracker.experiment_id, tracker.parent_run_id, "confirm", resolver)
    records = tune_records()
    # Before the outage: seed 1's run got its first report; seeds 2 and 3 started while the server was down.
    callback.on_trial_start(0, [], records[1])
    callback.on_trial_result(0, [], records[1], records[1].rows[0])

    first = {seed: sync_trial(NestedRunCallback(tracker.uri, tracker.experiment_id, tracker.parent_run_id, "confirm",
                                                resolver), record) for seed, record in records.items()}
    assert all(first.values())
    runs = tracker.child_runs("confirm")
    assert sorted(int(r.data.tags["seed"]) for r in runs) == [1, 2, 3]  # one run per trial: seed 1 kept its own
    for run in runs:
        record = records[int(run.data.tags["seed"])]
        assert run.info.status == ("FAILED" if record.ended == "failed" else "FINISHED")
        assert run.data.tags["trial_id"] == record.trial_id and run.data.tags["train_node"] == "node-a"
        assert run.data.params["seed"] == run.data.tags["seed"] and run.data.params["stage"] == "confirm"
        history = tracker.client.get_metric_history(run.info.run_id, "dev_acc")
        assert sorted(m.step for m in history) == [10, 20, 30]  # every report once, seed 1's first one too
        if record.ended == "finished":
            assert run.data.metrics["test_acc_en"] == 0.7
        else:
            assert run.data.tags["error"] == "trial failed (no error file)"
    assert tracker.client.get_run(callback.run_id(records[1])).data.params["learning_rate"]

    def snapshot():
        return sorted((r.info.run_id, r.info.status, key, len(tracker.client.get_metric_history(r.info.run_id, key)))
                      for r in tracker.child_runs("confirm") for key in r.data.metrics)

    before = snapshot()
    again = [sync_trial(NestedRunCallback(tracker.uri, tracker.experiment_id, tracker.parent_run_id, "confirm",
                                          resolver), record) for record in records.values()]
    assert again == [0, 0, 0] and snapshot() == before


def test_the_sync_rebuilds_a_search_trials_per_seed_runs_once(tmp_path, monkeypatch):
    """--search-seeds 2: the trial's run holds the mean, each seed's own run its reports (from ``per_seed``)."""
    monkeypatch.chdir(tmp_path)
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "baseline_xnli")
    tracker.open_parent(None, name="sweep", tags={"stage": "sweep"})
    experiment = get_experiment("baseline_xnli")
    resolver = TrialResolver(base=TrainConfig(task="xnli").to_dict(), arms={a.name: a for a in experiment.arms},
                             searched_arm="baseline_tuned", search_seeds=(7, 8))
    rows = [{"step": step, "dev_acc": 0.5 + step / 100, "timestamp": 1_800_000_000 + step, "search_seeds": 2,
             "per_seed": {"7": {"step": step, "dev_acc": 0.49 + step / 100},
                          "8": {"step": step, "dev_acc": 0.51 + step / 100}}} for step in (10, 20)]
    record = TrialRecord(trial_id="s1", config={"learning_rate": 3e-5}, status="TERMINATED", last_result=rows[-1],
                         rows=rows)

    def sync() -> int:
        return sync_trial(NestedRunCallback(tracker.uri, tracker.experiment_id, tracker.parent_run_id, "search",
                                            resolver), record)

    assert sync()
    trial_run = tracker.child_runs("search")[0]
    assert trial_run.info.status == "FINISHED" and trial_run.data.params["seed"] == "7,8"
    seed_runs = tracker.client.search_runs([tracker.experiment_id],
                                           filter_string=f"tags.`{PARENT_TAG}` = '{trial_run.info.run_id}'")
    assert sorted(run.data.tags["seed"] for run in seed_runs) == ["7", "8"]
    for run in seed_runs:
        assert run.info.status == "FINISHED" and run.data.tags["stage"] == "search-seed"
        assert run.data.params["seed"] == run.data.tags["seed"] and run.data.tags["trial_id"] == "s1"
        history = sorted((m.step, m.value) for m in tracker.client.get_metric_history(run.info.run_id, "dev_acc"))
        offset = 0.49 if run.data.tags["seed"] == "7" else 0.51
        assert history == [(10, pytest.approx(offset + 0.1)), (20, pytest.approx(offset + 0.2))]
    assert sync() == 0  # a second sync writes nothing
