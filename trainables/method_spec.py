"""What a method brings to a sweep, as one small object: ``MethodSpec``.

A method is one package under ``trainables/methods/<name>/`` (its ``Method`` class, and where it
has them: a sweep-level preparation step, a multi-phase trial recipe) plus its search space in
``search_spaces/<name>.py``. The package's ``SPEC`` is registered once, in
``trainables.methods.SPECS`` (or at run time with ``trainables.methods.register``). The
orchestrator iterates over the specs of an experiment's arms; it knows no method by name.

Everything here is trainables-level: a preparation step gets a ``PrepareContext`` the
orchestrator builds, and returns a ``Preparation``; it never imports the orchestrator. The step's
protocol lives in ``trainables.preparation`` (re-exported here), outside the method packages, so
that a step shared by several methods (``trainables.task_fitting.prepare``) imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from trainables.method_base import Method
from trainables.preparation import (Cluster, DeviceShare, Preparation, PreparationError, PrepareContext,  # noqa: F401
                                   PrepareStep, StepUse)


@dataclass(frozen=True)
class PhaseResult:
    """What one Ray Train run of a recipe returns."""

    metrics: dict
    model_dir: str | None  # the kept model (``keep_model``), else None


@dataclass
class RecipeTools:
    """What a multi-phase trial recipe gets from the trial driver."""

    fit: Callable[[Any, str], PhaseResult]  # (TrainConfig, phase name) -> one Ray Train run's outcome
    report: Callable[[dict], None]  # a metrics dict for Tune (or the seed group)
    work_dir: Path  # the trial's own folder on the sweep storage
    gpus_per_actor: float = 0.0  # what a trial's Ray Data actors may use (the trial's training GPUs)


@dataclass(frozen=True)
class MethodSpec:
    """One method, as the sweep sees it."""

    name: str
    method: type[Method]
    prepare: PrepareStep | None = None  # shared by methods that need the same preparation
    recipe: Callable[[Any, RecipeTools], dict] | None = None  # a trial of several phases; None: one run
    space_module: str = ""  # the search space's module; "": search_spaces.<name>

    @property
    def space(self) -> str:
        return self.space_module or f"search_spaces.{self.name}"
