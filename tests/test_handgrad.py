"""tinypred.handgrad (backprop by hand, no graph) against torch, central differences and the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from test_autodiff import LECTURE_004_GRAD_W0, LECTURE_004_GRAD_W1, LECTURE_004_W0, LECTURE_004_W1, raw_arrays

from tinypred import autodiff as ad
from tinypred import handgrad as hg
from tinypred.autodiff import Tensor
from tinypred.gradcheck_battery import HAND_CASES, check_hand


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
        numeric = ad.numeric_gradient(lambda z, b=block: b.forward(z).sum(), [x.copy()])
        assert ad.compare_gradients([analytic], numeric).passed is should_pass


# --- lectures' worked examples --------------------------------------------------------------------


def test_lecture_002_relu_net_by_hand():
    first, second = hg.Linear(1, 2, bias=False), hg.Linear(2, 1, bias=False)
    first.weight, second.weight = np.array([[4.0, -2.0]]), np.array([[1.0], [0.0]])
    net = hg.Sequential([first, hg.ReLU(), second, hg.ReLU()])
    y_hat = net.forward(np.array([[3.0]]))
    loss, grad = hg.l2(y_hat, np.array([[10.0]]))  # the mean over one element: (y_hat - y)^2
    net.backward(grad)
    assert (y_hat.item(), loss) == (12.0, 4.0)
    np.testing.assert_array_equal(second.grad_weight, [[48.0], [0.0]])
    np.testing.assert_array_equal(first.grad_weight, [[12.0, 0.0]])


def test_lecture_004_tanh_net_by_hand():
    # handgrad computes x @ W with W: (in, out), so the lecture's W0 (out, in) enters transposed.
    first, second = hg.Linear(2, 2, bias=False), hg.Linear(2, 1, bias=False)
    first.weight, second.weight = np.array([[1.0, -3.0], [0.2, 1.0]]).T, np.array([[1.0], [-1.0]])
    net = hg.Sequential([first, hg.Tanh(), second])
    x3 = net.forward(np.array([[1.0, 0.1]]))
    _, grad = hg.l2(x3, np.array([[0.5]]))
    net.backward(0.5 * grad)  # L = (x3 - y)^2 / 2: half of l2's gradient
    np.testing.assert_allclose(first.grad_weight.T, LECTURE_004_GRAD_W0, rtol=1e-14)
    np.testing.assert_allclose(second.grad_weight[:, 0], LECTURE_004_GRAD_W1, rtol=1e-14)
    for param, grad_param in zip(net.params(), net.grads(), strict=True):
        param -= 0.2 * grad_param
    np.testing.assert_allclose(first.weight.T, LECTURE_004_W0, rtol=1e-15)
    np.testing.assert_allclose(second.weight[:, 0], LECTURE_004_W1, rtol=1e-15)


def test_lecture_003_circle_classifier_engine_and_hand_agree_and_learn():
    """N=200 points, label = inside the unit circle; 2-8-1 ReLU + sigmoid, BCE, GD with lr 0.05 from
    0.01-scaled weights, 1000 iterations. As in the lecture's code, the update uses dL/dZ2 = A2 - Y,
    the gradient of the *summed* BCE (its printed loss is the mean)."""
    rng = np.random.default_rng(0)
    n, lr = 200, 0.05
    x = rng.standard_normal((n, 2))
    y = ((x**2).sum(axis=1) < 1.0).astype(np.float64)[:, None]
    hidden, out = hg.Linear(2, 8, "normal001", rng), hg.Linear(8, 1, "normal001", rng)
    net = hg.Sequential([hidden, hg.ReLU(), out, hg.Sigmoid()])
    w1, b1, w2, b2 = (Tensor(p.copy(), requires_grad=True) for p in net.params())
    sgd = ad.SGD([w1, b1, w2, b2], lr=lr)

    losses, engine_losses = [], []
    for _ in range(1000):
        prob = net.forward(x)
        loss, grad = hg.binary_cross_entropy(prob, y)
        net.backward(grad * n)
        for param, grad_param in zip(net.params(), net.grads(), strict=True):
            param -= lr * grad_param
        losses.append(loss)

        engine_prob = ((Tensor(x) @ w1 + b1).relu() @ w2 + b2).sigmoid()
        summed = -(y * engine_prob.log() + (1 - y) * (1 - engine_prob).log()).sum()
        sgd.zero_grad()
        summed.backward()
        sgd.step()
        engine_losses.append(summed.item() / n)

    np.testing.assert_allclose(engine_losses, losses, rtol=1e-9)
    for param, tensor in zip(net.params(), (w1, b1, w2, b2), strict=True):
        np.testing.assert_allclose(tensor.data, param, rtol=1e-9, atol=1e-12)
    accuracy = np.mean((net.forward(x) > 0.5) == y)
    majority = max(y.mean(), 1 - y.mean())
    assert losses[-1] < 0.1 * losses[0]
    assert accuracy > majority + 0.2, (accuracy, majority)


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
    assert hg.winning_mode(pred, gt).tolist() == [1]
    _, grad_pred, grad_logits = hg.wta_loss(pred, np.zeros((1, 2)), gt)
    assert np.all(grad_pred[0, 0] == 0) and np.all(grad_pred[0, 1] > 0)  # only the winner is regressed
    np.testing.assert_allclose(grad_logits, [[0.5, -0.5]])  # softmax - onehot(winner)


@pytest.mark.parametrize("reg", ["l2", "l1", "huber"])
def test_wta_loss_by_hand_equals_the_engine(reg):
    rng = np.random.default_rng(5)
    pred, logits = rng.standard_normal((6, 4, 5, 2)), rng.standard_normal((6, 4))
    gt = rng.standard_normal((6, 5, 2))
    value, grad_pred, grad_logits = hg.wta_loss(pred, logits, gt, ce_weight=0.3, reg=reg, delta=0.5)
    p, lg = Tensor(pred, requires_grad=True), Tensor(logits, requires_grad=True)
    loss = ad.wta_loss(p, lg, gt, ce_weight=0.3, reg=reg, delta=0.5)
    loss.backward()
    assert value == pytest.approx(loss.item(), rel=1e-14)
    np.testing.assert_allclose(grad_pred, p.grad, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(grad_logits, lg.grad, rtol=1e-12, atol=1e-16)


def test_bad_names_are_rejected():
    with pytest.raises(ValueError, match="reg"):
        hg.wta_loss(np.zeros((1, 2, 3, 2)), np.zeros((1, 2)), np.zeros((1, 3, 2)), reg="l3")
    with pytest.raises(ValueError, match="reg"):
        ad.wta_loss(Tensor(np.zeros((1, 2, 3, 2))), Tensor(np.zeros((1, 2))), np.zeros((1, 3, 2)), reg="l3")
    with pytest.raises(ValueError, match="init"):
        hg.Linear(2, 2, "he")
