"""A tracking server that stops answering mid-sweep: the sweep trains on, says so once, and writes later.

MLflow's client retries every HTTP request itself (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, default 7, with
exponential backoff ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` 2 and ``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER``, capped
at 120 s a wait: about 4 minutes in all; ``MLFLOW_HTTP_REQUEST_TIMEOUT`` per attempt, default 120 s), so a
server that restarts within that (``scripts/mlflow_server.sh`` starts it again in seconds) costs a sweep
nothing but the wait. A call that still fails after them raises ``MlflowException``; if the server's
``/health`` does not answer either, that is an outage, not a bad request: the driver's tracking writes are
dropped from then on (each would wait out the retries again, holding up Tune's event loop and with it every
trial's bookkeeping), one line says so, and ``/health`` is asked again at most every ``PROBE_EVERY_S`` until
it answers. What was dropped is in Tune's own records (each trial's ``result.json``, the experiment state)
and the trials' prediction files; ``--resume`` writes it (``orchestrator.tracking_sync``).

One state per tracking URI and process: the sweep's tracker and every stage's callback (Tune pickles and
restores those) share it. A local store (``sqlite:///``, a folder) has no outage: its errors are raised.
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any, Callable

import requests
from mlflow.exceptions import MlflowException

PROBE_EVERY_S = 15.0  # while down, how often a write may ask /health whether the server is back
PROBE_TIMEOUT_S = 3.0
_ERRORS = (MlflowException, requests.exceptions.RequestException, OSError)


class TrackingOutage:
    """Whether ``uri``'s server is down now, since when, and how many writes were dropped since the sweep began."""

    def __init__(self, uri: str):
        self.uri = uri
        self.since: float | None = None  # wall-clock time of the first failure of the current outage
        self.dropped = 0  # writes not done, over every outage of this process
        self.resume_command = ""  # what the user runs once the server is back (the sweep sets it)
        self.said = False
        self._next_probe = 0.0

    @property
    def down(self) -> bool:
        return self.since is not None

    def call(self, write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``write(*args, **kwargs)``, or nothing (``None``) while the server is down or when it fails because
        the server is unreachable. Any other error is raised."""
        if self.down and not self._back():
            self.dropped += 1
            return None
        try:
            return write(*args, **kwargs)
        except _ERRORS:
            if not self.uri.startswith(("http://", "https://")) or answers(self.uri):
                raise  # the server is there: the request itself was wrong
            self._went_down()
            self.dropped += 1
            return None

    def check(self) -> bool:
        """Whether the server is up, asked now rather than at the next probe: a sweep's end asks once."""
        self._next_probe = 0.0
        return not self.down or self._back()

    def line(self) -> str:
        """The one line an outage prints."""
        since = time.strftime("%H:%M", time.localtime(self.since or time.time()))
        then = f"run `{self.resume_command}`" if self.resume_command else "resume the sweep (--resume)"
        return (f"tracking: MLflow at {self.uri} unreachable since {since}; trials keep training and their results "
                f"are kept in Tune's records; when it is back, {then} to write them to MLflow")

    def _went_down(self) -> None:
        self.since = time.time()
        self._next_probe = time.monotonic() + PROBE_EVERY_S
        if not self.said:  # once per sweep, however many outages and calls
            print(self.line(), flush=True)
            self.said = True

    def _back(self) -> bool:
        if time.monotonic() < self._next_probe:
            return False
        if answers(self.uri):
            self.since = None
            return True
        self._next_probe = time.monotonic() + PROBE_EVERY_S
        return False


def answers(uri: str) -> bool:
    """The tracking server answers ``/health`` within ``PROBE_TIMEOUT_S``."""
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S).read()
        return True
    except OSError:
        return False


_OUTAGES: dict[str, TrackingOutage] = {}


def outage_of(uri: str) -> TrackingOutage:
    """This process's outage state of ``uri`` (made on first use)."""
    if uri not in _OUTAGES:
        _OUTAGES[uri] = TrackingOutage(uri)
    return _OUTAGES[uri]
