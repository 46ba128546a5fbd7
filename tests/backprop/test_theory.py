"""The theory exercises (docs/derivations.md), measured with the engine."""

from __future__ import annotations

import numpy as np
import pytest

from tinypred.backprop import MLP, SGD, Adam, Tensor, split_modes, wta_loss


def test_l2_pulls_a_single_prediction_to_the_mean_and_min_over_modes_does_not():
    """Half the futures veer to y = +1, half to y = -1. One L2-trained prediction converges to their
    mean, y = 0, which no agent drives; two modes under the winner-take-all loss find both."""
    steps, batch = 4, 8
    t = np.arange(1.0, steps + 1)
    left, right = np.stack([t, np.ones(steps)], -1), np.stack([t, -np.ones(steps)], -1)
    gt = np.stack([left, right] * (batch // 2))  # (B, T, 2)
    found = {}
    for modes in (1, 2):  # with one mode, wta_loss is plain L2 and its CE term is log(1) = 0
        init = np.zeros((1, modes, steps, 2))
        init[0, :, :, 1] = np.linspace(0.1, -0.1, modes)[:, None]  # break the symmetry between modes
        pred, logits = Tensor(init, requires_grad=True), Tensor(np.zeros((1, modes)), requires_grad=True)
        opt = Adam([pred, logits], lr=0.05)
        for _ in range(300):
            opt.zero_grad()
            wta_loss(pred + np.zeros((batch, 1, 1, 1)), logits + np.zeros((batch, 1)), gt).backward()
            opt.step()
        found[modes] = pred.data[0]
    np.testing.assert_allclose(found[1], [(left + right) / 2], atol=1e-3)
    np.testing.assert_allclose(found[2], [left, right], atol=1e-3)


def test_overfits_a_single_batch():
    """The first debugging step: a model that cannot memorise 8 examples has a bug (or a bad lr)."""
    rng = np.random.default_rng(4)
    modes, steps = 3, 5
    mlp = MLP([32, 64, 64, modes * steps * 2 + modes], "relu", "kaiming", rng)
    x, gt = rng.standard_normal((8, 32)), np.cumsum(rng.standard_normal((8, steps, 2)), axis=1)
    opt = Adam(mlp.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        opt.zero_grad()
        loss = wta_loss(*split_modes(mlp(Tensor(x)), modes, steps), gt)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 1.0 and losses[-1] < 1e-3


@pytest.mark.parametrize(("lr", "stable"), [(0.45, True), (0.55, False)])
def test_gradient_descent_on_a_quadratic_is_stable_iff_lr_below_2_over_L(lr, stable):
    """f = (4 a^2 + b^2) / 2 has Hessian eigenvalues L = 4 and 1: each GD step multiplies a by (1 - 4 lr),
    which shrinks iff lr < 2 / L = 0.5."""
    theta = Tensor([1.0, 1.0], requires_grad=True)
    opt = SGD([theta], lr=lr)
    for _ in range(50):
        opt.zero_grad()
        (0.5 * (np.array([4.0, 1.0]) * theta * theta).sum()).backward()
        opt.step()
    np.testing.assert_allclose(theta.data, [(1 - 4 * lr) ** 50, (1 - lr) ** 50], rtol=1e-10)
    assert bool(abs(theta.data[0]) < 1e-3) == stable
