"""MLflow: one parent run per sweep, one nested child run per trial.

Ray's MLflow helpers do not nest runs (ray#19978), so the nesting is ours: the sweep driver
owns the parent run, and a Tune callback in the same process opens a child run for every
trial (tags ``stage``, ``arm``, ``seed``, ``trial_id``), logs its whole configuration as
params and every reported metric, and attaches a confirm trial's test predictions
(``predictions/predictions.parquet``) and, where it evaluated SALT's generalized XNLI setting, its 225
pair accuracies as a matrix (``generalized/generalized_xnli.csv``; ``trainables.generalized``); a trial that
ends, finished or failed, gets its cost (``gpu_hours`` or ``cpu_hours``; ``orchestrator.cost``). Only the
driver process writes to MLflow: one writer for a SQLite store, and workers need no tracking URI at all.
Opening the store: ``orchestrator.tracking_store``. A tracking server that stays down longer than
MLflow's own retries does not stop the sweep: the writes are dropped with one line
(``orchestrator.tracking_outage``) and ``--resume`` writes them from Tune's records (``orchestrator.tracking_sync``).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.result import AUTO_RESULT_KEYS

from orchestrator.cost import DeviceShare, trial_cost
from orchestrator.disk_full import error_text
from orchestrator.plan import TrialResolver
from orchestrator.seed_group import PER_SEED
from orchestrator.tracking_outage import TrackingOutage, outage_of
from orchestrator.tracking_store import open_client
from orchestrator.trial import predictions_path
from trainables import generalized
from trainables.disk_space import says_disk_full
from trainables.training.pace import PROGRESS_ONLY
from trainables.worker import TRAIN_NODE

PARENT_TAG = "mlflow.parentRunId"
AT_CHANCE = "selection_at_chance"
"""Final metric of a run (1.0 / 0.0): its selection metric never rose above the dev set's constant-prediction
score (``selection_chance``), so the checkpoint it kept is arbitrary. Flagged as a tag and in the console."""
AT_CHANCE_WARNING = "selection metric at chance: the kept checkpoint is arbitrary"
PREDICTIONS_ARTIFACT_DIR = "predictions"  # a confirm run's test predictions: predictions/predictions.parquet


class SweepTracker:
    """The sweep's MLflow experiment and parent run."""

    def __init__(self, uri: str, experiment_name: str):
        self.uri = uri
        self.client = open_client(uri)
        self.outage: TrackingOutage = outage_of(uri)  # the writes below are dropped while the server is down
        experiment = self.client.get_experiment_by_name(experiment_name)
        self.experiment_id = (experiment.experiment_id if experiment
                              else self.client.create_experiment(experiment_name))
        self.parent_run_id = ""

    def open_parent(self, run_id: str | None, *, name: str, tags: dict[str, str]) -> str:
        """Reuse ``run_id`` (a resumed sweep) or start a new parent run."""
        if run_id:
            self.client.update_run(run_id, status="RUNNING")
            self.parent_run_id = run_id
        else:
            self.parent_run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
        return self.parent_run_id

    def log_params(self, params: dict[str, Any]) -> None:
        self.outage.call(self._log_params, params)

    def _log_params(self, params: dict[str, Any]) -> None:
        existing = self.client.get_run(self.parent_run_id).data.params
        fresh = [Param(k, param_value(v)) for k, v in params.items() if k not in existing]
        for i in range(0, len(fresh), 100):
            self.client.log_batch(self.parent_run_id, params=fresh[i:i + 100])

    def log_metrics(self, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if is_number(v)]
        if batch:
            self.outage.call(self.client.log_batch, self.parent_run_id, metrics=batch)

    def tags(self) -> dict[str, str]:
        return dict(self.client.get_run(self.parent_run_id).data.tags)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.outage.call(self.client.log_batch, self.parent_run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifacts(self, paths: list[Path]) -> None:
        for path in paths:
            self.outage.call(self.client.log_artifact, self.parent_run_id, str(path))

    def log_figure(self, png: Path, folder: str = "figures") -> None:
        """A figure already saved as ``png`` as an image artifact of the parent run (``<folder>/<name>.png``).

        The file the report wrote is logged rather than the figure (``MlflowClient.log_figure``), which would
        render it a second time: rendering is most of a figure's cost (measured: half of the report's time)."""
        self.outage.call(self.client.log_artifact, self.parent_run_id, str(png), folder)

    def log_table(self, frame, artifact_file: str) -> None:
        """A DataFrame as an MLflow table artifact of the parent run (JSON; the UI shows it as a table)."""
        self.outage.call(self.client.log_table, self.parent_run_id, data=frame, artifact_file=artifact_file)

    def finish(self, status: str = "FINISHED") -> None:
        self.outage.call(self.client.set_terminated, self.parent_run_id, status=status)

    def confirm_outcomes(self) -> dict[tuple[str, int], str]:
        """(arm, seed) -> "FINISHED" or "FAILED" for the confirm pairs that ran to an end."""
        outcomes: dict[tuple[str, int], str] = {}
        for run in self.child_runs("confirm"):
            if run.info.status in ("FINISHED", "FAILED"):
                key = (run.data.tags["arm"], int(run.data.tags["seed"]))
                if outcomes.get(key) != "FINISHED":
                    outcomes[key] = run.info.status
        return outcomes

    def finished_confirm_runs(self) -> dict[tuple[str, int], Any]:
        """(arm, seed) -> the newest FINISHED confirm run of that pair: what a table reports (a resumed or
        refilled pair may have an older run too)."""
        runs: dict[tuple[str, int], Any] = {}
        for run in self.child_runs("confirm"):  # newest first
            key = (run.data.tags["arm"], int(run.data.tags["seed"]))
            if run.info.status == "FINISHED" and key not in runs:
                runs[key] = run
        return runs

    def child_runs(self, stage: str) -> list:
        """The parent's child runs of ``stage`` (all statuses), newest first."""
        query = f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' and tags.stage = '{stage}'"
        return self.client.search_runs([self.experiment_id], filter_string=query, max_results=10000,
                                       order_by=["attributes.start_time DESC"])


# Keys of a Tune result that are bookkeeping, not metrics of the run; the loop's progress keys (total_steps,
# eta_seconds) are for the console alone.
_NOT_METRICS = set(AUTO_RESULT_KEYS) | set(PROGRESS_ONLY) | {
    "done", "trial_id", "experiment_tag", "should_checkpoint", "step", "checkpoint_path", "experiment_id", "date",
    "hostname", "node_ip", "pid"}


class NestedRunCallback(tune.Callback):
    """Opens a child run per Tune trial under the sweep's parent run and logs into it.

    The child run is found again by its ``trial_id`` tag, so a resumed sweep (``Tuner.restore``)
    or a retried trial logs into the run it had, rather than duplicating it. A confirm trial that
    ends gets its test predictions as an artifact (under ``predictions/``), read from where its
    training wrote them under ``train_storage_path`` (``orchestrator.trial.predictions_path``).
    """

    train_storage_path: str = ""  # also what a callback pickled before it had one restores with
    share: DeviceShare | None = None  # what a trial's run holds (its cost); None: no cost logged

    def __init__(self, uri: str, experiment_id: str, parent_run_id: str, stage: str, resolver: TrialResolver,
                 train_storage_path: str = "", share: DeviceShare | None = None):
        self.uri, self.experiment_id, self.parent_run_id = uri, experiment_id, parent_run_id
        self.stage, self.resolver = stage, resolver
        self.train_storage_path, self.share = train_storage_path, share
        self._client: MlflowClient | None = None
        self._runs: dict[str, str] = {}
        self._nodes: dict[str, str] = {}
        # Trials whose run had already FINISHED when this callback met them: a trial that Tune's last
        # snapshot still had as running (the driver was killed) ends again, but its run is not touched.
        self._finished_before: set[str] = set()
        # A search trial over several seeds: its seed runs, nested under the trial's run.
        self._seed_runs: dict[tuple[str, str], str] = {}
        self._seed_runs_finished_before: set[str] = set()

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks with the experiment state; the client is rebuilt on use.
        return {**self.__dict__, "_client": None}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = open_client(self.uri)
        return self._client

    def find_run(self, trial):
        """The trial's run, if it has one: a confirm run is identified by (arm, seed), so a restored or refilled
        trial logs into it; a search run by its trial id (the same configuration may be sampled twice)."""
        _cfg, arm, seed = self.resolver.resolve(trial.config)
        key = (f"tags.arm = '{arm}' and tags.seed = '{seed}'" if self.stage == "confirm"
               else f"tags.trial_id = '{trial.trial_id}'")
        query = f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' and tags.stage = '{self.stage}' and {key}"
        found = self.client.search_runs([self.experiment_id], filter_string=query, max_results=1)
        return found[0] if found else None

    def trial_params(self, trial) -> dict[str, Any]:
        """The params a trial's run is created with: its whole resolved configuration and the stage."""
        cfg, _arm, _seed = self.resolver.resolve(trial.config)
        params = cfg.flat_params()
        if self.stage != "confirm" and len(self.resolver.search_seeds) > 1:  # the trial is the mean of its seeds
            params["seed"] = ",".join(map(str, self.resolver.search_seeds))
        return {**params, "stage": self.stage}

    def run_id(self, trial) -> str:
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        cfg, arm, seed = self.resolver.resolve(trial.config)
        found = [run for run in [self.find_run(trial)] if run is not None]
        if found and found[0].info.status == "FINISHED":
            run_id = found[0].info.run_id
            self._finished_before.add(trial.trial_id)
        elif found:
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, "trial_id", trial.trial_id)
        else:
            name = f"{self.stage}-{arm}-seed{seed}" if self.stage == "confirm" else f"search-{trial.trial_id}"
            params = self.trial_params(trial)
            tags = {PARENT_TAG: self.parent_run_id, "stage": self.stage, "arm": arm, "seed": str(params["seed"]),
                    "trial_id": trial.trial_id, "method": cfg.method}
            run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
            self._log_params(run_id, params)
        self._runs[trial.trial_id] = run_id
        return run_id

    def seed_run_id(self, trial, seed: str) -> str:
        """The run of one seed of a search trial over several seeds, nested under the trial's run
        (stage ``<stage>-seed``), found again by its tags after a resume."""
        key = (trial.trial_id, seed)
        if key in self._seed_runs:
            return self._seed_runs[key]
        parent, stage = self.run_id(trial), f"{self.stage}-seed"
        found = [run for run in [self.find_seed_run(trial, seed)] if run is not None]
        if found:
            run_id = found[0].info.run_id
            if found[0].info.status == "FINISHED":
                self._seed_runs_finished_before.add(run_id)
        else:
            cfg, arm, _ = self.resolver.resolve(trial.config)
            tags = {PARENT_TAG: parent, "stage": stage, "arm": arm, "seed": seed, "trial_id": trial.trial_id,
                    "method": cfg.method}
            run_id = self.client.create_run(self.experiment_id, run_name=f"search-{trial.trial_id}-seed{seed}",
                                            tags=tags).info.run_id
            self._log_params(run_id, {**cfg.replace(seed=int(seed)).flat_params(), "stage": stage})
        self._seed_runs[key] = run_id
        return run_id

    def find_seed_run(self, trial, seed: str):
        """The run of ``seed`` of the search trial ``trial``, if it has one (``seed_run_id`` creates it)."""
        query = (f"tags.`{PARENT_TAG}` = '{self.run_id(trial)}' and tags.stage = '{self.stage}-seed' and "
                 f"tags.seed = '{seed}'")
        found = self.client.search_runs([self.experiment_id], filter_string=query, max_results=1)
        return found[0] if found else None

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        batch = [Param(k, param_value(v)) for k, v in params.items()]
        for i in range(0, len(batch), 100):
            self.client.log_batch(run_id, params=batch[i:i + 100])

    def _log_seed_results(self, trial, per_seed: dict[str, dict]) -> None:
        """Each seed's own report into its run (the trial's run holds their mean)."""
        now = int(time.time() * 1000)
        for seed, result in per_seed.items():
            run_id = self.seed_run_id(trial, seed)
            if run_id in self._seed_runs_finished_before:
                continue
            metrics = result_metrics(result, now)
            if metrics:
                self.client.log_batch(run_id, metrics=metrics)

    def _end_seed_runs(self, trial, status: str) -> None:
        for (trial_id, _seed), run_id in self._seed_runs.items():
            if trial_id == trial.trial_id and run_id not in self._seed_runs_finished_before:
                self.client.set_terminated(run_id, status=status)

    # Tune's hooks: each one's writes go, or are dropped as one while the server is down (tracking_outage).
    def on_trial_start(self, iteration, trials, trial, **info):
        outage_of(self.uri).call(self.run_id, trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        outage_of(self.uri).call(self.log_result, trial, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        outage_of(self.uri).call(self.log_end, trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        outage_of(self.uri).call(self.log_error, trial)

    def log_result(self, trial, result: dict) -> None:
        """One report of the trial: its metrics at its step, where it trains, a selection at chance."""
        if self.run_id(trial) and trial.trial_id in self._finished_before:
            return
        node = result.get(TRAIN_NODE)
        if node and self._nodes.get(trial.trial_id) != node:  # where it trains (again, after a retry)
            self.client.set_tag(self.run_id(trial), TRAIN_NODE, node)
            self._nodes[trial.trial_id] = node
        metrics = result_metrics(result, int(time.time() * 1000))
        if metrics:
            self.client.log_batch(self.run_id(trial), metrics=metrics)
        if isinstance(result.get(PER_SEED), dict):
            self._log_seed_results(trial, result[PER_SEED])
        if result.get(AT_CHANCE) == 1.0 or any(seed.get(AT_CHANCE) == 1.0 for seed in
                                               (result.get(PER_SEED) or {}).values()):
            self.client.set_tag(self.run_id(trial), "warning", AT_CHANCE_WARNING)

    def log_end(self, trial) -> None:
        """A trial that finished: its predictions and generalized XNLI matrix (confirm), its cost, FINISHED."""
        run_id = self.run_id(trial)
        if trial.trial_id in self._finished_before:
            return
        if self.stage == "confirm" and self.train_storage_path:  # before FINISHED: a finished run has them
            path = Path(predictions_path(self.train_storage_path, trial.trial_id))
            if path.is_file():
                self.client.log_artifact(run_id, str(path), PREDICTIONS_ARTIFACT_DIR)
            self._log_generalized(run_id, trial)
        self._log_cost(run_id, trial)
        self._end_seed_runs(trial, "FINISHED")
        self.client.set_terminated(run_id, status="FINISHED")

    def _log_cost(self, run_id: str, trial) -> None:
        """The trial's device-hours and token rate (``orchestrator.cost``), a failed trial's too: it held them."""
        seeds = len(self.resolver.search_seeds) if self.stage != "confirm" else 1  # a seed group's runs at once
        cost = trial_cost(trial.last_result or {}, self.share, runs_at_once=seeds) if self.share else {}
        if cost:
            now = int(time.time() * 1000)
            self.client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in cost.items()])

    def _log_generalized(self, run_id: str, trial) -> None:
        """A confirm run's generalized XNLI accuracies (its final report's ``gen_pair_acc_<p>_<h>``) as the
        matrix artifact ``generalized/generalized_xnli.csv``: premise languages down, hypothesis languages across."""
        import pandas as pd

        cfg, _arm, _seed = self.resolver.resolve(trial.config)
        rows = generalized.matrix_rows(trial.last_result or {}, cfg.languages)
        if not rows:
            return
        with tempfile.TemporaryDirectory(prefix="generalized-") as scratch:
            path = Path(scratch) / generalized.MATRIX_FILE
            pd.DataFrame(rows).to_csv(path, index=False)
            self.client.log_artifact(run_id, str(path), generalized.ARTIFACT_DIR)

    def log_error(self, trial) -> None:
        """A trial that failed: its error's last line as a tag, its cost, FAILED."""
        run_id = self.run_id(trial)
        if trial.trial_id in self._finished_before or says_disk_full(error_text(trial)):
            return  # a full disk stops the sweep (orchestrator.disk_full); --resume goes on with this run
        self.client.set_tag(run_id, "error", _error_summary(trial))
        self._log_cost(run_id, trial)
        self._end_seed_runs(trial, "FAILED")
        self.client.set_terminated(run_id, status="FAILED")


def result_metrics(result: dict, timestamp_ms: int) -> list[Metric]:
    """The metrics of one Tune result, at its training step (``step``, else Tune's iteration); also of one seed's
    own report within a search trial's result (``per_seed``)."""
    step = int(result.get("step", result.get("training_iteration", 0)))
    return [Metric(k, float(v), timestamp_ms, step) for k, v in result.items()
            if k not in _NOT_METRICS and not generalized.is_pair_metric(k) and is_number(v)]


def _error_summary(trial) -> str:
    """The last line of the trial's traceback (the exception and its message), as Tune saved it."""
    lines = [line for line in error_text(trial).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "trial failed (no error file)")[:4000]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def param_value(value: Any) -> str:
    return str(value)[:6000]
