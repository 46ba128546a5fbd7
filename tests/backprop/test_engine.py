"""The engine's ops against torch autograd (float64) and central differences: every battery case, float32,
the graph (broadcasting, fan-out, no_grad), the kinks, pow at 0, empty log_softmax, every indexing form,
and random shapes."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from backprop_strategies import VALUES, raw_arrays
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinypred.backprop import Tensor, huber, make_op, no_grad, numerics, wta_loss
from tinypred.backprop.battery import OP_CASES, case_inputs, check_op, torch_wta_loss, upstream_for


def torch_grads(fn, arrays: list[np.ndarray], upstream: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """fn's value and the gradients of sum(upstream * fn(*arrays)) in torch, float64."""
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(torch.from_numpy(np.asarray(upstream, dtype=np.float64)))
    return out.detach().numpy(), [
        t.grad.numpy() if t.grad is not None else np.zeros_like(a)
        for t, a in zip(tensors, arrays, strict=True)
    ]


def engine_grads(fn, arrays: list[np.ndarray], upstream: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The same through the engine; NumPy warnings are errors (an op must not leak them)."""
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fn(*tensors)
        out.backward(upstream)
    return out.data, [t.grad if t.grad is not None else np.zeros_like(t.data) for t in tensors]


def assert_matches_torch(fn, torch_fn, arrays: list[np.ndarray], rtol: float = 1e-12, seed: int = 0) -> None:
    """Values and gradients (for a random upstream) of ``fn`` on Tensors equal ``torch_fn``'s."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    with torch.no_grad():
        shape = tuple(torch_fn(*(torch.from_numpy(a) for a in arrays)).shape)
    upstream = np.random.default_rng(seed).standard_normal(shape)
    expected, expected_grads = torch_grads(torch_fn, arrays, upstream)
    value, grads = engine_grads(fn, arrays, upstream)
    assert value.shape == expected.shape
    np.testing.assert_allclose(value, expected, rtol=rtol, atol=1e-14)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(grad, expected_grad, rtol=rtol, atol=1e-13)


# --- every op of the battery: torch autograd and central differences ---------------------------------


@pytest.mark.parametrize("case", OP_CASES, ids=lambda c: c.name)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_op_matches_torch_and_central_differences(case, data):
    row = check_op(case, case.domain(*raw_arrays(data, case.shapes)))
    assert row["passed"], row


@pytest.mark.parametrize("case", OP_CASES, ids=lambda c: c.name)
def test_float32_stays_float32(case):
    inputs = case_inputs(case, np.random.default_rng(0))
    out64 = case.engine(*(Tensor(x) for x in inputs))
    tensors = [Tensor(x.astype(np.float32), requires_grad=True) for x in inputs]
    out = case.engine(*tensors)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.data, out64.data, rtol=1e-5, atol=1e-5)
    out.backward(upstream_for(out.shape).astype(np.float32))
    assert all(t.grad.dtype == np.float32 for t in tensors)


def test_mixing_float32_and_float64_tensors_is_an_error():
    with pytest.raises(TypeError, match="dtype mismatch"):
        Tensor(np.ones(3, np.float32)) + Tensor(np.ones(3))
    # Constants take the tensor's dtype instead of upcasting it.
    assert (Tensor(np.ones(3, np.float32)) * np.ones(3) + 2.0).dtype == np.float32
    assert Tensor([1, 2]).dtype == np.float64


def test_the_subpackage_loads_neither_torch_nor_handgrad():
    """The engine's derivatives stay independent of handgrad's, and only the battery needs torch."""
    modules = ("torch", "tinypred.backprop.handgrad", "tinypred.backprop.battery")
    code = f"import sys, tinypred.backprop; print([m for m in {modules!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


# --- the graph: broadcasting, fan-out, sharing, accumulation, no_grad ---------------------------------


def test_broadcast_gradients_sum_back_to_each_shape():
    a = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    b = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    c = Tensor(np.array([[10.0], [20.0]]), requires_grad=True)
    (a * b + c).sum().backward()
    np.testing.assert_array_equal(a.grad, [[1, 2, 3], [1, 2, 3]])
    np.testing.assert_array_equal(b.grad, [3, 5, 7])  # column sums of a
    np.testing.assert_array_equal(c.grad, [[3], [3]])  # each c is added to three elements


