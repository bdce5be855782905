"""The Hugging Face hub: is it reachable, is a task's config in the local cache, loading from it."""

from __future__ import annotations

import contextlib
import glob
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import datasets
import huggingface_hub
from datasets import Dataset

from trainables.data.accounting import SplitAccount
from trainables.data.layouts import DataUnavailable, Source, no_data_hint, task_split
from trainables.data.normalise import normalize
from trainables.tasks import TaskSpec


def probe_hub(hub_id: str, timeout_s: float) -> str | None:
    """None when the hub answers for ``hub_id`` within ``timeout_s``, else a short reason.

    Runs in a daemon thread with a hard deadline: a DNS lookup is not covered by HTTP timeouts
    and can hang far longer than the caller is willing to wait.
    """
    outcome: dict[str, str | None] = {}

    def probe() -> None:
        try:
            huggingface_hub.HfApi().dataset_info(hub_id, timeout=timeout_s)
            outcome["error"] = None
        except Exception as error:  # noqa: BLE001 - any failure means "not usable from here"
            outcome["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:160]

    thread = threading.Thread(target=probe, name=f"hub-probe-{hub_id}", daemon=True)
    thread.start()
    thread.join(timeout_s + 1.0)
    return outcome.get("error", f"no answer within {timeout_s:g} s")


def hub_cached_languages(task: TaskSpec, languages: Sequence[str]) -> list[str]:
    """Languages whose hub config is in the local datasets cache (prepared) or hub cache (snapshot files)."""
    namespace, _, name = task.hub_id.rpartition("/")
    dataset_dir = f"{namespace}___{datasets.naming.camelcase_to_snakecase(name)}" if namespace else name
    datasets_cache = Path(datasets.config.HF_DATASETS_CACHE) / dataset_dir
    hub_cache = (
        Path(huggingface_hub.constants.HF_HUB_CACHE) / f"datasets--{task.hub_id.replace('/', '--')}" / "snapshots"
    )
    return [
        lang
        for lang in languages
        if glob.glob(str(datasets_cache / task.hub_config_name(lang) / "*" / "*" / "dataset_info.json"))
        or glob.glob(str(hub_cache / "*" / task.hub_config_name(lang) / "*"))
    ]


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Make datasets/huggingface_hub go straight to their caches instead of retrying the network for minutes."""
    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def hub_message(task: TaskSpec, reason: str) -> str:
    return (
        f"{task.name.upper()} data not found: the hub ({task.hub_id}) is unreachable ({reason}) and it is not "
        f"in the local datasets cache; {no_data_hint(task)}"
    )


def load_hub(
    task: TaskSpec, parts: Sequence[tuple[str, str]], timeout_s: float, *, labelled: bool = True
) -> dict[tuple[str, str], tuple[Dataset, SplitAccount]]:
    """One ``load_dataset(hub_id, config)`` per language (every task here has one config per language); each
    part with its account (``normalize``)."""
    needed = list(dict.fromkeys(lang for _, lang in parts))
    reason = probe_hub(task.hub_id, timeout_s)
    if reason is not None and len(hub_cached_languages(task, needed)) < len(needed):
        raise DataUnavailable(hub_message(task, reason))
    out = {}
    with hub_offline() if reason is not None else contextlib.nullcontext():
        for lang in needed:
            config = task.hub_config_name(lang)
            splits = [split for split, part_lang in parts if part_lang == lang]
            try:
                loaded = datasets.load_dataset(task.hub_id, config, split=[task_split(task, s) for s in splits])
            except (OSError, ValueError) as error:
                reason = f"{type(error).__name__} loading config {config!r}"
                raise DataUnavailable(hub_message(task, reason)) from error
            for split, ds in zip(splits, loaded):
                origin = f"{task.hub_id}[{config}/{task_split(task, split)}]"
                out[split, lang] = normalize(ds, task, Source("hub", ()), origin, labelled=labelled)
    return out
