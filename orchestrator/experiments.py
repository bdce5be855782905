"""The experiment registry: which task, which method is searched, and which arms are compared.

An experiment is what a researcher names on the command line (``baseline_xnli``). Its arms
are the rows of the results table; every arm runs in the confirm stage on the same seeds, and
every arm is t-tested against ``baseline_arm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from trainables.config import TrainConfig


@dataclass(frozen=True)
class Arm:
    """One row of the results table.

    ``tuned`` arms take the best configuration of a search stage: the experiment's main search
    (``search`` empty), or the named search ``search`` (stage ``search-<name>``: ``BASELINE_SEARCH``, the
    baseline's search of ``--tune-baseline``; in a comparison, one per method); the others run with the
    method's paper defaults. ``overrides`` fix settings on top (e.g. an ablation switch).
    """

    name: str
    method: str
    tuned: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    search: str = ""  # which search's best a tuned arm takes; "": the experiment's main search


@dataclass(frozen=True)
class Search:
    """One search stage of an experiment: a Tune experiment and an Optuna study of their own, the same budget
    and seeds as every other search. It tunes ``arm`` (its method's space); its best values go to every tuned
    arm that names it (``Arm.search``)."""

    name: str  # "": the main search; else ``Arm.search`` ("baseline", or a method's search in a comparison)
    arm: str
    method: str

    @property
    def stage(self) -> str:
        """Its Tune folder, the MLflow ``stage`` tag of its trials and its entry in ``sweep.json``."""
        return "search" if not self.name else f"search-{self.name}"

    @property
    def prefix(self) -> str:
        """Of its names on the parent run: ``best.*`` / ``best_<name>.*`` params, ``search_<name>_trials.csv``."""
        return "" if not self.name else f"_{self.name}"


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
    paper_baseline_arm: str = ""  # with --tune-baseline: the untuned baseline, still run beside the tuned one
    # The paper whose training recipe every arm follows (``trainables.recipes.PAPER_RECIPES``), e.g. "salt";
    # empty: each arm its method's paper recipe (``Method.training_recipe``), else its task's.
    training_recipe: str = ""
    # The paper's model selection, the default of --select-on for this experiment (TrainConfig's: en-dev).
    select_on: str = TrainConfig.select_on
    # The paper evaluates the generalized XNLI setting (SALT section 4, Tables 4-6): on by default in
    # profiles that run the papers' evaluations (``Profile.paper_evaluations``); --generalized-xnli decides.
    generalized_xnli: bool = False

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
    def searched_arm(self) -> Arm | None:
        """The arm whose configuration the main search tunes (``searched``, else the first tuned arm that takes the
        main search's best); None when every tuned arm names its own search (a comparison of methods)."""
        return next((arm for arm in self.arms
                     if arm.name == self.searched or (not self.searched and arm.tuned and not arm.search)), None)

    @property
    def searches(self) -> tuple[Search, ...]:
        """Every search this experiment runs, in order: the main one (when an arm takes its best), then one per
        search name the tuned arms give (``Arm.search``), each tuning the first arm that names it."""
        main = self.searched_arm
        out = [Search("", main.name, main.method)] if main is not None else []
        for arm in self.arms:
            if arm.tuned and arm.search and all(arm.search != search.name for search in out):
                out.append(Search(arm.search, arm.name, arm.method))
        return tuple(out)

    def search(self, name: str) -> Search:
        return next(search for search in self.searches if search.name == name)

    @property
    def tunes_baseline(self) -> bool:
        """Whether the arm the method is tested against had the method's search budget (``--tune-baseline``)."""
        return any(arm.search == BASELINE_SEARCH for arm in self.arms)

    def with_tuned_baseline(self) -> "Experiment":
        """This experiment with ``baseline_tuned``: the baseline searched with the method's budget
        (its own search and Optuna study), run beside the paper baseline and tested against.

        Raises ``KeyError`` with one line for a baseline experiment: it tunes its baseline already.
        """
        if self.method == "baseline":
            raise KeyError(f"{self.name} already searches its baseline (arm baseline_tuned); --tune-baseline "
                           "gives a method experiment's baseline the method's search budget")
        tuned = Arm(TUNED_BASELINE, "baseline", tuned=True, search=BASELINE_SEARCH,
                    description="the baseline searched with the method's budget (--tune-baseline)")
        index = next(i for i, arm in enumerate(self.arms) if arm.name == self.baseline_arm) + 1
        arms = (*self.arms[:index], tuned, *self.arms[index:])
        confirmed = (*self.confirmed, TUNED_BASELINE) if self.confirmed else ()
        # The main search (if any) still tunes the method.
        searched = self.searched_arm.name if self.searched_arm is not None else ""
        return replace(self, arms=arms, baseline_arm=TUNED_BASELINE, paper_baseline_arm=self.baseline_arm,
                       confirmed=confirmed, searched=searched)

    def uses(self, method: str) -> bool:
        """Whether any arm runs ``method`` (e.g. a SALT experiment needs the candidate scan)."""
        return any(arm.method == method for arm in self.arms)

    def arm(self, name: str) -> Arm:
        return next(arm for arm in self.arms if arm.name == name)


BASELINE_SEARCH = "baseline"
"""Name of the second search ``--tune-baseline`` runs (stage ``search-baseline``)."""
TUNED_BASELINE = "baseline_tuned"

# The row every method's experiment is t-tested against.
ZERO_SHOT = Arm("baseline", "baseline", description="zero-shot fine-tuning, the experiment's reference recipe")


def _baseline(task: str, label: str) -> Experiment:
    return Experiment(
        name=f"baseline_{task}",
        task=task,
        method="baseline",
        description=f"zero-shot fine-tuning on {label}: paper defaults vs the searched learning rate and warmup",
        arms=(
            Arm("baseline", "baseline", description="the task's reference recipe (xtreme's script; lr 2e-5, no warmup)"),
            Arm(TUNED_BASELINE, "baseline", tuned=True, description="best configuration of the search stage"),
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
        # Every arm on SALT's training scripts (Robust-XLT's): the paper's "mBERT* reproduced with our code
        # base" baseline included.
        training_recipe="salt",
        generalized_xnli=task == "xnli",  # section 4, "Generalized Setting"; Tables 4-6
        arms=(
            ZERO_SHOT,
            Arm("salt", "salt", tuned=True, description="code-switching (en synonyms + targets) and embedding mixup"),
            Arm("salt_en_only", "salt", tuned=True, overrides={"en_only": True},
                description="Table 3 en-only: English synonyms only"),
            Arm("salt_no_mixup", "salt", tuned=True, overrides={"mixup": False},
                description="Table 3 w/o mixup: code-switched copies, no embedding mixup"),
        ),
    )


# X-Mixup Table 6: trained on 8 "seen" languages (English and these 7 translations), tested on all 15 of XNLI.
XNLI_SEEN_LANGUAGES = ("bg", "el", "fr", "ru", "th", "ur", "zh")


def _xmixup(task: str, label: str) -> Experiment:
    """X-Mixup against zero-shot and translate-train, with the paper's Table 5 and 9 ablations on the searched
    knobs, and (XNLI) Table 6's seen-languages arm. Selected on the multilingual dev average (its section 5.1)."""
    seen = (Arm("xmixup_seen", "xmixup", tuned=True, overrides={"train_languages": ",".join(XNLI_SEEN_LANGUAGES)},
                description="Table 6: translations of the 7 seen languages only; the report splits seen / unseen"),
            ) if task == "xnli" else ()
    return Experiment(
        name=f"xmixup_{task}",
        task=task,
        method="xmixup",
        description=f"X-Mixup on {label}: λ0, mixup layer, α, pk and lr searched; translate-train, Table 5 and 9 "
                    "ablations" + (", Table 6 seen languages" if seen else ""),
        select_on="multilingual-dev",  # "The final model is selected based on the averaged performance of all
                                       # languages on the dev set" (X-Mixup, section 5.1)
        arms=(
            ZERO_SHOT,
            Arm("translate_train", "translate_train",
                description="English + its translations into the target languages, the task's reference recipe "
                            "(not Table 5's w/o mixup: that is xmixup_no_mixup)"),
            Arm("xmixup", "xmixup", tuned=True, description="cross-lingual manifold mixup"),
            Arm("xmixup_no_mixup", "xmixup", tuned=True, overrides={"mixup": False, "mixup_inference": False},
                description="Table 5 w/o mixup: X-Mixup's training and inference, source and target never mixed"),
            Arm("xmixup_no_mixup_inference", "xmixup", tuned=True, overrides={"mixup_inference": False},
                description="Table 5 w/o mixup inference: predict from the target alone"),
            Arm("xmixup_no_sched_sampling", "xmixup", tuned=True, overrides={"scheduled_sampling": False},
                description="Table 5 w/o scheduled sampling: always the real English source"),
            Arm("xmixup_no_consistency", "xmixup", tuned=True, overrides={"consistency": False},
                description="Table 5 w/o consistency loss: no MSE / KL terms"),
            Arm("xmixup_const_ratio", "xmixup", tuned=True, overrides={"ratio": "constant"},
                description="Table 5 λ = λ0: no translation-quality term"),
            Arm("xmixup_no_mse", "xmixup", tuned=True, overrides={"consistency_mse": False},
                description="Table 9 w/o MSE: consistency loss KL only"),
            Arm("xmixup_no_kl", "xmixup", tuned=True, overrides={"consistency_kl": False},
                description="Table 9 w/o KL: consistency loss MSE only"),
            *seen,
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


COMPARISON = "compare"
"""``Experiment.method`` of a comparison of methods: it has no main search, one search per tuned method arm."""


def _compare(task: str, label: str) -> Experiment:
    """The methods side by side on one model and the same seeds, each method arm on its own search's best.

    One search per method (stage ``search-<method>``, its own Optuna study, the same budget and seeds), or a
    finished search of an earlier sweep (``--best-from``). Every arm keeps its method's paper recipe (SALT's and
    X-Mixup's scripts, the task's for the baseline and self-training) and, as the comparison needs one protocol,
    one model selection: English dev (strict zero-shot; X-Mixup's own experiments select on every dev set).
    Self-training is the BTF paper's full method (BTF, then self-training): it needs the target languages'
    unlabelled text, which XNLI (XNLI-MT's train) and PAWS-X (its translated train) have."""
    return Experiment(
        name=f"compare_{task}",
        task=task,
        method=COMPARISON,
        description=f"baseline, SALT, X-Mixup and BTF + self-training on {label}, one model, the same seeds; each "
                    "method on its own search's best (one search per method, or --best-from SWEEP_ID); all "
                    "selected on English dev",
        arms=(
            ZERO_SHOT,
            Arm("salt", "salt", tuned=True, search="salt",
                description="SALT: code-switching and embedding mixup, its search's best"),
            Arm("xmixup", "xmixup", tuned=True, search="xmixup",
                description="X-Mixup: cross-lingual manifold mixup, its search's best"),
            Arm("btf_self_training", "self_training", tuned=True, search="self_training",
                description="BTF, then self-training (2310.04726), its search's best"),
        ),
    )


EXPERIMENTS: dict[str, Experiment] = {
    exp.name: exp for exp in (_baseline("xnli", "XNLI"), _baseline("pawsx", "PAWS-X"), _salt("xnli", "XNLI"),
                              _salt("pawsx", "PAWS-X"), _xmixup("xnli", "XNLI"), _xmixup("pawsx", "PAWS-X"),
                              _baseline("marc", "MARC"), _baseline("panx", "PAN-X"), _btf("marc", "MARC"),
                              _btf("panx", "PAN-X"), _compare("xnli", "XNLI"), _compare("pawsx", "PAWS-X"))
}


def register_experiment(experiment: Experiment) -> Experiment:
    """Add (or replace) an experiment at run time, e.g. from a plugin module (``XLT_SWEEP_PLUGINS``)."""
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def get_experiment(name: str, arms: tuple[str, ...] = (), *, tune_baseline: bool = False) -> Experiment:
    """The registered experiment ``name``, confirming only ``arms`` when given (``--arms``), with a
    tuned baseline beside the paper one when ``tune_baseline`` (``--tune-baseline``)."""
    try:
        experiment = EXPERIMENTS[name]
    except KeyError:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(sorted(EXPERIMENTS))} "
                       "(python -m orchestrator.sweep --list)") from None
    if arms:
        experiment = experiment.with_confirm_arms(arms)
    return experiment.with_tuned_baseline() if tune_baseline else experiment
