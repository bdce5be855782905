"""What a Tune experiment folder keeps of its trials, read without Ray: the evidence ``--resume`` writes to MLflow
when the tracking server was down while they ran (``orchestrator.tracking_sync``).

Tune writes, under ``<sweep_dir>/<stage>/``, its experiment state (``experiment_state-<time>.json``: per trial
its id, configuration, status, last result and error file) and, per trial, every result it reported
(``<trial dir>/result.json``, one JSON object a line). Both are written by the driver as the results come,
independently of MLflow. Ray's own reader (``ExperimentAnalysis``) needs a running Ray; this one needs only
the files, so the sync can be tested on a real Tune folder without a cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENDED = {"TERMINATED": "finished", "ERROR": "failed"}  # Tune's statuses of a trial that will not run again


@dataclass
class TrialRecord:
    """One trial as Tune recorded it; quacks like Tune's ``Trial`` where the MLflow callback reads one."""

    trial_id: str
    config: dict[str, Any]
    status: str
    last_result: dict[str, Any] = field(default_factory=dict)
    error_file: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # every reported result, in order

    @property
    def ended(self) -> str:
        """"finished", "failed", or "" (still pending or running when the experiment stopped)."""
        return ENDED.get(self.status, "")


def read_experiment(path: Path) -> list[TrialRecord]:
    """The trials of the Tune experiment at ``path`` (its newest state file); none when it never started."""
    states = sorted(Path(path).glob("experiment_state-*.json"))
    if not states:
        return []
    records = []
    for info_json, meta_json in json.loads(states[-1].read_text())["trial_data"]:
        info, meta = json.loads(info_json), json.loads(meta_json)
        trial_dir = Path(path) / info["relative_logdir"]
        results = trial_dir / "result.json"
        rows = ([json.loads(line) for line in results.read_text().splitlines() if line.strip()]
                if results.is_file() else [])
        error = meta.get("error_filename")
        records.append(TrialRecord(trial_id=info["trial_id"], config=info["config"], status=info["status"],
                                   last_result=meta.get("last_result") or (rows[-1] if rows else {}),
                                   error_file=str(trial_dir / error) if error else None, rows=rows))
    return records
