"""Task data: find it (hub, or a local copy in one of several layouts), normalise it, tokenise it once.

Every source ends up in the same shape — a ``DatasetDict`` with ``train_<source>`` plus
``validation_<lang>`` / ``test_<lang>``, columns ``task.text_fields + (task.label_field,)``,
labels as ``ClassLabel(task.label_names)`` (token tasks: a list of words and a list of
``ClassLabel`` tags) — so nothing downstream knows where the data came from. Other languages'
training splits are only ever loaded without their labels (``load_unlabelled``:
``unlabelled_<lang>``), so zero-shot transfer holds by construction. Tokenised data is cached
on disk by *content*, so every trial of a sweep (and every sweep on the same data and
tokenizer) shares one copy.

Local layouts understood by ``--data-dir DIR`` (looked for in ``DIR/<task>/`` first, then ``DIR``):

* ``saved``: ``<lang>/`` is a ``DatasetDict.save_to_disk`` folder (splits train/validation/test);
* ``hub-parquet``: the hub's parquet snapshot, ``<lang>/<split>-00000-of-00001.parquet``
  (or the parquet-converter branch's ``<lang>/<split>/0000.parquet``);
* ``xnli-original``: ``XNLI-1.0/xnli.{dev,test}.tsv`` plus English train from
  ``multinli_1.0/multinli_1.0_train.jsonl`` (or ``XNLI-MT-1.0/multinli/multinli.train.en.tsv``);
* ``pawsx-original``: ``x-final/<lang>/{train,translated_train,dev_2k,test_2k}.tsv``;
* ``marc-original``: the original Amazon reviews release, ``json/{train,dev,test}/dataset_<lang>_<split>.json``
  (``review_title`` / ``review_body`` / ``stars`` 1..5, turned into the hub's ``text`` / ``label``);
* ``xtreme``: XTREME's download, ``train-en.tsv``, ``dev-<lang>.tsv``, ``test-<lang>.tsv`` (for PAN-X,
  ``panx/{train,dev,test}-<lang>.tsv`` with one ``word<TAB>tag`` per line, sentences split by blank lines);
* ``plain``: ``<lang>/{train,validation|dev,test}.{parquet,jsonl,json,csv,tsv}`` (a token task's
  ``.tsv`` is word-per-line as XTREME's; no ``.csv``).
"""

from __future__ import annotations

import contextlib
import csv
import glob
import hashlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import huggingface_hub
import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from trainables.tasks import UNLABELLED_SPLIT, TaskSpec, split_key

EVAL_SPLITS = ("validation", "test")
TOKENIZED_FORMAT_VERSION = "xlt-tokenized-v1"
IGNORE_INDEX = -100  # token labels the loss and the metric skip: later sub-words, special tokens, padding
NO_LABEL = -1  # a sequence task's label in unlabelled parts (a loss on it fails loudly instead of learning it)
WORD_POSITION = 0  # a token task's label at first sub-words in unlabelled parts: "a word starts here"
_LABEL_ALIASES = {"contradictory": "contradiction"}  # XNLI-MT / older XTREME train files
_TSV = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}  # raw TSV releases: sentences contain quotes
_TOKENIZER_FILE_PREFIXES = (
    "tokenizer",
    "special_tokens_map",
    "added_tokens",
    "vocab",
    "merges",
    "spiece",
    "sentencepiece",
)
_PLAIN_EXTENSIONS = ("parquet", "jsonl", "json", "csv", "tsv")
_SPLIT_STEMS = {"train": ("train",), "validation": ("validation", "dev"), "test": ("test",)}


