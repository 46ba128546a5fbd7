"""tinypred.autodiff against torch autograd and central differences, plus the lectures' worked examples."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinypred import autodiff as ad
from tinypred import dataset
from tinypred import losses as tp_losses
from tinypred.autodiff import Tensor
from tinypred.encoding import features
from tinypred.gradcheck_battery import OP_CASES, case_inputs, check_op, run_gradcheck_battery, upstream_for
from tinypred.losses import LossConfig
from tinypred.model import ModelConfig, TrajectoryMLP
from tinypred.train import TrainConfig, make_optimizer


def raw_arrays(data: st.DataObject, shapes: tuple[tuple[int, ...], ...]) -> list[np.ndarray]:
    """Hypothesis-drawn float64 arrays with values in [-3, 3] (a case's domain then moves them off kinks)."""
    elements = st.floats(-3, 3, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return [data.draw(hnp.arrays(np.float64, shape, elements=elements)) for shape in shapes]


# --- every op: torch autograd and central differences ------------------------------------------


@pytest.mark.parametrize("case", OP_CASES, ids=lambda c: c.name)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_op_matches_torch_and_central_differences(case, data):
    row = check_op(case, case.domain(*raw_arrays(data, case.shapes)))
    assert row["passed"], row


def test_battery_rows_all_pass():
    rows = run_gradcheck_battery()
    assert {row["op"] for row in rows} >= {case.name for case in OP_CASES}
    failed = [row for row in rows if not row["passed"]]
    assert not failed, failed
    assert all(set(row) >= {"op", "worst_rel_error", "passed"} for row in rows)


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


# --- the graph: broadcasting, fan-out, sharing, accumulation, no_grad ----------------------------


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


def test_no_grad_records_nothing_and_restores():
    x = Tensor(np.ones(2), requires_grad=True)
    with ad.no_grad():
        y = (x * 2).exp()
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()
    with pytest.raises(KeyError), ad.no_grad():
        raise KeyError  # an exception inside still restores recording
    assert (x * 2).requires_grad


def test_backward_seed_and_its_errors():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="seed"):
        (x * 2).backward()
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


# --- gradcheck itself ----------------------------------------------------------------------------


def test_gradcheck_catches_a_broken_derivative():
    def tanh_right(x: Tensor) -> Tensor:
        out = np.tanh(x.data)
        return ad.make_op(out, (x,), lambda g: (g * (1 - out * out),))

    def tanh_broken(x: Tensor) -> Tensor:
        out = np.tanh(x.data)
        return ad.make_op(out, (x,), lambda g: (g * (1 - out),))  # forgot the square

    x0 = np.array([[0.3, -1.2], [2.0, 0.7]])
    assert ad.gradcheck(lambda x: tanh_right(x).sum(), [x0]).passed
    result = ad.gradcheck(lambda x: tanh_broken(x).sum(), [x0])
    assert not result.passed
    i = result.index
    assert result.analytic == pytest.approx(1 - np.tanh(x0[i]))
    assert result.numeric == pytest.approx(1 - np.tanh(x0[i]) ** 2, rel=1e-8)


def test_compare_gradients_reports_the_worst_element():
    analytic = [np.array([1.0, 2.0]), np.array([[0.0, 5.0]])]
    reference = [np.array([1.0, 2.0 + 1e-9]), np.array([[0.0, 4.0]])]
    result = ad.compare_gradients(analytic, reference, tol=1e-6)
    assert (result.passed, result.input, result.index) == (False, 1, (0, 1))
    assert (result.analytic, result.numeric, result.rel_error) == (5.0, 4.0, pytest.approx(0.2))
    both_zero = ad.compare_gradients([np.zeros(2)], [np.zeros(2)])
    assert both_zero.passed and both_zero.rel_error == 0.0
    assert not ad.compare_gradients([np.array([np.nan])], [np.array([1.0])]).passed


# --- lectures' worked examples --------------------------------------------------------------------


def test_lecture_002_relu_net_gradients_48_and_12():
    # 1-2-1 ReLU net without biases: x = 3, w1 = [4, -2], w2 = [1, 0], y = 10, C = (y_hat - y)^2.
    w1 = Tensor([4.0, -2.0], requires_grad=True)
    w2 = Tensor([1.0, 0.0], requires_grad=True)
    hidden = (w1 * 3.0).relu()  # [12, 0]
    y_hat = (w2 * hidden).sum().relu()  # 12
    loss = (y_hat - 10.0) ** 2
    loss.backward()
    assert (y_hat.item(), loss.item()) == (12.0, 4.0)
    np.testing.assert_array_equal(w2.grad, [48.0, 0.0])  # 2 (12 - 10) * h
    np.testing.assert_array_equal(w1.grad, [12.0, 0.0])  # 2 (12 - 10) * w2 * relu'(w1 x) * x


# Lecture 004's 2-2-1 tanh network after one SGD step with lr 0.2, computed in float64. The slide
# rounds them to W0 = [[1.02, -3.0], [0.17, 1.0]] and W1 = [1.02, -0.989]. (Its line for dL/dW1 writes
# x2 * (-0.1186) where dL/dx3 = -0.1869 is meant: -0.113 and -0.054 are x2 * -0.1869. It also writes
# dL/dW0 as x0 dL/dx1, the transpose of the W0-shaped gradient below, and transposes it back in the update.)
LECTURE_004_W0 = [[1.0237322576259025, -2.9976267742374096], [0.16578397427257452, 0.9965783974272574]]
LECTURE_004_W1 = [1.0225966869149203, -0.9891081223268791]
LECTURE_004_GRAD_W0 = [
    [-0.11866128812951282, -0.01186612881295128],
    [0.17108012863712752, 0.01710801286371275],
]
LECTURE_004_GRAD_W1 = [-0.11298343457460214, -0.05445938836560459]


def test_lecture_004_tanh_net_one_sgd_step():
    w0 = Tensor([[1.0, -3.0], [0.2, 1.0]], requires_grad=True)
    w1 = Tensor([1.0, -1.0], requires_grad=True)
    x0, y = np.array([1.0, 0.1]), 0.5
    x3 = w1 @ (w0 @ x0).tanh()  # x1 = W0 x0 = [0.7, 0.3], x2 = tanh(x1), x3 = W1 x2
    loss = 0.5 * (x3 - y) ** 2
    loss.backward()
    assert x3.item() == pytest.approx(0.3130551646655724, rel=1e-15)
    assert round(x3.item() - y, 4) == -0.1869 and round(loss.item(), 3) == 0.017
    np.testing.assert_allclose(w0.grad, LECTURE_004_GRAD_W0, rtol=1e-14)
    np.testing.assert_allclose(w1.grad, LECTURE_004_GRAD_W1, rtol=1e-14)
    ad.SGD([w0, w1], lr=0.2).step()
    np.testing.assert_allclose(w0.data, LECTURE_004_W0, rtol=1e-15)
    np.testing.assert_allclose(w1.data, LECTURE_004_W1, rtol=1e-15)
    np.testing.assert_array_equal(np.round(w0.data, 2), [[1.02, -3.0], [0.17, 1.0]])
    assert (round(w1.data[0], 2), round(w1.data[1], 3)) == (1.02, -0.989)


# --- modules and optimizers against torch ----------------------------------------------------------


def torch_copy(mlp: ad.MLP, activation: torch.nn.Module) -> torch.nn.Sequential:
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
    mlp = ad.MLP([5, 7, 6, 3], activation, "xavier", rng)
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
    layer = ad.Linear(400, 200, init, np.random.default_rng(0))
    assert layer.weight.shape == (400, 200) and np.all(layer.bias.data == 0)
    assert layer.weight.data.std() == pytest.approx(std, rel=0.02)
    with pytest.raises(ValueError, match="init"):
        ad.Linear(2, 2, "uniform")


def test_module_parameters_and_zero_grad():
    mlp = ad.MLP([3, 4, 2], rng=np.random.default_rng(0))
    params = mlp.parameters()
    assert [p.shape for p in params] == [(3, 4), (4,), (4, 2), (2,)]
    mlp(Tensor(np.ones((1, 3)))).sum().backward()
    assert all(p.grad is not None for p in params)
    mlp.zero_grad()
    assert all(p.grad is None for p in params)
    with pytest.raises(ValueError, match="activation"):
        ad.MLP([2, 2], "gelu")


OPTIMIZERS = {
    "sgd": (lambda p: ad.SGD(p, lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    "sgd momentum wd": (
        lambda p: ad.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2),
    ),
    "adam": (lambda p: ad.Adam(p, lr=1e-2), lambda p: torch.optim.Adam(p, lr=1e-2)),
    "adam wd": (
        lambda p: ad.Adam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2),
        lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2),
    ),
    "adamw": (
        lambda p: ad.AdamW(p, lr=1e-2, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    ),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_trajectory_matches_torch(name):
    make_engine, make_torch = OPTIMIZERS[name]
    rng = np.random.default_rng(2)
    mlp = ad.MLP([4, 8, 8, 2], "tanh", "xavier", rng)
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
    opt = ad.Adam([used, unused], lr=0.1)
    (used * 2).sum().backward()
    opt.step()
    assert used.data[0] == pytest.approx(0.9) and unused.data[0] == 1.0


# --- the tiny trajectory predictor, trained by the engine and by torch ----------------------------


def test_trajectory_predictor_trains_exactly_like_torch(small_dataset):
    """The project's own model (tinypred.model, a smaller config), loss (tinypred.losses: WTA + CE) and
    optimizer (tinypred.train.make_optimizer: AdamW), on real encoded scenes, in float64 -- and the same
    network built from engine Tensors: after 50 steps on the same batches the parameters agree."""
    ds = dataset.load(small_dataset)
    x_all = ds.normalizer(features(ds.train)).astype(np.float64)
    y_all = ds.train.future.astype(np.float64)
    cfg = TrainConfig(
        lr=3e-3,
        weight_decay=1e-4,
        model=ModelConfig(modes=3, width=32, depth=2),
        loss=LossConfig(kind="wta", regression="l2", ce_weight=0.5),
    )
    torch.manual_seed(0)
    model = TrajectoryMLP(x_all.shape[1], y_all.shape[1], cfg.model).double()
    torch_opt = make_optimizer(model, cfg)
    # The engine twin: the same weights (transposed: the engine stores W as (in, out)).
    layers = [m for _, m in model.linear_layers()]
    mlp = ad.MLP([layers[0].in_features, *(m.out_features for m in layers)], "relu")
    for mine, theirs in zip(mlp.layers, layers, strict=True):
        mine.weight.data[...] = theirs.weight.detach().numpy().T
        mine.bias.data[...] = theirs.bias.detach().numpy()
    opt = ad.AdamW(mlp.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    k, steps = cfg.model.modes, y_all.shape[1]
    rng = np.random.default_rng(3)
    losses, torch_losses = [], []
    for _ in range(50):
        idx = rng.choice(len(x_all), 16, replace=False)
        x, gt = x_all[idx], y_all[idx]

        opt.zero_grad()
        pred, logits = ad.split_modes(mlp(Tensor(x)), k, steps)
        loss = ad.wta_loss(pred, logits, gt, cfg.loss.ce_weight, reg="l2")
        loss.backward()
        opt.step()
        losses.append(loss.item())

        torch_opt.zero_grad()
        torch_loss, _ = tp_losses.loss(model(torch.from_numpy(x)), torch.from_numpy(gt), cfg.loss)
        torch_loss.backward()
        torch_opt.step()
        torch_losses.append(torch_loss.item())

    np.testing.assert_allclose(losses, torch_losses, rtol=1e-10)
    for mine, theirs in zip(mlp.layers, layers, strict=True):
        np.testing.assert_allclose(mine.weight.data, theirs.weight.detach().numpy().T, rtol=0, atol=1e-8)
        np.testing.assert_allclose(mine.bias.data, theirs.bias.detach().numpy(), rtol=0, atol=1e-8)
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])


# --- the theory exercises, measured ---------------------------------------------------------------


def test_l2_pulls_a_single_prediction_to_the_mean_and_min_over_modes_does_not():
    """Half the futures veer to y = +1, half to y = -1. One L2-trained prediction converges to their
    mean, y = 0, which no agent drives; two modes under the winner-take-all loss find both."""
    steps, batch = 4, 8
    t = np.arange(1.0, steps + 1)
    left, right = np.stack([t, np.ones(steps)], -1), np.stack([t, -np.ones(steps)], -1)
    gt = np.stack([left, right] * (batch // 2))  # (B, T, 2)
    found = {}
    for modes in (1, 2):  # with one mode, wta_loss is plain L2 and its CE term is log(1) = 0
        init = np.zeros((1, modes, steps, 2))
        init[0, :, :, 1] = np.linspace(0.1, -0.1, modes)[:, None]  # break the symmetry between modes
        pred, logits = Tensor(init, requires_grad=True), Tensor(np.zeros((1, modes)), requires_grad=True)
        opt = ad.Adam([pred, logits], lr=0.05)
        for _ in range(300):
            opt.zero_grad()
            ad.wta_loss(pred + np.zeros((batch, 1, 1, 1)), logits + np.zeros((batch, 1)), gt).backward()
            opt.step()
        found[modes] = pred.data[0]
    np.testing.assert_allclose(found[1], [(left + right) / 2], atol=1e-3)
    np.testing.assert_allclose(found[2], [left, right], atol=1e-3)


def test_overfits_a_single_batch():
    """The first debugging step: a model that cannot memorise 8 examples has a bug (or a bad lr)."""
    rng = np.random.default_rng(4)
    modes, steps = 3, 5
    mlp = ad.MLP([32, 64, 64, modes * steps * 2 + modes], "relu", "kaiming", rng)
    x, gt = rng.standard_normal((8, 32)), np.cumsum(rng.standard_normal((8, steps, 2)), axis=1)
    opt = ad.Adam(mlp.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        opt.zero_grad()
        loss = ad.wta_loss(*ad.split_modes(mlp(Tensor(x)), modes, steps), gt)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 1.0 and losses[-1] < 1e-3


@pytest.mark.parametrize(("lr", "stable"), [(0.45, True), (0.55, False)])
def test_gradient_descent_on_a_quadratic_is_stable_iff_lr_below_2_over_L(lr, stable):
    """f = (4 a^2 + b^2) / 2 has Hessian eigenvalues L = 4 and 1: each GD step multiplies a by (1 - 4 lr),
    which shrinks iff lr < 2 / L = 0.5."""
    theta = Tensor([1.0, 1.0], requires_grad=True)
    opt = ad.SGD([theta], lr=lr)
    for _ in range(50):
        opt.zero_grad()
        (0.5 * (np.array([4.0, 1.0]) * theta * theta).sum()).backward()
        opt.step()
    np.testing.assert_allclose(theta.data, [(1 - 4 * lr) ** 50, (1 - lr) ** 50], rtol=1e-10)
    assert bool(abs(theta.data[0]) < 1e-3) == stable


def test_gradcheck_command(tmp_path):
    proc = run_cli("gradcheck", "--json", str(tmp_path / "g.json"), check=True)
    assert "all 47 checks passed" in proc.stdout and "matmul" in proc.stdout
    rows = json.loads((tmp_path / "g.json").read_text())
    assert len(rows) == 47 and all(r["passed"] for r in rows)
