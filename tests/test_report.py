"""orchestrator.report (and its cells and legend) on a hand-built Summary whose every cell string is known.

Cell format (see orchestrator.report_cells's docstring): ``mean ± std`` in percent with
one decimal; best in column bold (``**..**`` / ``<b>..</b>``); ``†`` after it when
p <= alpha vs the baseline; `` (n=k)`` when fewer seeds than expected; ``–`` for
no result; a single seed shows only the mean. ``FRACTION`` (linear CKA) keeps the
value's scale with two decimals: seeds 0.80 and 0.82 -> ``0.81 ± 0.01``.

The last section runs ``report_results`` against a real MLflow store (SQLite in
tmp_path): the CKA tables appear, and are attached, only when confirm runs logged CKA.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import Metric

from orchestrator.experiments import Arm, Experiment
from orchestrator.report import REPORT_FILES, render_html, render_markdown, render_text, write_reports
from orchestrator.report_cells import FRACTION, PERCENT, format_cell
from orchestrator.report_legend import legend_lines
from orchestrator.figures_report import FIGURES_DIR
from orchestrator.results import CKA_FILES, CKA_LABEL, RESULTS_TABLE, collect_confirm_results, report_results
from orchestrator.stats import summarize
from orchestrator.stats_summary import AVG, AVG_EN, BETTER, Cell, Summary
from orchestrator.tracking import PARENT_TAG, SweepTracker
from trainables.tasks import TaskSpec

NAN = math.nan
COLUMNS = ["en", "de", AVG, AVG_EN]


def cell(mean, std, n, *, best=False, significant=False, p=None) -> Cell:
    tested = p is not None
    return Cell(
        mean=mean,
        std=std,
        n=n,
        t_stat=3.0 if tested else None,
        p_value=p,
        n_pairs=n if tested else 0,
        mean_diff=0.01 if tested else None,
        significant=significant,
        best=best,
        p_adjusted=p,
        direction=BETTER if significant else "",
    )


EMPTY = Cell(NAN, NAN, 0, None, None, 0, None, False, False)

# cell -> expected text (Markdown); comments give the arithmetic (value * 100, one decimal)
EXPECTED = {
    ("base", "en"): (cell(0.812, 0.004, 5), "81.2 ± 0.4"),
    # 0.8149 -> 81.49 -> 81.5; 0.0051 -> 0.51 -> 0.5; best and significant
    ("salt", "en"): (cell(0.8149, 0.0051, 5, best=True, significant=True, p=0.01), "**81.5 ± 0.5**†"),
    ("base", "de"): (cell(0.734, 0.005, 5, best=True), "**73.4 ± 0.5**"),
    # 4 of 5 seeds, significant, not best
    ("salt", "de"): (cell(0.70, 0.012, 4, significant=True, p=0.03), "70.0 ± 1.2† (n=4)"),
    # one seed: std undefined -> mean only
    ("base", AVG): (cell(0.60, NAN, 1), "60.0 (n=1)"),
    ("salt", AVG): (cell(0.655, 0.0, 4, best=True, p=0.2), "**65.5 ± 0.0** (n=4)"),
    ("base", AVG_EN): (cell(0.70, 0.01, 5), "70.0 ± 1.0"),
    # 0.7351 -> 73.51 -> 73.5; 0.0123 -> 1.23 -> 1.2
    ("salt", AVG_EN): (cell(0.7351, 0.0123, 4, best=True, significant=True, p=0.04), "**73.5 ± 1.2**† (n=4)"),
    **{("ghost", column): (EMPTY, "–") for column in COLUMNS},
}

LEGEND = [
    "accuracy (%): mean ± std over 5 seeds (seeds: 1, 2, 3, 4, 5); bold = best",
    "† significantly better, ▼ significantly worse than base: paired t-test over seeds, p adjusted (Holm, over each "
    "arm's 4 columns) <= 0.05; differences to base with 95% t intervals in results.html and ttest.csv",
    "avg = macro average over the target languages (without en); avg+en = macro average over all languages",
    # en and de are the language columns; salt is significantly better (†) on both
    "vs base (Holm): salt better on 2, worse on 0 of 2 languages",
    "missing seeds: salt: 4; ghost: 1, 2, 3, 4, 5",
]


@pytest.fixture
def summary() -> Summary:
    return Summary(
        arms=["base", "salt", "ghost"],
        columns=COLUMNS,
        baseline_arm="base",
        alpha=0.05,
        cells={key: value[0] for key, value in EXPECTED.items()},
        expected_seeds=[1, 2, 3, 4, 5],
        source_language="en",
        seeds_by_arm={"base": [1, 2, 3, 4, 5], "salt": [1, 2, 3, 5], "ghost": []},
    )


def markdown_rows(text: str) -> list[list[str]]:
    """Table lines split into stripped cells (the legend and title are skipped)."""
    return [[part.strip() for part in line.strip()[1:-1].split(" | ")] for line in text.splitlines() if line.startswith("|")]


def computed_summary() -> Summary:
    """A Summary from summarize(): full-precision floats such as 0.71666... for the CSV round trip."""
    values = {
        "base": {1: (0.80, 0.70, 0.60), 2: (0.82, 0.72, 0.62), 3: (0.84, 0.71, 0.64)},
        "salt": {1: (0.81, 0.73, 0.66), 2: (0.83, 0.77, 0.60)},
    }
    rows = [
        {"arm": arm, "seed": seed, "language": language, "value": value}
        for arm, seeds in values.items()
        for seed, per_language in seeds.items()
        for language, value in zip(["en", "de", "fr"], per_language)
    ]
    return summarize(pd.DataFrame(rows), arms=["base", "salt"], languages=["en", "de", "fr"], baseline_arm="base")


# --------------------------------------------------------------------------- cells


@pytest.mark.parametrize("key", list(EXPECTED))
def test_format_cell_markdown(key: tuple[str, str]) -> None:
    value, expected = EXPECTED[key]
    assert format_cell(value, expected_n=5) == expected


def test_format_cell_html_uses_b() -> None:
    value, _ = EXPECTED[("salt", AVG_EN)]
    assert format_cell(value, expected_n=5, html_markup=True) == "<b>73.5 ± 1.2</b>† (n=4)"


def test_full_seed_count_shows_no_n() -> None:
    value, _ = EXPECTED[("salt", "de")]
    assert format_cell(value, expected_n=4) == "70.0 ± 1.2†"


# --------------------------------------------------------------------------- markdown / text


def test_markdown_table_cells(summary: Summary) -> None:
    rows = markdown_rows(render_markdown(summary))
    header, rule, body = rows[0], rows[1], rows[2:]
    assert header == ["arm", "en", "de", "avg", "avg+en"]
    assert rule[0].startswith(":") and all(part.endswith(":") for part in rule[1:])
    assert [row[0] for row in body] == ["base", "salt", "ghost"]
    for row in body:
        arm = row[0]
        assert row[1:] == [EXPECTED[(arm, column)][1] for column in COLUMNS]
    assert body[1] == ["salt", "**81.5 ± 0.5**†", "70.0 ± 1.2† (n=4)", "**65.5 ± 0.0** (n=4)", "**73.5 ± 1.2**† (n=4)"]


def test_markdown_title_and_legend(summary: Summary) -> None:
    text = render_markdown(summary, title="XNLI test")
    assert text.startswith("## XNLI test\n\n| arm")
    assert text.endswith("\n\n" + "\n\n".join(LEGEND) + "\n")


def test_legend_lines(summary: Summary) -> None:
    assert legend_lines(summary) == LEGEND
    assert legend_lines(summary, metric_label="F1")[0].startswith("F1 (%): mean ± std over 5 seeds")


def test_legend_without_missing_seeds() -> None:
    lines = legend_lines(computed_summary())
    assert lines[0] == "accuracy (%): mean ± std over 3 seeds (seeds: 1, 2, 3); bold = best"
    assert lines[1].startswith("† significantly better, ▼ significantly worse than base: paired t-test over seeds")
    assert lines[-1] == "missing seeds: salt: 3"
    complete = Summary(["a"], ["en"], "a", 0.05, {("a", "en"): cell(0.5, 0.1, 2)}, [1, 2], "en", {"a": [1, 2]})
    assert len(legend_lines(complete)) == 3  # cell, marks, averages


def test_markdown_escapes_pipes_in_arm_names() -> None:
    summary = Summary(["x|y"], ["en"], "x|y", 0.05, {("x|y", "en"): cell(0.5, 0.1, 2)}, [1, 2], "en", {"x|y": [1, 2]})
    assert "| x\\|y |" in render_markdown(summary)


def test_text_has_plain_title_table_and_legend(summary: Summary) -> None:
    text = render_text(summary, title="XNLI")
    lines = text.splitlines()
    assert lines[:2] == ["XNLI", "===="]
    assert markdown_rows(text) == markdown_rows(render_markdown(summary))
    assert lines[-len(LEGEND):] == LEGEND
    # aligned: every table line has the same width
    assert len({len(line) for line in lines if line.startswith("|")}) == 1


# --------------------------------------------------------------------------- html


def test_html_is_standalone_with_bold_best_and_dagger(summary: Summary) -> None:
    page = render_html(summary, title="XNLI")
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    assert '<meta charset="utf-8">' in page
    assert "<h1>XNLI</h1>" in page
    assert "<th>avg+en</th>" in page
    # a tested cell: its paired difference to the baseline on a second line (mean_diff 0.01 -> +1.0 points),
    # p and adjusted p in the tooltip
    assert ('<td title="+1.0 points vs base; p = 0.01, p adjusted (Holm) = 0.01"><b>81.5 ± 0.5</b>†'
            '<span class="diff">+1.0</span></td>') in page
    assert "<td><b>73.4 ± 0.5</b></td>" in page  # the baseline: no difference line
    assert '>70.0 ± 1.2† (n=4)<span class="diff">+1.0</span></td>' in page
    assert "<td>–</td>" in page
    assert "**" not in page
    for line in LEGEND:  # escaped: "p <= 0.05" becomes "p &lt;= 0.05"
        assert f'<p class="legend">{html.escape(line)}</p>' in page
    assert "&lt;= 0.05" in page  # escaped


def test_html_escapes_text(summary: Summary) -> None:
    arm = "salt<k=2> & co"
    cells = {(arm if a == "salt" else a, c): v for (a, c), v in summary.cells.items()}
    odd = Summary(
        ["base", arm, "ghost"], COLUMNS, "base", 0.05, cells, [1, 2, 3, 4, 5], "en",
        {"base": [1, 2, 3, 4, 5], arm: [1, 2, 3, 5], "ghost": []},
    )
    page = render_html(odd, title="XNLI <dev> & test")
    assert "<td>salt&lt;k=2&gt; &amp; co</td>" in page
    assert "<title>XNLI &lt;dev&gt; &amp; test</title>" in page
    assert "<h1>XNLI &lt;dev&gt; &amp; test</h1>" in page
    assert "missing seeds: salt&lt;k=2&gt; &amp; co: 4" in page
    assert "<k=2>" not in page and "<dev>" not in page


# --------------------------------------------------------------------------- files


def test_write_reports_writes_exactly_four_files(summary: Summary, tmp_path: Path) -> None:
    out_dir = tmp_path / "nested" / "report"
    paths = write_reports(summary, out_dir, title="XNLI", metric_label="accuracy")
    assert list(paths) == ["results.md", "results.csv", "results.html", "ttest.csv"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["results.csv", "results.html", "results.md", "ttest.csv"]
    assert all(path == out_dir / name for name, path in paths.items())
    assert paths["results.md"].read_text(encoding="utf-8") == render_markdown(summary, title="XNLI")
    assert paths["results.html"].read_text(encoding="utf-8") == render_html(summary, title="XNLI")


@pytest.mark.parametrize("make", [computed_summary, None], ids=["computed", "hand-built"])
def test_csv_round_trip(make, summary: Summary, tmp_path: Path) -> None:
    source = make() if make else summary
    paths = write_reports(source, tmp_path)
    results = pd.read_csv(paths["results.csv"])
    ttests = pd.read_csv(paths["ttest.csv"])
    pd.testing.assert_frame_equal(results, source.to_frame(), check_exact=True)
    pd.testing.assert_frame_equal(ttests, source.ttests(), check_exact=True)


def test_csv_keeps_fractions_at_full_precision(tmp_path: Path) -> None:
    source = computed_summary()
    results = pd.read_csv(write_reports(source, tmp_path)["results.csv"])
    row = results[(results["arm"] == "base") & (results["column"] == AVG_EN)].iloc[0]
    # base avg_en per seed .70 .72 .73 -> 2.15 / 3, a fraction, not the rounded 71.7
    assert row["mean"] == source.cell("base", AVG_EN).mean
    assert row["mean"] == pytest.approx(2.15 / 3, abs=1e-12)
    # salt de vs base on seeds 1, 2: d = .03 .05 -> t = .04 / (sqrt(.0002) / sqrt(2)) = 4
    tests = pd.read_csv(tmp_path / "ttest.csv")
    t_row = tests[(tests["arm"] == "salt") & (tests["column"] == "de")].iloc[0]
    assert t_row["t_stat"] == pytest.approx(4.0, rel=1e-9)
    assert t_row["n_pairs"] == 2
    assert t_row["baseline"] == "base"


# --------------------------------------------------------------------------- other value formats (CKA)


def cka_summary(baseline_arm: str | None = None) -> Summary:
    """Two X-Mixup arms' CKA on de, fr (source en left out, as report_cka does), seeds 1 and 2.

        arm      seed   de    fr   | avg
        xmixup    1    .80   .70   | .75
        xmixup    2    .82   .76   | .79
        frozen    1    .78   .70   | .74
        frozen    2    .80   .72   | .76
    """
    values = {"xmixup": {1: (0.80, 0.70), 2: (0.82, 0.76)}, "frozen": {1: (0.78, 0.70), 2: (0.80, 0.72)}}
    rows = [
        {"arm": arm, "seed": seed, "language": language, "value": value}
        for arm, seeds in values.items()
        for seed, per_language in seeds.items()
        for language, value in zip(["de", "fr"], per_language)
    ]
    # en is required by summarize as the source; it has no rows, so its column and avg_en are empty.
    summary = summarize(pd.DataFrame(rows), arms=["xmixup", "frozen"], languages=["en", "de", "fr"],
                        baseline_arm=baseline_arm)
    return replace(summary, columns=["de", "fr", AVG])


# Hand-computed: mean, sample std = |a - b| / sqrt(2), two decimals, no scaling.
CKA_ROWS = [
    # de .81 ± .0141; fr .73 ± .0424; avg .77 ± .0283: every column's best
    ["xmixup", "**0.81 ± 0.01**", "**0.73 ± 0.04**", "**0.77 ± 0.03**"],
    # de .79 ± .0141; fr .71 ± .0141; avg .75 ± .0141
    ["frozen", "0.79 ± 0.01", "0.71 ± 0.01", "0.75 ± 0.01"],
]
CKA_LEGEND = [
    f"{CKA_LABEL}; mean ± std over 2 seeds (seeds: 1, 2); bold = best",
    "avg = macro average over the target languages (without en)",
]


def test_fraction_format_cell() -> None:
    # seeds 0.80 and 0.82: mean 0.81, std 0.01414 -> "0.81 ± 0.01"
    assert format_cell(cell(0.81, math.sqrt(2) / 100, 2), expected_n=2, value_format=FRACTION) == "0.81 ± 0.01"
    assert format_cell(cell(0.805, NAN, 1, best=True), expected_n=2, value_format=FRACTION) == "**0.81** (n=1)"
    assert format_cell(EMPTY, expected_n=2, value_format=FRACTION) == "–"


def test_percent_is_the_default_format(summary: Summary) -> None:
    for value, _ in EXPECTED.values():
        assert format_cell(value, expected_n=5, value_format=PERCENT) == format_cell(value, expected_n=5)
    assert render_html(summary, title="X", value_format=PERCENT) == render_html(summary, title="X")
    assert legend_lines(summary, value_format=PERCENT) == LEGEND


def test_cka_table_and_legend_without_baseline() -> None:
    text = render_text(cka_summary(), title="CKA", metric_label=CKA_LABEL, value_format=FRACTION)
    rows = markdown_rows(text)
    assert rows[0] == ["arm", "de", "fr", "avg"]
    assert rows[2:] == CKA_ROWS
    assert text.splitlines()[-2:] == CKA_LEGEND  # no dagger clause, no avg+en


def test_cka_legend_with_baseline() -> None:
    lines = legend_lines(cka_summary("frozen"), metric_label=CKA_LABEL, value_format=FRACTION)
    assert lines[0] == f"{CKA_LABEL}; mean ± std over 2 seeds (seeds: 1, 2); bold = best"
    assert lines[1].startswith("† significantly better, ▼ significantly worse than frozen")


def test_write_reports_with_other_file_names_does_not_clobber(summary: Summary, tmp_path: Path) -> None:
    accuracy = write_reports(summary, tmp_path, title="XNLI")
    before = {name: path.read_bytes() for name, path in accuracy.items()}
    paths = write_reports(cka_summary(), tmp_path, title="CKA", metric_label=CKA_LABEL, value_format=FRACTION,
                          files=CKA_FILES)
    assert list(paths) == ["cka.md", "cka.csv", "cka.html", "cka_ttest.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*REPORT_FILES, *CKA_FILES])
    assert {name: path.read_bytes() for name, path in accuracy.items()} == before
    assert markdown_rows(paths["cka.md"].read_text(encoding="utf-8"))[2:] == CKA_ROWS
    assert "<td><b>0.81 ± 0.01</b></td>" in paths["cka.html"].read_text(encoding="utf-8")
    frame = pd.read_csv(paths["cka.csv"])
    assert list(frame["column"]) == ["de", "fr", AVG] * 2
    assert frame.loc[0, "mean"] == pytest.approx(0.81, abs=1e-12)  # a fraction at full precision
    ttests = pd.read_csv(paths["cka_ttest.csv"])
    assert ttests.empty and list(ttests.columns) == list(cka_summary().ttests().columns)


# --------------------------------------------------------------------------- report_results on MLflow

TOY = TaskSpec(name="toy", hub_id="none", languages=("en", "de", "fr"), text_fields=("text",),
               label_names=("no", "yes"))
XMIXUP = Experiment(
    name="xmixup_toy", task="toy", method="xmixup", description="toy",
    arms=(Arm("baseline", "baseline"), Arm("xmixup", "xmixup", tuned=True), Arm("frozen", "xmixup", tuned=True)),
)
ACCURACY = {  # (en, de, fr) per seed 1, 2, for every arm
    "baseline": ((0.80, 0.70, 0.60), (0.82, 0.72, 0.62)),
    "xmixup": ((0.81, 0.74, 0.66), (0.83, 0.76, 0.64)),
    "frozen": ((0.80, 0.73, 0.65), (0.81, 0.75, 0.63)),
}
CKA = {"xmixup": ((0.80, 0.70), (0.82, 0.76)), "frozen": ((0.78, 0.70), (0.80, 0.72))}  # (de, fr), cka_summary's


def sweep_with_runs(tmp_path: Path, cka: dict, *, failed_cka: bool = False,
                    at_chance: tuple[tuple[str, int], ...] = ()) -> SweepTracker:
    """A parent run with finished confirm children logging test_acc_* (and cka_* for ``cka``'s arms)."""
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "xmixup_toy")
    tracker.open_parent(None, name="sweep", tags={"stage": "sweep"})

    def child(arm: str, seed: int, metrics: dict[str, float], status: str = "FINISHED") -> None:
        tags = {PARENT_TAG: tracker.parent_run_id, "stage": "confirm", "arm": arm, "seed": str(seed)}
        run_id = tracker.client.create_run(tracker.experiment_id, tags=tags).info.run_id
        tracker.client.log_batch(run_id, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()])
        tracker.client.set_terminated(run_id, status=status)

    for arm, per_seed in ACCURACY.items():
        for seed, values in enumerate(per_seed, start=1):
            metrics = {f"test_acc_{lang}": v for lang, v in zip(TOY.languages, values)}
            if arm in cka:
                metrics.update({f"cka_{lang}": v for lang, v in zip(("de", "fr"), cka[arm][seed - 1])})
            if (arm, seed) in at_chance:  # what the loop reports for a run that never selected above chance
                metrics.update({"selection_at_chance": 1.0, "selection_chance": 0.5})
            child(arm, seed, metrics)
    if failed_cka:  # a failed run's CKA must not count
        child("xmixup", 3, {"test_acc_de": 0.5, "cka_de": 0.9, "cka_fr": 0.9}, status="FAILED")
    return tracker


