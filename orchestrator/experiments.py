"""The experiment registry: which task, which method is searched, and which arms are compared.

An experiment is what a researcher names on the command line (``baseline_xnli``). Its arms
are the rows of the results table; every arm runs in the confirm stage on the same seeds, and
every arm is t-tested against ``baseline_arm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Arm:
    """One row of the results table.

    ``tuned`` arms take the search stage's best configuration; the others run with the
    method's paper defaults. ``overrides`` fix settings on top (e.g. an ablation switch).
    """

    name: str
    method: str
    tuned: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Experiment:
    name: str
    task: str
    method: str  # the method whose knobs the search stage explores
    arms: tuple[Arm, ...]
    description: str
    baseline_arm: str = "baseline"
    model: str | None = None  # the paper's model, when it differs from the profile's default
    searched: str = ""  # the arm the search stage tunes; empty: the first tuned arm
    confirmed: tuple[str, ...] = ()  # the arms the confirm stage runs and reports; empty: every arm

    @property
    def confirm_arms(self) -> tuple[Arm, ...]:
        """The rows of this sweep's table: ``confirmed`` (``--arms``), else every arm, in registry order."""
        return tuple(arm for arm in self.arms if not self.confirmed or arm.name in self.confirmed)

    def with_confirm_arms(self, names: tuple[str, ...]) -> "Experiment":
        """This experiment confirming only ``names`` (the search still tunes its searched arm).

        Raises ``KeyError`` with one line when a name is not one of its arms.
        """
        known = [arm.name for arm in self.arms]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise KeyError(f"{self.name} has no arm {', '.join(map(repr, unknown))}; its arms: {', '.join(known)}")
        return replace(self, confirmed=tuple(names))

    @property
    def searched_arm(self) -> Arm:
        """The arm whose configuration the search stage tunes (``searched``, else the first tuned arm)."""
        return next(arm for arm in self.arms if arm.name == self.searched or (not self.searched and arm.tuned))

    def uses(self, method: str) -> bool:
        """Whether any arm runs ``method`` (e.g. a SALT experiment needs the candidate scan)."""
        return any(arm.method == method for arm in self.arms)

    def arm(self, name: str) -> Arm:
        return next(arm for arm in self.arms if arm.name == name)


# The row every method's experiment is t-tested against.
ZERO_SHOT = Arm("baseline", "baseline", description="zero-shot fine-tuning, xtreme reference settings")


def _baseline(task: str, label: str) -> Experiment:
    return Experiment(
        name=f"baseline_{task}",
        task=task,
        method="baseline",
        description=f"zero-shot fine-tuning on {label}: paper defaults vs the searched learning rate and warmup",
        arms=(
            Arm("baseline", "baseline", description="xtreme reference settings (lr 2e-5, no warmup)"),
            Arm("baseline_tuned", "baseline", tuned=True, description="best configuration of the search stage"),
        ),
    )


def _salt(task: str, label: str) -> Experiment:
    """SALT against the baseline, with the paper's Table 3 ablations, all on the searched thresholds."""
    return Experiment(
        name=f"salt_{task}",
        task=task,
        method="salt",
        description=f"SALT on {label}: per-language code-switching thresholds searched; Table 3 ablations",
        model="bert-base-multilingual-uncased",  # SALT's Appendix A: "the uncased base version of mBERT"
        arms=(
            ZERO_SHOT,
            Arm("salt", "salt", tuned=True, description="code-switching (en synonyms + targets) and embedding mixup"),
            Arm("salt_en_only", "salt", tuned=True, overrides={"en_only": True},
                description="Table 3 en-only: English synonyms only"),
            Arm("salt_no_mixup", "salt", tuned=True, overrides={"mixup": False},
                description="Table 3 w/o mixup: code-switched copies, no embedding mixup"),
        ),
    )


def _xmixup(task: str, label: str) -> Experiment:
    """X-Mixup against zero-shot and translate-train, with the paper's Table 5 ablations on the searched knobs."""
    return Experiment(
        name=f"xmixup_{task}",
        task=task,
        method="xmixup",
        description=f"X-Mixup on {label}: λ0, mixup layer, α, pk and lr searched; translate-train and Table 5 ablations",
        arms=(
            ZERO_SHOT,
            Arm("translate_train", "translate_train",
                description="English + its translations into the target languages, xtreme settings"),
            Arm("xmixup", "xmixup", tuned=True, description="cross-lingual manifold mixup"),
            Arm("xmixup_no_mixup_inference", "xmixup", tuned=True, overrides={"mixup_inference": False},
                description="Table 5 w/o mixup inference: predict from the target alone"),
            Arm("xmixup_no_sched_sampling", "xmixup", tuned=True, overrides={"scheduled_sampling": False},
                description="Table 5 w/o scheduled sampling: always the real English source"),
            Arm("xmixup_no_consistency", "xmixup", tuned=True, overrides={"consistency": False},
                description="Table 5 w/o consistency loss: no MSE / KL terms"),
            Arm("xmixup_const_ratio", "xmixup", tuned=True, overrides={"ratio": "constant"},
                description="Table 5 λ = λ0: no translation-quality term"),
        ),
    )


def _btf(task: str, label: str) -> Experiment:
    """BTF + self-training against the baseline: each part alone, both, and both with voters."""
    return Experiment(
        name=f"btf_{task}",
        task=task,
        method="self_training",
        searched="btf_self_training",
        description=f"BTF + self-training on {label}: MLM steps, threshold rule, soft/hard weight, rounds and lr "
                    "searched; each part alone and with voters",
        arms=(
            ZERO_SHOT,
            Arm("btf", "btf", tuned=True, description="fine-tuning from the task-fitted (MLM) encoder"),
            Arm("self_training", "self_training", tuned=True, overrides={"btf": False},
                description="self-training from the pre-trained encoder: soft (MSE) + confident hard (CE) labels"),
            Arm("btf_self_training", "self_training", tuned=True, description="BTF, then self-training"),
            Arm("btf_self_training_voters", "self_training", tuned=True, overrides={"voting": True},
                description="BTF, then self-training on labels the voters (other seeds) agree on"),
        ),
    )


EXPERIMENTS: dict[str, Experiment] = {
    exp.name: exp for exp in (_baseline("xnli", "XNLI"), _baseline("pawsx", "PAWS-X"), _salt("xnli", "XNLI"),
                              _salt("pawsx", "PAWS-X"), _xmixup("xnli", "XNLI"), _xmixup("pawsx", "PAWS-X"),
                              _baseline("marc", "MARC"), _baseline("panx", "PAN-X"), _btf("marc", "MARC"),
                              _btf("panx", "PAN-X"))
}


def get_experiment(name: str, arms: tuple[str, ...] = ()) -> Experiment:
    """The registered experiment ``name``, confirming only ``arms`` when given (``--arms``)."""
    try:
        experiment = EXPERIMENTS[name]
    except KeyError:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(sorted(EXPERIMENTS))} "
                       "(python -m orchestrator.sweep --list)") from None
    return experiment.with_confirm_arms(arms) if arms else experiment
