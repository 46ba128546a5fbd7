"""The verification battery: every engine op and every hand-derived block/loss, checked twice, against
central differences and against PyTorch autograd, in float64. The only module here that imports torch.

Each case declares its input shapes and a ``domain`` that maps unconstrained values in [-3, 3] to inputs
where the function is smooth (positive for log, away from 0 for relu/abs, away from ties for max, away
from +-delta for Huber): finite differences across a kink measure the average of two one-sided slopes,
not a bug (the kinks themselves are tested against torch in tests/backprop/test_engine.py). The tests
feed the same cases hypothesis-generated values; ``run_gradcheck_battery`` feeds them seeded random ones.

Ops with a non-scalar output are checked through sum(w * out) with fixed random weights w: every output
element then sends back a different upstream gradient (all ones would miss a transposed or mis-broadcast
backward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tinypred.backprop import handgrad
from tinypred.backprop.engine import Tensor
from tinypred.backprop.gradcheck import compare_gradients, gradcheck, numeric_gradient
from tinypred.backprop.losses import huber, wta_loss
from tinypred.backprop.numerics import DISPLACEMENT_EPS, sigmoid
from tinypred.errors import TinypredError

# Central differences with eps = 1e-5 (not gradcheck's default 1e-6): their rounding error,
# ~1e-16 |out| / eps, is then ~1e-10 while the truncation error, ~eps^2 |f'''|, is no larger. Gradient
# elements below FLOOR are judged by absolute error (see compare_gradients), because with random
# inputs some element of a matmul or a loss is always close to 0. Measured over 300 seeds of the
# engine cases: worst error 1.1e-7 with these settings, 5.6e-6 with no floor.
NUMERIC_EPS = 1e-5
NUMERIC_TOL = 1e-6
FLOOR = 1e-3
TORCH_TOL = 1e-8  # two float64 implementations of the same formula differ by rounding only

# gt of the trajectory-loss cases: data, not an input, so it is fixed. (B, T, 2) = (3, 4, 2), K = 2.
_WTA_GT = np.random.default_rng(7).uniform(-3, 3, (3, 4, 2))


def upstream_for(shape: tuple[int, ...]) -> np.ndarray:
    """The fixed dL/d(output) used for an output of ``shape`` (1 for a scalar), on every side."""
    return np.ones(()) if shape == () else np.random.default_rng(12345).standard_normal(shape)


def _weighted_sum(out: torch.Tensor) -> torch.Tensor:
    return (out * torch.from_numpy(upstream_for(tuple(out.shape)))).sum()


# --- domains -----------------------------------------------------------------------------------


def _same(*xs: np.ndarray) -> list[np.ndarray]:
    return list(xs)


def _positive(*xs: np.ndarray) -> list[np.ndarray]:
    return [0.5 + np.abs(x) for x in xs]


def _off_zero(x: np.ndarray, gap: float = 0.1) -> np.ndarray:
    """Shift every value at least ``gap`` away from 0, keeping its sign (0 counts as positive)."""
    return np.where(x >= 0, 1.0, -1.0) * (gap + np.abs(x))


def _distinct(x: np.ndarray, gap: float = 0.1) -> np.ndarray:
    """Add ``gap`` times each value's rank: the order is kept and no two values are within ``gap``."""
    ranks = np.argsort(np.argsort(x, axis=None, kind="stable"), kind="stable").reshape(x.shape)
    return x + gap * ranks


def _off_kink(residual: np.ndarray, kink: float, gap: float = 0.05) -> np.ndarray:
    """Push residuals whose magnitude is within ``gap`` of ``kink`` out to kink + 2 gap."""
    near = np.abs(np.abs(residual) - kink) < gap
    return np.where(near, np.sign(residual) * (kink + 2 * gap), residual)


def _distinct_modes(pred: np.ndarray, *rest: np.ndarray) -> list[np.ndarray]:
    """Add a fixed irregular pattern so that no two modes tie on ADE (a tie makes the loss jump)."""
    pattern = np.sin(1.0 + np.arange(pred.size)).reshape(pred.shape)
    return [pred + pattern, *rest]