class DataUnavailable(Exception):
    """The task's data cannot be had here; the message (one line) says what is missing and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


# --------------------------------------------------------------------------------------------
# Where each (split, language) part lives
# --------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """One (split, language) part of a local copy: which files, and how to turn them into task columns."""

    kind: str  # "disk" (saved Dataset folder), "conll" (word-per-line TSV), or a datasets builder: parquet/json/csv
    files: tuple[Path, ...]  # everything that must exist; for "disk", files[0] is the split folder
    options: dict[str, Any] = field(default_factory=dict)  # extra load_dataset kwargs (csv parsing)
    rename: dict[str, str] = field(default_factory=dict)  # source column -> task column
    language: str | None = None  # keep only these rows (XNLI-1.0 keeps all languages in one file)
    problem: str | None = None  # set when the files exist but cannot serve (e.g. no labels)

    def missing(self) -> list[Path]:
        return [path for path in self.files if not path.exists()]


def _string_features(columns: Sequence[str]) -> Features:
    """Read every CSV column as text: pandas would otherwise turn a sentence like "42" into an int."""
    return Features({column: Value("string") for column in columns})


def _tsv_options(columns: Sequence[str], **extra: Any) -> dict[str, Any]:
    return {**_TSV, "usecols": list(columns), "features": _string_features(columns), "na_filter": False, **extra}


def _first_existing(candidates: Sequence[Path]) -> Path:
    """The first candidate that exists, else the first one (so the error names the preferred file)."""
    return next((path for path in candidates if path.exists()), candidates[0])


def _locate_saved(root: Path, task: TaskSpec, split: str, lang: str) -> _Source:
    return _Source("disk", (root / lang / split, root / lang / "dataset_dict.json"))


def _locate_hub_parquet(root: Path, task: TaskSpec, split: str, lang: str) -> _Source:
    shards = sorted(glob.glob(str(root / lang / f"{split}-*.parquet")))
    shards = shards or sorted(glob.glob(str(root / lang / split / "*.parquet")))
    files = tuple(Path(shard) for shard in shards) or (root / lang / f"{split}-00000-of-00001.parquet",)
    return _Source("parquet", files)


def _locate_plain(root: Path, task: TaskSpec, split: str, lang: str) -> _Source:
    columns = [*task.text_fields, task.label_field]
    for stem in _SPLIT_STEMS[split]:
        for ext in _PLAIN_EXTENSIONS:
            path = root / lang / f"{stem}.{ext}"
            if not path.exists() or (task.kind == "token" and ext == "csv"):
                continue
            if task.kind == "token" and ext == "tsv":
                return _conll_source(task, path)
            if ext == "tsv":
                return _Source("csv", (path,), _tsv_options(columns))
            if ext == "csv":
                return _Source(
                    "csv", (path,), {"usecols": columns, "features": _string_features(columns), "na_filter": False}
                )
            return _Source("json" if ext in ("json", "jsonl") else "parquet", (path,))
    return _Source("json", (root / lang / f"{split}.{{{','.join(_PLAIN_EXTENSIONS)}}}",))


def _locate_xnli_original(root: Path, task: TaskSpec, split: str, lang: str) -> _Source:
    premise, hypothesis = task.text_fields
    if split != "train":
        base = root / "XNLI-1.0" if (root / "XNLI-1.0").is_dir() else root
        path = base / ("xnli.dev.tsv" if split == "validation" else "xnli.test.tsv")
        rename = {"sentence1": premise, "sentence2": hypothesis, "gold_label": task.label_field}
        return _Source("csv", (path,), _tsv_options(["language", "gold_label", "sentence1", "sentence2"]), rename, lang)
    mt_train = root / "XNLI-MT-1.0" / "multinli" / f"multinli.train.{lang}.tsv"
    english = [root / "multinli_1.0" / "multinli_1.0_train.jsonl", root / "multinli_1.0_train.jsonl"]
    # Another language's train (unlabelled text for self-training) is XNLI-MT's, never MultiNLI's English.
    train = _first_existing([*english, mt_train] if lang == task.source_language else [mt_train])
    if train.suffix == ".tsv":  # XNLI-MT: header "premise hypo label", labels say "contradictory"
        rename = {"premise": premise, "hypo": hypothesis, "label": task.label_field}
        return _Source("csv", (train,), _tsv_options(["premise", "hypo", "label"]), rename)
    rename = {"sentence1": premise, "sentence2": hypothesis, "gold_label": task.label_field}
    return _Source("json", (train,), {}, rename)


def _locate_pawsx_original(root: Path, task: TaskSpec, split: str, lang: str) -> _Source:
    base = root / "x-final" if (root / "x-final").is_dir() else root
    if split == "train":
        name = "train.tsv" if lang == task.source_language else "translated_train.tsv"
    else:
        name = "dev_2k.tsv" if split == "validation" else "test_2k.tsv"
    columns = ["sentence1", "sentence2", "label"]
    rename = dict(zip(columns, [*task.text_fields, task.label_field]))
    return _Source("csv", (base / lang / name,), _tsv_options(columns), rename)


def _locate_xtreme(root: Path, task: TaskSpec, split: str, lang: str) -> _Source:
    prefix = {"train": "train", "validation": "dev", "test": "test"}[split]
    path = root / f"{prefix}-{lang}.tsv"
    if task.kind == "token":
        return _conll_source(task, path, "XTREME's download strips test tags")
    columns = [*task.text_fields, task.label_field]
    # XTREME writes these with csv.writer (QUOTE_MINIMAL), so the csv default quoting undoes it exactly.
    options = {
        "delimiter": "\t",
        "header": None,
        "column_names": columns,
        "features": _string_features(columns),
        "na_filter": False,
    }
    source = _Source("csv", (path,), options)
    if path.exists() and _tsv_width(path) < len(columns):
        source.problem = f"{path} has no label column (XTREME's download strips test labels)"
    return source


def _locate_marc_original(root: Path, task: TaskSpec, split: str, lang: str) -> _Source:
    base = root / "json" if (root / "json").is_dir() else root
    name = {"train": "train", "validation": "dev", "test": "test"}[split]
    return _Source("json", (base / name / f"dataset_{lang}_{name}.json",))


def _conll_source(task: TaskSpec, path: Path, why_no_tags: str = "") -> _Source:
    """A word-per-line TSV (``word<TAB>tag``, blank line between sentences) read into the task's two columns."""
    source = _Source("conll", (path,), rename={"words": task.text_fields[0], "tags": task.label_field})
    width = _conll_width(path) if path.exists() else None
    if width is not None and width < 2:
        source.problem = f"{path} has no tag column" + (f" ({why_no_tags})" if why_no_tags else "")
    return source


