"""The sweep's figures (orchestrator.figures*), read back from the drawn artists: real matplotlib, a real
MLflow store (SQLite under tmp_path) and a real Optuna study; every expected number is worked out by hand.

Hand-made results: 2 arms x 3 seeds x 3 languages (en source; de, fr targets). ``salt`` is the baseline
+3 points with a tiny seed noise on en and fr (significant after Holm), and a noisy difference on de
(not significant). Values are fractions; the figures show percent.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.entities import Metric
from scipy import stats as sps

from orchestrator.figures import bar_positions, forest, language_bars, row_position
from orchestrator.figures_curves import fetch_histories, learning_curves
from orchestrator.figures_report import FIGURES_DIR, publish_figures
from orchestrator.figures_search import optimization_history, param_importances, parallel_coordinate
from orchestrator.figures_style import FigureSkipped, arm_colours, seed_offsets
from orchestrator.figures_transfer import cka_scatter, generalized_heatmap
from orchestrator.generalized import describe_over_seeds, seed_tables
from orchestrator.report_cells import DAGGER
from orchestrator.stats import summarize
from orchestrator.stats_summary import AVG, AVG_EN
from orchestrator.tracking import PARENT_TAG, SweepTracker

LANGS = ["en", "de", "fr"]
SEEDS = [1, 2, 3]
BASE = {"en": (0.80, 0.82, 0.81), "de": (0.70, 0.72, 0.71), "fr": (0.60, 0.61, 0.62)}
SALT = {"en": (0.831, 0.849, 0.8405), "de": (0.75, 0.70, 0.76), "fr": (0.631, 0.639, 0.650)}
COLUMNS = [*LANGS, AVG, AVG_EN]


def results() -> pd.DataFrame:
    rows = [{"arm": arm, "seed": seed, "language": lang, "value": values[lang][i]}
            for arm, values in (("baseline", BASE), ("salt", SALT)) for lang in LANGS for i, seed in enumerate(SEEDS)]
    return pd.DataFrame(rows)


def summary(baseline: str | None = "baseline"):
    return summarize(results(), arms=["baseline", "salt"], languages=LANGS, baseline_arm=baseline,
                     expected_seeds=SEEDS)


def per_seed(values: dict, column: str) -> list[float]:
    """A column's value per seed, by hand: the language, or the macro average inside each seed."""
    if column == AVG:
        return [(values["de"][i] + values["fr"][i]) / 2 for i in range(3)]
    if column == AVG_EN:
        return [sum(values[lang][i] for lang in LANGS) / 3 for i in range(3)]
    return list(values[column])


def by_gid(figure, prefix: str) -> dict[str, object]:
    return {artist.get_gid(): artist for artist in figure.findobj(lambda a: (a.get_gid() or "").startswith(prefix))}


# --------------------------------------------------------------------------- bars


def test_bars_are_the_means_with_t_intervals_seed_dots_and_marks_on_significant_cells():
    table = summary()
    figure = language_bars(table, results(), title="toy", metric_label="test accuracy")
    ax = figure.axes[0]
    bars, dots, marks = by_gid(figure, "bar|"), by_gid(figure, "seeds|"), by_gid(figure, "mark|")
    width = 0.8 / 2
    for i, (arm, values) in enumerate((("baseline", BASE), ("salt", SALT))):
        halves = []
        for x, column in enumerate(COLUMNS):
            seeds = per_seed(values, column)
            centre = x + bar_positions(2)[i]
            bar = bars[f"bar|{arm}|{column}"]
            assert bar.get_height() == pytest.approx(np.mean(seeds) * 100, abs=1e-9)
            assert bar.get_x() + bar.get_width() / 2 == pytest.approx(centre)
            offsets = dots[f"seeds|{arm}|{column}"].get_offsets().data
            assert offsets[:, 0] == pytest.approx([centre + d for d in seed_offsets(3, width)])
            assert offsets[:, 1] == pytest.approx([v * 100 for v in seeds])  # seed order 1, 2, 3
            halves.append(sps.t.ppf(0.975, 2) * np.std(seeds, ddof=1) / math.sqrt(3) * 100)
        segments = by_gid(figure, f"ci|{arm}")[f"ci|{arm}"].get_segments()
        assert [(seg[1][1] - seg[0][1]) / 2 for seg in segments] == pytest.approx(halves, abs=1e-9)
    # marks exactly where the table has one: salt on en and fr (a constant +3 points), not on de
    significant = {f"mark|{arm}|{column}" for arm in table.arms for column in table.columns
                   if table.cell(arm, column).significant}
    assert set(marks) == significant
    assert {"mark|salt|en", "mark|salt|fr"} <= significant and "mark|salt|de" not in significant
    assert all(mark.get_text() == DAGGER for mark in marks.values())
    assert [label.get_text() for label in ax.get_xticklabels()] == ["en", "de", "fr", "avg", "avg+en"]
    assert ax.get_ylabel() == "test accuracy (%)" and figure.get_suptitle() == "toy"


