"""Pseudo-labelling on Ray Data: the teachers (K voters, or one) label target-language text.

A pool of ``PseudoLabeler`` actors (GPU actors when the trial has GPUs) holds the teachers and
turns batches of tokenised rows into, per row (sentence tasks) or per word (first sub-words of
token tasks): the voters' mean distribution (the soft label), the voted label, its confidence
and whether enough voters agreed (``voting.vote``). English dev rows go through the same pass so
the threshold is chosen on exactly the predictions it is applied to.

The pipeline's input is handed over as ready blocks and its output read back by the trial's
driver as it streams in, so the only resources it holds are its actors': it never waits behind
a training run that holds the trial's CPUs (that run has ended when labelling starts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from trainables.labels import IGNORE_INDEX  # the tokenised data's label where no word starts
from trainables.methods.self_training.voting import vote

MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class Labels:
    """What the voters say about each row of one part, in row order.

    Sentence tasks: ``probabilities`` [N, C], ``labels`` / ``confidence`` / ``agreed`` [N].
    Token tasks: lists of per-row arrays over the row's tokens ([T, C] and [T]); positions that
    are not a word's first sub-word have probability rows of zeros and ``agreed`` False.
    """

    probabilities: object
    labels: object
    confidence: object
    agreed: object


class PseudoLabeler:
    """The Ray Data callable class: K classifiers on one device, a batch of rows -> their vote."""

    def __init__(self, model_dirs: Sequence[str], num_labels: int, token_task: bool, agreement: str | int,
                 pad_token_id: int = 0, device: str | None = None):
        import torch

        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        from trainables.models import load_classifier

        # The checkpoints hold their heads: nothing is initialised, so the seed does not matter.
        kind = "token" if token_task else "sequence"
        self.models = [load_classifier(model_dir, num_labels, seed=0, kind=kind).to(self.device).eval()
                       for model_dir in model_dirs]
        self.token_task, self.agreement = token_task, agreement
        self.bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.pad_token_id = pad_token_id

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        torch = self.torch
        inputs, lengths = _pad({name: batch[name] for name in MODEL_COLUMNS if name in batch}, self.device,
                               self.pad_token_id)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
            probs = torch.stack([torch.softmax(model(**inputs).logits.float(), -1) for model in self.models])
        result = vote(probs.cpu().numpy(), self.agreement)  # [B, C] or [B, T, C]
        out = {"part": batch["part"], "row": batch["row"]}
        if not self.token_task:
            out.update(probabilities=list(result.probabilities.astype(np.float32)), label=result.labels,
                       confidence=result.confidence.astype(np.float32), agreed=result.agreed)
            return pa.table(out)
        columns = {"probabilities": [], "label": [], "confidence": [], "agreed": []}
        for index, length in enumerate(lengths):
            words = np.asarray(batch["labels"][index]) != IGNORE_INDEX
            probabilities = np.where(words[:, None], result.probabilities[index, :length], 0.0).astype(np.float32)
            columns["probabilities"].append(list(probabilities))
            columns["label"].append(np.where(words, result.labels[index, :length], IGNORE_INDEX))
            columns["confidence"].append(np.where(words, result.confidence[index, :length], 0.0).astype(np.float32))
            columns["agreed"].append(words & result.agreed[index, :length])
        out.update(columns)
        return pa.table(out)


def _pad(columns: dict[str, np.ndarray], device, pad_token_id: int) -> tuple[dict, list[int]]:
    """Right-pad a batch of ragged rows (ids with the pad id, mask and token types with 0) into tensors."""
    import torch

    lengths = [len(row) for row in columns["input_ids"]]
    width = max(lengths)
    out = {}
    for name, rows in columns.items():
        tensor = torch.full((len(rows), width), pad_token_id if name == "input_ids" else 0, dtype=torch.long)
        for index, row in enumerate(rows):
            tensor[index, :len(row)] = torch.as_tensor(np.asarray(row, dtype=np.int64))
        out[name] = tensor.to(device)
    return out, lengths


def label_with_ray_data(parts: dict, model_dirs: Sequence[str], *, num_labels: int, token_task: bool,
                        agreement: str | int, pad_token_id: int = 0, batch_size: int = 128,
                        gpus_per_actor: float = 0.0, concurrency: int = 1) -> dict[str, Labels]:
    """Label every row of each part (a tokenised ``datasets.Dataset`` with ``labels``) with the voters."""
    import pyarrow as pa
    import ray.data

    table = _input_table(parts)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    blocks = max(concurrency * 4, min(100, len(table) // max(batch_size * 4, 1)), 1)
    size = -(-len(table) // blocks)
    ds = ray.data.from_arrow([table.slice(start, size) for start in range(0, len(table), size)])
    kwargs = dict(model_dirs=list(model_dirs), num_labels=num_labels, token_task=token_task, agreement=agreement,
                  pad_token_id=pad_token_id)
    ds = ds.map_batches(PseudoLabeler, fn_constructor_kwargs=kwargs, batch_size=batch_size, batch_format="numpy",
                        num_gpus=gpus_per_actor or None, num_cpus=1, compute=ray.data.ActorPoolStrategy(size=concurrency))
    out = pa.concat_tables(list(ds.iter_batches(batch_size=None, batch_format="pyarrow")))
    return _by_part(out, parts, token_task)


def label_in_process(parts: dict, model_dirs: Sequence[str], *, num_labels: int, token_task: bool,
                     agreement: str | int, pad_token_id: int = 0, batch_size: int = 128,
                     device: str | None = None) -> dict[str, Labels]:
    """The same labelling as a plain loop in this process (tests, and the benchmark's baseline)."""
    import pyarrow as pa

    labeler = PseudoLabeler(model_dirs, num_labels, token_task, agreement, pad_token_id, device)
    table = _input_table(parts)
    chunks = []
    for start in range(0, len(table), batch_size):
        chunk = table.slice(start, batch_size)
        chunks.append(labeler({name: chunk.column(name).to_numpy(zero_copy_only=False) for name in chunk.column_names}))
    return _by_part(pa.concat_tables(chunks), parts, token_task)


def _input_table(parts: dict):
    """Every part's model columns and ``labels`` in one Arrow table, with its part index and row number."""
    import pyarrow as pa

    tables = []
    for index, dataset in enumerate(parts.values()):
        columns = [c for c in (*MODEL_COLUMNS, "labels") if c in dataset.column_names]
        table = dataset.select_columns(columns).with_format("arrow")[:]
        table = table.append_column("part", pa.array(np.full(len(table), index, dtype=np.int32)))
        tables.append(table.append_column("row", pa.array(np.arange(len(table), dtype=np.int64))))
    return pa.concat_tables(tables).combine_chunks()


def _by_part(out, parts: dict, token_task: bool) -> dict[str, Labels]:
    """The labeller's output split back into the parts, in row order (it may arrive in any order)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = out.combine_chunks()
    labelled = {}
    for index, (name, dataset) in enumerate(parts.items()):
        rows = out.filter(pc.equal(out["part"], index))
        rows = rows.take(pa.array(np.argsort(rows["row"].to_numpy(), kind="stable")))
        if len(rows) != len(dataset):
            raise RuntimeError(f"pseudo-labelling returned {len(rows)} of {len(dataset)} rows of {name}")
        labelled[name] = _as_labels(rows, token_task)
    return labelled


def _as_labels(rows, token_task: bool) -> Labels:
    if not token_task:
        return Labels(np.stack(rows["probabilities"].to_numpy(zero_copy_only=False)).astype(np.float32),
                      rows["label"].to_numpy(), rows["confidence"].to_numpy(), rows["agreed"].to_numpy())
    return Labels([np.stack(row) if len(row) else np.zeros((0, 0), np.float32)
                   for row in rows["probabilities"].to_pylist()],
                  [np.asarray(row) for row in rows["label"].to_pylist()],
                  [np.asarray(row, dtype=np.float32) for row in rows["confidence"].to_pylist()],
                  [np.asarray(row, dtype=bool) for row in rows["agreed"].to_pylist()])
