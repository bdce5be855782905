"""Bilingual Task Fitting (2310.04726, stage 1), the ``btf`` method: fine-tuning from the task-fitted encoder.

The MLM stage itself (continued MLM on the task's unlabelled bilingual text, its cache and the
sweep's preparation step) is a shared building block: ``trainables.task_fitting``.
Self-training (stage 2) builds on the same checkpoints: ``trainables.methods.self_training``.
"""

from trainables.methods.btf.method import Btf
from trainables.method_spec import MethodSpec
from trainables.task_fitting.prepare import STEP

SPEC = MethodSpec("btf", Btf, prepare=STEP)
