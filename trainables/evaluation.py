"""Scoring a model during and after training: the selection metric on dev, the final test of every
language, SALT's generalized pairs and X-Mixup's CKA.

The loop (``trainables.loop``) trains; this module measures. It is its own module because scoring is
a job of its own (length-ordered batches sharded over ranks, counts summed or sequences gathered across
them, per-example predictions collected in the same pass) that the loop only calls, and tests build an
``Evaluator`` on hand-made splits without training anything.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from datasets import Dataset, DatasetDict

from trainables.config import TrainConfig
from trainables.data import SENTENCE_ID
from trainables.generalized import SECONDS, part_name, summary_metrics
from trainables.method_base import Method
from trainables.methods.xmixup.cka import linear_cka
from trainables.metrics import confusion_counts, entity_counts, entity_f1, macro_f1, merge_segments, scored_ids
from trainables.paired import PAIRED_COLUMNS
from trainables.predictions import ExamplePredictions
from trainables.tasks import TaskSpec, split_key
from trainables.training.data_order import model_columns
from trainables.training.distributed import DistContext, unwrap
from trainables.training.precision import autocast_factory


class Evaluator:
    """Scores the model on dev (for selection) and test splits, sharded over ranks.

    Examples are batched in length order, so a batch pads to similar lengths; each rank
    scores every ``world_size``-th batch and the counts are summed over ranks (token tasks:
    the tag sequences are gathered, since entity F1 does not decompose into per-rank counts, and
    a long sentence's segments are joined before it is scored).
    The unwrapped module is used: DDP's forward would wait for ranks that have fewer batches.
    The test pass can also collect every example's prediction (``test_scores(examples)``), in
    the same pass: each batch keeps its rows' indices in the split, and the ranks' shares are
    gathered on every rank.
    """

    def __init__(self, method: Method, data: DatasetDict, task: TaskSpec, cfg: TrainConfig,
                 ctx: DistContext, collate):
        self.method, self.data, self.task, self.cfg, self.ctx, self.collate = method, data, task, cfg, ctx, collate
        self.model: torch.nn.Module | None = None
        self.autocast = autocast_factory(cfg.bf16, ctx.device)
        self.languages = list(cfg.languages or task.languages)
        self.dev_extras: dict[str, float] = {}  # the last selection_score's extra metrics (dev_macro_f1_<lang>, ...)

    def bind(self, model: torch.nn.Module) -> "Evaluator":
        self.model = unwrap(model)
        return self

    def selection_score(self) -> float:
        """The selection metric on English dev (``en-dev``) or averaged over every language's dev set; the
        task's extra metrics of the same splits go to ``dev_extras`` (``dev_<m>_<lang>`` and ``dev_<m>``,
        averaged like the selection metric)."""
        languages = self.selection_languages()
        scores, extras = [], {}
        for lang in languages:
            score, split_extras, _ = self._score(split_key(self.task.dev_split, lang), collect=False)
            scores.append(score)
            extras.update({f"dev_{name}_{lang}": value for name, value in split_extras.items()})
        for name in self.task.extra_metrics:
            extras[f"dev_{name}"] = float(np.mean([extras[f"dev_{name}_{lang}"] for lang in languages]))
        self.dev_extras = extras
        return float(np.mean(scores))

    def selection_languages(self) -> list[str]:
        """The languages whose dev sets the selection metric averages: English (``en-dev``) or all."""
        return [self.task.source_language] if self.cfg.select_on == "en-dev" else self.languages

    def test_rows_per_selection_row(self) -> float:
        """Rows the final test pass scores per row of one selection evaluation: how many evaluations' time
        the test takes (the trial's ETA, ``trainables.training.pace``)."""
        selection = sum(len(self.data[split_key(self.task.dev_split, lang)]) for lang in self.selection_languages())
        test = sum(len(self.data[split_key(self.task.test_split, lang)]) for lang in self.languages)
        return test / max(selection, 1)

    def chance_level(self) -> float:
        """The selection metric of a constant prediction: the share of the most frequent gold label in the
        selection split (the mean over languages for multilingual-dev); 0.0 for entity F1, which
        predicting "O" everywhere scores. A run whose best selection score never beats it kept a
        checkpoint chosen by noise (issue 21)."""
        if self.task.kind == "token":
            return 0.0
        languages = self.selection_languages()
        shares = []
        for lang in languages:
            labels = np.asarray(self.data[split_key(self.task.dev_split, lang)]["labels"])
            shares.append(np.bincount(labels[labels >= 0]).max() / max(labels.size, 1))
        return float(np.mean(shares))

    def test_scores(self, examples: dict[str, ExamplePredictions] | None = None) -> dict[str, float]:
        """Every language's test score and their averages; when ``examples`` is a dict, each language's
        per-example predictions go into it (on every rank)."""
        scores: dict[str, dict[str, float]] = {name: {} for name in (self.task.metric, *self.task.extra_metrics)}
        for lang in self.languages:
            split = split_key(self.task.test_split, lang)
            score, extras, collected = self._score(split, collect=examples is not None)
            scores[self.task.metric][lang] = score
            for name, value in extras.items():
                scores[name][lang] = value
            if examples is not None and collected is not None:
                examples[lang] = collected
        out = {}
        for metric, by_lang in scores.items():
            out.update({f"test_{metric}_{lang}": value for lang, value in by_lang.items()})
            targets = [v for lang, v in by_lang.items() if lang != self.task.source_language]
            out[f"test_{metric}_avg"] = float(np.mean(targets)) if targets else float("nan")
            out[f"test_{metric}_avg_en"] = float(np.mean(list(by_lang.values())))
        return out

    @torch.inference_mode()
    def generalized_scores(self, pairs: DatasetDict) -> dict[str, float]:
        """Accuracy on every (premise language, hypothesis language) part of the generalized test set
        (``trainables.generalized``) whose languages the run tests, their averages, and the seconds it took."""
        started = time.perf_counter()
        model = self.model
        assert model is not None, "Evaluator.bind(model) first"
        was_training = model.training
        model.eval()
        try:
            accuracy = {(p, h): self._classification(model, pairs[part_name(p, h)], collect=False)[0]
                        for p in self.languages for h in self.languages if part_name(p, h) in pairs}
        finally:
            model.train(was_training)
        return {**summary_metrics(accuracy, self.languages), SECONDS: time.perf_counter() - started}

    def score(self, split: str) -> float:
        """The task's metric on ``split``: accuracy, or entity F1 for token tasks (``task.metric``)."""
        return self._score(split, collect=False)[0]

    @torch.inference_mode()
    def _score(self, split: str, *, collect: bool) -> tuple[float, dict[str, float], ExamplePredictions | None]:
        """(the task's metric, its extra metrics by name, the examples when ``collect``) on ``split``."""
        model = self.model
        assert model is not None, "Evaluator.bind(model) first"
        was_training = model.training
        model.eval()
        try:
            if self.task.kind == "token":
                score, examples = self._entity_f1(model, self.data[split], collect)
                return score, {}, examples
            return self._classification(model, self.data[split], collect)
        finally:
            model.train(was_training)

    def _classification(self, model: torch.nn.Module, dataset: Dataset,
                        collect: bool) -> tuple[float, dict[str, float], ExamplePredictions | None]:
        """Accuracy (and macro-F1 where the task logs it) from the split's confusion matrix, summed over ranks.

        A prediction outside the task's labels (a method with wider logits) is one more column, so it
        counts as wrong."""
        classes = self.task.num_labels + 1
        confusion = torch.zeros(classes, classes, dtype=torch.int64, device=self.ctx.device)
        ids, predictions, gold = [], [], []
        for indices, batch in self._indexed_batches(dataset, self.method.extra_batch_columns, shard=True):
            with self.autocast():
                logits = self.method.logits(model, batch)
            predicted = logits.argmax(-1)
            confusion += confusion_counts(predicted.clamp(max=classes - 1), batch["labels"], classes)
            if collect:
                ids.append(indices)
                predictions += predicted.tolist()
                gold += batch["labels"].tolist()
        if self.ctx.is_distributed:
            torch.distributed.all_reduce(confusion)
        total = int(confusion.sum())
        score = float(confusion.trace()) / total if total > 0 else float("nan")
        extras = {"macro_f1": macro_f1(confusion.cpu().numpy())} if "macro_f1" in self.task.extra_metrics else {}
        if not collect:
            return score, extras, None
        return score, extras, self._gathered(ExamplePredictions(_concat_ids(ids), predictions, gold))

    def _entity_f1(self, model: torch.nn.Module, dataset: Dataset,
                   collect: bool) -> tuple[float, ExamplePredictions | None]:
        """seqeval F1 over every sentence of the split: each rank's rows, gathered, a long sentence's
        segments joined (``merge_segments``: every word is scored, entities span the whole sentence)."""
        rows, gold_ids, predicted_ids = [], [], []
        for indices, batch in self._indexed_batches(dataset, self.method.extra_batch_columns, shard=True):
            with self.autocast():
                logits = self.method.logits(model, batch)
            rows_gold, rows_predicted = scored_ids(logits.argmax(-1), batch["labels"])
            rows.append(indices)
            gold_ids += rows_gold
            predicted_ids += rows_predicted
        share = (_concat_ids(rows), gold_ids, predicted_ids)
        if self.ctx.is_distributed:  # F1 does not split into per-rank counts, and segments may sit on several ranks
            shares: list = [None] * self.ctx.world_size
            torch.distributed.all_gather_object(shares, share)
            share = (np.concatenate([s[0] for s in shares]), [r for s in shares for r in s[1]],
                     [r for s in shares for r in s[2]])
        row_ids = share[0]
        # Data tokenised without segments (a hand-made split) has a sentence per row.
        sentences = (np.asarray(dataset[SENTENCE_ID], np.int64)[row_ids] if SENTENCE_ID in dataset.column_names
                     else row_ids)
        ids, gold_ids, predicted_ids = merge_segments(row_ids, sentences, share[1], share[2])
        names = self.task.label_names
        gold = [[names[tag] for tag in row] for row in gold_ids]
        predicted = [[names[tag] for tag in row] for row in predicted_ids]
        if not collect:
            return entity_f1(gold, predicted), None
        counts = np.array([entity_counts(g, p) for g, p in zip(gold, predicted)], dtype=np.int64).reshape(-1, 3)
        return entity_f1(gold, predicted), ExamplePredictions(ids, predicted_ids, gold_ids, counts)

    def _gathered(self, examples: ExamplePredictions) -> ExamplePredictions:
        """Every rank's share of a split's predictions, as one (on every rank), ordered by example id."""
        if not self.ctx.is_distributed:
            return ExamplePredictions.concat([examples])
        shares: list = [None] * self.ctx.world_size
        torch.distributed.all_gather_object(shares, examples)
        return ExamplePredictions.concat(shares)

    @torch.inference_mode()
    def cka_scores(self, paired: DatasetDict) -> dict[str, float]:
        """``cka_<lang>``: linear CKA between the source (translate-test English) and target sentence
        representations of each language's test set, as the method represents them (X-Mixup Table 7).

        Every rank computes it on the whole test set (CKA does not decompose over shards).
        """
        model = self.model
        assert model is not None, "Evaluator.bind(model) first"
        was_training = model.training
        model.eval()
        out = {}
        for lang in self.languages:
            split = split_key(self.task.test_split, lang)
            if split not in paired:
                continue
            sources, targets = [], []
            for batch in self._batches(paired[split], PAIRED_COLUMNS, shard=False):
                with self.autocast():
                    source, target = self.method.sentence_representations(model, batch)
                sources.append(source.float().cpu())
                targets.append(target.float().cpu())
            out[f"cka_{lang}"] = linear_cka(torch.cat(sources), torch.cat(targets))
        model.train(was_training)
        targets_only = [v for k, v in out.items() if k != f"cka_{self.task.source_language}"]
        if targets_only:
            out["cka_avg"] = float(np.mean(targets_only))
        return out

    def _batches(self, dataset: Dataset, extra: tuple[str, ...], *, shard: bool):
        """Device batches in length order (this rank's share when ``shard``)."""
        for _indices, batch in self._indexed_batches(dataset, extra, shard=shard):
            yield batch

    def _indexed_batches(self, dataset: Dataset, extra: tuple[str, ...], *, shard: bool):
        """(rows of the split, device batch) in length order (this rank's share when ``shard``)."""
        order = np.argsort(-np.asarray(dataset["length"]), kind="stable")
        batches = [order[i:i + self.cfg.eval_batch_size] for i in range(0, len(order), self.cfg.eval_batch_size)]
        if shard:
            batches = batches[self.ctx.rank::self.ctx.world_size]
        columns = dataset.select_columns(model_columns(dataset, extra))
        for indices in batches:
            rows = columns[indices.tolist()]
            batch = self.collate([dict(zip(rows, values)) for values in zip(*rows.values())])
            yield indices, {k: v.to(self.ctx.device, non_blocking=True) for k, v in batch.items()}


def _concat_ids(indices: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(indices).astype(np.int64) if indices else np.zeros(0, np.int64)
