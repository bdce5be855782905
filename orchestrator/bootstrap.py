"""Paired bootstrap over test examples: a second significance test, seed by seed.

The t-tests of ``orchestrator.stats`` pair arms by seed and ask whether the difference is larger
than the seed-to-seed variation. This test asks the complementary question for one seed: is the
difference between two models larger than what the choice of test examples explains? It
resamples test examples with replacement (Koehn 2004; Berg-Kirkpatrick et al. 2012; Dror et
al. 2018, "The Hitchhiker's Guide to Testing Statistical Significance in NLP"):

* **Paired.** Each resample draws example indices once and scores both systems on the same
  examples (paired by ``example_id``), so what the examples have in common (easy or hard ones)
  cancels out of the difference.
* **Shifted p-value.** The bootstrap distribution of the difference δ* is centred on the observed
  difference δ, not on 0; shifting it by δ gives the distribution under the null "no difference".
  The two-sided p-value is ``p = (1 + #{b : |δ*_b − δ| ≥ |δ|}) / (B + 1)``: the +1 counts the
  observed sample itself as one draw of the null, so p is never 0 from a finite B (the smallest
  p is 1 / (B + 1)).
* **Any metric that sums.** Accuracy is the mean of per-example 0/1 correctness; micro entity F1
  is 2·Σtp / (Σn_pred + Σn_gold) of per-sentence entity counts (0 when the denominator is 0), so
  a resample's score follows from resampled sums. A resample is a count per example (how often
  it was drawn) and the sums are one matrix product for every system at once. Macro-F1 (MARC's
  table) sums too: per example and class c, (tp_c, predicted_c, gold_c) as 0/1, and the score is the
  mean over the classes present in the resample of 2·Σtp_c / (Σpredicted_c + Σgold_c).
* **Macro averages.** ``avg`` (the target languages) and ``avg_en`` (all) are means over
  languages, each language counting once. Each replicate resamples every language's examples
  independently (the languages' test sets are separate samples) and its δ*_b is the mean over
  languages of the per-language δ*_b: that is the bootstrap distribution of the difference of
  the macro averages. As for the t-tests, an arm missing a language of an average gets no test
  of that average.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from orchestrator.stats_summary import AVG, AVG_EN
from trainables.predictions import ENTITY_COUNTS

ACCURACY, ENTITY_F1, MACRO_F1 = "acc", "f1", "macro_f1"
METRICS = (ACCURACY, ENTITY_F1, MACRO_F1)
TEST_COLUMNS = ("arm", "column", "seed", "diff", "p_value", "n_examples")
# Indices drawn at once: bounds the (resamples x examples) count matrix of a chunk to ~16 MB.
CHUNK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class BootstrapTest:
    """One paired bootstrap test of an arm against the baseline."""

    diff: float  # observed arm − baseline, a fraction (0.012 = 1.2 points)
    p_value: float  # two-sided, of the null "no difference"
    n_examples: int  # paired test examples (summed over languages for an average)
    n_resamples: int


def paired_bootstrap_accuracy(correct_arm: np.ndarray, correct_base: np.ndarray, *, n_resamples: int,
                              rng: np.random.Generator) -> BootstrapTest:
    """Accuracy difference on one language's test examples; inputs are 0/1 correctness, paired by position."""
    arm, base = _column(correct_arm), _column(correct_base)
    return _single(ACCURACY, [(arm, base)], n_resamples, rng)


def paired_bootstrap_f1(counts_arm: np.ndarray, counts_base: np.ndarray, *, n_resamples: int,
                        rng: np.random.Generator) -> BootstrapTest:
    """Micro entity-F1 difference; inputs are [n, 3] per-sentence (tp, n_pred, n_gold), paired by position."""
    arm, base = _entity_counts(counts_arm), _entity_counts(counts_base)
    return _single(ENTITY_F1, [(arm, base)], n_resamples, rng)


