"""Shared fixtures: the smoke profile's model and data, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

# Under pytest-xdist (``make test``: two workers on two cores) each worker gets its share of the cores
# for torch's intra-op threads, set before torch is imported. Left at torch's default (every core per
# worker), the workers' OpenMP pools oversubscribe the machine and spin against each other: measured
# on 2 cores, four in-process training test files took 349 s this way and 159 s with one thread each.
# The sweeps the tests start inherit it; their Ray workers get Ray's own per-actor setting anyway.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))
    os.environ.setdefault("MKL_NUM_THREADS", str(_share))

import datasets
import huggingface_hub
import pytest

from orchestrator.sweep import WORKER_ENV
from trainables.config import TrainConfig
from trainables.data import load_raw, tokenize_cached
from smoke import build_smoke_data, build_smoke_model
from trainables.tasks import get_task


# Tests that start their own Ray (ray.init in-process) poll Train runs as often as a sweep does.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", WORKER_ENV["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"])


@pytest.fixture
def isolated_hf_caches(tmp_path_factory, monkeypatch):
    """Every test gets empty HF caches: a user's real cache must not make the offline tests pass."""
    root = tmp_path_factory.mktemp("hf")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "datasets"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root / "hub"))
    bars_were_off = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    yield root
    if not bars_were_off:
        datasets.enable_progress_bars()


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("smoke-assets")


@pytest.fixture(scope="session")
def smoke_model(smoke_root) -> str:
    return str(build_smoke_model(smoke_root))


@pytest.fixture(scope="session")
def xnli_tokenized(smoke_root, smoke_model) -> str:
    task = get_task("xnli")
    raw = load_raw(task, str(build_smoke_data(task, smoke_root)))
    return str(tokenize_cached(raw, task, smoke_model, 64, smoke_root / "cache"))


@pytest.fixture
def smoke_train_config(smoke_model, xnli_tokenized) -> TrainConfig:
    """A few hundred steps of the tiny model on generated XNLI: seconds on a CPU."""
    return TrainConfig(task="xnli", model=smoke_model, tokenized_path=xnli_tokenized,
                       languages=get_task("xnli").languages, seed=1, learning_rate=1e-3,
                       num_train_epochs=2.0, per_device_batch_size=32, grad_accum_steps=1, max_length=64,
                       eval_every_steps=25, eval_batch_size=256)
