"""The one training loop every method runs in.

It owns what the methods share: seeding, data order, AdamW (fused on CUDA) with a linear
schedule and warmup, bf16 autocast where the GPU supports it, gradient accumulation, DDP,
evaluation every N optimizer steps on the selection split, keeping only the best weights, and
the final test of every language with them. A method (``trainables.methods``) supplies the
model, the training examples and the loss.

The loop does not import Ray: ``trainables.worker`` runs it inside a Ray Train worker, and
tests and benchmarks call ``train_and_evaluate`` directly in one process.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from torch.utils.data import DataLoader, RandomSampler, Sampler
from torch.utils.data.distributed import DistributedSampler

from trainables.config import TrainConfig
from trainables.data import load_tokenized, make_collator
from trainables.methods import get_method
from trainables.methods.base import Method
from trainables.metrics import entity_f1, tag_sequences
from trainables.paired import PAIRED_COLUMNS
from trainables.xmixup.cka import linear_cka
from trainables.tasks import TaskSpec, get_task, split_key

Report = Callable[[dict], None]
FinalReport = Callable[[dict, torch.nn.Module], None]
MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")


@dataclass
class DistContext:
    """Where this process sits in the (possibly distributed) run."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    prepare_model: Callable[[torch.nn.Module], torch.nn.Module] | None = None

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def local_context() -> DistContext:
    """A single-process context on the best local device (tests, benchmarks)."""
    return DistContext(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def seed_everything(seed: int, *, deterministic: bool) -> None:
    """Seed every generator that decides data order, dropout and head initialisation."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic and torch.cuda.is_available():
        # Same seed -> same metrics on the same GPU: cuBLAS needs a fixed workspace, and ops
        # without a deterministic kernel warn instead of failing the run.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def train_and_evaluate(cfg: TrainConfig, report: Report, ctx: DistContext | None = None,
                       final_report: FinalReport | None = None) -> dict:
    """Train ``cfg.method`` on ``cfg.task``; return (and report) the final metrics.

    ``final_report(metrics, model)`` makes the last report instead of ``report`` (a Ray Train
    worker attaches the kept model as a checkpoint when ``cfg.keep_model``).
    """
    ctx = ctx or local_context()
    task = get_task(cfg.task)
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    method = get_method(cfg.method)(cfg, task)
    data = load_tokenized(cfg.tokenized_path)
    collate = make_collator(cfg.model, token_labels=task.kind == "token")

    model = method.build_model().to(ctx.device)
    if ctx.prepare_model is not None:
        model = ctx.prepare_model(model)
    train_set = method.train_dataset(data)
    loader = _train_loader(train_set, cfg, ctx, method.wrap_collator(collate), method.extra_batch_columns)
    optimizer = _optimizer(model, cfg, ctx.device)
    steps_per_epoch = max(1, math.ceil(len(loader) / cfg.grad_accum_steps))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.num_train_epochs * steps_per_epoch)
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    method.steps_per_epoch = steps_per_epoch
    evaluator = Evaluator(method, method.evaluation_data(data), task, cfg, ctx, collate).bind(model)
    metric = task.metric

    autocast = _autocast(cfg, ctx.device)
    best_value, best_step, best_state = -math.inf, 0, None
    step, epoch, micro = 0, 0, 0
    loss_sum = torch.zeros((), device=ctx.device)
    loss_count = 0
    started = time.perf_counter()
    eval_seconds = 0.0  # kept out of the training throughput
    samples = 0
    model.train()
    while step < total_steps:
        _set_epoch(loader, epoch)
        for index, batch in enumerate(loader):
            batch = {k: v.to(ctx.device, non_blocking=True) for k, v in batch.items()}
            method.step = step
            last_micro = (index + 1) % cfg.grad_accum_steps == 0 or index + 1 == len(loader)
            sync = contextlib.nullcontext() if last_micro or not ctx.is_distributed else model.no_sync()
            with sync:
                with autocast():
                    loss = method.training_loss(model, batch)
                (loss / cfg.grad_accum_steps).backward()
            loss_sum += loss.detach().float()
            loss_count += 1
            samples += batch["input_ids"].shape[0]
            micro += 1
            if not last_micro:
                continue
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % cfg.eval_every_steps == 0 or step == total_steps:
                train_loss = (loss_sum / max(loss_count, 1)).item()
                if not math.isfinite(train_loss):
                    raise FloatingPointError(f"training loss became {train_loss} at step {step} "
                                             f"(lr {cfg.learning_rate:g}); the run cannot recover")
                loss_sum.zero_()
                loss_count = 0
                eval_started = time.perf_counter()
                value = evaluator.selection_score()
                if value > best_value:
                    best_value, best_step = value, step
                    best_state = _cpu_copy(_unwrap(model).state_dict())
                model.train()
                eval_seconds += time.perf_counter() - eval_started
                report({
                    "step": step,
                    "epoch": round(step / steps_per_epoch, 4),
                    "train_loss": train_loss,
                    "learning_rate": scheduler.get_last_lr()[0],
                    f"eval_dev_{metric}": value,
                    f"dev_{metric}": best_value,
                })
            if step >= total_steps:
                break
        epoch += 1
    train_seconds = time.perf_counter() - started - eval_seconds

    if best_state is not None:
        _unwrap(model).load_state_dict(best_state)
    final = {"step": step, "best_step": best_step, f"dev_{metric}": best_value,
             "train_samples_per_second": samples * ctx.world_size / max(train_seconds, 1e-9)}
    final.update(evaluator.test_scores())
    if cfg.cka_path:
        final.update(evaluator.cka_scores(load_tokenized(cfg.cka_path)))
    final.update(method.run_metrics())
    if final_report is not None:
        final_report(final, _unwrap(model))
    else:
        report(final)
    return final


class Evaluator:
    """Scores the model on dev (for selection) and test splits, sharded over ranks.

    Examples are batched in length order, so a batch pads to similar lengths; each rank
    scores every ``world_size``-th batch and the counts are summed over ranks (token tasks:
    the tag sequences are gathered, since entity F1 does not decompose into per-rank counts).
    The unwrapped module is used: DDP's forward would wait for ranks that have fewer batches.
    """

    def __init__(self, method: Method, data: DatasetDict, task: TaskSpec, cfg: TrainConfig,
                 ctx: DistContext, collate):
        self.method, self.data, self.task, self.cfg, self.ctx, self.collate = method, data, task, cfg, ctx, collate
        self.model: torch.nn.Module | None = None
        self.autocast = _autocast(cfg, ctx.device)
        self.languages = list(cfg.languages or task.languages)

    def bind(self, model: torch.nn.Module) -> "Evaluator":
        self.model = _unwrap(model)
        return self

    def selection_score(self) -> float:
        if self.cfg.select_on == "en-dev":
            return self.score(split_key(self.task.dev_split, self.task.source_language))
        scores = [self.score(split_key(self.task.dev_split, lang)) for lang in self.languages]
        return float(np.mean(scores))

    def test_scores(self) -> dict[str, float]:
        metric = self.task.metric
        scores = {lang: self.score(split_key(self.task.test_split, lang)) for lang in self.languages}
        out = {f"test_{metric}_{lang}": value for lang, value in scores.items()}
        targets = [v for lang, v in scores.items() if lang != self.task.source_language]
        out[f"test_{metric}_avg"] = float(np.mean(targets)) if targets else float("nan")
        out[f"test_{metric}_avg_en"] = float(np.mean(list(scores.values())))
        return out

    @torch.inference_mode()
    def score(self, split: str) -> float:
        """The task's metric on ``split``: accuracy, or entity F1 for token tasks (``task.metric``)."""
        model = self.model
        assert model is not None, "Evaluator.bind(model) first"
        was_training = model.training
        model.eval()
        try:
            if self.task.kind == "token":
                return self._entity_f1(model, self.data[split])
            return self._accuracy(model, self.data[split])
        finally:
            model.train(was_training)

    def _accuracy(self, model: torch.nn.Module, dataset: Dataset) -> float:
        counts = torch.zeros(2, dtype=torch.float64, device=self.ctx.device)
        for batch in self._batches(dataset, self.method.extra_batch_columns, shard=True):
            with self.autocast():
                logits = self.method.logits(model, batch)
            counts[0] += (logits.argmax(-1) == batch["labels"]).sum()
            counts[1] += batch["labels"].numel()
        if self.ctx.is_distributed:
            torch.distributed.all_reduce(counts)
        return float(counts[0] / counts[1]) if counts[1] > 0 else float("nan")

    def _entity_f1(self, model: torch.nn.Module, dataset: Dataset) -> float:
        """seqeval F1 over every sentence of the split: each rank's share, gathered before scoring."""
        gold, predicted = [], []
        for batch in self._batches(dataset, self.method.extra_batch_columns, shard=True):
            with self.autocast():
                logits = self.method.logits(model, batch)
            rows_gold, rows_predicted = tag_sequences(logits.argmax(-1), batch["labels"], self.task.label_names)
            gold += rows_gold
            predicted += rows_predicted
        if self.ctx.is_distributed:
            shares: list = [None] * self.ctx.world_size
            torch.distributed.all_gather_object(shares, (gold, predicted))
            gold = [tags for share_gold, _ in shares for tags in share_gold]
            predicted = [tags for _, share_predicted in shares for tags in share_predicted]
        return entity_f1(gold, predicted)

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
        order = np.argsort(-np.asarray(dataset["length"]), kind="stable")
        batches = [order[i:i + self.cfg.eval_batch_size] for i in range(0, len(order), self.cfg.eval_batch_size)]
        if shard:
            batches = batches[self.ctx.rank::self.ctx.world_size]
        columns = dataset.select_columns(_model_columns(dataset, extra))
        for indices in batches:
            rows = columns[indices.tolist()]
            batch = self.collate([dict(zip(rows, values)) for values in zip(*rows.values())])
            yield {k: v.to(self.ctx.device, non_blocking=True) for k, v in batch.items()}


def _model_columns(dataset: Dataset, extra: tuple[str, ...] = ()) -> list[str]:
    return [c for c in (*MODEL_COLUMNS, *extra) if c in dataset.column_names]


def _train_loader(dataset: Dataset, cfg: TrainConfig, ctx: DistContext, collate,
                  extra_columns: tuple[str, ...] = ()) -> DataLoader:
    """Batches of the training set in a seeded order (length-grouped when asked)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    sampler: Sampler
    if cfg.group_by_length:
        from transformers.trainer_pt_utils import DistributedLengthGroupedSampler, LengthGroupedSampler

        lengths = list(dataset["length"])
        if ctx.is_distributed:
            sampler = DistributedLengthGroupedSampler(cfg.per_device_batch_size, num_replicas=ctx.world_size,
                                                      rank=ctx.rank, seed=cfg.seed, lengths=lengths)
        else:
            sampler = LengthGroupedSampler(cfg.per_device_batch_size, lengths=lengths, generator=generator)
    elif ctx.is_distributed:
        sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, seed=cfg.seed)
    else:
        sampler = RandomSampler(dataset, generator=generator)
    return DataLoader(
        dataset.select_columns(_model_columns(dataset, extra_columns)),
        batch_size=cfg.per_device_batch_size,
        sampler=sampler,
        collate_fn=collate,
        pin_memory=ctx.device.type == "cuda",
    )


def _set_epoch(loader: DataLoader, epoch: int) -> None:
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)


def _optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; biases and LayerNorm weights get no weight decay (as in xtreme and HF Trainer)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or name.endswith(".bias") else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=device.type == "cuda")


def _autocast(cfg: TrainConfig, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of contexts: bf16 autocast on GPUs that support it, full precision elsewhere."""
    if cfg.bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
