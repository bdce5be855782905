"""The one training loop every method runs in.

It owns what the methods share: seeding, data order, AdamW (fused on CUDA) with a linear
schedule and warmup, bf16 autocast where the GPU supports it, gradient accumulation, DDP,
evaluation every N optimizer steps on the selection split, keeping only the best weights, and
the final test of every language with them. A method (``trainables.methods``) supplies the
model, the training examples and the loss.

Runs resume exactly. At an evaluation (at most every ``checkpoint_every_s`` seconds) the loop
checkpoints what it needs to go on: weights, optimizer, schedule, where it is in the epoch's
data order, the best weights so far and the method's running statistics. After every
evaluation the random generators are reseeded from (seed, step, rank), so a run resumed from
step s draws what the uninterrupted run drew. A run that ended leaves its outcome (final
metrics, or the reason it failed) as its last checkpoint, so running it again returns that
outcome instead of training again.

The loop does not import Ray: ``trainables.worker`` runs it inside a Ray Train worker with Ray
Train's checkpoints, and tests and benchmarks call ``train_and_evaluate`` in one process.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from torch.utils.data import DataLoader, RandomSampler, Sampler
from torch.utils.data.distributed import DistributedSampler

from trainables import faults
from trainables.checkpoints import CheckpointStore, ReportOnly, read_outcome, step_seed, write_outcome
from trainables.config import TrainConfig
from trainables.data import load_tokenized, make_collator
from trainables.methods import get_method
from trainables.methods.base import Method
from trainables.metrics import entity_f1, tag_sequences
from trainables.paired import PAIRED_COLUMNS
from trainables.xmixup.cka import linear_cka
from trainables.tasks import TaskSpec, get_task, split_key

Report = Callable[[dict], None]
MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")
STATE_FILE = "training_state.pt"  # a checkpoint the run goes on from (absent from an outcome checkpoint)


class TrainingDiverged(FloatingPointError):
    """The loss is no longer finite: the run cannot recover, and running it again would not help."""


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


def train_and_evaluate(cfg: TrainConfig, report: Report | None = None, ctx: DistContext | None = None, *,
                       store: CheckpointStore | None = None) -> dict:
    """Train ``cfg.method`` on ``cfg.task``; return (and report) the final metrics.

    Reports go to ``store`` (its checkpoints make the run resumable), else to ``report``. The
    last report carries the run's outcome checkpoint, with the selected weights when ``cfg.keep_model``
    (a self-training phase hands its model to the next one this way).
    """
    ctx = ctx or local_context()
    store = store or ReportOnly(report or (lambda metrics: None))
    with store.latest() as folder:
        outcome = read_outcome(folder)
        saved = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True) \
            if folder is not None and (folder / STATE_FILE).is_file() else None
    if outcome is not None:  # the run ended before (a trial run again): its outcome, not a second run
        if outcome["status"] == "failed":
            raise TrainingDiverged(outcome["reason"])
        store.report(outcome["metrics"])
        return outcome["metrics"]

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
    run = RunState()
    if saved is not None:
        run = RunState.restore(saved, model=_unwrap(model), optimizer=optimizer, scheduler=scheduler,
                               method=method, sampler=loader.sampler, batches_per_epoch=len(loader))
        _reseed(cfg.seed, run.step, ctx.rank)
    checkpoint_clock = time.monotonic()
    nan_from = faults.nan_loss_step(cfg.seed)
    pause = faults.pause_after_step()

    autocast = _autocast(cfg, ctx.device)
    loss_sum = torch.zeros((), device=ctx.device)  # of the micro-batch losses since the last evaluation
    loss_count = 0
    started = time.perf_counter()
    last: dict = {"step": run.step, f"dev_{metric}": run.best_value}
    model.train()
    try:
        while run.step < total_steps:
            _set_epoch(loader, run.epoch)
            for index, batch in enumerate(loader, start=run.skip_batches):
                batch = {k: v.to(ctx.device, non_blocking=True) for k, v in batch.items()}
                method.step = run.step
                last_micro = (index + 1) % cfg.grad_accum_steps == 0 or index + 1 == len(loader)
                sync = contextlib.nullcontext() if last_micro or not ctx.is_distributed else model.no_sync()
                with sync:
                    with autocast():
                        loss = method.training_loss(model, batch)
                        if nan_from is not None and run.step >= nan_from:
                            loss = loss * float("nan")
                    (loss / cfg.grad_accum_steps).backward()
                loss_sum += loss.detach().float()
                loss_count += 1
                run.samples += batch["input_ids"].shape[0]
                if not last_micro:
                    continue
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                run.step += 1
                run.batches_done = index + 1
                if run.step % cfg.eval_every_steps == 0 or run.step == total_steps:
                    totals = torch.stack([loss_sum, torch.tensor(float(loss_count), device=ctx.device)])
                    if ctx.is_distributed:  # every rank decides alike whether the run diverged
                        torch.distributed.all_reduce(totals)
                    train_loss = (totals[0] / totals[1].clamp(min=1)).item()
                    if not math.isfinite(train_loss):
                        raise TrainingDiverged(f"training loss became {train_loss} at step {run.step} "
                                               f"(lr {cfg.learning_rate:g}); the run cannot recover")
                    loss_sum.zero_()
                    loss_count = 0
                    run.train_seconds += time.perf_counter() - started
                    value = evaluator.selection_score()
                    if value > run.best_value:
                        run.best_value, run.best_step = value, run.step
                        run.best_model = _cpu_copy(_unwrap(model).state_dict())
                    model.train()
                    _reseed(cfg.seed, run.step, ctx.rank)  # what follows depends on (seed, step, rank) only
                    last = {
                        "step": run.step,
                        "epoch": round(run.step / steps_per_epoch, 4),
                        "train_loss": train_loss,
                        "learning_rate": scheduler.get_last_lr()[0],
                        f"eval_dev_{metric}": value,
                        f"dev_{metric}": run.best_value,
                    }
                    write = None
                    if ctx.rank == 0 and time.monotonic() - checkpoint_clock >= cfg.checkpoint_every_s:
                        write = run.writer(model=_unwrap(model), optimizer=optimizer, scheduler=scheduler,
                                           method=method, sampler=loader.sampler)
                    store.report(last, write)
                    if write is not None:
                        checkpoint_clock = time.monotonic()
                    if pause is not None and pause[0] == run.step:
                        time.sleep(pause[1])
                    started = time.perf_counter()
                if run.step >= total_steps:
                    break
            run.epoch += 1
            run.skip_batches = 0
    except TrainingDiverged as error:
        store.report({**last, "failed": 1.0}, lambda folder: write_outcome(folder, "failed", last, str(error)))
        raise
    run.train_seconds += time.perf_counter() - started

    if run.best_model is not None:
        _unwrap(model).load_state_dict(run.best_model)
    final = {"step": run.step, "best_step": run.best_step, f"dev_{metric}": run.best_value,
             "train_samples_per_second": run.samples * ctx.world_size / max(run.train_seconds, 1e-9),
             "resumed_from_step": run.resumed_from}
    final.update(evaluator.test_scores())
    if cfg.cka_path:
        final.update(evaluator.cka_scores(load_tokenized(cfg.cka_path)))
    final.update(method.run_metrics())

    def write_final(folder: Path) -> None:
        if cfg.keep_model:
            _unwrap(model).save_pretrained(folder)  # safetensors + config: loads with from_pretrained
        write_outcome(folder, "finished", final)

    store.report(final, write_final)
    return final


@dataclass
class RunState:
    """Where a run is, and what it carries between evaluations: the part of a checkpoint that is not tensors
    of the model, optimizer or schedule."""

    step: int = 0
    epoch: int = 0
    batches_done: int = 0  # of the current epoch, at the last optimizer step
    skip_batches: int = 0  # of the first epoch a resumed run goes on with
    best_value: float = -math.inf
    best_step: int = 0
    best_model: dict | None = None
    samples: int = 0
    train_seconds: float = 0.0
    resumed_from: int = 0

    def writer(self, *, model: torch.nn.Module, optimizer, scheduler, method: Method, sampler) -> Callable[[Path], None]:
        """Fills a checkpoint folder with this state (called at once: the tensors are not copied first)."""
        state = {"step": self.step, "epoch": self.epoch, "batches_done": self.batches_done,
                 "best_value": self.best_value, "best_step": self.best_step, "samples": self.samples,
                 "train_seconds": self.train_seconds, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "method": method.state_dict(),
                 "epoch_order": sampler.epoch_state() if isinstance(sampler, ResumableSampler) else None,
                 # The best weights are the current ones when this evaluation set them.
                 "best_model": self.best_model if self.best_step != self.step else None}

        def write(folder: Path) -> None:
            torch.save(state, folder / STATE_FILE)

        return write

    @classmethod
    def restore(cls, saved: dict[str, Any], *, model: torch.nn.Module, optimizer, scheduler, method: Method,
                sampler, batches_per_epoch: int) -> "RunState":
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        method.load_state_dict(saved["method"])
        run = cls(step=saved["step"], epoch=saved["epoch"], batches_done=saved["batches_done"],
                  best_value=saved["best_value"], best_step=saved["best_step"], samples=saved["samples"],
                  train_seconds=saved["train_seconds"], resumed_from=saved["step"])
        run.best_model = saved["best_model"] if saved["best_model"] is not None else _cpu_copy(model.state_dict())
        if run.batches_done >= batches_per_epoch:  # the checkpoint closed its epoch
            run.epoch, run.skip_batches = run.epoch + 1, 0
        else:
            run.skip_batches = run.batches_done
            if isinstance(sampler, ResumableSampler):
                sampler.resume(saved["epoch_order"], skip_batches=run.skip_batches)
        return run


def _reseed(seed: int, step: int, rank: int) -> None:
    """Reseed every generator from (seed, step, rank): dropout and a method's draws after an evaluation."""
    value = step_seed(seed, step, 1 + rank)
    torch.manual_seed(value)
    np.random.seed(value % 2**32)
    random.seed(value)


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
        sampler=ResumableSampler(sampler, cfg.per_device_batch_size,
                                 generator=None if ctx.is_distributed else generator),
        collate_fn=collate,
        pin_memory=ctx.device.type == "cuda",
        # Its own generator for the per-epoch base seed it draws: drawing from the global one would shift
        # the dropout stream of a run resumed mid-epoch against the run it resumes.
        generator=torch.Generator().manual_seed(cfg.seed),
    )


