"""SALT's generalized XNLI setting on the parent run: per arm the 15 x 15 mean table, and the paired test of
the overall average against the baseline (SALT section 4, Tables 4-6).

Each confirm run that evaluated the setting carries its 225 accuracies as the artifact
``generalized/generalized_xnli.csv`` (``orchestrator.tracking``; the pairs are built in
``trainables.generalized``). MLflow is the record of truth, as for the main table: the newest finished
run of each (arm, seed) is read. Averages are formed inside each seed first (a row's mean over the
hypothesis languages, a column's over the premise languages, the overall mean over all 225 pairs, the
diagonal included as in the paper's tables), then described over seeds; a seed whose matrix lacks a
pair gets no average. The overall average of an arm is tested against the baseline's by a paired t-test
over seeds (``orchestrator.significance``): one test per arm, so no correction.

Files: ``generalized.md`` (a table per arm: premise languages down, hypothesis languages across, the
averages in the last row and column), ``generalized.csv`` (every cell's mean, std and n, fractions at full
precision, the averages under ``avg``) and ``generalized_ttest.csv``.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.experiments import Experiment
from orchestrator.predictions import quiet_downloads
from orchestrator.report_cells import DAGGER, WORSE_MARK
from orchestrator.significance import SignificanceOptions, paired_test
from orchestrator.tracking import SweepTracker
from trainables import generalized
from trainables.tasks import TaskSpec

AVG = "avg"
FILES = ("generalized.md", "generalized.csv", "generalized_ttest.csv")
TTEST_COLUMNS = ("arm", "baseline", "column", "n_pairs", "mean_diff", "ci_low", "ci_high", "t_stat", "p_value",
                 "significant", "direction", "mdd")


def collect_generalized(tracker: SweepTracker) -> pd.DataFrame:
    """Long frame (arm, seed, premise, hypothesis, value) of the finished confirm runs' matrices."""
    frames = []
    artifact = f"{generalized.ARTIFACT_DIR}/{generalized.MATRIX_FILE}"
    with tempfile.TemporaryDirectory(prefix="generalized-") as scratch, quiet_downloads():
        for (arm, seed), run in tracker.finished_confirm_runs().items():
            listed = {a.path for a in tracker.client.list_artifacts(run.info.run_id, generalized.ARTIFACT_DIR)}
            if artifact not in listed:
                continue
            folder = Path(scratch) / run.info.run_id
            folder.mkdir()
            matrix = pd.read_csv(tracker.client.download_artifacts(run.info.run_id, artifact, str(folder)))
            frames.append(matrix_to_long(matrix, arm, seed))
    columns = ["arm", "seed", "premise", "hypothesis", "value"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def matrix_to_long(matrix: pd.DataFrame, arm: str, seed: int) -> pd.DataFrame:
    """One run's matrix (``premise`` column, one column per hypothesis language) as long rows; blanks dropped."""
    long = matrix.melt(id_vars=generalized.PREMISE_COLUMN, var_name="hypothesis", value_name="value")
    long = long.rename(columns={generalized.PREMISE_COLUMN: "premise"}).dropna(subset=["value"])
    long.insert(0, "seed", int(seed))
    long.insert(0, "arm", arm)
    long["premise"], long["hypothesis"] = long["premise"].astype(str), long["hypothesis"].astype(str)
    return long.astype({"value": "float64"}).reset_index(drop=True)


def seed_tables(results: pd.DataFrame, languages: list[str]) -> pd.DataFrame:
    """Per (arm, seed) every pair's value plus the seed's averages: ``(p, avg)`` the mean of row p,
    ``(avg, h)`` the mean of column h, ``(avg, avg)`` the mean of all pairs; only seeds with every pair."""
    rows = []
    n = len(languages)
    for (arm, seed), group in results.groupby(["arm", "seed"], sort=False):
        matrix = group.pivot(index="premise", columns="hypothesis", values="value").reindex(index=languages,
                                                                                         columns=languages)
        values = matrix.to_numpy(dtype="float64")
        cells = [(p, h, values[i, j]) for i, p in enumerate(languages) for j, h in enumerate(languages)]
        if not np.isnan(values).any() and values.shape == (n, n):
            cells += [(p, AVG, values[i].mean()) for i, p in enumerate(languages)]
            cells += [(AVG, h, values[:, j].mean()) for j, h in enumerate(languages)]
            cells.append((AVG, AVG, values.mean()))
        rows += [{"arm": arm, "seed": int(seed), "premise": p, "hypothesis": h, "value": v}
                 for p, h, v in cells if not math.isnan(v)]
    return pd.DataFrame(rows, columns=["arm", "seed", "premise", "hypothesis", "value"])


def present_languages(results: pd.DataFrame, languages) -> list[str]:
    """The task's languages (in its order) that occur as premises in ``results``: the tables' rows and columns."""
    premises = set(results["premise"])
    return [lang for lang in languages if lang in premises]


def describe_over_seeds(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, premise, hypothesis) of :func:`seed_tables`' frame, averages included: the mean, sample std
    (NaN for one seed) and number of seeds; what the tables print and the heatmaps colour."""
    return (per_seed.groupby(["arm", "premise", "hypothesis"], sort=False)["value"]
            .agg(mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else math.nan, n="count").reset_index())


def overall_tests(per_seed: pd.DataFrame, arms: list[str], baseline: str | None,
                  options: SignificanceOptions) -> pd.DataFrame:
    """The paired test of each arm's overall average (all 225 pairs) against the baseline's, on shared seeds."""
    overall = per_seed[(per_seed.premise == AVG) & (per_seed.hypothesis == AVG)].set_index(["arm", "seed"])["value"]
    rows = []
    if baseline is None or baseline not in overall.index.get_level_values("arm"):
        return pd.DataFrame(rows, columns=list(TTEST_COLUMNS))
    base = overall.loc[baseline]
    for arm in arms:
        if arm == baseline or arm not in overall.index.get_level_values("arm"):
            continue
        values = overall.loc[arm]
        shared = values.index.intersection(base.index).sort_values()
        test = paired_test(values.loc[shared].to_numpy(), base.loc[shared].to_numpy(), options)
        significant = test.p_value is not None and test.p_value <= options.alpha
        direction = ("better" if (test.mean_diff or 0.0) > 0 else "worse") if significant else "none"
        rows.append({"arm": arm, "baseline": baseline, "column": generalized.OVERALL, "n_pairs": test.n_pairs,
                     "mean_diff": test.mean_diff, "ci_low": test.ci_low, "ci_high": test.ci_high,
                     "t_stat": test.t_stat, "p_value": test.p_value, "significant": significant,
                     "direction": direction, "mdd": test.mdd})
    return pd.DataFrame(rows, columns=list(TTEST_COLUMNS))


def report_generalized(results: pd.DataFrame, tracker: SweepTracker, experiment: Experiment, task: TaskSpec,
                       seeds, out_dir: Path, options: SignificanceOptions | None = None) -> str:
    """Write and attach the generalized tables, log ``<arm>.gen_acc_avg.*`` on the parent; their text summary
    ("" when no confirm run evaluated the setting)."""
    if results.empty:
        return ""
    options = options or SignificanceOptions()
    present = set(results["arm"])
    arms = [arm.name for arm in experiment.confirm_arms if arm.name in present]
    baseline = experiment.baseline_arm if experiment.baseline_arm in arms else None
    languages = present_languages(results, task.languages)
    per_seed = seed_tables(results, languages)
    cells = describe_over_seeds(per_seed)
    tests = overall_tests(per_seed, arms, baseline, options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown, table, ttest = (out_dir / name for name in FILES)
    lines = summary_lines(cells, tests, arms, baseline)
    skipped = [arm.name for arm in experiment.confirm_arms if arm.name not in present]
    legend = legend_lines(list(seeds), len(languages), baseline, options, skipped)
    markdown.write_text(render_markdown(cells, arms, languages, title=f"{experiment.name}: generalized XNLI accuracy",
                                        lines=lines + legend), encoding="utf-8")
    cells.to_csv(table, index=False)
    tests.to_csv(ttest, index=False)
    tracker.log_artifacts([markdown, table, ttest])
    tracker.log_metrics(parent_metrics(cells, tests))
    return "\n".join([f"{experiment.name}: generalized XNLI, overall average of {len(languages) ** 2} pairs "
                      f"({len(languages)} x {len(languages)} tables: {FILES[0]})", *lines, *legend]) + "\n"


def _overall(cells: pd.DataFrame, arm: str) -> pd.Series | None:
    hit = cells[(cells.arm == arm) & (cells.premise == AVG) & (cells.hypothesis == AVG)]
    return None if hit.empty else hit.iloc[0]


def summary_lines(cells: pd.DataFrame, tests: pd.DataFrame, arms: list[str], baseline: str | None) -> list[str]:
    """Per arm: the overall average (mean ± std over seeds) and, tested, its difference to the baseline."""
    lines = []
    for arm in arms:
        overall = _overall(cells, arm)
        if overall is None:
            lines.append(f"{arm}: no seed with all pairs")
            continue
        text = f"{arm}: {overall['mean'] * 100:.1f}" + (f" ± {overall['std'] * 100:.1f}" if np.isfinite(overall["std"])
                                                        else "") + f" (n={int(overall['n'])})"
        test = tests[tests.arm == arm]
        if not test.empty and test.iloc[0]["mean_diff"] is not None and np.isfinite(test.iloc[0]["mean_diff"]):
            row = test.iloc[0]
            text += f"; - {baseline} {row['mean_diff'] * 100:+.1f}"
            if pd.notna(row["ci_low"]):
                text += f" [{row['ci_low'] * 100:+.1f}, {row['ci_high'] * 100:+.1f}], p {row['p_value']:.3g}"
            text += {"better": DAGGER, "worse": WORSE_MARK}.get(row["direction"], "")
        lines.append(text)
    return lines


def legend_lines(seeds: list[int], n_languages: int, baseline: str | None, options: SignificanceOptions,
                 skipped: list[str]) -> list[str]:
    lines = [f"accuracy (%) of each confirm run's kept checkpoint, mean over seeds ({', '.join(map(str, seeds))}); "
             "rows: premise language, columns: hypothesis language, paired by test row; avg: the mean of a row / "
             f"column over all {n_languages} languages, the diagonal included (SALT Tables 4-6); corner: the mean of "
             f"all {n_languages ** 2} pairs"]
    if baseline is not None:
        lines.append(f"{DAGGER} / {WORSE_MARK}: overall average significantly better / worse than {baseline}: paired "
                     f"t-test over seeds, p <= {options.alpha:g} (one test per arm, no correction), "
                     f"{options.confidence:.0%} t interval of the difference in points")
    if skipped:
        lines.append(f"no generalized results: {', '.join(skipped)} (X-Mixup's mixup inference reads each test "
                     "example's English translation, which cross-language pairs lack; or no run finished)")
    return lines


def render_markdown(cells: pd.DataFrame, arms: list[str], languages: list[str], *, title: str,
                    lines: list[str]) -> str:
    """A pipe table per arm (mean over seeds, percent, one decimal; – where missing), then ``lines``."""
    parts = [f"## {title}"]
    order = [*languages, AVG]
    for arm in arms:
        of_arm = cells[cells.arm == arm].set_index(["premise", "hypothesis"])["mean"]
        header = "| premise \\ hypothesis | " + " | ".join(order) + " |"
        rule = "|:---|" + "---:|" * len(order)
        body = ["| " + " | ".join([premise, *(f"{of_arm[(premise, h)] * 100:.1f}" if (premise, h) in of_arm.index
                                             else "–" for h in order)]) + " |" for premise in order]
        parts.append(f"### {arm}\n\n" + "\n".join([header, rule, *body]))
    parts.extend(lines)
    return "\n\n".join(parts) + "\n"


def parent_metrics(cells: pd.DataFrame, tests: pd.DataFrame) -> dict[str, float]:
    """``<arm>.gen_acc_avg.mean`` / ``.std``, and for tested arms ``.diff``, ``.ci_low``, ``.ci_high``, ``.p_value``."""
    metrics: dict[str, float] = {}
    for arm in cells["arm"].unique():
        overall = _overall(cells, arm)
        if overall is not None:
            metrics[f"{arm}.{generalized.OVERALL}.mean"] = float(overall["mean"])
            metrics[f"{arm}.{generalized.OVERALL}.std"] = float(overall["std"])
    for row in tests.itertuples(index=False):
        for key, value in (("diff", row.mean_diff), ("ci_low", row.ci_low), ("ci_high", row.ci_high),
                           ("p_value", row.p_value)):
            metrics[f"{row.arm}.{generalized.OVERALL}.{key}"] = value
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}
