"""The published numbers file against the papers, its loader, and the block beside our means.

The expected numbers below are typed from the papers' text (``/work/shared/papers``: SALT
2309.10891 Tables 1-3, X-Mixup ICLR 2022 Tables 3, 5, 9, 11, 12, the BTF summary), not read
from the CSV, so a mistyped or mis-mapped number in the file fails here.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.experiments import EXPERIMENTS
from orchestrator.stats import summarize
from orchestrator.paper_numbers import (
    BLOCK_COLUMNS,
    COLUMNS,
    MAX_GAIN,
    SCORE,
    load_paper_numbers,
    paper_block,
    paper_block_legend,
    paper_model,
    published_for,
    render_paper_block_html,
    render_paper_block_markdown,
    repro_gap_avg,
)

SALT = "salt-2309.10891"
XMIXUP = "xmixup-iclr2022"
BTF = "btf-2310.04726"
UNCASED = "bert-base-multilingual-uncased"
CASED = "bert-base-multilingual-cased"
XLMR = "xlm-roberta-large"
XNLI = ("en", "fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi", "sw", "ur")
PAWSX = ("en", "de", "es", "fr", "ja", "ko", "zh")

# (paper, table, row as printed, experiment, model, column) -> (arm, value as printed)
SPOT_CHECKS: list[tuple[tuple[str, str, str, str, str, str], tuple[str, float]]] = [
    # SALT Table 1 (XNLI): "avg." is without en, "w/en" with it.
    ((SALT, "Table 1", "mBERT*", "salt_xnli", UNCASED, "en"), ("baseline", 81.8)),
    ((SALT, "Table 1", "mBERT*", "salt_xnli", UNCASED, "ar"), ("baseline", 64.7)),
    ((SALT, "Table 1", "mBERT*", "salt_xnli", UNCASED, "avg"), ("baseline", 64.7)),
    ((SALT, "Table 1", "mBERT*", "salt_xnli", UNCASED, "avg_en"), ("baseline", 66.0)),
    ((SALT, "Table 1", "+SALT", "salt_xnli", UNCASED, "bg"), ("salt", 69.6)),
    ((SALT, "Table 1", "+SALT", "salt_xnli", UNCASED, "th"), ("salt", 53.5)),
    ((SALT, "Table 1", "+SALT", "salt_xnli", UNCASED, "avg"), ("salt", 65.7)),
    ((SALT, "Table 1", "+SALT", "salt_xnli", UNCASED, "avg_en"), ("salt", 66.8)),
    ((SALT, "Table 1", "mBERT", "baseline_xnli", CASED, "sw"), ("baseline", 49.7)),
    # SALT Table 2 (PAWS-X)
    ((SALT, "Table 2", "mBERT*", "salt_pawsx", UNCASED, "ko"), ("baseline", 76.1)),
    ((SALT, "Table 2", "mBERT*", "salt_pawsx", UNCASED, "avg"), ("baseline", 81.6)),
    ((SALT, "Table 2", "+SALT", "salt_pawsx", UNCASED, "ja"), ("salt", 78.6)),
    ((SALT, "Table 2", "+SALT", "salt_pawsx", UNCASED, "avg_en"), ("salt", 85.5)),
    ((SALT, "Table 2", "mBERT", "baseline_pawsx", CASED, "avg"), ("baseline", 80.0)),
    # SALT Table 3 (PAWS-X ablations): "avg." and "avg. (incl. en)"
    ((SALT, "Table 3", "SALT", "salt_pawsx", UNCASED, "avg"), ("salt", 84.1)),
    ((SALT, "Table 3", "- en-only", "salt_pawsx", UNCASED, "avg"), ("salt_en_only", 83.4)),
    ((SALT, "Table 3", "- en-only", "salt_pawsx", UNCASED, "avg_en"), ("salt_en_only", 84.8)),
    ((SALT, "Table 3", "- w/o mixup", "salt_pawsx", UNCASED, "avg"), ("salt_no_mixup", 83.3)),
    ((SALT, "Table 3", "- w/o mixup", "salt_pawsx", UNCASED, "avg_en"), ("salt_no_mixup", 84.7)),
    ((SALT, "Table 3", "mBERT", "salt_pawsx", UNCASED, "avg_en"), ("baseline", 83.4)),
    # X-Mixup Table 3, mBERT block (one Avg per task, with en)
    ((XMIXUP, "Table 3", "mBERT (Hu et al., 2020)", "xmixup_xnli", CASED, "avg_en"), ("baseline", 65.4)),
    ((XMIXUP, "Table 3", "mBERT (Hu et al., 2020)", "baseline_pawsx", CASED, "avg_en"), ("baseline", 81.9)),
    ((XMIXUP, "Table 3", "Trans-train (Hu et al., 2020)", "xmixup_xnli", CASED, "avg_en"), ("translate_train", 75.1)),
    ((XMIXUP, "Table 3", "Trans-train (Hu et al., 2020)", "xmixup_pawsx", CASED, "avg_en"), ("translate_train", 88.9)),
    ((XMIXUP, "Table 3", "X-Mixup", "xmixup_xnli", CASED, "avg_en"), ("xmixup", 78.8)),
    ((XMIXUP, "Table 3", "X-Mixup", "xmixup_pawsx", CASED, "avg_en"), ("xmixup", 89.7)),
    # X-Mixup Table 3, XLM-R-large block
    ((XMIXUP, "Table 3", "XLM-R (Hu et al., 2020)", "xmixup_xnli", XLMR, "avg_en"), ("baseline", 79.2)),
    ((XMIXUP, "Table 3", "Trans-train (Wei et al., 2020)", "xmixup_pawsx", XLMR, "avg_en"), ("translate_train", 90.1)),
    ((XMIXUP, "Table 3", "X-Mixup", "xmixup_pawsx", XLMR, "avg_en"), ("xmixup", 91.8)),
    # X-Mixup Tables 11 (XNLI) and 12 (PAWS-X), per language
    ((XMIXUP, "Table 11", "X-Mixup", "xmixup_xnli", XLMR, "sw"), ("xmixup", 81.2)),
    ((XMIXUP, "Table 11", "X-Mixup", "xmixup_xnli", XLMR, "avg_en"), ("xmixup", 85.3)),
    ((XMIXUP, "Table 11", "XLM-R", "xmixup_xnli", XLMR, "ur"), ("translate_train", 77.7)),
    ((XMIXUP, "Table 11", "mBERT", "xmixup_xnli", CASED, "ur"), ("translate_train", 67.4)),
    ((XMIXUP, "Table 12", "X-Mixup", "xmixup_pawsx", XLMR, "ja"), ("xmixup", 87.3)),
    ((XMIXUP, "Table 6", "X-Mixup", "xmixup_xnli", XLMR, "ur"), ("xmixup_seen", 79.0)),
    ((XMIXUP, "Table 6", "X-Mixup", "xmixup_xnli", XLMR, "sw"), ("xmixup_seen", 80.3)),
    ((XMIXUP, "Table 6", "X-Mixup", "xmixup_xnli", XLMR, "avg_en"), ("xmixup_seen", 84.8)),
    ((XMIXUP, "Table 12", "X-Mixup", "xmixup_pawsx", XLMR, "avg_en"), ("xmixup", 91.8)),
    ((XMIXUP, "Table 12", "XLM-R", "xmixup_pawsx", XLMR, "ko"), ("baseline", 79.0)),
    ((XMIXUP, "Table 12", "mBERT", "xmixup_pawsx", CASED, "ko"), ("baseline", 69.6)),
    # X-Mixup Table 5 (ablations, XNLI column; XLM-R-large per section 6's footnote)
    ((XMIXUP, "Table 5", "X-Mixup", "xmixup_xnli", XLMR, "avg_en"), ("xmixup", 85.3)),
    ((XMIXUP, "Table 5", "w/o mixup", "xmixup_xnli", XLMR, "avg_en"), ("xmixup_no_mixup", 82.9)),
    ((XMIXUP, "Table 5", "w/o mixup inference", "xmixup_xnli", XLMR, "avg_en"), ("xmixup_no_mixup_inference", 84.0)),
    ((XMIXUP, "Table 5", "w/o scheduled sampling", "xmixup_xnli", XLMR, "avg_en"), ("xmixup_no_sched_sampling", 84.6)),
    ((XMIXUP, "Table 5", "w/o consistency loss", "xmixup_xnli", XLMR, "avg_en"), ("xmixup_no_consistency", 84.2)),
    ((XMIXUP, "Table 5", "λ=λ0", "xmixup_xnli", XLMR, "avg_en"), ("xmixup_const_ratio", 84.1)),
    # X-Mixup Table 9 (consistency-loss ablations)
    ((XMIXUP, "Table 9", "w/o MSE consistency loss", "xmixup_xnli", XLMR, "avg_en"), ("xmixup_no_mse", 84.6)),
    ((XMIXUP, "Table 9", "w/o KL consistency loss", "xmixup_xnli", XLMR, "avg_en"), ("xmixup_no_kl", 84.3)),
    ((XMIXUP, "Table 9", "w/o both", "xmixup_xnli", XLMR, "avg_en"), ("xmixup_no_consistency", 84.2)),
]


@pytest.fixture(scope="module")
def numbers() -> pd.DataFrame:
    return load_paper_numbers()


def _rows(numbers: pd.DataFrame, paper: str, table: str, row: str, **where: str) -> pd.DataFrame:
    selected = (numbers["paper"] == paper) & (numbers["table"] == table) & (numbers["row"] == row)
    for column, value in where.items():
        selected &= numbers[column] == value
    return numbers[selected]


# --------------------------------------------------------------------------- the file against the papers


@pytest.mark.parametrize(("key", "expected"), SPOT_CHECKS, ids=lambda item: "/".join(map(str, item)))
def test_spot_check_against_the_paper(numbers: pd.DataFrame, key: tuple[str, ...], expected: tuple[str, float]) -> None:
    paper, table, row, experiment, model, column = key
    found = _rows(numbers, paper, table, row, experiment=experiment, model=model, column=column)
    assert len(found) == 1, f"{key}: {len(found)} rows"
    arm, value = expected
    assert found["arm"].iloc[0] == arm
    assert found["value"].iloc[0] == pytest.approx(value, abs=1e-9)
    assert found["kind"].iloc[0] == SCORE and found["metric"].iloc[0] == "acc"


@pytest.mark.parametrize(("table", "row", "experiment", "languages"), [
    ("Table 1", "mBERT*", "salt_xnli", XNLI),
    ("Table 1", "+SALT", "salt_xnli", XNLI),
    ("Table 1", "mBERT", "baseline_xnli", XNLI),
    ("Table 2", "mBERT*", "salt_pawsx", PAWSX),
    ("Table 2", "+SALT", "salt_pawsx", PAWSX),
    ("Table 2", "mBERT", "baseline_pawsx", PAWSX),
    ("Table 3", "SALT", "salt_pawsx", ()),
    ("Table 3", "- en-only", "salt_pawsx", ()),
    ("Table 3", "- w/o mixup", "salt_pawsx", ()),
    ("Table 3", "mBERT", "salt_pawsx", ()),
])
def test_salt_rows_are_complete(numbers: pd.DataFrame, table: str, row: str, experiment: str,
                                languages: tuple[str, ...]) -> None:
    """SALT prints both averages in every table: every language of the row, avg and avg_en."""
    found = _rows(numbers, SALT, table, row, experiment=experiment)
    assert sorted(found["column"]) == sorted((*languages, "avg", "avg_en"))


@pytest.mark.parametrize(("table", "row", "experiment", "model", "languages"), [
    ("Table 11", "X-Mixup", "xmixup_xnli", XLMR, XNLI),
    ("Table 6", "X-Mixup", "xmixup_xnli", XLMR, XNLI),
    ("Table 11", "XLM-R", "xmixup_xnli", XLMR, XNLI),
    ("Table 11", "mBERT", "xmixup_xnli", CASED, XNLI),
    ("Table 12", "X-Mixup", "xmixup_pawsx", XLMR, PAWSX),
    ("Table 12", "XLM-R", "xmixup_pawsx", XLMR, PAWSX),
    ("Table 12", "mBERT", "xmixup_pawsx", CASED, PAWSX),
])
def test_xmixup_per_language_rows_are_complete(numbers: pd.DataFrame, table: str, row: str, experiment: str,
                                               model: str, languages: tuple[str, ...]) -> None:
    """X-Mixup prints one average, with en: every language and avg_en, never avg."""
    found = _rows(numbers, XMIXUP, table, row, experiment=experiment, model=model)
    assert sorted(found["column"]) == sorted((*languages, "avg_en"))


def test_xmixup_summary_and_ablation_tables_are_complete(numbers: pd.DataFrame) -> None:
    table3 = _rows(numbers, XMIXUP, "Table 3", "X-Mixup")
    assert set(zip(table3["experiment"], table3["model"])) == {
        ("xmixup_xnli", CASED), ("xmixup_pawsx", CASED), ("xmixup_xnli", XLMR), ("xmixup_pawsx", XLMR)}
    mbert = _rows(numbers, XMIXUP, "Table 3", "mBERT (Hu et al., 2020)")
    assert set(mbert["experiment"]) == {"xmixup_xnli", "xmixup_pawsx", "baseline_xnli", "baseline_pawsx"}
    ablations = numbers[(numbers["paper"] == XMIXUP) & numbers["table"].isin(["Table 5", "Table 9"])]
    assert len(ablations) == 10
    assert set(ablations["model"]) == {XLMR} and set(ablations["column"]) == {"avg_en"}
    assert set(ablations["arm"]) == {
        "xmixup", "xmixup_no_mixup", "xmixup_no_mixup_inference", "xmixup_no_sched_sampling",
        "xmixup_no_consistency", "xmixup_const_ratio", "xmixup_no_mse", "xmixup_no_kl"}


@pytest.mark.parametrize(("experiment", "arms"), [
    ("salt_xnli", {"baseline", "salt"}),
    ("salt_pawsx", {"baseline", "salt", "salt_en_only", "salt_no_mixup"}),
    ("xmixup_xnli", {arm.name for arm in EXPERIMENTS["xmixup_xnli"].arms}),
    ("xmixup_pawsx", {"baseline", "translate_train", "xmixup"}),
    ("baseline_xnli", {"baseline"}),
    ("baseline_pawsx", {"baseline"}),
])
def test_every_arm_the_papers_report_is_mapped(experiment: str, arms: set[str]) -> None:
    found = published_for(experiment)
    assert arms <= set(found[found["kind"] == SCORE]["arm"])


def test_the_averages_are_mapped_to_the_right_column(numbers: pd.DataFrame) -> None:
    """A full printed row's avg_en is the mean of its languages with en, its avg the mean without.

    The printed averages come from unrounded scores, so they may differ from the mean of the
    printed (rounded) ones by up to ~0.15; avg and avg_en differ by more than 1 point in every
    full row, so a swapped mapping would fail.
    """
    checked = 0
    for (paper, table, row, experiment, model), group in numbers[numbers["kind"] == SCORE].groupby(
            ["paper", "table", "row", "experiment", "model"]):
        values = dict(zip(group["column"], group["value"]))
        languages = {column: value for column, value in values.items() if column not in ("avg", "avg_en")}
        if len(languages) < 7:
            continue
        targets = [value for column, value in languages.items() if column != "en"]
        if "avg_en" in values:
            assert values["avg_en"] == pytest.approx(sum(languages.values()) / len(languages), abs=0.15)
        if "avg" in values:
            assert values["avg"] == pytest.approx(sum(targets) / len(targets), abs=0.15)
        checked += 1
    assert checked == 13


def test_models_are_those_the_papers_used(numbers: pd.DataFrame) -> None:
    salt_own = numbers[numbers["experiment"].str.startswith("salt_")]
    assert set(salt_own["model"]) == {UNCASED}
    assert paper_model("salt_xnli") == UNCASED and paper_model("xmixup_xnli") == CASED
    assert set(_rows(numbers, XMIXUP, "Table 11", "X-Mixup")["model"]) == {XLMR}
    assert set(_rows(numbers, XMIXUP, "Table 3", "Trans-train (Hu et al., 2020)")["model"]) == {CASED}


def test_btf_summary_is_a_max_gain_that_no_block_shows(numbers: pd.DataFrame) -> None:
    btf = numbers[numbers["paper"] == BTF]
    assert set(btf["experiment"]) == {"btf_marc", "btf_panx"}
    assert set(btf["kind"]) == {MAX_GAIN} and set(btf["metric"]) == {"f1"}
    assert btf["value"].tolist() == [3.61, 3.61]
    ours = pd.DataFrame({"arm": ["btf_self_training_voters"], "column": ["max"], "mean": [0.8], "std": [0.01]})
    assert paper_block(ours, "btf_panx", CASED).empty


def test_the_csv_is_declared_package_data() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    assert "*.csv" in pyproject["tool"]["setuptools"]["package-data"]["orchestrator"]


# --------------------------------------------------------------------------- the loader


GOOD_ROW = {
    "paper": SALT, "table": "Table 1", "row": "mBERT*", "experiment": "salt_xnli", "arm": "baseline",
    "model": UNCASED, "task": "xnli", "column": "fr", "value": "73.9", "metric": "acc", "kind": "score", "note": "",
}


def _write(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS) -> Path:
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def test_a_good_file_loads_through_a_path(tmp_path: Path) -> None:
    frame = load_paper_numbers(_write(tmp_path / "ok.csv", [GOOD_ROW, {**GOOD_ROW, "column": "avg", "value": "64.7"}]))
    assert frame["value"].tolist() == [73.9, 64.7]
    assert list(frame.columns) == list(COLUMNS)


@pytest.mark.parametrize(("change", "message"), [
    ({"value": "73,9"}, "line 3: value '73,9' is not a number"),
    ({"value": ""}, "line 3: value '' is not a number"),
    ({"arm": ""}, "line 3: empty arm"),
    ({"experiment": "salt_mlqa"}, "unknown experiment 'salt_mlqa'"),
    ({"task": "pawsx"}, "task 'pawsx' is not salt_xnli's task 'xnli'"),
    ({"column": "ja"}, "column 'ja' is not a xnli language"),
    ({"column": "Avg."}, "column 'Avg.' is not a xnli language"),
    ({"kind": "mean"}, "kind 'mean' is not one of"),
    ({"metric": "accuracy"}, "metric 'accuracy' is not one of"),
    ({}, "line 3: the same (paper, table, row, experiment, model, column) twice"),
])
def test_a_malformed_row_is_refused_in_one_line(tmp_path: Path, change: dict[str, str], message: str) -> None:
    path = _write(tmp_path / "bad.csv", [GOOD_ROW, {**GOOD_ROW, **change}])
    with pytest.raises(ValueError) as raised:
        load_paper_numbers(path)
    assert message in str(raised.value)
    assert "bad.csv" in str(raised.value) and "\n" not in str(raised.value)


def test_a_file_without_a_column_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.csv", [GOOD_ROW], columns=tuple(c for c in COLUMNS if c != "model"))
    with pytest.raises(ValueError, match="missing columns model"):
        load_paper_numbers(path)


def test_published_for_filters_experiment_and_model(numbers: pd.DataFrame) -> None:
    every = published_for("xmixup_pawsx")
    assert set(every["experiment"]) == {"xmixup_pawsx"} and set(every["model"]) == {CASED, XLMR}
    large = published_for("xmixup_pawsx", XLMR)
    assert set(large["model"]) == {XLMR} and len(large) == 3 + 8 + 8
    assert published_for("xmixup_pawsx", UNCASED).empty
    assert published_for("no_such_experiment").empty


# --------------------------------------------------------------------------- the block


def _ours() -> pd.DataFrame:
    """A hand-made summary frame of salt_xnli (fractions), with an arm and a column the papers lack."""
    return pd.DataFrame({
        "arm": ["baseline", "baseline", "baseline", "salt", "salt", "baseline_tuned"],
        "column": ["avg", "sw", "avg_en", "avg", "fr", "avg"],
        "mean": [0.652, 0.49, 0.667, 0.661, 0.75, 0.70],
        "std": [0.005, float("nan"), 0.004, 0.0, 0.008, 0.01],
        "n": [5, 5, 5, 5, 5, 5],
    })


def test_block_on_the_papers_model_is_a_reproduction_check() -> None:
    block = paper_block(_ours(), "salt_xnli", UNCASED)
    assert list(block.columns) == list(BLOCK_COLUMNS)
    assert list(zip(block["arm"], block["column"])) == [
        ("baseline", "avg"), ("baseline", "sw"), ("baseline", "avg_en"), ("salt", "avg"), ("salt", "fr")]
    cells = block.set_index(["arm", "column"])
    # baseline avg: ours 65.2 ± 0.5 vs SALT Table 1 mBERT* 64.7 -> gap +0.5, one std
    assert cells.loc[("baseline", "avg"), "published"] == pytest.approx(64.7)
    assert cells.loc[("baseline", "avg"), "ours_mean"] == pytest.approx(65.2)
    assert cells.loc[("baseline", "avg"), "ours_std"] == pytest.approx(0.5)
    assert cells.loc[("baseline", "avg"), "gap"] == pytest.approx(0.5)
    assert cells.loc[("baseline", "avg"), "gap_in_std"] == pytest.approx(1.0)
    # baseline avg_en: 66.7 vs 66.0 -> +0.7, 0.7 / 0.4 = 1.75 std
    assert cells.loc[("baseline", "avg_en"), "gap_in_std"] == pytest.approx(1.75)
    # sw: 49.0 vs 50.0 with no std; salt avg: 66.1 vs 65.7 with std 0 -> no gap/std
    assert cells.loc[("baseline", "sw"), "gap"] == pytest.approx(-1.0)
    assert math.isnan(cells.loc[("baseline", "sw"), "gap_in_std"])
    assert cells.loc[("salt", "avg"), "gap"] == pytest.approx(0.4)
    assert math.isnan(cells.loc[("salt", "avg"), "gap_in_std"])
    assert cells.loc[("salt", "fr"), "source"] == "SALT Table 1, row +SALT"
    assert set(block["model"]) == {UNCASED} and block["same_model"].all()
    assert repro_gap_avg(block) == pytest.approx({"baseline": 0.5, "salt": 0.4})
    assert repro_gap_avg(block, column="avg_en") == pytest.approx({"baseline": 0.7})


@pytest.mark.parametrize("sweep_model", [None, CASED, XLMR])
def test_block_on_another_model_is_for_orientation(sweep_model: str | None) -> None:
    """The smoke model, or a model SALT did not report: SALT's uncased numbers, same_model False."""
    block = paper_block(_ours(), "salt_xnli", sweep_model)
    assert len(block) == 5 and set(block["model"]) == {UNCASED}
    assert not block["same_model"].any()
    assert block.set_index(["arm", "column"]).loc[("baseline", "avg"), "gap"] == pytest.approx(0.5)
    assert repro_gap_avg(block) == {}


