"""Per-example test predictions: what the loop writes, that it rescores to the run's metrics, DDP gathering,
and reading the confirm runs' files back from MLflow (a real local store, no Ray)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from datasets import Dataset, DatasetDict

from trainables.checkpoints import FolderStore
from trainables.config import TrainConfig
from trainables.data import IGNORE_INDEX, load_raw, load_tokenized, make_collator, tokenize_cached
from trainables.evaluation import Evaluator
from trainables.loop import DistContext, local_context, train_and_evaluate
from trainables.metrics import entity_counts, entity_f1
from trainables.predictions import ExamplePredictions, write_predictions
from smoke import build_smoke_data
from trainables.tasks import PANX, XNLI, split_key

TAGS = list(PANX.label_names)  # O B-PER I-PER B-ORG I-ORG B-LOC I-LOC


def micro_f1(frame: pd.DataFrame) -> float:
    denominator = frame["n_pred"].astype(int).sum() + frame["n_gold"].astype(int).sum()
    return 2 * frame["tp"].astype(int).sum() / denominator if denominator else 0.0


# ------------------------------------------------------------------------------------- the loop


def test_sentence_task_predictions_rescore_to_the_run_accuracies(smoke_train_config, tmp_path):
    path = tmp_path / "run" / "predictions.parquet"
    cfg = smoke_train_config.replace(max_steps=25, predictions_path=str(path))
    store = FolderStore(tmp_path / "store")
    final = train_and_evaluate(cfg, store=store)
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))  # written whole, no temporary left
    print(f"XNLI smoke predictions: {path.stat().st_size} bytes")

    schema = pq.read_schema(path)
    assert str(schema.field("language").type) == "dictionary<values=string, indices=int8, ordered=0>"
    assert str(schema.field("example_id").type) == "int32"
    assert str(schema.field("prediction").type) == str(schema.field("gold").type) == "int8"
    table = pd.read_parquet(path)
    assert list(table.columns) == ["language", "example_id", "prediction", "gold"]
    assert list(table["language"].unique()) == list(XNLI.languages)
    data = load_tokenized(cfg.tokenized_path)
    for lang, rows in table.groupby("language", observed=True, sort=False):
        split = data[split_key(XNLI.test_split, lang)]
        assert rows["example_id"].tolist() == list(range(len(split)))  # every test example once, in split order
        assert rows["gold"].tolist() == split["labels"]
        assert (rows["prediction"] == rows["gold"]).mean() == pytest.approx(final[f"test_acc_{lang}"], abs=1e-12)

    # Collecting predictions changes no score.
    plain = train_and_evaluate(smoke_train_config.replace(max_steps=25))
    wall_clock = {"train_samples_per_second", "train_began_at", "train_ended_at",
                  "peak_host_memory_gb"}  # wall-clock and process measurements, not results
    assert {k: v for k, v in plain.items() if k not in wall_clock} == \
        {k: v for k, v in final.items() if k not in wall_clock}

    # A run that ended returns its stored outcome and leaves the first run's file as it was.
    written = path.stat().st_mtime_ns
    assert train_and_evaluate(cfg, store=FolderStore(tmp_path / "store")) == final
    assert path.stat().st_mtime_ns == written


PANX_MAX_LENGTH = 24  # about half the smoke test sentences are longer: they are tokenised in segments


@pytest.fixture(scope="module")
def panx_raw(smoke_root) -> DatasetDict:
    return load_raw(PANX, build_smoke_data(PANX, smoke_root), languages=("en", "de", "ja"))


@pytest.fixture(scope="module")
def panx_tokenized(panx_raw, smoke_root, smoke_model) -> str:
    return str(tokenize_cached(panx_raw, PANX, smoke_model, PANX_MAX_LENGTH, smoke_root / "cache"))


@pytest.mark.usefixtures("isolated_hf_caches")
def test_token_task_predictions_rescore_to_the_run_entity_f1(smoke_model, panx_raw, panx_tokenized, tmp_path):
    path = tmp_path / "predictions.parquet"
    cfg = TrainConfig(task="panx", model=smoke_model, tokenized_path=panx_tokenized, languages=("en", "de", "ja"),
                      seed=1, learning_rate=3e-3, max_steps=12, per_device_batch_size=32, grad_accum_steps=1,
                      max_length=PANX_MAX_LENGTH, eval_every_steps=6, eval_batch_size=256, predictions_path=str(path))
    final = train_and_evaluate(cfg)
    print(f"PAN-X smoke predictions (3 languages): {path.stat().st_size} bytes")
    schema = pq.read_schema(path)
    assert str(schema.field("prediction").type) == "list<element: int8>"
    assert {str(schema.field(name).type) for name in ("tp", "n_pred", "n_gold")} == {"int16"}
    table = pd.read_parquet(path)
    assert list(table.columns) == ["language", "example_id", "prediction", "gold", "tp", "n_pred", "n_gold"]
    data = load_tokenized(panx_tokenized)
    for lang in cfg.languages:
        rows = table[table["language"] == lang]
        split, sentences = data[split_key(PANX.test_split, lang)], panx_raw[split_key(PANX.test_split, lang)]
        assert len(split) > len(sentences)  # some sentences are in several segments
        # A row per sentence, and its gold is every word's tag, in order: all words are scored.
        assert rows["example_id"].tolist() == list(range(len(sentences)))
        assert [list(g) for g in rows["gold"]] == [list(tags) for tags in sentences["ner_tags"]]
        gold = [[TAGS[t] for t in g] for g in rows["gold"]]
        predicted = [[TAGS[t] for t in p] for p in rows["prediction"]]
        assert [len(p) for p in predicted] == [len(g) for g in gold]
        # The counts are the sentences' entities, and they rescore to the run's F1 (= seqeval on the whole split).
        assert list(zip(rows["tp"], rows["n_pred"], rows["n_gold"])) == \
            [entity_counts(g, p) for g, p in zip(gold, predicted)]
        assert micro_f1(rows) == pytest.approx(final[f"test_f1_{lang}"], abs=1e-12)
        assert entity_f1(gold, predicted) == pytest.approx(final[f"test_f1_{lang}"], abs=1e-12)


def test_entity_counts_sum_to_seqeval_micro_f1_on_hand_made_sentences():
    """Gold entities: PER, LOC (s1), ORG (s2); predicted: PER (right), ORG (s1, wrong type), ORG (s2, one word
    short), LOC (s3, none there). tp = 1, predicted = 4, gold = 3: F1 = 2 / 7; an I- after O opens an entity."""
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"], ["O", "O"], ["I-LOC", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O"], ["B-LOC", "O"], ["I-LOC", "O"]]
    counts = [entity_counts(g, p) for g, p in zip(gold, predicted)]
    assert counts == [(1, 2, 2), (0, 1, 1), (0, 1, 0), (1, 1, 1)]
    tp, n_pred, n_gold = np.sum(counts, axis=0)
    assert 2 * tp / (n_pred + n_gold) == pytest.approx(4 / 9) == pytest.approx(entity_f1(gold, predicted))
    assert entity_counts([], []) == (0, 0, 0)


# ------------------------------------------------------------------------------------------ DDP


class FirstTokenLogits:
    """Logits that say: a sentence's label is its first input id; a word's tag is its input id."""

    extra_batch_columns = ()

    def __init__(self, token: bool):
        self.token = token

    def logits(self, model, batch):
        ids = batch["input_ids"].long()
        return torch.nn.functional.one_hot(ids if self.token else ids[:, 0], len(TAGS)).float()


def hand_split(token: bool) -> Dataset:
    """Five rows of different lengths (the evaluator reorders them by length). Token rows: the input ids are the
    predicted tags, the labels the gold ones (-100 on a later sub-word)."""
    rows = []
    for k in range(5):
        n = 2 + (k * 3) % 5  # lengths 2, 5, 3, 6, 4
        predicted = [(k + j) % len(TAGS) for j in range(n)]
        gold = [0] * n if token else k % 3
        if token:
            gold[1] = IGNORE_INDEX
            gold[0] = predicted[0]
        rows.append({"input_ids": predicted, "attention_mask": [1] * n, "labels": gold, "length": n})
    return Dataset.from_list(rows)


def hand_evaluator(model_dir: str, ctx: DistContext, token: bool) -> Evaluator:
    task = PANX if token else XNLI
    cfg = TrainConfig(task=task.name, model=model_dir, languages=("en",), eval_batch_size=1)
    data = DatasetDict({"test_en": hand_split(token)})
    return Evaluator(FirstTokenLogits(token), data, task, cfg, ctx,
                     make_collator(model_dir, token_labels=token)).bind(torch.nn.Linear(1, 1))


def _collect_on_rank(rank: int, world_size: int, model_dir: str, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        results = {}
        for token in (False, True):
            examples: dict = {}
            scores = hand_evaluator(model_dir, DistContext(rank=rank, world_size=world_size), token).test_scores(examples)
            results[token] = (scores, examples["en"])
        Path(out, f"rank{rank}").write_bytes(pickle.dumps(results))
    finally:
        dist.destroy_process_group()


def test_ranks_gather_every_example_in_split_order(smoke_model, tmp_path):
    """One example per batch over 2 ranks: each rank scores 3 or 2 rows, and both end with all 5, by row."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_collect_on_rank, args=(2, smoke_model, port, str(tmp_path)), nprocs=2, join=True)
    single: dict = {}  # token -> (scores, examples) of one process
    for token in (False, True):
        examples: dict = {}
        single[token] = hand_evaluator(smoke_model, local_context(), token).test_scores(examples), examples["en"]
    for rank in range(2):
        results = pickle.loads((tmp_path / f"rank{rank}").read_bytes())
        for token, (scores, examples) in results.items():
            assert examples.example_id.tolist() == [0, 1, 2, 3, 4]
            language_scores = {k: v for k, v in scores.items() if not k.endswith(("_avg", "_avg_en"))}
            assert language_scores == {k: single[token][0][k] for k in language_scores}
            assert (examples.prediction, examples.gold) == (single[token][1].prediction, single[token][1].gold)
            rows = hand_split(token)
            if token:
                assert examples.gold == [[t for t in labels if t != IGNORE_INDEX] for labels in rows["labels"]]
                assert examples.prediction == [[ids[0], *ids[2:]] for ids in rows["input_ids"]]
                gold = [[TAGS[t] for t in g] for g in examples.gold]
                predicted = [[TAGS[t] for t in p] for p in examples.prediction]
                assert examples.entity_counts.tolist() == [list(entity_counts(g, p)) for g, p in zip(gold, predicted)]
                tp, n_pred, n_gold = examples.entity_counts.sum(0)
                assert scores["test_f1_en"] == pytest.approx(2 * tp / (n_pred + n_gold))
            else:
                assert examples.gold == [0, 1, 2, 0, 1]
                assert examples.prediction == [ids[0] for ids in rows["input_ids"]] == [0, 1, 2, 3, 4]
                assert scores["test_acc_en"] == pytest.approx(3 / 5)


