"""A sweep-level preparation step's protocol: ``PrepareStep``, its ``PrepareContext`` and its ``Preparation``.

A step (a method package's, or a shared one such as ``trainables.task_fitting.prepare``) gets a
``PrepareContext`` the orchestrator builds and returns a ``Preparation``; it never imports the
orchestrator. Its own module, outside ``trainables.methods``, so that a shared step does not
import the method registry (whose packages import the step). ``trainables.method_spec``
re-exports these names.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from trainables.tasks import TaskSpec, parse_languages


class PreparationError(Exception):
    """A method cannot be prepared with this input. ``str()`` is one line for the user."""


@dataclass(frozen=True)
class DeviceShare:
    """How much of a GPU each actor of a step's Ray Data job asks for (0: CPU actors), and why."""

    gpus_per_actor: float
    reason: str


@dataclass(frozen=True)
class Cluster:
    """The running cluster as a step's Ray work (``Preparation.run``) sees it: its resources, and ``share``, which
    says how many of a workload's actors share one GPU (the orchestrator's choice from measured figures,
    ``orchestrator.sharing.actor_share``; a step with its own setting takes that instead)."""

    resources: Mapping[str, float]
    share: Callable[[str], DeviceShare] = lambda workload: DeviceShare(1.0, "1 actor per GPU")

    @property
    def gpus(self) -> float:
        return float(self.resources.get("GPU", 0))

    @property
    def cpus(self) -> float:
        return float(self.resources.get("CPU", 1))


@dataclass
class Preparation:
    """What one preparation step hands to the rest of the sweep (the orchestrator merges every step's)."""

    method_params: dict[str, Any] = field(default_factory=dict)  # sweep-filled inputs, into every trial's config
    train_fields: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields of every trial (e.g. cka_path)
    space: dict[str, Any] | None = None  # the search space, when the step reshapes it
    # The orchestrator's merge only: the named searches' spaces the steps reshaped, by search name.
    spaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # logged on the parent run
    summary: str = ""  # printed before the stages start
    run: Callable[[Any, Cluster], None] = lambda tracker, cluster: None  # Ray work; tags the parent run


@dataclass(frozen=True)
class StepUse:
    """One arm of this sweep whose method has the step, as a trial of it may run (built by the orchestrator).

    ``knobs``: every knob of its method as resolved before any search (paper defaults, profile, --set, the arm's
    own switches; ``Method.effective_values``). ``searched``: it takes (or may take) the values of a search over
    ``PrepareContext.space`` (the searched arm, a tuned arm); ``own``: it may run with ``knobs`` as they are (an
    untuned arm, or a tuned arm whose search does not run in this sweep)."""

    arm: str
    knobs: Mapping[str, Any]
    searched: bool = False
    own: bool = True


@dataclass(frozen=True)
class PrepareContext:
    """What a preparation step may read of the sweep (built by the orchestrator).

    ``model_dir``, ``data_dir`` and ``max_length`` are the fetched assets: ``None`` in the
    checks before the assets exist and in ``--dry-run``'s description.
    """

    experiment: str
    task: TaskSpec
    model: str | None  # the model named (None: the smoke model built offline)
    generated_data: bool  # the task data is the generated smoke data (then its translations are too)
    cache_dir: Path
    select_on: str
    fixed: Mapping[str, Any]  # profile + --set: the fixed training settings and knobs
    space: Mapping[str, Any]  # the search space as far as it is resolved
    settings: Any  # this step's sweep-level settings (``PrepareStep.settings_type``), or None
    settings_dict: Mapping[str, Any] = field(default_factory=dict)  # the same, as logged (sweep.<key>.*)
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    max_failures: int = 3
    model_dir: str | None = None
    data_dir: str | None = None
    max_length: int | None = None
    # The confirmed arms' own fixed knobs (``Arm.overrides``), e.g. X-Mixup's seen-languages arm's train_languages.
    arm_fixed: tuple[Mapping[str, Any], ...] = ()
    # The smoke model's generated word lists (SALT), built on first call; None for a named model.
    smoke_wordlists: Callable[[], str] | None = None
    # The arms of this sweep (confirmed, or tuned by a search that runs) whose method has this step.
    uses: tuple[StepUse, ...] = ()
    # --dry-run: check only what is on this machine; fetch, build and write nothing.
    dry_run: bool = False

    def knob_values(self, knob: str, use: StepUse) -> tuple[Any, ...]:
        """What ``use``'s trials may run ``knob`` with: the searched dimension (a ``Dimension``) where it takes a
        search's values and the space searches ``knob``, and its own resolved value where it may run with that."""
        dimension = self.space.get(knob) if use.searched else None
        values = (dimension,) if dimension is not None else ()
        return values + ((use.knobs.get(knob),) if use.own or dimension is None else ())

    def target_languages(self) -> tuple[str, ...]:
        """The target languages a method trains on: ``train_languages`` when fixed (profile or --set), else
        every target (X-Mixup: the translate-train languages; BTF / self-training: the unlabelled text); with
        those an arm fixes for itself (``arm_fixed``), in the task's order. Every one must be among the sweep's
        targets (``check_chosen``: a sweep on ``--languages`` uses no other)."""
        languages = parse_languages(self.fixed.get("train_languages")) or self.task.target_languages
        for fixed in self.arm_fixed:
            own = parse_languages(fixed.get("train_languages"))
            if own:
                wanted = set(languages) | set(own)
                languages = tuple(lang for lang in self.task.target_languages if lang in wanted) + tuple(
                    sorted(wanted - set(self.task.target_languages)))
        self.check_chosen(languages, "train_languages")
        return tuple(languages)

    def check_chosen(self, languages: Sequence[str], what: str) -> None:
        """Refuse (one line) a method setting ``what`` that names languages outside the sweep's target languages:
        on ``--languages`` (``TaskSpec.is_subset``) a method trains on, code-switches into or reads only those."""
        outside = sorted(set(languages) - set(self.task.target_languages), key=list(languages).index)
        if not outside:
            return
        if self.task.is_subset:
            arms = [fixed for fixed in self.arm_fixed if set(outside) & set(parse_languages(fixed.get(what)))]
            raise PreparationError(
                f"{what} {', '.join(outside)}: outside --languages {','.join(self.task.languages)}; add "
                f"{'it' if len(outside) == 1 else 'them'} to --languages, or name only "
                f"{', '.join(self.task.target_languages)}" + (" (an arm fixes them: leave it out with --arms)" if arms
                                                               else ""))
        raise PreparationError(f"{what} {', '.join(outside)}: not target languages of {self.task.name} "
                               f"({', '.join(self.task.target_languages)})")


