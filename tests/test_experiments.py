"""The experiment registry as trials see it: every arm of every experiment resolves to its method,
its own switches and (tuned arms only) the search's best values; ``--arms`` narrows the confirm
stage and its table. No Ray: this is what the e2e sweeps rely on for the arms they do not run."""

from __future__ import annotations

import pytest

from orchestrator import cli
from orchestrator.experiments import EXPERIMENTS, get_experiment
from orchestrator.plan import TrialResolver, describe_plan
from search_spaces import get_space
from trainables.config import TrainConfig
from trainables.methods import get_method
from trainables.tasks import get_task


def _resolver(experiment, best):
    base = TrainConfig(task=experiment.task, languages=get_task(experiment.task).languages).to_dict()
    return TrialResolver(base=base, arms={arm.name: arm for arm in experiment.arms}, best=best,
                         searched_arm=experiment.searched_arm.name)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_arm_runs_its_method_with_its_switches_and_only_tuned_arms_take_the_best(name):
    experiment = get_experiment(name)
    assert experiment.arm(experiment.baseline_arm).tuned is False
    assert "learning_rate" in get_space(experiment.searched_arm.method).space  # every method searches it
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
    assert "t-tests vs baseline (--arms: 2 of 7)" in plan
    without_baseline = get_experiment("xmixup_xnli", ("xmixup",))
    assert "; no t-tests" in describe_plan(cfg, without_baseline, get_task("xnli"))