def paired_bootstrap_macro(languages: Sequence[tuple[np.ndarray, np.ndarray]], *, metric: str, n_resamples: int,
                           rng: np.random.Generator) -> BootstrapTest:
    """Difference of macro averages over languages: ``languages`` holds one (arm, baseline) pair of per-example
    values per language (correctness for ``acc``, [n, 3] entity counts for ``f1``, ``class_counts`` for
    ``macro_f1``); each is resampled on its own."""
    _check_metric(metric)
    shape = {ACCURACY: _column, ENTITY_F1: _entity_counts}.get(metric, _class_columns)
    return _single(metric, [(shape(arm), shape(base)) for arm, base in languages], n_resamples, rng)


def shifted_p_value(observed: float, replicates: np.ndarray) -> float:
    """Two-sided p of "no difference": the bootstrap distribution shifted onto 0 (see the module's docstring).

    Ties count as extreme; a relative tolerance of 1e-9 keeps floating-point rounding from splitting them
    (a resample that swaps two examples' roles gives |δ*_b − δ| = |δ| exactly in arithmetic).
    """
    replicates = np.asarray(replicates, np.float64)
    threshold = abs(observed) * (1 - 1e-9)
    extreme = int(np.count_nonzero(np.abs(replicates - observed) >= threshold))
    return (1 + extreme) / (replicates.size + 1)


def bootstrap_tests(predictions: pd.DataFrame, *, arms: list[str], baseline_arm: str, languages: list[str],
                    source_language: str, n_resamples: int, seed: int, metric: str) -> pd.DataFrame:
    """One row per (arm ≠ baseline, column, seed): arm, column (a language, ``avg``, ``avg_en``), seed, diff,
    p_value, n_examples.

    ``predictions`` is ``orchestrator.predictions.confirm_predictions``'s frame (arm, seed, language,
    example_id, prediction, gold; and tp, n_pred, n_gold for ``metric="f1"``). An arm is paired with the
    baseline on the same seed and the same examples: its example ids of a language must be the baseline's
    (``ValueError`` otherwise). Seeds or languages that one side lacks get no row.

    Deterministic given ``seed``: the resamples of a (training seed, language) come from a generator seeded
    by (``seed``, training seed, language), and every arm is scored on those same resamples, so adding an arm
    or a language changes no other row.
    """
    _check_metric(metric)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples!r}")
    values = _per_example_values(predictions, [*arms, baseline_arm], metric)
    targets = [lang for lang in languages if lang != source_language]
    rows: list[dict] = []
    training_seeds = sorted({s for (arm, s, _lang) in values if arm == baseline_arm})
    for training_seed in training_seeds:
        # arm -> language -> (observed diff, replicates, n_examples)
        tested: dict[str, dict[str, tuple[float, np.ndarray, int]]] = {}
        for lang in languages:
            base = values.get((baseline_arm, training_seed, lang))
            if base is None:
                continue
            compared = {arm: values[(arm, training_seed, lang)] for arm in arms
                        if arm != baseline_arm and (arm, training_seed, lang) in values}
            for arm, (ids, _) in compared.items():
                _check_pairing(arm, training_seed, lang, ids, base[0])
            if not compared:
                continue
            rng = np.random.default_rng([seed, training_seed, zlib.crc32(lang.encode())])
            diffs = _differences(metric, base[1], {arm: v for arm, (_, v) in compared.items()}, n_resamples, rng)
            for arm, (observed, replicates) in diffs.items():
                tested.setdefault(arm, {})[lang] = (observed, replicates, len(base[0]))
        for arm, by_lang in tested.items():
            for lang, (observed, replicates, n) in by_lang.items():
                rows.append(_row(arm, lang, training_seed, observed, replicates, n))
            for column, members in ((AVG, targets), (AVG_EN, list(languages))):
                if members and all(lang in by_lang for lang in members):
                    observed = float(np.mean([by_lang[lang][0] for lang in members]))
                    replicates = np.mean([by_lang[lang][1] for lang in members], axis=0)
                    rows.append(_row(arm, column, training_seed, observed, replicates,
                                     sum(by_lang[lang][2] for lang in members)))
    frame = pd.DataFrame(rows, columns=list(TEST_COLUMNS))
    order = {column: k for k, column in enumerate([*languages, AVG, AVG_EN])}
    frame["_arm"] = frame["arm"].map({arm: k for k, arm in enumerate(arms)})
    frame["_column"] = frame["column"].map(order)
    frame = frame.sort_values(["_arm", "_column", "seed"], kind="stable").drop(columns=["_arm", "_column"])
    return frame.reset_index(drop=True)


