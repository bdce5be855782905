"""Each (configuration, seed) of the confirm stage trains once.

The search starts from the paper setting; when that setting wins, ``baseline_tuned`` resolves to
exactly ``baseline``'s configuration, and training it again on the same seeds would spend one trial
per seed on a result the sweep already has (a run is a function of its configuration and seed). A
confirm pair whose whole resolved configuration (``TrainConfig.flat_params``, the seed included)
equals an earlier pair's is therefore not trained: once its twin has finished, its MLflow run is a
copy of the twin's (params, tags, every metric's history, the predictions and other artifacts),
tagged ``reused_from`` with the twin's run id, so tables, t-tests and the bootstrap read it like any
run. The table's legend names the arms that are identical to another (``identical_arm_notes``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mlflow.entities import Metric, Param

from orchestrator.plan import TrialResolver
from orchestrator.predictions import quiet_downloads
from orchestrator.tracking import SweepTracker

REUSED_FROM = "reused_from"
Pair = tuple[str, int]  # (arm, seed)


def training_identity(resolver: TrialResolver, pair: Pair) -> str:
    """What a confirm trial trains, as one comparable string: its whole resolved configuration."""
    cfg, _arm, _seed = resolver.resolve({"pair": {"arm": pair[0], "seed": pair[1]}})
    return json.dumps(cfg.flat_params(), sort_keys=True, default=str)


def find_twins(resolver: TrialResolver, pairs: list[Pair]) -> dict[Pair, Pair]:
    """Each pair that trains the same as an earlier pair of ``pairs``, mapped to that earlier pair."""
    first: dict[str, Pair] = {}
    twins: dict[Pair, Pair] = {}
    for pair in pairs:
        identity = training_identity(resolver, pair)
        if identity in first:
            twins[pair] = first[identity]
        else:
            first[identity] = pair
    return twins


def identical_arm_notes(resolver: TrialResolver, arms: list[str], seeds: list[int]) -> tuple[str, ...]:
    """A legend line for each arm whose every seed trains the same as another arm's."""
    twins = find_twins(resolver, [(arm, seed) for arm in arms for seed in seeds])
    notes = []
    for arm in arms:
        sources = {twins.get((arm, seed), (None, 0))[0] for seed in seeds}
        if len(sources) == 1 and None not in sources:
            (source,) = sources
            notes.append(f"identical arms: {arm} resolves to the same configuration as {source} (the search kept "
                         f"its setting), so its runs reuse {source}'s and their comparison has no test")
    return tuple(notes)


def record_reused_runs(tracker: SweepTracker, twins: dict[Pair, Pair]) -> list[Pair]:
    """Give each twin pair a copy of its source's finished run; the pairs recorded now.

    A pair that already has a finished run (a resumed sweep) keeps it; a pair whose source has no
    finished run gets none either, and the table reports it as a missing seed like its source.
    """
    finished = tracker.finished_confirm_runs()
    recorded = []
    for pair, source_pair in twins.items():
        source = finished.get(source_pair)
        if pair in finished or source is None:
            continue
        copy_run(tracker, source, arm=pair[0])
        recorded.append(pair)
    return recorded


def copy_run(tracker: SweepTracker, source, *, arm: str) -> str:
    """A finished copy of ``source`` under the sweep's parent run, as arm ``arm``; its run id."""
    client = tracker.client
    seed = source.data.tags["seed"]
    tags = {k: v for k, v in source.data.tags.items() if k != "mlflow.runName"}
    tags.update({"arm": arm, REUSED_FROM: source.info.run_id})
    run_id = client.create_run(tracker.experiment_id, run_name=f"confirm-{arm}-seed{seed}", tags=tags).info.run_id
    params = [Param(k, v) for k, v in source.data.params.items()]
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i:i + 100])
    history = [Metric(m.key, m.value, m.timestamp, m.step) for key in source.data.metrics
               for m in client.get_metric_history(source.info.run_id, key)]
    for i in range(0, len(history), 1000):
        client.log_batch(run_id, metrics=history[i:i + 1000])
    with tempfile.TemporaryDirectory(prefix="reused-run-") as scratch, quiet_downloads():  # no bar per copy
        for item in client.list_artifacts(source.info.run_id):
            local = Path(client.download_artifacts(source.info.run_id, item.path, scratch))
            if item.is_dir:
                client.log_artifacts(run_id, str(local), item.path)
            else:
                client.log_artifact(run_id, str(local))
    client.set_terminated(run_id, status="FINISHED")
    return run_id
