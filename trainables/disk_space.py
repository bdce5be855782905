"""Is this error a full disk? The one test every writer's failure goes through, whichever library raised it.

A full disk (or a used-up quota) surfaces differently at each writer of a sweep: Python's own writes raise
``OSError(ENOSPC)`` with the file's path; pyarrow (Ray Train's checkpoint upload, Arrow caches) raises
``OSError(ENOSPC)`` without one (``Error writing bytes to file. Detail: [errno 28] No space left on device``);
SQLite (the Optuna study, a file MLflow store) says ``database or disk is full``; ``torch.save`` says only
``PytorchStreamWriter failed writing file ...: file write failed`` or ``unexpected pos 576 vs 534``, no errno at
all (all measured on a full tmpfs). And an error from a Ray worker reaches the driver as text: Tune keeps a failed
trial's traceback in its error file. So the test reads both an exception's chain and its text.

A Ray Train run that meets a full disk is ended at once (``EndRunOnFullDisk``), not restarted to meet it again.
"""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

from ray.train import UserCallback

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# What the writers above print for a full disk, as it reads in a traceback's text.
_FULL_TEXT = re.compile(r"\[errno (?:%d|%d)\]|No space left on device|Disk quota exceeded|database or disk is full"
                        % FULL_ERRNOS, re.IGNORECASE)
_PATH_TEXT = re.compile(r"(?:No space left on device|Disk quota exceeded): '([^']+)'")
# torch.save's stream writer on a failed write: it gives no errno, so the disk's free space decides.
_TORCH_WRITE_FAILED = re.compile(r"PytorchStreamWriter failed writing|unexpected pos \d+ vs \d+|file write failed")
NEARLY_FULL_BYTES = 64 * 2**20  # less free than this where a write just failed: the disk is what failed it


def says_disk_full(text: str) -> bool:
    """Whether an error's text (a message, a traceback) is a full disk's."""
    return bool(_FULL_TEXT.search(text or ""))


def path_in(text: str) -> str | None:
    """The file a full-disk message names (``[Errno 28] No space left on device: '/x'``), if it names one."""
    found = _PATH_TEXT.findall(text or "")
    return found[-1] if found else None


def disk_full_error(exc: BaseException) -> OSError | None:
    """The full-disk ``OSError`` in ``exc``'s chain (causes, contexts, Ray's wrapped ``cause``, Ray Train's
    ``worker_failures``), or one made from its text when only the text says so; None when it is another error."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in FULL_ERRNOS:
            return current
        stack += [current.__cause__, current.__context__, getattr(current, "cause", None)]
        stack += [getattr(current, "controller_failure", None)]  # Ray Train's ControllerError
        stack += list((getattr(current, "worker_failures", None) or {}).values())
    text = str(exc)
    if says_disk_full(text):
        return OSError(errno.ENOSPC, "No space left on device", path_in(text))
    return None


def free_bytes(path: str | Path) -> int | None:
    """Free bytes on the disk that holds ``path`` (its nearest existing folder); None if none can be asked."""
    current = Path(path).absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    try:
        return shutil.disk_usage(current).free
    except OSError:
        return None


def as_disk_full(exc: BaseException, path: str | Path) -> OSError | None:
    """``exc``, raised while writing under ``path``, as a full-disk ``OSError`` naming ``path``, or None when the
    disk is not what failed. Catches ``torch.save``'s errno-less failure when the disk is (nearly) full."""
    found = disk_full_error(exc)
    if found is not None:
        return OSError(found.errno, "No space left on device", found.filename or str(path))
    free = free_bytes(path)
    if _TORCH_WRITE_FAILED.search(str(exc)) and free is not None and free < NEARLY_FULL_BYTES:
        return OSError(errno.ENOSPC, "No space left on device", str(path))
    return None


class EndRunOnFullDisk(UserCallback):
    """Ends a Ray Train run at the first worker error that is a full disk, rather than restarting it.

    Raised in the run's controller, the error is a controller error, which Ray Train's failure policy does not
    retry: the run ends errored with its last checkpoint, as it would after its restarts had all failed, so a
    resumed sweep goes on from that checkpoint. Any other worker error is left to the restarts."""

    def after_exception(self, run_context, worker_exceptions: dict) -> None:
        for error in worker_exceptions.values():
            full = disk_full_error(error)
            if full is not None:
                raise OSError(errno.ENOSPC, "No space left on device", full.filename)