def test_block_of_xmixup_smoke_uses_the_cased_mbert_rows_or_the_one_asked_for() -> None:
    ours = pd.DataFrame({"arm": ["baseline", "translate_train", "xmixup"], "column": ["avg_en"] * 3,
                         "mean": [0.654, 0.751, 0.788], "std": [0.01] * 3})
    smoke = paper_block(ours, "xmixup_xnli", None)
    assert smoke["published"].tolist() == [65.4, 75.1, 78.8]
    assert set(smoke["model"]) == {CASED} and not smoke["same_model"].any()
    large = paper_block(ours, "xmixup_xnli", None, paper_model_for_smoke=XLMR)
    # translate-train on XLM-R: Table 11's full row (82.6) is preferred to Table 3's single average (82.9)
    assert large["published"].tolist() == [79.2, 82.6, 85.3]
    assert large["source"].tolist() == [
        "X-Mixup Table 3, row XLM-R (Hu et al., 2020)", "X-Mixup Table 11, row XLM-R", "X-Mixup Table 11, row X-Mixup"]
    assert paper_block(ours, "xmixup_xnli", XLMR)["same_model"].all()


def test_block_prefers_the_fullest_source_row() -> None:
    """SALT prints PAWS-X mBERT* avg in Table 2 and again in Table 3: Table 2's row is the source."""
    ours = pd.DataFrame({"arm": ["baseline", "salt_en_only"], "column": ["avg", "avg"], "mean": [0.81, 0.83],
                         "std": [0.01, 0.01]})
    block = paper_block(ours, "salt_pawsx", UNCASED)
    assert block["source"].tolist() == ["SALT Table 2, row mBERT*", "SALT Table 3, row - en-only"]


