"""The papers' published numbers, and a block that sets them beside a sweep's means.

Why a data file: a reader of a sweep's report asks first "is this what the paper got?". The
answer needs the published numbers at hand, transcribed once, checked against the papers by
tests (``tests/test_paper_numbers.py``), and kept apart from code. ``paper_numbers.csv`` beside
this module holds one row per printed number:

``paper, table, row``
    where it is printed (``row`` is the row label as printed, e.g. ``mBERT*``).
``experiment, arm``
    which of our results it corresponds to (e.g. X-Mixup's Table 5 ``w/o mixup`` is ``xmixup_no_mixup``,
    not ``translate_train``).
``model, task``
    the Hugging Face id of the encoder the paper used, and our task name.
``column, value, metric``
    a language code, ``avg`` (macro average without English) or ``avg_en`` (with English),
    mapped from each paper's own average column (X-Mixup's "Avg." includes English, SALT prints
    both); the value as printed, in percent; ``acc`` or ``f1``.
``kind``
    ``score`` for a mean score; ``max_gain`` for a "gains up to x points" figure (the BTF
    paper's summary), which must never be set beside a mean: :func:`paper_block` uses
    only ``score`` rows.
``note``
    how the row was read, and every inference (a model a table does not name, a row whose label
    and content disagree).

Nothing is computed: every value is one the papers print.

Reading a block (:func:`paper_block`): ``gap`` is ours − published in points, ``gap_in_std`` the
gap in units of our seed std. Rows come from the sweep's own model when the papers report it
(a reproduction check, ``same_model``); otherwise from the experiment's paper model, for
orientation only (the smoke profile's tiny model, or another encoder). The sweep may log
:func:`repro_gap_avg` as parent-run metrics ``<arm>.repro_gap_avg``; it does so only on the
paper profile with the paper's model (the caller decides; the function already returns nothing
for another model).
"""

from __future__ import annotations

import html
import math
from io import StringIO
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd

from orchestrator.experiments import EXPERIMENTS, get_experiment
from orchestrator.profiles import PAPER
from orchestrator.stats_summary import AVG, AVG_EN
from trainables.tasks import TASKS

PAPER_NUMBERS_FILE = "paper_numbers.csv"
"""Package data of :mod:`orchestrator` (``[tool.setuptools.package-data]``)."""

COLUMNS: tuple[str, ...] = (
    "paper", "table", "row", "experiment", "arm", "model", "task", "column", "value", "metric", "kind", "note",
)
"""The file's columns; ``note`` may be empty, every other text column may not."""

SCORE = "score"
"""``kind`` of a published mean score (per language or an average): what a block compares."""
MAX_GAIN = "max_gain"
"""``kind`` of a "gains up to x points over the baseline" figure (column ``max``): never beside a mean."""
KINDS: tuple[str, ...] = (SCORE, MAX_GAIN)
METRICS: tuple[str, ...] = ("acc", "f1")

PAPER_LABELS: dict[str, str] = {
    "salt-2309.10891": "SALT",
    "xmixup-iclr2022": "X-Mixup",
    "btf-2310.04726": "BTF",
}
"""Short names of the papers in a block's ``source`` and legend (an unknown id is shown as is)."""

BLOCK_COLUMNS: tuple[str, ...] = (
    "arm", "column", "published", "ours_mean", "ours_std", "gap", "gap_in_std", "source", "model", "same_model",
)
OURS_COLUMNS: tuple[str, ...] = ("arm", "column", "mean", "std")
"""What :func:`paper_block` reads of ``ours`` (``Summary.to_frame()`` has them, as fractions)."""

SMOKE_MODEL_LABEL = "the smoke model"
"""How the legend names a sweep whose model is ``None`` (the smoke profile's offline model)."""

_EMPTY_CELL = "–"
_KEY: tuple[str, ...] = ("paper", "table", "row", "experiment", "model", "column")
_TEXT_COLUMNS: tuple[str, ...] = tuple(column for column in COLUMNS if column not in ("value", "note"))


# --------------------------------------------------------------------------- loading


def load_paper_numbers(path: str | Path | None = None) -> pd.DataFrame:
    """The published numbers, one row per printed number, in the file's order.

    ``path`` defaults to the package's ``paper_numbers.csv``. Raises ``ValueError`` with one
    line naming the file (and the line) when it is malformed: a missing column, an empty
    field, a value that is not a number, an unknown experiment / task / kind / metric, a
    column that is not one of the task's languages or averages, or a number listed twice.
    """
    if path is None:
        return _packaged_numbers().copy()
    return _read_checked(Path(path).read_text(encoding="utf-8"), str(path))


