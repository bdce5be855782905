"""The reference training recipes, in one place: per task, and per paper where a paper overrides them.

A recipe is the training settings a paper's protocol runs with (learning rate, batch and accumulation,
epochs, maximum length, evaluation interval) and where each value comes from (a script's lines, a
paper's section). The ``paper`` profile applies them (``orchestrator.plan``): every arm starts from
its task's recipe, or from the recipe of the paper its experiment (``Experiment.training_recipe``) or its
method (``Method.training_recipe``) follows; the profile's settings, ``--set``, the arms' switches and the
search override them. The smoke profile applies none (its tiny settings are its own).

``TrainConfig``'s defaults are the loop's fallback for a run outside any recipe (tests, the smoke
profile); a sweep's paper profile never reads them for the fields a recipe sets.

A run evaluates its selection split every ``eval_every_steps`` optimizer steps (and at the last step) and
keeps the best weights, as the scripts' ``--save_only_best_checkpoint`` does on English dev at every
``--save_steps``; which split it selects on is ``select_on``, not part of a recipe.
docs/methods.md, "Training recipes", gives the reasons; the README shows the same table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

XTREME = "google-research/xtreme"
ROBUST_XLT = "uclanlp/Robust-XLT"


@dataclass(frozen=True)
class TrainingRecipe:
    """One reference recipe: ``TrainConfig`` settings and their provenance."""

    name: str  # what the dry run and the README call it
    source: str  # the script lines or paper passage every value comes from
    learning_rate: float
    num_train_epochs: float
    per_device_batch_size: int
    grad_accum_steps: int
    max_length: int
    eval_every_steps: int
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    applies_to: str = "every arm of the task's experiments, unless a paper's recipe applies"

    def settings(self) -> dict[str, Any]:
        """The ``TrainConfig`` fields the recipe sets."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("name", "source", "applies_to")}

    def describe(self) -> str:
        epochs = f"{self.num_train_epochs:g} epoch" + ("" if self.num_train_epochs == 1 else "s")
        return (f"lr {self.learning_rate:g}, batch {self.per_device_batch_size} x {self.grad_accum_steps}, {epochs}, "
                f"max length {self.max_length}, eval every {self.eval_every_steps} steps")


# -- per task: XTREME's scripts (mBERT rows), MARC our choice ----------------------------------------------
TASK_RECIPES: dict[str, TrainingRecipe] = {
    "xnli": TrainingRecipe(
        "xtreme XNLI", f"{XTREME} scripts/train_xnli.sh: LR=2e-5 EPOCH=5 MAXL=128 (l.25-27), BATCH_SIZE=8 GRAD_ACC=4 "
        "(l.44-45), --save_steps 100 --save_only_best_checkpoint (l.67, 71)",
        learning_rate=2e-5, num_train_epochs=5.0, per_device_batch_size=8, grad_accum_steps=4, max_length=128,
        eval_every_steps=100),
    "pawsx": TrainingRecipe(
        "xtreme PAWS-X", f"{XTREME} scripts/train_pawsx.sh: LR=2e-5 EPOCH=5 MAXL=128 (l.25-27), BATCH_SIZE=8 "
        "GRAD_ACC=4 (l.44-45), --save_steps 200 (l.63), --save_only_best_checkpoint (l.74)",
        learning_rate=2e-5, num_train_epochs=5.0, per_device_batch_size=8, grad_accum_steps=4, max_length=128,
        eval_every_steps=200),
    "panx": TrainingRecipe(
        "xtreme PAN-X", f"{XTREME} scripts/train_panx.sh: NUM_EPOCHS=10 MAX_LENGTH=128 LR=2e-5 (l.25-27), "
        "BATCH_SIZE=8 GRAD_ACC=4 (l.43-44), --save_steps 1000 (l.61), --save_only_best_checkpoint (l.73)",
        learning_rate=2e-5, num_train_epochs=10.0, per_device_batch_size=8, grad_accum_steps=4, max_length=128,
        eval_every_steps=1000),
    # No cited script trains MARC (XTREME has no MARC task; the BTF paper gives no settings): XTREME's
    # sentence-classification recipe (train_pawsx.sh's values), what MARC ran before this table existed.
    "marc": TrainingRecipe(
        "xtreme classification (our choice for MARC)", f"ours: {XTREME} scripts/train_pawsx.sh's values (l.25-27, "
        "44-45, 63); no cited paper or script gives MARC settings",
        learning_rate=2e-5, num_train_epochs=5.0, per_device_batch_size=8, grad_accum_steps=4, max_length=128,
        eval_every_steps=200),
}