# ----------------------------------------------------------------------------------------- internals


def _single(metric: str, languages: list[tuple[np.ndarray, np.ndarray]], n_resamples: int,
            rng: np.random.Generator) -> BootstrapTest:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples!r}")
    if not languages:
        raise ValueError("no language to test")
    observed, replicates, n = [], [], 0
    for arm, base in languages:
        if len(arm) != len(base) or len(arm) == 0:
            raise ValueError(f"paired inputs must be non-empty and of one length, got {len(arm)} and {len(base)}")
        delta, delta_star = _differences(metric, base, {"arm": arm}, n_resamples, rng)["arm"]
        observed.append(delta)
        replicates.append(delta_star)
        n += len(arm)
    delta, delta_star = float(np.mean(observed)), np.mean(replicates, axis=0)
    return BootstrapTest(diff=delta, p_value=shifted_p_value(delta, delta_star), n_examples=n,
                         n_resamples=n_resamples)


def _differences(metric: str, base: np.ndarray, compared: dict[str, np.ndarray], n_resamples: int,
                 rng: np.random.Generator) -> dict[str, tuple[float, np.ndarray]]:
    """(observed δ, replicates δ*) of every compared system against ``base``, all on the same resamples."""
    systems = [base, *compared.values()]
    width = base.shape[1]
    stacked = np.hstack(systems).astype(np.float64)  # [n, width * systems]
    observed = _score(metric, stacked.sum(axis=0).reshape(len(systems), width))
    resampled = _resampled_sums(stacked, n_resamples, rng).reshape(n_resamples, len(systems), width)
    scores = _score(metric, resampled)  # [B, systems]
    n = len(base)
    if metric == ACCURACY:  # scores are sums: divide once
        observed, scores = observed / n, scores / n
    return {name: (float(observed[k + 1] - observed[0]), scores[:, k + 1] - scores[:, 0])
            for k, name in enumerate(compared)}


