"""X-Mixup's parts against hand-computed values: attention entropy, λ, scheduled sampling, CKA."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.methods.xmixup.cka import linear_cka
from trainables.methods.xmixup.ratio import MixupRatio, attention_entropy
from trainables.methods.xmixup.schedule import per_epoch_probability, real_source_probability, use_real_source


def _entropy(p: list[float]) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


def test_attention_entropy_is_the_mean_row_entropy_over_real_tokens():
    # One instance, 2 real target tokens (a third is padding), 2 real source tokens (a third is padding).
    scores = torch.tensor([[[0.0, 0.0, 9.0], [math.log(3.0), 0.0, 9.0], [5.0, 5.0, 5.0]]])
    target_mask = torch.tensor([[1, 1, 0]])
    source_mask = torch.tensor([[1, 1, 0]])
    expected = (_entropy([0.5, 0.5]) + _entropy([0.75, 0.25])) / 2
    assert attention_entropy(scores, target_mask, source_mask).item() == pytest.approx(expected, rel=1e-6)


def test_mixup_ratio_matches_the_formula_and_trains_w_and_b():
    scores = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]])
    mask = torch.ones(1, 2, dtype=torch.long)
    h_a = (_entropy([0.25, 0.75]) + _entropy([0.5, 0.5])) / 2  # rows: target queries
    # Columns as queries: softmax over targets of column 0: [0, 0] -> [.5, .5]; column 1: [log 3, 0] -> [.75, .25].
    h_at = (_entropy([0.5, 0.5]) + _entropy([0.75, 0.25])) / 2
    ratio = MixupRatio(0.5)
    with torch.no_grad():
        ratio.weight.fill_(0.7)
        ratio.bias.fill_(-0.2)
    lam = ratio(scores, mask, mask)
    assert lam.item() == pytest.approx(0.5 / (1 + math.exp(-((h_a + h_at) * 0.7 - 0.2))), rel=1e-6)
    lam.sum().backward()
    assert ratio.weight.grad is not None and ratio.weight.grad.abs().item() > 0
    assert ratio.bias.grad is not None and ratio.bias.grad.abs().item() > 0


def test_frozen_ratio_is_the_reference_code_s_untrained_layer():
    ratio = MixupRatio(0.5, freeze=True)
    scores = torch.randn(3, 4, 5, requires_grad=True)
    lam = ratio(scores, torch.ones(3, 4), torch.ones(3, 5))
    lam.sum().backward()
    assert ratio.weight.grad is None and ratio.bias.grad is None
    assert ((lam >= 0.25) & (lam < 0.5)).all()  # 0.5 σ(H) with H >= 0, as in the reference code


def test_scheduled_sampling_decays_per_step():
    k = 1000
    assert real_source_probability(0, k) == pytest.approx(k / (k + 1))
    assert real_source_probability(5000, k) == pytest.approx(k / (k + math.exp(5.0)))
    steps = [real_source_probability(s, k) for s in range(0, 20000, 500)]
    assert all(a > b for a, b in zip(steps, steps[1:]))  # strictly decreasing with the mini-batch index
    assert real_source_probability(10**9, k) == 0.0
    with pytest.raises(ValueError):
        real_source_probability(0, 1)
    # The reference code: gold source throughout epoch 1, then one value per epoch.
    assert per_epoch_probability(999, k, steps_per_epoch=1000) == 1.0
    assert per_epoch_probability(1000, k, 1000) == per_epoch_probability(1999, k, 1000) == real_source_probability(1000, k)


def test_each_example_draws_its_own_coin():
    coins = use_real_source(10_000, 0.3, torch.Generator().manual_seed(0))
    assert coins.dtype == torch.bool and abs(coins.float().mean().item() - 0.3) < 0.02
    assert use_real_source(5, 1.0).all() and not use_real_source(5, 0.0).any()


def test_linear_cka_against_hand_computed_values():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    assert linear_cka(x, x) == pytest.approx(1.0)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(1)))
    assert linear_cka(x, 3.0 * x @ q + 2.0) == pytest.approx(1.0)  # invariant to rotation, scale, shift
    # Hand-computed: centred x = [-1, 0, 1], y = [1, -2, 1] -> yᵀx = 0 -> CKA 0.
    assert linear_cka(torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([[1.0], [-2.0], [1.0]])) == pytest.approx(0.0)
    # One-dimensional: CKA is the squared correlation. x = [1, 2, 3, 4], y = [1, 3, 2, 4]: r = 0.8.
    x1, y1 = torch.tensor([[1.0], [2.0], [3.0], [4.0]]), torch.tensor([[1.0], [3.0], [2.0], [4.0]])
    assert linear_cka(x1, y1) == pytest.approx(0.64)
    with pytest.raises(ValueError):
        linear_cka(x, x[:10])