# -- per paper, where its protocol overrides the task's ------------------------------------------------------
# SALT: "For other hyper-parameters, we follow the training scripts by Huang et al. (2021)" (section 3.1),
# i.e. Robust-XLT's; the scripts' seed 7 is not taken (every sweep runs its own seeds).
# X-Mixup: Appendix C.1 "batch size 64 ... For other tasks, we finetune 4 epochs"; the learning rate, the
# maximum length and the evaluation interval the paper does not state come from its scripts/train_classification.sh.
_SALT_SOURCE = (f"{ROBUST_XLT} scripts/train_{{task}}.sh (SALT section 3.1: \"we follow the training scripts by Huang "
                "et al. (2021)\"): LR=2e-5 EPOCH={epochs} MAXL=128 (l.26-28), BATCH_SIZE=8 GRAD_ACC=4 (l.44-45), "
                "--save_steps {steps} (l.71), --save_only_best_checkpoint (l.74)")
_XMIXUP_SOURCE = ("X-Mixup Appendix C.1 (batch 64, 4 epochs) and yhy1117/X-Mixup scripts/train_classification.sh "
                  "(max_seq_length=128 l.20, num_train_epochs=4 l.21, batch_size=16 per GPU x 4 GPUs l.22, 31, "
                  "eval_steps=100 l.24, lr=5e-6 l.27); Table 10's alpha 0.4 and pk 1000 are X-Mixup's Params")
PAPER_RECIPES: dict[tuple[str, str], TrainingRecipe] = {
    ("salt", "xnli"): TrainingRecipe(
        "SALT (Robust-XLT scripts)", _SALT_SOURCE.format(task="xnli", epochs=1, steps=1000),
        learning_rate=2e-5, num_train_epochs=1.0, per_device_batch_size=8, grad_accum_steps=4, max_length=128,
        eval_every_steps=1000, applies_to="every arm of salt_xnli, the baseline included"),
    ("salt", "pawsx"): TrainingRecipe(
        "SALT (Robust-XLT scripts)", _SALT_SOURCE.format(task="pawsx", epochs=3, steps=500),
        learning_rate=2e-5, num_train_epochs=3.0, per_device_batch_size=8, grad_accum_steps=4, max_length=128,
        eval_every_steps=500, applies_to="every arm of salt_pawsx, the baseline included"),
    **{("xmixup", task): TrainingRecipe(
        "X-Mixup (paper C.1, its script)", _XMIXUP_SOURCE,
        learning_rate=5e-6, num_train_epochs=4.0, per_device_batch_size=16, grad_accum_steps=4, max_length=128,
        eval_every_steps=100, applies_to=f"the X-Mixup arms of xmixup_{task} (baseline, translate_train: the task's)")
      for task in ("xnli", "pawsx")},
}


def recipe_for(task: str, paper: str = "") -> TrainingRecipe | None:
    """The recipe of ``task`` under ``paper``'s protocol (``""``: the task's own), or None when none is recorded."""
    return PAPER_RECIPES.get((paper, task)) or TASK_RECIPES.get(task)


def register_recipe(task: str, recipe: TrainingRecipe, paper: str = "") -> TrainingRecipe:
    """Add (or replace) a recipe at run time, e.g. from a plugin module (``XLT_SWEEP_PLUGINS``)."""
    if paper:
        PAPER_RECIPES[(paper, task)] = recipe
    else:
        TASK_RECIPES[task] = recipe
    return recipe


def markdown_table() -> str:
    """The README's table (a test keeps the README equal to it)."""
    rows = [(task, recipe) for task, recipe in TASK_RECIPES.items()]
    rows += [(task, recipe) for (_, task), recipe in PAPER_RECIPES.items()]
    lines = ["| task | recipe | applies to | lr | batch x accumulation | epochs | max length | eval every | source |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for task, r in rows:
        lines.append(f"| {task} | {r.name} | {r.applies_to} | {r.learning_rate:g} | {r.per_device_batch_size} x "
                     f"{r.grad_accum_steps} | {r.num_train_epochs:g} | {r.max_length} | {r.eval_every_steps} | "
                     f"{r.source} |")
    return "\n".join(lines)
