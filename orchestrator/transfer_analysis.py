"""Two analyses of X-Mixup's paper beside the per-language tables, from what the confirm runs log.

* **Table 2: CKA against accuracy.** Spearman's ρ (``scipy.stats.spearmanr``) between an arm's
  linear CKA (``cka_<lang>``) and its test score over the target languages: is transfer better where
  the representations of a language and of its English translation are closer? One point per target
  language: the mean over the arm's seeds of each. English is left out: its CKA against itself is 1
  by construction and its score is the supervised one, a point that would agree with any ranking.
* **Table 6: seen and unseen languages.** An arm that trains on some target languages only (its own
  ``train_languages``: ``xmixup_seen``) splits the targets into seen and unseen; every arm's macro
  average over each part is formed per seed, then mean ± std over seeds, and tested against the
  baseline by the paired t-test over seeds, Holm (``--correction``) over the two columns of an arm.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.experiments import Experiment
from orchestrator.report_cells import MARKS, PERCENT
from orchestrator.significance import SignificanceOptions, adjust_p_values, paired_test
from orchestrator.stats_summary import BETTER, WORSE
from trainables.tasks import TaskSpec, parse_languages

SPEARMAN_COLUMNS = ("arm", "n_languages", "rho", "p_value")
SEEN, UNSEEN = "avg_seen", "avg_unseen"
SPLIT_COLUMNS = ("arm", "column", "languages", "mean", "std", "n", "n_pairs", "mean_diff", "ci_low", "ci_high",
                 "p_value", "p_adjusted", "direction")
SPLIT_FILES = ("seen_unseen.md", "seen_unseen.csv")


# --------------------------------------------------------------------------- Table 2: Spearman


def cka_spearman(scores: pd.DataFrame, cka: pd.DataFrame, arms: list[str], languages: list[str]) -> pd.DataFrame:
    """Per arm: Spearman's ρ (and its p-value) between the per-language means over seeds of ``cka`` and of
    ``scores`` (both long: arm, seed, language, value), over ``languages`` where the arm has both.

    Arms with fewer than 3 such languages get no row (a rank correlation of two points is ±1 by
    construction); ρ is NaN when either side is constant over the languages.
    """
    rows = []
    for arm in arms:
        means = language_points(scores, cka, arm, languages)
        if len(means) < 3:
            continue
        with warnings.catch_warnings():  # constant input: scipy warns and returns NaN, which the row keeps
            warnings.simplefilter("ignore")
            result = _spearman(means["cka"].to_numpy(), means["score"].to_numpy())
        rows.append({"arm": arm, "n_languages": len(means), "rho": result[0], "p_value": result[1]})
    return pd.DataFrame(rows, columns=list(SPEARMAN_COLUMNS))


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from scipy.stats import spearmanr

    result = spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def language_points(scores: pd.DataFrame, cka: pd.DataFrame, arm: str, languages: list[str]) -> pd.DataFrame:
    """The points ρ ranks for ``arm``: per language of ``languages`` (in that order) where the arm has both,
    the mean over seeds of its CKA (``cka``) and of its score (``score``); the figure plots the same points."""
    means = pd.DataFrame({"score": _language_means(scores, arm), "cka": _language_means(cka, arm)})
    return means.reindex([lang for lang in languages if lang in means.index]).dropna()


def _language_means(frame: pd.DataFrame, arm: str) -> pd.Series:
    rows = frame[frame["arm"] == arm]
    return rows.groupby("language")["value"].mean()


def spearman_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``<arm>.cka_spearman_rho`` and ``<arm>.cka_spearman_p`` (finite values only), for the parent run."""
    metrics = {}
    for row in table.itertuples(index=False):
        for key, value in (("rho", row.rho), ("p", row.p_value)):
            if math.isfinite(value):
                metrics[f"{row.arm}.cka_spearman_{key}"] = float(value)
    return metrics


def render_spearman(table: pd.DataFrame, metric_label: str) -> str:
    """The ρ table as Markdown (it follows the CKA table's legend)."""
    if table.empty:
        return ""
    lines = [f"### Spearman's ρ between linear CKA and test {metric_label} over the target languages (X-Mixup "
             "Table 2)", "", "| arm | ρ | p | languages |", "| :-- | --: | --: | --: |"]
    for row in table.itertuples(index=False):
        lines.append(f"| {row.arm} | {_number(row.rho, 2)} | {_number(row.p_value, 3)} | {row.n_languages} |")
    lines += ["", "One point per target language: the mean over seeds of its CKA and of its score (English, CKA 1 "
                  "by construction, left out); p: scipy's two-sided test of ρ = 0."]
    return "\n".join(lines)


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "–"


# --------------------------------------------------------------------------- Table 6: seen / unseen


@dataclass(frozen=True)
class LanguageSplit:
    """The target languages an arm trained on (``seen``) and the others (``unseen``)."""

    arm: str
    seen: tuple[str, ...]
    unseen: tuple[str, ...]


def language_split(experiment: Experiment, task: TaskSpec) -> LanguageSplit | None:
    """The split of the first confirmed arm that fixes its own ``train_languages`` to part of the targets."""
    for arm in experiment.confirm_arms:
        own = set(parse_languages(arm.overrides.get("train_languages")))
        seen = tuple(lang for lang in task.target_languages if lang in own)
        unseen = tuple(lang for lang in task.target_languages if lang not in own)
        if seen and unseen:
            return LanguageSplit(arm.name, seen, unseen)
    return None


