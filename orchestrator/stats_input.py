"""The input side of :func:`orchestrator.stats.summarize`: options and results checked, values per seed.

A mistake in the options or the long results frame (a duplicate run, a fractional seed, a typo in an
arm) would otherwise surface as a silently wrong table, so it is refused here, before any statistics.
What passes is reshaped into one value per (arm, seed) for every column: the languages, then the two
macro averages, each formed inside a seed (see ``orchestrator.stats`` for why).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestrator.stats_summary import AVG, AVG_EN

REQUIRED_COLUMNS: tuple[str, ...] = ("arm", "seed", "language", "value")


# --------------------------------------------------------------------------- validation


def validate_options(
    arms: list[str], languages: list[str], baseline_arm: str | None, source_language: str, alpha: float
) -> None:
    """Reject option mistakes up front: they would otherwise surface as a silently wrong table."""
    if not arms:
        raise ValueError("arms must not be empty")
    if len(set(arms)) != len(arms):
        raise ValueError(f"arms contain duplicates: {arms}")
    if baseline_arm is not None and baseline_arm not in arms:
        raise ValueError(f"baseline arm {baseline_arm!r} is not in arms {arms}")
    if not languages:
        raise ValueError("languages must not be empty")
    if len(set(languages)) != len(languages):
        raise ValueError(f"languages contain duplicates: {languages}")
    if source_language not in languages:
        raise ValueError(f"source language {source_language!r} is not in languages {languages}")
    clashes = sorted({AVG, AVG_EN} & set(languages))
    if clashes:
        raise ValueError(f"languages {clashes} clash with the average column names {AVG!r}/{AVG_EN!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def clean_results(results: pd.DataFrame, arms: list[str], languages: list[str]) -> pd.DataFrame:
    """Check and normalise the long results frame; keep only requested arms/languages with a value."""
    missing = [column for column in REQUIRED_COLUMNS if column not in results.columns]
    if missing:
        raise ValueError(
            f"results is missing columns {missing}; expected {list(REQUIRED_COLUMNS)}, got {list(results.columns)}"
        )
    frame = results.loc[:, list(REQUIRED_COLUMNS)].copy()
    frame["seed"] = _integer_seeds(frame["seed"])
    try:
        frame["value"] = pd.to_numeric(frame["value"]).astype("float64")
    except (TypeError, ValueError) as error:
        raise ValueError(f"results column 'value' must be numeric: {error}") from None
    _reject_duplicates(frame)
    keep = frame["arm"].isin(arms) & frame["language"].isin(languages) & frame["value"].notna()
    return frame.loc[keep].reset_index(drop=True)


def _integer_seeds(seeds: pd.Series) -> pd.Series:
    """Seeds must be whole numbers: they are the pairing key, so 1 and 1.5 must not blur."""
    numeric = pd.to_numeric(seeds, errors="coerce")
    bad = numeric.isna() | (numeric != np.floor(numeric))
    if bad.any():
        raise ValueError(f"results column 'seed' must hold integers; bad values: {seeds[bad].tolist()[:5]}")
    return numeric.astype("int64")


def _reject_duplicates(frame: pd.DataFrame) -> None:
    """Two values for one (arm, seed, language) mean a run was logged twice; refuse to guess which."""
    duplicated = frame.duplicated(["arm", "seed", "language"], keep=False)
    if duplicated.any():
        keys = frame.loc[duplicated, ["arm", "seed", "language"]].drop_duplicates()
        shown = [tuple(row) for row in keys.head(5).itertuples(index=False)]
        raise ValueError(f"results has duplicate (arm, seed, language) rows, e.g. {shown}")


# --------------------------------------------------------------------------- per-seed values


def per_seed_values(frame: pd.DataFrame, languages: list[str], source_language: str) -> dict[str, pd.Series]:
    """Column -> value per (arm, seed): the languages as given, then the two macro averages."""
    wide = frame.set_index(["arm", "seed", "language"])["value"].unstack("language")
    wide = wide.reindex(columns=languages)
    targets = [language for language in languages if language != source_language]
    values = {language: wide[language].dropna() for language in languages}
    values[AVG] = _macro_average(wide, targets)
    values[AVG_EN] = _macro_average(wide, languages)
    return values


def _macro_average(wide: pd.DataFrame, languages: list[str]) -> pd.Series:
    """Per (arm, seed) mean over ``languages``, only for seeds that have all of them."""
    if not languages:
        return pd.Series(index=wide.index[:0], dtype="float64")
    complete = wide[languages].dropna(how="any")
    return complete.mean(axis=1)
