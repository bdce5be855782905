"""Work the experiment's methods need once per sweep, before any trial, over their specs.

Each method's spec may name a preparation step (``trainables.method_spec.PrepareStep``, in the
method's package); methods that share one (BTF and self-training: one MLM run) name the same
step, and it runs once. Nothing here knows a method by name. Two phases, so that bad input
fails before Ray starts:

- ``prepare_method`` (no Ray): every step's checks and plan, merged into one ``Preparation``.
  Errors are one line (exit 2).
- ``Preparation.run`` (Ray is up): every step's expensive part, each skipped on a cache hit.

What a trial needs from it (cache paths, languages) reaches every trial's configuration
through ``Preparation.method_params``.
"""

from __future__ import annotations

from typing import Any

from orchestrator.assets import Assets
from orchestrator.config import SweepConfig
from orchestrator.experiments import Experiment
from orchestrator.plan import TrialResolver, recipe_settings
from search_spaces.spec import Dimension
from smoke import build_smoke_wordlists
from trainables.config import ConfigError, TrainConfig
from trainables.methods import SPECS, get_method, get_spec
from trainables.method_spec import Cluster, Preparation, PreparationError, PrepareContext, PrepareStep, StepUse
from trainables.tasks import TaskSpec
from trainables.training.speed import check_model_folder

__all__ = ["Preparation", "PreparationError", "all_steps", "check_method_inputs", "check_model_inputs",
           "describe_preparation", "experiment_steps", "needed_steps", "prepare_method", "unlabelled_languages"]


def _unique(steps) -> list[PrepareStep]:
    out: list[PrepareStep] = []
    for step in steps:
        if step is not None and all(step.key != seen.key for seen in out):
            out.append(step)
    return out


def all_steps() -> list[PrepareStep]:
    """Every registered method's preparation step, once each (registry order)."""
    return _unique(spec.prepare for spec in SPECS)


def experiment_steps(experiment: Experiment) -> list[PrepareStep]:
    """The preparation steps of the experiment's arms, once each (arm order)."""
    return _unique(get_spec(arm.method).prepare for arm in experiment.arms)


def step_context(cfg: SweepConfig, experiment: Experiment, task: TaskSpec, step: PrepareStep, *,
                 space: dict[str, Any] | None = None, assets: Assets | None = None, dry_run: bool = False,
                 model_dir: str | None = None) -> PrepareContext:
    """What ``step`` sees of the sweep; ``space``: the space of the search it shapes (default: as the flags gave
    it), ``assets`` / ``model_dir``: the fetched model (and data), ``dry_run``: nothing may be fetched or written."""
    settings = cfg.method_settings.get(step.key)
    if settings is None and step.settings_type is not None:
        settings = step.settings_type()
    if space is None:
        space = _spaces(cfg, experiment)[step_search(experiment, step)]
    return PrepareContext(
        experiment=experiment.name, task=task, model=cfg.model, generated_data=_generated_data(cfg),
        cache_dir=cfg.cache_dir, select_on=cfg.select_on, fixed=dict(cfg.train_overrides),
        space=dict(space), settings=settings,
        settings_dict=step.settings_dict(settings), workers_per_trial=cfg.resources.workers_per_trial,
        cpus_per_worker=cfg.resources.cpus_per_worker, max_failures=cfg.resources.max_failures,
        model_dir=assets.model_dir if assets else model_dir, data_dir=assets.data_dir if assets else None,
        max_length=assets.max_length if assets else None,
        arm_fixed=tuple(dict(arm.overrides) for arm in experiment.confirm_arms if arm.overrides),
        smoke_wordlists=(lambda: str(build_smoke_wordlists(cfg.cache_dir))) if cfg.model is None else None,
        uses=step_uses(cfg, experiment, step), dry_run=dry_run)


def running_searches(cfg: SweepConfig, experiment: Experiment) -> list[str]:
    """The searches this invocation may run (by name): the search stage is on, with trials, over a space."""
    return [search.name for search in experiment.searches
            if "search" in cfg.stages and cfg.num_samples > 0 and bool(cfg.space_of(search.name))]


def step_uses(cfg: SweepConfig, experiment: Experiment, step: PrepareStep) -> tuple[StepUse, ...]:
    """The arms of this sweep whose method has ``step``: each confirmed arm, and each arm a running search tunes,
    its knobs resolved as the trials resolve them (``TrialResolver``: paper defaults < recipe < profile and --set <
    the arm's switches). A tuned arm whose search runs takes the search's values; one whose search does not run
    keeps its own, or (``--resume``, ``--best-from``) may take a recorded search's."""
    resolver = TrialResolver(base=TrainConfig(task=experiment.task, select_on=cfg.select_on).to_dict(),
                             arms={arm.name: arm for arm in experiment.arms}, fixed=dict(cfg.train_overrides),
                             recipes=recipe_settings(experiment, cfg.profile))
    running = running_searches(cfg, experiment)
    searched = {search.arm for search in experiment.searches if search.name in running}
    confirmed = {arm.name for arm in experiment.confirm_arms} if "confirm" in cfg.stages else set()
    uses = []
    for arm in experiment.arms:
        if getattr(get_spec(arm.method).prepare, "key", None) != step.key or arm.name not in confirmed | searched:
            continue
        train = resolver.arm_config(arm.name, cfg.seeds[0])
        takes_search = arm.name in searched or (arm.tuned and arm.search in running)
        recorded = arm.tuned and bool(cfg.resume or cfg.best_from)
        uses.append(StepUse(arm.name, get_method(arm.method).effective_values(train.method_params),
                            searched=takes_search or recorded, own=not takes_search))
    return tuple(uses)


