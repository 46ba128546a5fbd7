"""A small reverse-mode autodiff engine on NumPy arrays, micrograd-style.

A :class:`Tensor` wraps an ndarray. Every op computes its output and, right next to it, a closure
``backward(g)`` that maps dL/d(output) to dL/d(each input) (``None`` for inputs that need no gradient).
``loss.backward()`` walks the graph once in reverse topological order, summing the contributions of a
node used several times (fan-out, shared parameters), and accumulates into ``.grad`` of leaf tensors only
(like torch: intermediate results keep ``grad = None``).

Broadcasting follows NumPy; ``_unbroadcast`` sums a gradient back to its operand's shape. float32 stays
float32: Python scalars and arrays mixed into an op are cast to the tensor's dtype, and mixing a float32
with a float64 tensor is an error instead of a silent upcast.

Also here: ``Module``/``Linear``/``MLP``, ``SGD``/``Adam``/``AdamW`` with PyTorch's exact update rules,
the winner-take-all trajectory loss on Tensors, and ``gradcheck`` (central differences).
Derivations: docs/derivations.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from tinypred.handgrad import Init, Regression, init_weight, log_softmax, sigmoid, softplus, winning_mode

Backward = Callable[[np.ndarray], Sequence["np.ndarray | None"]]

_grad_enabled = True


@contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block ops record no graph: results are constants (for evaluation and updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes NumPy broadcasting added or stretched, giving an array of ``shape``.

    An input broadcast along an axis was used once per position on that axis, so its gradient is the
    sum over that axis (the multivariate chain rule).
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    stretched = tuple(i + lead for i, n in enumerate(shape) if n == 1 and grad.shape[i + lead] != 1)
    return grad.sum(axis=tuple(range(lead)) + stretched).reshape(shape)


def _is_basic_index(index: object) -> bool:
    """Slices, ints, None and Ellipsis select each element at most once; integer arrays may repeat."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts)