def test_a_single_seed_has_a_bar_and_a_dot_but_no_interval():
    one = results()[results()["seed"] == 1]
    table = summarize(one, arms=["baseline", "salt"], languages=LANGS, baseline_arm="baseline")
    figure = language_bars(table, one, title="toy", metric_label="test accuracy")
    assert by_gid(figure, "bar|baseline|de")["bar|baseline|de"].get_height() == pytest.approx(70.0)
    assert not by_gid(figure, "ci|") and not by_gid(figure, "mark|")
    assert len(by_gid(figure, "seeds|salt|fr")["seeds|salt|fr"].get_offsets().data) == 1


def test_intervals_past_the_score_range_are_cut_at_0_and_100_with_a_caret():
    """Two seeds far apart: t(0.975, 1) = 12.71 makes de's interval 50 +- 12.71 * 0.2 / sqrt(2) * 100 =
    50 +- 179.8 points, past both ends, and so are avg (= de) and avg+en's; en's (80 +- 12.7) stays whole. The
    axis is the score's range."""
    rows = [{"arm": "salt", "seed": seed, "language": lang, "value": value}
            for lang, values in (("en", (0.79, 0.81)), ("de", (0.30, 0.70))) for seed, value in zip((1, 2), values)]
    frame = pd.DataFrame(rows)
    table = summarize(frame, arms=["salt"], languages=["en", "de"], baseline_arm=None, expected_seeds=[1, 2])
    figure = language_bars(table, frame, title="toy", metric_label="test accuracy")
    segments = by_gid(figure, "ci|salt")["ci|salt"].get_segments()
    half_en = sps.t.ppf(0.975, 1) * np.std([79, 81], ddof=1) / math.sqrt(2)
    assert [(seg[0][1], seg[1][1]) for seg in segments[:2]] == [pytest.approx((80 - half_en, 80 + half_en)),
                                                                  pytest.approx((0.0, 100.0))]
    carets = [line for line in figure.axes[0].get_lines() if line.get_gid() == "cut|salt"]
    assert [(line.get_marker(), line.get_ydata()[0]) for line in carets] == [("^", 100.0)] * 3 + [("v", 0.0)] * 3
    assert [line.get_xdata()[0] for line in carets] == pytest.approx([1, 2, 3] * 2)  # de, avg, avg+en
    assert figure.axes[0].get_ylim() == pytest.approx((0.0, 110.0))
    assert any("interval runs past the score's range" in t.get_text() for t in figure.legends[0].get_texts())


# --------------------------------------------------------------------------- forest


def test_forest_rows_are_the_summary_differences_and_intervals_averages_last():
    table = summary()
    figure = forest(table, title="toy", metric_label="test accuracy")
    ax = figure.axes[0]
    points = by_gid(figure, "diff|salt")["diff|salt"].get_offsets().data
    segments = by_gid(figure, "ci|salt")["ci|salt"].get_segments()
    cells = [table.cell("salt", column) for column in COLUMNS]
    assert points[:, 1] == pytest.approx([row_position(i, 5) for i in range(5)])  # en on top, avg+en last
    assert points[:, 0] == pytest.approx([c.mean_diff * 100 for c in cells])
    assert [end for s in segments for end in (s[0][0], s[1][0])] == \
        pytest.approx([end for c in cells for end in (c.ci_low * 100, c.ci_high * 100)])
    # by hand: fr's differences .031 .029 .030 -> mean 3.0 points
    assert points[2, 0] == pytest.approx(3.0, abs=1e-9)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["en", "de", "fr", "avg", "avg+en"]
    assert set(by_gid(figure, "mark|")) == {f"mark|salt|{c}" for c in COLUMNS if table.cell("salt", c).significant}


def test_no_forest_without_a_baseline():
    assert forest(summary(baseline=None), title="toy", metric_label="test accuracy") is None


# --------------------------------------------------------------------------- learning curves (real MLflow)


