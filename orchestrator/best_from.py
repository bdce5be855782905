"""``--best-from SWEEP_ID``: a finished search of an earlier sweep instead of a search in this one.

A comparison of methods runs one search per method; a method searched already (its own experiment's
sweep, or an earlier comparison) need not be searched again. The earlier sweep is found by its MLflow
parent run (tag ``sweep_id``, any experiment of the store); its searches are its experiment's
(``Experiment.searches``) and each search's best values are the parent's params ``best.*`` (the main
search) or ``best_<name>.*`` (a named search), logged only when the search finished. A search of this
sweep takes them when its method is the one that search tuned.

Refused, in one line before any Ray work (``BestFromError``): a sweep the store does not have, one trained on
another task or model, or on other languages or selected on another dev set, one whose searches tuned none of
this experiment's searched methods, and one whose search of such a method did not finish.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.experiments import EXPERIMENTS, Experiment, get_experiment

BEST_FROM_PARAM = "best_from"
"""The parent run's param naming the sweep a reused search came from (``best_from`` / ``best_from_<name>``)."""


class BestFromError(Exception):
    """``--best-from`` cannot be used. ``str()`` is one line for the user."""


@dataclass(frozen=True)
class ReusedSearch:
    """The best of an earlier sweep's search, for this sweep's search ``search``."""

    search: str  # this experiment's search name ("": the main one)
    sweep_id: str
    best: dict[str, Any]
    value: float | None  # that search's best objective, when it logged one
    run_id: str  # the earlier sweep's parent run


def find_best_from(client, sweep_ids: tuple[str, ...], experiment: Experiment, model: str | None, *,
                   languages: tuple[str, ...] = (), select_on: str = "") -> dict[str, ReusedSearch]:
    """Every search of ``experiment`` that one of ``sweep_ids`` gives its best, by search name. Where the earlier
    sweep logged them, its languages and its selection (``--select-on``) must be this sweep's (``languages``,
    ``select_on``; empty: not checked): a search's best is chosen on them, and SALT's space has one threshold
    per chosen language."""
    wanted = {search.method: search for search in experiment.searches}
    out: dict[str, ReusedSearch] = {}
    for sweep_id in sweep_ids:
        run = _parent_run(client, sweep_id)
        params, flag = run.data.params, f"--best-from {sweep_id}"
        name = params.get("sweep.experiment", "")
        if name not in EXPERIMENTS:
            raise BestFromError(f"{flag}: its experiment {name!r} is not a registered experiment")
        earlier = get_experiment(name, tune_baseline=params.get("sweep.tune_baseline") == "True")
        if earlier.task != experiment.task:
            raise BestFromError(f"{flag}: a {earlier.task} sweep ({name}); {experiment.name} is a {experiment.task} "
                                "experiment")
        if params.get("sweep.model") != str(model):
            raise BestFromError(f"{flag}: it trained model {params.get('sweep.model')}, this sweep trains {model}; "
                                "a search's best is a setting for its model")
        _check_same_protocol(flag, params, languages=languages, select_on=select_on)
        matches = [search for search in earlier.searches if search.method in wanted]
        if not matches:
            raise BestFromError(f"{flag}: its searches tuned {', '.join(s.method for s in earlier.searches)}; "
                                f"{experiment.name} searches {', '.join(wanted)}")
        for search in matches:
            best = _logged_best(params, f"best{search.prefix}.")
            if not best:
                raise BestFromError(f"{flag}: its search of {search.method} (stage {search.stage}) did not finish "
                                    f"(parent run {run.info.run_id} is {run.info.status}); resume it or search here")
            mine = wanted[search.method]
            if mine.name in out:
                raise BestFromError(f"{flag}: {mine.method}'s best comes from --best-from {out[mine.name].sweep_id} "
                                    "already; name one sweep per method")
            value = run.data.metrics.get(f"search{search.prefix}_best_dev_{_metric(experiment)}")
            out[mine.name] = ReusedSearch(mine.name, sweep_id, best, value, run.info.run_id)
    return out


def _check_same_protocol(flag: str, params: dict[str, str], *, languages: tuple[str, ...], select_on: str) -> None:
    earlier = params.get("languages")
    if languages and earlier is not None and earlier != ",".join(languages):
        raise BestFromError(f"{flag}: its searches ran on languages {earlier}, this sweep on {','.join(languages)}; "
                            "pass the same --languages, or search here")
    earlier = params.get("sweep.select_on")
    if select_on and earlier is not None and earlier != select_on:
        raise BestFromError(f"{flag}: its searches selected on {earlier}, this sweep on {select_on}; pass "
                            f"--select-on {earlier}, or search here")


def check_store_exists(tracking_uri: str, sweep_ids: tuple[str, ...]) -> None:
    """A local MLflow store that does not exist holds no sweep: refused before it is opened, since opening a
    SQLite store creates it (a refused command must leave no ``mlflow.db`` behind)."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri[len("sqlite:///"):])
    elif "://" not in tracking_uri:
        path = Path(tracking_uri)
    else:
        return
    if not path.exists():
        raise BestFromError(f"--best-from {sweep_ids[0]}: no sweep {sweep_ids[0]} in the MLflow store {tracking_uri} "
                            "(there is no such store); pass the --tracking-uri that sweep logged to")


def _parent_run(client, sweep_id: str):
    ids = [exp.experiment_id for exp in client.search_experiments()]
    runs = client.search_runs(ids, filter_string=f"tags.sweep_id = '{sweep_id}' and tags.stage = 'sweep'",
                              max_results=2) if ids else []
    if not runs:
        raise BestFromError(f"--best-from {sweep_id}: no sweep {sweep_id} in the MLflow store "
                            f"{client.tracking_uri} (its parent run has tag sweep_id={sweep_id})")
    return runs[0]


def _logged_best(params: dict[str, str], prefix: str) -> dict[str, Any]:
    """The search's best values, typed again (MLflow keeps params as text)."""
    return {key[len(prefix):]: _literal(value) for key, value in params.items() if key.startswith(prefix)}


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _metric(experiment: Experiment) -> str:
    from trainables.tasks import get_task

    return get_task(experiment.task).metric
