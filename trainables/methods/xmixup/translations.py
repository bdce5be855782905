"""X-Mixup's parallel data: XTREME's released translations, read into (target, English source) pairs.

X-Mixup trains on pairs: an English training example and its machine translation (translate-train,
the label carried over), and tests on the real target-language example beside its machine
translation into English (translate-test). Scheduled sampling also needs the back-translation of
each English example (en -> target -> en). XTREME releases translate-train and translate-test
(https://github.com/google-research/xtreme, bucket ``xtreme_translations``) but not the
back-translations: the X-Mixup authors made theirs with Google Translate, so those have to be
made the same way and put beside the others. Layout under a translations root (looked for in
``DIR/<XNLI|PAWSX>/``, then ``DIR/<task>/``, then ``DIR``), all TSV without header, no quoting:

* ``translate-train/en-<lang>-translated.tsv``: en_text1, en_text2, text1, text2, label;
* ``back-translate/en-<lang>-en.tsv``: en_text1, en_text2, back_text1, back_text2, label, row-aligned
  with that language's translate-train file;
* ``translate-test/test-<lang>-en-translated.tsv``: one row per row of the ``<lang>`` test split, in
  order: orig_text1, orig_text2, en_text1, en_text2[, label] or en_text1, en_text2[, label];
* ``translate-dev/dev-<lang>-en-translated.tsv``: the same for the validation split (only needed to
  select on every language's dev set).

Tokenising the pairs read here, cached by content, is ``trainables.methods.xmixup.parallel_cache``.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import huggingface_hub
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, concatenate_datasets
from huggingface_hub.errors import HfHubHTTPError

from trainables.data import label_lookup, probe_hub
from trainables.paired import BACK, SOURCE, TRAIN_PART
from trainables.tasks import TaskSpec, split_key

XTREME_FOLDERS = {"xnli": "XNLI", "pawsx": "PAWSX"}
_FILES = {
    "train": "translate-train/en-{lang}-translated.tsv",
    "back": "back-translate/en-{lang}-en.tsv",
    "test": "translate-test/test-{lang}-en-translated.tsv",
    "validation": "translate-dev/dev-{lang}-en-translated.tsv",
}
_KIND_FOLDERS = tuple(sorted({pattern.split("/")[0] for pattern in _FILES.values()}))
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LABEL_TOLERANCE = 0.01  # translate-test labels may disagree with the split on this share of rows
_SHOWN_MISSING = 6
_HINT = (
    "pass --xmixup-translations DIR with XTREME's translate-train/translate-test files "
    "and the back-translations (docs/methods.md)"
)
_probe_hub = probe_hub  # looked up here at each call, so a test can stand in for the hub
# Builds generated translations for generated data: (task, cache_dir) -> root. Training code does not
# know who makes them; the smoke package registers its builder here (``use_generated_translations``).
_generate: Callable[[TaskSpec, Path], Path] | None = None


class TranslationsUnavailable(Exception):
    """X-Mixup's translations cannot be used; the message (one line) says what is missing and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def translation_file(kind: str, lang: str) -> str:
    """Relative name of one file: kind is "train", "back", "test" or "validation"."""
    return _FILES[kind].format(lang=lang)


def xtreme_folder(task: TaskSpec) -> str:
    return XTREME_FOLDERS.get(task.name, task.name.upper())


def translations_root(root: str | Path, task: TaskSpec) -> Path:
    """The folder holding the task's translate-* folders: ``root/<XTREME folder>``, ``root/<task>`` or ``root``."""
    root = Path(root).expanduser()
    candidates = [root / xtreme_folder(task), root / task.name, root]
    for candidate in candidates:
        if any((candidate / folder).is_dir() for folder in _KIND_FOLDERS):
            return candidate
    return next((candidate for candidate in candidates if candidate.is_dir()), root)


def _check_languages(task: TaskSpec, languages: Sequence[str], dev_languages: Sequence[str]) -> None:
    unknown = sorted(set(languages) - set(task.target_languages)) + sorted(set(dev_languages) - set(task.languages))
    if unknown or not languages:
        raise ValueError(
            f"{task.name}: translate-train languages must be target languages {task.target_languages} "
            f"(got {list(languages)}; unknown {unknown})"
        )


def required_files(task: TaskSpec, languages: Sequence[str], *, dev_languages: Sequence[str] = ()) -> list[str]:
    """Relative names of every file ``load_parallel`` reads: translate-train and back-translate for
    ``languages``, translate-test for every target language, translate-dev for ``dev_languages``."""
    _check_languages(task, languages, dev_languages)
    names = []
    for lang in task.target_languages:
        if lang in languages:
            names += [translation_file("train", lang), translation_file("back", lang)]
        names.append(translation_file("test", lang))
        if lang in dev_languages:
            names.append(translation_file("validation", lang))
    return names


