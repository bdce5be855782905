"""X-Mixup's building blocks (Yang et al., ICLR 2022, "Enhancing Cross-lingual Transfer by Manifold Mixup").

- ``ratio``: the mixup ratio from translation quality, λ = λ0 σ((H(A) + H(Aᵀ)) W + b) (Eq. 5).
- ``schedule``: scheduled sampling's inverse-sigmoid decay p* = k / (k + exp(step / k)).
- ``cka``: linear CKA between source and target representations (Eq. 1, paper Table 7).

Still to come (issue 4): the encoder wrapper that mixes at layer l with the layer's own attention,
the translate-train data, the recipe in ``trainables.methods``, and the experiments.
"""
