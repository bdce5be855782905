"""The one training loop every method runs in.

It owns what the methods share: seeding, data order, AdamW (fused on CUDA) with a linear
schedule and warmup, bf16 autocast where the GPU supports it, gradient accumulation, DDP,
evaluation every N optimizer steps on the selection split, keeping only the best weights, and
the final test of every language with them (the scoring itself is ``trainables.evaluation``). A
method (``trainables.methods``) supplies the model, the training examples and the loss. The final
report also says what the run trained on (``train_samples``, ``train_tokens``: non-padding tokens), its
workers' peak host memory and, on a GPU, its peak device memory (``trainables.training.memory``): the sweep's
cost accounting.

Runs resume exactly. At an evaluation (at most every ``checkpoint_every_s`` seconds) the loop
checkpoints what it needs to go on: weights, optimizer, schedule, where it is in the epoch's
data order, the best weights so far and the method's running statistics. After every
evaluation the random generators are reseeded from (seed, step, rank), so a run resumed from
step s draws what the uninterrupted run drew. A run that ended leaves its outcome (final
metrics, or the reason it failed) as its last checkpoint, so running it again returns that
outcome instead of training again.

Its tools are public modules of ``trainables.training`` (optimizer and schedule, precision,
seeding, DDP, the NaN guard, the checkpointed state, the data order), which the BTF MLM job
(``trainables.task_fitting.worker``) uses too.

The loop does not import Ray: ``trainables.worker`` runs it inside a Ray Train worker with Ray
Train's checkpoints, and tests and benchmarks call ``train_and_evaluate`` in one process.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Callable

import torch

from trainables import faults
from trainables.checkpoints import CheckpointStore, ReportOnly, read_outcome, write_outcome
from trainables.config import TrainConfig
from trainables.data import load_tokenized, make_collator
from trainables.evaluation import Evaluator
from trainables.methods import get_method
from trainables.predictions import ExamplePredictions, write_predictions
from trainables.tasks import get_task
from trainables.training.data_order import set_epoch, train_loader
from trainables.training.distributed import DistContext, local_context, sum_over_ranks, unwrap
from trainables.training.divergence import RunningLoss, TrainingDiverged, ensure_finite
from trainables.training.optim import adamw, linear_schedule, optimizer_step
from trainables.training.memory import peak_host_memory, peak_memory, reset_peak_memory
from trainables.training.pace import (SAMPLES_PER_SECOND, TRAIN_BEGAN_AT, TRAIN_ENDED_AT, TRAIN_SAMPLES,
                                      TRAIN_TOKENS, Pace, non_padding_tokens, samples_per_second)
from trainables.training.precision import autocast_factory
from trainables.training.resume import STATE_FILE, RunState, cpu_copy, read_state
from trainables.training.seeding import reseed, seed_everything
from trainables.training.speed import prepare_model, training_step

Report = Callable[[dict], None]
__all__ = ["DistContext", "STATE_FILE", "TrainingDiverged", "local_context", "train_and_evaluate"]


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
        saved = read_state(folder, STATE_FILE)
    if outcome is not None:  # the run ended before (a trial run again): its outcome, not a second run
        if outcome["status"] == "failed":
            raise TrainingDiverged(outcome["reason"])
        store.report(outcome["metrics"])
        return outcome["metrics"]

    task = get_task(cfg.task, cfg.languages)  # the sweep's languages (--languages), as the driver read them
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    method = get_method(cfg.method)(cfg, task)
    data = load_tokenized(cfg.tokenized_path)
    collate = make_collator(cfg.model, token_labels=task.kind == "token")

    reset_peak_memory(ctx.device)  # this run's peak, not an earlier run's in the same process
    model = prepare_model(cfg, method, method.build_model().to(ctx.device), ctx)  # padding-free attention
    if ctx.prepare_model is not None:
        model = ctx.prepare_model(model)
    # the speed settings (padding_free, torch_compile): the training batches' collation and forward
    step = training_step(cfg, method, model, method.wrap_collator(collate), collate.tokenizer,
                         token_labels=task.kind == "token")
    train_set = method.train_dataset(data)
    loader = train_loader(train_set, cfg, ctx, step.collate, method.extra_batch_columns)
    optimizer = adamw(model, cfg, ctx.device)
    steps_per_epoch = max(1, math.ceil(len(loader) / cfg.grad_accum_steps))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.num_train_epochs * steps_per_epoch)
    scheduler = linear_schedule(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    method.steps_per_epoch = steps_per_epoch
    evaluator = Evaluator(method, method.evaluation_data(data), task, cfg, ctx, collate).bind(model)
    metric = task.metric
    run = RunState()
    if saved is not None:
        run = RunState.restore(saved, model=unwrap(model), optimizer=optimizer, scheduler=scheduler,
                               method=method, sampler=loader.sampler, batches_per_epoch=len(loader))
        reseed(cfg.seed, run.step, ctx.rank)
    checkpoint_clock = time.monotonic()
    nan_from = faults.nan_loss_step(cfg.seed)
    pause = faults.pause_after_step()

    autocast = autocast_factory(cfg.bf16, ctx.device)
    losses = RunningLoss(ctx.device)  # the micro-batch losses since the last evaluation
    pace = Pace(total_steps, first_step=run.step, test_rows_per_selection_row=evaluator.test_rows_per_selection_row())
    started = time.perf_counter()
    began_at = ended_at = time.time()  # wall clock of this attempt's training, for the final report
    last: dict = {"step": run.step, f"dev_{metric}": run.best_value, **run.best_extras}
    model.train()
    try:
        while run.step < total_steps:
            set_epoch(loader, run.epoch)
            for index, batch in enumerate(loader, start=run.skip_batches):
                run.tokens += non_padding_tokens(batch)  # on the loader's CPU tensors, before the copy
                batch = {k: v.to(ctx.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                         for k, v in batch.items()}
                method.step = run.step
                last_micro = (index + 1) % cfg.grad_accum_steps == 0 or index + 1 == len(loader)
                sync = contextlib.nullcontext() if last_micro or not ctx.is_distributed else model.no_sync()
                with sync:
                    with autocast():
                        loss = step.loss(batch)
                        if nan_from is not None and run.step >= nan_from:
                            loss = loss * float("nan")
                    (loss / cfg.grad_accum_steps).backward()
                losses.add(loss)
                run.samples += step.samples(batch)
                if not last_micro:
                    continue
                optimizer_step(model, optimizer, scheduler, cfg.max_grad_norm)
                run.step += 1
                run.batches_done = index + 1
                if run.step % cfg.eval_every_steps == 0 or run.step == total_steps:
                    # Over all ranks: every rank decides alike whether the run diverged.
                    train_loss = ensure_finite(losses.mean(ctx.is_distributed), name="training loss",
                                               where=f"at step {run.step}", learning_rate=cfg.learning_rate)
                    losses.reset()
                    run.train_seconds += time.perf_counter() - started
                    ended_at = time.time()
                    value = pace.timed_evaluation(evaluator.selection_score)
                    if value > run.best_value:
                        run.best_value, run.best_step = value, run.step
                        run.best_model = cpu_copy(unwrap(model).state_dict())
                        run.best_extras = dict(evaluator.dev_extras)  # dev_macro_f1_<lang> of the kept weights
                    model.train()
                    reseed(cfg.seed, run.step, ctx.rank)  # what follows depends on (seed, step, rank) only
                    last = {
                        "step": run.step,
                        "epoch": round(run.step / steps_per_epoch, 4),
                        "train_loss": train_loss,
                        "learning_rate": scheduler.get_last_lr()[0],
                        f"eval_dev_{metric}": value,
                        f"dev_{metric}": run.best_value,
                        **{f"eval_dev_{name}": evaluator.dev_extras[f"dev_{name}"] for name in task.extra_metrics},
                        **run.best_extras,
                        # total_steps, train_samples_per_second, eta_seconds: the sweep console's progress line
                        **pace.report(run.step, samples=run.samples * ctx.world_size, train_seconds=run.train_seconds),
                    }
                    write = None
                    if ctx.rank == 0 and time.monotonic() - checkpoint_clock >= cfg.checkpoint_every_s:
                        write = run.writer(model=unwrap(model), optimizer=optimizer, scheduler=scheduler,
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
        reason = str(error)  # ``error`` is unbound after the except clause: the writer keeps the text
        store.report({**last, "failed": 1.0}, lambda folder: write_outcome(folder, "failed", last, reason))
        raise
    run.train_seconds += time.perf_counter() - started
    tokens = sum_over_ranks(run.tokens, ctx)  # every rank, before rank 0 alone writes anything

    if run.best_model is not None:
        unwrap(model).load_state_dict(run.best_model)
    final = {"step": run.step, "best_step": run.best_step, f"dev_{metric}": run.best_value, **run.best_extras,
             SAMPLES_PER_SECOND: samples_per_second(run.samples * ctx.world_size, run.train_seconds),
             "resumed_from_step": run.resumed_from,
             # counts, the same for a resumed run: the sweep's callback turns them into tokens per second
             TRAIN_SAMPLES: run.samples * ctx.world_size, TRAIN_TOKENS: tokens,
             TRAIN_BEGAN_AT: began_at, TRAIN_ENDED_AT: ended_at}
    examples: dict[str, ExamplePredictions] | None = {} if cfg.predictions_path else None
    final.update(evaluator.test_scores(examples))
    if examples is not None and ctx.rank == 0:
        write_predictions(examples, cfg.predictions_path)
    if cfg.generalized_path:  # the same kept weights on SALT's cross-language pairs
        final.update(evaluator.generalized_scores(load_tokenized(cfg.generalized_path)))
    final["selection_chance"] = chance = evaluator.chance_level()
    final["selection_at_chance"] = float(run.best_value <= chance + 1e-9)  # the kept checkpoint is arbitrary
    if cfg.cka_path:
        final.update(evaluator.cka_scores(load_tokenized(cfg.cka_path)))
    final.update(method.run_metrics())
    final.update(peak_memory(ctx.device))  # after the test passes: the run's peak on its GPU, all of it counted
    final.update(peak_host_memory(ctx))  # every rank's process peak, summed (a collective: every rank is here)

    def write_final(folder: Path) -> None:
        if cfg.keep_model:
            unwrap(model).save_pretrained(folder)  # safetensors + config: loads with from_pretrained
        write_outcome(folder, "finished", final)

    store.report(final, write_final)
    return final