def test_fan_out_accumulates():
    x0 = np.array([0.5, -1.0, 2.0])
    x = Tensor(x0, requires_grad=True)
    (x * x + x.exp() * x).sum().backward()  # x feeds four products
    np.testing.assert_allclose(x.grad, 2 * x0 + np.exp(x0) * (1 + x0), rtol=1e-15)


def test_repeated_index_accumulates():
    x = Tensor(np.zeros(3), requires_grad=True)
    x[np.array([0, 0, 1, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad, [3, 1, 0])


def test_shared_parameter_sums_both_uses_like_torch():
    rng = np.random.default_rng(0)
    x0, w0 = rng.standard_normal((4, 3)), rng.standard_normal((3, 3))
    w = Tensor(w0, requires_grad=True)
    ((Tensor(x0) @ w).tanh() @ w).sum().backward()  # the same W in two layers
    wt = torch.tensor(w0, requires_grad=True)
    (torch.tanh(torch.tensor(x0) @ wt) @ wt).sum().backward()
    np.testing.assert_allclose(w.grad, wt.grad.numpy(), rtol=1e-12)


def test_grad_accumulates_over_backward_calls_until_zero_grad():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    loss.backward()
    np.testing.assert_array_equal(x.grad, 2 * 2 * x.data)
    x.zero_grad()
    assert x.grad is None


def test_only_leaves_keep_grad():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    hidden = x * 3.0
    hidden.relu().sum().backward()
    assert hidden.grad is None and not hidden.is_leaf
    np.testing.assert_array_equal(x.grad, [3.0, 0.0])


def test_a_long_chain_does_not_hit_the_recursion_limit():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0 + 1.0
    y.sum().backward()
    assert x.grad.tolist() == [1.0] and y.item() == 5001.0


def test_no_grad_records_nothing_and_restores():
    x = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        y = (x * 2).exp()
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()
    with pytest.raises(KeyError), no_grad():
        raise KeyError  # an exception inside still restores recording
    assert (x * 2).requires_grad


def test_backward_seed_and_its_errors():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="seed"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="seed gradient of shape"):
        (x * 2).backward(np.ones(2))
    (x * 2).backward(np.array([1.0, 0.0, -1.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, -2.0])


def test_stable_functions_at_extreme_inputs():
    x0 = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    xt = torch.tensor(x0, requires_grad=True)
    for name, reference in (
        ("sigmoid", torch.sigmoid),
        ("softplus", F.softplus),
        ("log_softmax", lambda t: F.log_softmax(t, dim=0)),
    ):
        x = Tensor(x0, requires_grad=True)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            out = getattr(x, name)()
            out.backward(np.arange(1.0, 6.0))
        expected = reference(xt)
        expected.backward(torch.arange(1.0, 6.0, dtype=torch.float64))
        np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-8, atol=1e-300)
        xt.grad = None


# --- x ** p at and away from 0 ---------------------------------------------------------------------

POW_AT = np.array([0.0, -0.0, 1e-300, 0.3, 1.5, -2.0])


@pytest.mark.parametrize("exponent", [0, 1, 2, 0.5, -1, 0.0, 3, -1.5])
def test_pow_matches_torch_at_and_away_from_zero(exponent):
    """torch: d(x^0)/dx = 0 everywhere (the formula 0 * 0^-1 would be NaN at 0); at 0 the exponents 0.5 and
    -1 give +inf and -inf, and a negative base with a fractional exponent NaN; the engine matches all of
    it exactly, and no NumPy warning escapes (engine_grads turns warnings into errors)."""
    upstream = np.array([1.0, 2.0, -0.5, 1.0, 3.0, 0.25])
    value, (grad,) = engine_grads(lambda x: x**exponent, [POW_AT], upstream)
    expected, (expected_grad,) = torch_grads(lambda x: x**exponent, [POW_AT], upstream)
    np.testing.assert_allclose(value, expected, rtol=1e-15, atol=0)  # inf == inf and NaN == NaN here
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-15, atol=0)
    signed = ~np.isnan(grad)  # -0.0 and -inf keep their sign (a NaN's sign bit means nothing)
    np.testing.assert_array_equal(np.signbit(grad[signed]), np.signbit(expected_grad[signed]))
    if exponent == 0:
        assert np.all(grad == 0)


