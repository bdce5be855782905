"""Opening a new SQLite tracking store from several processes at once (a sweep, `mlflow ui`, a script)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]

OPEN_AT = """
import sys, time
from orchestrator.tracking import open_client
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
client = open_client(sys.argv[1])
client.create_experiment(f"opened-by-{sys.argv[3]}")
"""


def test_processes_opening_one_new_store_at_once_all_get_it(tmp_path):
    """MLflow migrates a new SQLite store's schema on first open; processes racing on it must all end up
    with a working store (the loser of the race waits and opens the finished one), none crashes."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    start = time.time() + 12  # after every process has imported mlflow
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT, uri, str(start), str(i)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(3)]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)
    names = {e.name for e in MlflowClient(uri).search_experiments()}
    assert {"opened-by-0", "opened-by-1", "opened-by-2"} <= names
