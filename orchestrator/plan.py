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

    def paper_values(self, arm: str, space: dict[str, Any]) -> dict[str, Any]:
        """What ``arm`` runs each dimension of ``space`` with before any search (the paper's setting, with the
        recipe, the profile and --set over it); a dimension that is not one of its settings is left out."""
        cfg = self.arm_config(arm, self.search_seed)
        values = {**cfg.to_dict(), **get_method(cfg.method).effective_values(cfg.method_params)}
        return {key: values[key] for key in space if key in values}

    def paper_point(self, space: dict[str, Any]) -> list[dict[str, Any]]:
        """The search's first trial, Optuna's ``points_to_evaluate``: the searched arm's paper setting when it lies
        inside ``space`` (every dimension holds its value), else none: a user's ``--space`` that leaves the paper
        value out is searched as given."""
        point = self.paper_values(self.searched_arm, space)
        if len(point) == len(space) and all(space[k].contains(v) for k, v in point.items()):
            return [point]
        return []

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
