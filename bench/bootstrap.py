"""Cost of the paired bootstrap (``orchestrator.bootstrap.bootstrap_tests``) on an XNLI-sized sweep.

Run: ``python bench/bootstrap.py [--resamples 1000]``. The prediction table is generated: 15
languages x 5010 test examples, 4 arms (the baseline and 3 others), 5 seeds, ~70% correct. The
figures are ratios against baselines measured in this process on the same table:

- ``accuracies``: the plain per-(arm, seed, language) accuracies (what the table shows anyway);
- ``B=100``: the same bootstrap with a tenth of the resamples (the cost should be ~linear in B).

Absolute seconds are printed too: they decide whether the test can be on by default.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.bootstrap import bootstrap_tests  # noqa: E402
from trainables.tasks import XNLI  # noqa: E402

ARMS = ["baseline", "arm_a", "arm_b", "arm_c"]
SEEDS = [1, 2, 3, 4, 5]
N_TEST = 5010


def make_table(seed: int = 0) -> pd.DataFrame:
    """Predictions in ``confirm_predictions``'s shape: gold uniform over 3 labels, ~70% of predictions right."""
    rng = np.random.default_rng(seed)
    languages = list(XNLI.languages)
    frames = []
    for arm_index, arm in enumerate(ARMS):
        for seed_ in SEEDS:
            gold = rng.integers(0, 3, size=(len(languages), N_TEST))
            right = rng.random((len(languages), N_TEST)) < 0.68 + 0.01 * arm_index
            prediction = np.where(right, gold, (gold + rng.integers(1, 3, size=gold.shape)) % 3)
            frames.append(pd.DataFrame({
                "arm": arm, "seed": seed_,
                "language": pd.Categorical(np.repeat(languages, N_TEST), categories=languages),
                "example_id": np.tile(np.arange(N_TEST, dtype=np.int32), len(languages)),
                "prediction": prediction.ravel().astype(np.int8), "gold": gold.ravel().astype(np.int8)}))
    return pd.concat(frames, ignore_index=True)


def plain_accuracies(table: pd.DataFrame) -> pd.Series:
    return (table["prediction"] == table["gold"]).groupby([table["arm"], table["seed"], table["language"]],
                                                          observed=True).mean()


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = make_table()
    options = dict(arms=ARMS, baseline_arm="baseline", languages=list(XNLI.languages), source_language="en",
                   seed=0, metric="acc")
    print(f"table: {len(table):,} rows ({len(ARMS)} arms x {len(SEEDS)} seeds x {len(XNLI.languages)} languages "
          f"x {N_TEST} examples), {table.memory_usage(deep=True).sum() / 2**20:.1f} MiB")
    accuracies = timed(lambda: plain_accuracies(table), args.repeats)
    small = timed(lambda: bootstrap_tests(table, n_resamples=args.resamples // 10, **options), args.repeats)
    full = timed(lambda: bootstrap_tests(table, n_resamples=args.resamples, **options), args.repeats)
    rows = len(bootstrap_tests(table, n_resamples=10, **options))
    print(f"bootstrap_tests: {rows} tests ({len(ARMS) - 1} arms x {len(SEEDS)} seeds x "
          f"{len(XNLI.languages) + 2} columns)")
    print(f"{'':28s}{'seconds':>10s}{'vs accuracies':>16s}{'vs B=' + str(args.resamples // 10):>12s}")
    print(f"{'plain accuracies':28s}{accuracies:10.3f}{1.0:15.1f}x{accuracies / small:11.3f}x")
    print(f"{'bootstrap B=' + str(args.resamples // 10):28s}{small:10.3f}{small / accuracies:15.1f}x{1.0:11.2f}x")
    print(f"{'bootstrap B=' + str(args.resamples):28s}{full:10.3f}{full / accuracies:15.1f}x{full / small:11.2f}x")


if __name__ == "__main__":
    main()
