"""A small reverse-mode autodiff engine on NumPy arrays, micrograd-style (derivations: docs/derivations.md).

Every op computes its output and, beside it, a closure ``backward(g)``: dL/d(output) -> dL/d(each input).
``loss.backward()`` walks the graph once in reverse topological order, summing the gradients of a node used
twice, into ``.grad`` of leaves only (as torch). float32 stays float32; mixing it with float64 is an error.
At a kink the subgradient is torch's: relu'(0) = abs'(0) = 0, ``max`` splits evenly among ties."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from tinypred.backprop.numerics import log_softmax, sigmoid, softplus

Backward = Callable[[np.ndarray], Sequence["np.ndarray | None"]]
GradFn = Callable[[np.ndarray], np.ndarray]
Axis = int | tuple[int, ...] | None

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
    """Sum ``grad`` over the axes broadcasting added or stretched: an operand broadcast along an axis was
    used once per position on it, so its gradient is the sum over that axis (multivariate chain rule)."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    stretched = tuple(i + lead for i, n in enumerate(shape) if n == 1 and grad.shape[i + lead] != 1)
    return grad.sum(axis=tuple(range(lead)) + stretched).reshape(shape)


def _keep_axes(g: np.ndarray, axis: Axis, keepdims: bool) -> np.ndarray:
    """A reduction's output gradient with the reduced axes restored as size 1, ready to broadcast."""
    return g if axis is None or keepdims else np.expand_dims(g, axis)


