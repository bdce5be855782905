"""Self-training parts against hand-computed values: the English-dev threshold rule, the soft and
hard pseudo-label losses, and the voters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainables.methods.self_training.losses import IGNORE, hard_label_loss, self_training_loss, soft_label_loss
from trainables.methods.self_training.thresholds import threshold_for_precision
from trainables.methods.self_training.voting import kept_labels, required_votes, vote

# A hand-made English dev table: confidence of each prediction and whether it was right.
#   sorted:  0.95 ✓  0.90 ✓  0.80 ✗  0.80 ✓  0.70 ✓  0.60 ✗  0.50 ✗  0.40 ✓
#   cut >=   0.95: 1/1   0.90: 2/2   0.80: 3/4   0.70: 4/5   0.60: 4/6   0.50: 4/7   0.40: 5/8
CONFIDENCE = [0.80, 0.50, 0.95, 0.70, 0.40, 0.90, 0.60, 0.80]
CORRECT = [False, False, True, True, True, True, False, True]


@pytest.mark.parametrize("target, threshold, precision, coverage", [
    (1.0, 0.90, 1.0, 2 / 8),  # 0.90 keeps 2 of 2 right; 0.80 drops to 3/4
    (0.8, 0.70, 4 / 5, 5 / 8),  # the lowest cut at >= 80 %: 0.70 (4/5); 0.80 (3/4) is below, yet a higher cut
    (0.75, 0.70, 4 / 5, 5 / 8),  # 0.80 gives exactly 0.75 too, but 0.70 is lower and still precise enough
    (0.6, 0.40, 5 / 8, 1.0),  # everything: 5/8 = 0.625
])
def test_threshold_is_the_lowest_cut_reaching_the_target_precision(target, threshold, precision, coverage):
    choice = threshold_for_precision(CONFIDENCE, CORRECT, target)
    assert choice.threshold == pytest.approx(threshold)
    assert choice.precision == pytest.approx(precision) and choice.coverage == pytest.approx(coverage)


def test_ties_are_kept_together_and_an_unreachable_target_keeps_nothing():
    # Two predictions at 0.9, one right: a cut cannot keep only the right one.
    choice = threshold_for_precision([0.9, 0.9, 0.5], [True, False, True], 1.0)
    assert math.isinf(choice.threshold) and choice.coverage == 0.0
    assert threshold_for_precision([0.9, 0.9, 0.5], [True, False, True], 0.5).threshold == pytest.approx(0.5)
    with pytest.raises(ValueError):
        threshold_for_precision([0.5], [True], 0.0)


def test_a_round_that_keeps_nothing_reports_coverage_zero_and_no_threshold():
    from trainables.methods.self_training.pseudo_labels import Labels
    from trainables.methods.self_training.recipe import round_summary
    from trainables.methods.self_training.thresholds import ThresholdChoice

    labels = {"unlabelled_de": Labels(np.zeros((4, 2)), np.zeros(4), np.zeros(4), np.array([True, True, False, True]))}
    pool = {"unlabelled_de": [None] * 4}
    nothing = round_summary(1, threshold_for_precision([0.9, 0.9], [True, False], 1.0), {"unlabelled_de": 0.0},
                            labels, pool)
    assert nothing == {"st_r1_dev_coverage": 0.0, "st_r1_kept": 0.0, "st_r1_kept_de": 0.0, "st_r1_agreed": 0.75}
    some = round_summary(2, ThresholdChoice(0.7, 0.8, 0.5), {"unlabelled_de": 0.25}, labels, pool)
    assert some == {"st_r2_dev_coverage": 0.5, "st_r2_threshold": 0.7, "st_r2_dev_precision": 0.8,
                    "st_r2_kept": 0.25, "st_r2_kept_de": 0.25, "st_r2_agreed": 0.75}


def test_soft_loss_is_the_mse_of_the_distributions():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # softmax: (.5, .5) and (.75, .25)
    teacher = torch.tensor([[1.0, 0.0], [0.75, 0.25]])
    expected = (0.25 + 0.25 + 0 + 0) / 4
    assert float(soft_label_loss(logits, teacher)) == pytest.approx(expected)
    # Token classification: [B=1, T=2, C=2] with the second token unlabelled (mask 0).
    tokens = logits[None]
    assert float(soft_label_loss(tokens, teacher[None], mask=torch.tensor([[1, 0]]))) == pytest.approx(0.25)


def test_kept_hard_labels_are_confident_and_agreed_only():
    # One voter (K = 1): the confidence is the max probability.
    teacher = np.array([[[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]]])
    assert kept_labels(vote(teacher), 0.75).tolist() == [0, -100, 1]  # row 1 (0.7) is below 0.75
    # Two voters who disagree on row 2: its label is dropped whatever its confidence.
    second = np.array([[[0.8, 0.2], [0.2, 0.8], [0.9, 0.1]]])
    both = vote(np.concatenate([teacher, second]), "unanimous")
    np.testing.assert_allclose(both.confidence, [0.85, 0.75, 0.55])
    assert kept_labels(both, 0.75).tolist() == [0, 1, -100]
    assert kept_labels(both, math.inf).tolist() == [-100, -100, -100]


def test_hard_loss_is_the_cross_entropy_of_the_kept_labels():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    ce = lambda row, label: -torch.log_softmax(logits[row], -1)[label].item()  # noqa: E731
    labels = torch.tensor([0, IGNORE, 1])
    assert float(hard_label_loss(logits, labels)) == pytest.approx((ce(0, 0) + ce(2, 1)) / 2)
    # Token classification [B=1, T=3, C=2]: the same positions, the same value.
    assert float(hard_label_loss(logits[None], labels[None])) == pytest.approx((ce(0, 0) + ce(2, 1)) / 2)
    # Nothing kept: zero, and still a graph to backpropagate through.
    logits.requires_grad_(True)
    none = hard_label_loss(logits, torch.full((3,), IGNORE))
    none.backward()
    assert float(none.detach()) == 0.0 and float(logits.grad.abs().sum()) == 0.0


def test_self_training_loss_weighs_soft_against_hard():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    labels = torch.tensor([0, 1])
    soft, hard = soft_label_loss(logits, teacher), hard_label_loss(logits, labels)
    assert float(self_training_loss(logits, teacher, labels, 0.25)) == pytest.approx(0.75 * float(soft) + 0.25 * float(hard))


def test_voting_keeps_agreed_labels_and_averages_the_distributions():
    # 3 voters x 3 examples x 2 classes.
    probs = np.array([
        [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]],
        [[0.8, 0.2], [0.3, 0.7], [0.4, 0.6]],
        [[0.7, 0.3], [0.4, 0.6], [0.6, 0.4]],
    ])
    unanimous = vote(probs, "unanimous")
    assert unanimous.labels.tolist() == [0, 1, 1]  # predictions: (0,0,0), (0,1,1), (1,1,0)
    assert unanimous.agreed.tolist() == [True, False, False]
    np.testing.assert_allclose(unanimous.probabilities, [[0.8, 0.2], [13 / 30, 17 / 30], [0.4, 0.6]])
    assert vote(probs, "majority").agreed.tolist() == [True, True, True]
    assert vote(probs, 3).agreed.tolist() == [True, False, False]
    assert required_votes("majority", 4) == 3 and required_votes("majority", 5) == 3
    with pytest.raises(ValueError):
        vote(probs, "most")


def _label_sorted_parts(rows: int = 1000):
    """Unlabelled parts whose file is sorted by (hidden) label: 200 rows of label 0, then 200 of 1, ..."""
    from datasets import Dataset, DatasetDict

    hidden = [row * 5 // rows for row in range(rows)]
    part = Dataset.from_dict({"input_ids": [[101, 7, 102]] * rows, "hidden_label": hidden, "row": list(range(rows))})
    return DatasetDict({"unlabelled_de": part, "unlabelled_fr": part})


def test_the_pool_of_a_label_sorted_file_is_a_seeded_mixed_sample():
    from trainables.methods.self_training.recipe import unlabelled_pool
    from trainables.tasks import get_task

    data, marc = _label_sorted_parts(), get_task("marc")
    pool = unlabelled_pool(data, marc, ("de", "fr"), 100, seed=1)
    de = pool["unlabelled_de"]
    assert len(de) == 100 and len(pool["unlabelled_fr"]) == 100
    counts = np.bincount(de["hidden_label"], minlength=5)
    assert (counts > 0).all() and counts.max() < 40  # the file's first 100 rows would be 100 x label 0
    # The same seed gives the same pool; another seed, or another language, another one.
    assert unlabelled_pool(data, marc, ("de",), 100, seed=1)["unlabelled_de"]["row"] == de["row"]
    assert unlabelled_pool(data, marc, ("de",), 100, seed=2)["unlabelled_de"]["row"] != de["row"]
    assert pool["unlabelled_fr"]["row"] != de["row"]


def test_a_pool_row_is_drawn_once_in_file_order_and_a_small_part_is_taken_whole():
    from trainables.methods.self_training.recipe import pool_rows

    rows = pool_rows(1000, 100, seed=7, language="de")
    assert len(set(rows)) == 100 and rows == sorted(rows) and 0 <= rows[0] and rows[-1] < 1000
    assert pool_rows(50, 100, seed=7, language="de") == list(range(50))
    assert pool_rows(1000, 100, seed=7, language="de") == rows