class PrepareStep:
    """A method's work once per sweep, before any trial, and its sweep-level settings and flags.

    Methods that share one preparation (BTF and self-training: one MLM run) name the same step
    object; the sweep runs each step once, whichever arms use it. Override what applies:

    - ``settings_type`` (a dataclass), ``add_arguments`` / ``settings_from_args``: the flag group
      and the settings it resolves to (``SweepConfig.method_settings[key]``);
    - ``fixed_from_args``: knobs the flags fix (they join ``--set``), ``shape_space``: the space
      the flags change;
    - ``needed``: whether the sweep's arms and searches (``PrepareContext.uses``, with --set)
      need the step's work at all; an unneeded step is not checked, described or prepared (its
      ``unneeded`` line says why), only its ``unlabelled_languages`` are still fetched;
    - ``check`` (seconds, before model and data are fetched; also in ``--dry-run``, where
      ``ctx.dry_run`` says to fetch, build and write nothing), ``check_model`` (the fetched model,
      before any tokenisation; also in ``--dry-run`` when the model is on this machine),
      ``unlabelled_languages`` (target text the assets must fetch), ``describe`` (``--dry-run``,
      nothing loaded), ``prepare`` (no Ray: checks and plans; its ``Preparation.run`` is the Ray part).
    """

    key: str = ""  # the name of the step, its settings and its logged params (sweep.<key>.*)
    label: str = ""  # the methods' name in messages, e.g. "SALT"
    flag_prefix: str = ""  # e.g. "--salt-": flags of other experiments' steps are refused
    settings_type: type | None = None
    resume_may_differ: tuple[str, ...] = ()  # settings that only spread the work: a resumed sweep may change them
    unneeded: str = "no arm of this sweep uses it"  # why an unneeded step (``needed``) is skipped, for the user

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the step's flag group."""

    def settings_from_args(self, args: argparse.Namespace, profile_values: Mapping[str, Any]) -> Any:
        """The step's settings from the flags (and the profile's values for them). Raise ``ValueError``
        with one line on bad input."""
        return self.settings_type(**profile_values) if self.settings_type else None

    def fixed_from_args(self, args: argparse.Namespace) -> dict[str, Any]:
        return {}

    def shape_space(self, settings: Any, space: dict[str, Any]) -> dict[str, Any]:
        return space

    def settings_dict(self, settings: Any) -> dict[str, Any]:
        """The settings as logged and saved (JSON types)."""
        if settings is None:
            return {}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items()}

    def needed(self, ctx: PrepareContext) -> bool:
        return True

    def check(self, ctx: PrepareContext) -> None:
        pass

    def check_model(self, ctx: PrepareContext) -> None:
        """Checks of the model folder ``ctx.model_dir`` (e.g. an MLM head), before any tokenisation."""

    def unlabelled_languages(self, ctx: PrepareContext) -> tuple[str, ...]:
        return ()

    def describe(self, ctx: PrepareContext) -> tuple[list[str], dict[str, Any]]:
        return [], dict(ctx.space)

    def prepare(self, ctx: PrepareContext) -> Preparation:
        return Preparation()
