"""Where a task's data lives on disk: the local layouts, and which files serve each (split, language) part.

Layouts understood by ``--data-dir DIR`` (looked for in ``DIR/<task>/`` first, then ``DIR``):

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

import csv
import glob
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Features, Value

from trainables.tasks import TaskSpec

EVAL_SPLITS = ("validation", "test")
_TSV = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}  # raw TSV releases: sentences contain quotes
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
class Source:
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


def _locate_saved(root: Path, task: TaskSpec, split: str, lang: str) -> Source:
    return Source("disk", (root / lang / split, root / lang / "dataset_dict.json"))


def _locate_hub_parquet(root: Path, task: TaskSpec, split: str, lang: str) -> Source:
    shards = sorted(glob.glob(str(root / lang / f"{split}-*.parquet")))
    shards = shards or sorted(glob.glob(str(root / lang / split / "*.parquet")))
    files = tuple(Path(shard) for shard in shards) or (root / lang / f"{split}-00000-of-00001.parquet",)
    return Source("parquet", files)


def _locate_plain(root: Path, task: TaskSpec, split: str, lang: str) -> Source:
    columns = [*task.text_fields, task.label_field]
    for stem in _SPLIT_STEMS[split]:
        for ext in _PLAIN_EXTENSIONS:
            path = root / lang / f"{stem}.{ext}"
            if not path.exists() or (task.kind == "token" and ext == "csv"):
                continue
            if task.kind == "token" and ext == "tsv":
                return _conll_source(task, path)
            if ext == "tsv":
                return Source("csv", (path,), _tsv_options(columns))
            if ext == "csv":
                return Source(
                    "csv", (path,), {"usecols": columns, "features": _string_features(columns), "na_filter": False}
                )
            return Source("json" if ext in ("json", "jsonl") else "parquet", (path,))
    return Source("json", (root / lang / f"{split}.{{{','.join(_PLAIN_EXTENSIONS)}}}",))


def _locate_xnli_original(root: Path, task: TaskSpec, split: str, lang: str) -> Source:
    premise, hypothesis = task.text_fields
    if split != "train":
        base = root / "XNLI-1.0" if (root / "XNLI-1.0").is_dir() else root
        path = base / ("xnli.dev.tsv" if split == "validation" else "xnli.test.tsv")
        rename = {"sentence1": premise, "sentence2": hypothesis, "gold_label": task.label_field}
        return Source("csv", (path,), _tsv_options(["language", "gold_label", "sentence1", "sentence2"]), rename, lang)
    mt_train = root / "XNLI-MT-1.0" / "multinli" / f"multinli.train.{lang}.tsv"
    english = [root / "multinli_1.0" / "multinli_1.0_train.jsonl", root / "multinli_1.0_train.jsonl"]
    # Another language's train (unlabelled text for self-training) is XNLI-MT's, never MultiNLI's English.
    train = _first_existing([*english, mt_train] if lang == task.source_language else [mt_train])
    if train.suffix == ".tsv":  # XNLI-MT: header "premise hypo label", labels say "contradictory"
        rename = {"premise": premise, "hypo": hypothesis, "label": task.label_field}
        return Source("csv", (train,), _tsv_options(["premise", "hypo", "label"]), rename)
    rename = {"sentence1": premise, "sentence2": hypothesis, "gold_label": task.label_field}
    return Source("json", (train,), {}, rename)


def _locate_pawsx_original(root: Path, task: TaskSpec, split: str, lang: str) -> Source:
    base = root / "x-final" if (root / "x-final").is_dir() else root
    if split == "train":
        name = "train.tsv" if lang == task.source_language else "translated_train.tsv"
    else:
        name = "dev_2k.tsv" if split == "validation" else "test_2k.tsv"
    columns = ["sentence1", "sentence2", "label"]
    rename = dict(zip(columns, [*task.text_fields, task.label_field]))
    return Source("csv", (base / lang / name,), _tsv_options(columns), rename)


def _locate_xtreme(root: Path, task: TaskSpec, split: str, lang: str) -> Source:
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
    source = Source("csv", (path,), options)
    if path.exists() and _tsv_width(path) < len(columns):
        source.problem = f"{path} has no label column (XTREME's download strips test labels)"
    return source


def _locate_marc_original(root: Path, task: TaskSpec, split: str, lang: str) -> Source:
    base = root / "json" if (root / "json").is_dir() else root
    name = {"train": "train", "validation": "dev", "test": "test"}[split]
    return Source("json", (base / name / f"dataset_{lang}_{name}.json",))


def _conll_source(task: TaskSpec, path: Path, why_no_tags: str = "") -> Source:
    """A word-per-line TSV (``word<TAB>tag``, blank line between sentences) read into the task's two columns."""
    source = Source("conll", (path,), rename={"words": task.text_fields[0], "tags": task.label_field})
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


