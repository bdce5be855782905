"""Search space of X-Mixup: the maximum mixup ratio λ0, the mixup layer, the loss balance α, pk, lr.

The paper (section 5.1) searched α in {0.2, 0.4, 0.6, 0.8}, the learning rate in {3e-6, 5e-6,
2e-5, 3e-5} and the mixup layer in {1, 4, 8, 12}, and fixed λ0 = 0.5 and pk = 1000 (Table 10).
Here all five are searched: continuous ranges over the paper's grids, λ0 over [0.1, 1], and pk
log-uniformly around 1000 (it sets when the English source gives way to back-translations:
p* = 1/2 near step pk·ln(pk)). The layer choice is the paper's; the sweep drops layers the
encoder does not have (``--xmixup-layers`` sets another list).

Defaults are the paper's classification setting and the reference code's training settings
(lr 5e-6, 4 epochs, batch 64), so the first search trial is the paper's configuration.
"""

from search_spaces.spec import Choice, Dimension, LogUniform, Uniform

PAPER_LAYERS = (1, 4, 8, 12)

SPACE: dict[str, Dimension] = {
    "learning_rate": LogUniform(3e-6, 3e-5),
    "lambda0": Uniform(0.1, 1.0),
    "mixup_layer": Choice(PAPER_LAYERS),
    "alpha": Uniform(0.2, 0.8),
    "pk": LogUniform(100.0, 10000.0),
}

