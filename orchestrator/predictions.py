"""The confirm runs' per-example test predictions, read back from MLflow as one long frame.

MLflow is the record of truth, as for the metrics (``orchestrator.results``): each finished confirm
run carries its predictions as an artifact (``predictions/predictions.parquet``, attached by
``orchestrator.tracking.NestedRunCallback``), and the newest finished run of each (arm, seed) is
the one read, so a resumed sweep reads each pair once. This frame is what the paired bootstrap
(``orchestrator.bootstrap``) resamples.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import pandas as pd

from orchestrator.tracking import PREDICTIONS_ARTIFACT_DIR, SweepTracker
from trainables.predictions import COLUMNS, PREDICTIONS_FILE

KEY_COLUMNS = ["arm", "seed"]
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"  # read by MLflow at each download


def confirm_predictions(tracker: SweepTracker) -> pd.DataFrame:
    """Rows (arm, seed, language, example_id, prediction, gold[, tp, n_pred, n_gold]) of the finished confirm runs.

    Newest finished run per (arm, seed); runs without the artifact (a sweep from before predictions
    were kept) add no rows. ``language`` is categorical; ids and labels keep the file's compact dtypes.
    """
    frames = []
    artifact = f"{PREDICTIONS_ARTIFACT_DIR}/{PREDICTIONS_FILE}"
    with tempfile.TemporaryDirectory(prefix="predictions-") as scratch, quiet_downloads():
        for key, run in tracker.finished_confirm_runs().items():
            listed = {a.path for a in tracker.client.list_artifacts(run.info.run_id, PREDICTIONS_ARTIFACT_DIR)}
            if artifact not in listed:
                continue
            folder = Path(scratch) / run.info.run_id
            folder.mkdir()
            local = tracker.client.download_artifacts(run.info.run_id, artifact, str(folder))
            frame = pd.read_parquet(local)
            frame.insert(0, "seed", key[1])
            frame.insert(0, "arm", key[0])
            frames.append(frame)
    if not frames:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in (*KEY_COLUMNS, *COLUMNS)})
    out = pd.concat(frames, ignore_index=True)
    out["language"] = out["language"].astype("category")
    out["arm"] = out["arm"].astype("category")
    return out


@contextlib.contextmanager
def quiet_downloads() -> Iterator[None]:
    """No MLflow progress bar per run (one download per confirm run would print dozens of them)."""
    previous = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_BAR, None)
        else:
            os.environ[PROGRESS_BAR] = previous
