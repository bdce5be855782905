"""Cost accounting (``orchestrator.cost``, ``orchestrator.cost_report``, the loop's counts in
``trainables.training.pace`` and ``.memory``): device-hours and token rates by hand, each trial's cost logged by
the MLflow callback into a real local store (plain objects standing for Tune's ``Trial``, as Tune hands them
over), and the sweep's totals per stage and arm on the parent run and under the table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from mlflow.entities import Metric

from orchestrator.cost import DeviceShare, device_hours, trial_cost
from orchestrator.cost_report import collect_sweep_cost, log_sweep_cost
from orchestrator.experiments import get_experiment
from orchestrator.plan import TrialResolver
from orchestrator.report import render_text
from orchestrator.reuse import REUSED_FROM
from orchestrator.stats import summarize
from orchestrator.tracking import PARENT_TAG, NestedRunCallback, SweepTracker
from orchestrator.trial import TrainLaunch
from orchestrator.results import collect_confirm_results
from tests.rank_memory import current_rss_bytes
from trainables.config import TrainConfig
from trainables.training.distributed import DistContext, sum_over_ranks
from trainables.training.memory import peak_memory
from trainables.training.pace import non_padding_tokens, tokens_per_second

FINAL = {"time_total_s": 1800.0, "train_samples_per_second": 100.0, "train_samples": 2000, "train_tokens": 50_000}


def test_a_launch_holds_its_workers_gpus_or_else_their_cpus():
    gpu = DeviceShare.of(TrainLaunch(storage_path="/s", num_workers=2, gpus_per_worker=0.5, cpus_per_worker=4))
    cpu = DeviceShare.of(TrainLaunch(storage_path="/s", num_workers=2, cpus_per_worker=3))
    assert (gpu, gpu.metric) == (DeviceShare("gpu", 1.0), "gpu_hours")
    assert (cpu, cpu.metric) == (DeviceShare("cpu", 6.0), "cpu_hours")


def test_trial_cost_by_hand():
    assert device_hours(5400.0, 4) == 6.0
    # A search trial over 3 seeds, each run on 2 GPUs, for half an hour: 3 x 2 x 0.5 h; 25 tokens per sample.
    assert trial_cost(FINAL, DeviceShare("gpu", 2.0), runs_at_once=3) == {
        "gpu_hours": 3.0, "devices_held": 6.0, "trial_seconds": 1800.0, "train_tokens_per_second": 2500.0}
    # A CPU trial: 4 CPUs for 90 s are 0.1 CPU-hours.
    assert trial_cost({"time_total_s": 90}, DeviceShare("cpu", 4.0)) == pytest.approx(
        {"cpu_hours": 0.1, "devices_held": 4.0, "trial_seconds": 90.0})
    assert trial_cost({}, DeviceShare("gpu", 1.0)) == {}  # no result: nothing measured
    assert tokens_per_second(100.0, 0, 0) == 0.0


def test_non_padding_tokens_sum_every_attention_mask():
    batch = {"input_ids": torch.ones(2, 4, dtype=torch.long),
             "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]),
             "source_attention_mask": torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]]),  # a method's second input
             "labels": torch.tensor([1, 2])}
    assert non_padding_tokens(batch) == 10
    assert sum_over_ranks(10, DistContext()) == 10  # one process: its own count


def test_no_peak_memory_on_cpu():
    assert peak_memory(torch.device("cpu")) == {}


@dataclass
class FakeTrial:
    """Stands for Tune's ``Trial``: what the MLflow callback reads of it."""

    trial_id: str
    config: dict
    last_result: dict = field(default_factory=dict)