class Tensor:
    """An ndarray with an optional gradient.

    data: the array (shares memory with an ndarray passed in, like ``torch.from_numpy``).
    dtype: float64 by default; a float32 array stays float32 unless ``dtype`` says otherwise.
    grad: dL/d(data), same shape and dtype, kept on leaf tensors with ``requires_grad``; ``None`` until
    a backward pass reaches it. Gradients accumulate over backward calls until ``zero_grad()``.
    """

    # Make NumPy hand `ndarray <op> Tensor` to Tensor's reflected operators instead of broadcasting.
    __array_ufunc__ = None

    def __init__(self, data: ArrayLike, requires_grad: bool = False, dtype: DTypeLike = None) -> None:
        array = np.asarray(data)
        if dtype is None:
            dtype = array.dtype if array.dtype in (np.float32, np.float64) else np.float64
        self.data: np.ndarray = array.astype(dtype, copy=False)
        if self.data.dtype not in (np.float32, np.float64):
            raise TypeError(f"Tensor dtype must be float32 or float64, got {self.data.dtype}")
        self.requires_grad = requires_grad
        self.grad: np.ndarray | None = None
        self._parents: tuple[Tensor, ...] = ()
        self._backward: Backward | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    def __repr__(self) -> str:
        return f"Tensor({self.data!r}, requires_grad={self.requires_grad})"

    def item(self) -> float:
        return self.data.item()

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (torch's ``set_to_none`` semantics)."""
        self.grad = None

    def _operand(self, other: Tensor | ArrayLike) -> Tensor:
        """``other`` as a Tensor of this dtype; constants are cast, Tensors must already match."""
        if isinstance(other, Tensor):
            if other.dtype != self.dtype:
                raise TypeError(f"dtype mismatch: {self.dtype} and {other.dtype}; cast one explicitly")
            return other
        return Tensor(np.asarray(other, dtype=self.dtype))

    # -- the backward pass ------------------------------------------------------------------------

    def backward(self, grad: ArrayLike | None = None) -> None:
        """Accumulate dself/dleaf into every leaf's ``.grad``.

        grad: the seed dL/dself, same shape as self; may be omitted for a single-element tensor.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (made under no_grad?)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() needs a seed gradient for a tensor of shape {self.shape}")
            grad = np.ones_like(self.data)
        seed = np.asarray(grad, dtype=self.dtype)
        if seed.shape != self.shape:
            raise ValueError(f"seed gradient of shape {seed.shape} for a tensor of shape {self.shape}")
        pending = {id(self): seed}
        for node in reversed(_topological_order(self)):
            g = pending.pop(id(node), None)
            if g is None:  # no path from this node to the output carries a gradient
                continue
            if node._backward is None:
                # A leaf owns its .grad, so accumulating in place is safe; the first one is a copy
                # because g may be a view shared with other nodes.
                if node.grad is None:
                    node.grad = np.array(g, copy=True)
                else:
                    node.grad += g
                continue
            for parent, parent_grad in zip(node._parents, node._backward(g), strict=True):
                if parent_grad is None or not parent.requires_grad:
                    continue
                if parent_grad.shape != parent.shape:
                    raise RuntimeError(f"gradient of shape {parent_grad.shape} for an input {parent.shape}")
                key = id(parent)
                # Fan-out: a new array for the sum, since either term may alias another node's gradient.
                pending[key] = parent_grad if key not in pending else pending[key] + parent_grad

    # -- element-wise arithmetic (with broadcasting) ---------------------------------------------

    def __add__(self, other: Tensor | ArrayLike) -> Tensor:
        other = self._operand(other)

        def backward(g):
            return (
                _unbroadcast(g, self.shape) if self.requires_grad else None,
                _unbroadcast(g, other.shape) if other.requires_grad else None,
            )

        return make_op(self.data + other.data, (self, other), backward)

    def __sub__(self, other: Tensor | ArrayLike) -> Tensor:
        other = self._operand(other)

        def backward(g):
            return (
                _unbroadcast(g, self.shape) if self.requires_grad else None,
                _unbroadcast(-g, other.shape) if other.requires_grad else None,
            )

        return make_op(self.data - other.data, (self, other), backward)

    def __mul__(self, other: Tensor | ArrayLike) -> Tensor:
        other = self._operand(other)
        a, b = self.data, other.data

        def backward(g):
            return (
                _unbroadcast(g * b, self.shape) if self.requires_grad else None,
                _unbroadcast(g * a, other.shape) if other.requires_grad else None,
            )

        return make_op(a * b, (self, other), backward)

    def __truediv__(self, other: Tensor | ArrayLike) -> Tensor:
        other = self._operand(other)
        b = other.data
        out = self.data / b

        def backward(g):  # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -out/b
            return (
                _unbroadcast(g / b, self.shape) if self.requires_grad else None,
                _unbroadcast(-g * out / b, other.shape) if other.requires_grad else None,
            )

        return make_op(out, (self, other), backward)

    def __radd__(self, other: ArrayLike) -> Tensor:
        return self + other

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return self * other

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return self._operand(other) - self

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return self._operand(other) / self

    def __neg__(self) -> Tensor:
        return make_op(-self.data, (self,), lambda g: (-g,))

    def __pow__(self, exponent: float) -> Tensor:
        if not isinstance(exponent, (int, float)):
            raise TypeError(f"only Python scalar exponents are supported, got {type(exponent).__name__}")
        a = self.data

        def backward(g):  # d(a^p)/da = p a^(p-1)
            return (g * (exponent * a ** (exponent - 1)),)

        return make_op(a**exponent, (self,), backward)

    # -- matrix product ---------------------------------------------------------------------------

    def __matmul__(self, other: Tensor | ArrayLike) -> Tensor:
        other = self._operand(other)
        a, b = self.data, other.data

        def backward(g):
            # For C = A B: dA = G B^T and dB = A^T G. A 1-D operand is a row (left) or column (right)
            # matrix, as in NumPy's matmul; leading (batch) dimensions broadcast and are summed back.
            a2 = a[None, :] if a.ndim == 1 else a
            b2 = b[:, None] if b.ndim == 1 else b
            g2 = g  # restore the axes that a 1-D operand dropped from the product (columns first)
            if b.ndim == 1:
                g2 = np.expand_dims(g2, -1)
            if a.ndim == 1:
                g2 = np.expand_dims(g2, -2)
            grad_a = grad_b = None
            if self.requires_grad:
                grad_a = _unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
            if other.requires_grad:
                grad_b = _unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
            return grad_a, grad_b

        return make_op(a @ b, (self, other), backward)

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return self._operand(other) @ self

    # -- element-wise functions -------------------------------------------------------------------

    def exp(self) -> Tensor:
        out = np.exp(self.data)
        return make_op(out, (self,), lambda g: (g * out,))

    def log(self) -> Tensor:
        a = self.data
        return make_op(np.log(a), (self,), lambda g: (g / a,))

    def tanh(self) -> Tensor:
        out = np.tanh(self.data)
        return make_op(out, (self,), lambda g: (g * (1 - out * out),))

    def relu(self) -> Tensor:
        a = self.data
        return make_op(np.maximum(a, 0), (self,), lambda g: (g * (a > 0),))

    def sigmoid(self) -> Tensor:
        out = sigmoid(self.data)
        return make_op(out, (self,), lambda g: (g * out * (1 - out),))

    def softplus(self) -> Tensor:
        a = self.data  # d softplus(a)/da = sigmoid(a)
        return make_op(softplus(a), (self,), lambda g: (g * sigmoid(a),))

    def abs(self) -> Tensor:
        a = self.data
        return make_op(np.abs(a), (self,), lambda g: (g * np.sign(a),))

    def log_softmax(self, axis: int = -1) -> Tensor:
        out = log_softmax(self.data, axis)

        def backward(g):  # d out_i / d x_j = [i == j] - softmax_j, so g - softmax * sum(g)
            return (g - np.exp(out) * g.sum(axis=axis, keepdims=True),)

        return make_op(out, (self,), backward)

    # -- reductions and shape ---------------------------------------------------------------------

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        shape = self.shape

        def backward(g):  # every summed element receives the gradient of its sum
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)
            return (np.broadcast_to(g, shape),)

        return make_op(self.data.sum(axis=axis, keepdims=keepdims), (self,), backward)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        total = self.sum(axis=axis, keepdims=keepdims)
        return total / (self.data.size // max(total.data.size, 1))

    def reshape(self, *shape: int | tuple[int, ...]) -> Tensor:
        old = self.shape
        return make_op(self.data.reshape(*shape), (self,), lambda g: (g.reshape(old),))

    @property
    def T(self) -> Tensor:
        """All axes reversed, as ndarray.T (the transpose for a matrix)."""
        return make_op(self.data.T, (self,), lambda g: (g.T,))

    def __getitem__(self, index: object) -> Tensor:
        """x[i], x[rows, cols], x[1:3, ::2]: gradients go back to the selected positions."""
        shape, dtype = self.shape, self.dtype

        def backward(g):
            grad = np.zeros(shape, dtype=dtype)
            if _is_basic_index(index):
                grad[index] = g
            else:  # integer arrays may pick an element twice: np.add.at sums instead of overwriting
                np.add.at(grad, index, g)
            return (grad,)

        return make_op(self.data[index], (self,), backward)


def make_op(data: ArrayLike, parents: tuple[Tensor, ...], backward: Backward) -> Tensor:
    """The output of an op: ``data`` plus, when a parent needs a gradient, a graph node.

    backward(g) receives dL/d(output) (same shape as data) and returns one gradient or None per parent,
    each of that parent's shape. Every op above is built this way; so can new ones.
    """
    array = np.asarray(data)  # NumPy reductions return scalars, not 0-d arrays
    out = Tensor(array, dtype=array.dtype)
    if _grad_enabled and any(p.requires_grad for p in parents):
        out.requires_grad = True
        out._parents = parents
        out._backward = backward
    return out


def _topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor that ``root`` depends on through gradient-carrying edges, inputs before outputs."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:  # iterative DFS: a long chain must not hit Python's recursion limit
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in node._parents if p.requires_grad)
    return order


def huber(pred: Tensor, target: Tensor | ArrayLike, delta: float = 1.0) -> Tensor:
    """Element-wise Huber loss of r = pred - target (broadcasting): r^2/2 if |r| <= delta, else
    delta (|r| - delta/2). Quadratic near 0, linear (outlier-robust) beyond delta;
    dl/dr = clip(r, -delta, delta)."""
    target = pred._operand(target)
    r = pred.data - target.data
    abs_r = np.abs(r)
    out = np.where(abs_r <= delta, 0.5 * r * r, delta * (abs_r - 0.5 * delta))

    def backward(g):
        slope = g * np.clip(r, -delta, delta)
        return (
            _unbroadcast(slope, pred.shape) if pred.requires_grad else None,
            _unbroadcast(-slope, target.shape) if target.requires_grad else None,
        )

    return make_op(out, (pred, target), backward)


# ---------------------------------------------------------------------------------------------------
# The trajectory-prediction head and its loss, built from the ops above.


def split_modes(out: Tensor, modes: int, steps: int) -> tuple[Tensor, Tensor]:
    """Split a head output (B, modes*steps*2 + modes [+ anything after, e.g. the scales of
    tinypred.model]) into pred (B, modes, steps, 2) and logits (B, modes)."""
    n_traj = modes * steps * 2
    return out[:, :n_traj].reshape(out.shape[0], modes, steps, 2), out[:, n_traj : n_traj + modes]


def wta_loss(
    pred: Tensor,
    logits: Tensor,
    gt: ArrayLike,
    ce_weight: float = 1.0,
    reg: Regression = "l2",
    delta: float = 1.0,
) -> Tensor:
    """Winner-take-all loss on Tensors; the same definition as ``handgrad.wta_loss``.

    pred: (B, K, T, 2), logits: (B, K), gt: (B, T, 2) (data, no gradient). The winner is the mode with
    the lowest ADE; loss = mean_b [mean over T*2 of reg(pred[b, winner] - gt[b]) + ce_weight * CE].
    """
    gt = np.asarray(gt, dtype=pred.dtype)
    rows = np.arange(pred.shape[0])
    winner = winning_mode(pred.data, gt)  # a discrete choice: no gradient flows through it
    target = gt[:, None]
    if reg == "l2":
        elementwise = (pred - target) ** 2
    elif reg == "l1":
        elementwise = (pred - target).abs()
    elif reg == "huber":
        elementwise = huber(pred, target, delta)
    else:
        raise ValueError(f"reg must be 'l2', 'l1' or 'huber', got {reg!r}")
    # Regress every mode, then pick the winner's row of a (B, K) table: a gather on B*K scalars is much
    # cheaper to differentiate (np.add.at) than one on B whole (T, 2) trajectories.
    regression = elementwise.mean(axis=(2, 3))[rows, winner].mean()
    cross_entropy = -logits.log_softmax(axis=1)[rows, winner].mean()
    return regression + ce_weight * cross_entropy


# ---------------------------------------------------------------------------------------------------
# Modules.


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


# ---------------------------------------------------------------------------------------------------
# Optimizers: the update rules of torch.optim (default, single-tensor code path), in place on .data.


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


# ---------------------------------------------------------------------------------------------------
# Gradient checking.


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
