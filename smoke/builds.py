"""Smoke builds on disk: a marker file says what a folder was built from; folders appear atomically."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import datasets

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


def publish_build(scratch: Path, target: Path, marker: str, expected: dict) -> Path:
    """Move a finished build into place atomically; a stale build is moved aside first, a concurrent winner kept."""
    def built_as_expected(folder: Path) -> bool:
        return read_marker(folder / marker) == expected

    return publish_dir(scratch, target, complete=built_as_expected, stale=lambda folder: not built_as_expected(folder))