@settings(max_examples=40, deadline=None)
@given(
    x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=4), elements=st.just(0.0) | VALUES),
    exponent=st.sampled_from([0, 1, 2, 3, 0.5, -1, -2, 1.5, -0.5]),
)
def test_pow_matches_torch_on_drawn_inputs_with_zeros(x, exponent):
    upstream = np.random.default_rng(1).uniform(0.5, 2.0, x.shape)  # nonzero: 0 * inf would be NaN
    value, (grad,) = engine_grads(lambda t: t**exponent, [x], upstream)
    expected, (expected_grad,) = torch_grads(lambda t: t**exponent, [x], upstream)
    np.testing.assert_allclose(value, expected, rtol=1e-14, atol=0)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-14, atol=0)


# --- log_softmax over an empty axis ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "axis"), [((3, 0), -1), ((3, 0), 1), ((0,), 0), ((0, 4), 0), ((2, 0, 3), 1)]
)
def test_log_softmax_of_an_empty_array_is_empty_like_torch(shape, axis):
    x0 = np.zeros(shape)
    value, (grad,) = engine_grads(lambda x: x.log_softmax(axis=axis), [x0], np.zeros(shape))
    expected, (expected_grad,) = torch_grads(lambda x: F.log_softmax(x, dim=axis), [x0], np.zeros(shape))
    assert value.shape == expected.shape == shape and grad.shape == expected_grad.shape == shape
    assert numerics.log_softmax(x0, axis).shape == shape
    assert numerics.log_softmax(x0.astype(np.float32), axis).dtype == np.float32


# --- kinks: the engine takes torch's subgradient -------------------------------------------------------


_TIE_GT = np.random.default_rng(5).standard_normal((2, 3, 2))
KINKS = {  # the engine op, its torch twin, inputs exactly at the kink (and a few away from it)
    "relu at 0": (lambda x: x.relu(), torch.relu, [np.array([0.0, -0.0, 1.0, -1.0])]),
    "abs at 0": (lambda x: x.abs(), torch.abs, [np.array([0.0, -0.0, 1.0, -1.0])]),
    "huber at 0 and +-delta": (
        lambda p, t: huber(p, t, 0.5),
        lambda p, t: F.huber_loss(p, t, reduction="none", delta=0.5),
        [np.array([0.0, 0.5, -0.5, 1.5, -1.0]), np.array([0.0, 0.0, 0.0, 1.0, -0.5])],
    ),
    "max: a full tie": (lambda x: x.max(), torch.amax, [np.full((2, 3), 1.5)]),
    "max: ties per row": (
        lambda x: x.max(axis=1),
        lambda x: x.amax(dim=1),
        [np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-1.0, 0.0, -2.0, -0.0]])],
    ),
    "max: ties over two axes, keepdims": (
        lambda x: x.max(axis=(0, 2), keepdims=True),
        lambda x: x.amax(dim=(0, 2), keepdim=True),
        [np.array([[[1.0, 0.0], [2.0, 2.0]], [[1.0, -1.0], [0.0, 2.0]]])],
    ),
    "wta_loss: two modes tie on ADE (the winner is the first, as torch's argmin)": (
        lambda p, lg: wta_loss(p, lg, _TIE_GT, reg="l1"),
        lambda p, lg: torch_wta_loss(p, lg, torch.from_numpy(_TIE_GT), reg="l1"),
        [np.repeat(np.random.default_rng(4).standard_normal((2, 1, 3, 2)), 2, axis=1), np.zeros((2, 2))],
    ),
    "l1 at a zero residual": (
        lambda p, t: (p - t).abs().mean(),
        lambda p, t: F.l1_loss(p, t),
        [np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 1.0])],
    ),
}


@pytest.mark.parametrize("name", KINKS)
def test_kinks_take_torchs_subgradient(name):
    fn, torch_fn, arrays = KINKS[name]
    assert_matches_torch(fn, torch_fn, arrays, rtol=0)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_max_with_many_ties_matches_torch_amax(data):
    """Values from {-1, 0, 1} so that ties are the rule; the gradient is split evenly, as torch.amax."""
    x = data.draw(
        hnp.arrays(
            np.float64,
            hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
            elements=st.sampled_from([-1.0, 0.0, 1.0]),
        )
    )
    axis = data.draw(st.none() | hnp.valid_tuple_axes(x.ndim, min_size=1) | st.integers(-x.ndim, x.ndim - 1))
    keepdims = data.draw(st.booleans())
    dim = axis if axis is not None else tuple(range(x.ndim))
    assert_matches_torch(
        lambda t: t.max(axis=axis, keepdims=keepdims),
        lambda t: torch.amax(t, dim=dim, keepdim=keepdims),
        [x],
        rtol=0,
    )


