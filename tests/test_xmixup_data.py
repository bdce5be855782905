"""X-Mixup's parallel data: XTREME's translation files, the smoke translations, the pair cache, the collator."""

from __future__ import annotations

import hashlib
from pathlib import Path

import datasets
import huggingface_hub
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from trainables.data import load_raw, load_tokenized, make_collator
from smoke import build_smoke_data, build_smoke_translations
from smoke import examples as _examples
from trainables.tasks import PAWSX, XNLI
from trainables.methods.xmixup import parallel_cache, translations
from trainables.methods.xmixup.parallel_cache import parallel_cached
from trainables.methods.xmixup.translations import (
    TranslationsUnavailable,
    check_translations,
    load_parallel,
    required_files,
    resolve_translations,
    translations_root,
)

XNLI_FEATURES = Features(
    {"premise": Value("string"), "hypothesis": Value("string"), "label": ClassLabel(names=list(XNLI.label_names))}
)


@pytest.fixture(autouse=True)
def quiet_progress_bars():
    bars_were_off = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    yield
    if not bars_were_off:
        datasets.enable_progress_bars()


def write_tsv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")


def tiny_raw() -> DatasetDict:
    """XNLI with 3 test rows per language (entailment, neutral, contradiction) and 2 English dev rows."""
    def split(lang: str, n: int = 3) -> Dataset:
        rows = {"premise": [f"{lang} p{i}" for i in range(n)], "hypothesis": [f"{lang} h{i}" for i in range(n)],
                "label": list(range(n))}
        return Dataset.from_dict(rows, features=XNLI_FEATURES)

    parts = {f"test_{lang}": split(lang) for lang in XNLI.languages}
    return DatasetDict({"train_en": split("en"), "validation_en": split("en", 2), **parts})


def write_tiny_translations(base: Path) -> None:
    """Hand-checkable files: de and fr translate-train; fr's translate-test has 3 columns, the others 5."""
    write_tsv(base / "translate-train/en-de-translated.tsv", [
        ['He said "hi', "A dog", 'Er sagte "hi', "Ein Hund", "contradictory"],
        ["A cat", "B", "Eine Katze", "B", "-"],  # unknown label: dropped
        ["Rain", "Wet", "Regen", "Nass", "1"],  # an integer id: neutral
    ])
    write_tsv(base / "back-translate/en-de-en.tsv", [
        ['He said "hi', "A dog", 'He said "hi', "One dog", "contradiction"],
        ["A cat", "B", "A cat", "B", "-"],
        ["Rain", "Wet", "Rain", "Wet", "neutral"],
    ])
    write_tsv(base / "translate-train/en-fr-translated.tsv", [["Sun", "Hot", "Soleil", "Chaud", "entailment"]])
    write_tsv(base / "back-translate/en-fr-en.tsv", [["Sun", "Hot", "Sun", "Warm", "entailment"]])
    for lang in XNLI.target_languages:
        rows = [[f"{lang} p{i}", f"{lang} h{i}", f"E{lang} p{i}", f"E{lang} h{i}", label]
                for i, label in enumerate(["entailment", "neutral", "contradictory"])]
        if lang == "fr":
            rows = [row[2:] for row in rows]  # en_text1, en_text2, label
        if lang == "es":
            rows = [[*row[:4], str(i)] for i, row in enumerate(rows)]  # integer label ids
        write_tsv(base / f"translate-test/test-{lang}-en-translated.tsv", rows)


# ------------------------------------------------------------------------------------ reader


