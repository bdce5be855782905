"""Writing to MLflow what a tracking outage kept from it, from Tune's own records, without duplicating anything.

While the tracking server is down the sweep trains on and its tracking writes are dropped
(``orchestrator.tracking_outage``). What they would have written is on disk: every result each trial
reported, its status and last result (``orchestrator.tune_records``), its test predictions
(``orchestrator.trial.predictions_path``), and the searches' summaries (``sweep.json``,
``best_config*.json``, ``search*_trials.csv``). ``--resume`` of the sweep, with the server back, compares
them with MLflow and writes only what is missing (``sync_sweep``):

- a trial without a child run gets one (found by ``trial_id``, a confirm trial by its arm and seed: the
  callback's own lookup), with its params and tags; a run missing params gets those;
- every (metric, step) Tune recorded that the run's history lacks, at the time Tune recorded it;
- its ``train_node`` and at-chance warning tags;
- a trial that ended but whose run did not: what its end writes (predictions, generalized XNLI matrix, cost,
  status), through the callback's own ``log_end`` / ``log_error``;
- a search trial's per-seed runs (``--search-seeds`` > 1): each seed's reports, from the ``per_seed`` of the
  trial's results, and its end;
- the parent's search summary of a search whose summary is missing, the twin pairs' copied runs.

Idempotent: what exists is compared, not rewritten, so a second sync writes nothing.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import pandas as pd
from mlflow.entities import Param

from orchestrator.cost import DeviceShare
from orchestrator.experiments import Experiment
from orchestrator.plan import TrialResolver
from orchestrator.reuse import find_twins, record_reused_runs
from orchestrator.searches import log_search
from orchestrator.state import SweepState
from orchestrator.seed_group import PER_SEED
from orchestrator.tracking import (AT_CHANCE, AT_CHANCE_WARNING, NestedRunCallback, SweepTracker, param_value,
                                   result_metrics)
from orchestrator.trial import TrainLaunch
from orchestrator.tune_records import TrialRecord, read_experiment
from trainables.worker import TRAIN_NODE

EXIT_TRACKING_DOWN = 3
"""Exit code of a sweep whose trials all ended while MLflow stayed unreachable: its results are in Tune's
records, its report waits for ``--resume`` (0: everything is in MLflow; 2: bad input; 130: interrupted)."""


@dataclass
class SyncContext:
    tracker: SweepTracker
    sweep_dir: Path
    state: SweepState
    experiment: Experiment
    resolver: TrialResolver
    launch: TrainLaunch
    objective: str
    pairs: list[tuple[str, int]]  # the confirm stage's (arm, seed) pairs
    on_searched: Callable[[str], None] | None = None  # the search figures, redrawn with a missing summary


def catch_up(ctx: SyncContext, *, resumed: bool) -> int | None:
    """After the stages: write what MLflow is missing, if anything can be (an outage dropped writes, or the sweep
    is resumed). The number of records written; ``None`` when MLflow is still unreachable."""
    outage = ctx.tracker.outage
    if not outage.dropped and not resumed:
        return 0
    written = outage.call(sync_sweep, ctx) if outage.check() else None
    if written is None:
        print(f"sweep {ctx.state.sweep_id}: every trial ended, but MLflow at {ctx.tracker.uri} is still unreachable, "
              f"so its report waits: run `{outage.resume_command}` when it is back", file=sys.stderr, flush=True)
    elif written:
        print(f"tracking: wrote {written} missing record(s) of this sweep to MLflow from Tune's records", flush=True)
    return written


def sync_sweep(ctx: SyncContext) -> int:
    """Every stage's trials and the parent's search summaries into MLflow, where missing; the records written."""
    written = 0
    share = DeviceShare.of(ctx.launch)
    stages = [(search.stage, search.stage, replace(ctx.resolver, searched_arm=search.arm))
              for search in ctx.experiment.searches]
    stages += [("confirm", "confirm", ctx.resolver), ("confirm-fill", "confirm", ctx.resolver)]
    for folder, stage, resolver in stages:
        callback = NestedRunCallback(ctx.tracker.uri, ctx.tracker.experiment_id, ctx.tracker.parent_run_id, stage,
                                     resolver, ctx.launch.storage_path, share)
        for record in read_experiment(ctx.sweep_dir / folder):
            written += sync_trial(callback, record)
    written += sync_search_summaries(ctx)
    if "confirm" in ctx.state.stages_done:
        written += len(record_reused_runs(ctx.tracker, find_twins(ctx.resolver, ctx.pairs)))
    return written


def sync_trial(callback: NestedRunCallback, record: TrialRecord) -> int:
    """One trial's run completed from its Tune record; the records written (0: MLflow had it all)."""
    if not record.rows and not record.ended:
        return 0  # it never reported: nothing to write
    client, written = callback.client, 0
    run = callback.find_run(record)
    if run is None:
        run = client.get_run(callback.run_id(record))  # created with its params and tags
        written += 1
    run_id = run.info.run_id
    params = [Param(k, param_value(v)) for k, v in callback.trial_params(record).items() if k not in run.data.params]
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i:i + 100])
    written += len(params)
    logged = {(m.key, m.step) for key in run.data.metrics for m in client.get_metric_history(run_id, key)}
    missing = [metric for row in record.rows for metric in result_metrics(row, int(row.get("timestamp", 0) * 1000))
               if (metric.key, metric.step) not in logged]
    for i in range(0, len(missing), 1000):
        client.log_batch(run_id, metrics=missing[i:i + 1000])
    written += len(missing)
    tags = {TRAIN_NODE: next((row[TRAIN_NODE] for row in reversed(record.rows) if row.get(TRAIN_NODE)), None)}
    if any(row.get(AT_CHANCE) == 1.0 for row in record.rows):
        tags["warning"] = AT_CHANCE_WARNING
    for key, value in tags.items():
        if value and run.data.tags.get(key) != value:
            client.set_tag(run_id, key, value)
            written += 1
    written += sync_seed_runs(callback, record)
    if record.ended and run.info.status not in ("FINISHED", "FAILED"):
        (callback.log_end if record.ended == "finished" else callback.log_error)(record)
        written += 1
    return written


