"""Self-training (2310.04726, "Zero-shot Cross-lingual Transfer without Parallel Corpus").

- ``thresholds``: the confidence threshold for hard pseudo-labels, chosen automatically on English dev.
- ``losses``: soft pseudo-labels trained with MSE, kept hard ones with cross-entropy.
- ``voting``: K models vote; only agreed hard labels are kept.
- ``pseudo_labels``: the Ray Data labelling pass (and the same in-process).
- ``recipe``: one trial's phases: teachers, rounds of labelling and students.
"""

from trainables.methods.self_training.method import SelfTraining
from trainables.methods.self_training.recipe import run_trial
from trainables.method_spec import MethodSpec
from trainables.task_fitting.prepare import STEP as BTF_RUN  # the same step object as btf's: one MLM run per sweep

SPEC = MethodSpec("self_training", SelfTraining, prepare=BTF_RUN, recipe=run_trial)