def test_block_reads_a_summary_frame() -> None:
    """What the report passes: ``Summary.to_frame()`` (fractions, more columns than needed)."""
    results = pd.DataFrame([
        {"arm": arm, "seed": seed, "language": language, "value": value + 0.01 * seed}
        for arm, base in (("baseline", 0.60), ("salt", 0.62))
        for seed in (1, 2, 3)
        for language, value in (("en", base + 0.2), ("fr", base + 0.1), ("de", base))
    ])
    summary = summarize(results, arms=["baseline", "salt"], languages=["en", "fr", "de"], baseline_arm="baseline")
    block = paper_block(summary.to_frame(), "salt_xnli", UNCASED).set_index(["arm", "column"])
    # salt's fr: 72 + 2 (mean seed offset) = 74.0 over 3 seeds, std 1.0; SALT Table 1 prints 74.5
    assert block.loc[("salt", "fr"), "ours_mean"] == pytest.approx(74.0)
    assert block.loc[("salt", "fr"), "gap"] == pytest.approx(-0.5)
    assert block.loc[("salt", "fr"), "gap_in_std"] == pytest.approx(-0.5)
    # avg without en, over fr (74.0) and de (64.0): 69.0 vs the printed 65.7
    assert block.loc[("salt", "avg"), "gap"] == pytest.approx(3.3)
    assert len(block) == 2 * 5  # en, fr, de, avg, avg_en per arm