def test_learning_curves_from_the_confirm_runs_histories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "curves")
    tracker.open_parent(None, name="sweep", tags={"stage": "sweep"})
    curves = {("baseline", 1): (0.50, 0.60, 0.65), ("baseline", 2): (0.52, 0.64, 0.61),
              ("salt", 1): (0.55, 0.70, 0.72)}
    for (arm, seed), values in [*curves.items(), (("salt", 2), (0.9, 0.9, 0.9))]:
        tags = {PARENT_TAG: tracker.parent_run_id, "stage": "confirm", "arm": arm, "seed": str(seed)}
        run_id = tracker.client.create_run(tracker.experiment_id, tags=tags).info.run_id
        tracker.client.log_batch(run_id, metrics=[Metric("eval_dev_acc", v, 0, 100 * (k + 1))
                                                  for k, v in enumerate(values)])
        if (arm, seed) in curves:  # salt seed 2 never finished: not a run the table reports
            tracker.client.set_terminated(run_id)
    histories = fetch_histories(tracker, "eval_dev_acc", ["baseline", "salt"])
    assert len(histories) == 9 and list(dict.fromkeys(histories["arm"])) == ["baseline", "salt"]
    figure = learning_curves(histories, title="toy", metric_label="English dev accuracy")
    line = by_gid(figure, "mean|baseline")["mean|baseline"]
    assert list(line.get_xdata()) == [100, 200, 300]
    assert line.get_ydata() == pytest.approx([51.0, 62.0, 63.0])
    assert by_gid(figure, "mean|salt")["mean|salt"].get_ydata() == pytest.approx([55.0, 70.0, 72.0])
    band = by_gid(figure, "band|baseline")["band|baseline"].get_paths()[0].vertices
    at_200 = {round(y, 9) for x, y in band if x == 200}
    assert at_200 == {60.0, 64.0}  # min..max over the two seeds
    assert "band|salt" not in by_gid(figure, "band|")  # one seed: no band
    assert figure.axes[0].get_ylabel() == "English dev accuracy (%)"
    # an arm keeps the colour the table's order gives it in the other figures, whichever arms have curves
    table_arms = ["translate_train", "baseline", "salt"]
    coloured = learning_curves(histories, title="toy", metric_label="x", arms=table_arms)
    assert by_gid(coloured, "mean|salt")["mean|salt"].get_color() == arm_colours(table_arms)["salt"]
    with pytest.raises(FigureSkipped):
        learning_curves(fetch_histories(tracker, "no_such_metric"), title="toy", metric_label="x")


# --------------------------------------------------------------------------- the search (real Optuna study)


def study_with(tmp_path, values: list[dict]) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                                study_name=f"toy-{len(values)}", sampler=optuna.samplers.TPESampler(seed=0))
    for params in values:
        study.enqueue_trial(params)

    def objective(trial):
        lr, layer = trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True), trial.suggest_int("layer", 1, 12)
        return 0.5 + 100 * lr + layer / 100

    study.optimize(objective, n_trials=len(values))
    return optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")


def test_search_figures_from_a_stored_study(tmp_path):
    study = study_with(tmp_path, [{"learning_rate": 1e-4, "layer": 2}, {"learning_rate": 1e-3, "layer": 1},
                                  {"learning_rate": 1e-5, "layer": 12}, {"learning_rate": 2e-4, "layer": 6}])
    kw = {"title": "toy search", "target_label": "dev accuracy (%)"}
    history = optimization_history(study, **kw)
    values = [0.5 + 0.01 + 0.02, 0.5 + 0.1 + 0.01, 0.5 + 0.001 + 0.12, 0.5 + 0.02 + 0.06]
    assert history.axes[0].collections[0].get_offsets().data[:, 1] == pytest.approx([v * 100 for v in values])
    best = by_gid(history, "best")["best"]
    assert best.get_ydata() == pytest.approx([53.0, 61.0, 62.1, 62.1])
    importances = param_importances(study, **kw)
    assert sorted(t.get_text() for t in importances.axes[0].get_yticklabels()) == ["layer", "learning_rate"]
    coordinates = parallel_coordinate(study, **kw)
    assert [t.get_text() for t in coordinates.axes[0].get_xticklabels()] == ["objective", "layer", "learning_rate"]
    for figure in (history, importances, coordinates):
        assert figure.axes[0].get_title().startswith("toy search")
        figure.savefig(tmp_path / "check.png")  # renders (layout included) without error


