"""Profiles: the paper's protocol, and a smoke version of it that runs anywhere in minutes.

A profile fixes what a sweep runs on (model and data), how many search trials and seeds it
runs, whether arms start from their reference recipe (``trainables.recipes``), and training
settings fixed over it. Command-line flags override a profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from search_spaces.spec import Choice, Dimension, LogUniform


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    num_samples: int
    seeds: tuple[int, ...]
    model: str | None  # None: the smoke model the project builds offline
    builds_smoke_assets: bool = False
    # Whether arms start from their reference recipe (``trainables.recipes``: per task, per paper);
    # ``train`` and --set override it.
    recipes: bool = True
    train: dict[str, Any] = field(default_factory=dict)
    # Replaces dimensions of every method's space (a tiny random model needs other learning rates).
    space: dict[str, Dimension] = field(default_factory=dict)
    # Preparation steps' settings that differ from their defaults, by step key (``PrepareStep.key``),
    # e.g. {"btf": {...}}: the BTF MLM run's (``trainables.task_fitting.mlm.BtfSettings``).
    method_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Whether evaluations a paper adds beyond its test table (SALT's generalized XNLI, 225 language pairs) run by
    # default where the experiment's paper ran them (``Experiment.generalized_xnli``); a flag decides either way.
    paper_evaluations: bool = False


PAPER = Profile(
    name="paper",
    description="the papers' protocol: the paper's model and full benchmark data unless --model / --data-dir name "
                "others, each task's and paper's reference recipe, 20 search trials, 5 seeds",
    num_samples=20,
    seeds=(1, 2, 3, 4, 5),
    model="bert-base-multilingual-cased",
    paper_evaluations=True,
)

SMOKE = Profile(
    name="smoke",
    description="a tiny random BERT and data generated in the benchmark's schema unless --model / --data-dir name "
                "others, tiny training settings, 2 search trials, 3 seeds; a whole sweep in minutes on a CPU",
    num_samples=2,
    seeds=(1, 2, 3),
    model=None,
    builds_smoke_assets=True,
    recipes=False,  # its tiny settings below, whatever the task or paper
    train={
        "num_train_epochs": 3.0,
        "per_device_batch_size": 32,
        "grad_accum_steps": 1,
        "max_length": 64,
        "eval_every_steps": 25,
        "eval_batch_size": 256,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.0,
        # A checkpoint at every evaluation: tiny on the smoke model, and fault tolerance gets exercised.
        "checkpoint_every_s": 0.0,
        # The tiny random MLM spreads its probability almost evenly over its 2,000 tokens (the best
        # candidate of a language gets ~7e-4 to 9e-4), so Appendix A's 1e-3 / 1e-7 would switch
        # nothing / everything; these thresholds switch a share of the tokens, as on a real model.
        "threshold_en": 7.7e-4,
        "threshold_target": 7.7e-4,
        # X-Mixup / translate-train: two of the 14 translations, so a trial costs about what a SALT trial
        # does (the tiny model trained on the fully respelled scripts, ar or zh, stays at chance for
        # hundreds of steps); a run has ~75 steps per epoch, so p* must decay within hundreds of steps,
        # not the paper's tens of thousands (pk 1000).
        "train_languages": "de,fr",
        "pk": 30.0,
        # BTF + self-training: a short MLM run, 600 unlabelled rows per language, two voters.
        "mlm_steps": 20,
        "unlabelled_per_language": 600,
        "voters": 2,
    },
    space={"learning_rate": LogUniform(1e-3, 1e-2), "threshold_en": LogUniform(7e-4, 9e-4),
           "threshold_target": LogUniform(7e-4, 9e-4), "mixup_layer": Choice((1, 2)), "pk": LogUniform(10.0, 100.0),
           "mlm_steps": Choice((20, 40)), "rounds": Choice((1, 2))},
    method_settings={"btf": {"learning_rate": 1e-3, "batch_size": 16, "max_length": 64}},
)

PROFILES: dict[str, Profile] = {p.name: p for p in (PAPER, SMOKE)}
