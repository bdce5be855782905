"""``python -m orchestrator.sweep EXPERIMENT``: search, confirm over seeds, report with t-tests.

The order matters for the user: everything that can be wrong with the input (flags, model,
data, tracking store) is checked first and reported in one line with exit code 2; only then
does Ray start. Each stage is a restorable Tune experiment, and ``sweep.json`` records which
stages are done, so ``--resume`` (or a rerun after Ctrl-C) continues where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from orchestrator import cli, disk_full
from orchestrator.assets import Assets, generates_assets, load_assets, log_data_accounting, tokenize_assets
from orchestrator.config import SweepConfig
from orchestrator.cost_report import log_sweep_cost
from orchestrator.memory_report import log_sweep_memory
from orchestrator.best_from import BestFromError, ReusedSearch, check_store_exists, find_best_from
from orchestrator.experiments import Experiment, get_experiment
from orchestrator.footprint import Footprint
from orchestrator.paper_numbers import paper_model
from orchestrator.dry_run import describe_plan
from orchestrator.sharing import preparation_cluster, probe_cluster, sweep_sharing
from orchestrator.throughput import AUTO, TRIALS_PER_DEVICE, cluster_device_kind
from orchestrator.plan import TrialResolver, arm_recipes, legend_notes, recipe_settings
from orchestrator.preparation import (Preparation, PreparationError, check_method_inputs, check_model_inputs,
                                     prepare_method, unlabelled_languages)
from orchestrator.quiet import local_cpus, local_gpus, quiet_known_noise, raylet_settings, startup_concurrency
from orchestrator.resume_check import check_resume_matches
from orchestrator.reuse import identical_arm_notes
from orchestrator.results import ReportSettings, collect_confirm_results, report_results, report_search_figures
from orchestrator.significance import SignificanceOptions
from orchestrator.shared_storage import StorageNotShared, check_storage_is_shared
from orchestrator.state import NoSweepToResume, SweepState, find_sweep, new_sweep_dir
from orchestrator.storage_check import StorageNotWritable, check_storage_writable
from orchestrator.tracking_server import check_tracking
from orchestrator.tracking_sync import EXIT_TRACKING_DOWN, SyncContext, catch_up, resume_command
from orchestrator.tracking import SweepTracker
from orchestrator.tracking_store import TrackingUnavailable, open_client, resolve_tracking_uri
from trainables import faults
from trainables.config import TrainConfig
from trainables.data import DataUnavailable
from trainables.models import ModelUnavailable
from trainables.publish import recording
from trainables.tasks import TaskSpec, get_task

# What every Ray worker process gets: no hub access (the driver resolved model and data), quiet
# libraries, and no tokenizer thread pools fighting the training threads.
WORKER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
    "RAY_TRAIN_V2_ENABLED": "1",
    # Train V2's controller polls its workers every 2 s by default, and each run waits for a poll
    # to see its workers start and finish: ~4 s of every Train run (measured: an empty run took
    # 9.1 s, 4.7 s at 0.2 s). A poll is one small RPC per worker, so 0.2 s costs nothing.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
}


def main(argv: Sequence[str] | None = None) -> int:
    hint = disk_full.ResumeHint(Path("sweeps"))
    with disk_full.exit_on_full_disk(hint):  # whichever writer met it: one line, a distinct exit, resumable
        return _sweep(argv, hint)


def _sweep(argv: Sequence[str] | None, hint: disk_full.ResumeHint) -> int:
    try:
        cfg = cli.parse(argv)
    except cli.UsageError as exc:
        cli.fail(str(exc))
    if cfg is None:  # --list
        return 0
    hint.storage = cfg.storage_path
    experiment = get_experiment(cfg.experiment, cfg.arms, tune_baseline=cfg.tune_baseline)
    task = get_task(experiment.task, cfg.languages)  # on --languages: loading, trials and tables follow it
    if cfg.dry_run and not cfg.probe:  # every input check that needs no Ray, then the plan
        if not cfg.verbose:
            _quiet_progress_bars()
        try:
            print(describe_plan(cfg, experiment, task))
        except (ModelUnavailable, DataUnavailable, PreparationError) as exc:
            cli.fail(str(exc))
        return 0

    if not cfg.verbose:
        quiet_known_noise()  # before the MLflow store is opened and Ray starts
    tracking_uri = resolve_tracking_uri(cfg.tracking_uri)
    # what the checks build before they can refuse (smoke assets, tokenised data) goes again on a refusal
    footprint = Footprint.record(cfg.storage_path, tracking_uri)
    try:
        with recording() as footprint.published:
            check_tracking(tracking_uri)
            check_storage_writable(cfg.storage_path)
            resumed = find_sweep(cfg.storage_path, cfg.resume, cfg.experiment) if cfg.resume else None
            if resumed is not None:
                check_resume_matches(cfg, SweepState.load(resumed), skip=("space", "spaces"))
            reused = _reused_searches(cfg, experiment, tracking_uri, resumed)
            if not cfg.verbose:
                _quiet_progress_bars()
            check_method_inputs(cfg, experiment, task)
            unlabelled = unlabelled_languages(cfg, experiment, task)
            # a user's data is read (and refused) before any cluster work; generated smoke assets are written into
            # the storage, so on a cluster they wait until every node is known to see it
            loaded = None if generates_assets(cfg) else load_assets(cfg, task, unlabelled=unlabelled)
            cluster = None
            if cfg.resources.address:  # joining a cluster: every node must see the storage before anything is put there
                cluster = _start_ray(cfg)
                check_storage_is_shared(cfg.storage_path, tracking_uri)
            if loaded is None:
                loaded = load_assets(cfg, task, unlabelled=unlabelled)
            print(loaded.accounting.render(), flush=True)
            check_model_inputs(cfg, experiment, task, loaded.model_dir)  # e.g. an MLM head, before any tokenisation
            assets = tokenize_assets(cfg, task, loaded)
            preparation = prepare_method(cfg, experiment, task, assets)
            if preparation.space is not None:
                cfg.space = preparation.space  # e.g. one SALT threshold per chosen language
            cfg.spaces.update(preparation.spaces)  # the named searches' spaces, as their methods' steps shaped them
            if resumed is not None:  # the space is known now
                check_resume_matches(cfg, SweepState.load(resumed))
    except (ModelUnavailable, DataUnavailable, TrackingUnavailable, NoSweepToResume, PreparationError,
            StorageNotShared, StorageNotWritable, BestFromError) as exc:
        footprint.undo()
        cli.fail(str(exc))
    if cluster is None:  # a local Ray: one node, nothing to probe
        cluster = _start_ray(cfg)
    if cfg.dry_run:  # --dry-run --probe: the plan with the rate measured on this cluster; no sweep is opened
        first = _resolver(cfg, experiment, task, assets, SweepState("dry-run", cfg.experiment), preparation).arm_config(
            experiment.confirm_arms[0].name, cfg.seeds[0])
        kind = cluster_device_kind(cluster)
        rates = probe_cluster(cfg, first, kind, Path(cfg.storage_path), sharing=cfg.resources.gpus_per_trial in (None, AUTO))
        print(describe_plan(cfg, experiment, task, probe={kind: rates}))
        return 0
    sweep_dir, state = _open_sweep(cfg, resumed)
    was_complete = state.complete  # a resumed sweep that had finished: only what MLflow misses is written
    hint.sweep_id = state.sweep_id

    tracker = SweepTracker(tracking_uri, experiment.name)
    tracker.open_parent(state.parent_run_id or None, name=f"sweep-{state.sweep_id}",
                        tags={"stage": "sweep", "sweep_id": state.sweep_id, "profile": cfg.profile,
                              "sweep_dir": str(sweep_dir)})
    state.parent_run_id = tracker.parent_run_id
    tracker.outage.resume_command = resume_command(list(sys.argv[1:] if argv is None else argv), state.sweep_id)
    state.config = cfg.to_dict()
    state.save(sweep_dir)
    _log_sweep_config(tracker, cfg, task, assets, sweep_dir)
    log_data_accounting(tracker, assets.accounting, sweep_dir)
    tracker.log_params(preparation.params)
    tracker.log_params({f"recipe.{arm}": recipe.name for arm, recipe in arm_recipes(experiment, cfg.profile).items()})
    print(f"sweep {state.sweep_id}: {sweep_dir}\nMLflow: {tracking_uri} (experiment {experiment.name}, "
          f"parent run {tracker.parent_run_id})", flush=True)
    if preparation.summary:
        print(preparation.summary, flush=True)

    from orchestrator.searches import run_searches
    from orchestrator.stages import StageContext, StageFailed, StageInterrupted, run_confirm
    from orchestrator.trial import TrainLaunch

    preparation.run(tracker, preparation_cluster(cfg, cluster))
    resolver = _resolver(cfg, experiment, task, assets, state, preparation)
    sharing = sweep_sharing(cfg, cluster, resolver.arm_config(experiment.confirm_arms[0].name, cfg.seeds[0]), sweep_dir)
    tracker.log_params(sharing.params())
    launch = TrainLaunch(
        storage_path=str(sweep_dir / "train"),
        num_workers=cfg.resources.workers_per_trial,
        gpus_per_worker=sharing.gpus_per_trial / cfg.resources.workers_per_trial,
        cpus_per_worker=sharing.cpus_per_worker,
        max_failures=cfg.resources.max_failures,
    )
    objective = f"dev_{task.metric}"
    concurrent = max_concurrent_trials(cfg, cluster, sharing.gpus_per_trial, sharing.cpus_per_worker)
    # A search trial over K seeds holds K training runs at once: it counts like K trials.
    search_concurrent = max(1, concurrent // cfg.search_seeds)
    try:
        run_searches(cfg, experiment, state, sweep_dir, resolver, (launch, tracker, objective, search_concurrent),
                     reused,
                     on_searched=lambda stage: report_search_figures(tracker, sweep_dir, stage, task, cfg.select_on))
        if "confirm" in cfg.stages and "confirm" not in state.stages_done:
            arms, seeds = [arm.name for arm in experiment.confirm_arms], list(cfg.seeds)
            print(f"[confirm] {len(arms)} arms x {len(seeds)} seeds, up to {concurrent} at a time", flush=True)
            run_confirm(StageContext(sweep_dir, resolver, launch, tracker, objective, concurrent), arms, seeds)
            state.stages_done.append("confirm")
            state.save(sweep_dir)
    except StageInterrupted:
        tracker.outage.call(log_sweep_cost, tracker)  # what the trials that ended so far cost
        # the sweep's own flags: --resume refuses other settings than those it started with
        print(f"\ninterrupted: finished trials are kept. Continue with:\n  {tracker.outage.resume_command}",
              file=sys.stderr)
        tracker.finish("KILLED")
        return 130
    except disk_full.StorageFull:
        with contextlib.suppress(Exception):  # the tracking store may be on the full disk too
            tracker.finish("KILLED")
        raise
    except StageFailed as exc:
        tracker.outage.call(log_sweep_cost, tracker)
        tracker.finish("FAILED")
        cli.fail(str(exc))

    # what an outage kept from MLflow (or a resume finds missing), from Tune's records, before the report reads MLflow
    written = catch_up(SyncContext(tracker, sweep_dir, state, experiment, resolver, launch, objective,
                                   [(arm.name, seed) for arm in experiment.confirm_arms for seed in cfg.seeds],
                                   lambda stage: report_search_figures(tracker, sweep_dir, stage, task, cfg.select_on)),
                       resumed=resumed is not None)
    if written is None:
        return EXIT_TRACKING_DOWN
    if was_complete and not written:
        print(f"sweep {state.sweep_id} is complete and MLflow has all of it: nothing to write", flush=True)
        tracker.finish()
        return 0
    # per stage and arm on the parent run; under the table as legend lines, with the largest peak memory per arm
    cost = log_sweep_cost(tracker) + log_sweep_memory(tracker)
    if "confirm" in state.stages_done:
        results = collect_confirm_results(tracker, task)
        settings = _report_settings(cfg, experiment, state, resolver)
        text = report_results(results, tracker, experiment, task, cfg.seeds, sweep_dir / "results",
                              replace(settings, notes=settings.notes + tuple(cost)))
        print("\n" + text)
    elif cost:
        print("\n" + "\n".join(cost))
    state.complete = True
    state.save(sweep_dir)
    tracker.finish()
    return 0


def _report_settings(cfg: SweepConfig, experiment: Experiment, state: SweepState,
                     resolver: TrialResolver) -> ReportSettings:
    """The report's tests and legend from the sweep's flags (and the arms that trained the same as another);
    a reproduction check only when the paper profile ran the experiment's paper model (the published
    numbers' model)."""
    options = SignificanceOptions(correction=cfg.correction, ci_method=cfg.ci_method)
    reproduction = cfg.profile == "paper" and cfg.model == paper_model(experiment.name)
    ran = [search for search in experiment.searches
           if search.stage in state.stages_done and search.name not in state.best_from]
    notes = legend_notes(cfg, experiment, searched=any(not search.name for search in ran)
                         or (experiment.searched_arm is None and bool(ran)))
    for search in experiment.searches:
        if search.name in state.best_from:
            arms = ", ".join(arm.name for arm in experiment.arms if arm.tuned and arm.search == search.name)
            notes += (f"{search.stage}: not run; {arms} took the best of sweep {state.best_from[search.name]}'s "
                      f"search of {search.method} (--best-from)",)
    notes += identical_arm_notes(resolver, [arm.name for arm in experiment.confirm_arms], list(cfg.seeds))
    return ReportSettings(options=options, notes=notes, model=cfg.model, reproduction=reproduction,
                          bootstrap=cfg.bootstrap, select_on=cfg.select_on)