Locator = Callable[[Path, TaskSpec, str, str], Source]

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


def no_data_hint(task: TaskSpec) -> str:
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
            f"{task.name.upper()} data not found: --data-dir {data_dir} is not a directory; {no_data_hint(task)}"
        )
    for root in (data_dir / task.name, data_dir):
        for name, detect, _ in _LAYOUTS:
            if root.is_dir() and detect(root, task):
                return name, root
    raise DataUnavailable(
        f"{task.name.upper()} data not found in {data_dir}: no known layout there "
        f"(e.g. en/dataset_dict.json, en/train-00000-of-00001.parquet, train-en.tsv, en/train.jsonl); {no_data_hint(task)}"
    )


def wanted_parts(task: TaskSpec, languages: Sequence[str] | None, eval_splits: Sequence[str]) -> list[tuple[str, str]]:
    """(split, language) pairs to load: the source language's train (zero-shot) plus evaluation splits."""
    languages = tuple(task.languages if languages is None else languages)
    unknown = sorted(set(languages) - set(task.languages)) + sorted(set(eval_splits) - set(EVAL_SPLITS))
    if unknown:
        raise ValueError(f"{task.name}: unknown language(s)/split(s) {unknown}; languages are {task.languages}")
    return [("train", task.source_language)] + [(split, lang) for lang in languages for split in eval_splits]


def unlabelled_parts(task: TaskSpec, languages: Sequence[str]) -> list[tuple[str, str]]:
    """(train, language) pairs whose text (never labels) self-training reads."""
    unknown = sorted(set(languages) - set(task.languages))
    if unknown:
        raise ValueError(f"{task.name}: unknown language(s) {unknown}; languages are {task.languages}")
    return [("train", lang) for lang in dict.fromkeys(languages)]


def plan_parts(
    task: TaskSpec, data_dir: str | Path, parts: Sequence[tuple[str, str]], *, labelled: bool = True
) -> dict[tuple[str, str], Source]:
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
        # A copy without some target languages can still run on the others (a sweep's --languages).
        absent = {lang for (_, lang), source in plan.items() if source.missing()}
        have = [lang for lang in task.languages if lang not in absent]
        subset = (f", or run on the languages it has (--languages {','.join(have)})"
                  if task.source_language in have and len(have) > 1 else "")
        raise DataUnavailable(
            f"{task.name.upper()} data incomplete in {root} ({layout} layout): missing {shown}; "
            f"add the missing files or pass --data-dir DIR pointing at a complete copy{subset}"
        )
    if problems:
        raise DataUnavailable(
            f"{task.name.upper()} data unusable in {root} ({layout} layout): {problems[0]}; "
            f"pass --data-dir DIR with labelled data (the original release files, a saved HF dataset or the hub's parquet snapshot)"
        )
    return plan


def task_split(task: TaskSpec, split: str) -> str:
    """The task's own name for a canonical split (the hub's, and the key in our DatasetDicts)."""
    return {"train": task.train_split, "validation": task.dev_split, "test": task.test_split}[split]