def _huber_inputs(pred: np.ndarray, raw: np.ndarray) -> list[np.ndarray]:
    return [pred, pred - _off_kink(raw, 1.0)]  # residual pred - target = raw, off +-delta


# --- the trajectory loss in torch (also the benchmark's reference) -------------------------------


def torch_wta_loss(
    pred: torch.Tensor,
    logits: torch.Tensor,
    gt: torch.Tensor,
    ce_weight: float = 1.0,
    reg: str = "l2",
    delta: float = 1.0,
) -> torch.Tensor:
    """The winner-take-all loss written directly in torch (as ``losses.wta_loss``).

    pred: (B, K, T, 2), logits: (B, K), gt: (B, T, 2).
    """
    with torch.no_grad():
        winner = (pred - gt[:, None]).norm(dim=-1).mean(dim=-1).argmin(dim=1)
    best = pred[torch.arange(pred.shape[0]), winner]  # (B, T, 2)
    if reg == "displacement":
        regression = ((best - gt).square().sum(-1) + DISPLACEMENT_EPS).sqrt().mean()
    elif reg == "l2":
        regression = F.mse_loss(best, gt)
    elif reg == "l1":
        regression = F.l1_loss(best, gt)
    else:
        regression = F.huber_loss(best, gt, delta=delta)
    return regression + ce_weight * F.cross_entropy(logits, winner)


# --- engine ops --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpCase:
    """An engine op: ``engine`` on Tensors and ``reference`` on torch tensors compute the same array."""

    name: str
    shapes: tuple[tuple[int, ...], ...]
    engine: Callable[..., Tensor]
    reference: Callable[..., torch.Tensor]
    domain: Callable[..., list[np.ndarray]] = _same


_IDX = np.array([0, 2, 2, 4])  # a repeated index: its gradient must accumulate
_ROWS, _COLS = np.array([0, 1, 1, 3]), np.array([2, 0, 0, 4])
_MASK = np.array([[True, False, True, True, False], [False, False, True, False, True]] * 2)