def test_reader_on_hand_written_files(tmp_path):
    write_tiny_translations(tmp_path / "XNLI")
    assert translations_root(tmp_path, XNLI) == tmp_path / "XNLI"
    parallel = load_parallel(XNLI, tiny_raw(), tmp_path, ["de", "fr"])
    assert set(parallel) == {"translate_train", "validation_en"} | {f"test_{lang}" for lang in XNLI.languages}
    train = parallel["translate_train"]
    assert train.column_names == ["premise", "hypothesis", "source_premise", "source_hypothesis",
                                  "backtrans_premise", "backtrans_hypothesis", "label", "language"]
    assert train.features["label"].names == list(XNLI.label_names)
    assert train[0] == {"premise": 'Er sagte "hi', "hypothesis": "Ein Hund", "source_premise": 'He said "hi',
                        "source_hypothesis": "A dog", "backtrans_premise": 'He said "hi',
                        "backtrans_hypothesis": "One dog", "label": 2, "language": "de"}
    assert train["label"] == [2, 1, 0] and train["language"] == ["de", "de", "fr"]
    assert train["premise"] == ['Er sagte "hi', "Regen", "Soleil"]
    assert train["backtrans_hypothesis"] == ["One dog", "Wet", "Warm"]
    test_de, test_fr = parallel["test_de"], parallel["test_fr"]
    assert test_de.column_names == ["premise", "hypothesis", "source_premise", "source_hypothesis", "label"]
    assert test_de["premise"] == ["de p0", "de p1", "de p2"]  # the real target text
    assert test_de["source_premise"] == ["Ede p0", "Ede p1", "Ede p2"]  # 5 columns: English in 3 and 4
    assert test_fr["source_hypothesis"] == ["Efr h0", "Efr h1", "Efr h2"]  # 3 columns: English in 1 and 2
    assert parallel["test_es"]["source_premise"] == ["Ees p0", "Ees p1", "Ees p2"]  # labels 0, 1, 2 agree
    for name in ("test_en", "validation_en"):
        assert parallel[name]["source_premise"] == parallel[name]["premise"]


def test_missing_files_are_named_on_one_line(tmp_path):
    write_tsv(tmp_path / "XNLI/translate-train/en-de-translated.tsv", [["a", "b", "c", "d", "neutral"]])
    assert len(required_files(XNLI, ["de"])) == 2 + 14  # de's train and back-translation, 14 translate-tests
    with pytest.raises(TranslationsUnavailable) as caught:
        check_translations(XNLI, tmp_path, ["de"])
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "XNLI") in message
    assert "back-translate/en-de-en.tsv" in message and "translate-test/test-ar-en-translated.tsv" in message
    assert "(15 of 16 files)" in message and "and 9 more" in message and "--xmixup-translations" in message
    with pytest.raises(TranslationsUnavailable, match="translate-dev/dev-de-en-translated.tsv"):
        check_translations(XNLI, tmp_path, ["de"], dev_languages=["de"])
    with pytest.raises(ValueError, match="target languages"):
        required_files(XNLI, ["en"])


def test_misaligned_translate_test_names_the_file(tmp_path):
    write_tiny_translations(tmp_path)
    path = tmp_path / "translate-test/test-ar-en-translated.tsv"
    write_tsv(path, [["p", "h", "Ep", "Eh", "entailment"], ["p", "h", "Ep", "Eh", "neutral"]])
    with pytest.raises(TranslationsUnavailable, match=rf"{path} has 2 rows but the split it translates has 3"):
        load_parallel(XNLI, tiny_raw(), tmp_path, ["de"])
    write_tsv(path, [["p", "h", "Ep", "Eh", label] for label in ("neutral", "entailment", "contradiction")])
    with pytest.raises(TranslationsUnavailable, match=rf"{path}: labels disagree with the split on 2 of 3 rows"):
        load_parallel(XNLI, tiny_raw(), tmp_path, ["de"])


def test_back_translations_must_match_translate_train(tmp_path):
    write_tiny_translations(tmp_path)
    path = tmp_path / "back-translate/en-de-en.tsv"
    write_tsv(path, [['He said "hi', "A dog", "x", "y", "contradiction"]])
    with pytest.raises(TranslationsUnavailable, match=rf"{path} has 1 rows but .*en-de-translated.tsv has 3"):
        load_parallel(XNLI, tiny_raw(), tmp_path, ["de"])
    write_tsv(path, [[english, second, "x", "y", "-"] for english, second in [("He said hi", "A dog"), ("A cat", "B"),
                                                                             ("Rain", "Wet")]])
    with pytest.raises(TranslationsUnavailable, match=rf"{path} row 1: its English differs"):
        load_parallel(XNLI, tiny_raw(), tmp_path, ["de"])