def sync_seed_runs(callback: NestedRunCallback, record: TrialRecord) -> int:
    """A search trial's per-seed runs (``--search-seeds`` > 1) completed from the ``per_seed`` of its Tune
    results: the run of each seed, the (metric, step) pairs its history lacks, its end; the records written."""
    client, written = callback.client, 0
    reports: dict[str, list[tuple[dict, dict]]] = {}
    for row in record.rows:
        for seed, result in (row.get(PER_SEED) or {}).items():
            reports.setdefault(str(seed), []).append((row, result))
    for seed, pairs in reports.items():
        run = callback.find_seed_run(record, seed)
        run_id = run.info.run_id if run is not None else callback.seed_run_id(record, seed)
        written += run is None
        logged = {(m.key, m.step) for key in (run.data.metrics if run is not None else ())
                  for m in client.get_metric_history(run_id, key)}
        missing = [metric for row, result in pairs for metric in result_metrics(result, int(row.get("timestamp", 0) * 1000))
                   if (metric.key, metric.step) not in logged]
        for i in range(0, len(missing), 1000):
            client.log_batch(run_id, metrics=missing[i:i + 1000])
        written += len(missing)
        if record.ended and (run is None or run.info.status not in ("FINISHED", "FAILED")):
            client.set_terminated(run_id, status="FINISHED" if record.ended == "finished" else "FAILED")
            written += 1
    return written


def sync_search_summaries(ctx: SyncContext) -> int:
    """Each finished search's summary on the parent (``searches.log_search``) where a part of it is missing."""
    tracker, written = ctx.tracker, 0
    parent = tracker.client.get_run(tracker.parent_run_id)
    artifacts = {item.path for item in tracker.client.list_artifacts(tracker.parent_run_id)}
    for search in ctx.experiment.searches:
        if search.stage not in ctx.state.stages_done or search.name in ctx.state.best_from:
            continue
        files = [f"best_config{search.prefix}.json", f"search{search.prefix}_trials.csv"]
        metric = f"search{search.prefix}_best_{ctx.objective}"
        if metric in parent.data.metrics and all(name in artifacts for name in files):
            continue
        value = ctx.state.best_value if not search.name else ctx.state.other_best_value.get(search.name)
        frame = pd.read_csv(ctx.sweep_dir / files[1])
        log_search(tracker, ctx.sweep_dir, ctx.resolver, search, ctx.state.best_of(search.name), value,
                   ctx.objective, frame)
        if ctx.on_searched is not None:
            ctx.on_searched(search.stage)
        written += 1
    return written


def resume_command(argv: list[str], sweep_id: str) -> str:
    """The command that resumes this sweep: its own arguments (``--resume`` needs the flags it started with),
    ``--resume <sweep_id>`` in place of any ``--resume`` they had."""
    args, i = [], 0
    while i < len(argv):
        if argv[i] == "--resume":
            i += 2 if i + 1 < len(argv) and not argv[i + 1].startswith("-") else 1
            continue
        if not argv[i].startswith("--resume="):
            args.append(argv[i])
        i += 1
    return shlex.join(["python", "-m", "orchestrator.sweep", *args, "--resume", sweep_id])