def needed_steps(cfg: SweepConfig, experiment: Experiment, task: TaskSpec) -> list[PrepareStep]:
    """The experiment's steps whose work this sweep's arms and searches need (``PrepareStep.needed``)."""
    return [step for step in experiment_steps(experiment)
            if step.needed(step_context(cfg, experiment, task, step, dry_run=True))]


def check_method_inputs(cfg: SweepConfig, experiment: Experiment, task: TaskSpec, *, dry_run: bool = False) -> None:
    """Seconds-cheap checks of the methods' own inputs, before the model and data are fetched and tokenised
    (``dry_run``: of what is on this machine, fetching and writing nothing)."""
    for step in needed_steps(cfg, experiment, task):
        step.check(step_context(cfg, experiment, task, step, dry_run=dry_run))


def check_model_inputs(cfg: SweepConfig, experiment: Experiment, task: TaskSpec, model_dir: str) -> None:
    """What the needed steps ask of the model folder (SALT's and BTF's MLM head), and padding-free training of its
    model type where a run may train padding-free (set or searched), before any tokenisation."""
    for step in needed_steps(cfg, experiment, task):
        step.check_model(step_context(cfg, experiment, task, step, model_dir=model_dir, dry_run=True))
    searched = any("padding_free" in space for space in (cfg.space, *cfg.spaces.values()))
    if cfg.train_overrides.get("padding_free") or searched:
        try:
            check_model_folder(model_dir)
        except ConfigError as exc:
            raise PreparationError(str(exc)) from None


def step_search(experiment: Experiment, step: PrepareStep) -> str:
    """The search whose space ``step`` shapes: the first search of a method the step prepares (a comparison runs one
    per method), else the main search (as in a method's own experiment, whose other arms' steps see its space)."""
    return next((search.name for search in experiment.searches
                 if getattr(get_spec(search.method).prepare, "key", None) == step.key), "")


def _spaces(cfg: SweepConfig, experiment: Experiment) -> dict[str, dict[str, Any]]:
    return {"": dict(cfg.space), **{s.name: dict(cfg.space_of(s.name)) for s in experiment.searches if s.name}}


def prepare_method(cfg: SweepConfig, experiment: Experiment, task: TaskSpec, assets: Assets) -> Preparation:
    """Every step's preparation, merged: params and inputs joined, each search's space reshaped by the steps of
    its method in turn (``step_search``)."""
    merged = Preparation()
    spaces, reshaped, summaries, runs = _spaces(cfg, experiment), set(), [], []
    for step in experiment_steps(experiment):
        name = step_search(experiment, step)
        ctx = step_context(cfg, experiment, task, step, space=spaces[name], assets=assets)
        if not step.needed(ctx):
            summaries.append(f"[{step.key}] not run: {step.unneeded}")
            merged.params[f"{step.key}.needed"] = False
            continue
        part = step.prepare(ctx)
        merged.method_params.update(part.method_params)
        merged.train_fields.update(part.train_fields)
        merged.params.update(part.params)
        if part.space is not None:
            spaces[name] = dict(part.space)
            reshaped.add(name)
        summaries.append(part.summary)
        runs.append(part.run)

    def run(tracker, cluster: Cluster) -> None:
        for step_run in runs:
            step_run(tracker, cluster)

    merged.space = spaces[""] if "" in reshaped else None
    merged.spaces = {name: spaces[name] for name in reshaped if name}
    merged.summary = "\n".join(summary for summary in summaries if summary)
    merged.run = run
    return merged


def unlabelled_languages(cfg: SweepConfig, experiment: Experiment, task: TaskSpec) -> tuple[str, ...]:
    """Target languages whose unlabelled text the experiment's methods read (BTF and self-training), else none."""
    languages: list[str] = []
    for step in experiment_steps(experiment):
        languages += [lang for lang in step.unlabelled_languages(step_context(cfg, experiment, task, step))
                      if lang not in languages]
    return tuple(languages)


def describe_preparation(cfg: SweepConfig, experiment: Experiment,
                         task: TaskSpec) -> tuple[list[str], dict[str, dict[str, Dimension]]]:
    """What ``--dry-run`` shows of the preparation (nothing is loaded), and each search's space as it will be
    searched, by search name ("": the main search)."""
    lines: list[str] = []
    spaces = _spaces(cfg, experiment)
    for step in experiment_steps(experiment):
        name = step_search(experiment, step)
        ctx = step_context(cfg, experiment, task, step, space=spaces[name], dry_run=True)
        if not step.needed(ctx):
            lines.append(f"{step.key:<12} not run: {step.unneeded}")
            continue
        step_lines, spaces[name] = step.describe(ctx)
        lines += step_lines
    return lines, spaces


def _generated_data(cfg: SweepConfig) -> bool:
    """Whether the task data is the generated smoke data (then its translations are generated too)."""
    return cfg.data_dir is None and (cfg.profile == "smoke" or cfg.model is None)
