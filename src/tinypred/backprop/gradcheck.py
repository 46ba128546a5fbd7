"""Gradient checking: central differences, and an element-wise comparison that reports the worst element.

``gradcheck`` checks the engine's gradient of a function of Tensors; ``numeric_gradient`` and
``compare_gradients`` work on plain arrays, so they check the hand-derived blocks (and torch) as well.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike

from tinypred.backprop.engine import Tensor, no_grad


@dataclass(frozen=True)
class GradcheckResult:
    """The worst element of a gradient comparison.

    rel_error = |analytic - numeric| / max(|analytic|, |numeric|, floor) (0 when both are 0; inf for
    NaN/inf; floor is 0 unless the caller sets it, see compare_gradients).
    input: which input; index: the element in it; numeric: the finite-difference (or reference) value.
    """

    passed: bool
    rel_error: float
    input: int
    index: tuple[int, ...]
    analytic: float
    numeric: float


def numeric_gradient(
    f: Callable[..., ArrayLike],
    inputs: Sequence[np.ndarray],
    eps: float = 1e-6,
    upstream: ArrayLike = 1.0,
) -> list[np.ndarray]:
    """Central differences of sum(upstream * f(*inputs)) with respect to every element of every input.

    f takes the arrays and returns an array (a scalar for a loss); inputs are perturbed in place and
    restored. The two evaluations are subtracted element-wise *before* weighting by ``upstream``, so an
    output element that does not depend on the perturbed input contributes exactly 0 and adds no
    rounding error of its own.
    """
    grads = []
    for x in inputs:
        grad = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            original = x[i]
            x[i] = original + eps
            plus = np.array(f(*inputs), copy=True)  # a copy: f may return a view of an input
            x[i] = original - eps
            minus = np.array(f(*inputs), copy=True)
            x[i] = original
            grad[i] = np.sum(upstream * (plus - minus)) / (2 * eps)
        grads.append(grad)
    return grads


def compare_gradients(
    analytic: Sequence[np.ndarray], reference: Sequence[np.ndarray], tol: float = 1e-6, floor: float = 0.0
) -> GradcheckResult:
    """Compare gradients element-wise by relative error; the reference can be numeric or torch's.

    error = |a - n| / max(|a|, |n|, floor). With ``floor = 0`` (the default) this is the plain relative
    error. A positive floor judges gradients smaller than it by their absolute error instead: central
    differences carry an absolute rounding error (~1e-16 |f| / eps) that no relative test can meet on
    a gradient element that happens to be near 0.
    """
    worst: GradcheckResult | None = None
    for k, (a, n) in enumerate(zip(analytic, reference, strict=True)):
        a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
        if a.shape != n.shape:
            raise ValueError(f"input {k}: analytic gradient {a.shape} vs reference {n.shape}")
        if a.size == 0:
            continue
        diff = np.abs(a - n)
        scale = np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)
        rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
        rel[~(np.isfinite(a) & np.isfinite(n))] = np.inf
        i = np.unravel_index(np.argmax(rel), rel.shape)
        if worst is None or rel[i] > worst.rel_error:
            index = tuple(int(j) for j in i)
            worst = GradcheckResult(False, float(rel[i]), k, index, float(a[i]), float(n[i]))
    if worst is None:
        return GradcheckResult(True, 0.0, 0, (), 0.0, 0.0)
    return replace(worst, passed=worst.rel_error <= tol)


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[ArrayLike | Tensor],
    eps: float = 1e-6,
    tol: float = 1e-6,
    upstream: ArrayLike | None = None,
    floor: float = 0.0,
) -> GradcheckResult:
    """Check the engine's gradient of ``fn(*tensors)`` against central differences, in float64.

    For a non-scalar output, ``upstream`` (same shape) is the seed dL/d(output): the check is then on
    sum(upstream * fn(...)). Pick it random, not all ones, so that every output element differs.
    ``floor``: see ``compare_gradients``.
    """
    arrays = [np.array(x.data if isinstance(x, Tensor) else x, dtype=np.float64) for x in inputs]
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    fn(*tensors).backward(upstream)
    analytic = [t.grad if t.grad is not None else np.zeros_like(t.data) for t in tensors]

    def value(*xs: np.ndarray) -> np.ndarray:
        with no_grad():
            return fn(*(Tensor(x) for x in xs)).data

    seed = 1.0 if upstream is None else np.asarray(upstream)
    return compare_gradients(analytic, numeric_gradient(value, arrays, eps, seed), tol, floor)
