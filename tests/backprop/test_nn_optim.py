"""Modules (Linear, MLP) and optimizers (SGD, Adam, AdamW) against torch.nn and torch.optim, float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinypred.backprop import MLP, SGD, Adam, AdamW, Linear, Tensor
from tinypred.backprop.battery import upstream_for


def torch_copy(mlp: MLP, activation: torch.nn.Module) -> torch.nn.Sequential:
    """A float64 torch.nn.Sequential with the engine MLP's weights (torch stores W as (out, in))."""
    layers: list[torch.nn.Module] = []
    for layer in mlp.layers:
        linear = torch.nn.Linear(*layer.weight.shape, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.weight.data.T))
            linear.bias.copy_(torch.from_numpy(layer.bias.data))
        layers += [linear, activation]
    return torch.nn.Sequential(*layers[:-1])


def torch_params(model: torch.nn.Sequential) -> list[np.ndarray]:
    """Parameters in the engine's order and layout: W (in, out), b, per layer."""
    return [p.detach().numpy().T for p in model.parameters()]


@pytest.mark.parametrize(
    ("activation", "torch_activation"),
    [("relu", torch.nn.ReLU()), ("tanh", torch.nn.Tanh()), ("sigmoid", torch.nn.Sigmoid())],
)
def test_mlp_forward_and_backward_match_torch(activation, torch_activation):
    rng = np.random.default_rng(1)
    mlp = MLP([5, 7, 6, 3], activation, "xavier", rng)
    reference = torch_copy(mlp, torch_activation)
    x = rng.standard_normal((4, 5))
    out = mlp(Tensor(x))
    out.backward(upstream_for(out.shape))
    expected = reference(torch.from_numpy(x))
    expected.backward(torch.from_numpy(upstream_for(out.shape)))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12)
    for p, q in zip(mlp.parameters(), reference.parameters(), strict=True):
        np.testing.assert_allclose(p.grad, q.grad.numpy().T, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(
    ("init", "std"), [("kaiming", np.sqrt(2 / 400)), ("xavier", np.sqrt(2 / 600)), ("normal001", 0.01)]
)
def test_init_scales(init, std):
    layer = Linear(400, 200, init, np.random.default_rng(0))
    assert layer.weight.shape == (400, 200) and np.all(layer.bias.data == 0)
    assert layer.weight.data.std() == pytest.approx(std, rel=0.02)
    with pytest.raises(ValueError, match="init"):
        Linear(2, 2, "uniform")


def test_module_parameters_and_zero_grad():
    mlp = MLP([3, 4, 2], rng=np.random.default_rng(0))
    params = mlp.parameters()
    assert [p.shape for p in params] == [(3, 4), (4,), (4, 2), (2,)]
    mlp(Tensor(np.ones((1, 3)))).sum().backward()
    assert all(p.grad is not None for p in params)
    mlp.zero_grad()
    assert all(p.grad is None for p in params)
    assert [p.shape for p in Linear(3, 2, bias=False).parameters()] == [(3, 2)]
    with pytest.raises(ValueError, match="activation"):
        MLP([2, 2], "gelu")


OPTIMIZERS = {
    "sgd": (lambda p: SGD(p, lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    "sgd momentum wd": (
        lambda p: SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2),
    ),
    "adam": (lambda p: Adam(p, lr=1e-2), lambda p: torch.optim.Adam(p, lr=1e-2)),
    "adam wd": (
        lambda p: Adam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2),
        lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2),
    ),
    "adamw": (
        lambda p: AdamW(p, lr=1e-2, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    ),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_trajectory_matches_torch(name):
    make_engine, make_torch = OPTIMIZERS[name]
    rng = np.random.default_rng(2)
    mlp = MLP([4, 8, 8, 2], "tanh", "xavier", rng)
    reference = torch_copy(mlp, torch.nn.Tanh())
    opt, torch_opt = make_engine(mlp.parameters()), make_torch(reference.parameters())
    for _ in range(30):
        x, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 2))
        opt.zero_grad()
        ((mlp(Tensor(x)) - y) ** 2).mean().backward()
        opt.step()
        torch_opt.zero_grad()
        ((reference(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2).mean().backward()
        torch_opt.step()
    for p, q in zip(mlp.parameters(), torch_params(reference), strict=True):
        np.testing.assert_allclose(p.data, q, rtol=0, atol=1e-8)


def test_optimizers_skip_parameters_without_grad():
    used, unused = Tensor([1.0], requires_grad=True), Tensor([1.0], requires_grad=True)
    opt = Adam([used, unused], lr=0.1)
    (used * 2).sum().backward()
    opt.step()
    assert used.data[0] == pytest.approx(0.9) and unused.data[0] == 1.0
