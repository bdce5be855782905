"""The sweeps a comparison reads: found in MLflow, described by what defines their results, checked alike.

A sweep is its MLflow parent run (tag ``stage`` = ``sweep``; ``orchestrator.sweep``). Its params record the
configuration it ran with (``sweep.*``, ``model_dir``, ``tokenized_path``, ``data.*``), so the parent alone
says what a table of it means. Two sweeps' tables can share rows only when they trained the same encoder on
the same task and data and were confirmed on the same seeds: otherwise a difference between their arms
would be the setting's, not the method's. Every refusal is a ``CompareRefused`` whose text is one line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from orchestrator.experiments import Experiment, get_experiment
from orchestrator.significance import SignificanceOptions
from orchestrator.tracking import PARENT_TAG
from trainables.config import TrainConfig

SWEEP_STAGE = "sweep"  # the parent run's ``stage`` tag (``orchestrator.sweep.main``)


class CompareRefused(Exception):
    """Sweeps that cannot be compared, or cannot be found. ``str()`` is the one line for the user."""


@dataclass(frozen=True)
class SweepRecord:
    """One sweep as its parent run records it: the experiment it ran (with its ``--arms`` and
    ``--tune-baseline``, so ``baseline_arm`` is the arm it tested against) and what defines its results."""

    run_id: str
    sweep_id: str
    mlflow_experiment: str
    experiment: Experiment
    model: str
    seeds: tuple[int, ...]
    data: str
    data_key: str
    data_parts: str
    options: SignificanceOptions

    @property
    def task(self) -> str:
        return self.experiment.task

    @property
    def label(self) -> str:
        """How the legend and the messages name this sweep: experiment and parent run id."""
        return f"{self.experiment.name} sweep {self.sweep_id} (run {self.run_id})"


def latest_finished_sweep(client: MlflowClient, experiment_name: str) -> str:
    """The parent run id of the newest FINISHED sweep of a registered experiment."""
    mlflow_experiment = client.get_experiment_by_name(experiment_name)
    if mlflow_experiment is None:
        raise CompareRefused(f"no MLflow experiment {experiment_name!r} in this tracking store: run "
                             f"python -m orchestrator.sweep {experiment_name} first, or pass --tracking-uri")
    query = f"tags.stage = '{SWEEP_STAGE}' and attributes.status = 'FINISHED'"
    runs = client.search_runs([mlflow_experiment.experiment_id], filter_string=query, max_results=1,
                              order_by=["attributes.start_time DESC"])
    if not runs:
        raise CompareRefused(f"{experiment_name} has no finished sweep in this tracking store; finish one "
                             f"(python -m orchestrator.sweep {experiment_name} --resume) or name a sweep id")
    return runs[0].info.run_id


def load_sweep(client: MlflowClient, run_id: str) -> SweepRecord:
    """The finished sweep whose parent run is ``run_id``, with at least one finished confirm run."""
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise CompareRefused(f"no run {run_id!r} in this tracking store; pass a sweep's parent run id "
                             "(printed by the sweep, tag stage=sweep) or --experiments") from None
    tags, params = run.data.tags, run.data.params
    if tags.get("stage") != SWEEP_STAGE:
        raise CompareRefused(f"run {run_id} is not a sweep's parent run (its stage is {tags.get('stage')!r}); "
                             "pass the parent run id the sweep printed")
    if run.info.status != "FINISHED":
        raise CompareRefused(f"sweep run {run_id} is {run.info.status}, not FINISHED; finish it with "
                             f"python -m orchestrator.sweep {params.get('sweep.experiment', '<experiment>')} "
                             f"--resume {tags.get('sweep_id', '')}".rstrip())
    try:
        experiment = get_experiment(params["sweep.experiment"], _literal(params.get("sweep.arms"), ()),
                                    tune_baseline=params.get("sweep.tune_baseline") == "True")
    except KeyError as exc:
        raise CompareRefused(f"sweep run {run_id}: {exc.args[0]}") from None
    mlflow_experiment = client.get_experiment(run.info.experiment_id).name
    confirm = f"tags.`{PARENT_TAG}` = '{run_id}' and tags.stage = 'confirm' and attributes.status = 'FINISHED'"
    if not client.search_runs([run.info.experiment_id], filter_string=confirm, max_results=1):
        raise CompareRefused(f"{experiment.name} sweep run {run_id} has no finished confirm runs (did it run "
                             "--stages search only?); compare sweeps whose confirm stage ran")
    options = SignificanceOptions(correction=params.get("sweep.correction", "holm"),
                                  ci_method=params.get("sweep.ci_method", "t"))
    return SweepRecord(run_id=run_id, sweep_id=tags.get("sweep_id", run_id), mlflow_experiment=mlflow_experiment,
                       experiment=experiment, model=_model(params), seeds=tuple(_literal(params.get("sweep.seeds"), ())),
                       data=_data_source(params), data_key=_data_key(params),
                       data_parts=params.get("data.parts", ""), options=options)


def check_comparable(sweeps: list[SweepRecord]) -> None:
    """Refuse sweeps that differ in task, model, confirm seeds or data (one line naming both values).

    Data is where it came from (``--data-dir``, the hub, or the smoke profile's generated data) and the
    max length, and the tokenised data's content key (``trainables.data.cache``: a hash of the tokenizer,
    every data part's rows and the max length) between sweeps that read the same number of data parts. A
    sweep whose methods also read unlabelled target text (BTF, self-training) tokenises those parts too,
    so its key differs from a baseline's on the very same labelled data; their sources are compared then.
    """
    first = sweeps[0]
    checks = (("task", lambda s: s.task, "compare sweeps of one task"),
              ("model", lambda s: s.model, "rerun one of them with the other's --model"),
              ("confirm seeds", lambda s: ", ".join(map(str, s.seeds)), "rerun one of them with the other's --seeds"),
              ("data", lambda s: s.data, "rerun one of them with the other's --data-dir and max_length"))
    for other in sweeps[1:]:
        for what, value, advice in checks:
            if value(first) != value(other):
                raise CompareRefused(f"the sweeps differ in {what}: {value(first)} ({first.label}) vs "
                                     f"{value(other)} ({other.label}); {advice}")
        if first.data_parts == other.data_parts and first.data_key != other.data_key:
            raise CompareRefused(f"the sweeps differ in data: tokenised data {first.data_key} ({first.label}) vs "
                                 f"{other.data_key} ({other.label}), same source but other content, tokenizer "
                                 "or library versions; rerun one of them on the other's data")


def shared_options(sweeps: list[SweepRecord]) -> tuple[SignificanceOptions, str]:
    """The tests every sweep's table used (``--correction``, ``--ci``), and a legend note when they differ
    (then the defaults, Holm and t intervals, are used)."""
    options = {(s.options.correction, s.options.ci_method) for s in sweeps}
    if len(options) == 1:
        return sweeps[0].options, ""
    used = SignificanceOptions()
    return used, (f"the sweeps' tables used different corrections or intervals "
                  f"({'; '.join(f'{s.label}: {s.options.correction}, {s.options.ci_method}' for s in sweeps)}); "
                  f"this comparison uses {used.correction_name} and {used.ci_method} intervals")


def _literal(text: str | None, default):
    """A param logged as ``str()`` of a list (``sweep.seeds``: ``[1, 2, 3]``) back to a tuple."""
    if not text:
        return default
    try:
        return tuple(ast.literal_eval(text))
    except (ValueError, SyntaxError, TypeError):
        return default


def _model(params: dict[str, str]) -> str:
    """The encoder the sweep named (``--model`` or the profile's); the smoke profile builds its own."""
    model = params.get("sweep.model", "None")
    return "the smoke profile's generated model" if model == "None" else model


def _data_source(params: dict[str, str]) -> str:
    """Where the task data came from, and the max length it was tokenised to."""
    data_dir = params.get("sweep.data_dir", "None")
    if data_dir != "None":
        source = f"--data-dir {data_dir}"
    elif params.get("sweep.profile") == "smoke" or params.get("sweep.model", "None") == "None":
        source = "the smoke profile's generated data"
    else:
        source = "the hub's data"
    return f"{source}, max_length {params.get('sweep.set.max_length', TrainConfig.max_length)}"


def _data_key(params: dict[str, str]) -> str:
    """The tokenised data's content key: the cache folder's name (``cache_dir/tokenized/<key[:16]>``)."""
    path = params.get("tokenized_path", "")
    return path.rstrip("/").rsplit("/", 1)[-1]