# --- indexing: every form NumPy supports ------------------------------------------------------------


def torch_index(xt: torch.Tensor, index: object) -> torch.Tensor:
    """``xt[index]`` in torch. torch rejects negative slice steps, so an index with one (only such an index)
    is applied as a gather of the flat positions that NumPy's indexing selects: torch then differentiates
    a gather, which sums repeated positions."""
    parts = index if isinstance(index, tuple) else (index,)
    if any(isinstance(p, slice) and p.step is not None and p.step < 0 for p in parts):
        positions = np.arange(xt.numel()).reshape(tuple(xt.shape))[index]
        return xt.reshape(-1)[torch.from_numpy(np.array(positions))]  # a copy: no negative strides
    return xt[tuple(torch.from_numpy(p) if isinstance(p, np.ndarray) else p for p in parts)]


def assert_index_matches_torch(x: np.ndarray, index: object) -> None:
    assert_matches_torch(lambda t: t[index], lambda t: torch_index(t, index), [x], rtol=1e-15)


_X = np.random.default_rng(3).standard_normal((4, 5, 3))
INDEX_FORMS = {
    "int": 2,
    "negative int": -1,
    "ints in every axis": (1, -2, 0),
    "slice": slice(1, 3),
    "slices with steps": (slice(None, None, 2), slice(4, 0, -2)),
    "negative step": slice(None, None, -1),
    "negative step, negative bounds": (slice(-1, -4, -1), 0),
    "None": (None, 1),
    "None, Ellipsis": (0, Ellipsis, None),
    "Ellipsis first": (Ellipsis, 1),
    "integer array, repeated": np.array([0, 2, 2, 3]),
    "integer array, negative": np.array([-1, -1, 0]),
    "2-D integer array": np.array([[0, 1], [1, 1]]),
    "integer list": [1, 1, 3],
    "integer arrays in two axes": (np.array([0, 1, 1]), np.array([2, 2, 0])),
    "broadcast integer arrays": (np.array([[0], [3]]), np.array([1, 1, 4])),
    "integer arrays apart (their axis goes first)": (np.array([0, 1, 1]), slice(None), np.array([2, 2, 0])),
    "boolean mask, one axis": np.array([True, False, True, True]),
    "boolean mask, two axes": _X[..., 0] > 0,
    "boolean mask, all axes": _X > 0.5,
    "boolean mask and slice": (np.array([True, False, True, True]), slice(0, 2)),
    "integer array and slice": (np.array([0, 0, 3]), slice(1, 4)),
    "slice and integer array": (slice(None), np.array([4, 4, 0])),
    "int and integer array": (1, np.array([0, 0, 2])),
    "Ellipsis and integer array": (Ellipsis, np.array([2, 0, 2])),
    "None and integer array": (None, np.array([3, 3])),
    "empty integer array": np.array([], dtype=np.int64),
}


@pytest.mark.parametrize("name", INDEX_FORMS)
def test_every_index_form_matches_torch(name):
    assert_index_matches_torch(_X, INDEX_FORMS[name])


def test_negative_step_matches_torch_flip():
    x0 = np.arange(12.0).reshape(3, 4)
    assert_matches_torch(lambda t: t[::-1, ::-2], lambda t: t.flip(0, 1)[:, ::2], [x0])


SHAPES_2D_UP = hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_drawn_basic_indices_match_torch(data):
    """ints (negative too), slices (negative steps too), None and Ellipsis, as hypothesis combines them."""
    x = data.draw(hnp.arrays(np.float64, SHAPES_2D_UP, elements=VALUES))
    assert_index_matches_torch(x, data.draw(hnp.basic_indices(x.shape, allow_newaxis=True)))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_drawn_advanced_indices_match_torch(data):
    """Integer arrays (repeats, negatives, 1-D and 2-D, in every axis or the first only, then a drawn
    basic index for the rest) and boolean masks over leading axes."""
    x = data.draw(hnp.arrays(np.float64, SHAPES_2D_UP, elements=VALUES))
    kind = data.draw(st.sampled_from(["all axes", "first axis + slices", "mask"]))
    if kind == "all axes":
        index = data.draw(hnp.integer_array_indices(x.shape, result_shape=hnp.array_shapes(max_dims=2)))
    elif kind == "first axis + slices":
        n = x.shape[0]
        first = data.draw(
            hnp.arrays(np.int64, hnp.array_shapes(max_dims=2, max_side=5), elements=st.integers(-n, n - 1))
        )
        rest = tuple(data.draw(st.slices(side)) for side in x.shape[1:])
        index = (first, *rest)
    else:
        axes = data.draw(st.integers(1, x.ndim))
        index = data.draw(hnp.arrays(np.bool_, x.shape[:axes]))
    assert_index_matches_torch(x, index)


