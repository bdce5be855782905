"""A disk that fills up mid-sweep: stop the sweep resumably and say in one line which path, how much is free,
and what to do.

Storage can fill while a sweep runs (checkpoints, predictions, Tune's state, the caches); every writer fails
its own way (``trainables.disk_space`` tells them apart). Two routes lead here:

* a trial's Ray Train run fails on a full disk (a checkpoint upload, its predictions file):
  ``trainables.disk_space.EndRunOnFullDisk`` (a Ray Train callback in the run's controller) ends the run at
  that first failure, as a controller error, which Ray Train does not retry. Its restarts (``max_failures``)
  would each train from the last checkpoint to the next one and fail on the same disk, so the stop would come
  that many checkpoint intervals late. Then Tune sees the trial fail: ``DiskFullWatch`` (a Tune callback) reads
  the trial's error and stops the stage the way Ctrl-C does (``SIGINT`` to the driver itself: Tune's tested
  graceful stop, which saves the experiment for ``Tuner.restore``), rather than letting the other trials run
  into the same full disk and the stage end with failed trials that ``--resume`` would not run again;
* a write in the driver itself fails (``sweep.json``, Tune's experiment state or a trial's error file, the
  Optuna study, the caches before the sweep opens): the exception reaches ``main``.

Either way ``main`` prints ``line`` and exits with ``EXIT_STORAGE_FULL``. What was finished stays: Ray Train
registers a checkpoint only once it is uploaded, ``sweep.json`` and the caches are published atomically,
SQLite rolls a failed transaction back, and Tune's last saved snapshot is what ``--resume`` restores, as after a
killed driver. The trial that hit the full disk is not marked failed in MLflow (``NestedRunCallback``): it
goes on from its last checkpoint when the sweep is resumed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ray import tune

from trainables.disk_space import disk_full_error, free_bytes, path_in, says_disk_full

EXIT_STORAGE_FULL = 74  # sysexits' EX_IOERR; 2 is bad input, 130 an interrupt


class StorageFull(OSError):
    """A stage stopped because a trial's run found its disk full; ``filename``: what it could not write."""

    def __init__(self, path: str | None):
        super().__init__(errno.ENOSPC, "No space left on device", path)


@dataclass
class ResumeHint:
    """What the line tells the user: the sweep's ``--storage``, and its id once it has one (then ``--resume``)."""

    storage: Path
    sweep_id: str = ""


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def line(path: str | None, hint: ResumeHint) -> str:
    """The one line: which path is full, how much its disk has free now, what to do."""
    storage = Path(hint.storage).absolute()
    where = Path(path) if path else storage
    free = free_bytes(where)
    free_text = f"{_size(free)} free there now" if free is not None else "its free space unknown here"
    on_storage = where == storage or storage in where.parents
    todo = (f"free space under {storage} or pass --storage on a larger disk (moving {storage} there)" if on_storage
            else f"free space on the disk of {where}")
    then = (f"then rerun the same command with --resume {hint.sweep_id}: finished trials are kept"
            if hint.sweep_id else "then rerun the same command")
    return f"storage full: no space left on device writing {where} ({free_text}); {todo}, {then}"


def line_for(exc: BaseException, hint: ResumeHint) -> str | None:
    """``line`` when ``exc`` is a full disk (anywhere in its chain, or in its text), else None."""
    found = disk_full_error(exc)
    return None if found is None else line(found.filename, hint)


@contextlib.contextmanager
def exit_on_full_disk(hint: ResumeHint) -> Iterator[None]:
    """Turns a full disk met in the block into ``line`` on stderr and exit ``EXIT_STORAGE_FULL``."""
    try:
        yield
    except Exception as exc:
        text = line_for(exc, hint)
        if text is None:
            raise
        print(f"error: {text}", file=sys.stderr)
        raise SystemExit(EXIT_STORAGE_FULL) from None


class DiskFullWatch(tune.Callback):
    """Stops the stage at the first trial that failed on a full disk; ``stopped()`` says it did, and where."""

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._check(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._check(trial)

    def _check(self, trial) -> None:
        text = error_text(trial)
        if _STOPPED or not says_disk_full(text):
            return
        _STOPPED.append(path_in(text))
        os.kill(os.getpid(), signal.SIGINT)  # Tune's own graceful stop, as a Ctrl-C: it saves the experiment


_STOPPED: list[str | None] = []  # this driver's stop by a full disk: the path the error named (None: unnamed)


def stopped() -> StorageFull | None:
    """The stop ``DiskFullWatch`` made in this process, once (it is cleared): the next stage starts afresh."""
    if not _STOPPED:
        return None
    path = _STOPPED.pop()
    return StorageFull(path)


def error_text(trial) -> str:
    """A failed trial's error as Tune saved it (its traceback, from a worker too), or "" when there is none."""
    path = getattr(trial, "error_file", None) or getattr(getattr(trial, "run_metadata", None), "error_filename", None)
    if path and Path(path).is_file():
        return Path(path).read_text(errors="replace")
    return ""
