"""Search space of BTF + self-training: the hard-label threshold rule, the soft/hard balance, rounds,
the BTF MLM steps and the learning rate.

The paper (2310.04726) gives no values. The automatic threshold is searched through its target
precision (the threshold is then the lowest confidence at which English dev predictions are that
accurate); a fixed threshold instead: ``--space confidence_threshold='uniform(0.5,0.99)'`` with
``--set target_precision=0.9`` (a fixed setting leaves the space). ``mlm_steps`` is a choice:
every value is a checkpoint of the one BTF run the sweep makes before its trials. The learning
rate (of teachers and students) spans xtreme's 2e-5.
"""

from search_spaces.spec import Choice, Dimension, LogUniform, Uniform

MLM_STEPS = (1000, 3000, 10000)

SPACE: dict[str, Dimension] = {
    "learning_rate": LogUniform(1e-5, 5e-5),
    "target_precision": Uniform(0.8, 0.99),
    "hard_weight": Uniform(0.0, 1.0),
    "rounds": Choice((1, 2, 3)),
    "mlm_steps": Choice(MLM_STEPS),
}

