"""Is the tracking store there? Checked before any cluster work, waiting for a server that is (re)starting.

A cluster's head runs MLflow under ``scripts/mlflow_server.sh``, which starts it again when it exits; a
sweep started while it comes up waits for its ``/health`` (``XLT_TRACKING_WAIT_S`` seconds, default 120,
one line saying so) instead of failing at once, and refuses in one line when it never answers.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from orchestrator.tracking_store import TrackingUnavailable

WAIT_ENV = "XLT_TRACKING_WAIT_S"
DEFAULT_WAIT_S = 120.0


def check_tracking(uri: str, *, timeout_s: float = 10.0, wait_s: float | None = None) -> None:
    """Before any trial: a tracking server answers ``/health`` (waiting up to ``wait_s`` for one that is starting
    or restarting, with one line saying so), a SQLite store's folder exists; else ``TrackingUnavailable``."""
    if wait_s is None:
        wait_s = float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_S))
    if uri.startswith(("http://", "https://")):
        deadline, said = time.monotonic() + wait_s, False
        while True:
            try:
                urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).read()
                return
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
            if time.monotonic() >= deadline:
                raise TrackingUnavailable(f"MLflow tracking server {uri} did not answer /health in {wait_s:g} s "
                                          f"({reason}); start it (scripts/mlflow_server.sh, or mlflow server --host "
                                          "127.0.0.1) or pass another --tracking-uri")
            if not said:
                print(f"waiting for the MLflow tracking server {uri} to answer /health (up to {wait_s:g} s)",
                      flush=True)
                said = True
            time.sleep(2.0)
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).parent
        if not folder.is_dir():
            raise TrackingUnavailable(f"--tracking-uri {uri}: folder {folder} does not exist")
