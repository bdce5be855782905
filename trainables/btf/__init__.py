"""Bilingual Task Fitting (2310.04726, stage 1): continued MLM on the task's unlabelled bilingual text.

- ``mlm``: settings, the content-hashed plan and cache, the corpus builder, and ``run_btf_cached``,
  which trains one Ray Train job with a checkpoint at every requested step count.
- ``worker``: the Ray Train worker (step-seeded data order, masking and dropout; DDP; resuming).

Self-training (stage 2) builds on these checkpoints: ``trainables.self_training``.
"""

from trainables.btf.mlm import (BtfFailed, BtfPlan, BtfResult, BtfSettings, btf_cache_path, build_corpus,
                                checkpoint_dir, is_cached, make_plan, run_btf_cached)

__all__ = ["BtfFailed", "BtfPlan", "BtfResult", "BtfSettings", "btf_cache_path", "build_corpus", "checkpoint_dir",
           "is_cached", "make_plan", "run_btf_cached"]
