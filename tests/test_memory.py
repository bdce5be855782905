"""Peak memory (issue 22 item 7): each trial's workers' peak host memory and, on a GPU, its peak device memory
(``trainables.training.memory``), and the largest per arm on the parent run and under the table
(``orchestrator.memory_report``). Hand-checkable facts: a process that touched a buffer of known size
reports at least that much; two ranks report the sum of their peaks; the line and the metrics of a
hand-made frame; a real local MLflow store for what the sweep reads."""

from __future__ import annotations

import math
import pickle
import socket
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import Metric

from orchestrator.memory_report import largest_per_arm, log_sweep_memory, memory_line, memory_metrics
from orchestrator.reuse import REUSED_FROM
from orchestrator.seed_group import SeedGroup
from orchestrator.tracking import PARENT_TAG
from tests.rank_memory import MIB, current_rss_bytes, peak_on_rank, touch
from trainables.training.distributed import DistContext
from trainables.training.memory import GIB, largest_peaks, peak_host_memory, process_peak_rss_bytes

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")


@linux_only
def test_a_process_peak_counts_a_buffer_it_touched():
    before = current_rss_bytes()
    buffer = touch(256 * MIB)
    assert process_peak_rss_bytes() >= before + 256 * MIB * 0.99
    one_process = peak_host_memory(DistContext())  # one rank: its own peak, in GiB
    assert one_process["peak_host_memory_gb"] >= (before + 256 * MIB * 0.99) / GIB
    assert one_process["peak_host_memory_gb"] == pytest.approx(process_peak_rss_bytes() / GIB, abs=16 * MIB / GIB)
    del buffer


@linux_only
def test_two_ranks_report_the_sum_of_their_peaks(tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(peak_on_rank, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    (before0, own0, total0), (before1, own1, total1) = (pickle.loads((tmp_path / f"rank{r}").read_bytes())
                                                        for r in range(2))
    assert own0 >= before0 + 128 * MIB * 0.99 and own1 >= before1 + 256 * MIB * 0.99
    assert total0 == total1  # every rank gets the run's value
    # the sum of both processes' peaks (each may have grown by the all-reduce's few buffers since ``own``)
    assert (own0 + own1) / GIB <= total0 <= (own0 + own1 + 64 * MIB) / GIB


def test_a_trial_of_several_runs_reports_its_largest_peaks():
    phases = [{"peak_host_memory_gb": 2.5, "dev_acc": 0.6}, {"peak_host_memory_gb": 4.0, "peak_gpu_memory_gb": 7.0},
              {"peak_host_memory_gb": 3.0, "peak_gpu_memory_gb": 9.5}]
    assert largest_peaks(*phases) == {"peak_host_memory_gb": 4.0, "peak_gpu_memory_gb": 9.5}
    assert largest_peaks({"dev_acc": 0.5}) == {}
    # a search trial over 2 seeds: the mean of the scores, the largest of the peaks (one run's, like any trial's)
    group = SeedGroup((7, 8), "dev_acc")
    final = group.final({7: {"dev_acc": 0.6, "test_acc_de": 0.5, "peak_host_memory_gb": 3.0},
                         8: {"dev_acc": 0.8, "test_acc_de": 0.7, "peak_host_memory_gb": 3.5}})
    assert final["dev_acc"] == pytest.approx(0.7) and final["peak_host_memory_gb"] == 3.5


FRAME = pd.DataFrame([  # trial runs by hand: arm, host GiB, GPU GiB (NaN: a CPU run)
    ("baseline", 3.2, 7.25), ("baseline", 3.5, 7.5), ("salt", 4.125, 9.0), ("salt", 12.34, math.nan),
    ("frozen", math.nan, math.nan)], columns=["arm", "peak_host_memory_gb", "peak_gpu_memory_gb"])


def test_the_largest_peak_per_arm_from_a_hand_made_frame():
    largest = largest_per_arm(FRAME)
    assert largest == {"baseline": {"peak_host_memory_gb": 3.5, "peak_gpu_memory_gb": 7.5},
                       "salt": {"peak_host_memory_gb": 12.34, "peak_gpu_memory_gb": 9.0}}  # frozen logged none
    assert memory_metrics(largest) == {"memory.arm.baseline.host_gb": 3.5, "memory.arm.baseline.gpu_gb": 7.5,
                                       "memory.arm.salt.host_gb": 12.34, "memory.arm.salt.gpu_gb": 9.0}
    assert memory_line(largest) == ("Peak memory per arm (largest trial, GiB): baseline host 3.50, GPU 7.50; "
                                    "salt host 12.3, GPU 9.00")
    cpu_only = largest_per_arm(FRAME.assign(peak_gpu_memory_gb=math.nan))
    assert memory_line(cpu_only) == "Peak memory per arm (largest trial, GiB): baseline host 3.50; salt host 12.3"
    assert memory_line({}) == ""


def test_the_parent_run_holds_the_largest_peak_per_arm_and_the_table_prints_it(tmp_path: Path, monkeypatch):
    from orchestrator.report import render_text
    from orchestrator.results import collect_confirm_results
    from orchestrator.stats import summarize
    from tests.test_report import TOY, sweep_with_runs

    monkeypatch.chdir(tmp_path)
    tracker = sweep_with_runs(tmp_path, {})  # confirm runs of baseline, xmixup, frozen on seeds 1, 2
    assert log_sweep_memory(tracker) == []  # no trial logged its memory: no line, no metric
    for run in tracker.child_runs("confirm"):
        arm, seed = run.data.tags["arm"], int(run.data.tags["seed"])
        host = {"baseline": 1.0, "xmixup": 2.0, "frozen": 1.5}[arm] + seed / 10  # seed 2 is the arm's largest
        tracker.client.log_batch(run.info.run_id, metrics=[Metric("peak_host_memory_gb", host, 0, 0)])
    # Not counted: a twin's copy (nothing ran for it) and a seed run nested under a search trial's run.
    for tags in ({PARENT_TAG: tracker.parent_run_id, "stage": "confirm", "arm": "frozen", "seed": "3",
                  REUSED_FROM: "elsewhere"},
                 {PARENT_TAG: "a-search-trial", "stage": "search-seed", "arm": "xmixup", "seed": "7"}):
        run_id = tracker.client.create_run(tracker.experiment_id, tags=tags).info.run_id
        tracker.client.log_batch(run_id, metrics=[Metric("peak_host_memory_gb", 50.0, 0, 0)])

    lines = log_sweep_memory(tracker)
    assert lines == ["Peak memory per arm (largest trial, GiB): baseline host 1.20; frozen host 1.70; xmixup host 2.20"]
    metrics = tracker.client.get_run(tracker.parent_run_id).data.metrics
    assert {k: v for k, v in metrics.items() if k.startswith("memory.")} == pytest.approx(
        {"memory.arm.baseline.host_gb": 1.2, "memory.arm.frozen.host_gb": 1.7, "memory.arm.xmixup.host_gb": 2.2})
    summary = summarize(collect_confirm_results(tracker, TOY), arms=["baseline", "xmixup", "frozen"],
                        languages=list(TOY.languages), baseline_arm="baseline", expected_seeds=[1, 2])
    text = render_text(summary, title="toy", notes=tuple(lines))  # the sweep adds it to the legend's notes
    assert text.index(lines[0]) > text.index("| frozen")
