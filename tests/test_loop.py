"""The shared training loop, in one process: determinism, selection, metrics, failure on NaN."""

from __future__ import annotations

import functools
import math

import pytest

import trainables.loop
from trainables import faults
from trainables.checkpoints import FolderStore, read_outcome
from trainables.loop import STATE_FILE, TrainingDiverged, train_and_evaluate
from trainables.tasks import get_task
from trainables.training.pace import Pace

XNLI = get_task("xnli")


def run(cfg):
    reports: list[dict] = []
    final = train_and_evaluate(cfg, report=reports.append)
    return final, reports


def _counting_clock():
    """A clock that reads 0, 1, 2, ... : each reading of the pace's clock is one second."""
    ticks = iter(range(10**6))
    return lambda: float(next(ticks))


def _test_rows_per_selection_row(cfg) -> float:
    """By hand: every language's test rows over English dev's (the smoke data's sizes)."""
    from trainables.data import load_tokenized

    data = load_tokenized(cfg.tokenized_path)
    return sum(len(data[f"test_{lang}"]) for lang in XNLI.languages) / len(data["validation_en"])


def test_same_seed_same_metrics_other_seed_other_metrics(smoke_train_config):
    first, first_reports = run(smoke_train_config)
    again, again_reports = run(smoke_train_config)
    other, _ = run(smoke_train_config.replace(seed=2))
    drop = {"train_samples_per_second", "train_began_at", "train_ended_at", "peak_host_memory_gb"}  # not results
    assert {k: v for k, v in first.items() if k not in drop} == {k: v for k, v in again.items() if k not in drop}
    assert [r["train_loss"] for r in first_reports[:-1]] == [r["train_loss"] for r in again_reports[:-1]]
    assert [r["train_loss"] for r in first_reports[:-1]] != pytest.approx(
        [r["train_loss"] for r in run(smoke_train_config.replace(seed=2))[1][:-1]])
    assert other["test_acc_avg"] != first["test_acc_avg"] or other["dev_acc"] != first["dev_acc"]


def test_reports_curves_then_final_metrics_of_the_best_checkpoint(smoke_train_config, monkeypatch):
    monkeypatch.setattr(trainables.loop, "Pace", functools.partial(Pace, clock=_counting_clock()))
    final, reports = run(smoke_train_config)
    curve, last = reports[:-1], reports[-1]
    assert last is not None and last == final
    # 1200 generated English examples / batch 32 = 38 steps per epoch, 2 epochs, eval every 25.
    steps = [r["step"] for r in curve]
    assert steps == [25, 50, 75, 76]
    # dev_acc is the best selection score so far; the final one is the kept checkpoint's.
    evals = [r["eval_dev_acc"] for r in curve]
    assert [r["dev_acc"] for r in curve] == [max(evals[: i + 1]) for i in range(len(evals))]
    assert final["dev_acc"] == max(evals)
    assert final["best_step"] == steps[evals.index(max(evals))]
    # Every language tested; the averages are the macro means without and with English.
    per_lang = {lang: final[f"test_acc_{lang}"] for lang in XNLI.languages}
    assert final["test_acc_avg"] == pytest.approx(sum(v for k, v in per_lang.items() if k != "en") / 14)
    assert final["test_acc_avg_en"] == pytest.approx(sum(per_lang.values()) / 15)
    # The generated task is learnable: English is well above chance (1/3) after two epochs.
    assert per_lang["en"] > 0.5
    # The learning rate decays linearly to 0 with no warmup.
    assert curve[-1]["learning_rate"] == pytest.approx(0.0, abs=1e-12)
    assert curve[0]["learning_rate"] == pytest.approx(1e-3 * (1 - 25 / 76))
    # The console's progress keys. The pace's clock ticks one second per reading (at its start, around each
    # evaluation, at each report): at step 25 of 76 the attempt took 3 s for 25 steps, so 51 steps are 6.12 s,
    # plus the test pass: one evaluation's second times the test rows per selection row.
    test_pass = _test_rows_per_selection_row(smoke_train_config)
    assert test_pass > 1  # 15 test sets against English dev
    assert [r["total_steps"] for r in curve] == [76] * 4
    assert [r["eta_seconds"] for r in curve] == pytest.approx(
        [51 * 3 / 25 + test_pass, 26 * 6 / 50 + test_pass, 1 * 9 / 75 + test_pass, test_pass])
    # Samples over training seconds: the last evaluation has seen all 2 x 1200 samples, as the final report has.
    assert all(r["train_samples_per_second"] > 0 for r in curve)
    assert curve[-1]["train_samples_per_second"] == pytest.approx(final["train_samples_per_second"], rel=1e-2)
    assert "total_steps" not in final and "eta_seconds" not in final