def max_concurrent_trials(cfg: SweepConfig, cluster: dict[str, float], gpus_per_trial: float,
                          cpus_per_worker: float) -> int:
    """As many trials as the cluster fits at once (also caps Train V2 placement-group leaks, ray#54305),
    or ``--max-concurrent-trials``."""
    if cfg.resources.max_concurrent_trials:
        return cfg.resources.max_concurrent_trials
    if gpus_per_trial > 0:
        fits = cluster.get("GPU", 0) / gpus_per_trial
    else:
        fits = cluster.get("CPU", 1) / (cpus_per_worker * cfg.resources.workers_per_trial)
    return max(1, math.floor(fits + 1e-9))


def _reused_searches(cfg: SweepConfig, experiment: Experiment, tracking_uri: str,
                     resumed: Path | None) -> dict[str, ReusedSearch]:
    """The searches ``--best-from`` replaces (checked against MLflow; ``BestFromError``: one line). A resumed
    sweep recorded them when it started."""
    if not cfg.best_from or (resumed is not None and SweepState.load(resumed).best_from):
        return {}
    check_store_exists(tracking_uri, cfg.best_from)
    return find_best_from(open_client(tracking_uri), cfg.best_from, experiment, cfg.model,
                          languages=get_task(experiment.task, cfg.languages).languages, select_on=cfg.select_on)


