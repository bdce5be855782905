"""Seed a test sweep's storage with the generated smoke assets, built once per test session.

A smoke sweep in a fresh folder first builds the tiny model, generates the task's data and tokenises it
into ``<storage>/cache`` (about 10 s on 2 cores, every time). The end-to-end tests that are about something
else (a method, a fault, a resume) start from a cache that holds those assets already, as every later
sweep under one storage does; the sweep then reads them through its ordinary cache hit. The assets are
built here by the sweep's own code (``orchestrator.assets``) for the sweep's own arguments, so the content
and its cache keys are exactly those the sweep would have written, and linked (not copied) into place.

A sweep that builds its assets itself stays covered end to end: the toy method's one-trial sweep
(tests/test_method_contract.py, a new user's first run) and the node-local storage refusal in
tests/test_multinode.py (nothing may be built before that check) do not seed.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from orchestrator import cli
from orchestrator.assets import load_assets, tokenize_assets
from orchestrator.experiments import get_experiment
from orchestrator.preparation import unlabelled_languages
from trainables.tasks import get_task

# What the session built: one template storage for every task (its cache is content-addressed), and the
# (task, unlabelled languages, max_length, generalized) combinations already in it.
_TEMPLATE: dict[str, Path] = {}
_BUILT: set[tuple] = set()
ASSET_FOLDERS = ("smoke-model", "smoke-data", "tokenized")


def _template_storage() -> Path:
    if "root" not in _TEMPLATE:
        _TEMPLATE["root"] = Path(tempfile.mkdtemp(prefix="xlt-smoke-template-"))
        atexit.register(shutil.rmtree, _TEMPLATE["root"], True)  # the session's template goes with it
    return _TEMPLATE["root"]


def seed_smoke_cache(cwd: Path, *sweep_args: str) -> Path:
    """Link the smoke assets the sweep ``python -m orchestrator.sweep *sweep_args`` (run in ``cwd``) would
    build into its storage's cache; returns that cache folder."""
    cfg = cli.parse(list(sweep_args))
    storage = Path(cfg.storage).expanduser()
    target = (storage if storage.is_absolute() else Path(cwd) / storage) / "cache"
    template = replace(cfg, storage=str(_template_storage()), resume=None)
    experiment = get_experiment(cfg.experiment, cfg.arms, tune_baseline=cfg.tune_baseline)
    task = get_task(experiment.task, cfg.languages)  # as the sweep reads it (--languages)
    unlabelled = unlabelled_languages(template, experiment, task)
    key = (task.name, task.languages, cfg.data_dir, unlabelled, repr(sorted(cfg.train_overrides.items())),
           cfg.generalized_xnli)
    if key not in _BUILT:
        tokenize_assets(template, task, load_assets(template, task, unlabelled=unlabelled))
        _BUILT.add(key)
    for folder in ASSET_FOLDERS:
        source = template.cache_dir / folder
        if source.exists():
            shutil.copytree(source, target / folder, copy_function=_link_unless_there, dirs_exist_ok=True)
    return target


def _link_unless_there(source: str, destination: str) -> None:
    """A second seeding of one storage (a test's second sweep) keeps what the first linked."""
    if not os.path.exists(destination):
        os.link(source, destination)
