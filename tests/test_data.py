"""Data loading, tokenisation cache, collator and the offline smoke assets (no network needed)."""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import datasets
import huggingface_hub
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from trainables import data
from trainables.data import (
    DataUnavailable,
    check_data_available,
    load_raw,
    load_tokenized,
    make_collator,
    tokenize_cached,
)
from smoke import build_smoke_data, build_smoke_model
from trainables.tasks import PAWSX, XNLI

LANGS = ("en", "de")
XNLI_FEATURES = Features(
    {"premise": Value("string"), "hypothesis": Value("string"), "label": ClassLabel(names=list(XNLI.label_names))}
)


pytestmark = pytest.mark.usefixtures("isolated_hf_caches")


@pytest.fixture(scope="session")
def smoke_assets_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("smoke")
    for task in (XNLI, PAWSX):
        build_smoke_data(task, root)
    build_smoke_model(root)
    return root


@pytest.fixture(scope="session")
def smoke_model_dir(smoke_assets_root) -> Path:
    return build_smoke_model(smoke_assets_root)


def write_tsv(path: Path, rows: list[list[str]], *, writer: bool = False) -> None:
    """Raw tab-joined lines (as the original releases), or csv.writer output (as XTREME writes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        if writer:
            csv.writer(handle, delimiter="\t").writerows(rows)
        else:
            handle.writelines("\t".join(row) + "\n" for row in rows)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def assert_shape(raw: DatasetDict, task, languages=LANGS) -> None:
    expected = {f"train_{task.source_language}"} | {
        f"{split}_{lang}" for lang in languages for split in ("validation", "test")
    }
    assert set(raw) == expected
    for ds in raw.values():
        assert ds.column_names == [*task.text_fields, task.label_field]
        assert ds.features[task.label_field].names == list(task.label_names)


# ----------------------------------------------------------------------------------- layouts


def test_saved_layout_remaps_classlabel_by_name(tmp_path):
    shuffled = Features({**XNLI_FEATURES, "label": ClassLabel(names=["contradiction", "entailment", "neutral"])})
    for lang in LANGS:
        split = Dataset.from_dict(
            {"premise": ["p1", "p2", "p3"], "hypothesis": ["h1", "h2", "h3"], "label": [0, 1, 2], "extra": [1, 2, 3]},
            features=Features({**shuffled, "extra": Value("int64")}),
        )
        DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(str(tmp_path / lang))
    assert data.detect_layout(XNLI, tmp_path)[0] == "saved"
    raw = load_raw(XNLI, tmp_path, languages=LANGS)
    assert_shape(raw, XNLI)
    assert raw["test_de"]["label"] == [2, 0, 1]  # contradiction, entailment, neutral in the task's order


def test_plain_jsonl_and_tsv_with_string_labels(tmp_path):
    rows = [
        {"premise": "A man", "hypothesis": "A person", "label": "entailment"},
        {"premise": "B", "hypothesis": "C", "label": "contradictory"},
        {"premise": "D", "hypothesis": "E", "label": "-"},
        {"premise": "F", "hypothesis": "G", "label": "1"},
    ]
    for lang in LANGS:
        write_jsonl(tmp_path / lang / "train.jsonl", rows)
        write_jsonl(tmp_path / lang / "test.jsonl", rows)
        write_tsv(
            tmp_path / lang / "dev.tsv",
            [["premise", "hypothesis", "label"], ['He said "hi', "42", "neutral"], ["x", "y", "2"]],
        )
    assert data.detect_layout(XNLI, tmp_path)[0] == "plain"
    raw = load_raw(XNLI, tmp_path, languages=LANGS)
    assert_shape(raw, XNLI)
    assert raw["train_en"]["label"] == [0, 2, 1]  # "-" dropped, "contradictory" is contradiction
    assert raw["validation_de"][0] == {"premise": 'He said "hi', "hypothesis": "42", "label": 1}
    assert raw["validation_de"]["label"] == [1, 2]


def test_hub_parquet_snapshot(tmp_path):
    hub_features = Features(
        {
            "id": Value("int32"),
            "sentence1": Value("string"),
            "sentence2": Value("string"),
            "label": ClassLabel(names=["0", "1"]),
        }
    )
    for lang in LANGS:
        for split in ("train", "validation", "test"):
            ds = Dataset.from_dict(
                {"id": [1, 2], "sentence1": ["a b", "c d"], "sentence2": ["b a", "c e"], "label": [1, 0]},
                features=hub_features,
            )
            ds.to_parquet(str(tmp_path / lang / f"{split}-00000-of-00001.parquet"))
    assert data.detect_layout(PAWSX, tmp_path)[0] == "hub-parquet"
    raw = load_raw(PAWSX, tmp_path, languages=LANGS)
    assert_shape(raw, PAWSX)
    assert raw["test_de"]["label"] == [1, 0]  # "1" = paraphrase


XNLI_HEADER = ["language", "gold_label", "sentence1_binary_parse", "sentence1", "sentence2", "pairID"]


def write_xnli_original(root: Path, *, with_mnli: bool = True) -> None:
    rows = [XNLI_HEADER]
    for lang in ("en", "de", "fr"):
        rows += [
            [lang, "entailment", "( x )", f'{lang} says "yes', f"{lang} h1", "1"],
            [lang, "neutral", "( x )", f"{lang} p2", f"{lang} h2", "2"],
            [lang, "contradiction", "( x )", f"{lang} p3", f"{lang} h3", "3"],
        ]
    write_tsv(root / "XNLI-1.0" / "xnli.dev.tsv", rows)
    write_tsv(root / "XNLI-1.0" / "xnli.test.tsv", rows)
    if with_mnli:
        mnli = [
            {
                "annotator_labels": ["neutral"],
                "genre": "g",
                "gold_label": label,
                "pairID": str(i),
                "sentence1": f"s{i}",
                "sentence2": f"t{i}",
            }
            for i, label in enumerate(["neutral", "-", "contradiction", "entailment"])
        ]
        write_jsonl(root / "multinli_1.0" / "multinli_1.0_train.jsonl", mnli)


def test_xnli_original_release(tmp_path):
    write_xnli_original(tmp_path)
    assert data.detect_layout(XNLI, tmp_path)[0] == "xnli-original"
    raw = load_raw(XNLI, tmp_path, languages=LANGS)
    assert_shape(raw, XNLI)
    assert raw["train_en"]["label"] == [1, 2, 0]  # the "-" row is dropped
    assert raw["test_de"]["premise"] == ['de says "yes', "de p2", "de p3"]  # one language, quotes intact
    assert raw["test_de"]["label"] == [0, 1, 2]


def test_pawsx_original_release(tmp_path):
    header = ["id", "sentence1", "sentence2", "label"]
    base = tmp_path / "x-final"
    write_tsv(base / "en" / "train.tsv", [header, ["1", 'a "b', "b a", "1"], ["2", "c", "", "0"], ["3", "e", "f", "0"]])
    for lang in LANGS:
        for name in ("dev_2k.tsv", "test_2k.tsv"):
            write_tsv(base / lang / name, [header, ["1", f"{lang} x", "y", "0"], ["2", "NA", "null", "1"]])
    assert data.detect_layout(PAWSX, tmp_path)[0] == "pawsx-original"
    raw = load_raw(PAWSX, tmp_path, languages=LANGS)
    assert_shape(raw, PAWSX)
    assert raw["train_en"]["sentence1"] == ['a "b', "c", "e"]
    assert raw["train_en"]["sentence2"][1] == ""  # an empty sentence stays a string
    assert raw["test_de"][1] == {"sentence1": "NA", "sentence2": "null", "label": 1}  # no NaN guessing


def test_xtreme_download_layout(tmp_path):
    root = tmp_path / "xnli"  # XTREME's download/xnli/ folder: found via DIR/<task>/
    write_tsv(root / "train-en.tsv", [["p1", "h1", "contradictory"], ["p2", "h2", "entailment"]])
    for lang in LANGS:
        rows = [['She said "yes".', "ok", "neutral"], ["p", "h", "contradiction"]]
        write_tsv(root / f"dev-{lang}.tsv", rows, writer=True)
        write_tsv(root / f"test-{lang}.tsv", rows, writer=True)
    assert data.detect_layout(XNLI, tmp_path) == ("xtreme", root)
    raw = load_raw(XNLI, tmp_path, languages=LANGS)
    assert_shape(raw, XNLI)
    assert raw["train_en"]["label"] == [2, 0]
    assert raw["test_de"][0] == {"premise": 'She said "yes".', "hypothesis": "ok", "label": 1}


def test_xtreme_unlabelled_test_files_are_refused(tmp_path):
    write_tsv(tmp_path / "train-en.tsv", [["p1", "h1", "contradiction"]])
    for lang in LANGS:
        write_tsv(tmp_path / f"dev-{lang}.tsv", [["p", "h", "neutral"]], writer=True)
        write_tsv(tmp_path / f"test-{lang}.tsv", [["p", "h"]], writer=True)
    with pytest.raises(DataUnavailable, match="no label column"):
        check_data_available(XNLI, tmp_path, languages=LANGS)


# ---------------------------------------------------------------------------- missing data


def test_missing_file_names_it_and_the_flag(tmp_path):
    write_xnli_original(tmp_path, with_mnli=False)
    with pytest.raises(DataUnavailable) as caught:
        load_raw(XNLI, tmp_path, languages=LANGS)
    message = str(caught.value)
    assert "multinli_1.0_train.jsonl" in message and "--data-dir" in message and "\n" not in message


def test_missing_split_of_saved_layout(tmp_path):
    split = Dataset.from_dict({"premise": ["p"], "hypothesis": ["h"], "label": [0]}, features=XNLI_FEATURES)
    DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(str(tmp_path / "en"))
    DatasetDict({"validation": split}).save_to_disk(str(tmp_path / "de"))
    started = time.monotonic()
    with pytest.raises(DataUnavailable, match=r"de/test.*--data-dir"):
        check_data_available(XNLI, tmp_path, languages=LANGS)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("make", [lambda path: path / "nowhere", lambda path: path])
def test_no_known_layout(tmp_path, make):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DataUnavailable, match="--data-dir"):
        check_data_available(XNLI, make(tmp_path))


def test_hub_unreachable_fails_fast():
    """Here the hub is unreachable; where it is reachable the check rightly passes, so skip."""
    started = time.monotonic()
    try:
        check_data_available(XNLI, None, timeout_s=10.0)
    except DataUnavailable as error:
        elapsed = time.monotonic() - started
        message = str(error)
        assert "facebook/xnli" in message and "--data-dir" in message and "\n" not in message
        assert elapsed < 30, elapsed
        started = time.monotonic()
        with pytest.raises(DataUnavailable):  # and load_raw does not sit in minutes of retries
            load_raw(XNLI, None, languages=LANGS, timeout_s=10.0)
        assert time.monotonic() - started < 30
    else:
        pytest.skip("the hub is reachable from here")


def fake_hub_cache(languages) -> None:
    """What a past ``load_dataset("facebook/xnli", lang)`` leaves in the datasets cache (internal layout)."""
    for lang in languages:
        files = {}
        for split in ("train", "validation", "test"):
            path = Path(datasets.config.HF_DATASETS_CACHE).parent / "src" / lang / f"{split}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            Dataset.from_dict(
                {"premise": [f"{lang} {split}"] * 3, "hypothesis": ["h"] * 3, "label": [0, 1, 2]},
                features=XNLI_FEATURES,
            ).to_parquet(str(path))
            files[split] = str(path)
        datasets.load_dataset("parquet", data_files=files)
        built = Path(glob.glob(f"{datasets.config.HF_DATASETS_CACHE}/parquet/*/*/*/dataset_info.json")[0]).parent
        target = Path(datasets.config.HF_DATASETS_CACHE) / "facebook___xnli" / lang / "0.0.0" / built.name
        target.parent.mkdir(parents=True)
        shutil.move(str(built), str(target))
        shutil.rmtree(Path(datasets.config.HF_DATASETS_CACHE) / "parquet")
        for arrow in target.glob("parquet-*.arrow"):
            arrow.rename(target / arrow.name.replace("parquet-", "xnli-"))
        info = json.loads((target / "dataset_info.json").read_text())
        (target / "dataset_info.json").write_text(json.dumps({**info, "config_name": lang, "dataset_name": "xnli"}))


def test_hub_dataset_in_local_cache_is_used_offline(monkeypatch):
    fake_hub_cache(LANGS)
    monkeypatch.setattr(data.hub, "probe_hub", lambda hub_id, timeout_s: "unreachable (test)")
    check_data_available(XNLI, None, languages=LANGS)
    started = time.monotonic()
    raw = load_raw(XNLI, None, languages=LANGS)
    assert time.monotonic() - started < 20
    assert_shape(raw, XNLI)
    assert raw["test_de"]["premise"][0] == "de test"
    assert not datasets.config.HF_HUB_OFFLINE  # offline mode was only for the load


# ----------------------------------------------------------------------- tokenisation cache


def test_tokenize_cached_once(smoke_assets_root, smoke_model_dir, tmp_path, monkeypatch):
    raw = load_raw(XNLI, smoke_assets_root / "smoke-data", languages=LANGS)
    path = tokenize_cached(raw, XNLI, smoke_model_dir, 32, tmp_path)
    assert path.parent == tmp_path / "tokenized" and len(path.name) == 16
    tokenized = load_tokenized(path)
    assert set(tokenized) == set(raw)
    train = tokenized["train_en"]
    assert set(train.column_names) == {"input_ids", "attention_mask", "token_type_ids", "labels", "length"}
    assert train["labels"] == raw["train_en"]["label"]
    lengths = [len(ids) for ids in train["input_ids"]]
    assert lengths == train["length"] and max(lengths) <= 32 and len(set(lengths)) > 1  # truncated, not padded
    assert not list(tmp_path.glob("tokenized/.tmp-*"))

    def no_second_tokenization(*args, **kwargs):
        raise AssertionError("tokenised again")

    monkeypatch.setattr(data.tokenization, "_tokenize_splits", no_second_tokenization)
    reloaded = load_raw(XNLI, smoke_assets_root / "smoke-data", languages=LANGS)  # same content, new objects
    assert tokenize_cached(reloaded, XNLI, smoke_model_dir, 32, tmp_path) == path
    with pytest.raises(AssertionError, match="tokenised again"):  # another max_length is another cache
        tokenize_cached(reloaded, XNLI, smoke_model_dir, 24, tmp_path)


def test_collator_pads_to_longest_in_batch(smoke_assets_root, smoke_model_dir, tmp_path):
    raw = load_raw(PAWSX, smoke_assets_root / "smoke-data", languages=("en",))
    tokenized = load_tokenized(tokenize_cached(raw, PAWSX, smoke_model_dir, 128, tmp_path))["test_en"]
    examples = [tokenized[i] for i in range(6)]
    batch = make_collator(smoke_model_dir)(examples)
    longest = max(example["length"] for example in examples)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["input_ids"].shape == (6, longest)
    for row, example in enumerate(examples):
        n = example["length"]
        assert batch["attention_mask"][row, :n].all() and not batch["attention_mask"][row, n:].any()
        assert not batch["token_type_ids"][row, n:].any()
        assert (batch["input_ids"][row, n:] == 0).all()  # [PAD] is id 0 in the smoke vocabulary
    assert batch["labels"].tolist() == [example["labels"] for example in examples]


# -------------------------------------------------------------------------------- smoke assets


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_smoke_builders_are_deterministic_and_cached(smoke_assets_root, tmp_path):
    """A second build in another process (other str-hash seed) gives byte-identical files."""
    script = (
        "import sys; from smoke import build_smoke_data, build_smoke_model; "
        "from trainables.tasks import XNLI, PAWSX; "
        "[build_smoke_data(task, sys.argv[1]) for task in (XNLI, PAWSX)]; build_smoke_model(sys.argv[1])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=env, capture_output=True)
    assert tree_digest(tmp_path) == tree_digest(smoke_assets_root)
    model = build_smoke_model(tmp_path)
    stamp = model.stat().st_mtime_ns, (tmp_path / "smoke-data" / "xnli").stat().st_mtime_ns
    started = time.monotonic()
    assert build_smoke_model(tmp_path) == model and build_smoke_data(XNLI, tmp_path) == tmp_path / "smoke-data" / "xnli"
    assert time.monotonic() - started < 1
    assert stamp == (model.stat().st_mtime_ns, (tmp_path / "smoke-data" / "xnli").stat().st_mtime_ns)


@pytest.mark.parametrize("task", [XNLI, PAWSX], ids=lambda task: task.name)
def test_smoke_data_loads_with_the_real_loader(smoke_assets_root, task):
    raw = load_raw(task, smoke_assets_root / "smoke-data")
    assert_shape(raw, task, languages=task.languages)
    assert len(raw[f"train_{task.source_language}"]) == 1200 and len(raw["test_de"]) == 150
    counts = Counter(raw[f"train_{task.source_language}"]["label"])
    assert set(counts) == set(range(task.num_labels))
    assert max(counts.values()) - min(counts.values()) < 0.1 * 1200
    assert (
        raw["test_en"]["premise" if task is XNLI else "sentence1"]
        != raw["test_de"]["premise" if task is XNLI else "sentence1"]
    )


def test_smoke_model_loads_with_auto_classes(smoke_model_dir):
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smoke_model_dir)
    assert 1500 <= len(tokenizer) <= 2000 and tokenizer.pad_token_id == 0
    assert tokenizer.tokenize("Anna walks .") == ["Anna", "walks", "."]  # cased, whole words
    classifier = AutoModelForSequenceClassification.from_pretrained(smoke_model_dir, num_labels=3)
    assert classifier.config.hidden_size == 64 and classifier.config.num_hidden_layers == 2
    masked = AutoModelForMaskedLM.from_pretrained(smoke_model_dir)
    assert masked.config.vocab_size == len(tokenizer)
    assert (smoke_model_dir / "model.safetensors").exists()


def test_hanging_hub_probe_is_cut_off(monkeypatch):
    """A DNS lookup that hangs is not covered by HTTP timeouts: the probe has its own deadline."""
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", lambda self, *args, **kwargs: time.sleep(30))
    started = time.monotonic()
    with pytest.raises(DataUnavailable, match="no answer within 0.5 s"):
        check_data_available(PAWSX, None, timeout_s=0.5)
    assert time.monotonic() - started < 5