OP_CASES: tuple[OpCase, ...] = (
    OpCase("add (broadcast)", ((3, 4), (4,)), lambda a, b: a + b, lambda a, b: a + b),
    OpCase("sub (broadcast both)", ((3, 1), (1, 4)), lambda a, b: a - b, lambda a, b: a - b),
    OpCase("mul (broadcast)", ((2, 3, 4), (3, 1)), lambda a, b: a * b, lambda a, b: a * b),
    OpCase(
        "div", ((3, 4), (3, 4)), lambda a, b: a / b, lambda a, b: a / b, lambda a, b: [a, 0.5 + np.abs(b)]
    ),
    OpCase(
        "scalars (reflected)",
        ((3, 4),),
        lambda x: (1.5 + x) * (2.0 - x) + 3.0 / x - x / 4.0 + 2.0 * x - 1.0,
        lambda x: (1.5 + x) * (2.0 - x) + 3.0 / x - x / 4.0 + 2.0 * x - 1.0,
        _positive,
    ),
    OpCase("neg", ((3, 4),), lambda x: -x, lambda x: -x),
    OpCase("pow (integer)", ((3, 4),), lambda x: x**3, lambda x: x**3, lambda x: [_off_zero(x)]),
    OpCase("pow (fractional)", ((3, 4),), lambda x: x**0.5 + x**-1.5, lambda x: x**0.5 + x**-1.5, _positive),
    OpCase("pow (0, 1, 2)", ((3, 4),), lambda x: x**0 + x**1 + x**2, lambda x: x**0 + x**1 + x**2),
    OpCase("matmul", ((3, 4), (4, 5)), lambda a, b: a @ b, lambda a, b: a @ b),
    OpCase("matmul (batched)", ((2, 3, 4), (4, 5)), lambda a, b: a @ b, lambda a, b: a @ b),
    OpCase("matmul (vector @ matrix)", ((4,), (4, 3)), lambda a, b: a @ b, lambda a, b: a @ b),
    OpCase("matmul (matrix @ vector)", ((3, 4), (4,)), lambda a, b: a @ b, lambda a, b: a @ b),
    OpCase("exp", ((3, 4),), lambda x: x.exp(), torch.exp),
    OpCase("log", ((3, 4),), lambda x: x.log(), torch.log, _positive),
    OpCase("tanh", ((3, 4),), lambda x: x.tanh(), torch.tanh),
    OpCase("relu", ((3, 4),), lambda x: x.relu(), torch.relu, lambda x: [_off_zero(x)]),
    OpCase("sigmoid", ((3, 4),), lambda x: x.sigmoid(), torch.sigmoid),
    OpCase("softplus", ((3, 4),), lambda x: x.softplus(), F.softplus),
    OpCase("abs", ((3, 4),), lambda x: x.abs(), torch.abs, lambda x: [_off_zero(x)]),
    OpCase("sum (all)", ((3, 4),), lambda x: x.sum(), torch.sum),
    OpCase("sum (axis=1)", ((3, 4),), lambda x: x.sum(axis=1), lambda x: x.sum(dim=1)),
    OpCase(
        "sum (axes, keepdims)",
        ((2, 3, 4),),
        lambda x: x.sum(axis=(0, 2), keepdims=True),
        lambda x: x.sum(dim=(0, 2), keepdim=True),
    ),
    OpCase("mean (all)", ((3, 4),), lambda x: x.mean(), torch.mean),
    OpCase("mean (axis=0)", ((3, 4),), lambda x: x.mean(axis=0), lambda x: x.mean(dim=0)),
    OpCase("mean (axes)", ((2, 3, 4),), lambda x: x.mean(axis=(1, 2)), lambda x: x.mean(dim=(1, 2))),
    OpCase("max (all)", ((3, 4),), lambda x: x.max(), torch.amax, lambda x: [_distinct(x)]),
    OpCase(
        "max (axis=1, keepdims)",
        ((2, 3, 4),),
        lambda x: x.max(axis=1, keepdims=True),
        lambda x: x.amax(dim=1, keepdim=True),
        lambda x: [_distinct(x)],
    ),
    OpCase("reshape", ((2, 6),), lambda x: x.reshape(3, 4), lambda x: x.reshape(3, 4)),
    OpCase("transpose", ((3, 4),), lambda x: x.T, lambda x: x.T),
    OpCase("index (repeated)", ((5, 3),), lambda x: x[_IDX], lambda x: x[torch.from_numpy(_IDX)]),
    OpCase(
        "index (rows, cols)",
        ((4, 5),),
        lambda x: x[_ROWS, _COLS],
        lambda x: x[torch.from_numpy(_ROWS), torch.from_numpy(_COLS)],
    ),
    OpCase("index (slices)", ((4, 5),), lambda x: x[1:3, ::2], lambda x: x[1:3, ::2]),
    OpCase(  # torch has no negative slice steps: flip, then slice
        "index (negative step, None, Ellipsis)",
        ((4, 5),),
        lambda x: x[::-2, None, ..., 1:],
        lambda x: x.flip(0)[::2, None, ..., 1:],
    ),
    OpCase("index (boolean mask)", ((4, 5),), lambda x: x[_MASK], lambda x: x[torch.from_numpy(_MASK)]),
    OpCase(
        "log_softmax (axis=-1)",
        ((3, 5),),
        lambda x: x.log_softmax(axis=-1),
        lambda x: F.log_softmax(x, dim=-1),
    ),
    OpCase(
        "log_softmax (axis=0)", ((3, 5),), lambda x: x.log_softmax(axis=0), lambda x: F.log_softmax(x, dim=0)
    ),
    OpCase(
        "huber",
        ((4, 5), (4, 5)),
        lambda p, t: huber(p, t, 1.0),
        lambda p, t: F.huber_loss(p, t, reduction="none", delta=1.0),
        _huber_inputs,
    ),
    *(
        OpCase(
            f"wta_loss ({reg})",
            ((3, 2, 4, 2), (3, 2)),
            lambda p, lg, reg=reg: wta_loss(p, lg, _WTA_GT, ce_weight=0.5, reg=reg),
            lambda p, lg, reg=reg: torch_wta_loss(p, lg, torch.from_numpy(_WTA_GT), 0.5, reg),
            _distinct_modes,
        )
        for reg in ("l2", "l1", "huber", "displacement")
    ),
)


