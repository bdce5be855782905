"""Opening the tracking store: its URI made absolute, a new SQLite store's schema created by one process."""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient


class TrackingUnavailable(Exception):
    """The tracking store cannot be used. ``str()`` is one line for the user."""


def resolve_tracking_uri(uri: str | None) -> str:
    """MLflow 3's default (``sqlite:///mlflow.db`` here) made absolute, so every process agrees."""
    if not uri:
        return f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{Path(uri[len('sqlite:///'):]).expanduser().resolve()}"
    if "://" not in uri:  # a plain directory: MLflow's file store
        return str(Path(uri).expanduser().resolve())
    return uri


def store_init_lock_path(uri: str) -> Path:
    """The lock file MLflow itself takes around a SQLite store's schema creation.

    MLflow's own job and workspace stores create their tables under an exclusive ``flock`` on
    ``<tmp>/db_init_lock-<md5 of the engine URL>``; taking the same file makes our openers queue behind
    MLflow's (and each other) instead of racing them."""
    from sqlalchemy.engine import make_url

    digest = hashlib.md5(str(make_url(uri)).encode("utf-8"), usedforsecurity=False).hexdigest()
    return Path(tempfile.gettempdir()) / f"db_init_lock-{digest}"


def open_client(uri: str) -> MlflowClient:
    """An MLflow client whose store exists, its schema created by exactly one process.

    Opening a new ``sqlite:///`` store runs MLflow's schema migrations, and they are not safe to run
    twice at once: two processes opening one new store (a sweep starting while a script or a test reads
    ``mlflow.db`` as it appears) both migrate, and the loser fails ("table _alembic_tmp_params already
    exists", "No such index") and leaves a half-migrated store behind, so retrying cannot mend it.
    The store is therefore opened under MLflow's own initialisation lock (``store_init_lock_path``): the
    first opener migrates, the others wait and find the tables there. Other URIs open directly.
    """
    if not uri.startswith("sqlite:"):
        return MlflowClient(uri)
    with open(store_init_lock_path(uri), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            client = MlflowClient(uri)
            client.search_experiments(max_results=1)  # builds the store: creates and migrates its schema
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return client