def test_the_final_report_says_when_training_began_and_its_last_step_ended(smoke_train_config):
    """Wall-clock times of the training window (bench/gpu_report.py's Ray overhead): inside the call, in order,
    at least as long as the training seconds (the window also holds the evaluations before the last step)."""
    import time

    before = time.time()
    final, reports = run(smoke_train_config)
    after = time.time()
    began, ended = final["train_began_at"], final["train_ended_at"]
    assert before < began < ended < after
    train_seconds = final["train_samples"] / final["train_samples_per_second"]
    assert ended - began >= train_seconds * 0.999
    assert all("train_began_at" not in r for r in reports[:-1])  # the final report's only


def test_multilingual_dev_selection_averages_every_language(smoke_train_config):
    cfg = smoke_train_config.replace(select_on="multilingual-dev", max_steps=25, eval_every_steps=25)
    final, reports = run(cfg)
    assert reports[0]["eval_dev_acc"] == final["dev_acc"]
    assert 0.0 < final["dev_acc"] < 1.0


def test_diverging_loss_fails_the_run_with_a_reason(smoke_train_config):
    cfg = smoke_train_config.replace(learning_rate=1e6, max_grad_norm=0.0, max_steps=25, eval_every_steps=5)
    with pytest.raises(FloatingPointError, match="training loss became (nan|inf)"):
        run(cfg)


def test_grad_accumulation_counts_optimizer_steps(smoke_train_config):
    cfg = smoke_train_config.replace(per_device_batch_size=16, grad_accum_steps=2, num_train_epochs=1.0,
                                     eval_every_steps=1000)
    final, reports = run(cfg)
    # 1200 / 16 = 75 micro-batches -> 38 optimizer steps (the last one from a partial accumulation).
    assert reports[0]["step"] == 38 and final["step"] == 38
    assert math.isfinite(final["test_acc_avg"])


class Killed(Exception):
    """Stands for the worker process dying right after a checkpoint."""


def _run_in(store_dir, cfg, *, kill_after_step: int | None = None):
    reports: list[dict] = []

    def on_report(metrics):
        reports.append(metrics)
        if kill_after_step is not None and metrics.get("step") == kill_after_step and "test_acc_avg" not in metrics:
            raise Killed()

    final = train_and_evaluate(cfg, store=FolderStore(store_dir, on_report))
    return final, reports


def test_a_resumed_run_is_the_run_that_was_interrupted(smoke_train_config, tmp_path, monkeypatch):
    """Killed right after its checkpoint at step 40 (two batches into epoch 2, whose order follows from epoch 1's
    generator), the run goes on from there and ends exactly where the uninterrupted run ends. Its ETA is paced on
    the steps since 40: at step 50, 3 s (clock readings) for 10 steps, so the 26 steps left are 7.8 s."""
    cfg = smoke_train_config.replace(per_device_batch_size=16, grad_accum_steps=2, eval_every_steps=10,
                                     checkpoint_every_s=0.0)
    reference, reference_reports = _run_in(tmp_path / "whole", cfg)
    with pytest.raises(Killed):
        _run_in(tmp_path / "killed", cfg, kill_after_step=40)
    monkeypatch.setattr(trainables.loop, "Pace", functools.partial(Pace, clock=_counting_clock()))
    resumed, resumed_reports = _run_in(tmp_path / "killed", cfg)

    wall_clock = {"train_samples_per_second", "resumed_from_step", "train_began_at", "train_ended_at",
                  "peak_host_memory_gb"}
    assert resumed["resumed_from_step"] == 40 and reference["resumed_from_step"] == 0
    assert {k: v for k, v in resumed.items() if k not in wall_clock} == \
        {k: v for k, v in reference.items() if k not in wall_clock}
    # The curve after the checkpoint is the same, step by step, loss by loss (throughput and ETA are wall-clock).
    after = [r for r in reference_reports if 40 < r["step"] and "test_acc_avg" not in r]
    assert [r["step"] for r in after] == [50, 60, 70, 76]
    pace = {"train_samples_per_second", "eta_seconds"}
    assert [{k: v for k, v in r.items() if k not in pace} for r in resumed_reports[:-1]] == \
        [{k: v for k, v in r.items() if k not in pace} for r in after]
    assert [r["total_steps"] for r in resumed_reports[:-1]] == [76] * 4  # batches of 16, two per step
    assert resumed_reports[0]["eta_seconds"] == pytest.approx(26 * 3 / 10 + _test_rows_per_selection_row(cfg))