def check_op(case: OpCase, inputs: list[np.ndarray]) -> dict:
    """One battery row for an engine op on ``inputs`` (already in the case's domain)."""
    tensors = [Tensor(x.copy(), requires_grad=True) for x in inputs]
    out = case.engine(*tensors)
    upstream = upstream_for(out.shape)
    out.backward(upstream)
    analytic = [t.grad if t.grad is not None else np.zeros_like(t.data) for t in tensors]
    numeric = gradcheck(case.engine, inputs, NUMERIC_EPS, NUMERIC_TOL, upstream, FLOOR)
    value = float((upstream * out.data).sum())
    return _row(case.name, "autodiff", value, analytic, numeric.rel_error, case.reference, inputs)


# --- handgrad blocks and losses ------------------------------------------------------------------


@dataclass(frozen=True)
class HandCase:
    """A handgrad block or loss. ``hand(*inputs)`` returns (output, gradients of the first len(gradients)
    inputs for the upstream ``upstream_for(output.shape)``); the other inputs are constants.
    ``reference`` computes the same output in torch."""

    name: str
    shapes: tuple[tuple[int, ...], ...]
    hand: Callable[..., tuple[np.ndarray, list[np.ndarray]]]
    reference: Callable[..., torch.Tensor]
    domain: Callable[..., list[np.ndarray]] = _same


def _hand_linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, list]:
    layer = handgrad.Linear(*weight.shape)
    layer.weight, layer.bias = weight, bias
    out = layer.forward(x)
    grad_x = layer.backward(upstream_for(out.shape))
    return out, [grad_x, layer.grad_weight, layer.grad_bias]


def _hand_activation(block: type) -> Callable[[np.ndarray], tuple[np.ndarray, list]]:
    def run(x: np.ndarray) -> tuple[np.ndarray, list]:
        layer = block()
        out = layer.forward(x)
        return out, [layer.backward(upstream_for(out.shape))]

    return run


def _loss(loss: Callable[..., tuple]) -> Callable[..., tuple[np.ndarray, list]]:
    """Adapt a handgrad loss returning (value, grad, ...) to the HandCase convention."""

    def run(*inputs: np.ndarray) -> tuple[np.ndarray, list]:
        value, *grads = loss(*inputs)
        return np.asarray(value), grads

    return run


def _hand_wta(reg: str) -> Callable[..., tuple[np.ndarray, list]]:
    return _loss(lambda pred, logits: handgrad.wta_loss(pred, logits, _WTA_GT, ce_weight=0.5, reg=reg))