def check_translations(
    task: TaskSpec, root: str | Path, languages: Sequence[str], *, dev_languages: Sequence[str] = ()
) -> None:
    """Fail fast, reading nothing, with a one-line TranslationsUnavailable naming the missing files."""
    base = translations_root(root, task)
    required = required_files(task, languages, dev_languages=dev_languages)
    missing = [name for name in required if not (base / name).is_file()]
    if missing:
        shown = ", ".join(missing[:_SHOWN_MISSING])
        if len(missing) > _SHOWN_MISSING:
            shown += f" and {len(missing) - _SHOWN_MISSING} more"
        raise TranslationsUnavailable(
            f"X-Mixup translations missing under {base}: {shown} ({len(missing)} of {len(required)} files); {_HINT}"
        )


def use_generated_translations(build: Callable[[TaskSpec, Path], Path]) -> None:
    """Set what ``resolve_translations(None, ..., smoke=True)`` returns: ``build(task, cache_dir)``, a
    translations root consistent with the generated data (the smoke package registers its builder)."""
    global _generate
    _generate = build


def resolve_translations(
    spec: str | None, task: TaskSpec, cache_dir: str | Path, *, smoke: bool, timeout_s: float = 10.0
) -> Path:
    """A local folder for ``--xmixup-translations``: a directory as is, a hub dataset ``org/name``
    (local cache first, then the hub if it answers within ``timeout_s``), or None: the generated
    smoke translations under ``cache_dir`` in the smoke profile, else an error."""
    if spec is None:
        if smoke:
            if _generate is None:
                raise TranslationsUnavailable("generated translations: no builder registered (import smoke first)")
            return _generate(task, Path(cache_dir))
        raise TranslationsUnavailable(f"X-Mixup needs translated data and none was given; {_HINT}")
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if not _HUB_ID.match(spec):
        raise TranslationsUnavailable(
            f"--xmixup-translations {spec} is neither a directory nor a hub dataset id (org/name); {_HINT}"
        )
    folder = xtreme_folder(task)
    download = {
        "repo_type": "dataset",
        "allow_patterns": [f"{folder}/*", f"{task.name}/*", "translate-*", "back-translate/*"],
    }
    try:
        return Path(huggingface_hub.snapshot_download(spec, local_files_only=True, **download))
    except (OSError, ValueError):  # LocalEntryNotFoundError is an OSError
        pass
    reason = _probe_hub(spec, timeout_s)
    if reason is None:
        try:
            return Path(huggingface_hub.snapshot_download(spec, **download))
        except (HfHubHTTPError, OSError, ValueError) as error:
            reason = f"{type(error).__name__} downloading it"
    raise TranslationsUnavailable(
        f"X-Mixup translations {spec}: not a local directory, and the hub cannot serve it as a dataset ({reason}) "
        f"nor is it in the local cache; download it elsewhere and pass --xmixup-translations DIR (that folder)"
    )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _rows(path: Path) -> Iterator[list[str]]:
    """The TSV's rows (raw, QUOTE_NONE: the sentences contain quotes), blank lines skipped."""
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row:
                yield row


def _same_text(left: Sequence[str], right: Sequence[str]) -> bool:
    return [" ".join(text.split()) for text in left] == [" ".join(text.split()) for text in right]


def _train_columns(task: TaskSpec) -> list[str]:
    fields = task.text_fields
    return [*fields, *(SOURCE + name for name in fields), *(BACK + name for name in fields)]


def _train_features(task: TaskSpec) -> Features:
    return Features(
        {
            **{name: Value("string") for name in _train_columns(task)},
            task.label_field: ClassLabel(names=list(task.label_names)),
            "language": Value("string"),
        }
    )


