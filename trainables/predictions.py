"""A run's per-example test predictions, as one compact Parquet file.

A run's test scores are averages; a paired significance test over test examples (a bootstrap
that resamples examples, ``orchestrator.bootstrap``) needs what each example got. The loop's
final test pass collects it (``cfg.predictions_path``), and rank 0 writes one file with a row
per test example of every language:

- ``language`` (dictionary-encoded), ``example_id`` (the row of the example in that language's
  tokenized test split: the split's stable order, the same in every run of a sweep; token tasks: the
  sentence's row in the test split as loaded, whose segments the tokenized split may hold in several rows);
- sentence tasks: ``prediction`` and ``gold``, label ids;
- token tasks: ``prediction`` and ``gold``, lists of tag ids over the whole sentence's scored words
  (its segments joined), and the sentence's entity counts ``tp``, ``n_pred``, ``n_gold``
  (``trainables.metrics.entity_counts``), from which the micro F1 of any subset of sentences follows.

Ids are int32, labels int8 (int16 beyond 127 labels), entity counts int16: XNLI's 15 x 5010 test examples take well under
a megabyte.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from trainables.publish import publish_file

PREDICTIONS_FILE = "predictions.parquet"
COLUMNS = ("language", "example_id", "prediction", "gold")
ENTITY_COUNTS = ("tp", "n_pred", "n_gold")


@dataclass
class ExamplePredictions:
    """One language's test predictions, in any order (one rank's share, or the gathered whole)."""

    example_id: np.ndarray  # int, the row in the language's test split (token tasks: the sentence's)
    prediction: list  # label ids (sentence tasks) or lists of tag ids (token tasks)
    gold: list
    entity_counts: np.ndarray | None = None  # token tasks: [n, 3] (tp, n_pred, n_gold) per sentence

    @classmethod
    def concat(cls, parts: Sequence["ExamplePredictions"]) -> "ExamplePredictions":
        """The parts (ranks' shares) as one, ordered by example id."""
        ids = np.concatenate([np.asarray(p.example_id, np.int64) for p in parts])
        order = np.argsort(ids, kind="stable")
        prediction = [x for p in parts for x in p.prediction]
        gold = [x for p in parts for x in p.gold]
        counts = None
        if parts and parts[0].entity_counts is not None:
            counts = np.concatenate([np.asarray(p.entity_counts).reshape(-1, 3) for p in parts])[order]
        return cls(ids[order], [prediction[i] for i in order], [gold[i] for i in order], counts)

    def __len__(self) -> int:
        return len(self.example_id)


def predictions_table(by_language: dict[str, ExamplePredictions]):
    """The Parquet file's rows as a ``pyarrow.Table``: languages in the given order, each by example id."""
    import pyarrow as pa

    parts = {lang: ExamplePredictions.concat([examples]) for lang, examples in by_language.items()}
    token_task = any(p.entity_counts is not None for p in parts.values())
    languages = list(parts)
    lengths = [len(p) for p in parts.values()]
    language = pa.DictionaryArray.from_arrays(
        pa.array(np.repeat(np.arange(len(languages), dtype=np.int8 if len(languages) < 128 else np.int16), lengths)),
        pa.array(languages, pa.string()))
    ids = np.concatenate([p.example_id for p in parts.values()] or [np.zeros(0, np.int64)]).astype(np.int32)
    prediction = [x for p in parts.values() for x in p.prediction]
    gold = [x for p in parts.values() for x in p.gold]
    columns = {"language": language, "example_id": pa.array(ids)}
    if token_task:
        label = _label_type(max((max(row, default=0) for row in (*prediction, *gold)), default=0))
        columns["prediction"] = pa.array(prediction, pa.list_(label))
        columns["gold"] = pa.array(gold, pa.list_(label))
        counts = np.concatenate([p.entity_counts.reshape(-1, 3) for p in parts.values()] or [np.zeros((0, 3))])
        for k, name in enumerate(ENTITY_COUNTS):
            columns[name] = pa.array(counts[:, k].astype(np.int16))
    else:
        label = _label_type(max([*prediction, *gold], default=0))
        columns["prediction"] = pa.array(prediction, label)
        columns["gold"] = pa.array(gold, label)
    return pa.table(columns)


def _label_type(largest: int):
    """int8 for every task so far (at most 7 labels); int16 should a task have more than 127."""
    import pyarrow as pa

    return pa.int8() if largest <= np.iinfo(np.int8).max else pa.int16()


def write_predictions(by_language: dict[str, ExamplePredictions], path: str | Path) -> Path:
    """Write the file atomically (a temporary file beside it, then ``os.replace``): a reader, or a run
    killed mid-write, never sees half a file."""
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with publish_file(path) as temporary:
        pq.write_table(predictions_table(by_language), temporary, compression="zstd")
    return path