def test_written_file_orders_each_language_by_example_id(tmp_path):
    shuffled = ExamplePredictions(np.array([2, 0, 1]), [1, 0, 2], [1, 1, 2])
    path = write_predictions({"de": shuffled, "en": ExamplePredictions(np.array([0]), [0], [0])},
                             tmp_path / "deep" / "p.parquet")
    table = pd.read_parquet(path)
    assert table["language"].tolist() == ["de", "de", "de", "en"]
    assert table["example_id"].tolist() == [0, 1, 2, 0]
    assert table["prediction"].tolist() == [0, 2, 1, 0] and table["gold"].tolist() == [1, 2, 1, 0]
    assert [p.name for p in path.parent.iterdir()] == ["p.parquet"]


# ------------------------------------------------------------------------- reading back (MLflow)


def test_confirm_predictions_reads_the_newest_finished_run_of_each_pair(tmp_path):
    from mlflow.tracking import MlflowClient

    from orchestrator.predictions import confirm_predictions
    from orchestrator.tracking import PARENT_TAG, SweepTracker

    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "preds")
    parent = tracker.open_parent(None, name="sweep", tags={"stage": "sweep"})
    client: MlflowClient = tracker.client

    def child(arm: str, seed: int, start: int, predictions: list[int] | None, status: str = "FINISHED") -> None:
        tags = {PARENT_TAG: parent, "stage": "confirm", "arm": arm, "seed": str(seed)}
        run_id = client.create_run(tracker.experiment_id, start_time=start, tags=tags).info.run_id
        if predictions is not None:
            examples = ExamplePredictions(np.arange(len(predictions)), predictions, [1] * len(predictions))
            folder = tmp_path / run_id
            path = write_predictions({"en": examples, "de": examples}, folder / "predictions.parquet")
            client.log_artifact(run_id, str(path), "predictions")
        client.set_terminated(run_id, status=status)

    child("baseline", 1, 1000, [0, 0])  # superseded by the newer run of the same pair
    child("baseline", 1, 2000, [1, 0])
    child("salt", 1, 1500, [1, 1])
    child("salt", 2, 1600, [0, 1], status="FAILED")  # not finished: not read
    child("salt", 3, 1700, None)  # no artifact (an older sweep): no rows
    frame = confirm_predictions(tracker)
    assert list(frame.columns) == ["arm", "seed", "language", "example_id", "prediction", "gold"]
    assert str(frame["language"].dtype) == "category"
    frame = frame.astype({"arm": str, "language": str}).sort_values(["arm", "seed", "language", "example_id"])
    assert [tuple(r) for r in frame.itertuples(index=False)] == [
        ("baseline", 1, "de", 0, 1, 1), ("baseline", 1, "de", 1, 0, 1),
        ("baseline", 1, "en", 0, 1, 1), ("baseline", 1, "en", 1, 0, 1),
        ("salt", 1, "de", 0, 1, 1), ("salt", 1, "de", 1, 1, 1),
        ("salt", 1, "en", 0, 1, 1), ("salt", 1, "en", 1, 1, 1)]
    empty = confirm_predictions(SweepTracker(f"sqlite:///{tmp_path / 'other.db'}", "none"))
    assert empty.empty and list(empty.columns) == ["arm", "seed", "language", "example_id", "prediction", "gold"]
