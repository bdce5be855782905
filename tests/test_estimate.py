"""The cost estimate before launch and the choice of trials per device (issue 18, items 2-3), against hand counts."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.sharing import resolve_sharing
from orchestrator.sweep import main
from orchestrator.throughput import (COLUMNS, TABLE, Rate, choose_trials_per_device, device_matches, measured_rates,
                                     model_size, rate_text)
from trainables.config import TrainConfig
from trainables.methods import get_spec


def sequences(method: str, rows: int, **fields) -> float:
    params = fields.pop("method_params", {})
    cfg = TrainConfig(task="xnli", method=method, num_train_epochs=2, method_params=params, **fields)
    return get_spec(method).method.training_sequences(cfg, rows)


def test_each_method_counts_the_sequences_its_recipe_trains_on():
    assert sequences("baseline", 1000) == 2000  # 2 epochs x 1000 rows
    assert sequences("baseline", 1000, max_steps=10, per_device_batch_size=8, grad_accum_steps=4) == 320
    # SALT: a copy per scanned language (English synonyms, de, fr), and the originals
    assert sequences("salt", 1000, method_params={"languages": ("syn", "de", "fr"), "keep_original": True}) == 2 * 4000
    # X-Mixup: de pairs and English pairs, two encoder passes each
    assert sequences("xmixup", 1000, method_params={"train_languages": "de"}) == 2 * 2 * 2000
    assert sequences("xmixup", 1000, method_params={"train_languages": "de", "english_pairs": False}) == 2 * 2000
    # self-training, 3 voters, 2 rounds: 3 teachers (2 epochs x 1000), 3 + 1 students (1 epoch x the pool: at most
    # 500 rows of each of 14 targets)
    st = {"voting": True, "voters": 3, "rounds": 2, "unlabelled_per_language": 500}
    assert sequences("self_training", 1000, method_params=st) == 3 * 2000 + 4 * 500 * 14


def rate(k: int, total: float, memory: float = 0.0) -> Rate:
    return Rate(k, total, memory, "NVIDIA H100 80GB HBM3", "test")


def test_the_fewest_trials_within_five_percent_of_the_best_aggregate_win_and_memory_bounds_them():
    rates = {1: rate(1, 100), 2: rate(2, 180), 4: rate(4, 185), 8: rate(8, 150)}
    choice = choose_trials_per_device(rates)
    assert choice.trials == 2 and choice.fraction() == 0.5  # 180 >= 0.95 x 185
    assert "2 trial(s) per GPU" in choice.reason and "185" not in choice.reason.split("(")[0]
    big = {1: rate(1, 100, 30.0), 2: rate(2, 190, 30.0), 4: rate(4, 300, 30.0)}
    assert choose_trials_per_device(big, memory_gb=80).trials == 2  # 4 x 30 GB does not fit in 80
    none = choose_trials_per_device({})
    assert none.trials == 1 and "no measured throughput" in none.reason and "--probe" in none.reason


def write_table(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(device: str, k: int, total: float, **extra) -> dict:
    base = {"workload": "train", "model": "mbert-base", "layers": 12, "hidden": 768, "device": device, "precision": "bf16", "max_length": 128,
            "batch": 32, "trials_per_device": k, "samples_per_second": total, "peak_memory_gb": 6.0,
            "measured": "2026-12-01", "source": "bench/gpu_report.py"}
    return {**base, **extra}


def test_the_table_is_read_by_model_size_device_kind_and_precision(tmp_path):
    table = write_table(tmp_path / "t.csv", [
        row("NVIDIA H100 80GB HBM3", 1, 900), row("NVIDIA H100 80GB HBM3", 2, 1500),
        row("NVIDIA H100 80GB HBM3", 1, 950, max_length=256, measured="2026-12-02"),
        row("NVIDIA A100-SXM4-80GB", 1, 400), row("NVIDIA H100 80GB HBM3", 1, 300, precision="fp32"),
        row("cpu (1 threads)", 1, 20, precision="fp32"),
        row("NVIDIA H100 80GB HBM3", 1, 5000, workload="salt_scan")])  # another workload's rate: never a trial's
    size = model_size("bert-base-multilingual-cased")
    h100 = measured_rates(size, "H100", "bf16", max_length=128, table=table)  # Ray's accelerator type names it
    assert {k: r.samples_per_second for k, r in h100.items()} == {1: 900, 2: 1500}  # the max_length 128 row wins
    assert measured_rates(size, "cpu", "fp32", table=table)[1].samples_per_second == 20
    assert not measured_rates(model_size("xlm-roberta-large"), "H100", "bf16", table=table)
    assert device_matches("H100", "NVIDIA H100 80GB HBM3") and not device_matches("H100", "NVIDIA H200")
    assert not device_matches("cpu", "NVIDIA H100") and model_size("no/such-model") is None


def test_auto_shares_a_gpu_or_a_cpu_by_the_same_rule(tmp_path, monkeypatch):
    table = write_table(tmp_path / "t.csv", [
        row("NVIDIA H100 80GB HBM3", 1, 900), row("NVIDIA H100 80GB HBM3", 2, 1700), row("NVIDIA H100 80GB HBM3", 4, 1750),
        row("cpu (1 threads)", 1, 50, precision="fp32"), row("cpu (1 threads)", 2, 80, precision="fp32")])
    monkeypatch.setattr("orchestrator.throughput.TABLE", table)
    monkeypatch.setattr("orchestrator.sharing.measured_rates",
                        lambda *a, **k: measured_rates(*a, **{**k, "table": table}))
    gpu = {"CPU": 16.0, "GPU": 1.0, "accelerator_type:H100": 1.0}
    args = dict(model="bert-base-multilingual-cased", precision="bf16", max_length=128)
    shared = resolve_sharing(None, 1.0, gpu, **args)  # the default on a GPU cluster is auto
    assert (shared.gpus_per_trial, shared.choice.trials) == (0.5, 2)  # 1700 >= 0.95 x 1750
    assert shared.params()["resources.trials_per_device"] == "2" and "H100" in shared.params()["resources.device"]
    assert resolve_sharing(0.25, 1.0, gpu, **args).gpus_per_trial == 0.25  # a number is taken as given
    cpu = {"CPU": 2.0}
    args["precision"] = "fp32"
    assert resolve_sharing(None, 1.0, cpu, **args).cpus_per_worker == 1.0  # a CPU cluster shares only when asked
    halves = resolve_sharing("auto", 1.0, cpu, **args)
    assert (halves.gpus_per_trial, halves.cpus_per_worker, halves.choice.trials) == (0.0, 0.5, 2)
    probed = resolve_sharing("auto", 1.0, cpu, probe={1: Rate(1, 50, 0, "cpu", "--probe"), 2: Rate(2, 51, 0, "cpu", "--probe")},
                             **args)
    assert probed.choice.trials == 1 and "--probe" in probed.choice.reason  # the probe replaces the table


def test_the_dry_run_prints_the_samples_trials_and_an_estimate_that_names_its_source(capsys):
    assert main(["salt_xnli", "--profile", "smoke", "--dry-run", "--arms", "baseline,salt"]) == 0
    out = capsys.readouterr().out
    # smoke: 1,200 English rows, 3 epochs; SALT trains 4 copies (English synonyms + 3 languages) per row
    assert "cost         training sequences per trial (1,200 rows, the smoke data): salt 14,400 (search); " \
           "baseline 3,600; salt 14,400; 8 trials" in out
    rates = measured_rates(model_size(None), "cpu", "fp32")
    if rates:  # the repository's table has this machine's kind of device for the smoke model
        assert "CPU-hours on cpu" in out and "[source: orchestrator/throughput.csv" in out
    else:
        assert "no measured figure for 2 layers x 64 on cpu (fp32): run with --probe" in out


def test_the_paper_dry_run_of_salt_xnli_estimates_from_the_repository_table(capsys):
    """The issue's acceptance line, on the paper profile (mBERT, the hub's 392,702 English rows): the estimate is
    sequences / the table's measured rate for mBERT's size on this kind of device, and names the table."""
    import re

    import torch

    if torch.cuda.is_available():
        pytest.skip("on a GPU machine the dry run estimates for the GPU, whose row a GPU session adds")
    assert main(["salt_xnli", "--dry-run"]) == 0
    out = capsys.readouterr().out
    total = int(re.search(r"40 trials, ([\d,]+) sequences in all", out).group(1).replace(",", ""))
    rates = measured_rates(model_size("bert-base-multilingual-cased"), "cpu", "fp32", max_length=128)
    assert rates, "orchestrator/throughput.csv has no measured mBERT-size row on CPU (bench/gpu_report.py --size mbert)"
    rate = rates[1]  # a CPU sweep runs one trial per CPU unless --gpus-per-trial auto asks to share
    assert (f"~{total / rate.samples_per_second / 3600:.3g} CPU-hours on {rate.device} "
            f"({rate_text(rate.samples_per_second, grouped=True)} sequences/s with 1 trial(s) per CPU; training steps "
            f"only) [source: orchestrator/throughput.csv: {rate.source}]") in out


def test_rates_print_whole_from_100_and_to_three_digits_below():
    assert (rate_text(3600), rate_text(3600, grouped=True), rate_text(1.534), rate_text(29.16)) == (
        "3600", "3,600", "1.53", "29.2")


def test_the_repository_table_has_the_columns_the_estimate_reads():
    with TABLE.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == COLUMNS
        for line in reader:
            assert float(line["samples_per_second"]) > 0 and int(line["trials_per_device"]) in (1, 2, 4, 8)


@pytest.mark.parametrize("value", ["auto", "0.5"])
def test_gpus_per_trial_takes_auto_or_a_number(value, capsys):
    assert main(["baseline_xnli", "--profile", "smoke", "--dry-run", "--gpus-per-trial", value]) == 0
    assert f"GPUs per trial: {value}" in capsys.readouterr().out


@pytest.mark.slow
def test_a_dry_run_probe_measures_this_machine_and_auto_shows_its_choice(tmp_path, monkeypatch):
    """--dry-run --probe starts a local Ray, trains 1 then 2 short runs sharing one CPU, and prints the estimate from
    them and the sharing it would choose; it opens no sweep (no MLflow run, no sweep folder)."""
    import subprocess
    import sys

    from tests.smoke_cache import seed_smoke_cache
    from tests.test_sweep_smoke import env

    args = ("baseline_xnli", "--profile", "smoke", "--dry-run", "--probe", "--gpus-per-trial", "auto")
    seed_smoke_cache(tmp_path, *args)
    proc = subprocess.run([sys.executable, "-m", "orchestrator.sweep", *args], cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "[probe] 1 run(s) sharing one CPU:" in out
    assert "CPU-hours on cpu" in out and "[source: measured on this cluster: --probe, 40 steps x" in out
    assert "--gpus-per-trial auto: " in out and "trial(s) per CPU" in out
    assert not (tmp_path / "mlflow.db").exists()
    assert {p.name for p in (tmp_path / "sweeps" / "baseline_xnli").iterdir()} <= {"probe", "cache"}


def test_scan_actors_share_a_gpu_by_the_measured_scan_rates_and_one_per_gpu_without(tmp_path, monkeypatch):
    """SALT's scan actors per GPU (issue 18 item 3): the same rule as the trials, on the table's ``salt_scan`` rows
    (full precision: the scan has no autocast); the training rows never count."""
    from orchestrator.sharing import actor_share, preparation_cluster
    from trainables.preparation import Cluster

    table = write_table(tmp_path / "t.csv", [
        row("NVIDIA H100 80GB HBM3", 1, 2000, workload="salt_scan", precision="fp32"),
        row("NVIDIA H100 80GB HBM3", 2, 3600, workload="salt_scan", precision="fp32"),
        row("NVIDIA H100 80GB HBM3", 4, 3700, workload="salt_scan", precision="fp32"),
        row("NVIDIA A100-SXM4-80GB", 1, 900), row("NVIDIA A100-SXM4-80GB", 2, 1800)])  # training rows only
    monkeypatch.setattr("orchestrator.sharing.measured_rates", lambda *a, **k: measured_rates(*a, **{**k, "table": table}))
    h100 = {"CPU": 16.0, "GPU": 2.0, "accelerator_type:H100": 1.0}
    share = actor_share("salt_scan", h100, model="bert-base-multilingual-cased")
    assert share.gpus_per_actor == 0.5  # 3600 >= 0.95 x 3700: the fewest near the best
    assert share.reason.startswith("2 salt_scan actor(s) per GPU: 3600 sentences/s")
    a100 = actor_share("salt_scan", {"CPU": 8.0, "GPU": 1.0, "accelerator_type:A100": 1.0},
                       model="bert-base-multilingual-cased")
    assert a100.gpus_per_actor == 1.0 and "no measured throughput" in a100.reason and "make bench-gpu" in a100.reason
    assert actor_share("salt_scan", {"CPU": 2.0}, model=None).gpus_per_actor == 0.0
    cluster = preparation_cluster(SimpleNamespace(model="bert-base-multilingual-cased"), h100)
    assert (cluster.gpus, cluster.cpus) == (2.0, 16.0) and cluster.share("salt_scan") == share
    assert Cluster({"CPU": 4.0}).share("salt_scan").gpus_per_actor == 1.0  # a bare Cluster: one actor per GPU
