"""The worker side of the selection-at-chance guard (issue 21): every run's final metrics say what a
constant prediction scores on its selection split (``selection_chance``) and whether the best selection
score ever beat it (``selection_at_chance``). Chance levels against hand counts; the flag against real
training that stays at a constant prediction and real training that learns."""

from __future__ import annotations

import pytest
from datasets import Dataset, DatasetDict

from trainables.config import TrainConfig
from trainables.data import load_raw, tokenize_cached
from trainables.evaluation import Evaluator
from trainables.loop import local_context, train_and_evaluate
from trainables.methods import get_method
from smoke import build_smoke_data
from trainables.tasks import get_task


def _evaluator(task_name: str, splits: dict[str, list[int]], **cfg) -> Evaluator:
    task = get_task(task_name)
    data = DatasetDict({name: Dataset.from_dict({"labels": labels}) for name, labels in splits.items()})
    config = TrainConfig(task=task_name, method="baseline", **cfg)
    return Evaluator(get_method("baseline")(config, task), data, task, config, local_context(), collate=None)


def test_chance_is_the_majority_share_of_the_selection_split():
    splits = {"validation_en": [0, 2, 2, 1, 2], "validation_de": [1, 1, 0, 1], "validation_fr": [0, 1]}
    assert _evaluator("xnli", splits).chance_level() == pytest.approx(3 / 5)  # English dev only
    multilingual = _evaluator("xnli", splits, select_on="multilingual-dev", languages=("en", "de", "fr"))
    assert multilingual.chance_level() == pytest.approx((3 / 5 + 3 / 4 + 1 / 2) / 3)  # the mean over dev sets


def test_chance_of_entity_f1_is_zero():
    """Predicting "O" everywhere finds no entity: F1 0, whatever the tags."""
    assert _evaluator("panx", {"validation_en": [[0, 1, 2], [0, 0]]}).chance_level() == 0.0


@pytest.fixture(scope="module")
def pawsx_tokenized(smoke_root, smoke_model) -> str:
    task = get_task("pawsx")
    raw = load_raw(task, str(build_smoke_data(task, smoke_root)))
    return str(tokenize_cached(raw, task, smoke_model, 64, smoke_root / "cache"))


def test_a_run_stuck_at_a_constant_prediction_is_flagged_and_one_that_learns_is_not(smoke_train_config,
                                                                                    pawsx_tokenized):
    """The tiny model on generated PAWS-X predicts one class for its first ~50 steps, then learns the task."""
    from trainables.data import load_tokenized

    labels = load_tokenized(pawsx_tokenized)["validation_en"]["labels"]
    majority = max(labels.count(0), labels.count(1)) / len(labels)
    cfg = smoke_train_config.replace(task="pawsx", tokenized_path=pawsx_tokenized, languages=("en", "de"),
                                     eval_every_steps=25)
    reports = []
    stuck = train_and_evaluate(cfg.replace(max_steps=25), reports.append)
    assert stuck["dev_acc"] == pytest.approx(majority)  # the constant prediction's score, not above it
    assert stuck["selection_chance"] == pytest.approx(majority)
    assert stuck["selection_at_chance"] == 1.0
    assert reports[-1]["selection_at_chance"] == 1.0  # the last report carries it (what the driver logs)

    learnt = train_and_evaluate(cfg.replace(max_steps=100), lambda metrics: None)
    assert learnt["dev_acc"] > majority + 0.2
    assert learnt["selection_chance"] == pytest.approx(majority) and learnt["selection_at_chance"] == 0.0
