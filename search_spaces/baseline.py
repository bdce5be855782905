"""Search space of the zero-shot fine-tuning baseline.

The baseline's only knobs are the optimiser's: learning rate (xtreme uses 2e-5; the
SALT and X-Mixup papers searched around it) and the warmup fraction (xtreme: none).
Defaults are the training loop's (``TrainConfig``: the xtreme reference settings), so the
first search trial evaluates the paper's setting.
"""

from search_spaces.spec import Dimension, LogUniform, Uniform

SPACE: dict[str, Dimension] = {
    "learning_rate": LogUniform(5e-6, 5e-5),
    "warmup_ratio": Uniform(0.0, 0.1),
}
