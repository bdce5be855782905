"""Can the sweep write its storage? Asked before any cluster work, leaving nothing behind.

``--storage`` holds the sweep's state, the trials' checkpoints and the caches; a read-only file system,
a folder the user may not write, or a path under a file would otherwise surface as a stack trace from a
Ray worker minutes in. The probe creates (and at once removes) a temporary file in the storage folder, or
in its nearest existing parent when the folder is yet to be made, so a refused command creates nothing.
As root, permission bits do not stop a write, so the probe writes rather than asking ``os.access``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


class StorageNotWritable(Exception):
    """``str()`` is the one line for the user: which path, what is wrong, what to do."""


def check_storage_writable(storage: str | Path) -> None:
    """Raise ``StorageNotWritable`` unless a file can be created where the sweep's storage is (or will be)."""
    path = Path(storage).expanduser().absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise StorageNotWritable(f"--storage {path}: {existing} is a file, not a folder; pass a folder path")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".xlt-write-probe-"):
            pass
    except OSError as exc:
        what = {errno.EROFS: "is on a read-only file system", errno.ENOSPC: "has no space left",
                errno.EDQUOT: "is over its disk quota"}.get(exc.errno, f"cannot be written ({os.strerror(exc.errno or 0)})")
        where = "" if existing == path else f": {existing}"
        raise StorageNotWritable(f"--storage {path}{where} {what}; pass a writable folder with --storage "
                                 "(on a cluster, one every node mounts)") from None