def _conll_width(path: Path) -> int | None:
    """Fields on the first non-blank line (XTREME's PAN-X test files have the word only); None if all blank."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                return len(line.rstrip("\r\n").split("\t"))
    return None


def _tsv_width(path: Path) -> int:
    """Number of tab-separated fields on the first line: XTREME's test files have one fewer (no label)."""
    with open(path, encoding="utf-8") as handle:
        return len(handle.readline().rstrip("\r\n").split("\t"))


def _any_lang_file(root: Path, task: TaskSpec, names: Sequence[str]) -> bool:
    return any((root / lang / name).exists() for lang in task.languages for name in names)


def _detect_saved(root: Path, task: TaskSpec) -> bool:
    return _any_lang_file(root, task, ["dataset_dict.json"])


def _detect_hub_parquet(root: Path, task: TaskSpec) -> bool:
    return any(
        glob.glob(str(root / lang / pattern))
        for lang in task.languages
        for pattern in ("*-of-*.parquet", "*/0000.parquet")
    )


def _detect_xnli_original(root: Path, task: TaskSpec) -> bool:
    return task.name == "xnli" and any(
        (root / name).exists() for name in ("XNLI-1.0", "xnli.dev.tsv", "xnli.test.tsv", "multinli_1.0", "XNLI-MT-1.0")
    )


def _detect_pawsx_original(root: Path, task: TaskSpec) -> bool:
    return task.name == "pawsx" and (
        (root / "x-final").is_dir() or _any_lang_file(root, task, ["dev_2k.tsv", "test_2k.tsv"])
    )


def _detect_marc_original(root: Path, task: TaskSpec) -> bool:
    return task.name == "marc" and any(
        glob.glob(str(base / split / "dataset_*.json"))
        for base in (root, root / "json")
        for split in ("train", "dev", "test")
    )


def _detect_xtreme(root: Path, task: TaskSpec) -> bool:
    return any(
        (root / f"{prefix}-{lang}.tsv").exists() for prefix in ("train", "dev", "test") for lang in task.languages
    )


def _detect_plain(root: Path, task: TaskSpec) -> bool:
    names = [f"{stem}.{ext}" for stems in _SPLIT_STEMS.values() for stem in stems for ext in _PLAIN_EXTENSIONS]
    return _any_lang_file(root, task, names)


Locator = Callable[[Path, TaskSpec, str, str], _Source]

# Order matters: the original PAWS-X folders also hold a train.tsv, which "plain" would accept.
_LAYOUTS: tuple[tuple[str, Callable[[Path, TaskSpec], bool], Locator], ...] = (
    ("saved", _detect_saved, _locate_saved),
    ("hub-parquet", _detect_hub_parquet, _locate_hub_parquet),
    ("xnli-original", _detect_xnli_original, _locate_xnli_original),
    ("pawsx-original", _detect_pawsx_original, _locate_pawsx_original),
    ("marc-original", _detect_marc_original, _locate_marc_original),
    ("xtreme", _detect_xtreme, _locate_xtreme),
    ("plain", _detect_plain, _locate_plain),
)


def _no_data_hint(task: TaskSpec) -> str:
    originals = {
        "xnli": "the original XNLI-1.0 TSVs with the MultiNLI train jsonl",
        "pawsx": "the original x-final folder",
        "marc": "the original json/{train,dev,test}/dataset_<lang>_<split>.json files",
        "panx": "XTREME's panx/{train,dev,test}-<lang>.tsv (test files need their tags)",
    }.get(task.name, "the original release files")
    return (
        f"download it elsewhere and pass --data-dir DIR (a saved HF dataset per language, "
        f"the hub's parquet snapshot, {originals}, or XTREME's download)"
    )


def detect_layout(task: TaskSpec, data_dir: str | Path) -> tuple[str, Path]:
    """Name and root folder of the layout under ``data_dir`` (``data_dir/<task>/`` is tried first)."""
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataUnavailable(
            f"{task.name.upper()} data not found: --data-dir {data_dir} is not a directory; {_no_data_hint(task)}"
        )
    for root in (data_dir / task.name, data_dir):
        for name, detect, _ in _LAYOUTS:
            if root.is_dir() and detect(root, task):
                return name, root
    raise DataUnavailable(
        f"{task.name.upper()} data not found in {data_dir}: no known layout there "
        f"(e.g. en/dataset_dict.json, en/train-00000-of-00001.parquet, train-en.tsv, en/train.jsonl); {_no_data_hint(task)}"
    )


