"""The legend under a results table: what a cell and each mark mean, the averages, the per-arm
verdicts, the differences the seeds could detect, the protocol's notes and the missing seeds.

It is its own module because the legend is the table's prose, worded from the summary alone: one list
of plain-text lines that every renderer of :mod:`orchestrator.report` shows in its own markup.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.report_cells import CHANCE_MARK, DAGGER, PERCENT, WORSE_MARK, ValueFormat, column_label
from orchestrator.stats_summary import AVG, AVG_EN, Summary


def legend_lines(
    summary: Summary, *, metric_label: str = "accuracy", value_format: ValueFormat = PERCENT,
    notes: Sequence[str] = (),
) -> list[str]:
    """Plain-text legend: what a cell and each mark mean, the averages, the per-arm verdicts, the
    differences the seeds could detect, ``notes`` (the protocol: search, baseline tuning), missing seeds.

    The tests are only explained when the table has them (a summary without a baseline has no
    marks), and ``avg+<source>`` only when the table shows it.
    """
    seeds = ", ".join(str(seed) for seed in summary.expected_seeds) or "none"
    lines = [
        f"{metric_label}{value_format.label_suffix} mean ± std over {len(summary.expected_seeds)} seeds "
        f"(seeds: {seeds}); bold = best",
    ]
    if summary.baseline_arm is not None:
        lines.append(_marks_line(summary))
    lines.append(_averages_line(summary))
    if summary.baseline_arm is not None:
        lines.extend(_verdict_lines(summary, value_format))
    lines.extend(notes)
    if summary.at_chance:
        runs = "; ".join(f"{arm}: seed {', '.join(map(str, seeds))}" for arm, seeds in summary.at_chance.items())
        lines.append(f"{CHANCE_MARK} selection metric at chance (never above the dev set's constant-prediction "
                     f"score): the kept checkpoint is arbitrary; {runs}")
    missing = summary.missing_seeds()
    if missing:
        per_arm = "; ".join(f"{arm}: {', '.join(str(seed) for seed in seeds)}" for arm, seeds in missing.items())
        lines.append(f"missing seeds: {per_arm}")
    return lines


def _averages_line(summary: Summary) -> str:
    """What ``avg`` and ``avg+<source>`` average; on ``--languages`` (``summary.subset``) that they are over the
    chosen targets only, never the benchmark's average (which the published numbers are)."""
    source, subset = summary.source_language, summary.subset
    if subset is None:
        line = f"avg = macro average over the target languages (without {source})"
        return line + (f"; avg+{source} = macro average over all languages" if AVG_EN in summary.columns else "")
    chosen = [lang for lang in summary.languages if lang != source]
    left_out = [lang for lang in subset.targets if lang not in chosen]
    line = (f"avg = macro average over the {len(chosen)} chosen target languages ({', '.join(chosen)}) of "
            f"{subset.benchmark}'s {len(subset.targets)}, not the benchmark average")
    if AVG_EN in summary.columns:
        line += f"; avg+{source} = over {source} and those {len(chosen)}"
    return line + (f" (--languages; left out: {', '.join(left_out)}); published averages, over all "
                   f"{len(subset.targets)}, are not set beside it")


def _same_as_baseline(summary: Summary, arm: str) -> bool:
    """Every column paired on two or more seeds with no difference at all (e.g. the search kept the paper
    setting, so the tuned arm is the baseline run again): say so rather than leave the row unexplained."""
    cells = [summary.cell(arm, column) for column in summary.columns]
    return any(cell.n_pairs >= 2 for cell in cells) and all(
        cell.mean_diff is not None and abs(cell.mean_diff) < 1e-12 for cell in cells if cell.n_pairs)


def _marks_line(summary: Summary) -> str:
    options = summary.options
    if options.correction == "none":
        rule = f"p <= {options.alpha:g}, not corrected for the many columns"
    else:
        rule = (f"p adjusted ({options.correction_name}, over each arm's {len(summary.columns)} columns) "
                f"<= {options.alpha:g}")
    interval = "t" if options.ci_method == "t" else "percentile bootstrap over seeds"
    return (f"{DAGGER} significantly better, {WORSE_MARK} significantly worse than {summary.baseline_arm}: "
            f"paired t-test over seeds, {rule}; differences to {summary.baseline_arm} with "
            f"{options.confidence:.0%} {interval} intervals in results.html and ttest.csv")


def _verdict_lines(summary: Summary, value_format: ValueFormat) -> list[str]:
    """Per arm: better/worse on how many languages; the smallest difference its seeds could detect."""
    options = summary.options
    verdicts, detectable = [], []
    for arm in summary.arms:
        if arm == summary.baseline_arm:
            continue
        better, worse, tested = summary.direction_counts(arm)
        if tested:
            verdicts.append(f"{arm} better on {better}, worse on {worse} of {tested} languages")
        elif _same_as_baseline(summary, arm):
            verdicts.append(f"{arm} equals {summary.baseline_arm} on every paired seed (no test)")
        mdd = [f"{column_label(summary, column)} {value_format.number(summary.cell(arm, column).mdd)}"
               for column in (AVG, AVG_EN) if column in summary.columns and summary.cell(arm, column).mdd is not None]
        if mdd:
            detectable.append(f"{arm} {', '.join(mdd)}")
    lines = []
    if verdicts:
        lines.append(f"vs {summary.baseline_arm} ({options.correction_name}): " + "; ".join(verdicts))
    if detectable:
        lines.append(f"smallest true difference the seeds detect with {options.power:.0%} power (paired t-test, "
                     f"two-sided, alpha {options.alpha:g} uncorrected, observed spread){value_format.difference_unit and ', in' + value_format.difference_unit}: "
                     + "; ".join(detectable))
    return lines
