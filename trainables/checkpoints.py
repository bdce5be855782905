"""Resumable runs: where a training run keeps its checkpoints, and how it reads the last one back.

A run that loses a worker (a node removed, a process killed) is restarted by Ray Train
(``FailureConfig``) and goes on from its latest checkpoint, so a fault costs the steps since
that checkpoint, not the run. Two jobs use this: the fine-tuning loop (``trainables.loop``,
a checkpoint at its evaluations) and the BTF MLM job (``trainables.task_fitting.worker``, one at each
requested step count).

A *store* is where checkpoints go. ``RayTrainStore`` is the current Ray Train run's own
(``ray.train.report`` with a checkpoint; ``ray.train.get_checkpoint`` gives the latest back,
also to a restarted worker group or to a new run of the same name). ``FolderStore`` keeps the
latest one in a local folder, for running the loop without Ray (tests, notebooks).

A run's randomness after a checkpoint must not depend on what ran before it, or a resumed run
would not be the run that was interrupted: ``step_seed`` gives every (seed, step, stream) its
own well-mixed seed, and the jobs reseed from it at their checkpoint points.
"""

from __future__ import annotations

import contextlib
import errno
import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np

from trainables.disk_space import as_disk_full
from trainables.publish import publish_dir, scratch_dir

Write = Callable[[Path], None]  # fills a checkpoint folder
OUTCOME_FILE = "outcome.json"  # a run that ended: its status and final metrics (``RunOutcome``)


def step_seed(seed: int, step: int, stream: int) -> int:
    """A well-mixed 64-bit seed for one (seed, step, stream): stream 0 masks (BTF), 1 + rank drops out."""
    return int(np.random.SeedSequence([seed, step, stream]).generate_state(1, dtype=np.uint64)[0])


class CheckpointStore(Protocol):
    """Where a run's reports and checkpoints go, and where its latest checkpoint is read back."""

    def latest(self) -> contextlib.AbstractContextManager[Path | None]:
        """The latest checkpoint's folder (None: the run starts fresh), readable inside the context."""

    def report(self, metrics: dict, write: Write | None = None, name: str | None = None) -> None:
        """Report ``metrics``; with ``write``, attach a checkpoint that ``write(folder)`` fills."""


class RayTrainStore:
    """The checkpoints of the Ray Train run this worker belongs to.

    ``ray.train.report`` is collective: every rank reports, only rank 0 writes the checkpoint
    (the ranks of a data-parallel run hold the same weights). ``extra`` is added to every report.

    A full disk fails the write with an ``OSError(ENOSPC)`` that names where (``trainables.disk_space``): the
    local scratch folder when ``torch.save`` failed (it gives no errno), the upload's own error otherwise. The run
    fails at its checkpoint and the sweep's driver stops with one line (``orchestrator.disk_full``); the
    checkpoint before it is the one a resumed run goes on from. ``full_from_step``: the injected fault of
    ``trainables.faults.STORAGE_FULL``, every upload from that step on fails as pyarrow's does on a full disk.
    """

    def __init__(self, rank: int, extra: dict | None = None, full_from_step: int | None = None):
        self.rank, self.extra, self.full_from_step = rank, dict(extra or {}), full_from_step

    @contextlib.contextmanager
    def latest(self) -> Iterator[Path | None]:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as folder:
            yield Path(folder)

    def report(self, metrics: dict, write: Write | None = None, name: str | None = None) -> None:
        import ray.train

        metrics = {**metrics, **self.extra}
        if write is None or self.rank != 0:
            ray.train.report(metrics, checkpoint=None, checkpoint_dir_name=name)
            return
        folder = Path(tempfile.mkdtemp(prefix="xlt-checkpoint-"))
        try:
            try:
                write(folder)
            except (OSError, RuntimeError) as error:
                full = as_disk_full(error, folder)
                if full is None:
                    raise
                raise full from error
            if self.full_from_step is not None and int(metrics.get("step", 0)) >= self.full_from_step:
                raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(folder)),
                             checkpoint_dir_name=name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


class FolderStore:
    """The latest checkpoint in ``root/latest`` (replaced atomically); reports go to ``on_report``."""

    def __init__(self, root: str | Path, on_report: Callable[[dict], None] | None = None):
        self.root = Path(root)
        self.on_report = on_report or (lambda metrics: None)

    @property
    def folder(self) -> Path:
        return self.root / "latest"

    @contextlib.contextmanager
    def latest(self) -> Iterator[Path | None]:
        yield self.folder if self.folder.is_dir() else None

    def report(self, metrics: dict, write: Write | None = None, name: str | None = None) -> None:
        if write is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            with scratch_dir(self.folder) as scratch:
                scratch.mkdir()
                write(scratch)
                publish_dir(scratch, self.folder, stale=lambda latest: True)  # the previous one is moved aside
        self.on_report(dict(metrics))


class ReportOnly:
    """No checkpoints: reports go to ``report`` (a run that cannot resume, e.g. a benchmark)."""

    def __init__(self, report: Callable[[dict], None]):
        self._report = report

    @contextlib.contextmanager
    def latest(self) -> Iterator[Path | None]:
        yield None

    def report(self, metrics: dict, write: Write | None = None, name: str | None = None) -> None:
        self._report(dict(metrics))


def write_outcome(folder: Path, status: str, metrics: dict, reason: str = "") -> None:
    (folder / OUTCOME_FILE).write_text(json.dumps({"status": status, "metrics": metrics, "reason": reason},
                                                  default=float))


def read_outcome(folder: Path | None) -> dict | None:
    """``{"status": "finished" | "failed", "metrics": ..., "reason": ...}`` when the checkpoint ends a run."""
    if folder is None or not (folder / OUTCOME_FILE).is_file():
        return None
    return json.loads((folder / OUTCOME_FILE).read_text())
