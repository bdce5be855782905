"""From cached candidates and thresholds to SALT's code-switched training copies.

Per language, a position is substituted when its best candidate's probability reaches the
language's threshold (Appendix A: 1e-3 for English synonyms, 1e-7 for the target languages);
"all predicted high-probability token substitutions are applied". Each copy keeps the original
token ids beside the substituted ones (``source_input_ids``), which the embedding mixup needs,
and the label. This runs inside every trial on arrays (no model, no per-example Python), so
trying another threshold costs seconds, not another MLM pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

SOURCE_IDS = "source_input_ids"
PICKS = ("best", "sample")


@dataclass
class Candidates:
    """The scan's output for a training split, as flat arrays in row order."""

    offsets: np.ndarray  # [n + 1]: example i's tokens are flat[offsets[i]:offsets[i + 1]]
    input_ids: np.ndarray  # [T]
    cand: dict[str, np.ndarray]  # language -> [T, k] token ids, -1 where not substitutable
    prob: dict[str, np.ndarray]  # language -> [T, k] probabilities, best first

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
    cand, prob = {}, {}
    for lang in languages:
        c = table.column(f"cand_{lang}").combine_chunks().flatten().to_numpy()
        p = table.column(f"prob_{lang}").combine_chunks().flatten().to_numpy()
        k = len(c) // max(len(flat), 1)
        cand[lang], prob[lang] = c.reshape(-1, k), p.reshape(-1, k)
    return Candidates(offsets, flat, cand, prob)


def switch_tokens(ids: np.ndarray, cand: np.ndarray, prob: np.ndarray, threshold: float, *, pick: str = "best",
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Substitute where a candidate reaches ``threshold``; return (new ids, substituted mask).

    ``pick="best"`` (the paper) takes the most probable candidate; ``"sample"`` draws uniformly
    among the candidates that reach the threshold (needs a scan with ``top_k > 1``).
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
    return np.where(substituted, chosen, ids).astype(ids.dtype), substituted


def code_switched_copies(train: "datasets.Dataset", candidates: Candidates, thresholds: dict[str, float], *,
                         keep_original: bool = True, pick: str = "best",
                         seed: int = 0) -> tuple["datasets.Dataset", dict[str, float]]:
    """The training set SALT trains on: (the originals and) one code-switched copy per language.

    ``train`` is the tokenised source training split the candidates were scanned from; returns the
    dataset (with ``source_input_ids``) and each language's substitution rate (substituted /
    substitutable tokens).
    """
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
        new_ids, substituted = switch_tokens(candidates.input_ids, candidates.cand[lang], candidates.prob[lang],
                                             threshold, pick=pick, rng=rng)
        substitutable = candidates.cand[lang][:, 0] >= 0
        rates[lang] = float(substituted.sum() / max(substitutable.sum(), 1))
        switched = pa.ListArray.from_arrays(offsets, pa.array(new_ids, type=original.type.value_type))
        copy = table.set_column(table.column_names.index("input_ids"), "input_ids", switched)
        parts.append(copy.append_column(SOURCE_IDS, original))
    return datasets.Dataset(pa.concat_tables(parts)), rates
