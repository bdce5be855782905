"""The method contract: a new method is its package, its space and an experiment entry, nothing else.

This file is the whole of a toy method, "toy": the baseline with label smoothing, a knob of its own
(``label_smoothing``). Its class, its space and its experiment are defined here and registered at
run time (``register_toy``), without touching any orchestrator or registry file. It is trained
through the shared loop in this process, and (slow) through a one-trial smoke sweep of the real
CLI, which loads the registration from ``XLT_SWEEP_PLUGINS`` (as do its Ray workers).
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from search_spaces.spec import LogUniform, Uniform
from trainables.method_base import Method
from trainables.method_spec import MethodSpec

REPO = Path(__file__).resolve().parents[1]


# -- the toy method: its package would be trainables/methods/toy/, its space search_spaces/toy.py ----

@dataclasses.dataclass(frozen=True)
class ToyParams:
    label_smoothing: float = 0.1  # the one source of the knob's default


class Toy(Method):
    """Fine-tuning with label-smoothed cross-entropy."""

    name = "toy"
    Params = ToyParams

    def training_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["labels"]
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        return F.cross_entropy(logits, labels, label_smoothing=self.params.label_smoothing)


SPACE = {"learning_rate": LogUniform(5e-6, 5e-5), "label_smoothing": Uniform(0.0, 0.2)}


def register_toy() -> None:
    """The registration a plugin module makes: the method's spec and its experiment."""
    from orchestrator.experiments import ZERO_SHOT, Arm, Experiment, register_experiment
    from trainables.methods import register

    register(MethodSpec("toy", Toy, space_module=__name__))
    register_experiment(Experiment(name="toy_xnli", task="xnli", method="toy", description="toy: label smoothing",
                                   arms=(ZERO_SHOT, Arm("toy", "toy", tuned=True, description="label smoothing"))))


@pytest.fixture
def toy():
    from orchestrator.experiments import EXPERIMENTS
    from trainables.methods import unregister

    register_toy()
    yield
    unregister("toy")
    EXPERIMENTS.pop("toy_xnli", None)


def test_a_registered_method_resolves_its_defaults_space_and_flags(toy):
    from orchestrator import cli
    from orchestrator.plan import method_defaults, method_space

    assert method_defaults("toy") == {"label_smoothing": 0.1}  # from its typed Params, nowhere else
    assert set(method_space("toy").space) == {"learning_rate", "label_smoothing"}
    cfg = cli.parse(["toy_xnli", "--profile", "smoke", "--set", "label_smoothing=0.05", "--dry-run"])
    assert cfg.train_overrides["label_smoothing"] == 0.05 and "label_smoothing" not in cfg.space
    with pytest.raises(cli.UsageError, match="--salt-\\* flags apply to SALT experiments, not toy_xnli"):
        cli.parse(["toy_xnli", "--salt-languages", "fr"])


def test_the_toy_method_trains_through_the_loop(toy, smoke_train_config):
    from trainables.loop import train_and_evaluate

    def run(cfg):
        reports: list[dict] = []
        return train_and_evaluate(cfg, report=reports.append), reports

    short = smoke_train_config.replace(max_steps=25, eval_every_steps=25)
    final, reports = run(short.replace(method="toy", method_params={"label_smoothing": 0.2}))
    _, plain = run(short)
    assert math.isfinite(final["test_acc_avg"]) and final["step"] == 25
    assert reports[0]["train_loss"] != pytest.approx(plain[0]["train_loss"])  # the knob reached the loss


@pytest.mark.slow
def test_a_one_trial_smoke_sweep_of_the_toy_method(tmp_path):
    from mlflow.tracking import MlflowClient

    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
           "XLT_SWEEP_PLUGINS": f"{__name__}:register_toy"}
    proc = subprocess.run([sys.executable, "-m", "orchestrator.sweep", "toy_xnli", "--profile", "smoke",
                           "--num-samples", "1", "--seeds", "1", "--bootstrap", "0", "--arms", "toy",
                           "--set", "num_train_epochs=1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("toy_xnli")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    search = [r for r in runs if r.data.tags.get("stage") == "search"]
    confirm = [r for r in runs if r.data.tags.get("stage") == "confirm"]
    assert len(search) == 1 and [r.data.tags["arm"] for r in confirm] == ["toy"]
    assert confirm[0].data.params["method"] == "toy"
    assert math.isfinite(confirm[0].data.metrics["test_acc_avg"])


def test_an_experiment_that_mixes_methods_prepares_each_of_them_once():
    """SALT and X-Mixup arms in one experiment: both preparation steps run (each its flags, its dry-run
    lines); BTF and self-training arms share one step (one MLM run), which is prepared once."""
    from orchestrator import cli
    from orchestrator.experiments import EXPERIMENTS, ZERO_SHOT, Arm, Experiment, register_experiment
    from orchestrator.preparation import describe_preparation, experiment_steps
    from trainables.tasks import get_task

    mixed = register_experiment(Experiment(
        name="mixed_xnli", task="xnli", method="salt", description="SALT and X-Mixup side by side",
        arms=(ZERO_SHOT, Arm("salt", "salt", tuned=True, description="SALT"),
              Arm("xmixup", "xmixup", description="X-Mixup"),
              Arm("btf", "btf", description="BTF"), Arm("self_training", "self_training", description="ST"))))
    try:
        _check_mixed(mixed, cli, describe_preparation, experiment_steps, get_task)
    finally:
        EXPERIMENTS.pop("mixed_xnli")


def _check_mixed(mixed, cli, describe_preparation, experiment_steps, get_task) -> None:
    steps = experiment_steps(mixed)
    assert [step.key for step in steps] == ["salt", "xmixup", "btf"]  # btf and self_training: one step

    cfg = cli.parse(["mixed_xnli", "--profile", "smoke", "--salt-languages", "de,fr", "--xmixup-layers", "1",
                     "--dry-run"])
    assert cfg.method_settings["salt"].languages == ("de", "fr")
    assert cfg.method_settings["xmixup"].layers == (1,)
    lines, _space = describe_preparation(cfg, mixed, get_task("xnli"))
    heads = [line.split()[0] for line in lines if line and not line[0].isspace()]
    assert heads == ["salt", "thresholds", "salt", "translations", "x-mixup", "cka", "btf", "self-train"], lines
