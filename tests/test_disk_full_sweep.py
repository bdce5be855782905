"""A sweep whose storage fills up mid-sweep stops with one line and a distinct exit code, and ``--resume`` (once
space is free) finishes it without retraining what had finished. Real Ray, Tune, Optuna and MLflow; the full
disk is the fault hook ``XLT_SWEEP_FAULT_ENOSPC`` (``trainables.faults``): seed 2's checkpoint uploads fail from
step 100 on, in every attempt, as pyarrow's copy fails on a full disk. The writers' real errors on a real full
disk, and the line itself: tests/test_disk_full.py.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.disk_full import EXIT_STORAGE_FULL
from tests.smoke_cache import seed_smoke_cache
from tests.test_sweep_smoke import env, runs_of, sweep_command
from trainables import faults

pytestmark = pytest.mark.slow

# One arm, two seeds, one trial at a time: seed 1 finishes before seed 2 (which checkpoints at steps 25, 50, 75)
# finds the storage full at its step-100 checkpoint.
ARGS = ("baseline_xnli", "--profile", "smoke", "--arms", "baseline", "--seeds", "1,2", "--max-concurrent-trials", "1")


def test_storage_that_fills_up_mid_sweep_stops_in_one_line_and_resumes(tmp_path):
    seed_smoke_cache(tmp_path, *ARGS)
    started = time.monotonic()
    full = subprocess.run(sweep_command(*ARGS), cwd=tmp_path, env={**env(), faults.STORAGE_FULL: "2:100"},
                          capture_output=True, text=True, timeout=600)
    output = full.stdout + full.stderr
    print(f"the sweep that filled its storage stopped after {time.monotonic() - started:.0f} s:\n{output[-2000:]}")
    assert full.returncode == EXIT_STORAGE_FULL, output[-4000:]
    storage = tmp_path / "sweeps" / "baseline_xnli"
    sweep_dir = next(storage.glob("*/sweep.json")).parent
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: storage full: no space left on device writing {storage} ("
                      + errors[0].split(" (", 1)[1]], output[-4000:]
    assert " free there now); free space under " in errors[0]
    assert errors[0].endswith(f"then rerun the same command with --resume {sweep_dir.name}: finished trials are kept")
    assert "Traceback" not in full.stderr.split(errors[0])[1]  # the line is the last word, no trace after it

    # What --resume reads is consistent: the record unfinished, the confirm stage restorable, seed 1 finished.
    state = json.loads((sweep_dir / "sweep.json").read_text())
    assert not state["complete"] and "confirm" not in state["stages_done"]
    assert (sweep_dir / "confirm").is_dir()
    _, parents, children = runs_of(tmp_path, "baseline_xnli", stages=("confirm",))
    before = {int(c.data.tags["seed"]): c for c in children}
    assert before[1].info.status == "FINISHED"
    assert before[2].info.status != "FINISHED" and "error" not in before[2].data.tags  # not failed: it goes on

    started = time.monotonic()
    resumed = subprocess.run(sweep_command(*ARGS, "--resume", sweep_dir.name), cwd=tmp_path, env=env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    print(f"the resumed sweep took {time.monotonic() - started:.0f} s")
    _, parents, children = runs_of(tmp_path, "baseline_xnli", stages=("confirm",))
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    after = {int(c.data.tags["seed"]): c for c in children}
    assert sorted(after) == [1, 2] and len(children) == 2  # the same two runs, none duplicated
    # seed 1 was not trained again: its run is untouched; seed 2 went on from its last checkpoint before the fault
    assert after[1].info.run_id == before[1].info.run_id and after[1].info.end_time == before[1].info.end_time
    assert after[1].data.metrics == before[1].data.metrics
    assert after[2].info.status == "FINISHED" and after[2].data.metrics["resumed_from_step"] == 75
    assert "test_acc_avg" in after[2].data.metrics
    # the parent has its tables
    client, _, _ = runs_of(tmp_path, "baseline_xnli")
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"results.md", "results.csv", "ttest.csv"} <= artifacts, artifacts
    assert "baseline_xnli: test accuracy per language" in resumed.stdout
    assert json.loads((sweep_dir / "sweep.json").read_text())["complete"]
    assert Path(sweep_dir / "results" / "results.md").is_file()
