"""A refused sweep changes nothing: what it built before it found the problem is taken away again.

Bad input is refused in one line before Ray starts (``orchestrator.sweep``), but some of it can only be
seen once something has been built: SALT needs the model's MLM head, X-Mixup the encoder's depth, and
on the smoke profile the model and data they are read from are generated into the storage first; the
task's data is tokenised into the storage's cache before the methods' preparation reads it. A refused
command must still leave the working directory, the storage and the tracking store as they were (issue
20 item 3), or a user who fixes a typo finds folders, half a cache and an empty ``mlflow.db`` they never
asked for.

So the checks run inside a ``Footprint``: it notes which folders of the storage (and its missing
ancestors) exist with their modification times and whether the tracking store exists, and collects what
this process publishes meanwhile (``trainables.publish.recording``: every cache entry and asset is
published that way). ``undo`` on a refusal removes exactly what was published, then the folders that did
not exist before and are empty again, then the tracking store if it was created, and puts the folders'
modification times back. Nothing a concurrent sweep published and no entry that was there before is
touched (a damaged entry that was rebuilt stays rebuilt). A crash that is not a refusal undoes nothing:
what was built is valid and the next run uses it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

# Folders of the storage whose entries the checks may add to: the storage, its cache, the cache's kinds
# (``cache/tokenized``), their entries' parents (``cache/smoke-data/<task>``). Deeper folders are inside
# published entries, which go as a whole.
WATCH_DEPTH = 3
_SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")


def _store_paths(tracking_uri: str) -> list[Path]:
    """The files or folder a local tracking store lives in (none for a server)."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return [db, *(db.with_name(db.name + side) for side in _SQLITE_SIDE_FILES)]
    if "://" not in tracking_uri or tracking_uri.startswith("file:"):
        return [Path(tracking_uri.removeprefix("file://").removeprefix("file:"))]
    return []


def _folders(root: Path, depth: int) -> dict[Path, int]:
    """``root`` and its sub-folders down to ``depth`` levels, with their mtimes (ns); symlinks are not followed."""
    found: dict[Path, int] = {}
    level = [root] if root.is_dir() else []
    for _ in range(depth + 1):
        below = []
        for folder in level:
            try:
                found[folder] = folder.stat().st_mtime_ns
                below += [Path(entry.path) for entry in os.scandir(folder)
                          if entry.is_dir(follow_symlinks=False)]
            except OSError:
                continue
        level = below
    return found


@dataclass
class Footprint:
    """What a sweep's pre-Ray checks may change, as it was before them (``record``), and how to undo it."""

    storage: Path
    anchor: Path  # the storage's nearest existing ancestor (the storage itself when it exists)
    folders: dict[Path, int]  # existing watched folders -> mtime_ns
    store: dict[Path, bool]  # tracking store paths -> existed
    published: list[Path] = field(default_factory=list)  # filled by ``trainables.publish.recording``

    @classmethod
    def record(cls, storage: str | Path, tracking_uri: str) -> Footprint:
        storage = Path(storage).absolute()
        anchor = storage
        while not anchor.exists() and anchor != anchor.parent:
            anchor = anchor.parent
        folders = _folders(storage, WATCH_DEPTH) if anchor == storage else {}
        folders[anchor] = anchor.stat().st_mtime_ns
        store = {path: path.exists() for path in _store_paths(tracking_uri)}
        for path in store:  # the store's folder gets (and loses) a file too
            if path.parent.is_dir():
                folders.setdefault(path.parent, path.parent.stat().st_mtime_ns)
        return cls(storage, anchor, folders, store)

    def undo(self) -> None:
        """Remove what was published and created since ``record``; put the folders' mtimes back."""
        for target in sorted(set(self.published), key=lambda path: len(path.parts), reverse=True):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
        for path, existed in self.store.items():
            if existed or not path.exists():
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        created = self._created_folders()
        for folder in sorted(created, key=lambda path: len(path.parts), reverse=True):
            try:
                folder.rmdir()  # only when empty: whatever else is there is not ours
            except OSError:
                pass
        touched = {path.parent for path in [*self.published, *created, *self.store]}
        for folder in touched & set(self.folders):
            try:
                os.utime(folder, ns=(folder.stat().st_atime_ns, self.folders[folder]))
            except OSError:
                pass

    def _created_folders(self) -> set[Path]:
        """Folders that may have been created for what was published: the way from the storage's existing
        ancestor down to the storage, and each published entry's parents under it (within ``WATCH_DEPTH``),
        those that did not exist at ``record``."""
        chain = [self.storage, *self.storage.parents]
        candidates = set(chain[:chain.index(self.anchor)]) if self.anchor in chain else set()
        for target in self.published:
            for parent in target.parents:
                if parent == self.storage or self.storage not in parent.parents:
                    break
                if len(parent.parts) - len(self.storage.parts) <= WATCH_DEPTH:
                    candidates.add(parent)
        return {folder for folder in candidates if folder not in self.folders and folder.is_dir()}