HAND_CASES: tuple[HandCase, ...] = (
    HandCase("handgrad Linear", ((4, 3), (3, 5), (5,)), _hand_linear, lambda x, w, b: x @ w + b),
    HandCase(
        "handgrad ReLU", ((3, 4),), _hand_activation(handgrad.ReLU), torch.relu, lambda x: [_off_zero(x)]
    ),
    HandCase("handgrad Tanh", ((3, 4),), _hand_activation(handgrad.Tanh), torch.tanh),
    HandCase("handgrad Sigmoid", ((3, 4),), _hand_activation(handgrad.Sigmoid), torch.sigmoid),
    HandCase("handgrad l2", ((3, 4), (3, 4)), _loss(handgrad.l2), F.mse_loss),
    HandCase(
        "handgrad binary_cross_entropy",
        ((3, 4), (3, 4)),
        _loss(handgrad.binary_cross_entropy),
        F.binary_cross_entropy,
        lambda p, t: [sigmoid(p), (t > 0).astype(float)],
    ),
    HandCase(
        "handgrad softmax_cross_entropy",
        ((4, 5), (4,)),
        _loss(handgrad.softmax_cross_entropy),
        lambda logits, t: F.cross_entropy(logits, t.long()),
        lambda logits, t: [logits, (np.abs(t) * 7).astype(np.int64) % 5],
    ),
    HandCase(
        "handgrad gaussian_nll",
        ((3, 4), (3, 4), (3, 4)),
        _loss(handgrad.gaussian_nll),
        lambda m, r, t: F.gaussian_nll_loss(m, t, F.softplus(r) + 1e-6, eps=1e-6),
    ),
    *(
        HandCase(
            f"handgrad wta_loss ({reg})",
            ((3, 2, 4, 2), (3, 2)),
            _hand_wta(reg),
            lambda p, lg, reg=reg: torch_wta_loss(p, lg, torch.from_numpy(_WTA_GT), 0.5, reg),
            _distinct_modes,
        )
        for reg in ("l2", "l1", "huber", "displacement")
    ),
)


def check_hand(case: HandCase, inputs: list[np.ndarray]) -> dict:
    """One battery row for a handgrad block or loss on ``inputs`` (already in the case's domain)."""
    out, grads = case.hand(*inputs)
    upstream = upstream_for(out.shape)
    n = len(grads)
    constants = inputs[n:]
    numeric = numeric_gradient(
        lambda *xs: case.hand(*xs, *constants)[0], [x.copy() for x in inputs[:n]], NUMERIC_EPS, upstream
    )
    rel = compare_gradients(grads, numeric, NUMERIC_TOL, FLOOR).rel_error
    value = float((upstream * out).sum())
    return _row(case.name, "handgrad", value, grads, rel, case.reference, inputs)


# --- rows ----------------------------------------------------------------------------------------


def _row(
    name: str,
    kind: str,
    value: float,
    grads: list[np.ndarray],
    numeric_rel_error: float,
    reference: Callable[..., torch.Tensor],
    inputs: list[np.ndarray],
) -> dict:
    """Compare ``value`` = sum(upstream * output) and its gradients with torch's; the first len(grads)
    inputs are the differentiable ones."""
    tensors = [torch.tensor(x, requires_grad=i < len(grads)) for i, x in enumerate(inputs)]
    out = _weighted_sum(reference(*tensors))
    out.backward()
    torch_grads = [t.grad.numpy() for t in tensors[: len(grads)]]
    torch_rel_error = compare_gradients(grads, torch_grads, TORCH_TOL, FLOOR).rel_error
    value_rel_error = abs(value - out.item()) / max(abs(value), abs(out.item()), 1e-300)
    return {
        "op": name,
        "kind": kind,
        "numeric_rel_error": numeric_rel_error,
        "torch_rel_error": max(torch_rel_error, value_rel_error),
        "worst_rel_error": max(numeric_rel_error, torch_rel_error, value_rel_error),
        "passed": numeric_rel_error <= NUMERIC_TOL and max(torch_rel_error, value_rel_error) <= TORCH_TOL,
    }


def case_inputs(case: OpCase | HandCase, rng: np.random.Generator) -> list[np.ndarray]:
    """Seeded random inputs in the case's domain."""
    return case.domain(*(rng.uniform(-3, 3, shape) for shape in case.shapes))


def run_gradcheck_battery(seed: int = 0) -> list[dict]:
    """Check every engine op and handgrad block/loss; rows {op, kind, numeric_rel_error,
    torch_rel_error, worst_rel_error, passed}, in the order of OP_CASES then HAND_CASES."""
    if not isinstance(seed, int) or seed < 0:
        raise TinypredError(f"expected an integer >= 0, got {seed!r}", arg="seed")
    rng = np.random.default_rng(seed)
    rows = [check_op(case, case_inputs(case, rng)) for case in OP_CASES]
    return rows + [check_hand(case, case_inputs(case, rng)) for case in HAND_CASES]