class Tensor:
    """An ndarray ``data`` (float64, or float32 if given so; shares memory like ``torch.from_numpy``) and, on
    leaves that require it, ``grad`` = dL/d(data), accumulated over backward calls until ``zero_grad()``."""

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

    def backward(self, grad: ArrayLike | None = None) -> None:
        """Accumulate dself/dleaf into every leaf's ``.grad``; ``grad``: the seed dL/dself (default 1)."""
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
            if node._backward is None:  # a leaf owns .grad: a copy of g (a view others may share), then +=
                node.grad = np.array(g) if node.grad is None else np.add(node.grad, g, out=node.grad)
                continue
            for parent, parent_grad in zip(node._parents, node._backward(g), strict=True):
                if parent_grad is None or not parent.requires_grad:
                    continue
                if parent_grad.shape != parent.shape:
                    raise RuntimeError(f"gradient of shape {parent_grad.shape} for an input {parent.shape}")
                key = id(parent)  # fan-out: sum into a new array, as either term may alias another's
                pending[key] = parent_grad if key not in pending else pending[key] + parent_grad

    # -- element-wise arithmetic, broadcasting ------------------------------------------------------
    def __add__(self, other: Tensor | ArrayLike) -> Tensor:
        other = self._operand(other)
        return _binary_op(self.data + other.data, self, other, lambda g: g, lambda g: g)

    def __sub__(self, other: Tensor | ArrayLike) -> Tensor:
        other = self._operand(other)
        return _binary_op(self.data - other.data, self, other, lambda g: g, lambda g: -g)

    def __mul__(self, other: Tensor | ArrayLike) -> Tensor:
        other = self._operand(other)
        a, b = self.data, other.data
        return _binary_op(a * b, self, other, lambda g: g * b, lambda g: g * a)

    def __truediv__(self, other: Tensor | ArrayLike) -> Tensor:
        other = self._operand(other)
        b = other.data
        out = self.data / b  # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -out/b
        return _binary_op(out, self, other, lambda g: g / b, lambda g: -g * out / b)

    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return self._operand(other) - self

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return self._operand(other) / self

    def __neg__(self) -> Tensor:
        return make_op(-self.data, (self,), lambda g: (-g,))

    def __pow__(self, exponent: float) -> Tensor:
        """a^p for a Python scalar p: d/da = p a^(p-1), but exactly 0 for p = 0 (torch's; the formula gives
        0 * 0^-1 = NaN at a = 0). inf/NaN elsewhere (0^-1, (-1)^0.5) are torch's values too, so no warning."""
        if not isinstance(exponent, (int, float)):
            raise TypeError(f"only Python scalar exponents are supported, got {type(exponent).__name__}")
        a = self.data

        def power(p: float) -> np.ndarray:  # as torch, x^-0.5 is 1/sqrt(x): -inf, not IEEE pow's inf, at -0.0
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                return 1 / np.sqrt(a) if p == -0.5 else a**p

        def backward(g):
            with np.errstate(invalid="ignore"):  # a zero upstream times inf is NaN, as in torch
                return (np.zeros_like(a) if exponent == 0 else g * (exponent * power(exponent - 1)),)

        return make_op(power(exponent), (self,), backward)

    def __matmul__(self, other: Tensor | ArrayLike) -> Tensor:
        other = self._operand(other)
        a, b = self.data, other.data

        def backward(g):
            # C = A B: dA = G B^T, dB = A^T G. A 1-D operand is a row (left) or column (right) matrix, as
            # in NumPy's matmul; leading (batch) dimensions broadcast and are summed back.
            a2, b2 = a[None, :] if a.ndim == 1 else a, b[:, None] if b.ndim == 1 else b
            g2 = np.expand_dims(g, -1) if b.ndim == 1 else g  # restore the axes a 1-D operand dropped
            g2 = np.expand_dims(g2, -2) if a.ndim == 1 else g2
            grad_a = grad_b = None
            if self.requires_grad:
                grad_a = _unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
            if other.requires_grad:
                grad_b = _unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
            return grad_a, grad_b

        return make_op(a @ b, (self, other), backward)

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return self._operand(other) @ self

    # -- element-wise functions -----------------------------------------------------------------------
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
        a = self.data  # derivative 1[a > 0]: at the kink a = 0 the subgradient 0, as torch
        return make_op(np.maximum(a, 0), (self,), lambda g: (g * (a > 0),))

    def sigmoid(self) -> Tensor:
        out = sigmoid(self.data)
        return make_op(out, (self,), lambda g: (g * out * (1 - out),))

    def softplus(self) -> Tensor:
        a = self.data  # d softplus(a)/da = sigmoid(a)
        return make_op(softplus(a), (self,), lambda g: (g * sigmoid(a),))

    def abs(self) -> Tensor:
        a = self.data  # derivative sign(a): at the kink a = 0 the subgradient sign(0) = 0, as torch
        return make_op(np.abs(a), (self,), lambda g: (g * np.sign(a),))

    def log_softmax(self, axis: int = -1) -> Tensor:
        out = log_softmax(self.data, axis)  # d out_i/d x_j = [i == j] - softmax_j: g - softmax * sum(g)
        return make_op(out, (self,), lambda g: (g - np.exp(out) * g.sum(axis=axis, keepdims=True),))

    # -- reductions and shape -----------------------------------------------------------------------
    def sum(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        shape = self.shape  # every summed element receives the gradient of its sum
        out = self.data.sum(axis=axis, keepdims=keepdims)
        return make_op(out, (self,), lambda g: (np.broadcast_to(_keep_axes(g, axis, keepdims), shape),))

    def mean(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        total = self.sum(axis=axis, keepdims=keepdims)
        return total / (self.data.size // max(total.data.size, 1))

    def max(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """The maximum over ``axis`` (torch.amax). The gradient goes to the argmax; at a tie (a kink: any
        convex combination of the tied entries is a subgradient) it is split evenly among them, as torch."""
        a, out = self.data, self.data.max(axis=axis, keepdims=keepdims)

        def backward(g):
            ties = a == _keep_axes(out, axis, keepdims)
            count = ties.sum(axis=axis, keepdims=True, dtype=a.dtype)
            return (_keep_axes(g, axis, keepdims) / count * ties,)

        return make_op(out, (self,), backward)

    def reshape(self, *shape: int | tuple[int, ...]) -> Tensor:
        old = self.shape
        return make_op(self.data.reshape(*shape), (self,), lambda g: (g.reshape(old),))

    @property
    def T(self) -> Tensor:
        """All axes reversed, as ndarray.T (the transpose for a matrix)."""
        return make_op(self.data.T, (self,), lambda g: (g.T,))

    def __getitem__(self, index: object) -> Tensor:
        """Any NumPy index (ints, slices with any step, None, Ellipsis, integer arrays, boolean masks,
        mixed): the gradient goes back to the selected positions, summed where one is selected twice."""
        shape, dtype = self.shape, self.dtype
        parts = index if isinstance(index, tuple) else (index,)
        # Ints, slices, None and Ellipsis select each element at most once; integer arrays may repeat one.
        basic = all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts)

        def backward(g):
            grad = np.zeros(shape, dtype=dtype)
            if basic:
                grad[index] = g
            else:  # np.add.at sums over repeats where plain assignment would keep only the last
                np.add.at(grad, index, g)
            return (grad,)

        return make_op(self.data[index], (self,), backward)


def make_op(data: ArrayLike, parents: tuple[Tensor, ...], backward: Backward) -> Tensor:
    """The output of an op, a graph node if a parent needs a gradient. backward(g) maps dL/d(output) to one
    gradient (that parent's shape) or None per parent. Every op above is built this way; so can new ones."""
    array = np.asarray(data)  # NumPy reductions return scalars, not 0-d arrays
    out = Tensor(array, dtype=array.dtype)
    if _grad_enabled and any(p.requires_grad for p in parents):
        out.requires_grad, out._parents, out._backward = True, parents, backward
    return out


def _binary_op(data: np.ndarray, a: Tensor, b: Tensor, grad_a: GradFn, grad_b: GradFn) -> Tensor:
    """An op of two broadcast operands: grad_a(g), grad_b(g) at the output's shape, unbroadcast here."""

    def backward(g):
        return (
            _unbroadcast(grad_a(g), a.shape) if a.requires_grad else None,
            _unbroadcast(grad_b(g), b.shape) if b.requires_grad else None,
        )

    return make_op(data, (a, b), backward)


def _topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor that ``root`` depends on through gradient-carrying edges, inputs before outputs."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:  # iterative DFS: a long chain must not hit Python's recursion limit
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if p.requires_grad)
    return order