# --- random shapes: broadcasting, element-wise ops, reductions, matmul ------------------------------

BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "huber": (
        lambda a, b: huber(a, b, 1.0),
        lambda a, b: F.huber_loss(*torch.broadcast_tensors(a, b), reduction="none", delta=1.0),
    ),
}


@settings(max_examples=60, deadline=None)
@given(data=st.data(), op=st.sampled_from(sorted(BINARY)))
def test_broadcast_ops_on_random_shapes_match_torch(data, op):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=3)).input_shapes
    a, b = raw_arrays(data, shapes)
    if op == "div":
        b = np.where(b >= 0, 1.0, -1.0) * (0.5 + np.abs(b))  # keep the divisor away from 0
    assert_matches_torch(*BINARY[op], [a, b])


UNARY = {
    "neg": (lambda x: -x, lambda x: -x),
    "exp": (lambda x: x.exp(), torch.exp),
    "log of |x| + 0.5": (lambda x: (x.abs() + 0.5).log(), lambda x: torch.log(x.abs() + 0.5)),
    "tanh": (lambda x: x.tanh(), torch.tanh),
    "relu": (lambda x: x.relu(), torch.relu),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid),
    "softplus": (lambda x: x.softplus(), F.softplus),
    "abs": (lambda x: x.abs(), torch.abs),
    "square": (lambda x: x**2, lambda x: x**2),
    "transpose": (lambda x: x.T, lambda x: x.permute(tuple(reversed(range(x.ndim))))),
    "reshape to 1-D": (lambda x: x.reshape(-1), lambda x: x.reshape(-1)),
}


@settings(max_examples=60, deadline=None)
@given(data=st.data(), op=st.sampled_from(sorted(UNARY)))
def test_elementwise_and_shape_ops_on_random_shapes_match_torch(data, op):
    x = data.draw(
        hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=4, max_side=3), elements=VALUES)
    )
    assert_matches_torch(*UNARY[op], [x])


@settings(max_examples=80, deadline=None)
@given(data=st.data(), op=st.sampled_from(["sum", "mean", "max", "log_softmax"]))
def test_reductions_over_random_axes_match_torch(data, op):
    x = data.draw(
        hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=3), elements=VALUES)
    )
    if op == "log_softmax":
        axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
        assert_matches_torch(lambda t: t.log_softmax(axis=axis), lambda t: F.log_softmax(t, dim=axis), [x])
        return
    # None, an int or a non-empty tuple (NumPy reduces nothing over axis=(), torch everything).
    axis = data.draw(st.none() | st.integers(-x.ndim, x.ndim - 1) | hnp.valid_tuple_axes(x.ndim, min_size=1))
    keepdims = data.draw(st.booleans())
    dim = tuple(range(x.ndim)) if axis is None else axis
    reference = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax}[op]
    assert_matches_torch(
        lambda t: getattr(t, op)(axis=axis, keepdims=keepdims),
        lambda t: reference(t, dim=dim, keepdim=keepdims),
        [x],
    )


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_matmul_with_random_batch_dims_matches_torch(data):
    """1-D operands on either side and broadcast batch dimensions, as np.matmul's signature allows."""
    shapes = data.draw(
        hnp.mutually_broadcastable_shapes(signature="(m?,n),(n,p?)->(m?,p?)", max_dims=4, max_side=3)
    ).input_shapes
    assert_matches_torch(lambda a, b: a @ b, torch.matmul, raw_arrays(data, shapes))


def test_make_op_builds_new_ops():
    """A new op is a forward value and its backward closure; the engine does the rest."""

    def cube(x: Tensor) -> Tensor:
        return make_op(x.data**3, (x,), lambda g: (3 * g * x.data**2,))

    assert_matches_torch(cube, lambda t: t**3, [np.array([-1.0, 0.5, 2.0])])