def _quiet_progress_bars() -> None:
    """Building and tokenising assets is quick; its progress bars would bury the lines that matter."""
    import datasets
    import huggingface_hub.utils
    import transformers

    datasets.disable_progress_bars()
    huggingface_hub.utils.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def _open_sweep(cfg: SweepConfig, resumed: Path | None) -> tuple[Path, SweepState]:
    if resumed is not None:
        return resumed, SweepState.load(resumed)
    sweep_dir = new_sweep_dir(cfg.storage_path)
    state = SweepState(sweep_id=sweep_dir.name, experiment=cfg.experiment)
    state.save(sweep_dir)
    return sweep_dir, state


def _resolver(cfg: SweepConfig, experiment: Experiment, task: TaskSpec, assets: Assets,
              state: SweepState, preparation: Preparation) -> TrialResolver:
    base = TrainConfig(task=task.name, model=assets.model_dir, tokenized_path=str(assets.tokenized_path),
                       languages=task.languages, select_on=cfg.select_on,
                       method_params=dict(preparation.method_params), **preparation.train_fields)
    return TrialResolver(base=base.to_dict(), arms={arm.name: arm for arm in experiment.arms},
                         fixed=dict(cfg.train_overrides), best=dict(state.best),
                         searched_arm=experiment.searched_arm.name if experiment.searched_arm else "",
                         search_seeds=cfg.search_training_seeds,
                         other_best={search.name: state.best_of(search.name) for search in experiment.searches
                                     if search.name},
                         recipes=recipe_settings(experiment, cfg.profile),
                         generalized_path=str(assets.generalized_path or ""))


