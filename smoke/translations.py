"""X-Mixup's translation files for the smoke data, from a synthetic word-for-word "MT system"."""

from __future__ import annotations

import json
import random
from pathlib import Path

from smoke.benchmarks import examples
from smoke.builds import (
    DATA_MARKER,
    DEFAULT_SIZES,
    GENERATOR_VERSION,
    is_built,
    publish_build,
)
from smoke.lexicon import language_lexicon, seeded_rng
from trainables.publish import scratch_dir
from trainables.tasks import TaskSpec

TRANSLATIONS_VERSION = "smoke-translations-v1"
_MT_NOISE = 0.05  # share of words the synthetic "MT system" drops or swaps with the next one


def _machine_translate(text: str, mapping: dict[str, str], rng: random.Random) -> str:
    """Word for word through ``mapping`` (unknown words such as names, numbers, punctuation kept),
    with a little noise so a translation is not an exact inverse of its source."""
    words = [mapping.get(word, word) for word in text.split()]
    out: list[str] = []
    index = 0
    while index < len(words):
        draw = rng.random()
        if draw < _MT_NOISE / 2:
            index += 1  # dropped
        elif draw < _MT_NOISE and index + 1 < len(words):
            out += [words[index + 1], words[index]]
            index += 2
        else:
            out.append(words[index])
            index += 1
    return " ".join(out)


def _write_tsv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")


def build_smoke_translations(task: TaskSpec, out_root: str | Path, *, seed: int = 0) -> Path:
    """X-Mixup's translation files for the smoke data, in XTREME's layout (``trainables.methods.xmixup.translations``).

    Consistent with ``build_smoke_data(task, out_root, seed=seed)`` at default sizes: translate-train
    holds the English train rows in order, translate-test/dev one row per test/validation row.
    Translations go word for word through the synthetic lexicons, with some dropped or swapped
    words; back-translations go on from translate-train's output back to English with fresh noise.
    Returns ``<out_root>/smoke-translations/<XNLI|PAWSX>``.
    """
    from trainables.methods.xmixup.translations import translation_file, xtreme_folder

    task = task.benchmark  # always every language: the files are cached by task name, whatever --languages a sweep ran
    base = Path(out_root) / "smoke-translations"
    target = base / xtreme_folder(task)
    expected = {
        "version": GENERATOR_VERSION,
        "translations": TRANSLATIONS_VERSION,
        "task": task.name,
        "sizes": DEFAULT_SIZES,
        "seed": seed,
    }
    if is_built(target, DATA_MARKER, expected):
        return target
    fields, names = task.text_fields, task.label_names
    with scratch_dir(target) as scratch:
        english = examples(task, task.source_language, "train", DEFAULT_SIZES["train"], seed)
        for lang in task.target_languages:
            forms = language_lexicon(lang, seed).forms
            inverse = {form: word for word, form in forms.items()}
            train, back = [], []
            for index, label in enumerate(english[task.label_field]):
                source = [english[name][index] for name in fields]
                rng = seeded_rng(TRANSLATIONS_VERSION, seed, task.name, lang, "train", index)
                translated = [_machine_translate(text, forms, rng) for text in source]
                returned = [_machine_translate(text, inverse, rng) for text in translated]
                train.append([*source, *translated, names[label]])
                back.append([*source, *returned, names[label]])
            _write_tsv(scratch / translation_file("train", lang), train)
            _write_tsv(scratch / translation_file("back", lang), back)
            for split in ("test", "validation"):
                rows = examples(task, lang, split, DEFAULT_SIZES[split], seed)
                lines = []
                for index, label in enumerate(rows[task.label_field]):
                    original = [rows[name][index] for name in fields]
                    rng = seeded_rng(TRANSLATIONS_VERSION, seed, task.name, lang, split, index)
                    in_english = [_machine_translate(text, inverse, rng) for text in original]
                    lines.append([*original, *in_english, names[label]])
                _write_tsv(scratch / translation_file(split, lang), lines)
        (scratch / DATA_MARKER).write_text(json.dumps(expected, sort_keys=True))
        publish_build(scratch, target, DATA_MARKER, expected)
    return target
