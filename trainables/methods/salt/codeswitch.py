"""From cached candidates and thresholds to SALT's code-switched training copies.

Per language, a position is substituted when its best candidate's probability reaches the
language's threshold (Appendix A: 1e-3 for English synonyms, 1e-7 for the target languages);
"all predicted high-probability token substitutions are applied". Which candidate is "best":

- ``candidate_rule="paper"`` (default): for a target language, the best token of that language's
  vocabulary, the original word included (section 2.1: the model predicts "tokens only in a
  specific target language"); when the original spelling is that best token (a word shared by
  English and the language), the position keeps it: no substitution.
- ``candidate_rule="exclude-original"``: the best token other than the original word (the
  project's rule before; it almost always substitutes, since a second-best token passes 1e-7).

English synonyms always exclude the original: unmasked, the MLM's best English token is the word
itself, so a synonym can only be another word.

Each copy keeps the original token ids beside the substituted ones (``source_input_ids``), which
the embedding mixup needs, and the label. The training set is the copies only unless
``keep_original`` (Robust-XLT's ``perturb.py``, whose scripts SALT follows, writes only the
perturbed copies). This runs inside every trial on arrays (no model, no per-example Python), so
trying another threshold or rule costs seconds, not another MLM pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import datasets

SOURCE_IDS = "source_input_ids"
PICKS = ("best", "sample")
CANDIDATE_RULES = ("paper", "exclude-original")
SYNONYMS = "en"  # the source language: its copy is synonyms, which always exclude the original word


@dataclass
class Candidates:
    """The scan's output for a training split, as flat arrays in row order."""

    offsets: np.ndarray  # [n + 1]: example i's tokens are flat[offsets[i]:offsets[i + 1]]
    input_ids: np.ndarray  # [T]
    cand: dict[str, np.ndarray]  # language -> [T, k] token ids, -1 where not substitutable
    prob: dict[str, np.ndarray]  # language -> [T, k] probabilities, best first
    # language -> [T] the original word's probability as a token of the language (0: not one of its tokens)
    original: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.cand)

    def __len__(self) -> int:
        return len(self.offsets) - 1


def load_candidates(path: str | Path) -> Candidates:
    import pyarrow.parquet as pq

    files = sorted(Path(path).glob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files]).sort_by("row")
    ids = table.column("input_ids").combine_chunks()
    offsets = ids.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    flat = ids.flatten().to_numpy()
    languages = [name[len("cand_"):] for name in table.column_names if name.startswith("cand_")]
    cand, prob, original = {}, {}, {}
    for lang in languages:
        c = table.column(f"cand_{lang}").combine_chunks().flatten().to_numpy()
        p = table.column(f"prob_{lang}").combine_chunks().flatten().to_numpy()
        k = len(c) // max(len(flat), 1)
        cand[lang], prob[lang] = c.reshape(-1, k), p.reshape(-1, k)
        original[lang] = table.column(f"orig_{lang}").combine_chunks().flatten().to_numpy()
    return Candidates(offsets, flat, cand, prob, original)


def with_original(ids: np.ndarray, cand: np.ndarray, prob: np.ndarray,
                  original_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paper's candidate list: the original word ranked among the other candidates by its probability.

    Returns ``k`` candidates per position, best first, where the original token id (``ids``) takes
    its rank (before a candidate of equal probability) and pushes the last one out. Positions
    that are not substitutable (``cand == -1``) stay so.
    """
    eligible = cand[:, :1] >= 0
    merged_cand = np.concatenate([ids[:, None].astype(cand.dtype), cand], axis=1)
    merged_prob = np.concatenate([np.where(eligible, original_prob[:, None], 0), prob], axis=1).astype(prob.dtype)
    order = np.argsort(-merged_prob, axis=1, kind="stable")[:, :cand.shape[1]]  # ties: the original first
    merged_cand = np.where(eligible, np.take_along_axis(merged_cand, order, axis=1), -1)
    return merged_cand, np.take_along_axis(merged_prob, order, axis=1)


def switch_tokens(ids: np.ndarray, cand: np.ndarray, prob: np.ndarray, threshold: float, *, pick: str = "best",
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Substitute where a candidate reaches ``threshold``; return (new ids, substituted mask).

    ``pick="best"`` (the paper) takes the most probable candidate; ``"sample"`` draws uniformly
    among the candidates that reach the threshold (needs a scan with ``top_k > 1``). A chosen
    candidate that is the original token (``with_original``'s lists) keeps the word: not substituted.
    """
    passing = (prob >= threshold) & (cand >= 0)  # [T, k]; candidates are sorted, so this is a prefix
    substituted = passing[:, 0]
    column = np.zeros(len(ids), dtype=np.int64)
    if pick == "sample":
        count = passing.sum(axis=1)
        draw = (rng or np.random.default_rng(0)).random(len(ids))
        column = np.minimum((draw * count).astype(np.int64), np.maximum(count - 1, 0))
    elif pick != "best":
        raise ValueError(f"pick must be one of {PICKS}, got {pick!r}")
    chosen = np.take_along_axis(cand, column[:, None], axis=1)[:, 0]
    substituted = substituted & (chosen != ids)
    return np.where(substituted, chosen, ids).astype(ids.dtype), substituted


def code_switched_copies(train: "datasets.Dataset", candidates: Candidates, thresholds: dict[str, float], *,
                         keep_original: bool, candidate_rule: str, pick: str = "best",
                         seed: int = 0) -> tuple["datasets.Dataset", dict[str, float]]:
    """The training set SALT trains on: one code-switched copy per language (and the originals if ``keep_original``).

    ``train`` is the tokenised source training split the candidates were scanned from; returns the
    dataset (with ``source_input_ids``) and each language's substitution rate (substituted /
    substitutable tokens). ``candidate_rule`` (``CANDIDATE_RULES``) applies to the target languages.
    """
    if candidate_rule not in CANDIDATE_RULES:
        raise ValueError(f"candidate_rule must be one of {CANDIDATE_RULES}, got {candidate_rule!r}")
    import datasets

    table = train.with_format("arrow")[:].combine_chunks()  # honours a select()'s indices
    original = table.column("input_ids").combine_chunks()
    if len(candidates) != len(train) or not np.array_equal(original.flatten().to_numpy(), candidates.input_ids):
        raise ValueError("the cached SALT candidates were scanned from other training data or another tokenizer; "
                         "delete the scan cache or rerun the sweep so the scan matches")
    rng = np.random.default_rng(seed)
    offsets = pa.array(candidates.offsets.astype(np.int32))
    parts, rates = [], {}
    if keep_original:
        parts.append(table.append_column(SOURCE_IDS, original))
    for lang, threshold in thresholds.items():
        cand, prob = candidates.cand[lang], candidates.prob[lang]
        if candidate_rule == "paper" and lang != SYNONYMS:
            cand, prob = with_original(candidates.input_ids, cand, prob, candidates.original[lang])
        new_ids, substituted = switch_tokens(candidates.input_ids, cand, prob, threshold, pick=pick, rng=rng)
        substitutable = candidates.cand[lang][:, 0] >= 0
        rates[lang] = float(substituted.sum() / max(substitutable.sum(), 1))
        switched = pa.ListArray.from_arrays(offsets, pa.array(new_ids, type=original.type.value_type))
        copy = table.set_column(table.column_names.index("input_ids"), "input_ids", switched)
        parts.append(copy.append_column(SOURCE_IDS, original))
    return datasets.Dataset(pa.concat_tables(parts)), rates
