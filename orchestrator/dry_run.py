"""``--dry-run``: the resolved plan of a sweep, after every input check that needs no Ray; nothing is started.

The checks (``orchestrator.input_checks``) refuse bad input in one line as the sweep's start would; the plan
names the model and data the sweep runs on, what each preparation step will do (or why it is not needed), each
search's space and whether its first trial is the paper's setting, the arms, seeds, statistics and resources.
"""

from __future__ import annotations

import os

from orchestrator.estimate import estimate_lines, planned_kinds
from orchestrator.experiments import Experiment
from orchestrator.input_checks import dry_run_checks
from orchestrator.plan import TrialResolver, arm_recipes, recipe_settings, selection_line
from orchestrator.preparation import describe_preparation, running_searches
from orchestrator.profiles import PROFILES
from search_spaces.spec import describe
from trainables.config import TrainConfig
from trainables.recipes import TrainingRecipe


def describe_plan(cfg, experiment, task, probe: dict | None = None) -> str:
    """The resolved plan of a sweep, as ``--dry-run`` prints it (nothing is started), after the input checks
    (which raise the sweep's one-line errors); ``probe``: the rates ``--probe`` measured, by device kind."""
    checks = dry_run_checks(cfg, experiment, task)
    profile = PROFILES[cfg.profile]
    resolver = TrialResolver(base=TrainConfig(task=task.name, model=cfg.model or "(smoke model)",
                                              languages=task.languages, select_on=cfg.select_on).to_dict(),
                             arms={arm.name: arm for arm in experiment.arms}, fixed=dict(cfg.train_overrides),
                             search_seeds=cfg.search_training_seeds, recipes=recipe_settings(experiment, cfg.profile))
    preparation, spaces = describe_preparation(cfg, experiment, task)
    # The searches that run: the search stage is on, with trials, over a space (the main one's as the flags gave it).
    running = running_searches(cfg, experiment)
    runs = [search for search in experiment.searches if search.name in running and spaces.get(search.name)]
    searching = any(not search.name for search in runs)
    n_search = cfg.num_samples * len(runs)
    n_confirm = len(experiment.confirm_arms) * len(cfg.seeds) if "confirm" in cfg.stages else 0
    res = cfg.resources
    gpus = ("auto if the cluster has GPUs, else 0" if res.gpus_per_trial is None
            else res.gpus_per_trial if isinstance(res.gpus_per_trial, str) else f"{res.gpus_per_trial:g}")
    where = f"join Ray at {res.address}" if res.address else f"local Ray on this machine ({os.cpu_count()} CPUs)"
    model = model_phrase(cfg, experiment)
    data = cfg.data_dir or ("generated in the task's schema (smoke)" if profile.builds_smoke_assets
                            else f"hub {task.hub_id}")
    first = experiment.arms[0]
    # A searched method with its own paper settings (X-Mixup: lr 5e-6, batch 64, 4 epochs) gets its own line.
    searched = list({search.method: search.arm for search in experiment.searches if search.method != first.method}
                    .items())
    training = [_training_line(resolver.arm_config(first.name, cfg.seeds[0]),
                               f"training     {first.method}:" if searched else "training    ")]
    training += [_training_line(resolver.arm_config(arm, cfg.seeds[0]), f"             {method} (before the search):")
                 for method, arm in searched]
    lines = [
        f"experiment   {experiment.name}: {experiment.description}",
        f"profile      {profile.name}: {profile.description}",
        f"task         {task.name}: {len(task.languages)} languages ({' '.join(task.languages)})"
        + (f", {len(task.target_languages)} of its {len(task.benchmark.target_languages)} targets (--languages: "
           "tables average these only)" if task.is_subset else "") + "; "
        f"train on {task.source_language} only; metric {task.metric}"
        + (f" (also {', '.join(task.extra_metrics)}; tables: {task.reported_metric})" if task.extra_metrics else ""),
        f"model        {model}",
        f"data         {data}",
        *(f"{'checks' if i == 0 else '':<13}{line}" for i, line in enumerate(checks)),
        "stages       " + " -> ".join(
            ([f"search ({cfg.num_samples} trials, Optuna TPE sampler seed {cfg.sampler_seed}, objective dev_{task.metric} "
              f"on {cfg.select_on}{' (mean over the seeds)' if cfg.search_seeds > 1 else ''}, ASHA "
              f"{'on' if cfg.asha else 'off'}, {_seeds_phrase(cfg)}: "
              f"{'not a confirm seed' if cfg.search_seeds == 1 else 'not confirm seeds'})"] if searching else [])
            + [f"{search.stage} ({cfg.num_samples} trials of the {search.method}, its own Optuna study, same "
               + ("sampler and training seeds)" if not searching else "seeds)") for search in runs if search.name]
            + ([f"confirm ({'every arm' if not experiment.confirmed else '--arms'} x every seed)"] if n_confirm else [])),
        f"search space {describe(spaces['']) if searching else '(no search)'}" if experiment.searched_arm else
        "searches     one per searched method, each tuning its arm: "
        + "; ".join(f"{s.stage} tunes {s.arm} ({s.method})" for s in experiment.searches),
        *[f"{search.name} space {describe(spaces[search.name])}" for search in runs if search.name],
        *first_trial_lines(cfg, resolver, runs),
        *best_from_lines(cfg),
        *preparation,
        "arms         " + "; ".join(
            f"{arm.name} [{arm.method}{', tuned' if arm.tuned else ', paper defaults'}"
            + (", " + ", ".join(f"{k}={v}" for k, v in arm.overrides.items()) if arm.overrides else "") + "]"
            for arm in experiment.confirm_arms)
        + (f"; t-tests vs {experiment.baseline_arm}" if any(arm.name == experiment.baseline_arm
                                                          for arm in experiment.confirm_arms) else "; no t-tests")
        + (f" (--arms: {len(experiment.confirm_arms)} of {len(experiment.arms)})" if experiment.confirmed else ""),
        f"seeds        {', '.join(map(str, cfg.seeds))} (confirm); search trains on "
        f"{_seeds_phrase(cfg)}",
        f"search runs  {_search_runs_line(cfg, n_search)}",
        f"selection    {selection_line(cfg, experiment)}",
        f"statistics   {statistics_line(cfg, experiment)}",
        *generalized_lines(cfg, experiment, task, resolver),
        f"trials       {n_search} search + {n_confirm} confirm = {n_search + n_confirm}"
        + (f" ({n_search * cfg.search_seeds + n_confirm} training runs)"
           if cfg.search_seeds > 1 else ""),
        *estimate_lines(cfg, experiment, task, resolver, runs, list(probe) if probe else planned_kinds(cfg), probe),
        f"resources    per trial {res.workers_per_trial} worker(s) x {res.cpus_per_worker:g} CPU, GPUs per trial: "
        f"{gpus}; {where}; concurrent trials = "
        + (str(res.max_concurrent_trials) if res.max_concurrent_trials else "what the cluster fits")
        + f"; a lost worker restarts a trial from its last checkpoint up to {res.max_failures} time(s)",
        *recipe_lines(cfg, experiment),
        *training,
        f"storage      {cfg.storage_path}" + (f" (resume {cfg.resume})" if cfg.resume else ""),
        f"tracking     {cfg.tracking_uri or 'sqlite:///' + os.path.join(os.getcwd(), 'mlflow.db')}",
    ]
    return "\n".join(lines)


