"""Forward-only, numerically stable NumPy helpers shared by the engine and the hand-derived blocks.

Both sides call these for their forward values, so the engine and :mod:`.handgrad` compute the same
numbers and only their derivatives are written twice, independently.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import DTypeLike

Init = Literal["kaiming", "xavier", "normal001"]
Regression = Literal["l2", "l1", "huber", "displacement"]
DISPLACEMENT_EPS = 1e-6  # m^2 inside the square root: a finite gradient at a perfect fit (as the model's)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow for large |x|: e^(-log(1 + e^-x))."""
    return np.exp(-np.logaddexp(0.0, -x))


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x), stable for large |x| (logaddexp never exponentiates a large number)."""
    return np.logaddexp(0.0, x)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x - log(sum(e^x)) along ``axis``; the max is subtracted first so e^x cannot overflow.

    An empty input gives an empty output, as in torch (NumPy's max has no identity to reduce with).
    """
    if x.size == 0:
        return np.empty_like(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def init_weight(
    fan_in: int, fan_out: int, init: Init, rng: np.random.Generator, dtype: DTypeLike = np.float64
) -> np.ndarray:
    """A (fan_in, fan_out) weight matrix.

    kaiming: N(0, 2/fan_in), keeps ReLU activations' scale; xavier: N(0, 2/(fan_in+fan_out)), for
    tanh/sigmoid; normal001: N(0, 0.01^2), the circle classifier's "small random values" (lecture 003).
    """
    scale = {
        "kaiming": np.sqrt(2.0 / fan_in),
        "xavier": np.sqrt(2.0 / (fan_in + fan_out)),
        "normal001": 0.01,
    }
    if init not in scale:
        raise ValueError(f"init must be one of {sorted(scale)}, got {init!r}")
    return (scale[init] * rng.standard_normal((fan_in, fan_out))).astype(dtype)


def winning_mode(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Index of the mode closest to the ground truth by ADE (mean L2 displacement over time).

    pred: (B, K, T, 2), gt: (B, T, 2) -> (B,) ints. Ties go to the lowest index (argmin).
    """
    squared = pred - gt[:, None]
    squared *= squared  # in place: a fresh array, and the largest one here
    # x^2 + y^2 spelled out: NumPy's .sum(axis=-1) over a length-2 axis is ~7x slower.
    return np.sqrt(squared[..., 0] + squared[..., 1]).mean(axis=-1).argmin(axis=1)
