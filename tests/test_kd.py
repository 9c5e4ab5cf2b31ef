"""KD objectives against values computed by hand on tiny tensors."""

import math

import pytest
import torch

from cchsweep.kd import classification_kd_loss, regression_kd_loss, soft_target_kl


def _softmax(xs, t):
    e = [math.exp(x / t) for x in xs]
    return [v / sum(e) for v in e]


def test_soft_target_kl_matches_hand_computation():
    s, t, temp = [1.0, 0.0, -1.0], [2.0, 0.5, 0.0], 3.0
    p_t, p_s = _softmax(t, temp), _softmax(s, temp)
    expected = temp**2 * sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s))
    got = soft_target_kl(torch.tensor([s]), torch.tensor([t]), temp)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_soft_target_kl_is_zero_for_identical_logits_and_averages_over_batch():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
    assert soft_target_kl(logits, logits, 2.0).item() == pytest.approx(0.0, abs=1e-7)
    a = soft_target_kl(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), 1.0)
    both = soft_target_kl(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.0, 0.0]]), 1.0)
    assert both.item() == pytest.approx(a.item() / 2, rel=1e-5)


def test_classification_kd_loss_weights_ce_and_kl():
    s, t, y, temp, lam = [0.5, -0.5], [2.0, -1.0], 1, 2.0, 0.3
    ce = -math.log(_softmax(s, 1.0)[y])
    p_t, p_s = _softmax(t, temp), _softmax(s, temp)
    kl = sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s))
    expected = (1 - lam) * ce + lam * temp**2 * kl
    got = classification_kd_loss(torch.tensor([s]), torch.tensor([y]), torch.tensor([t]), temp, lam)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    only_ce = classification_kd_loss(torch.tensor([s]), torch.tensor([y]), torch.tensor([t]), temp, 0.0)
    assert only_ce.item() == pytest.approx(ce, rel=1e-5)


def test_regression_kd_loss_is_eq4():
    pred = torch.tensor([[1.0], [2.0]])
    y = torch.tensor([[0.0], [0.0]])
    teacher = torch.tensor([[1.0], [4.0]])
    # MSE to y = (1 + 4) / 2 = 2.5; MSE to teacher = (0 + 4) / 2 = 2
    assert regression_kd_loss(pred, y, teacher, 0.3).item() == pytest.approx(2.5 + 0.3 * 2.0)
    assert regression_kd_loss(pred, y, teacher, 0.0).item() == pytest.approx(2.5)