def recipe_lines(cfg, experiment: Experiment) -> list[str]:
    """Which reference recipe each arm starts from, and where it comes from (``--dry-run``)."""
    recipes = arm_recipes(experiment, cfg.profile)
    if not recipes:
        return [f"recipe       none: the {cfg.profile} profile's own settings (the paper profile applies the reference "
                "recipes of trainables/recipes.py)"]
    names = [arm.name for arm in experiment.confirm_arms]
    names += [search.arm for search in experiment.searches if search.arm not in names]
    groups: dict[TrainingRecipe, list[str]] = {}
    for name in names:
        if name in recipes:
            groups.setdefault(recipes[name], []).append(name)
    lines = []
    for recipe, arms in groups.items():
        label = "recipe       " if not lines else "             "
        lines += [f"{label}{', '.join(arms)}: {recipe.name}: {recipe.describe()}", f"             from {recipe.source}"]
    overridden = sorted(key for key in next(iter(groups)).settings() if key in cfg.train_overrides)
    if overridden:
        lines.append("             fixed over the recipe (profile or --set): "
                     + ", ".join(f"{key}={cfg.train_overrides[key]}" for key in overridden))
    return lines


def best_from_lines(cfg) -> list[str]:
    """``--best-from``: which earlier sweeps' searches replace this sweep's (checked in MLflow when it starts)."""
    if not cfg.best_from:
        return []
    return [f"best from    sweep(s) {', '.join(cfg.best_from)} (--best-from): each search of a method one of them "
            "searched to the end is not run; its arms take that search's best (task, model and finished search are "
            "checked in MLflow when the sweep starts; the counts here still include those searches)"]