def published_for(experiment: str, model: str | None = None, *, numbers: pd.DataFrame | None = None) -> pd.DataFrame:
    """The published rows of ``experiment`` (every kind), only those of ``model`` when it is given.

    ``numbers`` defaults to :func:`load_paper_numbers`. An experiment with no published
    numbers gives an empty frame with the file's columns.
    """
    frame = load_paper_numbers() if numbers is None else numbers
    selected = frame["experiment"] == experiment
    if model is not None:
        selected &= frame["model"] == model
    return frame[selected].reset_index(drop=True)


def paper_model(experiment: str) -> str:
    """The encoder ``experiment`` runs on the paper profile: its own model, else the profile's.

    SALT's experiments name uncased mBERT (SALT's Appendix A); the others run the paper
    profile's cased mBERT (X-Mixup's footnote 7, xtreme). Raises ``KeyError`` for an unknown
    experiment.
    """
    model = get_experiment(experiment).model or PAPER.model
    assert model is not None, "the paper profile names its model"
    return model


@lru_cache(maxsize=1)
def _packaged_numbers() -> pd.DataFrame:
    """Read and check the package's file once per process (callers get copies)."""
    text = resources.files(__package__).joinpath(PAPER_NUMBERS_FILE).read_text(encoding="utf-8")
    return _read_checked(text, PAPER_NUMBERS_FILE)


def _read_checked(text: str, name: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"{name}: not a readable CSV ({' '.join(str(error).split())})") from None
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {', '.join(missing)} (expected {', '.join(COLUMNS)})")
    frame = frame[list(COLUMNS)].copy()
    values = pd.to_numeric(frame["value"].str.strip(), errors="coerce")
    for index, record in enumerate(frame.to_dict("records")):
        problem = _row_problem(record, values.iloc[index])
        if problem:
            raise ValueError(f"{name}: line {index + 2}: {problem}")
    duplicated = frame.duplicated(list(_KEY), keep="first")
    if duplicated.any():
        line = int(duplicated.to_numpy().argmax()) + 2
        raise ValueError(f"{name}: line {line}: the same (paper, table, row, experiment, model, column) twice")
    frame["value"] = values.astype(float)
    return frame


def _row_problem(record: dict[str, str], value: float) -> str:
    """What is wrong with one row of the file; empty when nothing is."""
    empty = [column for column in _TEXT_COLUMNS if not record[column].strip()]
    if empty:
        return f"empty {', '.join(empty)}"
    if not math.isfinite(value):
        return f"value {record['value']!r} is not a number"
    experiment = EXPERIMENTS.get(record["experiment"])
    if experiment is None:
        return f"unknown experiment {record['experiment']!r}"
    if record["task"] != experiment.task:
        return f"task {record['task']!r} is not {record['experiment']}'s task {experiment.task!r}"
    if record["kind"] not in KINDS:
        return f"kind {record['kind']!r} is not one of {', '.join(KINDS)}"
    if record["metric"] not in METRICS:
        return f"metric {record['metric']!r} is not one of {', '.join(METRICS)}"
    columns = (*TASKS[experiment.task].languages, AVG, AVG_EN)
    if record["kind"] == SCORE and record["column"] not in columns:
        return f"column {record['column']!r} is not a {experiment.task} language, {AVG} or {AVG_EN}"
    return ""


# --------------------------------------------------------------------------- the block


