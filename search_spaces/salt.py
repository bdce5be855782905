"""Search space of SALT: the code-switching thresholds and the learning rate.

The paper fixes one threshold for every target language (1e-7) and one for English synonyms
(1e-3, "predicted probabilities in source and target languages are of different scales"), and
names per-language thresholds as the open problem. So the search gives each target language of
the scan its own log-uniform dimension around 1e-7 (``threshold_target`` is expanded into
``threshold_<lang>`` once the sweep knows its languages), English synonyms one around 1e-3, and
the learning rate the baseline's range. ``--salt-shared-threshold`` keeps the paper's single
target threshold instead. Defaults are Appendix A's values, so the first trial is the paper's.
"""

from search_spaces.spec import Dimension, LogUniform

SPACE: dict[str, Dimension] = {
    "learning_rate": LogUniform(5e-6, 5e-5),
    "threshold_en": LogUniform(1e-5, 1e-1),
    "threshold_target": LogUniform(1e-9, 1e-5),
}

# The dimension that becomes one per target language.
PER_LANGUAGE = "threshold_target"


def expand_per_language(space: dict[str, Dimension], languages, *, shared: bool) -> dict[str, Dimension]:
    """Replace ``threshold_target`` by ``threshold_<lang>`` for every language (kept as is when shared)."""
    if shared or PER_LANGUAGE not in space:
        return dict(space)
    out = {}
    for key, dim in space.items():
        if key == PER_LANGUAGE:
            out.update({f"threshold_{lang}": dim for lang in languages if f"threshold_{lang}" not in space})
        else:
            out[key] = dim
    return out
