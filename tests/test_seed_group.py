"""A search trial over several seeds: when its mean reports are due and what they hold (no Ray)."""

from __future__ import annotations

import math

import pytest

from orchestrator import cli
from orchestrator.seed_group import PER_SEED, SEARCH_SEEDS, SeedGroup, search_training_seeds


def evaluation(step: int, dev: float, loss: float) -> dict:
    return {"step": step, "eval_dev_acc": dev, "dev_acc": dev, "train_loss": loss, "train_node": "n1"}


def test_a_mean_is_reported_once_every_seed_reached_the_evaluation():
    group = SeedGroup((9001, 9002), "dev_acc")
    assert group.add(9001, evaluation(25, 0.50, 1.0)) == []  # 9002 has not evaluated yet
    assert group.add(9001, evaluation(50, 0.60, 0.8)) == []
    first, second = group.add(9002, evaluation(25, 0.40, 1.2)) + group.add(9002, evaluation(50, 0.70, 0.6))
    assert first["step"] == 25 and first["dev_acc"] == pytest.approx(0.45) and first["train_loss"] == pytest.approx(1.1)
    # sample std of .50 and .40: |a - b| / sqrt 2
    assert first["dev_acc_std"] == pytest.approx(0.1 / math.sqrt(2))
    assert second["dev_acc"] == pytest.approx(0.65) and second[SEARCH_SEEDS] == 2
    assert second[PER_SEED] == {"9001": evaluation(50, 0.60, 0.8), "9002": evaluation(50, 0.70, 0.6)}
    assert "train_node" not in second  # not a number: only in each seed's own report


def test_final_reports_are_not_evaluations_and_the_final_mean_is_of_the_finals():
    group = SeedGroup((1, 2, 3), "dev_acc")
    final = {"dev_acc": 0.6, "test_acc_avg": 0.5, "best_step": 50}
    assert group.add(1, final) == []  # a run's last report carries test scores: not a curve point
    result = group.final({1: final, 2: {**final, "dev_acc": 0.7, "test_acc_avg": 0.4},
                          3: {**final, "dev_acc": 0.8, "test_acc_avg": 0.6}})
    assert result["dev_acc"] == pytest.approx(0.7)  # what Optuna records for the trial
    assert result["dev_acc_std"] == pytest.approx(0.1)  # sample std of .6 .7 .8
    assert result["test_acc_avg"] == pytest.approx(0.5) and result[SEARCH_SEEDS] == 3
    assert set(result[PER_SEED]) == {"1", "2", "3"}


def test_search_seeds_follow_the_first_and_never_meet_the_confirm_seeds():
    assert search_training_seeds(9001, 3) == (9001, 9002, 9003)
    cfg = cli.parse(["salt_xnli", "--search-seeds", "3"])
    assert cfg.search_training_seeds == (9001, 9002, 9003)
    with pytest.raises(cli.UsageError, match="search seeds 4..6 .* include 4, 5, which is one of the confirm seeds"):
        cli.parse(["salt_xnli", "--search-seeds", "3", "--search-training-seed", "4"])


def test_dry_run_shows_the_search_runs_and_their_seeds(capsys):
    from orchestrator.sweep import main

    assert main(["salt_xnli", "--dry-run", "--search-seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert "search runs  20 x 3 seeds = 60 training runs; each trial reports the mean of its 3 seeds" in out
    assert "training seeds 9001, 9002, 9003: not confirm seeds" in out
    assert "trials       20 search + 20 confirm = 40 (80 training runs)" in out
    assert main(["salt_xnli", "--dry-run"]) == 0
    assert "search runs  20 x 1 seed (the papers tuned on one run per setting" in capsys.readouterr().out