def _translate_train(task: TaskSpec, base: Path, lang: str) -> Dataset:
    """One language's training pairs; rows whose label is unknown (or malformed rows) are dropped.

    Held in memory (XNLI: ~300 MB per language); ``parallel_cached`` writes the tokenised copy to disk.
    """
    n = len(task.text_fields)
    train_path, back_path = base / translation_file("train", lang), base / translation_file("back", lang)
    lookup = label_lookup(task)
    columns: dict[str, list] = {name: [] for name in [*_train_columns(task), task.label_field]}
    end = object()
    for count, (row, back) in enumerate(itertools.zip_longest(_rows(train_path), _rows(back_path), fillvalue=end), 1):
        if row is end or back is end:
            rows = sum(1 for _ in _rows(train_path)), sum(1 for _ in _rows(back_path))
            raise TranslationsUnavailable(
                f"{back_path} has {rows[1]} rows but {train_path} has {rows[0]}: the back-translations must be "
                f"row-aligned with translate-train; {_HINT}"
            )
        if len(row) != 2 * n + 1 or len(back) != 2 * n + 1:
            continue
        if not _same_text(row[:n], back[:n]):
            raise TranslationsUnavailable(
                f"{back_path} row {count}: its English differs from {train_path} row {count}: the back-translations "
                f"must be row-aligned with translate-train; {_HINT}"
            )
        label = lookup.get(row[2 * n].strip().lower(), -1)
        if label < 0:
            continue
        texts = [*row[n : 2 * n], *row[:n], *back[n : 2 * n]]
        for name, text in zip(_train_columns(task), texts):
            columns[name].append(text)
        columns[task.label_field].append(label)
    if not columns[task.label_field]:
        raise TranslationsUnavailable(f"{train_path}: no rows with a known label {task.label_names}; {_HINT}")
    columns["language"] = [lang] * len(columns[task.label_field])
    return Dataset.from_dict(columns, features=_train_features(task))


def _test_layout(width: int, n: int) -> tuple[int, bool] | None:
    """(index of the first English text, has a label column) for a translate-test row of ``width`` fields
    (for one-text tasks, 2 fields are read as English + label: the later key wins)."""
    return {2 * n + 1: (n, True), 2 * n: (n, False), n: (0, False), n + 1: (0, True)}.get(width)


def _with_source(task: TaskSpec, split: Dataset, path: Path | None) -> Dataset:
    """The split plus ``source_<field>``: its translate-test English (or the text itself, for English)."""
    fields = task.text_fields
    n = len(fields)
    if path is None:
        sources = [split[name] for name in fields]
    else:
        rows = list(_rows(path))
        if len(rows) != len(split):
            raise TranslationsUnavailable(
                f"{path} has {len(rows)} rows but the split it translates has {len(split)}: translate-test/dev files "
                f"must have one row per example, in order; {_HINT}"
            )
        layout = _test_layout(len(rows[0]), n) if rows else (0, False)
        bad = next((index for index, row in enumerate(rows, 1) if len(row) != len(rows[0])), None)
        if layout is None or bad is not None:
            where = f"row {bad} has {len(rows[bad - 1])}" if bad else f"rows have {len(rows[0])}"
            raise TranslationsUnavailable(
                f"{path}: {where} tab-separated fields, expected {2 * n + 1} (originals, English, label) "
                f"or {n + 1} (English, label); {_HINT}"
            )
        start, labelled = layout
        sources = [[row[start + index] for row in rows] for index in range(n)]
        if labelled:
            lookup = label_lookup(task)
            gold = split[task.label_field]
            wrong = sum(lookup.get(row[-1].strip().lower(), -1) != label for row, label in zip(rows, gold))
            if wrong > _LABEL_TOLERANCE * len(rows):
                raise TranslationsUnavailable(
                    f"{path}: labels disagree with the split on {wrong} of {len(rows)} rows: it is not row-aligned "
                    f"with the split (is it another copy of the data?); {_HINT}"
                )
    for name, texts in zip(fields, sources):
        split = split.add_column(SOURCE + name, list(texts))
    return split.select_columns([*fields, *(SOURCE + name for name in fields), task.label_field])


def load_parallel(
    task: TaskSpec,
    raw: DatasetDict,
    root: str | Path,
    languages: Sequence[str],
    *,
    dev_languages: Sequence[str] = (),
) -> DatasetDict:
    """Raw-text pairs: ``translate_train`` (all of ``languages``) and the task's test splits (and
    validation for English and ``dev_languages``) with their English translations.

    ``raw`` is ``load_raw``'s DatasetDict; the text fields hold the target side everywhere,
    ``source_<field>`` the English (``backtrans_<field>`` its back-translation on translate_train).
    """
    check_translations(task, root, languages, dev_languages=dev_languages)
    base = translations_root(root, task)
    parts = {TRAIN_PART: concatenate_datasets([_translate_train(task, base, lang) for lang in languages])}
    wanted = [(task.test_split, "test", lang) for lang in task.languages]
    wanted += [(task.dev_split, "validation", lang) for lang in dict.fromkeys([task.source_language, *dev_languages])]
    for split, kind, lang in wanted:
        key = split_key(split, lang)
        if key not in raw:
            raise ValueError(f"load_parallel needs raw[{key!r}]; load_raw gave {sorted(raw)}")
        path = None if lang == task.source_language else base / translation_file(kind, lang)
        parts[key] = _with_source(task, raw[key], path)
    return DatasetDict(parts)
