"""The input checks ``--dry-run`` runs: every one that needs no Ray, on what is on this machine.

A sweep's start runs the same checks in the same order before any tokenisation (``orchestrator.sweep``):
the methods' own inputs (``check_method_inputs``: X-Mixup's translations, SALT's word lists, BTF's step
counts), the data's layout and files (every language's parts, the unlabelled text the methods read), and
what the needed steps ask of the model (``check_model_inputs``: the MLM head SALT and BTF need). The dry
run fetches, builds and writes nothing, so what only a download would show (a hub model or data set not
in the local cache) and the generated smoke assets are named as checked when the sweep starts.
"""

from __future__ import annotations

from orchestrator.config import SweepConfig
from orchestrator.experiments import Experiment
from orchestrator.preparation import (PrepareStep, check_method_inputs, check_model_inputs, needed_steps,
                                      unlabelled_languages)
from trainables.data import check_data_available
from trainables.models import local_model
from trainables.tasks import TaskSpec


def dry_run_checks(cfg: SweepConfig, experiment: Experiment, task: TaskSpec) -> list[str]:
    """Run the checks; return what they found, as the plan's ``checks`` lines. Raises the sweep's one-line
    errors (``PreparationError``, ``ModelUnavailable``, ``DataUnavailable``) on bad input."""
    check_method_inputs(cfg, experiment, task, dry_run=True)
    unlabelled = unlabelled_languages(cfg, experiment, task)
    return [_check_model(cfg, experiment, task), _check_data(cfg, task, unlabelled)]


def _check_model(cfg: SweepConfig, experiment: Experiment, task: TaskSpec) -> str:
    if cfg.model is None:
        return "model: the smoke model is built when the sweep starts (a BERT with its MLM head)"
    model_dir = local_model(cfg.model)
    if model_dir is None:
        return f"model {cfg.model}: not on this machine; fetched and checked when the sweep starts"
    check_model_inputs(cfg, experiment, task, model_dir)
    asking = [step.label for step in needed_steps(cfg, experiment, task)
              if type(step).check_model is not PrepareStep.check_model]
    return f"model {cfg.model}: found ({model_dir})" + (f"; what {', '.join(asking)} need of it: present"
                                                         if asking else "")


def _check_data(cfg: SweepConfig, task: TaskSpec, unlabelled: tuple[str, ...]) -> str:
    if cfg.data_dir is None:
        if cfg.profile == "smoke" or cfg.model is None:
            return "data: generated in the task's schema when the sweep starts"
        return f"data: hub {task.hub_id}, fetched and checked when the sweep starts"
    check_data_available(task, cfg.data_dir, unlabelled_languages=unlabelled)
    text = f", unlabelled text of {len(unlabelled)} target languages" if unlabelled else ""
    return (f"data {cfg.data_dir}: every file of the train, validation and test parts of {len(task.languages)} "
            f"languages found{text}")