def split_table(results: pd.DataFrame, split: LanguageSplit, arms: list[str], baseline: str | None,
                options: SignificanceOptions) -> pd.DataFrame:
    """One row per arm and part (``avg_seen``, ``avg_unseen``): the per-seed macro average (seeds that have
    every language of the part), its mean ± std over seeds, and the paired test against ``baseline``."""
    per_seed = {column: _part_averages(results, languages)
                for column, languages in ((SEEN, split.seen), (UNSEEN, split.unseen))}
    empty = pd.Series(dtype="float64")
    rows = []
    for arm in arms:
        tests = {}
        for column, values in per_seed.items():
            mine = values.get(arm, empty)
            tests[column] = None
            if baseline is not None and arm != baseline:
                base = values.get(baseline, empty)
                shared = mine.index.intersection(base.index).sort_values()
                tests[column] = paired_test(mine.loc[shared].to_numpy(), base.loc[shared].to_numpy(), options)
            languages = split.seen if column == SEEN else split.unseen
            rows.append({"arm": arm, "column": column, "languages": ",".join(languages),
                         "mean": float(mine.mean()) if len(mine) else math.nan,
                         "std": float(mine.std(ddof=1)) if len(mine) >= 2 else math.nan, "n": len(mine)})
        adjusted = adjust_p_values([t.p_value if t else None for t in tests.values()], options.correction,
                                   options.alpha)
        for row, test, p_adjusted in zip(rows[-2:], tests.values(), adjusted):
            row.update(_test_fields(test, p_adjusted, options.alpha))
    return pd.DataFrame(rows, columns=list(SPLIT_COLUMNS))


def _part_averages(results: pd.DataFrame, languages: tuple[str, ...]) -> dict[str, pd.Series]:
    """Arm -> per-seed mean over ``languages`` (only seeds with all of them), indexed by seed."""
    if results.empty:
        return {}
    wide = results.pivot_table(index=["arm", "seed"], columns="language", values="value", aggfunc="mean")
    wide = wide.reindex(columns=list(languages)).dropna(how="any")
    averages = wide.mean(axis=1)
    return {arm: averages.xs(arm, level="arm").sort_index() for arm in averages.index.get_level_values("arm").unique()}


def _test_fields(test, p_adjusted: float | None, alpha: float) -> dict:
    nan = math.nan
    if test is None:
        return {"n_pairs": 0, "mean_diff": nan, "ci_low": nan, "ci_high": nan, "p_value": nan, "p_adjusted": nan,
                "direction": "none"}
    significant = p_adjusted is not None and p_adjusted <= alpha
    direction = (BETTER if (test.mean_diff or 0.0) > 0 else WORSE) if significant else "none"
    value = lambda x: nan if x is None else float(x)  # noqa: E731
    return {"n_pairs": test.n_pairs, "mean_diff": value(test.mean_diff), "ci_low": value(test.ci_low),
            "ci_high": value(test.ci_high), "p_value": value(test.p_value), "p_adjusted": value(p_adjusted),
            "direction": direction}


def split_metrics(table: pd.DataFrame, prefix: str) -> dict[str, float]:
    """``<arm>.<prefix>_avg_seen.mean`` / ``.std`` / ``.diff`` / ``.p_adj`` (and unseen), finite values only."""
    metrics = {}
    for row in table.itertuples(index=False):
        for key, value in (("mean", row.mean), ("std", row.std), ("diff", row.mean_diff), ("p_adj", row.p_adjusted)):
            if math.isfinite(value):
                metrics[f"{row.arm}.{prefix}_{row.column}.{key}"] = float(value)
    return metrics


def render_split(table: pd.DataFrame, split: LanguageSplit, *, title: str, source_language: str,
                 baseline: str | None, correction: str) -> str:
    """Markdown: per arm the seen and unseen averages (mean ± std, † / ▼ as in the main table) and the
    paired difference to the baseline."""
    lines = [f"## {title}", "", "| arm | seen | unseen | Δ seen | Δ unseen |", "| :-- | --: | --: | --: | --: |"]
    for arm, rows in table.groupby("arm", sort=False):
        cells = []
        for column in (SEEN, UNSEEN):
            row = rows[rows["column"] == column].iloc[0]
            text = "–" if not math.isfinite(row["mean"]) else PERCENT.number(row["mean"])
            if math.isfinite(row["std"]):
                text += f" ± {PERCENT.number(row['std'])}"
            cells.append(text + MARKS.get(row["direction"], ""))
        for column in (SEEN, UNSEEN):
            row = rows[rows["column"] == column].iloc[0]
            diff = "" if not math.isfinite(row["mean_diff"]) else PERCENT.number(row["mean_diff"], signed=True)
            if diff and math.isfinite(row["p_adjusted"]):
                diff += f" (p_adj {row['p_adjusted']:.3f})"
            cells.append(diff)
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    vs = (f"Δ = paired difference to {baseline} over seeds; † / ▼ significantly better / worse (paired t-test, "
          f"{correction} over an arm's two columns)" if baseline else "no baseline arm: nothing tested")
    lines += ["", f"seen = the {len(split.seen)} target languages {split.arm} trains on ({', '.join(split.seen)}; "
                  f"and {source_language}); unseen = the other {len(split.unseen)} ({', '.join(split.unseen)}); "
                  f"each a macro average per seed, then mean ± std over seeds (%). {vs}."]
    return "\n".join(lines) + "\n"


def write_split(table: pd.DataFrame, markdown: str, out_dir: Path) -> list[Path]:
    """``seen_unseen.md`` and ``seen_unseen.csv`` (fractions at full precision) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv = (out_dir / name for name in SPLIT_FILES)
    md.write_text(markdown, encoding="utf-8")
    table.to_csv(csv, index=False)
    return [md, csv]