# Ray Train's per-trial actor that polls the cluster's nodes for preemption notices (spot instances).
PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"


def _start_ray(cfg: SweepConfig) -> dict[str, float]:
    import ray

    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    if not cfg.verbose:  # our own progress lines replace Tune's tables
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        import ray.data  # noqa: F401  (its import configures its loggers; quiet them afterwards)

        logging.getLogger("ray.data").setLevel(logging.WARNING)  # Ray Data's per-dataset INFO lines
    # Fault injection (tests) reaches the workers wherever they run.
    env_vars = {**WORKER_ENV, **faults.from_environment(), **_plugins_environment()}
    local = {} if cfg.resources.address else {"include_dashboard": cfg.resources.ray_dashboard}
    if local:  # one machine: no node of it can be preempted, so no trial needs Ray Train's preemption watcher
        env_vars.setdefault(PREEMPTION_WATCHER_ENV, os.environ.get(PREEMPTION_WATCHER_ENV, "0"))
    with raylet_settings(_local_startup_concurrency(cfg)) if local else contextlib.nullcontext():
        context = ray.init(address=cfg.resources.address, runtime_env={"env_vars": env_vars},
                           log_to_driver=cfg.verbose, logging_level="WARNING", ignore_reinit_error=True, **local)
    if cfg.resources.ray_dashboard and context.dashboard_url:
        print(f"Ray dashboard: http://{context.dashboard_url}", flush=True)
    return ray.cluster_resources()


