"""Bilingual Task Fitting (2310.04726, stage 1): continued MLM on the task's unlabelled bilingual text.

A building block of the methods that fine-tune from the task-fitted encoder (``btf``,
``self_training``); it imports no method package.

- ``settings``: the MLM job's hyper-parameters (``BtfSettings``).
- ``mlm``: the content-hashed plan and cache, the corpus builder, and ``run_btf_cached``,
  which trains one Ray Train job with a checkpoint at every requested step count.
- ``worker``: the Ray Train worker (step-seeded data order, masking and dropout; DDP; resuming).
- ``prepare``: the sweep's preparation step (``STEP``), the one MLM run both methods' specs name.
- ``encoder``: the shared knobs (``TaskFitParams``) and which encoder fine-tuning starts from.
"""

from trainables.task_fitting.mlm import (BtfFailed, BtfPlan, BtfResult, BtfSettings, btf_cache_path, build_corpus,
                                         checkpoint_dir, is_cached, make_plan, run_btf_cached)

__all__ = ["BtfFailed", "BtfPlan", "BtfResult", "BtfSettings", "btf_cache_path", "build_corpus", "checkpoint_dir",
           "is_cached", "make_plan", "run_btf_cached"]
