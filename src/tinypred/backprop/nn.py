"""Modules on engine Tensors: ``Module`` (parameter discovery), ``Linear`` and ``MLP``."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

import numpy as np
from numpy.typing import DTypeLike

from tinypred.backprop.engine import Tensor
from tinypred.backprop.numerics import Init, init_weight


class Module:
    """Base class: ``parameters()`` finds Tensors that require grad in attributes, sub-modules and lists."""

    def parameters(self) -> list[Tensor]:
        params: list[Tensor] = []
        for value in vars(self).values():
            items = value if isinstance(value, (list, tuple)) else [value]
            for item in items:
                if isinstance(item, Module):
                    params.extend(item.parameters())
                elif isinstance(item, Tensor) and item.requires_grad:
                    params.append(item)
        return params

    def zero_grad(self) -> None:
        """Set every parameter's gradient to None (torch's default ``set_to_none``)."""
        for p in self.parameters():
            p.grad = None

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)


class Linear(Module):
    """x @ weight + bias; weight: (in, out) (the transpose of torch's layout), bias: (out,) zeros.

    x: (N, in) -> (N, out).
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
        self.weight = Tensor(init_weight(in_features, out_features, init, rng, dtype), requires_grad=True)
        self.bias = Tensor(np.zeros(out_features, dtype=dtype), requires_grad=True) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        out = x @ self.weight
        return out if self.bias is None else out + self.bias


class MLP(Module):
    """Linear layers of ``sizes`` (e.g. [32, 64, 64, 10]) with ``activation`` between them, none after
    the last. x: (N, sizes[0]) -> (N, sizes[-1])."""

    def __init__(
        self,
        sizes: Sequence[int],
        activation: Literal["relu", "tanh", "sigmoid"] = "relu",
        init: Init = "kaiming",
        rng: np.random.Generator | None = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        if activation not in ("relu", "tanh", "sigmoid"):
            raise ValueError(f"activation must be relu, tanh or sigmoid, got {activation!r}")
        rng = np.random.default_rng() if rng is None else rng
        self.activation = activation
        self.layers = [Linear(i, o, init, rng, dtype) for i, o in pairwise(sizes)]

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = getattr(layer(x), self.activation)()
        return self.layers[-1](x)
