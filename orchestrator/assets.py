"""What a sweep trains on, made ready once in the driver before any trial starts.

Cheap checks come first (is the model here or reachable, is the data here or reachable), so
an offline machine fails in seconds with one line; then the model is fetched to a local
directory and the data tokenized once into a content-addressed cache that every trial and
every later sweep with the same tokenizer, data and max length reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import SweepConfig
from trainables.config import TrainConfig
from datasets import DatasetDict

from trainables.data import check_data_available, load_raw, load_unlabelled, tokenize_cached
from trainables.models import resolve_model
from trainables.smoke_assets import build_smoke_data, build_smoke_model
from trainables.tasks import TaskSpec


@dataclass(frozen=True)
class Assets:
    model_dir: str
    data_dir: str | None  # None: the hub
    tokenized_path: Path
    max_length: int


def prepare_assets(cfg: SweepConfig, task: TaskSpec, *, unlabelled: tuple[str, ...] = ()) -> Assets:
    """The model folder and the tokenised task data (with ``unlabelled_<lang>`` parts for ``unlabelled``)."""
    if cfg.profile == "smoke" or cfg.model is None:
        model_dir = str(build_smoke_model(cfg.cache_dir)) if cfg.model is None else resolve_model(cfg.model)
        data_dir = cfg.data_dir or str(build_smoke_data(task, cfg.cache_dir))
    else:
        model_dir = resolve_model(cfg.model)
        data_dir = cfg.data_dir
    check_data_available(task, data_dir, unlabelled_languages=unlabelled)
    raw = load_raw(task, data_dir)
    if unlabelled:
        raw = DatasetDict({**raw, **load_unlabelled(task, data_dir, unlabelled)})
    max_length = int(cfg.train_overrides.get("max_length", TrainConfig.max_length))
    tokenized = tokenize_cached(raw, task, model_dir, max_length, cfg.cache_dir)
    return Assets(model_dir=model_dir, data_dir=data_dir, tokenized_path=Path(tokenized), max_length=max_length)
