"""How a trial's configuration is put together, in one place.

Precedence, lowest first: the training loop's defaults (``TrainConfig``) < the arm's reference
recipe (``arm_recipes``, paper profile only: its task's, or the recipe of the paper its experiment or
its method follows; ``trainables.recipes``) < the method's paper defaults (``method_defaults``: its
typed ``Params``' defaults of the knobs its space searches) < the profile's and the user's fixed
settings (``--set``) < the arm's own switches (ablations must hold) < the search stage's best values
(tuned arms) < the values a search trial samples < the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dataclasses

from orchestrator.experiments import BASELINE_SEARCH, Arm, Experiment
from orchestrator.profiles import PROFILES
from search_spaces import MethodSpace, load_space
from trainables.config import TrainConfig
from trainables.methods import get_method, get_spec
from trainables.recipes import TrainingRecipe, recipe_for


def method_space(name: str) -> MethodSpace:
    """The search space of method ``name`` (its spec's module: ``search_spaces.<name>``)."""
    return load_space(get_spec(name).space)


def method_defaults(name: str) -> dict:
    """The paper's setting of method ``name``'s knobs, where a search starts: the defaults of its ``Params``
    for the knobs its space searches. The typed ``Params`` are the one source of each knob's default (its
    training settings are its recipe's, ``arm_recipes``)."""
    method = get_method(name)
    params = {f.name: f for f in dataclasses.fields(method.Params)}
    instance = method.Params()
    return {key: getattr(instance, key) for key in method_space(name).space if key in params}


def arm_recipes(experiment: Experiment, profile: str) -> dict[str, TrainingRecipe]:
    """Each arm's reference recipe under ``profile`` (none on a profile without recipes, e.g. smoke).

    An arm follows the paper its experiment names (``Experiment.training_recipe``: SALT's experiments run every
    arm, the baseline included, on SALT's scripts), else the paper its method names (``Method.training_recipe``:
    X-Mixup), else its task's recipe."""
    if not PROFILES[profile].recipes:
        return {}
    out = {}
    for arm in experiment.arms:
        recipe = recipe_for(experiment.task, experiment.training_recipe or get_method(arm.method).training_recipe)
        if recipe is not None:
            out[arm.name] = recipe
    return out


def recipe_settings(experiment: Experiment, profile: str) -> dict[str, dict[str, Any]]:
    """``arm_recipes`` as the resolver carries them: arm -> ``TrainConfig`` settings."""
    return {arm: recipe.settings() for arm, recipe in arm_recipes(experiment, profile).items()}


@dataclass
class TrialResolver:
    """Turns what Tune samples for a trial into the trial's whole ``TrainConfig``.

    Picklable: Tune ships it to every trial driver, and the MLflow callback uses the same
    object to log each trial's whole configuration.
    """

    base: dict[str, Any]  # TrainConfig.to_dict() with task, model, data and selection filled in
    arms: dict[str, Arm]
    fixed: dict[str, Any] = field(default_factory=dict)  # profile + --set
    best: dict[str, Any] = field(default_factory=dict)  # the search stage's best values
    searched_arm: str = ""
    search_seeds: tuple[int, ...] = (1,)  # the training seeds of every search trial (never confirm seeds)
    # The best values of other searches, by name (``Arm.search``): the baseline's of --tune-baseline.
    other_best: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Each arm's reference recipe (``recipe_settings``: TrainConfig settings); empty on the smoke profile.
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The tokenised generalized XNLI test set (--generalized-xnli), which confirm trials of arms that can score
    # cross-language pairs (``scores_pairs``) evaluate after their test pass; "": none.
    generalized_path: str = ""

    def arm_config(self, arm_name: str, seed: int, sampled: dict[str, Any] | None = None) -> TrainConfig:
        arm = self.arms[arm_name]
        cfg = TrainConfig.from_dict(self.base).replace(method=arm.method).replace(**self.recipes.get(arm_name, {}))
        cfg = cfg.replace(**method_defaults(arm.method)).replace(**self.fixed).replace(**arm.overrides)
        if arm.tuned:
            cfg = cfg.replace(**(self.other_best.get(arm.search, {}) if arm.search else self.best))
        if sampled:
            cfg = cfg.replace(**sampled)
        # Knobs and inputs of other arms' methods (e.g. SALT's thresholds in the baseline arm) do not apply;
        # the method's own inputs (filled in by the sweep's preparation) stay.
        method = get_method(arm.method)
        inputs = method.input_names()
        cfg.method_params = {k: v for k, v in cfg.method_params.items() if method.accepts(k) or k in inputs}
        return cfg.replace(seed=seed)

    def resolve(self, trial_config: dict[str, Any]) -> tuple[TrainConfig, str, int]:
        """``(config, arm, seed)`` of a trial: confirm trials name arm and seed, search trials sample knobs."""
        if "pair" in trial_config:  # a confirm trial: {"pair": {"arm": ..., "seed": ...}}
            arm, seed = trial_config["pair"]["arm"], int(trial_config["pair"]["seed"])
            cfg = self.arm_config(arm, seed)
            if self.generalized_path and self.scores_pairs(cfg):
                cfg = cfg.replace(generalized_path=self.generalized_path)
            return cfg, arm, seed
        seed = self.search_seed
        return self.arm_config(self.searched_arm, seed, trial_config), self.searched_arm, seed

    @staticmethod
    def scores_pairs(cfg: TrainConfig) -> bool:
        """Whether the run's method predicts from a test example's inputs alone, so that it can score the
        generalized XNLI pairs (not X-Mixup with mixup inference: that reads each example's translation)."""
        method = get_method(cfg.method)
        return method.scores_inputs_alone(method.parse_params(cfg.method_params))

    @property
    def objective(self) -> str:
        """The selection score every trial reports and the search maximises (``dev_acc``, ``dev_f1``)."""
        from trainables.tasks import get_task

        return f"dev_{get_task(self.base['task']).metric}"

    @property
    def search_seed(self) -> int:
        """The first search seed: a search trial's configuration as logged (its other seeds differ only there)."""
        return self.search_seeds[0]


def describe_plan(cfg, experiment, task) -> str:
    """The resolved plan of a sweep, as ``--dry-run`` prints it (nothing is started)."""
    import os

    from orchestrator.preparation import describe_preparation
    from search_spaces.spec import describe

    profile = PROFILES[cfg.profile]
    resolver = TrialResolver(base=TrainConfig(task=task.name, model=cfg.model or "(smoke model)",
                                              languages=task.languages, select_on=cfg.select_on).to_dict(),
                             arms={arm.name: arm for arm in experiment.arms}, fixed=dict(cfg.train_overrides),
                             search_seeds=cfg.search_training_seeds, recipes=recipe_settings(experiment, cfg.profile))
    preparation, spaces = describe_preparation(cfg, experiment, task)
    # The searches that run: the search stage is on, with trials, over a space (the main one's as the flags gave it).
    runs = [search for search in experiment.searches if "search" in cfg.stages and cfg.num_samples > 0
            and bool(cfg.space_of(search.name)) and spaces.get(search.name)]
    searching = any(not search.name for search in runs)
    n_search = cfg.num_samples * len(runs)
    n_confirm = len(experiment.confirm_arms) * len(cfg.seeds) if "confirm" in cfg.stages else 0
    res = cfg.resources
    gpus = "1 if the cluster has GPUs, else 0" if res.gpus_per_trial is None else f"{res.gpus_per_trial:g}"
    where = f"join Ray at {res.address}" if res.address else f"local Ray on this machine ({os.cpu_count()} CPUs)"
    model = cfg.model or "tiny BERT built offline (smoke)"
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


def selection_line(cfg, experiment) -> str:
    """Which checkpoint every run keeps (and the search maximises), and whether that is the paper's protocol."""
    what = ("English dev (strict zero-shot)" if cfg.select_on == "en-dev"
            else "dev score averaged over all languages' dev sets")
    origin = ("the experiment's paper protocol" if cfg.select_on == experiment.select_on
              else f"--select-on; the experiment's paper protocol is {experiment.select_on}")
    return f"every run keeps its checkpoint with the best {what} ({cfg.select_on}: {origin})"


def legend_notes(cfg, experiment, *, searched: bool) -> tuple[str, ...]:
    """The protocol lines every table's legend carries: how the tuned arms were found, and whether
    the baseline they are tested against had the same chance. ``searched``: a search stage ran."""
    tuned = [arm.name for arm in experiment.confirm_arms if arm.tuned and arm.search != BASELINE_SEARCH]
    if searched:
        seeds = cfg.search_training_seeds
        trained = (f"each trained on seed {seeds[0]}, which is not a confirm seed" if len(seeds) == 1 else
                   f"each scored by the mean of seeds {', '.join(map(str, seeds))}, which are not confirm seeds")
        per_method = "" if experiment.searched_arm else " per searched method (one search each)"
        search = (f"search: {cfg.num_samples} Optuna TPE trials{per_method} (sampler seed {cfg.sampler_seed}) selected on "
                  f"{cfg.select_on}, {trained}")
    else:
        search = "no search stage ran in this sweep: tuned arms used the recorded best configuration, else the paper's"
    if experiment.tunes_baseline:
        baseline = (f"baseline: {experiment.baseline_arm} is tuned with the same search budget as the method; the "
                    "marks test against it" + (f" ({experiment.paper_baseline_arm} is the untuned paper setting)"
                                               if experiment.paper_baseline_arm else ""))
    elif tuned and experiment.method == "baseline":
        baseline = (f"baseline: {experiment.baseline_arm} is the paper setting; {', '.join(tuned)} is the best "
                    "setting of the search, which starts from it")
    elif tuned:
        baseline = (f"baseline: {experiment.baseline_arm} is untuned (paper setting) while {', '.join(tuned)} "
                    "took the search's best: the comparison favours the tuned arms (--tune-baseline evens it)")
    else:
        baseline = f"baseline: {experiment.baseline_arm} (paper setting); no arm was tuned"
    return (search, baseline, f"model selection: {selection_line(cfg, experiment)}")


def _training_line(train: TrainConfig, label: str) -> str:
    return (f"{label} lr {train.learning_rate:g}, batch {train.per_device_batch_size} x accumulation "
            f"{train.grad_accum_steps} x workers, {train.num_train_epochs:g} epoch{'' if train.num_train_epochs == 1 else 's'}, "
            f"max length {train.max_length}, "
            f"warmup {train.warmup_ratio:g}, weight decay {train.weight_decay:g}, eval every {train.eval_every_steps} "
            f"steps, bf16 {'on (where supported)' if train.bf16 else 'off'}")