def _score(metric: str, sums: np.ndarray) -> np.ndarray:
    """Score per system from per-system sums (last axis: the metric's columns). Accuracy: the correct count."""
    if metric == ACCURACY:
        return sums[..., 0]
    if metric == MACRO_F1:  # columns: (tp, predicted, gold) of class 0, of class 1, ...
        per_class = sums.reshape(*sums.shape[:-1], -1, 3)
        tp, denominator = per_class[..., 0], per_class[..., 1] + per_class[..., 2]
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        present = (denominator > 0).sum(axis=-1)
        return np.divide(f1.sum(axis=-1), present, out=np.zeros_like(f1[..., 0]), where=present > 0)
    tp, denominator = sums[..., 0], sums[..., 1] + sums[..., 2]
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def _resampled_sums(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """[B, columns] sums of ``values``' rows over B resamples of its n rows with replacement.

    A resample is a row of counts (how often each example was drawn); the sums are counts @ values.
    """
    n = len(values)
    per_chunk = max(1, CHUNK_ELEMENTS // n)
    out = np.empty((n_resamples, values.shape[1]), np.float64)
    for start in range(0, n_resamples, per_chunk):
        size = min(per_chunk, n_resamples - start)
        draws = rng.integers(0, n, size=(size, n))
        draws += np.arange(size)[:, None] * n  # one bincount for the whole chunk
        counts = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n)
        out[start:start + size] = counts.astype(np.float64) @ values
    return out


def _per_example_values(predictions: pd.DataFrame, arms: list[str],
                        metric: str) -> dict[tuple[str, int, str], tuple[np.ndarray, np.ndarray]]:
    """(arm, seed, language) -> (sorted example ids, per-example values [n, width]) of the arms asked for."""
    needed = ["arm", "seed", "language", "example_id", *(ENTITY_COUNTS if metric == ENTITY_F1
                                                          else ("prediction", "gold"))]
    missing = [c for c in needed if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {', '.join(missing)} (metric {metric})")
    frame = predictions[predictions["arm"].isin(arms)]  # the baseline is among them (the caller adds it)
    if metric == ACCURACY:
        per_example = (frame["prediction"].to_numpy() == frame["gold"].to_numpy()).astype(np.float64)[:, None]
    elif metric == MACRO_F1:
        per_example = class_counts(frame["prediction"].to_numpy(np.int64), frame["gold"].to_numpy(np.int64),
                                   int(max(predictions["prediction"].max(), predictions["gold"].max())) + 1)
    else:
        per_example = frame[list(ENTITY_COUNTS)].to_numpy(np.float64)
    ids = frame["example_id"].to_numpy(np.int64)
    out = {}
    groups = frame[["arm", "seed", "language"]].groupby(["arm", "seed", "language"], sort=False, observed=True)
    for (arm, seed, lang), positions in groups.indices.items():
        group_ids = ids[positions]
        order = np.argsort(group_ids, kind="stable")
        group_ids = group_ids[order]
        if np.any(group_ids[1:] == group_ids[:-1]):
            raise ValueError(f"{arm} seed {seed} {lang}: an example id appears more than once")
        out[(str(arm), int(seed), str(lang))] = group_ids, per_example[positions[order]]
    return out


def class_counts(prediction: np.ndarray, gold: np.ndarray, classes: int) -> np.ndarray:
    """[n, 3 * classes] per example: (tp, predicted, gold) as 0/1 for class 0, class 1, ... (macro-F1's sums)."""
    out = np.zeros((len(prediction), classes, 3), np.float64)
    rows = np.arange(len(prediction))
    out[rows, prediction, 1] = 1
    out[rows, gold, 2] = 1
    out[rows[prediction == gold], gold[prediction == gold], 0] = 1
    return out.reshape(len(prediction), 3 * classes)


def _check_pairing(arm: str, seed: int, lang: str, ids: np.ndarray, base_ids: np.ndarray) -> None:
    if len(ids) != len(base_ids) or not np.array_equal(ids, base_ids):
        shared = len(np.intersect1d(ids, base_ids))
        raise ValueError(f"{arm} seed {seed} {lang}: example ids differ from the baseline's "
                         f"({len(ids)} vs {len(base_ids)} examples, {shared} shared); the runs scored other test sets")


def _row(arm: str, column: str, seed: int, observed: float, replicates: np.ndarray, n: int) -> dict:
    return {"arm": arm, "column": column, "seed": seed, "diff": observed,
            "p_value": shifted_p_value(observed, replicates), "n_examples": n}


def _column(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, np.float64).reshape(-1, 1)


def _class_columns(values: np.ndarray) -> np.ndarray:
    out = np.asarray(values, np.float64)
    if out.ndim != 2 or out.shape[1] % 3:
        raise ValueError(f"class counts must be [n, 3 * classes] (class_counts), got shape {out.shape}")
    return out


def _entity_counts(values: np.ndarray) -> np.ndarray:
    out = np.asarray(values, np.float64)
    if out.ndim != 2 or out.shape[1] != 3:
        raise ValueError(f"entity counts must be [n, 3] (tp, n_pred, n_gold), got shape {out.shape}")
    return out


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