def test_block_refuses_ours_without_its_columns() -> None:
    with pytest.raises(ValueError, match="ours lacks columns std"):
        paper_block(_ours().drop(columns="std"), "salt_xnli", UNCASED)


# --------------------------------------------------------------------------- rendering


def test_legend_says_orientation_only_for_another_model() -> None:
    other = paper_block(_ours(), "salt_xnli", None)
    markdown = render_paper_block_markdown(other, sweep_model=None)
    page = render_paper_block_html(other, sweep_model=None)
    expected = ("this sweep ran the smoke model, not bert-base-multilingual-uncased: "
                "for orientation only, not a reproduction check")
    assert expected in markdown and expected in page
    same = paper_block(_ours(), "salt_xnli", UNCASED)
    for render in (render_paper_block_markdown, render_paper_block_html):
        text = render(same, sweep_model=UNCASED)
        assert "for orientation only" not in text
        assert "gap = ours − published, in points; gap/std = in units of our seed std" in text


def test_markdown_block_cells_and_legend() -> None:
    block = paper_block(_ours(), "salt_xnli", UNCASED)
    text = render_paper_block_markdown(block, sweep_model=UNCASED)
    assert text.startswith("### Published results\n")
    rows = {tuple(cells[:2]): cells for cells in (
        [cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| "))}
    assert rows[("baseline", "avg")] == [
        "baseline", "avg", "64.7", "65.2 ± 0.5", "+0.5", "+1.0", r"SALT Table 1, row mBERT\*"]
    # no std: the mean alone, and no gap/std
    assert rows[("baseline", "sw")][2:6] == ["50.0", "49.0", "-1.0", "–"]
    assert r"published numbers from SALT Table 1 (rows mBERT\*, +SALT), on bert-base-multilingual-uncased" in text


def test_html_block_escapes_text() -> None:
    block = paper_block(_ours(), "salt_xnli", UNCASED)
    block.loc[0, "arm"] = "<b>arm</b>"
    page = render_paper_block_html(block, sweep_model="<tiny>")
    assert page.startswith("<h2>Published results</h2>")
    assert "&lt;b&gt;arm&lt;/b&gt;" in page and "<b>arm</b>" not in page
    assert '<p class="legend">' in page and "<td>65.2 ± 0.5</td>" in page


def test_empty_block_renders_nothing() -> None:
    empty = paper_block(_ours(), "baseline_marc", CASED)
    assert empty.empty and list(empty.columns) == list(BLOCK_COLUMNS)
    assert render_paper_block_markdown(empty, sweep_model=CASED) == ""
    assert render_paper_block_html(empty, sweep_model=CASED) == ""
    assert paper_block_legend(empty, sweep_model=CASED) == []
    assert repro_gap_avg(empty) == {}
