"""Smoke builds on disk: a marker file says what a folder was built from; folders appear atomically."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import datasets

from trainables.cache_manifest import check_entry, usable_entry, write_manifest
from trainables.publish import publish_dir

GENERATOR_VERSION = "smoke-data-v4"  # v4: XNLI dev and test parallel across languages
MODEL_VERSION = "smoke-model-v3"
DATA_MARKER = ".smoke-data.json"
MODEL_MARKER = ".smoke-model.json"
DEFAULT_SIZES = {"train": 1200, "validation": 150, "test": 150}


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """No per-split progress bars: a smoke build saves 66 tiny splits and would flood the log."""
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _format(expected: dict) -> str:
    """The cache format a build's manifest records: its generator's version (``trainables.cache_manifest``)."""
    return str(expected["version"])


def is_built(target: Path, marker: str, expected: dict) -> bool:
    """Whether ``target`` holds the build ``expected`` describes, intact. A build from another recipe is quietly
    rebuilt; one whose files were damaged after it was published gets one line first (``usable_entry``)."""
    found = read_marker(target / marker)
    if found is not None and found != expected:
        return False  # built from another recipe
    return usable_entry(target, _format(expected)) and found == expected


def publish_build(scratch: Path, target: Path, marker: str, expected: dict) -> Path:
    """Move a finished build into place atomically, with its manifest; a stale or damaged build is moved aside
    first, a concurrent winner kept."""
    def built_as_expected(folder: Path) -> bool:
        return read_marker(folder / marker) == expected and check_entry(folder, _format(expected)) is None

    write_manifest(scratch, _format(expected))
    return publish_dir(scratch, target, complete=built_as_expected, stale=lambda folder: not built_as_expected(folder))
