"""MARC and PAN-X: loaders, unlabelled parts, word-aligned tokenisation, label padding, entity F1, the loop."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from trainables import data
from trainables.config import TrainConfig
from trainables.data import (
    IGNORE_INDEX,
    DataUnavailable,
    check_data_available,
    load_raw,
    load_tokenized,
    load_unlabelled,
    make_collator,
    tokenize_cached,
)
from trainables.loop import DistContext, Evaluator, local_context, train_and_evaluate
from trainables.metrics import entity_f1, tag_sequences
from trainables.smoke_assets import build_smoke_data
from trainables.tasks import MARC, PANX, XNLI

TAGS = list(PANX.label_names)  # O B-PER I-PER B-ORG I-ORG B-LOC I-LOC
LANGS = ("en", "de")


pytestmark = pytest.mark.usefixtures("isolated_hf_caches")


@pytest.fixture(scope="session")
def assets(smoke_root, smoke_model) -> Path:
    """The session's smoke root (conftest) with MARC and PAN-X data beside the smoke model."""
    for task in (MARC, PANX):
        build_smoke_data(task, smoke_root)
    return smoke_root


@pytest.fixture(scope="session")
def model_dir(smoke_model) -> Path:
    return Path(smoke_model)


@pytest.fixture(scope="session")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def tag_ids(*names: str) -> list[int]:
    return [TAGS.index(name) for name in names]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_conll(path: Path, sentences: list[list[tuple[str, ...]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("".join("\t".join(fields) + "\n" for fields in sentence) + "\n" for sentence in sentences),
                    encoding="utf-8")


def test_smoke_data_is_the_same_in_another_process(assets, tmp_path):
    """Seeded by strings, not hash(): another process (other str-hash seed) writes identical files."""
    script = ("import sys; from trainables.smoke_assets import build_smoke_data; "
              "from trainables.tasks import MARC, PANX; [build_smoke_data(task, sys.argv[1]) for task in (MARC, PANX)]")
    env = {**os.environ, "PYTHONHASHSEED": "4321"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=env, capture_output=True)

    def digest(root: Path) -> dict[str, str]:
        return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
                for path in sorted(root.rglob("*")) if path.is_file()}

    # The session root also holds the other tasks' smoke data; compare the two this script wrote.
    for task in (MARC, PANX):
        fresh, shared = tmp_path / "smoke-data" / task.name, assets / "smoke-data" / task.name
        assert digest(fresh), f"no files written under {fresh}"
        assert digest(fresh) == digest(shared)


# ------------------------------------------------------------------------------------ entity F1

# Three sentences; -100 marks later sub-words, whose (disruptive) predictions must not count.
GOLD = [["B-PER", -100, "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", -100, "O"], ["O", "O"]]
PRED = [["B-PER", "I-LOC", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "I-ORG", "O"], ["B-LOC", "O"]]
# Gold entities: PER, LOC (s1), ORG (s2) = 3. Predicted: PER (right), ORG (s1, wrong type), ORG
# (s2, one word short: wrong), LOC (s3, none there) = 4. P = 1/4, R = 1/3, F1 = 2PR / (P + R) = 2/7.
HAND_F1 = 2 / 7


def as_tensors(gold, pred, width=6):
    """Right-padded (batch, width) id tensors, -100 beyond each row (as the collator pads)."""
    labels = torch.full((len(gold), width), IGNORE_INDEX)
    predictions = torch.zeros((len(gold), width), dtype=torch.long)
    for row, (g, p) in enumerate(zip(gold, pred)):
        labels[row, :len(g)] = torch.tensor([IGNORE_INDEX if tag == -100 else TAGS.index(tag) for tag in g])
        predictions[row, :len(p)] = torch.tensor([TAGS.index(tag) for tag in p])
    return predictions, labels


def test_tag_sequences_skip_ignored_positions_and_f1_is_hand_computed():
    predictions, labels = as_tensors(GOLD, PRED)
    gold, predicted = tag_sequences(predictions, labels, TAGS)
    assert gold == [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"], ["O", "O"]]
    assert predicted == [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O"], ["B-LOC", "O"]]
    assert entity_f1(gold, predicted) == pytest.approx(HAND_F1)
    assert entity_f1(gold, gold) == 1.0
    assert entity_f1([["O"]], [["O"]]) == 0.0  # no entities at all: seqeval's 0
    assert math.isnan(entity_f1([], []))  # nothing to score


class FixedLogits:
    """A method whose logits say: the tag id is the input id (so each row predicts what we wrote)."""

    extra_batch_columns = ()

    def logits(self, model, batch):
        return torch.nn.functional.one_hot(batch["input_ids"].long(), len(TAGS)).float() * 5.0


def hand_evaluator(model_dir, ctx, eval_batch_size: int) -> Evaluator:
    """An Evaluator over the three hand-made sentences, with a model that predicts ``PRED``."""
    predictions, labels = as_tensors(GOLD, PRED)
    rows = []
    for row in range(len(GOLD)):
        n = len(GOLD[row])
        rows.append({"input_ids": predictions[row, :n].tolist(), "attention_mask": [1] * n,
                     "labels": labels[row, :n].tolist(), "length": n})
    split = Dataset.from_list(rows)
    cfg = TrainConfig(task="panx", model=str(model_dir), eval_batch_size=eval_batch_size)
    return Evaluator(FixedLogits(), DatasetDict({"test_en": split}), PANX, cfg, ctx,
                     make_collator(model_dir, token_labels=True)).bind(torch.nn.Linear(1, 1))


def test_evaluator_scores_token_tasks_with_entity_f1(model_dir):
    assert hand_evaluator(model_dir, local_context(), 2).score("test_en") == pytest.approx(HAND_F1)


def _score_on_rank(rank: int, world_size: int, model_dir: str, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        ctx = DistContext(rank=rank, world_size=world_size)
        score = hand_evaluator(model_dir, ctx, 1).score("test_en")  # one sentence per batch: ranks hold 2 and 1
        Path(out, f"rank{rank}").write_text(repr(score))
    finally:
        dist.destroy_process_group()


def test_entity_f1_gathers_sentences_from_every_rank(model_dir, tmp_path):
    """Per-rank F1s would be 0.4 and 0 (mean 0.2); the gathered sentences give the whole split's 2/7."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_score_on_rank, args=(2, str(model_dir), port, str(tmp_path)), nprocs=2, join=True)
    scores = [float((tmp_path / f"rank{rank}").read_text()) for rank in range(2)]
    assert scores == pytest.approx([HAND_F1, HAND_F1])


# --------------------------------------------------------------------------- word alignment


def test_labels_go_to_the_first_sub_word_of_each_word(tmp_path, model_dir, tokenizer):
    words = ["Anna", "Kowalski", "walks", "near", "Lake", "Pelora", "."]
    tags = tag_ids("B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O")
    pieces = [tokenizer.tokenize(word) for word in words]
    assert len(pieces[1]) > 2 and len(pieces[5]) > 2, pieces  # made-up names split into several sub-words
    raw = DatasetDict({"test_en": Dataset.from_dict(
        {"tokens": [words], "ner_tags": [tags]},
        features=Features({"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=TAGS))}))})
    row = load_tokenized(tokenize_cached(raw, PANX, model_dir, 64, tmp_path))["test_en"][0]
    expected = [IGNORE_INDEX]  # [CLS]
    for tag, word_pieces in zip(tags, pieces):
        expected += [tag] + [IGNORE_INDEX] * (len(word_pieces) - 1)
    expected += [IGNORE_INDEX]  # [SEP]
    assert row["labels"] == expected
    assert row["input_ids"][1:-1] == tokenizer.convert_tokens_to_ids([p for word in pieces for p in word])
    assert row["length"] == len(expected)


def test_a_word_the_tokenizer_drops_becomes_unknown_and_keeps_its_tag(tmp_path, model_dir, tokenizer):
    words = ["Anna", "\u200b", "walks", ""]  # a lone zero-width space: no sub-word; "" stays dropped (XTREME too)
    assert tokenizer.tokenize(words[1]) == []
    features = Features({"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=TAGS))})
    tags = tag_ids("B-PER", "I-PER", "O", "O")
    raw = DatasetDict({"test_en": Dataset.from_dict({"tokens": [words], "ner_tags": [tags]}, features=features)})
    row = load_tokenized(tokenize_cached(raw, PANX, model_dir, 64, tmp_path))["test_en"][0]
    assert row["input_ids"][1:-1] == tokenizer.convert_tokens_to_ids(["Anna", tokenizer.unk_token, "walks"])
    assert row["labels"] == [IGNORE_INDEX, *tag_ids("B-PER", "I-PER", "O"), IGNORE_INDEX]


def test_token_and_sequence_caches_never_collide(tmp_path, model_dir):
    raw = DatasetDict({"test_en": Dataset.from_dict({"tokens": [["a"]], "ner_tags": [[0]]})})
    token_key = data.tokenized_cache_key(raw, PANX, model_dir, 64)
    sequence_twin = dataclasses.replace(PANX, kind="sequence")
    assert data.tokenized_cache_key(raw, sequence_twin, model_dir, 64) != token_key


# ----------------------------------------------------------------------------------- loaders


@pytest.mark.parametrize("task", [MARC, PANX], ids=lambda task: task.name)
def test_smoke_data_loads_in_the_task_schema(assets, task):
    raw = load_raw(task, assets / "smoke-data", languages=LANGS)
    assert set(raw) == {"train_en", "validation_en", "test_en", "validation_de", "test_de"}
    for ds in raw.values():
        assert ds.column_names == [*task.text_fields, task.label_field]  # WikiANN's langs / spans dropped
    assert len(raw["train_en"]) == 1200 and len(raw["test_de"]) == 150
    if task is PANX:
        assert raw["test_de"].features["ner_tags"].feature.names == TAGS
        tags = Counter(tag for row in raw["train_en"]["ner_tags"] for tag in row)
        assert set(tags) == set(range(len(TAGS)))
        assert all(len(words) == len(row) for words, row in zip(raw["test_de"]["tokens"], raw["test_de"]["ner_tags"]))
    else:
        assert raw["test_de"].features["label"].names == list(MARC.label_names)
        counts = Counter(raw["train_en"]["label"])
        assert set(counts) == set(range(5)) and max(counts.values()) - min(counts.values()) < 0.1 * 1200


def test_panx_plain_jsonl_maps_tag_names_and_drops_bad_rows(tmp_path):
    rows = [
        {"tokens": ["Anna", "walks"], "ner_tags": ["B-PER", "O"]},
        {"tokens": ["in", "Paris"], "ner_tags": [0, 5]},  # ids
        {"tokens": ["x", "y"], "ner_tags": ["O", "B-MISC"]},  # a tag the task has not: dropped
        {"tokens": ["x", "y"], "ner_tags": ["O"]},  # counts differ: dropped
    ]
    for lang in LANGS:
        for split in ("train", "dev", "test"):
            write_jsonl(tmp_path / lang / f"{split}.jsonl", rows)
    assert data.detect_layout(PANX, tmp_path)[0] == "plain"
    raw = load_raw(PANX, tmp_path, languages=LANGS)
    assert raw["test_de"]["tokens"] == [["Anna", "walks"], ["in", "Paris"]]
    assert raw["test_de"]["ner_tags"] == [tag_ids("B-PER", "O"), tag_ids("O", "B-LOC")]


def test_panx_xtreme_download_layout(tmp_path):
    root = tmp_path / "panx"  # XTREME's download/panx/: found via DIR/<task>/
    sentences = [[("Anna", "B-PER"), ("Kowalski", "I-PER"), ('"', "O")], [("Paris", "B-LOC")]]
    for lang in LANGS:
        for prefix in ("train", "dev", "test"):
            write_conll(root / f"{prefix}-{lang}.tsv", sentences)
    assert data.detect_layout(PANX, tmp_path) == ("xtreme", root)
    raw = load_raw(PANX, tmp_path, languages=LANGS)
    assert raw["test_de"]["tokens"] == [["Anna", "Kowalski", '"'], ["Paris"]]
    assert raw["test_de"]["ner_tags"] == [tag_ids("B-PER", "I-PER", "O"), tag_ids("B-LOC")]
    assert load_unlabelled(PANX, tmp_path, ["de"])["unlabelled_de"]["tokens"] == raw["test_de"]["tokens"]


def test_panx_xtreme_test_files_without_tags_are_refused(tmp_path):
    for lang in LANGS:
        write_conll(tmp_path / f"train-{lang}.tsv", [[("Anna", "B-PER")]])
        write_conll(tmp_path / f"dev-{lang}.tsv", [[("Anna", "B-PER")]])
        write_conll(tmp_path / f"test-{lang}.tsv", [[("Anna",), ("walks",)]])
    with pytest.raises(DataUnavailable, match="no tag column") as caught:
        check_data_available(PANX, tmp_path, languages=LANGS)
    assert "\n" not in str(caught.value)


def test_marc_plain_and_original_release_columns(tmp_path):
    hub_style = [{"id": "en_1", "text": "Great\n\nworks", "label": 4}, {"id": "en_2", "text": "Bad", "label": "1 star"}]
    release = [
        {"review_id": "de_1", "stars": 5, "review_title": "Gut", "review_body": "Sehr gut", "language": "de"},
        {"review_id": "de_2", "stars": "2", "review_title": "", "review_body": "Naja", "language": "de"},
    ]
    plain = tmp_path / "plain"
    for lang in LANGS:
        for split in ("train", "validation", "test"):
            write_jsonl(plain / lang / f"{split}.jsonl", hub_style if lang == "en" else release)
    raw = load_raw(MARC, plain, languages=LANGS)
    assert raw["test_en"][0] == {"text": "Great\n\nworks", "label": 4} and raw["test_en"]["label"] == [4, 0]
    assert raw["test_de"]["text"] == ["Gut\n\nSehr gut", "Naja"] and raw["test_de"]["label"] == [4, 1]

    original = tmp_path / "marc" / "json"  # amazon_reviews_multi's json/{train,dev,test}/dataset_<lang>_<split>.json
    for lang in LANGS:
        for split in ("train", "dev", "test"):
            write_jsonl(original / split / f"dataset_{lang}_{split}.json", release)
    assert data.detect_layout(MARC, tmp_path)[0] == "marc-original"
    raw = load_raw(MARC, tmp_path, languages=LANGS)
    assert raw["validation_en"]["label"] == [4, 1]
    assert load_unlabelled(MARC, tmp_path, ["de"])["unlabelled_de"].column_names == ["text"]


# ------------------------------------------------------------------------------ unlabelled data


def test_unlabelled_parts_hold_text_only_and_tokenise_without_labels(assets, model_dir, tokenizer, tmp_path):
    for task in (MARC, PANX):
        unlabelled = load_unlabelled(task, assets / "smoke-data", ["de", "zh"])
        assert set(unlabelled) == {"unlabelled_de", "unlabelled_zh"}
        assert all(ds.column_names == list(task.text_fields) for ds in unlabelled.values())
        assert len(unlabelled["unlabelled_de"]) == 1200  # the language's train split
        tokenized = load_tokenized(tokenize_cached(unlabelled, task, model_dir, 64, tmp_path))["unlabelled_de"]
        if task is MARC:
            assert set(tokenized["labels"]) == {-1}
            continue
        for words, labels in zip(unlabelled["unlabelled_de"]["tokens"][:50], tokenized["labels"][:50]):
            word_ids = tokenizer(words, is_split_into_words=True, truncation=True, max_length=64).word_ids()
            assert set(labels) <= {0, IGNORE_INDEX} and len(labels) == len(word_ids)
            assert labels[0] == labels[-1] == IGNORE_INDEX  # [CLS], [SEP]
            assert labels.count(0) == len({word for word in word_ids if word is not None})  # one 0 per word kept


def test_unlabelled_languages_are_checked_with_one_line(tmp_path):
    rows = [{"tokens": ["Anna"], "ner_tags": ["B-PER"]}]
    for lang in LANGS:
        for split in ("dev", "test"):
            write_jsonl(tmp_path / lang / f"{split}.jsonl", rows)
    write_jsonl(tmp_path / "en" / "train.jsonl", rows)
    check_data_available(PANX, tmp_path, languages=LANGS)  # the default needs English train only
    with pytest.raises(DataUnavailable, match=r"missing .*de/train") as caught:
        check_data_available(PANX, tmp_path, languages=LANGS, unlabelled_languages=["de"])
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="unknown language"):
        load_unlabelled(PANX, tmp_path, ["xx"])


def test_xnli_unlabelled_train_is_the_machine_translated_one(tmp_path):
    """MultiNLI's English train must never stand in for another language's text."""
    (tmp_path / "XNLI-1.0").mkdir()
    for name in ("xnli.dev.tsv", "xnli.test.tsv"):
        (tmp_path / "XNLI-1.0" / name).write_text("language\tgold_label\tsentence1\tsentence2\n")
    write_jsonl(tmp_path / "multinli_1.0" / "multinli_1.0_train.jsonl", [{"sentence1": "a", "sentence2": "b",
                                                                         "gold_label": "neutral"}])
    check_data_available(XNLI, tmp_path, languages=LANGS)
    with pytest.raises(DataUnavailable, match="multinli.train.de.tsv"):
        check_data_available(XNLI, tmp_path, languages=LANGS, unlabelled_languages=["de"])


# ------------------------------------------------------------------------------------ collator


def test_collator_pads_token_labels_with_ignore_index(assets, model_dir, tmp_path):
    raw = load_raw(PANX, assets / "smoke-data", languages=("en",))
    tokenized = load_tokenized(tokenize_cached(raw, PANX, model_dir, 64, tmp_path))["test_en"]
    examples = [tokenized[i] for i in range(8)]
    assert len({example["length"] for example in examples}) > 1
    batch = make_collator(model_dir, token_labels=True)(examples)
    longest = max(example["length"] for example in examples)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["labels"].shape == batch["input_ids"].shape == (8, longest)
    assert batch["labels"].dtype == torch.long
    for row, example in enumerate(examples):
        n = example["length"]
        assert batch["labels"][row, :n].tolist() == example["labels"]
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all() and not batch["attention_mask"][row, n:].any()


# ---------------------------------------------------------------------------------------- loop


@pytest.mark.parametrize("task", [PANX, MARC], ids=lambda task: task.name)
def test_training_loop_reports_the_task_metric(assets, model_dir, task, tmp_path):
    languages = ("en", "de", "ja", "zh")  # Latin and CJK; the smoke sweep runs all of PAN-X's 40
    raw = load_raw(task, assets / "smoke-data", languages=languages)
    path = tokenize_cached(raw, task, model_dir, 64, tmp_path)
    cfg = TrainConfig(task=task.name, model=str(model_dir), tokenized_path=str(path), languages=languages,
                      seed=1, learning_rate=3e-3, max_steps=12, per_device_batch_size=32, grad_accum_steps=1,
                      max_length=64, eval_every_steps=6, eval_batch_size=256)
    reports: list[dict] = []
    final = train_and_evaluate(cfg, reports.append)
    metric = task.metric
    assert [r["step"] for r in reports[:-1]] == [6, 12] and f"eval_dev_{metric}" in reports[0]
    per_lang = [final[f"test_{metric}_{lang}"] for lang in languages]
    assert all(0.0 <= value <= 1.0 for value in per_lang)
    assert final[f"test_{metric}_avg"] == pytest.approx(sum(per_lang[1:]) / (len(per_lang) - 1))
    assert final[f"test_{metric}_avg_en"] == pytest.approx(sum(per_lang) / len(per_lang))
    assert 0.0 <= final[f"dev_{metric}"] <= 1.0
