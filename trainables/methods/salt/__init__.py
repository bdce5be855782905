"""SALT's building blocks (Wang et al. 2023, "Self-Augmentation Improves Zero-Shot Cross-Lingual Transfer").

- ``vocab``: the target languages' vocabularies (frequency word lists mapped onto the model's
  vocabulary) and the paper's language choice rule.
- ``scan``: the offline candidate scan, an unmasked MLM pass over the training sentences as a
  Ray Data pipeline, cached by content hash.
- ``codeswitch``: thresholds turn the cached candidates into one code-switched copy per language.
- ``mixup``: the online embedding mixup between original and substituted tokens.

The recipe that puts them together is ``trainables.methods.salt.method``.
"""

from trainables.methods.salt.method import Salt
from trainables.methods.salt.prepare import STEP
from trainables.method_spec import MethodSpec

SPEC = MethodSpec("salt", Salt, prepare=STEP)
