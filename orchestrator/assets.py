"""What a sweep trains on, made ready once in the driver before any trial starts.

Cheap checks come first (is the model here or reachable, is the data here or reachable), so
an offline machine fails in seconds with one line; then the model is fetched to a local
directory and the data tokenized once into a content-addressed cache that every trial and
every later sweep with the same tokenizer, data and max length reads.

Loading counts every part's rows (read, kept, dropped and why; ``trainables.data.accounting``):
the sweep prints that account once and logs it on its parent run (``log_data_accounting``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.config import SweepConfig
from trainables.config import TrainConfig
from datasets import DatasetDict

from trainables.data import DataAccounting, check_data_available, load_raw, load_unlabelled, tokenize_cached
from trainables.generalized import generalized_test_set
from trainables.models import resolve_model
from smoke import build_smoke_data, build_smoke_model
from trainables.tasks import TaskSpec

if TYPE_CHECKING:
    from orchestrator.tracking import SweepTracker

DATA_ACCOUNTING_FILE = "data_accounting.csv"  # on the parent run: one row per loaded part


@dataclass(frozen=True)
class Assets:
    model_dir: str
    data_dir: str | None  # None: the hub
    tokenized_path: Path
    max_length: int
    accounting: DataAccounting = field(default_factory=DataAccounting)
    generalized_path: Path | None = None  # the tokenised generalized XNLI test set (--generalized-xnli)


@dataclass(frozen=True)
class LoadedData:
    """The task's parts as read (before tokenisation), and what reading them kept and dropped."""

    model_dir: str
    data_dir: str | None
    raw: DatasetDict
    accounting: DataAccounting


def generates_assets(cfg: SweepConfig) -> bool:
    """Whether ``load_assets`` builds the generated smoke model or data (into the sweep's storage) rather than
    only reading the user's: a sweep joining a cluster then loads only after the storage is known shared."""
    builds_model = cfg.model is None
    builds_data = (cfg.profile == "smoke" or builds_model) and cfg.data_dir is None
    return builds_model or builds_data


def load_assets(cfg: SweepConfig, task: TaskSpec, *, unlabelled: tuple[str, ...] = ()) -> LoadedData:
    """The model folder and the task's parts read and checked (with ``unlabelled_<lang>`` parts for
    ``unlabelled``). Nothing goes to the sweep's storage but the generated smoke assets (``generates_assets``),
    so a user's data is read and refused (one line) before any cluster work."""
    if cfg.profile == "smoke" or cfg.model is None:
        model_dir = str(build_smoke_model(cfg.cache_dir)) if cfg.model is None else resolve_model(cfg.model)
        data_dir = cfg.data_dir or str(build_smoke_data(task, cfg.cache_dir))
    else:
        model_dir = resolve_model(cfg.model)
        data_dir = cfg.data_dir
    check_data_available(task, data_dir, unlabelled_languages=unlabelled)
    accounting = DataAccounting()
    raw = load_raw(task, data_dir, accounting=accounting)
    if unlabelled:
        raw = DatasetDict({**raw, **load_unlabelled(task, data_dir, unlabelled, accounting=accounting)})
    return LoadedData(model_dir=model_dir, data_dir=data_dir, raw=raw, accounting=accounting)


def tokenize_assets(cfg: SweepConfig, task: TaskSpec, loaded: LoadedData) -> Assets:
    """The tokenised task data in the content-addressed cache (a hit when another sweep made it)."""
    max_length = int(cfg.train_overrides.get("max_length", TrainConfig.max_length))
    tokenized = tokenize_cached(loaded.raw, task, loaded.model_dir, max_length, cfg.cache_dir)
    generalized = None
    if cfg.generalized_xnli:  # built from the same test splits, tokenised alike and cached by content beside them
        pairs = generalized_test_set(loaded.raw, task)
        generalized = Path(tokenize_cached(pairs, task, loaded.model_dir, max_length, cfg.cache_dir))
    return Assets(model_dir=loaded.model_dir, data_dir=loaded.data_dir, tokenized_path=Path(tokenized),
                  max_length=max_length, accounting=loaded.accounting, generalized_path=generalized)


def log_data_accounting(tracker: SweepTracker, accounting: DataAccounting, out_dir: Path) -> Path:
    """The parent run's record of what loading kept: ``data_accounting.csv`` (one row per part) and the
    totals as params ``data.loaded_rows``, ``data.kept_rows``, ``data.dropped_rows``, ``data.dropped.<reason>``,
    ``data.empty_text_rows``. Returns the CSV's path."""
    path = Path(out_dir) / DATA_ACCOUNTING_FILE
    path.write_text(accounting.to_csv())
    totals = accounting.totals()
    params = {"data.parts": len(accounting), "data.loaded_rows": totals["loaded"], "data.kept_rows": totals["kept"],
              "data.dropped_rows": totals["dropped"], "data.empty_text_rows": totals["empty_text"]}
    params.update({f"data.{key}": value for key, value in totals.items() if key.startswith("dropped.")})
    tracker.log_params(params)
    tracker.log_artifacts([path])
    return path
