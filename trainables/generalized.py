"""SALT's generalized XNLI setting: premise and hypothesis in different languages (SALT section 4, Tables 4-6).

XNLI's test sets are parallel (each language's set is a translation of the same English pairs, in the
same order, with the same gold labels), so row ``i`` of every language's test split is one example.
The generalized test set pairs, for every (premise language p, hypothesis language h), the premise of
row ``i`` in ``p`` with the hypothesis of row ``i`` in ``h``; its gold label is row ``i``'s. 15 languages
give 15 x 15 = 225 parts, the diagonal being the ordinary test sets. The pairing is by row, and it is
checked: every language must have as many test rows as the others and the same label on every row,
else the sets are not parallel and the evaluation is refused with one line (``DataUnavailable``).

What a confirm run reports (``trainables.evaluation.Evaluator.generalized_scores``): the accuracy of every
pair under ``gen_pair_acc_<p>_<h>`` (the cells of the run's matrix artifact, not MLflow metrics of
their own), and as metrics the average over hypothesis languages per premise language
(``gen_acc_premise_<p>``, a row average of SALT's Tables 4-6), the average over premise languages per
hypothesis language (``gen_acc_hypothesis_<h>``, a column average), the average over all 225 pairs
(``gen_acc_avg``, the tables' bottom-right cell; the diagonal included, as there) and the seconds the
evaluation took (``gen_eval_seconds``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict, DatasetInfo
from datasets.table import InMemoryTable

from trainables.data import DataUnavailable
from trainables.tasks import TaskSpec, split_key

TASKS = ("xnli",)
"""Tasks the generalized evaluation applies to (sentence pairs with parallel test sets). PAWS-X's test sets
are parallel too (Robust-XLT has ``scripts/eval_generalized_pawsx.sh``), but SALT reports XNLI only."""

PAIR_PREFIX = "gen_pair_acc_"
PREMISE_PREFIX = "gen_acc_premise_"
HYPOTHESIS_PREFIX = "gen_acc_hypothesis_"
OVERALL = "gen_acc_avg"
SECONDS = "gen_eval_seconds"
ARTIFACT_DIR = "generalized"
MATRIX_FILE = "generalized_xnli.csv"
"""A confirm run's artifact ``generalized/generalized_xnli.csv``: rows premise languages (column
``premise``), columns hypothesis languages, accuracies as fractions."""
PREMISE_COLUMN = "premise"


def part_name(premise: str, hypothesis: str) -> str:
    """The generalized test set's part holding premises in ``premise`` and hypotheses in ``hypothesis``."""
    return f"{premise}-{hypothesis}"


def pair_metric(premise: str, hypothesis: str) -> str:
    return f"{PAIR_PREFIX}{premise}_{hypothesis}"


def generalized_test_set(raw: DatasetDict, task: TaskSpec, languages: Sequence[str] | None = None) -> DatasetDict:
    """Every (premise language, hypothesis language) part, ``part_name(p, h)``, from ``raw``'s test splits.

    Part (p, h) has row i's premise from ``test_<p>``, its hypothesis from ``test_<h>`` and its label
    (the same in every language). The columns are the test splits' own Arrow columns, not copies.
    Raises ``DataUnavailable`` (one line) when the test sets are not parallel.
    """
    if task.name not in TASKS or len(task.text_fields) != 2:
        raise ValueError(f"the generalized setting pairs premises and hypotheses of {', '.join(TASKS)}, "
                         f"not {task.name}")
    languages = list(languages or task.languages)
    premise_field, hypothesis_field = task.text_fields
    tables = {lang: raw[split_key(task.test_split, lang)].with_format("arrow")[:] for lang in languages}
    features = raw[split_key(task.test_split, languages[0])].features
    _check_parallel(tables, task, languages)
    parts = {}
    for premise in languages:
        for hypothesis in languages:
            columns = {premise_field: tables[premise].column(premise_field),
                       hypothesis_field: tables[hypothesis].column(hypothesis_field),
                       task.label_field: tables[premise].column(task.label_field)}
            table = pa.table({name: columns[name] for name in features}).cast(features.arrow_schema)
            parts[part_name(premise, hypothesis)] = Dataset(InMemoryTable(table), info=DatasetInfo(features=features))
    return DatasetDict(parts)


def _check_parallel(tables: Mapping[str, pa.Table], task: TaskSpec, languages: list[str]) -> None:
    first = languages[0]
    sizes = {lang: tables[lang].num_rows for lang in languages}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{lang} {n}" for lang, n in sizes.items())
        raise DataUnavailable(f"the generalized XNLI evaluation pairs the test sets row by row, but their sizes differ "
                              f"({shown}): they are not parallel; pass --data-dir with XNLI's parallel test sets or "
                              "turn it off (--no-generalized-xnli)")
    labels = {lang: np.asarray(tables[lang].column(task.label_field).to_numpy()) for lang in languages}
    for lang in languages[1:]:
        differ = np.flatnonzero(labels[lang] != labels[first])
        if differ.size:
            row = int(differ[0])
            names = task.label_names
            raise DataUnavailable(
                f"the generalized XNLI evaluation pairs the test sets row by row, but {differ.size} of "
                f"{sizes[lang]} rows of test_{lang} have another label than test_{first} (row {row}: "
                f"{names[labels[lang][row]]} vs {names[labels[first][row]]}): they are not parallel; pass --data-dir "
                "with XNLI's parallel test sets or turn it off (--no-generalized-xnli)")


def summary_metrics(accuracy: Mapping[tuple[str, str], float], languages: Sequence[str]) -> dict[str, float]:
    """Every pair's accuracy (``gen_pair_acc_<p>_<h>``), the row and column averages and the overall average.

    Averages are over the pairs present in ``accuracy`` (all 225 in a run that evaluated them all).
    """
    out = {pair_metric(p, h): float(value) for (p, h), value in accuracy.items()}
    for lang in languages:
        row = [value for (p, _h), value in accuracy.items() if p == lang]
        column = [value for (_p, h), value in accuracy.items() if h == lang]
        if row:
            out[f"{PREMISE_PREFIX}{lang}"] = float(np.mean(row))
        if column:
            out[f"{HYPOTHESIS_PREFIX}{lang}"] = float(np.mean(column))
    if accuracy:
        out[OVERALL] = float(np.mean(list(accuracy.values())))
    return out


def matrix_rows(metrics: Mapping[str, float], languages: Sequence[str]) -> list[dict[str, object]]:
    """The matrix artifact's rows from a run's final metrics: one per premise language present, with a
    column per hypothesis language ("" where a pair is missing); empty when the run has no pairs."""
    rows = []
    for premise in languages:
        values = {h: metrics.get(pair_metric(premise, h)) for h in languages}
        if any(value is not None for value in values.values()):
            rows.append({PREMISE_COLUMN: premise, **{h: "" if v is None else float(v) for h, v in values.items()}})
    return rows


def is_pair_metric(key: str) -> bool:
    """A pair's accuracy: a cell of the matrix artifact, kept out of a run's MLflow metrics."""
    return key.startswith(PAIR_PREFIX)
