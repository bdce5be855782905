"""The entry points: a task's labelled parts, other languages' unlabelled text, and a fast availability check."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from datasets import DatasetDict

import trainables.data.hub as hub
from trainables.data.accounting import DataAccounting
from trainables.data.layouts import (
    EVAL_SPLITS,
    DataUnavailable,
    plan_parts,
    task_split,
    unlabelled_parts,
    wanted_parts,
)
from trainables.data.normalise import load_local
from trainables.tasks import UNLABELLED_SPLIT, TaskSpec, split_key


def _load_parts(
    task: TaskSpec,
    data_dir: str | Path | None,
    parts: Sequence[tuple[str, str]],
    timeout_s: float,
    *,
    labelled: bool,
    accounting: DataAccounting | None,
    key: Callable[[str, str], str],
) -> DatasetDict:
    """The parts under their keys (``key(split, lang)``), each one's account added to ``accounting``."""
    if data_dir is None:
        loaded = hub.load_hub(task, parts, timeout_s, labelled=labelled)
    else:
        loaded = load_local(task, data_dir, parts, labelled=labelled)
    out = {}
    for (split, lang), (ds, account) in loaded.items():
        out[key(split, lang)] = ds
        if accounting is not None:
            accounting.add(account.named(key(split, lang)))
    return DatasetDict(out)


def load_raw(
    task: TaskSpec,
    data_dir: str | Path | None = None,
    *,
    languages: Sequence[str] | None = None,
    eval_splits: Sequence[str] = EVAL_SPLITS,
    timeout_s: float = 10.0,
    accounting: DataAccounting | None = None,
) -> DatasetDict:
    """The task's data as ``train_<source>`` + ``<eval split>_<lang>`` for each language (default: all).

    Only the source language's train split is loaded: the methods are zero-shot. ``data_dir``
    None means the hub (falling back to the local cache when the hub is unreachable). Every part's
    rows read, kept and dropped go into ``accounting`` when given; a part that loses more than
    ``UNKNOWN_LABEL_LIMIT`` of its rows to unknown labels is refused (``DataUnavailable``, one line).
    """
    return _load_parts(task, data_dir, wanted_parts(task, languages, eval_splits), timeout_s, labelled=True,
                       accounting=accounting, key=lambda split, lang: split_key(task_split(task, split), lang))


def load_unlabelled(
    task: TaskSpec, data_dir: str | Path | None, languages: Sequence[str], *, timeout_s: float = 10.0,
    accounting: DataAccounting | None = None,
) -> DatasetDict:
    """``unlabelled_<lang>``: the train split of each language with its text column(s) only.

    The label column is dropped here, so a method that reads target-language text (self-training,
    pseudo-labelling) cannot see a target label: zero-shot by construction. ``tokenize_cached``
    takes these parts (labels -1, or for token tasks 0 at first sub-words and -100 elsewhere).
    """
    return _load_parts(task, data_dir, unlabelled_parts(task, languages), timeout_s, labelled=False,
                       accounting=accounting, key=lambda _split, lang: split_key(UNLABELLED_SPLIT, lang))


def check_data_available(
    task: TaskSpec,
    data_dir: str | Path | None = None,
    *,
    timeout_s: float = 10.0,
    languages: Sequence[str] | None = None,
    eval_splits: Sequence[str] = EVAL_SPLITS,
    unlabelled_languages: Sequence[str] = (),
) -> None:
    """Fail fast (seconds, before any cluster starts) with a one-line DataUnavailable if load_raw would fail
    (and ``load_unlabelled`` for ``unlabelled_languages``, when given).

    With ``data_dir`` only the layout and file names are checked; without, the local cache is
    looked at first, then the hub is asked once with a short timeout.
    """
    parts = wanted_parts(task, languages, eval_splits)
    unlabelled = unlabelled_parts(task, unlabelled_languages)
    if data_dir is not None:
        plan_parts(task, data_dir, parts)
        if unlabelled:
            plan_parts(task, data_dir, unlabelled, labelled=False)
        return
    needed = list(dict.fromkeys(lang for _, lang in [*parts, *unlabelled]))
    if len(hub.hub_cached_languages(task, needed)) == len(needed):
        return
    reason = hub.probe_hub(task.hub_id, timeout_s)  # looked up on hub: a test stands in for the hub there
    if reason is not None:
        raise DataUnavailable(hub.hub_message(task, reason))


# --------------------------------------------------------------------------------------------