def parent_outputs(tracker: SweepTracker) -> tuple[list[str], dict[str, float]]:
    run = tracker.client.get_run(tracker.parent_run_id)
    return sorted(a.path for a in tracker.client.list_artifacts(tracker.parent_run_id)), run.data.metrics


def accuracy_text(tracker: SweepTracker) -> str:
    summary = summarize(collect_confirm_results(tracker, TOY), arms=["baseline", "xmixup", "frozen"],
                        languages=list(TOY.languages), baseline_arm="baseline", expected_seeds=[1, 2])
    return render_text(summary, title="xmixup_toy: test accuracy per language", metric_label="accuracy")


def test_report_results_adds_cka_tables_when_runs_logged_cka(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # the store's default artifact root is relative
    tracker = sweep_with_runs(tmp_path, CKA, failed_cka=True)
    out_dir = tmp_path / "results"
    results = collect_confirm_results(tracker, TOY)
    text = report_results(results, tracker, XMIXUP, TOY, [1, 2], out_dir)

    accuracy = accuracy_text(tracker)
    assert text.startswith(accuracy + "\nxmixup_toy: linear CKA per language\n")
    cka_text = text[len(accuracy) + 1:]
    assert markdown_rows(cka_text)[2:] == CKA_ROWS  # baseline logged no CKA: no row, no dagger
    assert cka_text.splitlines()[-2:] == CKA_LEGEND
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([*REPORT_FILES, *CKA_FILES, FIGURES_DIR])
    assert pd.read_csv(out_dir / "cka_ttest.csv").empty
    artifacts, metrics = parent_outputs(tracker)
    assert artifacts == sorted([*REPORT_FILES, *CKA_FILES, RESULTS_TABLE, FIGURES_DIR])
    # the figures of the table and of CKA against accuracy, as PNGs beside the tables and on the parent run
    # (no run logged a learning curve here: that figure is skipped with a printed line)
    drawn = ["cka_vs_accuracy.png", "results_bars.png", "results_forest.png"]
    assert sorted(p.name for p in (out_dir / FIGURES_DIR).iterdir()) == drawn
    assert sorted(a.path for a in tracker.client.list_artifacts(tracker.parent_run_id, FIGURES_DIR)) == \
        [f"{FIGURES_DIR}/{name}" for name in drawn]
    assert "figure learning_curves skipped: no confirm run logged the metric's history" in capsys.readouterr().out
    # the table itself as an MLflow table: a row per arm, the cells' text (no bold markup)
    table = json.loads(Path(tracker.client.download_artifacts(tracker.parent_run_id, RESULTS_TABLE,
                                                              str(tmp_path))).read_text())
    assert table["columns"] == ["arm", "en", "de", "fr", "avg", "avg+en"]
    assert [row[0] for row in table["data"]] == ["baseline", "xmixup", "frozen"]
    assert table["data"][1][4] == "70.0 ± 0.0"  # xmixup avg: (.74 + .66) / 2 = (.76 + .64) / 2 = .70
    assert metrics["xmixup.cka_avg.mean"] == pytest.approx(0.77, abs=1e-12)  # (.75 + .79) / 2
    assert metrics["frozen.cka_avg.mean"] == pytest.approx(0.75, abs=1e-12)  # (.74 + .76) / 2
    assert "baseline.cka_avg.mean" not in metrics
    assert metrics["xmixup.test_acc_avg.mean"] == pytest.approx(0.70, abs=1e-12)  # (.70 + .70) / 2


def test_report_results_tests_cka_against_a_baseline_that_has_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    tracker = sweep_with_runs(tmp_path, {**CKA, "baseline": ((0.60, 0.50), (0.63, 0.52))})
    text = report_results(collect_confirm_results(tracker, TOY), tracker, XMIXUP, TOY, [1, 2], tmp_path / "out")
    cka_text = text[len(accuracy_text(tracker)) + 1:]
    assert [row[0] for row in markdown_rows(cka_text)[2:]] == ["baseline", "xmixup", "frozen"]
    assert any(line.startswith("† significantly better, ▼ significantly worse than baseline")
               for line in cka_text.splitlines())
    ttests = pd.read_csv(tmp_path / "out" / "cka_ttest.csv")
    assert len(ttests) == 2 * 3 and set(ttests["baseline"]) == {"baseline"}
    # xmixup de vs baseline: d = .20 .19 -> mean .195, paired on both seeds
    row = ttests[(ttests["arm"] == "xmixup") & (ttests["column"] == "de")].iloc[0]
    assert (row["n_pairs"], row["mean_diff"]) == (2, pytest.approx(0.195, abs=1e-12))
    assert parent_outputs(tracker)[1]["baseline.cka_avg.mean"] == pytest.approx(0.5625, abs=1e-12)  # (.55 + .575) / 2


def test_report_results_without_cka_is_unchanged(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    tracker = sweep_with_runs(tmp_path, {}, failed_cka=True)  # only a failed run has CKA
    out_dir = tmp_path / "results"
    text = report_results(collect_confirm_results(tracker, TOY), tracker, XMIXUP, TOY, [1, 2], out_dir)
    assert text == accuracy_text(tracker)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([*REPORT_FILES, FIGURES_DIR])
    assert not (out_dir / FIGURES_DIR / "cka_vs_accuracy.png").exists()
    artifacts, metrics = parent_outputs(tracker)
    assert artifacts == sorted([*REPORT_FILES, RESULTS_TABLE, FIGURES_DIR])
    assert not [name for name in metrics if "cka" in name]
    assert collect_confirm_results(tracker, TOY, metric="cka").empty


def test_runs_whose_selection_stayed_at_chance_are_marked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    tracker = sweep_with_runs(tmp_path, {}, at_chance=(("frozen", 2),))
    text = report_results(collect_confirm_results(tracker, TOY), tracker, XMIXUP, TOY, [1, 2], tmp_path / "out")
    arms = [row[0] for row in markdown_rows(text)[2:]]
    assert arms == ["baseline", "xmixup", "frozen ⚠"]
    assert ("⚠ selection metric at chance (never above the dev set's constant-prediction score): the kept "
            "checkpoint is arbitrary; frozen: seed 2") in text.splitlines()
    assert "frozen ⚠" in (tmp_path / "out" / "results.html").read_text()
