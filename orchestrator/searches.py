"""Every search stage of a sweep, one after another (``Experiment.searches``), and what each leaves.

An experiment has a main search (stage ``search``) and named ones (``search-<name>``: the baseline's of
--tune-baseline, a comparison's one per method). Each is its own Tune experiment and Optuna study with the
same budget (``--num-samples``), sampler seed and training seeds; each tuned arm takes its own search's best.
``sweep.json`` records each finished search (``SweepState.stages_done``, its best), so ``--resume`` does
not run it again; a search whose best comes from an earlier sweep (``--best-from``) is not run at all.

On the parent run each search logs its best values (``best.*`` for the main search, ``best_<name>.*`` for a
named one), its best objective (``search_best_<objective>`` / ``search_<name>_best_<objective>``), the tuned
arm's whole configuration (``best_config.json`` / ``best_config_<name>.json``) and every trial
(``search_trials.csv`` / ``search_<name>_trials.csv``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

from orchestrator.best_from import BEST_FROM_PARAM, ReusedSearch
from orchestrator.config import SweepConfig
from orchestrator.experiments import BASELINE_SEARCH, Experiment, Search
from orchestrator.plan import TrialResolver
from orchestrator.state import SweepState
from orchestrator.tracking import SweepTracker


def should_search(cfg: SweepConfig, state: SweepState, search: Search) -> bool:
    """Whether ``search`` runs now: the search stage is on, it has trials and a space, and it has not finished."""
    return ("search" in cfg.stages and search.stage not in state.stages_done and cfg.num_samples > 0
            and bool(cfg.space_of(search.name)))


def run_searches(cfg: SweepConfig, experiment: Experiment, state: SweepState, sweep_dir: Path,
                 resolver: TrialResolver, ctx_args: tuple, reused: dict[str, ReusedSearch],
                 on_searched: Callable[[str], None] | None = None) -> None:
    """Run (or take from ``reused``) every search of the experiment that has not finished, in order; leave the
    resolver with every search's best. ``ctx_args``: ``StageContext``'s arguments after the resolver
    (launch, tracker, objective, concurrent trials); ``on_searched(stage)`` follows each search that ran
    (the sweep draws its figures)."""
    from orchestrator.stages import StageContext, run_search

    launch, tracker, objective, concurrent = ctx_args
    seeds_note = f" x {cfg.search_seeds} seeds" if cfg.search_seeds > 1 else ""
    for search in experiment.searches:
        if search.name in reused and search.stage not in state.stages_done:
            take_reused(tracker, state, sweep_dir, search, reused[search.name])
        elif should_search(cfg, state, search):
            searcher = replace(resolver, searched_arm=search.arm)
            what = "" if not search.name else f" of the {search.method}" + (
                " (--tune-baseline)" if search.name == BASELINE_SEARCH else "")
            print(f"[{search.stage}] {cfg.num_samples} trials{seeds_note}{what}, up to {concurrent} at a time",
                  flush=True)
            best, value, frame = run_search(StageContext(sweep_dir, searcher, launch, tracker, objective, concurrent,
                                                         stage=search.stage),
                                            cfg.space_of(search.name), num_samples=cfg.num_samples,
                                            sampler_seed=cfg.sampler_seed, asha=cfg.asha)
            state.record_best(search.name, best, value)
            state.stages_done.append(search.stage)
            state.save(sweep_dir)
            log_search(tracker, sweep_dir, resolver, search, best, value, objective, frame)
            if on_searched is not None:
                on_searched(search.stage)
        give_best(resolver, experiment, state)


def give_best(resolver: TrialResolver, experiment: Experiment, state: SweepState) -> None:
    """The resolver's best values of every search, as ``sweep.json`` records them."""
    resolver.best = state.best_of("")
    resolver.other_best = {search.name: state.best_of(search.name) for search in experiment.searches if search.name}


def take_reused(tracker: SweepTracker, state: SweepState, sweep_dir: Path, search: Search,
                reused: ReusedSearch) -> None:
    """``search`` takes an earlier sweep's best (``--best-from``): recorded as finished, logged like a search's."""
    print(f"[{search.stage}] not run: the best of sweep {reused.sweep_id}'s search of {search.method} "
          f"(--best-from): " + ", ".join(f"{k}={v}" for k, v in reused.best.items()), flush=True)
    state.record_best(search.name, reused.best, reused.value)
    state.best_from[search.name] = reused.sweep_id
    state.stages_done.append(search.stage)
    state.save(sweep_dir)
    tracker.log_params({f"best{search.prefix}.{k}": v for k, v in reused.best.items()})
    tracker.log_params({f"{BEST_FROM_PARAM}{search.prefix}": reused.sweep_id,
                        f"{BEST_FROM_PARAM}{search.prefix}.run_id": reused.run_id})


def log_search(tracker: SweepTracker, sweep_dir: Path, resolver: TrialResolver, search: Search, best: dict,
               value: float, objective: str, frame) -> None:
    """The search's summary on the parent: best values as params, the tuned arm's whole config, every trial."""
    prefix = search.prefix
    tracker.log_params({f"best{prefix}.{k}": v for k, v in best.items()})
    tracker.log_metrics({f"search{prefix}_best_{objective}": value, f"search{prefix}_trials": len(frame)})
    std = f"{objective}_std"
    if std in frame.columns and len(frame):  # a search over several seeds: the best trial's spread
        best_row = frame.loc[frame[objective].idxmax()]
        tracker.log_metrics({f"search{prefix}_best_{std}": float(best_row[std])})
    if search.name:
        resolver.other_best[search.name] = dict(best)
    else:
        resolver.best = dict(best)
    best_config = resolver.arm_config(search.arm, resolver.search_seed).to_dict()
    best_config.pop("seed")
    config_path, trials_path = sweep_dir / f"best_config{prefix}.json", sweep_dir / f"search{prefix}_trials.csv"
    config_path.write_text(json.dumps(best_config, indent=2))
    frame.to_csv(trials_path, index=False)
    tracker.log_artifacts([config_path, trials_path])