def test_resolve_translations(tmp_path, monkeypatch):
    assert resolve_translations(str(tmp_path), XNLI, tmp_path / "cache", smoke=False) == tmp_path
    with pytest.raises(TranslationsUnavailable, match="--xmixup-translations"):
        resolve_translations(None, XNLI, tmp_path / "cache", smoke=False)
    with pytest.raises(TranslationsUnavailable, match="neither a directory nor a hub dataset id"):
        resolve_translations(str(tmp_path / "no" / "such" / "dir"), XNLI, tmp_path, smoke=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # not in the local cache
    monkeypatch.setattr(translations, "_probe_hub", lambda hub_id, timeout_s: "ConnectError: offline (test)")
    with pytest.raises(TranslationsUnavailable) as caught:
        resolve_translations("someone/xtreme-translations", XNLI, tmp_path, smoke=False)
    message = str(caught.value)
    assert "\n" not in message and "offline (test)" in message and "pass --xmixup-translations DIR" in message


# ------------------------------------------------------------------------- smoke translations


def tree_digest(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def test_smoke_translations_are_deterministic_and_cached(tmp_path):
    first = build_smoke_translations(PAWSX, tmp_path / "a")
    assert first == tmp_path / "a" / "smoke-translations" / "PAWSX"
    assert resolve_translations(None, PAWSX, tmp_path / "a", smoke=True) == first
    assert tree_digest(build_smoke_translations(PAWSX, tmp_path / "b")) == tree_digest(first)
    stamp = first.stat().st_mtime_ns, (first / "translate-train/en-de-translated.tsv").stat().st_mtime_ns
    assert build_smoke_translations(PAWSX, tmp_path / "a") == first
    assert stamp == (first.stat().st_mtime_ns, (first / "translate-train/en-de-translated.tsv").stat().st_mtime_ns)
    check_translations(PAWSX, first, list(PAWSX.target_languages), dev_languages=PAWSX.target_languages)
    test_lines = (first / "translate-test/test-ja-en-translated.tsv").read_text(encoding="utf-8").splitlines()
    assert len(test_lines) == len(_examples(PAWSX, "ja", "test", 150, 0)["label"]) == 150


@pytest.fixture(scope="module")
def xnli_parallel(smoke_root) -> tuple[DatasetDict, DatasetDict]:
    raw = load_raw(XNLI, build_smoke_data(XNLI, smoke_root))
    root = resolve_translations(None, XNLI, smoke_root, smoke=True)
    return raw, load_parallel(XNLI, raw, root, ["de", "ru"], dev_languages=["ru"])


def test_smoke_translations_match_the_smoke_data(xnli_parallel):
    raw, parallel = xnli_parallel
    train = parallel["translate_train"]
    assert len(train) == 2 * len(raw["train_en"]) == 2400  # every smoke label is known
    for lang in ("de", "ru"):
        rows = train.filter(lambda language: language == lang, input_columns="language")
        assert rows["source_premise"] == raw["train_en"]["premise"]  # the English train rows, in order
        assert rows["label"] == raw["train_en"]["label"]
        pairs = list(zip(rows["backtrans_hypothesis"], rows["source_hypothesis"]))
        assert 0 < sum(back != source for back, source in pairs) < len(rows)  # MT noise on some rows
        kept = [len(set(back.split()) & set(source.split())) / len(set(source.split())) for back, source in pairs]
        assert sum(kept) / len(kept) > 0.9  # ... dropping ~2.5 % of the words each way
    russian = train.filter(lambda language: language == "ru", input_columns="language")
    assert all(text != source for text, source in zip(russian["premise"], russian["source_premise"]))
    cyrillic = lambda text: any("\u0400" <= char <= "\u04ff" for char in text)  # noqa: E731
    assert all(map(cyrillic, russian["hypothesis"]))
    test_ru = parallel["test_ru"]
    assert test_ru["premise"] == raw["test_ru"]["premise"] and len(test_ru) == len(raw["test_ru"])
    assert all(map(cyrillic, test_ru["premise"])) and not any(map(cyrillic, test_ru["source_premise"]))
    assert "validation_ru" in parallel and "validation_de" not in parallel


def test_parallel_cache_columns_and_reuse(xnli_parallel, smoke_model, tmp_path, monkeypatch):
    raw, parallel = xnli_parallel
    path = parallel_cached(parallel, XNLI, smoke_model, 64, tmp_path)
    tokenized = load_tokenized(path)
    assert set(tokenized) == set(parallel)
    pair = ["input_ids", "attention_mask", "token_type_ids"]
    train, test_en = tokenized["translate_train"], tokenized["test_en"]
    assert train.column_names == [*pair, *(f"source_{name}" for name in pair), *(f"backtrans_{name}" for name in pair),
                                  "labels", "length", "language"]
    assert test_en.column_names == [*pair, *(f"source_{name}" for name in pair), "labels", "length"]
    assert str(train.features["input_ids"].feature.dtype) == "int32"
    assert str(train.features["source_attention_mask"].feature.dtype) == "int8"
    assert train["length"] == [len(ids) for ids in train["input_ids"]] and max(train["length"]) <= 64
    assert train["labels"][:1200] == raw["train_en"]["label"] and set(train["language"]) == {"de", "ru"}
    assert test_en["source_input_ids"] == test_en["input_ids"]  # English: the source is the text itself
    test_ru = tokenized["test_ru"]
    assert test_ru["source_input_ids"] != test_ru["input_ids"]

    def no_second_tokenization(*args, **kwargs):
        raise AssertionError("tokenised again")

    monkeypatch.setattr(parallel_cache, "_tokenize_parallel", no_second_tokenization)
    assert parallel_cached(parallel, XNLI, smoke_model, 64, tmp_path) == path
    with pytest.raises(AssertionError, match="tokenised again"):
        parallel_cached(parallel, XNLI, smoke_model, 32, tmp_path)


# ------------------------------------------------------------------------------------ collator


def test_collator_pads_each_pair_to_its_own_width(smoke_model):
    collate = make_collator(smoke_model)
    pad = collate.tokenizer.pad_token_id
    examples = [
        {"input_ids": [2, 5, 3], "attention_mask": [1, 1, 1], "labels": 0, "length": 3, "language": "de",
         "source_input_ids": [2, 7, 8, 9, 3], "source_attention_mask": [1] * 5,
         "source_token_type_ids": [0, 0, 0, 1, 1]},
        {"input_ids": [2, 3], "attention_mask": [1, 1], "labels": 1, "length": 2, "language": "ru",
         "source_input_ids": [2], "source_attention_mask": [1], "source_token_type_ids": [0]},
    ]
    batch = collate(examples)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "source_input_ids", "source_attention_mask",
                          "source_token_type_ids"}
    assert batch["input_ids"].tolist() == [[2, 5, 3], [2, 3, pad]]
    assert batch["source_input_ids"].tolist() == [[2, 7, 8, 9, 3], [2, pad, pad, pad, pad]]
    assert batch["source_attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert batch["source_token_type_ids"].tolist() == [[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]
    collate.tokenizer.padding_side = "left"
    try:
        left = collate(examples)
    finally:
        collate.tokenizer.padding_side = "right"
    assert left["source_input_ids"].tolist() == [[2, 7, 8, 9, 3], [pad, pad, pad, pad, 2]]
    assert left["source_attention_mask"].tolist() == [[1, 1, 1, 1, 1], [0, 0, 0, 0, 1]]


def test_collator_keeps_salt_source_ids_at_input_width(smoke_model):
    """SALT's source ids have no mask of their own: they stay position-aligned with input_ids."""
    batch = make_collator(smoke_model)([
        {"input_ids": [2, 5, 3], "attention_mask": [1, 1, 1], "labels": 0, "source_input_ids": [2, 6, 3]},
        {"input_ids": [2, 3], "attention_mask": [1, 1], "labels": 1, "source_input_ids": [2, 3]},
    ])
    assert batch["source_input_ids"].tolist() == [[2, 6, 3], [2, 3, 0]]
    assert batch["source_input_ids"].shape == batch["input_ids"].shape
    assert batch["source_input_ids"].dtype == batch["input_ids"].dtype == torch.int64
