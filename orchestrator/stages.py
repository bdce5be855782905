"""The two stages of a sweep, each a Ray Tune experiment that can be restored.

``search``: Optuna's TPE (seeded) samples the method's space for ``num_samples`` trials, the
first of which is the paper's setting; the objective is the selection dev score.
``confirm``: every arm of the experiment over the same seeds, one trial per (arm, seed), so
seeds spread over the cluster and arms are paired by seed for the t-tests.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.trial import TrialState
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from orchestrator import disk_full
from orchestrator.cost import DeviceShare
from orchestrator.plan import TrialResolver
from orchestrator.progress import StageClock, Throttle, stage_counts, stage_eta, stage_line, trial_line
from orchestrator.reuse import find_twins, record_reused_runs
from orchestrator.seed_group import SEARCH_SEEDS
from orchestrator.tracking import AT_CHANCE, AT_CHANCE_WARNING, NestedRunCallback, SweepTracker
from orchestrator.trial import TRIAL_DRIVER_RETRIES, TrainLaunch, trainable
from search_spaces.spec import Dimension, to_tune_space

# A trial's driver (the function that starts its Ray Train run) holds no state between trials, so Tune
# hands the next trial of a stage to the finished trial's driver process: one process start (Python,
# Ray Tune, torch: ~4 CPU-seconds) less per trial (measured: a 6-trial smoke sweep
# took 113 s instead of 121 s on 2 cores, same metrics).
REUSE_TRIAL_DRIVERS = True


class StageInterrupted(Exception):
    """The stage stopped before all its trials ended (Ctrl-C); its state is saved for --resume."""


class StageFailed(Exception):
    """No trial of the stage produced a result. ``str()`` is one line for the user."""


@dataclass
class StageContext:
    sweep_dir: Path
    resolver: TrialResolver
    launch: TrainLaunch
    tracker: SweepTracker
    objective: str  # "dev_acc": the selection score of the kept checkpoint
    max_concurrent: int
    stage: str = "search"  # a search's name: its Tune folder, study and the MLflow stage tag of its trials


def study_name(sweep_dir: Path, stage: str = "search") -> str:
    """The Optuna study of a search stage: ``<experiment>-<sweep id>``, the stage appended but for ``search``."""
    return f"{sweep_dir.parent.name}-{sweep_dir.name}" + ("" if stage == "search" else f"-{stage}")


def study_storage(sweep_dir: Path) -> str:
    """The RDB URL of the sweep's Optuna studies: ``<sweep_dir>/optuna.db``."""
    return f"sqlite:///{sweep_dir / 'optuna.db'}"


def run_search(ctx: StageContext, space: dict[str, Dimension], *, num_samples: int, sampler_seed: int,
               asha: bool) -> tuple[dict[str, Any], float, pd.DataFrame]:
    """Search the space; return the best sampled values, their objective, and every trial's row."""
    from optuna.samplers import TPESampler
    from optuna.storages import RDBStorage

    path = ctx.sweep_dir / ctx.stage
    if tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), trainable=trainable(ctx.resolver, ctx.launch), resume_errored=True)
    else:
        searcher = ResumableOptunaSearch(
            sampler=TPESampler(seed=sampler_seed),
            points_to_evaluate=ctx.resolver.paper_point(space),
            study_name=study_name(ctx.sweep_dir, ctx.stage),
            storage=RDBStorage(study_storage(ctx.sweep_dir)),
        )
        scheduler = None
        if asha:
            from ray.tune.schedulers import ASHAScheduler

            scheduler = ASHAScheduler(time_attr="training_iteration", grace_period=2, reduction_factor=3)
        tuner = tune.Tuner(
            trainable(ctx.resolver, ctx.launch),
            param_space=to_tune_space(space),
            tune_config=tune.TuneConfig(metric=ctx.objective, mode="max", search_alg=searcher, scheduler=scheduler,
                                        num_samples=num_samples, max_concurrent_trials=ctx.max_concurrent,
                                        reuse_actors=REUSE_TRIAL_DRIVERS),
            run_config=_run_config(ctx, ctx.stage, expected=num_samples),
        )
    grid = _fit(tuner, expected=num_samples)
    best = grid.get_best_result(metric=ctx.objective, mode="max", filter_nan_and_inf=True)
    if best is None or best.metrics is None or ctx.objective not in best.metrics:
        raise StageFailed("no search trial reported a result; see the error tags of the search runs in MLflow")
    frame = grid.get_dataframe(filter_metric=ctx.objective, filter_mode="max")
    return dict(best.config), float(best.metrics[ctx.objective]), frame


