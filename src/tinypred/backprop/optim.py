"""Optimizers with the update rules of torch.optim (default, single-tensor code path), in place on
``.data``: ``SGD`` (momentum, weight decay), ``Adam`` and ``AdamW``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from tinypred.backprop.engine import Tensor


class Optimizer:
    """Updates ``params`` in place from their ``.grad`` on each ``step()``."""

    def __init__(self, params: Iterable[Tensor]) -> None:
        self.params = list(params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """torch.optim.SGD: d = g + wd p; with momentum, buf = d (first step) then buf = mu buf + d, d = buf;
    p -= lr d. Parameters without a gradient are skipped."""

    def __init__(
        self, params: Iterable[Tensor], lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self._buffers: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            d = p.grad if self.weight_decay == 0 else p.grad + self.weight_decay * p.data
            if self.momentum != 0:
                buf = self._buffers[i]
                if buf is None:
                    buf = self._buffers[i] = d.copy()
                else:
                    buf *= self.momentum
                    buf += d
                d = buf
            p.data -= self.lr * d


@dataclass
class _AdamState:
    step: int
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray
    scratch: np.ndarray  # reused every step so the update allocates no temporaries


class Adam(Optimizer):
    """torch.optim.Adam; with ``decoupled=True`` torch.optim.AdamW.

    m = m + (1 - b1)(g - m); v = b2 v + (1 - b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t)
    + eps). Weight decay: Adam adds wd p to g (an L2 penalty, rescaled by Adam); AdamW instead shrinks
    p *= 1 - lr wd before the update (decoupled). The step count t is per parameter, as in torch.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        super().__init__(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.weight_decay, self.decoupled = weight_decay, decoupled
        self._state = [
            _AdamState(0, np.zeros_like(p.data), np.zeros_like(p.data), np.empty_like(p.data))
            for p in self.params
        ]

    def step(self) -> None:
        beta1, beta2 = self.betas
        for p, state in zip(self.params, self._state, strict=True):
            grad = p.grad
            if grad is None:
                continue
            state.step += 1
            if self.weight_decay != 0:
                if self.decoupled:
                    p.data *= 1 - self.lr * self.weight_decay
                else:
                    grad = grad + self.weight_decay * p.data
            m, v, tmp = state.exp_avg, state.exp_avg_sq, state.scratch
            np.subtract(grad, m, out=tmp)  # m.lerp_(grad, 1 - beta1), in torch's operation order
            tmp *= 1 - beta1
            m += tmp
            v *= beta2
            np.multiply(grad, grad, out=tmp)
            tmp *= 1 - beta2
            v += tmp
            step_size = self.lr / (1 - beta1**state.step)
            np.sqrt(v, out=tmp)
            tmp /= math.sqrt(1 - beta2**state.step)
            tmp += self.eps
            np.divide(m, tmp, out=tmp)
            tmp *= step_size
            p.data -= tmp


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay (default 0.01, as torch)."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, decoupled=True)
