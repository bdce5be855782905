"""The shared training loop, in one process: determinism, selection, metrics, failure on NaN."""

from __future__ import annotations

import math

import pytest

from trainables.loop import train_and_evaluate
from trainables.tasks import get_task

XNLI = get_task("xnli")


def run(cfg):
    reports: list[dict] = []
    final = train_and_evaluate(cfg, report=reports.append)
    return final, reports


def test_same_seed_same_metrics_other_seed_other_metrics(smoke_train_config):
    first, first_reports = run(smoke_train_config)
    again, again_reports = run(smoke_train_config)
    other, _ = run(smoke_train_config.replace(seed=2))
    drop = {"train_samples_per_second"}  # wall-clock, not a result
    assert {k: v for k, v in first.items() if k not in drop} == {k: v for k, v in again.items() if k not in drop}
    assert [r["train_loss"] for r in first_reports[:-1]] == [r["train_loss"] for r in again_reports[:-1]]
    assert [r["train_loss"] for r in first_reports[:-1]] != pytest.approx(
        [r["train_loss"] for r in run(smoke_train_config.replace(seed=2))[1][:-1]])
    assert other["test_acc_avg"] != first["test_acc_avg"] or other["dev_acc"] != first["dev_acc"]


def test_reports_curves_then_final_metrics_of_the_best_checkpoint(smoke_train_config):
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