def run_confirm(ctx: StageContext, arms: list[str], seeds: list[int]) -> None:
    """Every arm on every seed, then once more any pair that has no run result at all.

    A pair that trains exactly what an earlier pair trains is not trained; its run is a copy of that
    pair's (``orchestrator.reuse``). Results are read back from MLflow by the caller. The fill-in
    pass covers trials a restored Tune experiment ended without running them; pairs whose run failed
    are not retried (the table reports them as missing seeds).
    """
    pairs = [(arm, seed) for arm in arms for seed in seeds]
    twins = find_twins(ctx.resolver, pairs)  # a pair that trains the same as an earlier one reuses its run
    if twins:
        print(f"[confirm] {len(twins)} trial(s) train the same configuration and seed as another and reuse its "
              "run: " + ", ".join(f"{arm} seed {seed} = {twin[0]} seed {twin[1]}"
                                  for (arm, seed), twin in twins.items()), flush=True)
    trained = [pair for pair in pairs if pair not in twins]
    _run_confirm_pairs(ctx, trained, name="confirm")
    ended = ctx.tracker.outage.call(ctx.tracker.confirm_outcomes)  # one MLflow query, not one per pair
    # MLflow down (orchestrator.tracking_outage): no refill; Tune ended every pair, and --resume writes their runs
    missing = [] if ended is None else [pair for pair in trained if pair not in ended]
    if missing:
        print(f"[confirm] running {len(missing)} trial(s) with no result again: "
              + ", ".join(f"{arm} seed {seed}" for arm, seed in missing), flush=True)
        _run_confirm_pairs(ctx, missing, name="confirm-fill")
    ctx.tracker.outage.call(record_reused_runs, ctx.tracker, twins)  # or --resume does


def _run_confirm_pairs(ctx: StageContext, pairs: list[tuple[str, int]], *, name: str) -> None:
    path = ctx.sweep_dir / name
    if tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), trainable=trainable(ctx.resolver, ctx.launch), resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable(ctx.resolver, ctx.launch),
            param_space={"pair": tune.grid_search([{"arm": arm, "seed": seed} for arm, seed in pairs])},
            tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=ctx.max_concurrent,
                                        reuse_actors=REUSE_TRIAL_DRIVERS),
            run_config=_run_config(ctx, "confirm", name=name, expected=len(pairs)),
        )
    _fit(tuner, expected=len(pairs))


class ResumableOptunaSearch(OptunaSearch):
    """Ray's ``OptunaSearch``, safe to resume from a Tune snapshot older than the Optuna study.

    Tune snapshots its experiment every ~10 s, the Optuna study (SQLite) commits each trial at once.
    A driver killed in between leaves a trial finished in the study but running in the snapshot:
    ``--resume`` starts it again (it returns its stored outcome without training) and its results
    would be told to a finished Optuna trial, which raises. They are dropped instead; the study's
    record of that trial stays as it was.
    """

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._completed_trials and self._finished_in_study(trial_id):
            self._completed_trials.add(trial_id)
        super().on_trial_result(trial_id, result)

    def _finished_in_study(self, trial_id: str) -> bool:
        trial = self._ot_trials.get(trial_id)
        if trial is None:
            return False
        ended = self._ot_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL,
                                                                   TrialState.PRUNED))
        return any(t.number == trial.number for t in ended)


def _run_config(ctx: StageContext, stage: str, *, expected: int, name: str | None = None) -> tune.RunConfig:
    return tune.RunConfig(
        name=name or stage,
        storage_path=str(ctx.sweep_dir),
        callbacks=[NestedRunCallback(ctx.tracker.uri, ctx.tracker.experiment_id, ctx.tracker.parent_run_id,
                                     stage, ctx.resolver, ctx.launch.storage_path, DeviceShare.of(ctx.launch)),
                   ProgressPrinter(stage, ctx.resolver, ctx.objective, expected=expected),
                   disk_full.DiskFullWatch()],  # a trial that finds the storage full stops the stage, resumably
        # A trial driver that died is started again (its training goes on from its last checkpoint).
        failure_config=tune.FailureConfig(max_failures=TRIAL_DRIVER_RETRIES),
        verbose=0,
    )


def _fit(tuner: tune.Tuner, *, expected: int):
    with CtrlCWatch() as ctrl_c:
        grid = tuner.fit()
    full = disk_full.stopped()  # a trial found the storage full: the stage stopped, as on Ctrl-C
    if full is not None:
        raise full
    # Trials that Ctrl-C stopped while they ran count as terminated in the grid: only the watch tells them apart.
    if ctrl_c.pressed or len(grid) < expected or grid.num_terminated + grid.num_errors < len(grid):
        raise StageInterrupted()
    return grid