def _wanted_parts(task: TaskSpec, languages: Sequence[str] | None, eval_splits: Sequence[str]) -> list[tuple[str, str]]:
    """(split, language) pairs to load: the source language's train (zero-shot) plus evaluation splits."""
    languages = tuple(task.languages if languages is None else languages)
    unknown = sorted(set(languages) - set(task.languages)) + sorted(set(eval_splits) - set(EVAL_SPLITS))
    if unknown:
        raise ValueError(f"{task.name}: unknown language(s)/split(s) {unknown}; languages are {task.languages}")
    return [("train", task.source_language)] + [(split, lang) for lang in languages for split in eval_splits]


def _unlabelled_parts(task: TaskSpec, languages: Sequence[str]) -> list[tuple[str, str]]:
    """(train, language) pairs whose text (never labels) self-training reads."""
    unknown = sorted(set(languages) - set(task.languages))
    if unknown:
        raise ValueError(f"{task.name}: unknown language(s) {unknown}; languages are {task.languages}")
    return [("train", lang) for lang in dict.fromkeys(languages)]


def _plan(
    task: TaskSpec, data_dir: str | Path, parts: Sequence[tuple[str, str]], *, labelled: bool = True
) -> dict[tuple[str, str], _Source]:
    """Map every (split, language) part to its files, raising if any file is missing (reads nothing big).

    Unlabelled parts may come from files without labels (``labelled=False``).
    """
    layout, root = detect_layout(task, data_dir)
    locate = next(locator for name, _, locator in _LAYOUTS if name == layout)
    plan = {part: locate(root, task, *part) for part in parts}
    problems = [source.problem for source in plan.values() if source.problem] if labelled else []
    missing = list(dict.fromkeys(str(path) for source in plan.values() for path in source.missing()))
    if missing:
        shown = ", ".join(missing[:3]) + (f" (and {len(missing) - 3} more)" if len(missing) > 3 else "")
        raise DataUnavailable(
            f"{task.name.upper()} data incomplete in {root} ({layout} layout): missing {shown}; "
            f"add the missing files or pass --data-dir DIR pointing at a complete copy"
        )
    if problems:
        raise DataUnavailable(
            f"{task.name.upper()} data unusable in {root} ({layout} layout): {problems[0]}; "
            f"pass --data-dir DIR with labelled data (the original release files, a saved HF dataset or the hub's parquet snapshot)"
        )
    return plan


# --------------------------------------------------------------------------------------------
# Reading and normalising
# --------------------------------------------------------------------------------------------


def _label_lookup(task: TaskSpec) -> dict[str, int]:
    """Every spelling of a label we accept -> its id (names, numeric strings, known aliases)."""
    lookup = {name.lower(): index for index, name in enumerate(task.label_names)}
    lookup.update({str(index): index for index in range(task.num_labels)})
    lookup.update({alias: lookup[name] for alias, name in _LABEL_ALIASES.items() if name in lookup})
    return lookup


def _class_names(feature: Any) -> list[str] | None:
    """The names of a ``ClassLabel`` column, or of a list-of-``ClassLabel`` column (WikiANN's ``ner_tags``)."""
    inner = getattr(feature, "feature", feature)
    return list(inner.names) if isinstance(inner, ClassLabel) else None


def _label_id(value: Any, lookup: dict[str, int], names: list[str] | None) -> int:
    if names is not None and isinstance(value, int) and 0 <= value < len(names):
        value = names[value]
    return lookup.get(str(value).strip().lower(), -1)


def _tag_ids(
    tags: Sequence[Any] | None, words: Sequence[str], lookup: dict[str, int], names: list[str] | None
) -> list[int]:
    """A sentence's tags as ids; ``[-1]`` (dropped later) when a tag is unknown or the counts differ."""
    if tags is None or len(tags) != len(words):
        return [-1]
    ids = [_label_id(tag, lookup, names) for tag in tags]
    return [-1] if -1 in ids else ids


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
    """Map labels to ids (-1 when unknown, dropped later) and missing texts to "" (PAWS-X has a few).

    ``label_field`` None: unlabelled text, texts only. ``token_level``: texts are word lists and
    labels tag lists (one tag per word).
    """
    clean = _clean_words if token_level else _clean_text
    out = {name: [clean(text) for text in batch[name]] for name in text_fields}
    if label_field is None:
        return out
    if token_level:
        words = out[text_fields[0]]
        out[label_field] = [_tag_ids(tags, row, lookup, names) for tags, row in zip(batch[label_field], words)]
    else:
        out[label_field] = [_label_id(value, lookup, names) for value in batch[label_field]]
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
        out["label"] = [int(stars) - 1 if str(stars).strip().isdigit() else -1 for stars in batch["stars"]]
    return out


def _marc_release_columns(ds: Dataset, task: TaskSpec) -> Dataset:
    if "review_body" not in ds.column_names or task.text_fields[0] in ds.column_names:
        return ds
    return ds.map(_marc_release_batch, batched=True, keep_in_memory=True, remove_columns=ds.column_names)