def test_small_searches_skip_the_figures_they_cannot_draw(tmp_path):
    kw = {"title": "toy", "target_label": "dev accuracy (%)"}
    one = study_with(tmp_path, [{"learning_rate": 1e-4, "layer": 2}])
    optimization_history(one, **kw)  # one trial still has a history
    for draw in (param_importances, parallel_coordinate):
        with pytest.raises(FigureSkipped, match="at least 2 finished trials, the search has 1"):
            draw(one, **kw)
    same = study_with(tmp_path, [{"learning_rate": 1e-4, "layer": 2}] * 2)
    with pytest.raises(FigureSkipped, match="took two values"):
        param_importances(same, **kw)
    (tmp_path / "tied").mkdir()  # other knobs, the same objective: 0.5 + 100 * 1e-4 + 2 / 100 = 0.5 + 100 * 2e-4 + 1 / 100
    tied = study_with(tmp_path / "tied", [{"learning_rate": 1e-4, "layer": 2}, {"learning_rate": 2e-4, "layer": 1}])
    with pytest.raises(FigureSkipped, match="different objectives; all 2 scored 53"):
        param_importances(tied, **kw)
    parallel_coordinate(tied, **kw)  # the lines are still drawn


# --------------------------------------------------------------------------- CKA and generalized XNLI


def test_cka_scatter_plots_the_points_spearman_ranks():
    scores = pd.DataFrame([{"arm": "xmixup", "seed": s, "language": lang, "value": v + 0.01 * s}
                           for s in (1, 2) for lang, v in zip(["de", "fr", "hi", "sw"], [0.7, 0.6, 0.5, 0.4])])
    cka = pd.DataFrame([{"arm": "xmixup", "seed": s, "language": lang, "value": v}
                        for s in (1, 2) for lang, v in zip(["de", "fr", "hi", "sw"], [0.9, 0.8, 0.85, 0.5])])
    figure = cka_scatter(scores, cka, ["xmixup"], ["de", "fr", "hi", "sw"], title="toy", metric_label="accuracy")
    points = by_gid(figure, "cka|xmixup")["cka|xmixup"].get_offsets().data
    assert points[:, 0] == pytest.approx([0.9, 0.8, 0.85, 0.5])
    assert points[:, 1] == pytest.approx([71.5, 61.5, 51.5, 41.5])  # mean over seeds, percent
    # ranks of CKA 4 2 3 1 against scores 4 3 2 1: rho = 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15) = 0.8
    assert figure.axes[0].get_title().startswith("xmixup: ρ = 0.80")
    with pytest.raises(FigureSkipped):
        cka_scatter(scores, cka, ["baseline"], ["de"], title="toy", metric_label="accuracy")


def test_generalized_heatmap_cells_are_the_arms_means_over_seeds():
    languages = ["en", "de"]
    rows = [{"arm": "salt", "seed": seed, "premise": p, "hypothesis": h, "value": value}
            for seed, matrix in ((1, ((0.80, 0.60), (0.62, 0.70))), (2, ((0.82, 0.64), (0.60, 0.72))))
            for i, p in enumerate(languages) for j, h in enumerate(languages) for value in [matrix[i][j]]]
    cells = describe_over_seeds(seed_tables(pd.DataFrame(rows), languages))
    figure = generalized_heatmap(cells, "salt", languages, title="toy")
    image = by_gid(figure, "heatmap|salt")["heatmap|salt"]
    assert np.asarray(image.get_array()) == pytest.approx(np.array([[81.0, 62.0], [61.0, 71.0]]))
    assert [t.get_text() for t in figure.axes[0].texts] == ["81.0", "62.0", "61.0", "71.0"]
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == languages  # premise rows
    assert "all 4 pairs: 68.8" in figure.get_suptitle()  # (81 + 62 + 61 + 71) / 4 = 68.75


# --------------------------------------------------------------------------- publishing


def test_publish_writes_and_logs_each_figure_and_skips_the_ones_that_fail(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "publish")
    tracker.open_parent(None, name="sweep", tags={"stage": "sweep"})

    def broken():
        raise RuntimeError("a bug\nwith a second line")

    drawers = {"results_forest": lambda: forest(summary(), title="toy", metric_label="test accuracy"),
               "no_baseline": lambda: forest(summary(baseline=None), title="toy", metric_label="x"),
               "skipped": lambda: (_ for _ in ()).throw(FigureSkipped("too few trials")), "broken": broken}
    written = publish_figures(tracker, tmp_path / "results", drawers)
    assert written == [tmp_path / "results" / FIGURES_DIR / "results_forest.png"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logged = [a.path for a in tracker.client.list_artifacts(tracker.parent_run_id, FIGURES_DIR)]
    assert logged == [f"{FIGURES_DIR}/results_forest.png"]
    assert capsys.readouterr().out.splitlines() == [
        "figure no_baseline skipped: nothing to compare (no baseline, or no other arm)",
        "figure skipped skipped: too few trials", "figure broken skipped: RuntimeError: a bug"]