class CtrlCWatch:
    """Whether a Ctrl-C stopped the ``tuner.fit()`` inside this block.

    ``fit`` installs Tune's own SIGINT handler, which on the first Ctrl-C ends the run gracefully (running
    trials are stopped and counted as terminated) and puts back the handler it found. The watch installs a
    handler of its own first: it is the current one again after ``fit`` exactly when Tune was interrupted.
    A second Ctrl-C reaches it and interrupts as Python's default handler does. In a thread other than the
    main one no handler can be installed, and the watch reports nothing.
    """

    def __enter__(self) -> "CtrlCWatch":
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        self.pressed = self._previous is not None and signal.getsignal(signal.SIGINT) == self._handler
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handler(self, signum, frame) -> None:
        signal.default_int_handler(signum, frame)


class ProgressPrinter(tune.Callback):
    """One line per trial start and end (what ran, what it scored, how long it took), a running trial's line at
    its evaluations (at most one per ``PROGRESS_EVERY_S``) and the stage's line at each trial's end
    (``orchestrator.progress`` makes the lines). ``expected``: the stage's whole count of trials."""

    def __init__(self, stage: str, resolver: TrialResolver, objective: str, *, expected: int | None):
        self.stage, self.resolver, self.objective, self.expected = stage, resolver, objective, expected
        self.clock = StageClock()
        self.throttle = Throttle()
        self._labels: dict[str, str] = {}

    def __setstate__(self, state: dict) -> None:
        """A restored stage's printer is the one pickled with its Tuner; one pickled before the progress lines
        existed (a sweep resumed across that upgrade) gets its parts here, and no stage line: its count is unknown."""
        self.__dict__.update(state)
        self.__dict__.setdefault("expected", None)
        for name, make in (("clock", StageClock), ("throttle", Throttle), ("_labels", dict)):
            if name not in self.__dict__:
                setattr(self, name, make())

    def on_trial_start(self, iteration, trials, trial, **info):
        self.clock.start(trial.trial_id)
        print(f"[{self.stage}] start {self._label(trial)}", flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        line = trial_line(self._label(trial, short=True), result, self.objective)
        if line is not None and self.throttle.due(trial.trial_id):
            print(f"[{self.stage}] {line}", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        took = self.clock.end(trial.trial_id, completed=True)
        result = trial.last_result or {}
        scores = [f"{self.objective} {result.get(self.objective, float('nan')):.4f}"]
        if f"{self.objective}_std" in result:  # a trial over several seeds: their mean ± std
            scores[0] += f" ± {result[f'{self.objective}_std']:.4f} over {result.get(SEARCH_SEEDS)} seeds"
        scores += [f"{k} {v:.4f}" for k, v in result.items() if k.startswith("test_") and k.endswith(("_avg", "_avg_en"))]
        print(f"[{self.stage}] done  {self._label(trial)}: {', '.join(scores)} ({took:.0f} s)", flush=True)
        if result.get(AT_CHANCE) == 1.0:
            print(f"[{self.stage}] WARNING {self._label(trial)}: {AT_CHANCE_WARNING} ({self.objective} "
                  f"{result.get(self.objective, float('nan')):.4f}, chance {result.get('selection_chance', float('nan')):.4f})",
                  flush=True)
        self._stage_line(trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        took = self.clock.end(trial.trial_id, completed=False)
        print(f"[{self.stage}] FAILED {self._label(trial)} ({took:.0f} s); "
              f"error file: {getattr(trial, 'error_file', None) or 'see MLflow'}", flush=True)
        self._stage_line(trials, trial)

    def _stage_line(self, trials, ended) -> None:
        if self.expected is None:
            return
        counts = stage_counts(trials, expected=self.expected, ended=ended.trial_id)
        eta = stage_eta(counts.left, durations=self.clock.durations, running_elapsed=self.clock.running_elapsed(),
                        concurrency=self.clock.concurrency())
        print(f"[{self.stage}] {stage_line(counts, eta)}", flush=True)

    def _label(self, trial, *, short: bool = False) -> str:
        """``salt seed 3`` (confirm), ``trial 1a2b (learning_rate=2e-05, ...)`` (a search; ``short``: its id only,
        for the evaluation lines the start line already introduced)."""
        if self.stage != "confirm":
            if short:
                return f"trial {trial.trial_id}"
            knobs = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.config.items())
            return f"trial {trial.trial_id} ({knobs})"
        if trial.trial_id not in self._labels:  # resolved once: a confirm trial reports at every evaluation
            _cfg, arm, seed = self.resolver.resolve(trial.config)
            self._labels[trial.trial_id] = f"{arm} seed {seed}"
        return self._labels[trial.trial_id]
