"""Reading a part's files and bringing it to the task's exact columns and labels, whatever it came from."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import datasets
from datasets import ClassLabel, Dataset, Features, List, Value

from trainables.data.accounting import (MISSING_LABEL, NO_GOLD_LABEL, TAG_COUNT_MISMATCH, UNKNOWN_LABEL, SplitAccount,
                                        count_rows, unknown_label_problem)
from trainables.data.layouts import DataUnavailable, Source, plan_parts
from trainables.tasks import TaskSpec

_LABEL_ALIASES = {"contradictory": "contradiction"}  # XNLI-MT / older XTREME train files
# The accounting's columns while cleaning (``_clean_batch``), removed before a part is handed out.
_DROP, _VALUE, _EMPTY = "__xlt_drop_reason", "__xlt_unknown_value", "__xlt_empty_text"


def label_lookup(task: TaskSpec) -> dict[str, int]:
    """Every spelling of a label we accept -> its id (names, numeric strings, known aliases)."""
    lookup = {name.lower(): index for index, name in enumerate(task.label_names)}
    lookup.update({str(index): index for index in range(task.num_labels)})
    lookup.update({alias: lookup[name] for alias, name in _LABEL_ALIASES.items() if name in lookup})
    return lookup


def _class_names(feature: Any) -> list[str] | None:
    """The names of a ``ClassLabel`` column, or of a list-of-``ClassLabel`` column (WikiANN's ``ner_tags``)."""
    inner = getattr(feature, "feature", feature)
    return list(inner.names) if isinstance(inner, ClassLabel) else None


def _label_verdict(value: Any, lookup: dict[str, int], names: list[str] | None) -> tuple[int, str]:
    """(id, "") for a usable label, else (-1, the drop reason: ``accounting.DROP_REASONS``)."""
    if names is not None and isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(names):  # the hub's -1: no label
            return -1, MISSING_LABEL if value < 0 else UNKNOWN_LABEL
        value = names[value]
    text = "" if value is None else str(value).strip()
    if not text:
        return -1, MISSING_LABEL
    if text == "-":
        return -1, NO_GOLD_LABEL
    index = lookup.get(text.lower(), -1)
    return index, "" if index >= 0 else UNKNOWN_LABEL


def _tag_verdict(
    tags: Sequence[Any] | None, words: Sequence[str], lookup: dict[str, int], names: list[str] | None
) -> tuple[list[int], str, str]:
    """A sentence's tags as ids, and ("", "") or the drop reason and (unknown tags) the first unknown tag.

    The ids are ``[-1]`` (the sentence is dropped) when a tag is unknown or missing, or the counts differ.
    """
    if tags is None or len(tags) != len(words):
        return [-1], TAG_COUNT_MISMATCH, ""
    verdicts = [_label_verdict(tag, lookup, names) for tag in tags]
    for (index, reason), tag in zip(verdicts, tags):
        if index < 0:
            return [-1], reason, str(tag) if reason == UNKNOWN_LABEL else ""
    return [index for index, _ in verdicts], "", ""


def _clean_text(text: str | None) -> str:
    return "" if text is None else text


def _clean_words(words: Sequence[str | None] | None) -> list[str]:
    return [] if words is None else ["" if word is None else word for word in words]


def _clean_batch(
    batch: dict[str, list],
    *,
    text_fields: Sequence[str],
    label_field: str | None,
    lookup: dict[str, int],
    names: list[str] | None,
    token_level: bool = False,
) -> dict[str, list]:
    """Map labels to ids (-1 when unusable, dropped later) and missing texts to "" (PAWS-X has a few).

    ``label_field`` None: unlabelled text, texts only. ``token_level``: texts are word lists and
    labels tag lists (one tag per word). Beside them, the accounting's columns (``_ACCOUNT_COLUMNS``):
    each row's drop reason ("" when kept), its unknown label value, whether a text is empty.
    """
    clean = _clean_words if token_level else _clean_text
    out = {name: [clean(text) for text in batch[name]] for name in text_fields}
    out[_EMPTY] = [any(len(out[name][row]) == 0 for name in text_fields) for row in range(len(out[text_fields[0]]))]
    if label_field is None:
        return out
    if token_level:
        words = out[text_fields[0]]
        verdicts = [_tag_verdict(tags, row, lookup, names) for tags, row in zip(batch[label_field], words)]
        out[label_field] = [ids for ids, _, _ in verdicts]
        out[_DROP] = [reason for _, reason, _ in verdicts]
        out[_VALUE] = [value for _, _, value in verdicts]
    else:
        verdicts = [_label_verdict(value, lookup, names) for value in batch[label_field]]
        out[label_field] = [index for index, _ in verdicts]
        out[_DROP] = [reason for _, reason in verdicts]
        out[_VALUE] = ["" if reason != UNKNOWN_LABEL else str(value)[:40]
                       for (_, reason), value in zip(verdicts, batch[label_field])]
    return out


def _keep_language(languages: list[str], *, language: str) -> list[bool]:
    return [value == language for value in languages]


def _known_label(labels: list[Any]) -> list[bool]:
    return [min(label, default=0) >= 0 if isinstance(label, list) else label >= 0 for label in labels]


def _text_feature(task: TaskSpec) -> Any:
    return List(Value("string")) if task.kind == "token" else Value("string")


def _label_feature(task: TaskSpec, *, ids: bool = False) -> Any:
    """The label column's final type (``ClassLabel``, a list of them for token tasks), or int ids while cleaning."""
    single = Value("int64") if ids else ClassLabel(names=list(task.label_names))
    return List(single) if task.kind == "token" else single


def _marc_release_batch(batch: dict[str, list]) -> dict[str, list]:
    """The original release's columns as the hub's: title and body in one text, 1..5 stars as 0..4."""
    titles = batch.get("review_title") or [None] * len(batch["review_body"])
    out = {"text": [f"{title}\n\n{body}" if title else body for title, body in zip(titles, batch["review_body"])]}
    if "stars" in batch:
        out["label"] = [_stars_label(stars) for stars in batch["stars"]]
    return out


def _stars_label(stars: Any) -> str:
    """1..5 stars as the label id "0".."4"; anything else as ``stars=<value>`` (an unknown label, counted)."""
    text = "" if stars is None else str(stars).strip()
    return str(int(text) - 1) if text.isdigit() and 1 <= int(text) <= 5 else f"stars={text}" if text else ""


def _marc_release_columns(ds: Dataset, task: TaskSpec) -> Dataset:
    if "review_body" not in ds.column_names or task.text_fields[0] in ds.column_names:
        return ds
    return ds.map(_marc_release_batch, batched=True, keep_in_memory=True, remove_columns=ds.column_names)


# Turn a known foreign column set into the task's own, before the columns are checked.
_COLUMN_ADAPTERS: dict[str, Callable[[Dataset, TaskSpec], Dataset]] = {"marc": _marc_release_columns}


def normalize(ds: Dataset, task: TaskSpec, source: Source, origin: str, *,
              labelled: bool = True) -> tuple[Dataset, SplitAccount]:
    """Bring one part to the task's exact columns and ClassLabel, whatever file it came from; with its account
    (rows read, kept, dropped and why: ``trainables.data.accounting``).

    ``labelled=False`` keeps the text columns only (unlabelled target-language text). A part that
    loses more than ``UNKNOWN_LABEL_LIMIT`` of its rows to unknown labels is refused (``DataUnavailable``).
    """
    if source.language is not None:
        ds = ds.filter(
            _keep_language,
            input_columns="language",
            batched=True,
            keep_in_memory=True,
            fn_kwargs={"language": source.language},
        )
    ds = ds.rename_columns({old: new for old, new in source.rename.items() if old in ds.column_names and old != new})
    if task.name in _COLUMN_ADAPTERS:
        ds = _COLUMN_ADAPTERS[task.name](ds, task)
    wanted = [*task.text_fields, task.label_field] if labelled else list(task.text_fields)
    absent = [column for column in wanted if column not in ds.column_names]
    if absent:
        raise DataUnavailable(
            f"{origin} lacks column(s) {absent} (has {ds.column_names}); pass --data-dir DIR with the task's columns {wanted}"
        )
    ds = ds.select_columns(wanted)
    texts = {name: _text_feature(task) for name in task.text_fields}
    kwargs = {
        "text_fields": task.text_fields,
        "label_field": task.label_field if labelled else None,
        "lookup": label_lookup(task),
        "names": _class_names(ds.features[task.label_field]) if labelled else None,
        "token_level": task.kind == "token",
    }
    labels = {task.label_field: _label_feature(task, ids=True), _DROP: Value("string"),
              _VALUE: Value("string")} if labelled else {}
    features = Features({**texts, **labels, _EMPTY: Value("bool")})
    ds = ds.map(_clean_batch, batched=True, keep_in_memory=True, fn_kwargs=kwargs, features=features)
    # One read of the accounting columns as Arrow (iterating a datasets Column goes row by row: minutes for XNLI).
    table = ds.with_format("arrow")[:]
    empty = table.column(_EMPTY).to_pylist()
    if not labelled:
        return ds.remove_columns(_EMPTY), count_rows(origin, len(ds), len(ds), [""] * len(ds), empty, [])
    reasons = table.column(_DROP).to_pylist()
    kept = ds.filter(_known_label, input_columns=task.label_field, batched=True, keep_in_memory=True)
    account = count_rows(origin, len(ds), len(kept), reasons, empty, table.column(_VALUE).to_pylist())
    problem = unknown_label_problem(account, task.label_names)
    if problem:
        raise DataUnavailable(problem)
    if len(kept) == 0:
        raise DataUnavailable(
            f"{origin}: no rows with a known label {task.label_names} ({account.describe()}); "
            f"pass --data-dir DIR with labelled {task.name} data"
        )
    kept = kept.remove_columns([_DROP, _VALUE, _EMPTY])
    return kept.cast_column(task.label_field, _label_feature(task)), account


def _read_conll(path: Path) -> Dataset:
    """Sentences of a word-per-line TSV as ``words`` / ``tags`` lists (tag "" on a line without one)."""
    columns: dict[str, list[list[str]]] = {"words": [], "tags": []}
    words: list[str] = []
    tags: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in [*handle, "\n"]:  # the extra blank line ends the last sentence
            fields = line.rstrip("\r\n").split("\t")
            if line.strip():
                words.append(fields[0])
                tags.append(fields[1] if len(fields) > 1 else "")
            elif words:
                columns["words"].append(words)
                columns["tags"].append(tags)
                words, tags = [], []
    return Dataset.from_dict(columns, features=Features({name: List(Value("string")) for name in columns}))


def _read_local(source: Source) -> Dataset:
    if source.kind == "disk":
        return datasets.load_from_disk(str(source.files[0]))
    if source.kind == "conll":
        return _read_conll(source.files[0])
    return datasets.load_dataset(
        source.kind, data_files=[str(path) for path in source.files], split="train", **source.options
    )


def load_local(
    task: TaskSpec, data_dir: str | Path, parts: Sequence[tuple[str, str]], *, labelled: bool = True
) -> dict[tuple[str, str], tuple[Dataset, SplitAccount]]:
    out = {}
    for (split, lang), source in plan_parts(task, data_dir, parts, labelled=labelled).items():
        origin = f"{source.files[0]}" + (f" [language={lang}]" if source.language else "")
        out[split, lang] = normalize(_read_local(source), task, source, origin, labelled=labelled)
    return out
