"""Zero-shot fine-tuning baseline (the row every paper compares against).

Fine-tune the multilingual encoder with a classification head on English training data,
select the checkpoint on English dev, test on every language. Everything it needs is the
shared loop's default behaviour, so the recipe is the base ``Method`` itself.
"""

from __future__ import annotations

from trainables.method_base import Method


class Baseline(Method):
    name = "baseline"