def generalized_lines(cfg, experiment, task, resolver: TrialResolver) -> list[str]:
    """The ``--dry-run`` line of SALT's generalized XNLI evaluation (XNLI experiments only)."""
    from trainables.generalized import TASKS

    if task.name not in TASKS:
        return []
    if not cfg.generalized_xnli:
        return ["generalized  off (--generalized-xnli scores each confirm run's kept weights on the 15 x 15 "
                "premise x hypothesis language pairs, SALT section 4)"]
    n = len(task.languages)
    arms = [arm.name for arm in experiment.confirm_arms
            if resolver.scores_pairs(resolver.arm_config(arm.name, cfg.seeds[0]))]
    skipped = [arm.name for arm in experiment.confirm_arms if arm.name not in arms]
    return [f"generalized  on: after each confirm run's test pass, its kept weights on the {n} x {n} = {n * n} "
            f"(premise language, hypothesis language) pairs of the test sets, paired by row (SALT section 4, "
            f"Tables 4-6); arms {', '.join(arms)}"
            + (f"; not {', '.join(skipped)} (mixup inference reads each example's translation)" if skipped else "")
            + "; --no-generalized-xnli turns it off"]


def _seeds_phrase(cfg) -> str:
    seeds = cfg.search_training_seeds
    return f"training seed {seeds[0]}" if len(seeds) == 1 else f"training seeds {', '.join(map(str, seeds))}"


def _search_runs_line(cfg, n_trials: int) -> str:
    """How many training runs the search costs, and why K is what it is."""
    k = cfg.search_seeds
    if k == 1:
        return (f"{n_trials} x 1 seed (the papers tuned on one run per setting; --search-seeds K scores each trial by "
                f"the mean of K seeds, for K x the cost, when the seed spread is as large as the differences searched)")
    return f"{n_trials} x {k} seeds = {n_trials * k} training runs; each trial reports the mean of its {k} seeds"


def statistics_line(cfg, experiment) -> str:
    """What the tables will test, as ``--dry-run`` shows it and the tables' legend repeats."""
    from orchestrator.significance import CORRECTION_NAMES

    names = [arm.name for arm in experiment.confirm_arms]
    if experiment.baseline_arm not in names:
        return "no t-tests (the baseline arm is not confirmed)"
    if experiment.tunes_baseline:
        baseline = f"vs {experiment.baseline_arm} (tuned: the same search budget as the method)"
    elif experiment.method == "baseline":
        baseline = f"vs {experiment.baseline_arm} (the paper setting, which the search starts from)"
    else:
        baseline = f"vs {experiment.baseline_arm} (untuned paper setting; --tune-baseline gives it the method's budget)"
    correction = CORRECTION_NAMES[cfg.correction]
    bootstrap = f"paired bootstrap over test examples per seed ({cfg.bootstrap} resamples)" if cfg.bootstrap \
        else "paired bootstrap off (--bootstrap N)"
    return (f"paired t-test over seeds {baseline}; {correction} correction over each arm's languages and averages "
            f"(--correction); 95% {cfg.ci_method} intervals of the differences; {bootstrap}")


def _training_line(train: TrainConfig, label: str) -> str:
    return (f"{label} lr {train.learning_rate:g}, batch {train.per_device_batch_size} x accumulation "
            f"{train.grad_accum_steps} x workers, {train.num_train_epochs:g} epoch{'' if train.num_train_epochs == 1 else 's'}, "
            f"max length {train.max_length}, "
            f"warmup {train.warmup_ratio:g}, weight decay {train.weight_decay:g}, eval every {train.eval_every_steps} "
            f"steps, bf16 {'on (where supported)' if train.bf16 else 'off'}")


def model_phrase(cfg, experiment: Experiment) -> str:
    """The model the sweep runs on, and, on the paper profile, whether it is the paper's."""
    profile = PROFILES[cfg.profile]
    if cfg.model is None:
        return "tiny random BERT built offline (smoke)"
    paper = experiment.model or profile.model if cfg.profile == "paper" else None
    if paper is None:
        return f"{cfg.model} (--model)"
    return f"{cfg.model} (the paper's)" if cfg.model == paper else f"{cfg.model} (--model; the paper ran {paper})"


def first_trial_lines(cfg, resolver: TrialResolver, runs) -> list[str]:
    """Per search that runs, its first trial: the paper's setting when every searched dimension holds its value
    (``TrialResolver.paper_point``), else a sampled one, naming the paper values the user's space leaves out."""
    lines = []
    for search in runs:
        space = cfg.space_of(search.name)
        values = resolver.paper_values(search.arm, space)
        outside = [f"{key}={_value(values[key])} not in {space[key]}" if key in values else f"{key} has no paper value"
                   for key in space if key not in values or not space[key].contains(values[key])]
        label = f"{'first trial' if not lines else '':<13}{search.stage}: "
        if outside:
            lines.append(label + f"sampled; the paper setting lies outside the searched space ({', '.join(outside)})")
        else:
            lines.append(label + "the paper setting (" + ", ".join(f"{key}={_value(value)}"
                                                                    for key, value in values.items()) + ")")
    return lines


def _value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
