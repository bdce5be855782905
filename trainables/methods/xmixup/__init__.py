"""X-Mixup's building blocks (Yang et al., ICLR 2022, "Enhancing Cross-lingual Transfer by Manifold Mixup").

- ``translations``: XTREME's translate-train / translate-test files (and back-translations) read into
  (target, English source) pairs; ``parallel_cache``: those pairs tokenised once and cached by content hash.
- ``model``: the two-stream encoder that mixes the target with the source inside layer l, with the
  layer's own attention weights.
- ``ratio``: the mixup ratio from translation quality, λ = λ0 σ((H(A) + H(Aᵀ)) W + b) (Eq. 5).
- ``schedule``: scheduled sampling's inverse-sigmoid decay p* = k / (k + exp(step / k)).
- ``cka``: linear CKA between source and target representations (Eq. 1, paper Table 7).

The recipe that puts them together is ``trainables.methods.xmixup.method``.
"""

from trainables.method_spec import MethodSpec
from trainables.methods.xmixup.method import XMixup
from trainables.methods.xmixup.prepare import STEP

SPEC = MethodSpec("xmixup", XMixup, prepare=STEP)