def paper_block(
    ours: pd.DataFrame,
    experiment: str,
    model: str | None,
    *,
    paper_model_for_smoke: str | None = None,
    numbers: pd.DataFrame | None = None,
    languages_only: bool = False,
) -> pd.DataFrame:
    """Our means beside the published ones, one row per (arm, column) that both have.

    ``ours`` has columns ``arm, column, mean, std`` as fractions (``Summary.to_frame()``);
    ``model`` is the sweep's encoder (``None``: the smoke model). The published rows are the
    ``score`` rows of ``experiment`` on ``model`` when the papers report that model (a
    reproduction check); otherwise those on ``paper_model_for_smoke``, by default the
    experiment's paper model (:func:`paper_model`), for orientation only. The columns are
    :data:`BLOCK_COLUMNS`: ``published``, ``ours_mean``, ``ours_std`` and ``gap`` (ours −
    published) in points, ``gap_in_std`` the gap over our std (NaN when the std is NaN or 0),
    ``source`` ("SALT Table 1, row mBERT*"), ``model`` (the published rows' model) and
    ``same_model`` (whether that is the sweep's model). Rows follow ``ours``'s order.

    ``languages_only`` (a sweep on some of the benchmark's languages, ``--languages``) leaves the averages out:
    ours are over the chosen targets, the published ones over all of them, so only language columns compare.

    When a paper prints the same (arm, column) twice (a main table and an ablation table),
    the number of the source row with the most columns is used (SALT Table 2's full row over
    Table 3's averages), then the file's order.
    """
    missing = [column for column in OURS_COLUMNS if column not in ours.columns]
    if missing:
        raise ValueError(f"ours lacks columns {', '.join(missing)} (expected {', '.join(OURS_COLUMNS)})")
    frame = load_paper_numbers() if numbers is None else numbers
    scores = frame[(frame["experiment"] == experiment) & (frame["kind"] == SCORE)]
    if languages_only:
        scores = scores[~scores["column"].isin((AVG, AVG_EN))]
    if scores.empty:
        return _empty_block()
    same_model = model is not None and bool((scores["model"] == model).any())
    shown_model = model if same_model else (paper_model_for_smoke or paper_model(experiment))
    published = _one_per_cell(scores[scores["model"] == shown_model])
    if published.empty:
        return _empty_block()
    merged = ours[list(OURS_COLUMNS)].merge(published, on=["arm", "column"], how="inner")
    ours_mean = merged["mean"].astype(float) * 100.0
    ours_std = merged["std"].astype(float) * 100.0
    gap = ours_mean - merged["value"]
    usable_std = ours_std.where(ours_std > 0)
    block = pd.DataFrame({
        "arm": merged["arm"],
        "column": merged["column"],
        "published": merged["value"],
        "ours_mean": ours_mean,
        "ours_std": ours_std,
        "gap": gap,
        "gap_in_std": gap / usable_std,
        "source": merged["source"],
        "model": shown_model,
        "same_model": same_model,
    })
    return block.astype({"same_model": "bool"}).reset_index(drop=True)


def repro_gap_avg(block: pd.DataFrame, *, column: str = AVG) -> dict[str, float]:
    """Arm -> gap (points) on ``column`` (``avg`` by default), from same-model rows only.

    Empty for a block of another model (orientation only) and for arms without that column
    (X-Mixup prints only the average with English: ``column="avg_en"`` reads that). Arms whose
    gap is NaN (no result of ours) are left out. The sweep logs it as parent-run metrics
    ``<arm>.repro_gap_avg``, on the paper profile with the paper's model only.
    """
    if block.empty:
        return {}
    rows = block[block["same_model"].astype(bool) & (block["column"] == column)]
    return {str(arm): float(gap) for arm, gap in zip(rows["arm"], rows["gap"]) if math.isfinite(gap)}


def _one_per_cell(rows: pd.DataFrame) -> pd.DataFrame:
    """One published number per (arm, column): the fullest source row's, then the first in the file."""
    source_key = ["paper", "table", "row"]
    ranked = rows.assign(
        _size=rows.groupby(source_key)["column"].transform("size"),
        _position=range(len(rows)),
    ).sort_values(["_size", "_position"], ascending=[False, True], kind="stable")
    chosen = ranked.drop_duplicates(["arm", "column"], keep="first")
    sources = [
        f"{PAPER_LABELS.get(paper, paper)} {table}, row {row}"
        for paper, table, row in zip(chosen["paper"], chosen["table"], chosen["row"])
    ]
    return chosen.assign(source=sources)[["arm", "column", "value", "source", "paper", "table", "row"]]


_BLOCK_DTYPES: dict[str, str] = {
    "published": "float64", "ours_mean": "float64", "ours_std": "float64", "gap": "float64",
    "gap_in_std": "float64", "same_model": "bool",
}


def _empty_block() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=_BLOCK_DTYPES.get(column, "object")) for column in BLOCK_COLUMNS})



# --------------------------------------------------------------------------- rendering

