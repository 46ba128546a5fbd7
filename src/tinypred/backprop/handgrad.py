"""Backprop by hand: the lecture's modular-block view, with no graph and no autodiff.

Every layer is a block with ``forward(x)`` and ``backward(grad_out)``: backward receives dL/d(output),
stores dL/d(parameters) on the layer and returns dL/d(input), exactly the recursion
``g_in = g_out * d f / d x_in`` of the lecture. Losses return ``(value, dL/d(prediction))`` so that the
chain starts from the loss. Derivations: docs/derivations.md. Everything is plain NumPy, batch first.

The forward values come from :mod:`tinypred.backprop.numerics`, shared with the engine, so both sides
compute the same numbers and only their derivatives are written twice, independently. The engine never
imports this module.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from tinypred.backprop.numerics import (
    DISPLACEMENT_EPS,
    Init,
    Regression,
    init_weight,
    log_softmax,
    sigmoid,
    softplus,
    winning_mode,
)

# ---------------------------------------------------------------------------------------------------
# Layers.


class Linear:
    """y = x @ W + b with W: (in, out), b: (out,); x: (N, in) -> y: (N, out).

    backward(g: (N, out)) stores grad_weight = x^T g (in, out) and grad_bias = sum_n g (out,) and
    returns g W^T (N, in).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        init: Init = "kaiming",
        rng: np.random.Generator | None = None,
        dtype: DTypeLike = np.float64,
        bias: bool = True,
    ) -> None:
        rng = np.random.default_rng() if rng is None else rng
        self.weight = init_weight(in_features, out_features, init, rng, dtype)
        self.bias = np.zeros(out_features, dtype=dtype) if bias else None
        self.grad_weight: np.ndarray | None = None
        self.grad_bias: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x  # dL/dW needs the input
        out = x @ self.weight
        return out if self.bias is None else out + self.bias

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        self.grad_weight = self._x.T @ grad_out
        if self.bias is not None:
            self.grad_bias = grad_out.sum(axis=0)
        return grad_out @ self.weight.T

    def params(self) -> list[np.ndarray]:
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def grads(self) -> list[np.ndarray]:
        """Gradients in the order of params(), from the last backward."""
        return [self.grad_weight] if self.bias is None else [self.grad_weight, self.grad_bias]


class _Activation:
    """An element-wise block without parameters."""

    def params(self) -> list[np.ndarray]:
        return []

    def grads(self) -> list[np.ndarray]:
        return []


class ReLU(_Activation):
    """max(x, 0); derivative 1 where x > 0, else 0 (the Jacobian is a 0/1 diagonal); at the kink x = 0
    the subgradient 0, as torch and the engine."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.maximum(x, 0)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * self._mask


class Tanh(_Activation):
    """tanh(x); derivative 1 - tanh(x)^2, computed from the stored output."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._out = np.tanh(x)
        return self._out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * (1 - self._out * self._out)


class Sigmoid(_Activation):
    """sigma(x); derivative sigma(x) (1 - sigma(x)), computed from the stored output."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._out = sigmoid(x)
        return self._out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * self._out * (1 - self._out)


class Sequential:
    """Blocks applied in order; backward runs them in reverse, each turning g_out into g_in."""

    def __init__(self, layers: list) -> None:
        self.layers = layers

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out

    def params(self) -> list[np.ndarray]:
        return [p for layer in self.layers for p in layer.params()]

    def grads(self) -> list[np.ndarray]:
        return [g for layer in self.layers for g in layer.grads()]


# ---------------------------------------------------------------------------------------------------
# Losses: each returns the value and the gradient(s) with respect to the prediction(s).


def l2(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error over all elements. pred, target: same shape. dL/dpred = 2 (pred - target) / n."""
    diff = pred - target
    return float(np.mean(diff * diff)), 2 * diff / diff.size


