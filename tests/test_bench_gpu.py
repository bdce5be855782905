"""The GPU report (``bench/gpu_report.py``, ``make bench-gpu``): its arithmetic by hand, and the whole script on CPU."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import mfu  # noqa: E402
from concurrent_trials import aggregate_samples_per_second, memory_need_gb  # noqa: E402
from report_table import THROUGHPUT_COLUMNS, append_throughput_rows  # noqa: E402

HEADER = ("workload,model,layers,hidden,device,precision,max_length,batch,trials_per_device,samples_per_second,"
          "peak_memory_gb,measured,source")


def test_peaks_follow_the_device_name_word_by_word():
    assert mfu.peak_bf16("NVIDIA H100 80GB HBM3") == 989e12  # the SXM part's name
    assert mfu.peak_bf16("NVIDIA H100 PCIe") == 756e12
    assert mfu.peak_bf16("NVIDIA H200") == 989e12
    assert mfu.peak_bf16("NVIDIA A100-SXM4-80GB") == 312e12
    assert mfu.peak_bf16("NVIDIA L40S") == 362e12
    assert mfu.peak_bf16("NVIDIA L4") == 121e12
    assert mfu.peak_bf16("NVIDIA A10") == 125e12
    # No figure rather than a wrong one: an A10G is not an A10, an L40 not an L40S, a CPU has none.
    assert mfu.peak_bf16("NVIDIA A10G") is None
    assert mfu.peak_bf16("NVIDIA L40") is None
    assert mfu.peak_bf16("cpu (2 threads)") is None
    assert mfu.utilisation(100.0, 1e9, None) is None
    assert mfu.utilisation(100.0, 1e9, 1e12) == pytest.approx(0.1)


def test_flops_per_sample_counts_the_non_embedding_weights_and_attention():
    from workloads import SIZES, non_embedding_parameters

    hidden, layers, _, inter, _ = SIZES["small"]
    # By hand, BertForSequenceClassification without embeddings: per layer Q, K, V, O (h x h + h each), the
    # feed-forward (h x i + i, i x h + h) and two LayerNorms (2 h each); then the pooler (h x h + h) and the
    # 3-way classifier (3 h + 3).
    per_layer = 4 * (hidden * hidden + hidden) + (hidden * inter + inter) + (inter * hidden + hidden) + 4 * hidden
    expected = layers * per_layer + hidden * hidden + hidden + 3 * hidden + 3
    assert non_embedding_parameters("small") == expected
    # Two samples of 10 and 30 tokens: E[T] = 20, E[T^2] = 500.
    assert mfu.flops_per_sample(expected, layers, hidden, 20.0, 500.0) == \
        6 * expected * 20 + 12 * layers * hidden * 500


def test_aggregate_is_all_samples_over_the_common_window():
    children = [{"train_samples": 300, "train_began_at": 100.0, "train_ended_at": 110.0},
                {"train_samples": 300, "train_began_at": 101.0, "train_ended_at": 112.0}]
    assert aggregate_samples_per_second(children) == pytest.approx(600 / 12)
    assert aggregate_samples_per_second([]) == 0.0
    assert memory_need_gb(4, 5.0, gpu=True) == 4 * 6.0  # a CUDA context's allowance per process
    assert memory_need_gb(2, 0.5, gpu=False) == 1.0


def test_throughput_rows_get_the_estimators_header_once(tmp_path):
    assert ",".join(THROUGHPUT_COLUMNS) == HEADER
    assert (REPO / "orchestrator" / "throughput.csv").read_text().splitlines()[0] == HEADER
    row = {"workload": "train", "model": "small", "layers": 4, "hidden": 256, "device": "cpu (1 threads)", "precision": "fp32",
           "max_length": 128, "batch": 32, "trials_per_device": 1, "samples_per_second": 80.5, "peak_memory_gb": 0.6,
           "measured": "2026-12-03", "source": "bench/gpu_report.py"}
    path = tmp_path / "throughput.csv"
    append_throughput_rows(str(path), [row])
    append_throughput_rows(str(path), [{**row, "trials_per_device": 2}])
    rows = list(csv.DictReader(path.open()))
    assert [r["trials_per_device"] for r in rows] == ["1", "2"] and path.read_text().count("model,") == 1
    other = tmp_path / "other.csv"
    other.write_text("a,b\n")
    with pytest.raises(ValueError, match="header a,b"):
        append_throughput_rows(str(other), [row])


def test_bad_flags_get_one_line_and_exit_2(capsys):
    from gpu_report import parse_args

    for argv in (["--trials", "1,x"], ["--scan-per-gpu", "0"], ["--steps", "0"], ["--sections", "6"], ["--json", "/no/such/dir/r.json"]):
        with pytest.raises(SystemExit) as exit_:
            parse_args(argv, gpu=False)
        assert exit_.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow
def test_make_bench_gpu_runs_on_cpu_and_prints_the_table(tmp_path):
    """``make bench-gpu``'s command on CPU: every section's rows, with numbers, in one table, and the throughput
    rows appended. Its budget on CPU is 3 minutes on 2 cores; the timeout is a hang bound."""
    table = tmp_path / "throughput.csv"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "bench/gpu_report.py", "--json", str(tmp_path / "report.json"),
                           "--write-table", str(table)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    printed = out[out.index("| section | measure | value | detail |"):]
    for measure in ("ours samples/s", "hf_tuned samples/s", "hf_plain samples/s", "ours / hf_tuned",
                    "ours / hf_plain", "ours + padding-free / ours", "ours + compile / ours", "model FLOPs per sample",
                    "ours MFU", "1 trials: aggregate samples/s", "2 trials: aggregate samples/s",
                    "2 actor(s): Ray Data sentences/s", "start to first step",
                    "last step to result"):
        assert f"| {measure} |" in printed, measure
    assert "| error |" not in printed
    assert "n/a (no peak figure)" in printed  # a CPU has no bf16 peak: MFU is not made up

    report = json.loads((tmp_path / "report.json").read_text())
    sections = report["sections"]
    assert all("error" not in sections[key] for key in sections), {k: v.get("error") for k, v in sections.items()}
    assert all(v > 0 for v in sections["per_trial"]["median"].values())
    assert sections["per_trial"]["ours_vs_hf_tuned"] > 0 and sections["per_trial"]["ours_vs_hf_plain"] > 0
    # the speed settings on vs off: the same data, so the same non-padding tokens per sample
    assert sections["per_trial"]["ours_padding_free_vs_ours"] > 0 and sections["per_trial"]["ours_compile_vs_ours"] > 0
    tokens = sections["per_trial"]["tokens_per_sample"]
    assert tokens["ours_padding_free"] == pytest.approx(tokens["ours"]) == pytest.approx(tokens["ours_compile"])
    assert sections["mfu"]["flops_per_sample"] > 0 and sections["mfu"]["ours"] is None
    for k in ("1", "2"):
        concurrent = sections["concurrent"][k]
        assert concurrent["aggregate_samples_per_second"] > 0 and concurrent["peak_memory_gb"] > 0
        assert len(concurrent["children"]) == int(k)
    assert sections["salt_scan"]["2"]["sentences_per_second"] > 0  # CPU: one run, --scan-actors 2
    overhead = sections["ray_overhead"]
    assert 0 < overhead["start_share"] < 1 and 0 < overhead["end_share"] < 1
    assert overhead["start_share"] + overhead["end_share"] < 1

    rows = list(csv.DictReader(table.open()))
    assert table.read_text().splitlines()[0] == HEADER
    assert [(r["workload"], int(r["trials_per_device"])) for r in rows] == [("train", 1), ("train", 2), ("salt_scan", 2)]
    assert all(r["model"] == "tiny" and r["precision"] == "fp32" and r["source"] == "bench/gpu_report.py"
               and float(r["samples_per_second"]) > 0 for r in rows)
    assert [r["device"] for r in rows] == ["cpu (1 threads)"] * 2 + ["cpu"]