BLOCK_HEADERS: tuple[str, ...] = ("arm", "column", "published", "ours", "gap", "gap/std", "source")
BLOCK_TITLE = "Published results"
_TEXT_HEADERS = frozenset({"arm", "column", "source"})  # left-aligned in Markdown; numbers right-aligned


def paper_block_legend(block: pd.DataFrame, *, sweep_model: str | None) -> list[str]:
    """Plain-text legend lines: where the numbers are from, on which model, how to read the gap.

    A block of another model than the sweep's says so: it is for orientation only.
    """
    if block.empty:
        return []
    tables: dict[str, list[str]] = {}
    for source in block["source"]:
        table, row = source.split(", row ", 1)
        rows = tables.setdefault(table, [])
        if row not in rows:
            rows.append(row)
    sources = [f"{table} (rows {', '.join(rows)})" for table, rows in tables.items()]
    listed = sources[0] if len(sources) == 1 else ", ".join(sources[:-1]) + " and " + sources[-1]
    paper_model_name = str(block["model"].iloc[0])
    lines = [
        f"published numbers from {listed}, on {paper_model_name}",
        "gap = ours − published, in points; gap/std = in units of our seed std",
    ]
    if not bool(block["same_model"].iloc[0]):
        ran = sweep_model or SMOKE_MODEL_LABEL
        lines.append(f"this sweep ran {ran}, not {paper_model_name}: for orientation only, not a reproduction check")
    return lines


def render_paper_block_markdown(block: pd.DataFrame, *, sweep_model: str | None) -> str:
    """A Markdown section (### heading, pipe table, legend paragraphs); empty block: ``""``."""
    if block.empty:
        return ""
    cells = [[_markdown_escape(text) for text in row] for row in [list(BLOCK_HEADERS), *_block_rows(block)]]
    widths = [max(3, *(len(row[i]) for row in cells)) for i in range(len(BLOCK_HEADERS))]
    rule = ["-" * width if header in _TEXT_HEADERS else "-" * (width - 1) + ":"
            for header, width in zip(BLOCK_HEADERS, widths)]
    table = [_markdown_line(cells[0], widths), _markdown_line(rule, widths)]
    table.extend(_markdown_line(row, widths) for row in cells[1:])
    legend = [_markdown_escape(line) for line in paper_block_legend(block, sweep_model=sweep_model)]
    return "\n\n".join([f"### {BLOCK_TITLE}", "\n".join(table), *legend]) + "\n"


def render_paper_block_html(block: pd.DataFrame, *, sweep_model: str | None) -> str:
    """An HTML fragment (<h2> heading, table, legend paragraphs), all text escaped; empty block: ``""``."""
    if block.empty:
        return ""
    head = "".join(f"<th>{html.escape(header)}</th>" for header in BLOCK_HEADERS)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in _block_rows(block)
    )
    legend = "\n".join(
        f'<p class="legend">{html.escape(line)}</p>' for line in paper_block_legend(block, sweep_model=sweep_model)
    )
    return (
        f"<h2>{html.escape(BLOCK_TITLE)}</h2>\n<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n"
        f"</table>\n{legend}\n"
    )


def _block_rows(block: pd.DataFrame) -> list[list[str]]:
    """The cells of each row, one decimal: published, ours as mean ± std, signed gap, gap/std."""
    rows = []
    for record in block.to_dict("records"):
        mean, std = record["ours_mean"], record["ours_std"]
        ours = _EMPTY_CELL if not math.isfinite(mean) else (
            f"{mean:.1f} ± {std:.1f}" if math.isfinite(std) else f"{mean:.1f}")
        rows.append([
            str(record["arm"]), str(record["column"]), f"{record['published']:.1f}", ours,
            _signed(record["gap"]), _signed(record["gap_in_std"]), str(record["source"]),
        ])
    return rows


def _signed(value: float) -> str:
    return f"{value:+.1f}" if math.isfinite(value) else _EMPTY_CELL


def _markdown_escape(text: str) -> str:
    """``|`` would end a cell, and ``*`` (SALT's ``mBERT*``) would start emphasis."""
    return text.replace("|", "\\|").replace("*", "\\*")


def _markdown_line(cells: list[str], widths: list[int]) -> str:
    padded = [text.ljust(width) if header in _TEXT_HEADERS else text.rjust(width)
              for header, text, width in zip(BLOCK_HEADERS, cells, widths)]
    return "| " + " | ".join(padded) + " |"
