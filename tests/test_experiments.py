"""The experiment registry as trials see it: every arm of every experiment resolves to its method,
its own switches and (tuned arms only) the search's best values; ``--arms`` narrows the confirm
stage and its table. No Ray: this is what the e2e sweeps rely on for the arms they do not run."""

from __future__ import annotations

import pytest

from orchestrator import cli
from orchestrator.experiments import EXPERIMENTS, get_experiment
from orchestrator.dry_run import describe_plan
from orchestrator.plan import TrialResolver
from search_spaces import get_space
from trainables.config import TrainConfig
from trainables.methods import get_method
from trainables.tasks import get_task


def _resolver(experiment, best):
    """Every search of the experiment found ``best`` (the main one's and each named one's)."""
    base = TrainConfig(task=experiment.task, languages=get_task(experiment.task).languages).to_dict()
    return TrialResolver(base=base, arms={arm.name: arm for arm in experiment.arms}, best=best,
                         other_best={search.name: best for search in experiment.searches if search.name},
                         searched_arm=experiment.searched_arm.name if experiment.searched_arm else "")


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_arm_runs_its_method_with_its_switches_and_only_tuned_arms_take_the_best(name):
    experiment = get_experiment(name)
    assert experiment.arm(experiment.baseline_arm).tuned is False
    assert experiment.searches  # every experiment searches
    for search in experiment.searches:
        assert "learning_rate" in get_space(search.method).space  # every method searches it
    best = {"learning_rate": 1.234e-5}  # a value no default, profile or paper uses
    resolver = _resolver(experiment, best)
    for arm in experiment.arms:
        cfg = resolver.arm_config(arm.name, seed=7)
        assert cfg.method == arm.method and cfg.seed == 7, arm.name
        for key, value in arm.overrides.items():
            assert cfg.method_params.get(key, getattr(cfg, key, None)) == value, (arm.name, key)
        assert all(get_method(arm.method).accepts(key) for key in cfg.method_params), arm.name
        assert (cfg.learning_rate == 1.234e-5) == arm.tuned, arm.name


def test_arms_narrow_the_confirm_stage_and_keep_the_search():
    experiment = get_experiment("btf_panx", ("btf_self_training_voters", "baseline"))
    # Registry order, whatever order the flag named them in; the search still tunes its arm.
    assert [arm.name for arm in experiment.confirm_arms] == ["baseline", "btf_self_training_voters"]
    assert experiment.searched_arm.name == "btf_self_training" and len(experiment.arms) == 5
    assert [arm.name for arm in get_experiment("btf_panx").confirm_arms] == [arm.name for arm in experiment.arms]
    with pytest.raises(KeyError, match="btf_panx has no arm 'voters'"):
        get_experiment("btf_panx", ("voters",))


def test_dry_run_counts_the_confirmed_arms_only():
    cfg = cli.parse(["xmixup_xnli", "--profile", "smoke", "--seeds", "1,2", "--num-samples", "1",
                     "--arms", "xmixup,baseline"])
    assert cfg.arms == ("xmixup", "baseline") and cfg.to_dict()["arms"] == ["xmixup", "baseline"]
    experiment = get_experiment(cfg.experiment, cfg.arms)
    plan = describe_plan(cfg, experiment, get_task(experiment.task))
    assert "trials       1 search + 4 confirm = 5" in plan
    assert "t-tests vs baseline (--arms: 2 of 11)" in plan
    without_baseline = get_experiment("xmixup_xnli", ("xmixup",))
    assert "; no t-tests" in describe_plan(cfg, without_baseline, get_task("xnli"))


def test_a_tuned_baseline_is_searched_apart_and_confirmed_with_the_chosen_arms():
    from orchestrator.experiments import get_experiment

    experiment = get_experiment("salt_xnli", ("baseline", "salt"), tune_baseline=True)
    assert experiment.searched_arm.name == "salt"  # the method's search still tunes the method
    assert [arm.name for arm in experiment.confirm_arms] == ["baseline", "baseline_tuned", "salt"]
    assert experiment.baseline_arm == "baseline_tuned" and experiment.paper_baseline_arm == "baseline"
    assert experiment.arm("baseline_tuned").search == "baseline" and experiment.tunes_baseline
    assert not get_experiment("salt_xnli").tunes_baseline


# -- training recipes (trainables.recipes) ---------------------------------------------------------------

def test_the_paper_profile_starts_every_arm_from_its_recipe_and_the_smoke_profile_from_none():
    from orchestrator.plan import arm_recipes, recipe_settings
    from orchestrator.profiles import SMOKE
    from trainables.recipes import PAPER_RECIPES, TASK_RECIPES

    salt = get_experiment("salt_xnli")
    recipes = arm_recipes(salt, "paper")
    assert {arm: r.num_train_epochs for arm, r in recipes.items()} == {arm.name: 1.0 for arm in salt.arms}
    assert recipes["baseline"] is PAPER_RECIPES[("salt", "xnli")]  # the baseline follows SALT's scripts too
    xmixup = arm_recipes(get_experiment("xmixup_pawsx"), "paper")
    assert xmixup["baseline"] is TASK_RECIPES["pawsx"] and xmixup["translate_train"] is TASK_RECIPES["pawsx"]
    assert xmixup["xmixup"] is PAPER_RECIPES[("xmixup", "pawsx")]
    cfg = cli.parse(["baseline_panx"])
    experiment = get_experiment("baseline_panx")
    resolver = TrialResolver(base=TrainConfig(task="panx").to_dict(), arms={a.name: a for a in experiment.arms},
                             fixed=cfg.train_overrides, recipes=recipe_settings(experiment, "paper"))
    assert resolver.arm_config("baseline", 1).num_train_epochs == 10.0
    assert resolver.arm_config("baseline", 1).eval_every_steps == 1000
    # The smoke profile: no recipe, every recipe field is the profile's own, in every experiment.
    fields = set(TASK_RECIPES["xnli"].settings()) - {"weight_decay"}
    for name, experiment in EXPERIMENTS.items():
        assert recipe_settings(experiment, "smoke") == {}, name
        smoke = cli.parse([name, "--profile", "smoke"])
        resolver = TrialResolver(base=TrainConfig(task=experiment.task).to_dict(),
                                 arms={a.name: a for a in experiment.arms}, fixed=smoke.train_overrides,
                                 recipes=recipe_settings(experiment, "smoke"))
        for arm in experiment.arms:
            train = resolver.arm_config(arm.name, 1)
            assert {k: getattr(train, k) for k in fields} == {k: SMOKE.train[k] for k in fields}, (name, arm.name)


def test_the_readme_shows_the_recipe_table():
    from pathlib import Path

    from trainables.recipes import markdown_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert markdown_table() in readme, "README.md's recipe table is out of date: paste trainables.recipes.markdown_table()"