def _local_startup_concurrency(cfg: SweepConfig) -> int:
    """The Python processes the local Ray should expect at once (``orchestrator.quiet``), from the trials this
    machine fits, as ``max_concurrent_trials`` will count them once Ray is up."""
    cpus = local_cpus()
    machine = {"CPU": float(cpus), "GPU": float(local_gpus())}
    gpus, shares = cfg.resources.gpus_per_trial, 1
    if gpus in (None, AUTO):  # auto may put up to 8 trials on a device (orchestrator.sharing): expect the most
        shares = TRIALS_PER_DEVICE[-1] if machine["GPU"] >= 1 or gpus == AUTO else 1
        gpus = 1.0 / shares if machine["GPU"] >= 1 else 0.0
    cpus_per_worker = cfg.resources.cpus_per_worker / (shares if not gpus else 1)
    concurrent = max_concurrent_trials(cfg, machine, gpus, cpus_per_worker)
    return startup_concurrency(concurrent, cfg.resources.workers_per_trial, cpus)


def _plugins_environment() -> dict[str, str]:
    """``XLT_SWEEP_PLUGINS``, for the workers: they register the same methods (``trainables.methods``)."""
    from trainables.methods import PLUGINS_ENV

    value = os.environ.get(PLUGINS_ENV)
    return {PLUGINS_ENV: value} if value else {}


def _log_sweep_config(tracker: SweepTracker, cfg: SweepConfig, task: TaskSpec, assets: Assets,
                      sweep_dir: Path) -> None:
    params = {f"sweep.{k}": v for k, v in cfg.to_dict().items()
              if k not in ("resources", "train_overrides", "space", "baseline_space", "spaces", "method_settings",
                           "best_from", "languages")}
    params.update({f"sweep.resources.{k}": v for k, v in cfg.to_dict()["resources"].items()})
    params.update({f"sweep.set.{k}": v for k, v in cfg.train_overrides.items()})
    params.update({f"space.{k}": str(v) for k, v in cfg.space.items()})
    params.update({f"{name}_space.{k}": str(v) for name, space in cfg.spaces.items() for k, v in space.items()})
    params.update({"sweep.best_from": ",".join(cfg.best_from)} if cfg.best_from else {})
    params["languages"] = ",".join(task.languages)  # the sweep's (--languages), as each trial's run logs its own
    if assets.generalized_path is not None:
        params["generalized_path"] = str(assets.generalized_path)
    params.update({"model_dir": assets.model_dir, "tokenized_path": str(assets.tokenized_path),
                   "tracking_uri": tracker.uri, "sweep_dir": str(sweep_dir)})
    tracker.log_params(params)
    path = sweep_dir / "sweep_config.json"
    path.write_text(json.dumps(cfg.to_dict(), indent=2, default=str))
    tracker.log_artifacts([path])


if __name__ == "__main__":
    sys.exit(main())