def test_a_finished_run_returns_its_outcome_without_training_again(smoke_train_config, tmp_path):
    cfg = smoke_train_config.replace(max_steps=20, eval_every_steps=10, checkpoint_every_s=0.0)
    first, _ = _run_in(tmp_path / "run", cfg)
    again, reports = _run_in(tmp_path / "run", cfg)
    assert again == first
    assert reports == [first]  # the stored outcome, re-reported; no evaluation ran


def test_checkpoints_follow_the_time_interval(smoke_train_config, tmp_path):
    """With a long interval no evaluation checkpoints: the run's only checkpoint is its outcome."""
    cfg = smoke_train_config.replace(max_steps=20, eval_every_steps=10, checkpoint_every_s=3600.0)
    written: list[int] = []
    store = FolderStore(tmp_path / "run", lambda m: written.append((store.folder / STATE_FILE).is_file()))
    train_and_evaluate(cfg, store=store)
    assert written == [False, False, False]  # two evaluations, then the outcome (which holds no training state)
    assert read_outcome(store.folder)["status"] == "finished"


def test_a_diverged_run_fails_with_its_reason_and_stays_failed(smoke_train_config, tmp_path, monkeypatch):
    """Fault injection makes seed 1's loss NaN from step 12: the run fails at the next evaluation, and running it
    again fails at once with the same reason instead of training into the same NaN."""
    monkeypatch.setenv(faults.NAN_LOSS, "1:12")
    cfg = smoke_train_config.replace(max_steps=40, eval_every_steps=10, checkpoint_every_s=0.0)
    with pytest.raises(TrainingDiverged, match="training loss became nan at step 20") as first:
        _run_in(tmp_path / "run", cfg)
    reports: list[dict] = []
    with pytest.raises(TrainingDiverged) as again:
        train_and_evaluate(cfg, store=FolderStore(tmp_path / "run", reports.append))
    assert str(again.value) == str(first.value) and reports == []
    # Another seed is not touched by the fault.
    final, _ = _run_in(tmp_path / "other", cfg.replace(seed=2))
    assert math.isfinite(final["test_acc_avg"])


def test_the_pause_fault_holds_once_after_its_step(smoke_train_config, tmp_path, monkeypatch):
    """The hold that lets the node-removal test catch a run mid-training: after step 10's checkpoint, once; a run
    resumed from that checkpoint does not hold again."""
    import trainables.loop

    holds: list[float] = []
    monkeypatch.setattr(trainables.loop.time, "sleep", holds.append)
    monkeypatch.setenv(faults.PAUSE, "10:7.5")
    cfg = smoke_train_config.replace(max_steps=20, eval_every_steps=10, checkpoint_every_s=0.0)
    _run_in(tmp_path / "whole", cfg)
    assert holds == [7.5]
    with pytest.raises(Killed):  # killed as it reports step 10, before the hold
        _run_in(tmp_path / "killed", cfg, kill_after_step=10)
    resumed, _ = _run_in(tmp_path / "killed", cfg)
    assert resumed["resumed_from_step"] == 10 and holds == [7.5]
    monkeypatch.setenv(faults.PAUSE, "10")
    with pytest.raises(ValueError, match="expected <step>:<seconds>"):
        faults.pause_after_step()