def binary_cross_entropy(prob: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """-mean(y log p + (1 - y) log(1 - p)). prob in (0, 1), target in {0, 1}: same shape.

    dL/dp = (p - y) / (p (1 - p)) / n; through a sigmoid this becomes (p - y) / n.
    """
    value = -np.mean(target * np.log(prob) + (1 - target) * np.log(1 - prob))
    return float(value), (prob - target) / (prob * (1 - prob)) / prob.size


def softmax_cross_entropy(logits: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over the batch of -log softmax(logits)[target]. logits: (B, C), target: (B,) ints.

    dL/dlogits = (softmax(logits) - onehot(target)) / B.
    """
    batch = logits.shape[0]
    rows = np.arange(batch)
    logp = log_softmax(logits, axis=1)
    grad = np.exp(logp)
    grad[rows, target] -= 1
    return float(-logp[rows, target].mean()), grad / batch


def gaussian_nll(
    mean: np.ndarray, raw_var: np.ndarray, target: np.ndarray, eps: float = 1e-6
) -> tuple[float, np.ndarray, np.ndarray]:
    """Gaussian negative log-likelihood without the constant, variance from a softplus head (lecture 001).

    var = softplus(raw_var) + eps;  L = mean(log(var) / 2 + (target - mean)^2 / (2 var)).
    mean, raw_var, target: same shape. Returns (L, dL/dmean, dL/draw_var):
    dL/dmean = (mean - target) / var / n and
    dL/draw_var = (1 / (2 var) - (target - mean)^2 / (2 var^2)) * sigmoid(raw_var) / n.
    """
    var = softplus(raw_var) + eps
    diff = target - mean
    n = diff.size
    value = np.mean(0.5 * np.log(var) + diff * diff / (2 * var))
    grad_mean = -diff / var / n
    grad_var = (0.5 / var - diff * diff / (2 * var * var)) / n
    return float(value), grad_mean, grad_var * sigmoid(raw_var)


def regression_terms(residual: np.ndarray, reg: Regression, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Regression loss of a residual r = pred - target (..., 2) and its derivative dl/dr (..., 2).

    l2: r^2 and 2r; l1: |r| and sign(r) (0 at the kink r = 0, as torch); huber: r^2/2 for |r| <= delta,
    else delta (|r| - delta/2), with derivative clip(r, -delta, delta) (C1: no kink at |r| = delta); each
    element-wise. displacement: one value per step, d = sqrt(r_x^2 + r_y^2 + eps) (shape (..., 1)), and
    dd/dr = r / d: the unit vector along the error, whatever its size.
    """
    if reg == "displacement":
        value = np.sqrt((residual * residual).sum(-1, keepdims=True) + DISPLACEMENT_EPS)
        return value, residual / value
    if reg == "l2":
        return residual * residual, 2 * residual
    if reg == "l1":
        return np.abs(residual), np.sign(residual)
    if reg == "huber":
        abs_r = np.abs(residual)
        value = np.where(abs_r <= delta, 0.5 * residual * residual, delta * (abs_r - 0.5 * delta))
        return value, np.clip(residual, -delta, delta)
    raise ValueError(f"reg must be 'l2', 'l1', 'huber' or 'displacement', got {reg!r}")


def wta_loss(
    pred: np.ndarray,
    logits: np.ndarray,
    gt: np.ndarray,
    ce_weight: float = 1.0,
    reg: Regression = "l2",
    delta: float = 1.0,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Winner-take-all (min-over-modes) loss: regression on the best mode + CE on the mode logits.

    pred: (B, K, T, 2) trajectories, logits: (B, K) mode scores, gt: (B, T, 2).
    The winner k* of each sample is the mode with the lowest ADE (``winning_mode``); only that mode is
    regressed (mean of the ``reg`` loss over its T*2 coordinates, or T steps), and the logits are
    trained to pick it: L = mean_b [reg_b + ce_weight * CE(logits_b, k*_b)].
    Returns (L, dL/dpred: (B, K, T, 2), dL/dlogits: (B, K)); the losing modes get zero gradient.
    """
    batch = pred.shape[0]
    rows = np.arange(batch)
    winner = winning_mode(pred, gt)
    value, slope = regression_terms(pred[rows, winner] - gt, reg, delta)  # (B, T, 2) each
    grad_pred = np.zeros_like(pred)
    grad_pred[rows, winner] = slope / value.size
    ce, grad_logits = softmax_cross_entropy(logits, winner)
    return float(value.mean()) + ce_weight * ce, grad_pred, ce_weight * grad_logits
