"""The hand-derived blocks and losses (no graph) against torch, central differences and the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from backprop_strategies import raw_arrays
from hypothesis import given, settings
from hypothesis import strategies as st

from tinypred.backprop import Tensor, compare_gradients, numeric_gradient, wta_loss
from tinypred.backprop import handgrad as hg
from tinypred.backprop.battery import HAND_CASES, check_hand
from tinypred.backprop.numerics import winning_mode


@pytest.mark.parametrize("case", HAND_CASES, ids=lambda c: c.name)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_block_or_loss_matches_torch_and_central_differences(case, data):
    row = check_hand(case, case.domain(*raw_arrays(data, case.shapes)))
    assert row["passed"], row


def test_a_broken_backward_is_caught():
    class BrokenTanh(hg.Tanh):
        def backward(self, grad_out):
            return grad_out * (1 - self._out)  # forgot the square

    x = np.array([[0.3, -1.2], [2.0, 0.7]])
    for block, should_pass in ((hg.Tanh(), True), (BrokenTanh(), False)):
        block.forward(x)
        analytic = block.backward(np.ones_like(x))
        numeric = numeric_gradient(lambda z, b=block: b.forward(z).sum(), [x.copy()])
        assert compare_gradients([analytic], numeric).passed is should_pass


def test_kinks_take_torchs_subgradient():
    """ReLU at 0 and L1 at a zero residual: derivative 0, as torch (and the engine)."""
    x = np.array([[0.0, -0.0, 1.0, -1.0]])
    relu = hg.ReLU()
    relu.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    torch.relu(xt).backward(torch.ones_like(xt))
    np.testing.assert_array_equal(relu.backward(np.ones_like(x)), xt.grad.numpy())
    residual = np.array([0.0, 2.0, -2.0, 0.5, -0.5])
    _, l1_slope = hg.regression_terms(residual, "l1", 0.5)
    _, huber_slope = hg.regression_terms(residual, "huber", 0.5)
    np.testing.assert_array_equal(l1_slope, [0.0, 1.0, -1.0, 1.0, -1.0])
    np.testing.assert_array_equal(huber_slope, [0.0, 0.5, -0.5, 0.5, -0.5])  # at +-delta both sides agree


# --- losses ---------------------------------------------------------------------------------------


def test_gaussian_nll_is_finite_for_extreme_raw_variances():
    mean, target = np.zeros(4), np.array([0.5, -1.0, 2.0, 0.0])
    raw = np.array([-60.0, -5.0, 5.0, 60.0])  # softplus(-60) ~ 1e-26: the epsilon keeps var >= 1e-6
    value, grad_mean, grad_raw = hg.gaussian_nll(mean, raw, target)
    assert np.isfinite(value) and np.all(np.isfinite(grad_mean)) and np.all(np.isfinite(grad_raw))
    m, r = torch.tensor(mean, requires_grad=True), torch.tensor(raw, requires_grad=True)
    expected = F.gaussian_nll_loss(m, torch.tensor(target), F.softplus(r) + 1e-6, eps=1e-6)
    expected.backward()
    assert value == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(grad_mean, m.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(grad_raw, r.grad.numpy(), rtol=1e-10, atol=1e-300)


def test_wta_winner_is_lowest_ade_not_lowest_endpoint_error():
    gt = np.zeros((1, 3, 2))
    close_all_along = np.full((3, 2), 0.5)  # ADE 0.71, FDE 0.71
    off_then_exact = np.array([[3.0, 0.0], [3.0, 0.0], [0.0, 0.0]])  # ADE 2, FDE 0
    pred = np.stack([off_then_exact, close_all_along])[None]
    assert winning_mode(pred, gt).tolist() == [1]
    _, grad_pred, grad_logits = hg.wta_loss(pred, np.zeros((1, 2)), gt)
    assert np.all(grad_pred[0, 0] == 0) and np.all(grad_pred[0, 1] > 0)  # only the winner is regressed
    np.testing.assert_allclose(grad_logits, [[0.5, -0.5]])  # softmax - onehot(winner)


@pytest.mark.parametrize("reg", ["l2", "l1", "huber", "displacement"])
def test_wta_loss_by_hand_equals_the_engine(reg):
    rng = np.random.default_rng(5)
    pred, logits = rng.standard_normal((6, 4, 5, 2)), rng.standard_normal((6, 4))
    gt = rng.standard_normal((6, 5, 2))
    value, grad_pred, grad_logits = hg.wta_loss(pred, logits, gt, ce_weight=0.3, reg=reg, delta=0.5)
    p, lg = Tensor(pred, requires_grad=True), Tensor(logits, requires_grad=True)
    loss = wta_loss(p, lg, gt, ce_weight=0.3, reg=reg, delta=0.5)
    loss.backward()
    assert value == pytest.approx(loss.item(), rel=1e-14)
    np.testing.assert_allclose(grad_pred, p.grad, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(grad_logits, lg.grad, rtol=1e-12, atol=1e-16)


def test_bad_names_are_rejected():
    with pytest.raises(ValueError, match="reg"):
        hg.wta_loss(np.zeros((1, 2, 3, 2)), np.zeros((1, 2)), np.zeros((1, 3, 2)), reg="l3")
    with pytest.raises(ValueError, match="reg"):
        wta_loss(Tensor(np.zeros((1, 2, 3, 2))), Tensor(np.zeros((1, 2))), np.zeros((1, 3, 2)), reg="l3")
    with pytest.raises(ValueError, match="init"):
        hg.Linear(2, 2, "he")