class ResumableSampler(Sampler[int]):
    """A sampler that a resumed run can start part-way through an epoch, in the interrupted run's order.

    The distributed samplers' order is a function of (seed, epoch). The single-process ones draw
    from a generator that carries over from epoch to epoch, so its state at the start of the
    current epoch is part of a checkpoint (``epoch_state``). Skipped batches are not loaded.
    """

    def __init__(self, sampler: Sampler, batch_size: int, generator: torch.Generator | None = None):
        self.sampler, self.batch_size, self.generator = sampler, batch_size, generator
        self._epoch_start: torch.Tensor | None = None
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def epoch_state(self) -> torch.Tensor | None:
        return self._epoch_start

    def resume(self, epoch_state: torch.Tensor | None, *, skip_batches: int) -> None:
        """The next epoch replays the one ``epoch_state`` started, from its batch ``skip_batches`` on."""
        if epoch_state is not None and self.generator is not None:
            self.generator.set_state(epoch_state)
        self._skip = skip_batches

    def __iter__(self) -> Iterator[int]:
        if self.generator is not None:
            self._epoch_start = self.generator.get_state()
        skip, self._skip = self._skip * self.batch_size, 0
        return itertools.islice(iter(self.sampler), skip, None)

    def __len__(self) -> int:
        return len(self.sampler)


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