# Turn a known foreign column set into the task's own, before the columns are checked.
_COLUMN_ADAPTERS: dict[str, Callable[[Dataset, TaskSpec], Dataset]] = {"marc": _marc_release_columns}


def _normalize(ds: Dataset, task: TaskSpec, source: _Source, origin: str, *, labelled: bool = True) -> Dataset:
    """Bring one part to the task's exact columns and ClassLabel, whatever file it came from.

    ``labelled=False`` keeps the text columns only (unlabelled target-language text).
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
        "lookup": _label_lookup(task),
        "names": _class_names(ds.features[task.label_field]) if labelled else None,
        "token_level": task.kind == "token",
    }
    labels = {task.label_field: _label_feature(task, ids=True)} if labelled else {}
    features = Features({**texts, **labels})
    ds = ds.map(_clean_batch, batched=True, keep_in_memory=True, fn_kwargs=kwargs, features=features)
    if not labelled:
        return ds
    ds = ds.filter(_known_label, input_columns=task.label_field, batched=True, keep_in_memory=True)
    if len(ds) == 0:
        raise DataUnavailable(
            f"{origin}: no rows with a known label {task.label_names}; pass --data-dir DIR with labelled {task.name} data"
        )
    return ds.cast_column(task.label_field, _label_feature(task))


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


def _read_local(source: _Source) -> Dataset:
    if source.kind == "disk":
        return datasets.load_from_disk(str(source.files[0]))
    if source.kind == "conll":
        return _read_conll(source.files[0])
    return datasets.load_dataset(
        source.kind, data_files=[str(path) for path in source.files], split="train", **source.options
    )


def _load_local(
    task: TaskSpec, data_dir: str | Path, parts: Sequence[tuple[str, str]], *, labelled: bool = True
) -> dict[tuple[str, str], Dataset]:
    out = {}
    for (split, lang), source in _plan(task, data_dir, parts, labelled=labelled).items():
        origin = f"{source.files[0]}" + (f" [language={lang}]" if source.language else "")
        out[split, lang] = _normalize(_read_local(source), task, source, origin, labelled=labelled)
    return out


def _task_split(task: TaskSpec, split: str) -> str:
    """The task's own name for a canonical split (the hub's, and the key in our DatasetDicts)."""
    return {"train": task.train_split, "validation": task.dev_split, "test": task.test_split}[split]


# --------------------------------------------------------------------------------------------
# The hub
# --------------------------------------------------------------------------------------------


def _probe_hub(hub_id: str, timeout_s: float) -> str | None:
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


def _hub_cached_languages(task: TaskSpec, languages: Sequence[str]) -> list[str]:
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
def _hub_offline() -> Iterator[None]:
    """Make datasets/huggingface_hub go straight to their caches instead of retrying the network for minutes."""
    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _hub_message(task: TaskSpec, reason: str) -> str:
    return (
        f"{task.name.upper()} data not found: the hub ({task.hub_id}) is unreachable ({reason}) and it is not "
        f"in the local datasets cache; {_no_data_hint(task)}"
    )


def _load_hub(
    task: TaskSpec, parts: Sequence[tuple[str, str]], timeout_s: float, *, labelled: bool = True
) -> dict[tuple[str, str], Dataset]:
    """One ``load_dataset(hub_id, config)`` per language (every task here has one config per language)."""
    needed = list(dict.fromkeys(lang for _, lang in parts))
    reason = _probe_hub(task.hub_id, timeout_s)
    if reason is not None and len(_hub_cached_languages(task, needed)) < len(needed):
        raise DataUnavailable(_hub_message(task, reason))
    out = {}
    with _hub_offline() if reason is not None else contextlib.nullcontext():
        for lang in needed:
            config = task.hub_config_name(lang)
            splits = [split for split, part_lang in parts if part_lang == lang]
            try:
                loaded = datasets.load_dataset(task.hub_id, config, split=[_task_split(task, s) for s in splits])
            except (OSError, ValueError) as error:
                reason = f"{type(error).__name__} loading config {config!r}"
                raise DataUnavailable(_hub_message(task, reason)) from error
            for split, ds in zip(splits, loaded):
                origin = f"{task.hub_id}[{config}/{_task_split(task, split)}]"
                out[split, lang] = _normalize(ds, task, _Source("hub", ()), origin, labelled=labelled)
    return out


def _load_parts(
    task: TaskSpec, data_dir: str | Path | None, parts: Sequence[tuple[str, str]], timeout_s: float, *, labelled: bool
) -> dict[tuple[str, str], Dataset]:
    if data_dir is None:
        return _load_hub(task, parts, timeout_s, labelled=labelled)
    return _load_local(task, data_dir, parts, labelled=labelled)


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def load_raw(
    task: TaskSpec,
    data_dir: str | Path | None = None,
    *,
    languages: Sequence[str] | None = None,
    eval_splits: Sequence[str] = EVAL_SPLITS,
    timeout_s: float = 10.0,
) -> DatasetDict:
    """The task's data as ``train_<source>`` + ``<eval split>_<lang>`` for each language (default: all).

    Only the source language's train split is loaded: the methods are zero-shot. ``data_dir``
    None means the hub (falling back to the local cache when the hub is unreachable).
    """
    parts = _load_parts(task, data_dir, _wanted_parts(task, languages, eval_splits), timeout_s, labelled=True)
    return DatasetDict({split_key(_task_split(task, split), lang): ds for (split, lang), ds in parts.items()})


def load_unlabelled(
    task: TaskSpec, data_dir: str | Path | None, languages: Sequence[str], *, timeout_s: float = 10.0
) -> DatasetDict:
    """``unlabelled_<lang>``: the train split of each language with its text column(s) only.

    The label column is dropped here, so a method that reads target-language text (self-training,
    pseudo-labelling) cannot see a target label: zero-shot by construction. ``tokenize_cached``
    takes these parts (labels -1, or for token tasks 0 at first sub-words and -100 elsewhere).
    """
    parts = _load_parts(task, data_dir, _unlabelled_parts(task, languages), timeout_s, labelled=False)
    return DatasetDict({split_key(UNLABELLED_SPLIT, lang): ds for (_, lang), ds in parts.items()})


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
    parts = _wanted_parts(task, languages, eval_splits)
    unlabelled = _unlabelled_parts(task, unlabelled_languages)
    if data_dir is not None:
        _plan(task, data_dir, parts)
        if unlabelled:
            _plan(task, data_dir, unlabelled, labelled=False)
        return
    needed = list(dict.fromkeys(lang for _, lang in [*parts, *unlabelled]))
    if len(_hub_cached_languages(task, needed)) == len(needed):
        return
    reason = _probe_hub(task.hub_id, timeout_s)
    if reason is not None:
        raise DataUnavailable(_hub_message(task, reason))


# --------------------------------------------------------------------------------------------
# Tokenisation, cached by content
# --------------------------------------------------------------------------------------------


def _tokenizer_files(tokenizer_dir: Path) -> list[Path]:
    if not tokenizer_dir.is_dir():
        raise ValueError(
            f"tokenizer_dir {tokenizer_dir} is not a local folder; resolve hub ids first (e.g. huggingface_hub.snapshot_download)"
        )
    files = sorted(
        path for path in tokenizer_dir.iterdir() if path.is_file() and path.name.startswith(_TOKENIZER_FILE_PREFIXES)
    )
    if not files:
        raise ValueError(f"no tokenizer files (tokenizer.json, vocab.txt, ...) in {tokenizer_dir}")
    return files


def dataset_content_hash(ds: Dataset) -> str:
    """sha256 of a dataset's rows and schema: ``_fingerprint`` depends on cache-file mtimes, so it is not stable across machines."""
    digest = hashlib.sha256()
    for batch in ds.with_format("arrow").iter(batch_size=65_536):
        table = batch.combine_chunks()  # same bytes for the same rows, however the table was chunked
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        digest.update(sink.getvalue())
    digest.update(str(len(ds)).encode())
    return digest.hexdigest()


