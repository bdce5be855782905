"""MARC and PAN-X: loaders, unlabelled parts, word-aligned tokenisation, label padding, entity F1, the loop."""

from __future__ import annotations

import ast
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
    SENTENCE_ID,
    DataUnavailable,
    check_data_available,
    load_raw,
    load_tokenized,
    load_unlabelled,
    make_collator,
    tokenize_cached,
    word_segments,
)
from trainables.evaluation import Evaluator
from trainables.loop import DistContext, local_context, train_and_evaluate
from trainables.metrics import entity_f1, merge_segments, tag_sequences
from smoke import build_smoke_data
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
    script = ("import sys; from smoke import build_smoke_data; "
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


def hand_evaluator(model_dir, ctx, eval_batch_size: int, segmented: bool = False) -> Evaluator:
    """An Evaluator over the three hand-made sentences, with a model that predicts ``PRED``.

    ``segmented``: the first sentence in two rows, cut inside its PER entity (after ``B-PER, -100``),
    as the tokenisation splits a long sentence; ``SENTENCE_ID`` joins them again."""
    predictions, labels = as_tensors(GOLD, PRED)
    rows = []
    for row in range(len(GOLD)):
        n = len(GOLD[row])
        cuts = [(0, 2), (2, n)] if segmented and row == 0 else [(0, n)]
        for start, stop in cuts:
            rows.append({"input_ids": predictions[row, start:stop].tolist(), "attention_mask": [1] * (stop - start),
                         "labels": labels[row, start:stop].tolist(), "length": stop - start,
                         **({SENTENCE_ID: row} if segmented else {})})
    split = Dataset.from_list(rows)
    cfg = TrainConfig(task="panx", model=str(model_dir), languages=("en",), eval_batch_size=eval_batch_size)
    return Evaluator(FixedLogits(), DatasetDict({"test_en": split}), PANX, cfg, ctx,
                     make_collator(model_dir, token_labels=True)).bind(torch.nn.Linear(1, 1))


def test_evaluator_scores_token_tasks_with_entity_f1(model_dir):
    assert hand_evaluator(model_dir, local_context(), 2).score("test_en") == pytest.approx(HAND_F1)


def test_evaluator_joins_a_sentence_s_segments_before_scoring(model_dir):
    """Scored apart, the cut sentence's halves would hold PER | PER, LOC (gold) and PER | PER, ORG (predicted):
    tp 2, predicted 5, gold 4 over the split, F1 4/9. Joined, it is the unsegmented split's 2/7."""
    examples: dict = {}
    scores = hand_evaluator(model_dir, local_context(), 1, segmented=True).test_scores(examples)
    assert scores["test_f1_en"] == pytest.approx(HAND_F1)
    assert examples["en"].example_id.tolist() == [0, 1, 2]
    assert examples["en"].gold == [tag_ids(*(tag for tag in row if tag != -100)) for row in GOLD]
    assert examples["en"].entity_counts.tolist() == [[1, 2, 2], [0, 1, 1], [0, 1, 0]]
    unjoined = hand_evaluator(model_dir, local_context(), 1, segmented=True)
    unjoined.data = DatasetDict({"test_en": unjoined.data["test_en"].remove_columns(SENTENCE_ID)})
    assert unjoined.score("test_en") == pytest.approx(4 / 9)  # what scoring the segments apart would give


def _score_on_rank(rank: int, world_size: int, model_dir: str, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        ctx = DistContext(rank=rank, world_size=world_size)
        score = hand_evaluator(model_dir, ctx, 1).score("test_en")  # one sentence per batch: ranks hold 2 and 1
        # Rows of lengths 2, 3 (the first sentence's segments), 4, 2, one per batch in length order: rank 0 scores
        # rows 2 and 0, rank 1 rows 1 and 3, so the sentence is joined from both ranks.
        joined = hand_evaluator(model_dir, ctx, 1, segmented=True).score("test_en")
        Path(out, f"rank{rank}").write_text(repr((score, joined)))
    finally:
        dist.destroy_process_group()


def test_entity_f1_gathers_sentences_from_every_rank(model_dir, tmp_path):
    """Per-rank F1s would be 0.4 and 0 (mean 0.2); the gathered sentences give the whole split's 2/7, also when
    a sentence's segments sit on different ranks."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_score_on_rank, args=(2, str(model_dir), port, str(tmp_path)), nprocs=2, join=True)
    scores = [score for rank in range(2) for score in ast.literal_eval((tmp_path / f"rank{rank}").read_text())]
    assert scores == pytest.approx([HAND_F1] * 4)


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


# A PAN-X sentence of 34 sub-words (+ [CLS], [SEP]) in the smoke tokenizer, and a short one.
LONG_WORDS = ["Anna", "Kowalski", "walks", "near", "Lake", "Pelora", "with", "Maria", "Dupont", "from", "Berlin", "."]
LONG_TAGS = ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O", "B-PER", "I-PER", "O", "B-LOC", "O"]
SHORT_WORDS, SHORT_TAGS = ["Anna", "visits", "Paris"], ["B-PER", "O", "B-LOC"]


def panx_split(words_and_tags: list[tuple[list[str], list[str]]]) -> DatasetDict:
    features = Features({"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=TAGS))})
    return DatasetDict({"test_en": Dataset.from_dict(
        {"tokens": [words for words, _ in words_and_tags], "ner_tags": [tag_ids(*tags) for _, tags in words_and_tags]},
        features=features)})


def test_word_segments_are_consecutive_word_aligned_and_greedy():
    # budget 5: 3+1 | 2 (4 would overflow) | 4+1 | 1; zero-sub-word words stay where they are
    assert word_segments([3, 1, 2, 4, 1, 1], 5) == [(0, 2), (2, 3), (3, 5), (5, 6)]
    assert word_segments([0, 5, 0], 5) == [(0, 3)]
    assert word_segments([], 5) == [(0, 0)]  # an empty sentence keeps its row
    with pytest.raises(ValueError, match="6 sub-words"):
        word_segments([1, 6], 5)


def test_merge_segments_joins_rows_by_sentence_in_row_order():
    # Rows in evaluation order (length-sorted, two ranks' shares); sentence 1 has rows 1, 2, 3.
    rows = [3, 0, 4, 1, 2]
    sentences = [1, 0, 2, 1, 1]
    gold = [[5], [1, 2], [0], [0, 3], [4, 4]]
    predicted = [[6], [1, 0], [0], [0, 3], [4, 0]]
    ids, joined_gold, joined_predicted = merge_segments(rows, sentences, gold, predicted)
    assert ids.tolist() == [0, 1, 2]
    assert joined_gold == [[1, 2], [0, 3, 4, 4, 5], [0]]
    assert joined_predicted == [[1, 0], [0, 3, 4, 0, 6], [0]]
    with pytest.raises(ValueError, match="one of each per row"):
        merge_segments([0, 1], [0], [[0], [1]], [[0], [1]])


def test_a_sentence_longer_than_max_length_is_split_into_word_aligned_segments(tmp_path, model_dir, tokenizer):
    """Sub-words per word: 1 8 1 1 4 6 1 5 1 4 1 1. At max_length 12 (10 besides [CLS], [SEP]) the segments are
    Anna Kowalski walks (10) | near Lake (5) | Pelora with (7) | Maria Dupont from (10) | Berlin . (2)."""
    raw = panx_split([(LONG_WORDS, LONG_TAGS), (SHORT_WORDS, SHORT_TAGS)])
    split = load_tokenized(tokenize_cached(raw, PANX, model_dir, 12, tmp_path))["test_en"]
    assert split[SENTENCE_ID] == [0, 0, 0, 0, 0, 1]
    assert split["length"] == [12, 7, 9, 12, 4, 5]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    segments = [LONG_WORDS[0:3], LONG_WORDS[3:5], LONG_WORDS[5:7], LONG_WORDS[7:10], LONG_WORDS[10:], SHORT_WORDS]
    for row, words in zip(split, segments):
        assert row["input_ids"] == [cls, *tokenizer.convert_tokens_to_ids(
            [piece for word in words for piece in tokenizer.tokenize(word)]), sep]
    scored = [[tag for tag in labels if tag != IGNORE_INDEX] for labels in split["labels"]]
    assert sum(scored[:5], []) == tag_ids(*LONG_TAGS) and scored[5] == tag_ids(*SHORT_TAGS)  # every word
    # A word longer than a whole segment (Kowalski: 8 > 7 at max_length 9) becomes [UNK], keeping its tag.
    short = load_tokenized(tokenize_cached(raw, PANX, model_dir, 9, tmp_path))["test_en"]
    assert short["input_ids"][0] == [cls, *tokenizer.convert_tokens_to_ids(["Anna", tokenizer.unk_token, "walks",
                                                                            "near"]), sep]
    assert sum(([t for t in labels if t != IGNORE_INDEX] for labels in short["labels"][:-1]), []) == \
        tag_ids(*LONG_TAGS)


class GoldButUnknown:
    """Predicts each word's gold tag, except "O" on the unknown token (Dupont and Berlin in the smoke vocabulary)."""

    extra_batch_columns = ()

    def __init__(self, unk_id: int):
        self.unk_id = unk_id

    def logits(self, model, batch):
        tags = batch["labels"].clamp(min=0).masked_fill(batch["input_ids"] == self.unk_id, 0)
        return torch.nn.functional.one_hot(tags, len(TAGS)).float()


def test_every_word_of_a_long_sentence_is_scored_on_the_whole_sentence(tmp_path, model_dir, tokenizer):
    """Long sentence, gold: PER Anna Kowalski, LOC Lake Pelora (cut between two segments), PER Maria Dupont, LOC
    Berlin = 4; predicted (Dupont, Berlin -> O): PER Anna Kowalski, LOC Lake Pelora, PER Maria = 3, of which 2
    right. Short one: 2 gold, 2 predicted, 2 right. Micro F1 = 2 * 4 / (5 + 6) = 8/11. Scored as five separate
    segments the long one would count Lake and Pelora as two LOC entities (tp 3, predicted 4, gold 5)."""
    raw = panx_split([(LONG_WORDS, LONG_TAGS), (SHORT_WORDS, SHORT_TAGS)])
    path = tokenize_cached(raw, PANX, model_dir, 12, tmp_path)
    cfg = TrainConfig(task="panx", model=str(model_dir), languages=("en",), eval_batch_size=2)
    evaluator = Evaluator(GoldButUnknown(tokenizer.unk_token_id), load_tokenized(path), PANX, cfg, local_context(),
                          make_collator(model_dir, token_labels=True)).bind(torch.nn.Linear(1, 1))
    examples: dict = {}
    scores = evaluator.test_scores(examples)
    assert scores["test_f1_en"] == pytest.approx(8 / 11)
    got = examples["en"]
    assert got.example_id.tolist() == [0, 1]
    assert got.gold == [tag_ids(*LONG_TAGS), tag_ids(*SHORT_TAGS)]
    dupont, berlin = LONG_WORDS.index("Dupont"), LONG_WORDS.index("Berlin")
    predicted = [TAGS[0] if index in (dupont, berlin) else tag for index, tag in enumerate(LONG_TAGS)]
    assert got.prediction == [tag_ids(*predicted), tag_ids(*SHORT_TAGS)]
    assert got.entity_counts.tolist() == [[2, 3, 4], [2, 2, 2]]


def test_token_and_sequence_caches_never_collide(tmp_path, model_dir):
    raw = DatasetDict({"test_en": Dataset.from_dict({"tokens": [["a"]], "ner_tags": [[0]]})})
    token_key = data.tokenized_cache_key(raw, PANX, model_dir, 64)
    sequence_twin = dataclasses.replace(PANX, kind="sequence")
    assert data.tokenized_cache_key(raw, sequence_twin, model_dir, 64) != token_key


def test_token_caches_from_before_segments_are_not_reused_and_sequence_caches_are(model_dir):
    """A token task's key has the segment format in it: a cache written when long sentences were cut (the same
    key fields without it) is another key. A sequence task's key is what it was."""
    def key_without_segments(raw, task):
        fields = [task.name, task.kind, *task.text_fields, task.label_field, "64"]
        return data.content_cache_key(data.TOKENIZED_FORMAT_VERSION, fields, model_dir, raw)

    tokens = DatasetDict({"test_en": Dataset.from_dict({"tokens": [["a"]], "ner_tags": [[0]]})})
    assert data.tokenized_cache_key(tokens, PANX, model_dir, 64) != key_without_segments(tokens, PANX)
    text = DatasetDict({"test_en": Dataset.from_dict({"text": ["a"], "label": [0]})})
    assert data.tokenized_cache_key(text, MARC, model_dir, 64) == key_without_segments(text, MARC)


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
    ] + [{"tokens": ["z"], "ner_tags": ["O"]}] * 98  # one unknown tag in 102 sentences: under the 1 % refused
    for lang in LANGS:
        for split in ("train", "dev", "test"):
            write_jsonl(tmp_path / lang / f"{split}.jsonl", rows)
    assert data.detect_layout(PANX, tmp_path)[0] == "plain"
    accounting = data.DataAccounting()
    raw = load_raw(PANX, tmp_path, languages=LANGS, accounting=accounting)
    assert raw["test_de"]["tokens"][:3] == [["Anna", "walks"], ["in", "Paris"], ["z"]]
    assert raw["test_de"]["ner_tags"][:2] == [tag_ids("B-PER", "O"), tag_ids("O", "B-LOC")]
    account = accounting.accounts["test_de"]
    assert (account.loaded, account.kept) == (102, 100) == (102, len(raw["test_de"]))
    assert account.dropped == {"unknown_label": 1, "tag_count_mismatch": 1}
    assert account.unknown_values == ("B-MISC",)


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
        # A sentence longer than the maximum length is several segments (rows) with its ``sentence_id``.
        segments: dict[int, list[list[int]]] = {}
        for sentence, labels in zip(tokenized[SENTENCE_ID], tokenized["labels"]):
            segments.setdefault(sentence, []).append(labels)
        for sentence, words in enumerate(unlabelled["unlabelled_de"]["tokens"][:50]):
            for labels in segments[sentence]:
                assert set(labels) <= {0, IGNORE_INDEX}
                assert labels[0] == labels[-1] == IGNORE_INDEX  # [CLS], [SEP]
            assert sum(labels.count(0) for labels in segments[sentence]) == len(words)  # one 0 per word, every word


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
