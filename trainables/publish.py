"""Atomic publishing: build into a private folder or file beside the final path, then rename it into place.

A reader (or a concurrent sweep) sees either the complete result or nothing; a build killed
half-way leaves only its hidden scratch copy, which the next build does not look at.

* ``scratch_dir(target)``: a fresh hidden folder name beside ``target``, removed (with whatever is
  left in it) when the block ends (``scratch_path``: the name alone, for a caller that cleans up itself);
* ``publish_dir(built, target, ...)``: rename a finished folder onto ``target``; a concurrent
  publisher that got there first keeps its copy when it is complete, a stale one is moved aside;
* ``publish_file(target)``: a temporary path to write, renamed onto ``target`` when the block ends
  without an error (and deleted when it raises);
* ``recording()``: the targets this process publishes while the block runs, so that a sweep refused
  after it built something (``orchestrator.footprint``) can take exactly that away again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path


_RECORDERS: list[list[Path]] = []  # one list per open ``recording()`` block


@contextlib.contextmanager
def recording() -> Iterator[list[Path]]:
    """A list that collects every new target this process publishes (``publish_dir``, ``publish_file``) in the block.

    Only our own renames onto a path that did not exist count: a concurrent publisher's copy that we kept
    instead is theirs, and a stale or damaged entry we replaced was there before."""
    published: list[Path] = []
    _RECORDERS.append(published)
    try:
        yield published
    finally:
        _RECORDERS.remove(published)


def _record(target: Path) -> None:
    for published in _RECORDERS:
        published.append(target)


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def scratch_path(target: str | Path, stem: str | None = None) -> Path:
    """A fresh ``<target's folder>/.tmp-<stem>-<pid>-<random>`` (``stem`` defaults to ``target``'s name)."""
    target = Path(target)
    return target.parent / f".tmp-{target.name if stem is None else stem}-{os.getpid()}-{_tag()}"


@contextlib.contextmanager
def scratch_dir(target: str | Path, stem: str | None = None) -> Iterator[Path]:
    """``scratch_path(target, stem)``, not created; removed with everything in it when the block ends."""
    scratch = scratch_path(target, stem)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def publish_dir(built: str | Path, target: str | Path, *, complete: Callable[[Path], bool] = lambda target: False,
                stale: Callable[[Path], bool] = lambda target: False) -> Path:
    """Rename the finished folder ``built`` onto ``target`` (same file system) and return ``target``.

    An existing ``target`` for which ``stale(target)`` holds is moved aside first and removed after
    the rename. If the rename fails (a concurrent publisher got there first), their copy is kept
    when ``complete(target)``; otherwise the error is raised.
    """
    built, target = Path(built), Path(target)
    new = not target.exists()
    aside = None
    if target.exists() and stale(target):
        aside = target.with_name(f".old-{target.name}-{_tag()}")
        os.replace(target, aside)
    try:
        os.replace(built, target)
        if new:
            _record(target)
    except OSError:
        if not complete(target):
            raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    return target


@contextlib.contextmanager
def publish_file(target: str | Path) -> Iterator[Path]:
    """A temporary path beside ``target`` (``.<name>.<pid>.tmp``) to write; renamed onto ``target`` when the
    block ends normally, deleted when it raises."""
    target = Path(target)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    new = not target.exists()
    try:
        yield temporary
        os.replace(temporary, target)
        if new:
            _record(target)
    finally:
        temporary.unlink(missing_ok=True)