def content_cache_key(
    format_version: str, fields: Sequence[str], tokenizer_dir: str | Path, parts: DatasetDict
) -> str:
    """sha256 over what tokenised data depends on: format and library versions, ``fields`` (task, columns,
    max_length), the tokenizer files and every part's content."""
    import tokenizers
    import transformers

    digest = hashlib.sha256()
    header = [format_version, transformers.__version__, tokenizers.__version__, *fields]
    digest.update(json.dumps(header).encode())
    for path in _tokenizer_files(Path(tokenizer_dir)):
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    for name in sorted(parts):
        digest.update(name.encode() + b"\0" + dataset_content_hash(parts[name]).encode())
    return digest.hexdigest()


def tokenized_cache_key(raw: DatasetDict, task: TaskSpec, tokenizer_dir: str | Path, max_length: int) -> str:
    """What the tokenised data depends on: tokenizer files, data content, task kind and fields, max_length,
    code version (the kind: word-aligned labels are another format than one label per example)."""
    fields = [task.name, task.kind, *task.text_fields, task.label_field, str(max_length)]
    return content_cache_key(TOKENIZED_FORMAT_VERSION, fields, tokenizer_dir, raw)


def _encode_batch(
    batch: dict[str, list], *, tokenizer: Any, text_fields: Sequence[str], label_field: str, max_length: int
) -> dict[str, list]:
    """Tokenise without padding (the collator pads per batch); pairs go in as two texts.

    A part without ``label_field`` (unlabelled text) gets ``NO_LABEL``.
    """
    texts = [batch[name] for name in text_fields]
    encoded = tokenizer(*texts, truncation=True, max_length=max_length)
    out = {name: encoded[name] for name in ("input_ids", "attention_mask", "token_type_ids") if name in encoded}
    out["labels"] = batch[label_field] if label_field in batch else [NO_LABEL] * len(encoded["input_ids"])
    out["length"] = [len(ids) for ids in encoded["input_ids"]]
    return out


