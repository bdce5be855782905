"""Search space of translate-train: the optimiser's knobs, as for the zero-shot baseline.

Defaults are the training loop's (xtreme's settings), as in XTREME's translate-train runs.
"""

from search_spaces.baseline import SPACE  # noqa: F401  (the same knobs)
