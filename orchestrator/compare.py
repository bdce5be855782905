"""``python -m orchestrator.compare``: one table across methods, from finished sweeps in MLflow.

Each sweep tests its arms against its own baseline; comparing methods needs them in one table. This
reads finished sweeps (their parent runs: the latest FINISHED one of each ``--experiments`` name, or the
parent run ids given), refuses sweeps whose results are not comparable (another model, task, confirm seeds
or data: ``orchestrator.compare_sweeps``), takes each sweep's main arm and one shared baseline
(``orchestrator.compare_rows``), and reports them exactly as a sweep reports its arms: the same statistics
(``orchestrator.stats.summarize``: paired t-tests by seed, the sweeps' correction), the same files
(``results.{md,csv,html}``, ``ttest.csv``) and per-arm metrics, on a run of its own in the MLflow experiment
``compare_<task>`` (tags ``stage`` = ``compare``, ``compared_sweeps``, ``sweep.<row>`` = the run it came
from), then prints the table. The sweeps' runs are only read.

Not carried over from a sweep's report: the paired bootstrap over test examples, the published numbers and
the secondary tables (CKA, seen / unseen, generalized XNLI); each sweep's own report has them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import NoReturn, Sequence

from orchestrator.cli import fail
from orchestrator.compare_rows import Comparison, build_comparison
from orchestrator.figures import forest, language_bars
from orchestrator.figures_report import publish_figures
from orchestrator.compare_sweeps import (CompareRefused, SweepRecord, check_comparable, latest_finished_sweep,
                                         load_sweep, shared_options)
from orchestrator.report import render_text, write_reports
from orchestrator.results import METRIC_LABELS, arm_metrics
from orchestrator.stats import summarize
from orchestrator.stats_summary import Summary
from orchestrator.tracking_server import check_tracking
from orchestrator.tracking import SweepTracker
from orchestrator.tracking_store import TrackingUnavailable, open_client, resolve_tracking_uri
from trainables.tasks import get_task

COMPARE_STAGE = "compare"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, as the sweep's command line does
        fail(f"{message} (see python -m orchestrator.compare --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m orchestrator.compare",
                description="One table across methods: the main arm of each finished sweep against one shared "
                            "baseline, paired by seed, with the sweeps' t-tests; logged to MLflow as its own run.")
    p.add_argument("sweep_ids", nargs="*", metavar="SWEEP_ID", help="parent run ids of sweeps (the sweep prints it)")
    p.add_argument("--experiments", type=lambda text: [name for name in text.split(",") if name], default=[],
                   help="comma list of experiments whose latest finished sweep to compare, "
                        "e.g. baseline_xnli,salt_xnli,xmixup_xnli")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///mlflow.db in this directory)")
    p.add_argument("--out", help="folder for the report files (default ./compare/<task>/<compare run id>)")
    return p


def find_sweeps(uri: str, sweep_ids: Sequence[str], experiments: Sequence[str]) -> list[SweepRecord]:
    """The sweeps named (ids, then each experiment's latest finished sweep; each once), checked comparable."""
    client = open_client(uri)
    run_ids = [*sweep_ids, *(latest_finished_sweep(client, name) for name in experiments)]
    sweeps = [load_sweep(client, run_id) for run_id in dict.fromkeys(run_ids)]
    check_comparable(sweeps)
    return sweeps


def compare(uri: str, sweeps: list[SweepRecord], out_dir: str | Path | None = None) -> tuple[str, str]:
    """Build, write and log the comparison of ``sweeps`` (checked by ``find_sweeps``); return its text table
    and the compare run's id."""
    task = get_task(sweeps[0].task)
    comparison = build_comparison(uri, sweeps, task)
    options, options_note = shared_options(sweeps)
    summary = summarize(comparison.results, arms=comparison.arms, languages=list(task.languages),
                        baseline_arm=comparison.baseline.name, source_language=task.source_language,
                        expected_seeds=list(sweeps[0].seeds) or None, options=options)
    summary = replace(summary, at_chance=comparison.at_chance)
    label = METRIC_LABELS.get(task.reported_metric, task.reported_metric)
    title = f"{task.name}: methods compared (main arm of each sweep vs one shared baseline), test {label}"
    notes = [*comparison.notes(), *([options_note] if options_note else [])]

    tracker = SweepTracker(uri, f"compare_{task.name}")
    tracker.open_parent(None, name=f"compare-{task.name}", tags=compare_tags(comparison))
    try:
        out = Path(out_dir) if out_dir else Path("compare") / task.name / tracker.parent_run_id
        tracker.log_params({"task": task.name, "model": sweeps[0].model, "seeds": list(sweeps[0].seeds),
                            "data": sweeps[0].data, "correction": options.correction, "ci_method": options.ci_method})
        paths = write_reports(summary, out, title=title, metric_label=label, notes=notes)
        tracker.log_artifacts(list(paths.values()))
        tracker.log_metrics(arm_metrics(summary, f"test_{task.reported_metric}"))
        compare_figures(summary, comparison.results, out, tracker, title=title, metric_label=label)
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish()
    return render_text(summary, title=title, metric_label=label, notes=notes), tracker.parent_run_id


def compare_tags(comparison: Comparison) -> dict[str, str]:
    """The compare run's tags: its stage, the parent run ids it read, and per row the run it came from."""
    sweeps = dict.fromkeys(row.sweep.run_id for row in comparison.rows)
    return {"stage": COMPARE_STAGE, "compared_sweeps": ",".join(sweeps),
            **{f"sweep.{row.name}": row.sweep.run_id for row in comparison.rows}}


def compare_figures(summary: Summary, results, out_dir: Path, tracker: SweepTracker, *, title: str = "",
                    metric_label: str = "accuracy") -> list[Path]:
    """The comparison's bars and forest plot (``orchestrator.figures``), written under ``out_dir/figures/`` and
    logged on its run as ``figures/<name>.png`` the way a sweep's are (``publish_figures``); the PNGs."""
    drawers = {
        "compare_bars": lambda: language_bars(summary, results, title=title, metric_label=f"test {metric_label}"),
        "compare_forest": lambda: forest(summary, title=f"{title}: difference to {summary.baseline_arm}",
                                         metric_label=f"test {metric_label}"),
    }
    return publish_figures(tracker, out_dir, drawers)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.sweep_ids and not args.experiments:
        fail("name the sweeps to compare: parent run ids, or --experiments baseline_xnli,salt_xnli "
             "(see python -m orchestrator.compare --help)")
    try:
        uri = resolve_tracking_uri(args.tracking_uri)
        check_tracking(uri, wait_s=0)  # a comparison reads finished runs: no server to wait for
        sweeps = find_sweeps(uri, args.sweep_ids, args.experiments)
        text, run_id = compare(uri, sweeps, args.out)
    except (CompareRefused, TrackingUnavailable) as exc:
        fail(str(exc))
    print(text)
    print(f"MLflow: {uri} (experiment compare_{sweeps[0].task}, run {run_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