def align_labels_to_subwords(word_ids: Sequence[int | None], word_labels: Sequence[int] | None = None) -> list[int]:
    """One label per sub-word: a word's label on its first sub-word, ``IGNORE_INDEX`` on its other
    sub-words and on special tokens (XTREME's convention for NER: one prediction per word).

    ``word_labels`` None (unlabelled text): ``WORD_POSITION`` on first sub-words, so a pseudo-labeller
    knows where the words start. ``word_ids`` is a fast tokenizer's ``encoding.word_ids(row)``.
    """
    out, previous = [], None
    for word in word_ids:
        if word is None or word == previous:
            out.append(IGNORE_INDEX)
        else:
            out.append(WORD_POSITION if word_labels is None else int(word_labels[word]))
        previous = word
    return out


def _encode_token_batch(
    batch: dict[str, list], *, tokenizer: Any, text_fields: Sequence[str], label_field: str, max_length: int
) -> dict[str, list]:
    """Tokenise word lists (``is_split_into_words``), unpadded, with the tags moved onto first sub-words.

    Words cut off by ``max_length`` lose their tags: they are neither trained on nor scored, as in
    XTREME. A non-empty word the tokenizer turns into nothing (a lone zero-width space) becomes the
    unknown token instead, as XTREME does, so that it keeps its tag.
    """
    (field,) = text_fields
    words = batch[field]
    encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    truncated = [len(ids) >= max_length for ids in encoded["input_ids"]]
    vanished = {row: gone for row in range(len(words))
                if (gone := _vanished_words(encoded.word_ids(row), words[row], truncated[row]))}
    if vanished:  # rare: encode the batch again with those words replaced
        words = [[tokenizer.unk_token if index in vanished.get(row, ()) else word
                  for index, word in enumerate(sentence)] for row, sentence in enumerate(words)]
        encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    out = {name: encoded[name] for name in ("input_ids", "attention_mask", "token_type_ids") if name in encoded}
    tags = batch[label_field] if label_field in batch else None
    out["labels"] = [align_labels_to_subwords(encoded.word_ids(row), None if tags is None else tags[row])
                     for row in range(len(encoded["input_ids"]))]
    out["length"] = [len(ids) for ids in encoded["input_ids"]]
    return out


def _vanished_words(word_ids: Sequence[int | None], words: Sequence[str], truncated: bool) -> set[int]:
    """Indices of non-empty words with no sub-word (only up to the last kept word when truncated)."""
    present = {word for word in word_ids if word is not None}
    limit = max(present) + 1 if truncated and present else len(words)
    return {index for index in range(limit) if index not in present and words[index]}


def _tokenized_features(tokenizer: Any, *, token_labels: bool = False) -> Features:
    columns = {"input_ids": List(Value("int32")), "attention_mask": List(Value("int8"))}
    if "token_type_ids" in tokenizer.model_input_names:
        columns["token_type_ids"] = List(Value("int8"))
    labels = List(Value("int64")) if token_labels else Value("int64")
    return Features({**columns, "labels": labels, "length": Value("int32")})


def _tokenize_splits(
    raw: DatasetDict, task: TaskSpec, tokenizer_dir: str | Path, max_length: int, work_dir: Path, key: str
) -> DatasetDict:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    token_labels = task.kind == "token"
    if token_labels and not tokenizer.is_fast:
        raise ValueError(f"{task.name} needs a fast tokenizer (word alignment); {tokenizer_dir} has no tokenizer.json")
    kwargs = {
        "tokenizer": tokenizer,
        "text_fields": task.text_fields,
        "label_field": task.label_field,
        "max_length": max_length,
    }
    return DatasetDict(
        {
            name: ds.map(
                _encode_token_batch if token_labels else _encode_batch,
                batched=True,
                fn_kwargs=kwargs,
                remove_columns=ds.column_names,
                features=_tokenized_features(tokenizer, token_labels=token_labels),
                cache_file_name=str(work_dir / f"{name}.arrow"),  # bounded memory for XNLI's 393k train rows
                new_fingerprint=f"{key[:16]}-{name}",  # we already know what this is; skip hashing the tokenizer
                desc=f"tokenize {name}",
            )
            for name, ds in raw.items()
        }
    )