def test_trials_log_their_cost_and_the_parent_sums_it_per_stage_and_arm(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the store's default artifact root is relative
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "baseline_xnli")
    tracker.open_parent(None, name="sweep", tags={"stage": "sweep"})
    experiment = get_experiment("baseline_xnli")
    resolver = TrialResolver(base=TrainConfig(task="xnli").to_dict(), arms={a.name: a for a in experiment.arms},
                             searched_arm="baseline_tuned", search_seeds=(7, 8))
    share = DeviceShare("gpu", 1.0)

    def callback(stage: str) -> NestedRunCallback:
        return NestedRunCallback(tracker.uri, tracker.experiment_id, tracker.parent_run_id, stage, resolver,
                                 share=share)

    search, confirm = callback("search"), callback("confirm")
    # A search trial over 2 seeds, 720 s: 2 x 0.2 GPU-hours.
    searched = FakeTrial("s1", {"learning_rate": 3e-5}, FINAL | {"time_total_s": 720.0})
    search.on_trial_start(0, [], searched)
    search.on_trial_complete(0, [], searched)
    ended = [FakeTrial("c1", {"pair": {"arm": "baseline", "seed": 1}}, FINAL),  # 0.5
             FakeTrial("c2", {"pair": {"arm": "baseline", "seed": 2}}, {"time_total_s": 900.0}),  # 0.25
             FakeTrial("c3", {"pair": {"arm": "baseline_tuned", "seed": 1}}, {"time_total_s": 360.0})]  # 0.1, failed
    for trial in ended:
        confirm.on_trial_start(0, [], trial)
    confirm.on_trial_complete(0, [], ended[0])
    confirm.on_trial_complete(0, [], ended[1])
    confirm.on_trial_error(0, [], ended[2])

    run = tracker.client.get_run(search.run_id(searched))
    assert run.data.metrics["gpu_hours"] == pytest.approx(0.4) and run.data.metrics["devices_held"] == 2.0
    first = tracker.client.get_run(confirm.run_id(ended[0])).data.metrics
    assert first["gpu_hours"] == pytest.approx(0.5) and first["train_tokens_per_second"] == pytest.approx(2500.0)
    assert tracker.client.get_run(confirm.run_id(ended[2])).info.status == "FAILED"

    # Not counted: a twin's copy (nothing trained for it) and a seed run nested under its search trial's run.
    for tags in ({PARENT_TAG: tracker.parent_run_id, "stage": "confirm", "arm": "baseline_tuned", "seed": "2",
                  REUSED_FROM: confirm.run_id(ended[1])},
                 {PARENT_TAG: search.run_id(searched), "stage": "search-seed", "arm": "baseline_tuned", "seed": "7"}):
        run_id = tracker.client.create_run(tracker.experiment_id, tags=tags).info.run_id
        tracker.client.log_batch(run_id, metrics=[Metric("gpu_hours", 0.25, 0, 0)])

    lines = log_sweep_cost(tracker)
    metrics = tracker.client.get_run(tracker.parent_run_id).data.metrics
    cost = {k: v for k, v in metrics.items() if k.startswith("cost.")}
    assert cost == pytest.approx({"cost.stage.search.gpu_hours": 0.4, "cost.stage.confirm.gpu_hours": 0.85,
                                  "cost.arm.baseline.gpu_hours": 0.75, "cost.arm.baseline_tuned.gpu_hours": 0.5,
                                  "cost.total.gpu_hours": 1.25})
    assert lines == ["GPU-hours per arm: baseline 0.75, baseline_tuned 0.5; per stage: search 0.4, confirm 0.85; "
                     "total 1.25"]
    assert [c.unit for c in collect_sweep_cost(tracker)] == ["gpu_hours"]


def test_the_table_prints_the_cpu_hours_per_arm_under_it(tmp_path: Path, monkeypatch):
    from tests.test_report import TOY, sweep_with_runs

    monkeypatch.chdir(tmp_path)
    tracker = sweep_with_runs(tmp_path, {})  # confirm runs of baseline, xmixup, frozen on seeds 1, 2
    for run in tracker.child_runs("confirm"):
        hours = {"baseline": 0.001, "xmixup": 0.002, "frozen": 0.0005}[run.data.tags["arm"]]
        tracker.client.log_batch(run.info.run_id, metrics=[Metric("cpu_hours", hours, 0, 0)])
    lines = log_sweep_cost(tracker)
    assert lines == ["CPU-hours per arm: baseline 0.002, frozen 0.001, xmixup 0.004; per stage: confirm 0.007; "
                     "total 0.007"]
    summary = summarize(collect_confirm_results(tracker, TOY), arms=["baseline", "xmixup", "frozen"],
                        languages=list(TOY.languages), baseline_arm="baseline", expected_seeds=[1, 2])
    text = render_text(summary, title="toy", notes=tuple(lines))  # the sweep adds them to the legend's notes
    table_end = text.index("| frozen")
    assert text.index(lines[0]) > table_end


def test_the_loop_counts_the_samples_and_non_padding_tokens_it_trained_on(smoke_train_config):
    """One epoch over the English train split: every example once, its tokens all counted, none of the padding."""
    from trainables.data import load_tokenized
    from trainables.loop import train_and_evaluate

    final = train_and_evaluate(smoke_train_config.replace(num_train_epochs=1.0, eval_every_steps=1000,
                                                         languages=("en", "de")))  # a short test pass
    split = load_tokenized(smoke_train_config.tokenized_path)["train_en"]
    assert final["train_samples"] == len(split)
    assert final["train_tokens"] == sum(len(ids) for ids in split["input_ids"])
    assert "peak_gpu_memory_gb" not in final or torch.cuda.is_available()
    # its process's peak host memory (one rank): at least what the process holds now, the model and data included
    rss_now = current_rss_bytes() if Path("/proc/self/statm").exists() else 0
    assert final["peak_host_memory_gb"] >= rss_now / 2 ** 30