def publish_cached(cache_dir: str | Path, key: str, build: Callable[[Path], DatasetDict], *, task: TaskSpec,
                   tokenizer_dir: str | Path, max_length: int, data_format: str) -> Path:
    """``cache_dir/tokenized/<key[:16]>``, built by ``build(work_dir)`` and saved unless it is there already.

    The folder appears atomically (saved aside, then renamed), so concurrent sweeps either see a
    complete cache or none; when two build it at once, the loser's copy is discarded.
    """
    folder = Path(cache_dir) / "tokenized"
    target = folder / key[:16]
    if (target / "dataset_dict.json").exists():
        return target
    meta = {"key": key, "task": task.name, "max_length": max_length, "tokenizer_dir": str(tokenizer_dir),
            "format": data_format}
    scratch = folder / f".tmp-{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        (scratch / "work").mkdir(parents=True)
        build(scratch / "work").save_to_disk(str(scratch / "data"))
        (scratch / "data" / "xlt_tokenized.json").write_text(json.dumps(meta, indent=1))
        try:
            os.replace(scratch / "data", target)
        except OSError:
            if not (target / "dataset_dict.json").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def tokenize_cached(
    raw: DatasetDict, task: TaskSpec, tokenizer_dir: str | Path, max_length: int, cache_dir: str | Path
) -> Path:
    """Tokenise ``raw`` once per (content, tokenizer, max_length); returns the saved DatasetDict folder.

    ``raw`` may hold ``load_unlabelled`` parts (no label column): their ``labels`` are ``NO_LABEL``
    (sequence tasks) or ``WORD_POSITION`` at first sub-words and ``IGNORE_INDEX`` elsewhere (token tasks).
    """
    key = tokenized_cache_key(raw, task, tokenizer_dir, max_length)
    return publish_cached(cache_dir, key, lambda work_dir: _tokenize_splits(raw, task, tokenizer_dir, max_length,
                                                                             work_dir, key),
                          task=task, tokenizer_dir=tokenizer_dir, max_length=max_length,
                          data_format=TOKENIZED_FORMAT_VERSION)


def load_tokenized(path: str | Path) -> DatasetDict:
    """The tokenised DatasetDict written by ``tokenize_cached`` (memory-mapped, not copied)."""
    return datasets.load_from_disk(str(path))


class DynamicPaddingCollator:
    """Pads a list of tokenised examples to the longest one in the batch (torch tensors).

    A thin wrapper over ``DataCollatorWithPadding`` that drops the ``length`` column (only there
    for length-grouped sampling) and ``language`` (a string), pads token-level ``labels`` (one per
    sub-word, ``token_labels``) with ``IGNORE_INDEX`` as ``input_ids``, and pads the further encodings a
    method adds: each group ``<prefix>input_ids`` / ``<prefix>attention_mask`` /
    ``<prefix>token_type_ids`` (X-Mixup's ``source_`` and ``backtrans_`` pairs) to its own longest
    row. A group with ids only (SALT's ``source_input_ids``, position-aligned with ``input_ids``)
    has no mask of its own, so it is padded to the width of ``input_ids`` and shares its mask.
    """

    _GROUP_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")
    _DROPPED = ("length", "language")

    def __init__(self, tokenizer: Any, *, token_labels: bool = False) -> None:
        from transformers import DataCollatorWithPadding

        self.tokenizer = tokenizer
        self.token_labels = token_labels
        self._pad = DataCollatorWithPadding(tokenizer, return_tensors="pt")

    def _groups(self, names: Sequence[str]) -> dict[str, list[str]]:
        """prefix -> its columns, for every prefix other than "" that has an ``input_ids`` column."""
        prefixes = [name[: -len("input_ids")] for name in names if name.endswith("input_ids") and name != "input_ids"]
        return {
            prefix: [prefix + column for column in self._GROUP_COLUMNS if prefix + column in names]
            for prefix in prefixes
        }

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        groups = self._groups(list(examples[0]))
        token_labels = self.token_labels and "labels" in examples[0]
        dropped = {*self._DROPPED, *(name for columns in groups.values() for name in columns),
                   *(("labels",) if token_labels else ())}
        batch = self._pad([{name: value for name, value in example.items() if name not in dropped}
                           for example in examples])
        if token_labels:
            batch["labels"] = self._pad_column([example["labels"] for example in examples], batch["input_ids"].shape[1],
                                               IGNORE_INDEX, torch.long)
        for prefix, columns in groups.items():
            own_mask = f"{prefix}attention_mask" in columns
            width = (max(len(example[f"{prefix}input_ids"]) for example in examples) if own_mask
                     else batch["input_ids"].shape[1])
            for name in columns:
                pad = self.tokenizer.pad_token_id if name.endswith("input_ids") else 0
                batch[name] = self._pad_column([example[name] for example in examples], width, pad,
                                               batch["input_ids"].dtype)
        return batch

    def _pad_column(self, rows: Sequence[Sequence[int]], width: int, pad: int, dtype: Any) -> Any:
        import torch

        column = torch.full((len(rows), width), pad, dtype=dtype)
        right = self.tokenizer.padding_side == "right"
        for index, values in enumerate(rows):
            values = torch.as_tensor(values, dtype=dtype)
            if right:
                column[index, :len(values)] = values
            else:
                column[index, width - len(values):] = values
        return column


def make_collator(tokenizer_dir: str | Path, token_labels: bool = False) -> DynamicPaddingCollator:
    """The batch collator for data tokenised with the tokenizer in ``tokenizer_dir`` (``token_labels``:
    a token task's data, one label per sub-word)."""
    from transformers import AutoTokenizer

    return DynamicPaddingCollator(AutoTokenizer.from_pretrained(str(tokenizer_dir)), token_labels=token_labels)
