"""The worked examples of the lectures (/work/shared/seeds 002, 003, 004), by the engine and by hand.

Every value a lecture prints is asserted at the precision it prints it: intermediate pre-activations,
activations and dL/d(node) as well as the final gradients and updates. The engine only keeps .grad on
leaves, so ``tap`` records dL/d(an intermediate node) as the backward pass goes through it (torch's
retain_grad); handgrad's blocks return dL/d(input) from each backward, so those are read directly.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from tinypred.backprop import SGD, Tensor, make_op
from tinypred.backprop import handgrad as hg


def tap(x: Tensor, grads: dict[str, np.ndarray], name: str) -> Tensor:
    """x itself, as an identity op whose backward stores dL/dx in ``grads[name]``."""

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        grads[name] = np.array(g, copy=True)
        return (g,)

    return make_op(x.data, (x,), backward)


def printed(value: float | np.ndarray, shown: float | list, decimals: int | list[int]) -> None:
    """``value`` is what the lecture shows when rounded to the ``decimals`` it shows (one number, or one
    per element of a 1-D value)."""
    if isinstance(decimals, list):
        rounded = [round(float(v), d) for v, d in zip(np.ravel(value), decimals, strict=True)]
        np.testing.assert_array_equal(rounded, shown)
    else:
        np.testing.assert_array_equal(np.round(value, decimals), shown)


def jacobian(f, x0: np.ndarray) -> np.ndarray:
    """d f(x) / d x at x0 as a (f.size, x.size) matrix, one backward pass per output element."""
    x = Tensor(x0, requires_grad=True)
    out = f(x)
    rows = []
    for i in range(out.data.size):
        seed = np.zeros(out.data.size)
        seed[i] = 1.0
        x.zero_grad()
        out.backward(seed.reshape(out.shape))
        rows.append(x.grad.reshape(-1))
    return np.array(rows)


# --- lecture 002 (recitation): the 1-2-1 ReLU net, x = 3, y = 10 -----------------------------------


def test_lecture_002_relu_net_forward_and_every_gradient():
    # w1 = (4, -2), w2 = (1, 0), no biases, an output ReLU, C = (y_hat - y)^2.
    w1 = Tensor([4.0, -2.0], requires_grad=True)
    w2 = Tensor([1.0, 0.0], requires_grad=True)
    grads: dict[str, np.ndarray] = {}
    z1 = tap(w1 * 3.0, grads, "z1")  # H_1 = W_1 x, before the ReLU
    h1 = tap(z1.relu(), grads, "h1")
    z2 = tap((w2 * h1).sum(), grads, "z2")
    y_hat = tap(z2.relu(), grads, "y_hat")
    loss = (y_hat - 10.0) ** 2
    loss.backward()
    # Forward: H_1^1 = 4 x 3 = 12, H_1^2 = -2 x 3 = -6; after ReLU 12, 0; y_hat = ReLU(1 x 12 + 0 x 0) = 12.
    np.testing.assert_array_equal(z1.data, [12.0, -6.0])
    np.testing.assert_array_equal(h1.data, [12.0, 0.0])
    assert (z2.item(), y_hat.item(), loss.item()) == (12.0, 12.0, 4.0)
    # dC/dy_hat = 2 (12 - 10) = 4; times ReLU'(12) = 1: "we have the product ... = 4 x 1 = 4".
    assert (grads["y_hat"].item(), grads["z2"].item()) == (4.0, 4.0)
    # dC/dH_1^1 = 4 x W_2^1 = 4, dC/dH_1^2 = 0 (W_2^2 = 0); the ReLU passes 4 on and blocks H_1^2 < 0.
    np.testing.assert_array_equal(grads["h1"], [4.0, 0.0])
    np.testing.assert_array_equal(grads["z1"], [4.0, 0.0])
    # dC/dw_2^1 = 4 x 1 x H_1^1 = 48, dC/dW_2^2 = 0; dC/dW_1^1 = 4 x 1 x 3 = 12, dC/dW_1^2 = 0.
    np.testing.assert_array_equal(w2.grad, [48.0, 0.0])
    np.testing.assert_array_equal(w1.grad, [12.0, 0.0])


def test_lecture_002_relu_net_by_hand_with_the_exercises():
    """The same net as blocks; plus the recitation's 'exercise for self': biases (zero, so the forward
    is unchanged) get dC/db = dC/dz, and the input gets dC/dx = sum_j W_1^j dC/dz_1^j = 4 x 4 = 16."""
    first, second = hg.Linear(1, 2), hg.Linear(2, 1)
    first.weight, second.weight = np.array([[4.0, -2.0]]), np.array([[1.0], [0.0]])
    relu1, relu2 = hg.ReLU(), hg.ReLU()
    z1 = first.forward(np.array([[3.0]]))
    h1 = relu1.forward(z1)
    y_hat = relu2.forward(second.forward(h1))
    loss, grad_y_hat = hg.l2(y_hat, np.array([[10.0]]))  # the mean over one element: (y_hat - y)^2
    np.testing.assert_array_equal(z1, [[12.0, -6.0]])
    np.testing.assert_array_equal(h1, [[12.0, 0.0]])
    assert (y_hat.item(), loss, grad_y_hat.item()) == (12.0, 4.0, 4.0)
    grad_z2 = relu2.backward(grad_y_hat)
    grad_h1 = second.backward(grad_z2)
    grad_z1 = relu1.backward(grad_h1)
    grad_x = first.backward(grad_z1)
    assert grad_z2.item() == 4.0
    np.testing.assert_array_equal(grad_h1, [[4.0, 0.0]])
    np.testing.assert_array_equal(grad_z1, [[4.0, 0.0]])
    np.testing.assert_array_equal(second.grad_weight, [[48.0], [0.0]])
    np.testing.assert_array_equal(first.grad_weight, [[12.0, 0.0]])
    np.testing.assert_array_equal(second.grad_bias, [4.0])
    np.testing.assert_array_equal(first.grad_bias, [4.0, 0.0])
    assert grad_x.item() == 16.0


def test_lecture_002_cross_entropy_example():
    # Target "dog" = class 0, model output [0.775, 0.116, 0.039, 0.070]: L = -log2(0.775) = 0.3677.
    # (The slide's sum writes log2(0.126) for the second class where the output is 0.116; its weight is
    # 0, so the value is unaffected.) The outputs sum to 1, so they are softmax(log p).
    probs = np.array([[0.775, 0.116, 0.039, 0.070]])
    assert probs.sum() == pytest.approx(1.0, abs=1e-15)
    loss_nats, grad = hg.softmax_cross_entropy(np.log(probs), np.array([0]))
    printed(loss_nats / np.log(2), 0.3677, 4)
    np.testing.assert_allclose(grad, probs - [[1, 0, 0, 0]], rtol=1e-12)  # softmax - onehot
    engine = -Tensor(np.log(probs)).log_softmax(axis=1)[0, 0] / np.log(2)
    printed(engine.item(), 0.3677, 4)


# --- lecture 003: Jacobians of a 2-layer net, vanishing/exploding gradients, the circle classifier --


def test_lecture_003_jacobians_of_a_2_layer_net():
    """d = 3, m = 4, k = 2; z = W1 x + b1, h = ReLU(z), y_hat = W2 h + b2, L = (|y_hat_1 - y_1|^2 +
    |y_hat_2 - y_2|^2) / 2. The chain dL/dW1 = dL/dy_hat dy_hat/dh dh/dz dz/dW1 has Jacobians of shapes
    1x2, 2x4, 4x4 (diagonal, 0 or 1 by the sign of z) and 4x(4x3); their product is the engine's dL/dW1."""
    rng = np.random.default_rng(0)
    w1, b1 = rng.standard_normal((4, 3)), rng.standard_normal(4)
    w2, b2 = rng.standard_normal((2, 4)), rng.standard_normal(2)
    x, y = np.array([0.5, -1.0, 2.0]), np.array([1.0, -1.0])
    z = w1 @ x + b1
    h = np.maximum(z, 0)
    y_hat = w2 @ h + b2

    def loss_of(yh: Tensor) -> Tensor:
        return 0.5 * ((yh - y) ** 2).sum()

    j_loss = jacobian(loss_of, y_hat)
    j_out = jacobian(lambda t: Tensor(w2) @ t + b2, h)
    j_relu = jacobian(lambda t: t.relu(), z)
    j_w1 = jacobian(lambda t: t @ x + b1, w1)
    assert [j.shape for j in (j_loss, j_out, j_relu, j_w1)] == [(1, 2), (2, 4), (4, 4), (4, 12)]
    np.testing.assert_array_equal(j_loss, [y_hat - y])  # dL/dy_hat_i = y_hat_i - y_i
    np.testing.assert_array_equal(j_out, w2)
    np.testing.assert_array_equal(j_relu, np.diag((z > 0).astype(float)))
    assert set(np.diag(j_relu)) == {0.0, 1.0}  # this input has both an active and an inactive unit
    np.testing.assert_array_equal(j_w1, np.kron(np.eye(4), x))  # dz_i/dW1_ij = x_j

    w1_t = Tensor(w1, requires_grad=True)
    loss_of((Tensor(w2) @ (w1_t @ x + b1).relu()) + b2).backward()
    np.testing.assert_allclose(j_loss @ j_out @ j_relu @ j_w1, w1_t.grad.reshape(1, 12), rtol=1e-14)

    # The slide's exercise: y_hat = W h + b2 with W 2x3, vectorised W: the 2x6 Jacobian
    # [[h1 h2 h3 0 0 0], [0 0 0 h1 h2 h3]], and dL/dW2 = [y_hat_1 - y_1, y_hat_2 - y_2] times it.
    h3, w = np.array([0.5, 2.0, 1.5]), rng.standard_normal((2, 3))
    j = jacobian(lambda t: t @ h3 + b2, w)
    np.testing.assert_array_equal(j, [[*h3, 0, 0, 0], [0, 0, 0, *h3]])
    w_t = Tensor(w, requires_grad=True)
    loss_of(w_t @ h3 + b2).backward()
    np.testing.assert_allclose(w_t.grad.reshape(-1), (w @ h3 + b2 - y) @ j, rtol=1e-15)


def test_lecture_003_vanishing_gradient_through_sigmoids():
    """3 sigmoid hidden layers and a sigmoid output, L = (y_hat - y)^2 / 2. The slide's recursion:
    dL/dz4 = (y_hat - y) y_hat (1 - y_hat) and dL/dz_l = (dL/dz_{l+1} W_{l+1}) * sigma'(z_l), with
    sigma' <= 0.25, so each layer can only shrink the gradient by at least 0.25 |W|. (The slide writes
    y_hat = sigma(z4) in R^m and z_i in R^m for i = 2, 3, 4, though its output is one number: W4 is 1 x m.)"""
    rng = np.random.default_rng(1)
    sizes = [3, 4, 4, 4, 1]
    weights = [rng.standard_normal((o, i)) for i, o in pairwise(sizes)]
    biases = [rng.standard_normal(o) for o in sizes[1:]]
    x, y = np.array([0.3, -0.7, 1.1]), 1.0
    grads: dict[str, np.ndarray] = {}
    a, zs = Tensor(x, requires_grad=True), []
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True), start=1):
        z = tap(Tensor(w) @ a + b, grads, f"z{layer}")
        zs.append(z.data)
        a = z.sigmoid()
    y_hat = a.item()
    (0.5 * (a - y) ** 2).sum().backward()

    def sigma_prime(z: np.ndarray) -> np.ndarray:
        s = 1 / (1 + np.exp(-z))
        return s * (1 - s)

    np.testing.assert_allclose(grads["z4"], [(y_hat - y) * y_hat * (1 - y_hat)], rtol=1e-14)
    for layer in (3, 2, 1):
        expected = (grads[f"z{layer + 1}"] @ weights[layer]) * sigma_prime(zs[layer - 1])
        np.testing.assert_allclose(grads[f"z{layer}"], expected, rtol=1e-13)
        bound = 0.25 * np.linalg.norm(weights[layer], 2) * np.linalg.norm(grads[f"z{layer + 1}"])
        assert np.linalg.norm(grads[f"z{layer}"]) <= bound
    zero = Tensor([0.0], requires_grad=True)
    zero.sigmoid().sum().backward()
    assert zero.grad.item() == 0.25  # sigma'(z) = sigma(z)(1 - sigma(z)) peaks at 0.25, at z = 0


def test_lecture_003_exploding_gradient_through_relus():
    """W_i = alpha I, b_i = 0, x > 0: every ReLU is active, y_hat = alpha^4 x, and backward multiplies
    by alpha per layer: dL/dz4 = alpha^4 x - y, dL/da3 = alpha (alpha^4 x - y), ...,
    dL/da1 = alpha^3 (alpha^4 x - y). Exact in float64 for these values."""
    alpha, x, y = 3.0, np.array([1.0, 2.0, 0.5]), np.array([1.0, -1.0, 2.0])
    w = Tensor(alpha * np.eye(3))
    grads: dict[str, np.ndarray] = {}
    a = Tensor(x, requires_grad=True)
    for layer in range(1, 5):
        z = tap(w @ a, grads, f"z{layer}")
        a = tap(z.relu(), grads, f"a{layer}")
        np.testing.assert_array_equal(a.data, alpha**layer * x)
    (0.5 * ((a - y) ** 2).sum()).backward()
    residual = alpha**4 * x - y
    np.testing.assert_array_equal(grads["z4"], residual)
    for layer, power in ((3, 1), (2, 2), (1, 3)):
        np.testing.assert_array_equal(grads[f"a{layer}"], alpha**power * residual)
        np.testing.assert_array_equal(grads[f"z{layer}"], alpha**power * residual)


def test_lecture_003_circle_classifier_first_step_line_by_line():
    """The lecture's NumPy training loop, one iteration: each line of its backward pass (dZ2 = A2 - Y,
    dW2 = A1^T dZ2, ...) against handgrad's blocks and the engine, and the shapes its comments print.
    The lecture's biases are (1, h) rows with keepdims sums; handgrad's are (h,) vectors, so dB1 and dB2
    come out 1-D here. (The lecture's Y = (...).astype(np.float32) has shape (N,), not the (N, 1) its
    comment says, and A2 - Y would then broadcast to (N, N); Y is made (N, 1) here, as the comment means.)"""
    rng = np.random.default_rng(0)
    n = 200
    x = rng.standard_normal((n, 2))
    y = ((x**2).sum(axis=1) < 1.0).astype(np.float64)[:, None]  # shape (N, 1), 0 or 1
    hidden, out = hg.Linear(2, 8, "normal001", rng), hg.Linear(8, 1, "normal001", rng)
    w1, b1, w2, b2 = hidden.weight, hidden.bias, out.weight, out.bias
    # The lecture's lines.
    z1 = x @ w1 + b1
    a1 = np.maximum(z1, 0)
    z2 = a1 @ w2 + b2
    a2 = 1 / (1 + np.exp(-z2))
    d_z2 = a2 - y
    d_w2, d_b2 = a1.T @ d_z2, d_z2.sum(axis=0)
    d_a1 = d_z2 @ w2.T
    d_z1 = d_a1 * (z1 > 0)
    d_w1, d_b1 = x.T @ d_z1, d_z1.sum(axis=0)
    shapes = [a.shape for a in (z1, a1, z2, d_z2, d_w2, d_b2, d_a1, d_z1, d_w1, d_b1)]
    assert shapes == [(n, 8), (n, 8), (n, 1), (n, 1), (8, 1), (1,), (n, 8), (n, 8), (2, 8), (8,)]

    # By hand: block by block, each backward returning dL/d(its input).
    relu, sigmoid = hg.ReLU(), hg.Sigmoid()
    prob = sigmoid.forward(out.forward(relu.forward(hidden.forward(x))))
    np.testing.assert_allclose(prob, a2, rtol=1e-15)
    _, grad_prob = hg.binary_cross_entropy(prob, y)
    hand_d_z2 = sigmoid.backward(grad_prob * n)  # the lecture's update follows the summed BCE
    hand_d_a1 = out.backward(hand_d_z2)
    hand_d_z1 = relu.backward(hand_d_a1)
    hidden.backward(hand_d_z1)
    for hand, lecture in (
        (hand_d_z2, d_z2),
        (out.grad_weight, d_w2),
        (out.grad_bias, d_b2),
        (hand_d_a1, d_a1),
        (hand_d_z1, d_z1),
        (hidden.grad_weight, d_w1),
        (hidden.grad_bias, d_b1),
    ):
        np.testing.assert_allclose(hand, lecture, rtol=1e-9, atol=1e-15)

    # The engine, with the same nodes tapped.
    grads: dict[str, np.ndarray] = {}
    params = [Tensor(p.copy(), requires_grad=True) for p in (w1, b1, w2, b2)]
    engine_z1 = tap(Tensor(x) @ params[0] + params[1], grads, "z1")
    engine_a1 = tap(engine_z1.relu(), grads, "a1")
    engine_z2 = tap(engine_a1 @ params[2] + params[3], grads, "z2")
    engine_a2 = engine_z2.sigmoid()
    (-(y * engine_a2.log() + (1 - y) * (1 - engine_a2).log()).sum()).backward()
    np.testing.assert_allclose(engine_z1.data, z1, rtol=1e-15)
    np.testing.assert_allclose(engine_z2.data, z2, rtol=1e-15)
    for engine, lecture in (
        (grads["z2"], d_z2),
        (params[2].grad, d_w2),
        (params[3].grad, d_b2),
        (grads["a1"], d_a1),
        (grads["z1"], d_z1),
        (params[0].grad, d_w1),
        (params[1].grad, d_b1),
    ):
        np.testing.assert_allclose(engine, lecture, rtol=1e-9, atol=1e-15)


def test_lecture_003_circle_classifier_engine_and_hand_agree_and_learn():
    """N=200 points, label = inside the unit circle; 2-8-1 ReLU + sigmoid, BCE, GD with lr 0.05 from
    0.01-scaled weights, 1000 iterations. As in the lecture's code, the update uses dL/dZ2 = A2 - Y,
    the gradient of the *summed* BCE (its printed loss is the mean, with an epsilon inside the log that
    is left out here)."""
    rng = np.random.default_rng(0)
    n, lr = 200, 0.05
    x = rng.standard_normal((n, 2))
    y = ((x**2).sum(axis=1) < 1.0).astype(np.float64)[:, None]
    hidden, out = hg.Linear(2, 8, "normal001", rng), hg.Linear(8, 1, "normal001", rng)
    net = hg.Sequential([hidden, hg.ReLU(), out, hg.Sigmoid()])
    w1, b1, w2, b2 = (Tensor(p.copy(), requires_grad=True) for p in net.params())
    sgd = SGD([w1, b1, w2, b2], lr=lr)

    losses, engine_losses = [], []
    for _ in range(1000):
        prob = net.forward(x)
        loss, grad = hg.binary_cross_entropy(prob, y)
        net.backward(grad * n)
        for param, grad_param in zip(net.params(), net.grads(), strict=True):
            param -= lr * grad_param
        losses.append(loss)

        engine_prob = ((Tensor(x) @ w1 + b1).relu() @ w2 + b2).sigmoid()
        summed = -(y * engine_prob.log() + (1 - y) * (1 - engine_prob).log()).sum()
        sgd.zero_grad()
        summed.backward()
        sgd.step()
        engine_losses.append(summed.item() / n)

    np.testing.assert_allclose(engine_losses, losses, rtol=1e-9)
    for param, tensor in zip(net.params(), (w1, b1, w2, b2), strict=True):
        np.testing.assert_allclose(tensor.data, param, rtol=1e-9, atol=1e-12)
    accuracy = np.mean((net.forward(x) > 0.5) == y)
    majority = max(y.mean(), 1 - y.mean())
    assert losses[-1] < 0.1 * losses[0]
    assert accuracy > majority + 0.2, (accuracy, majority)


# --- lecture 004: backprop through an MLP, and the 2-2-1 tanh net with one SGD step ---------------


def test_lecture_004_mlp_backward_is_a_chain_of_transposed_jacobians():
    """z = W1 x (3x4), h = relu(z), y_hat = W2 h (2x3), J = |y_hat - y|^2; backward:
    g1 = 2 (y_hat - y) (2), g2 = W2^T g1 (3), g3 = H'^T g2 with H' = diag(1[z > 0]) (3), g4 = W1^T g3 (4)."""
    rng = np.random.default_rng(2)
    w1, w2 = rng.standard_normal((3, 4)), rng.standard_normal((2, 3))
    x0, y = rng.standard_normal(4), rng.standard_normal(2)
    grads: dict[str, np.ndarray] = {}
    x = tap(Tensor(x0, requires_grad=True), grads, "x")
    z = tap(Tensor(w1) @ x, grads, "z")
    h = tap(z.relu(), grads, "h")
    y_hat = tap(Tensor(w2) @ h, grads, "y_hat")
    ((y_hat - y) ** 2).sum().backward()
    g1 = 2 * (y_hat.data - y)
    g2 = w2.T @ g1
    g3 = np.diag((z.data > 0).astype(float)).T @ g2
    g4 = w1.T @ g3
    for name, expected in (("y_hat", g1), ("h", g2), ("z", g3), ("x", g4)):
        np.testing.assert_allclose(grads[name], expected, rtol=1e-14, err_msg=name)


# Lecture 004's 2-2-1 tanh network after one SGD step with lr 0.2, computed in float64. The slide
# rounds them to W0 = [[1.02, -3.0], [0.17, 1.0]] and W1 = [1.02, -0.989]. The slide's typos and
# liberties: (1) its line for dL/dW1 writes x2 * (-0.1186) where dL/dx3 = -0.1869 is meant: -0.113 and
# -0.054 are x2 * -0.1869. (2) It writes dL/dW0 as x0 dL/dx1, the transpose of the W0-shaped gradient
# below, and subtracts it untransposed in the update's middle line although its result (and the
# formula above, with ^T) uses the transpose. (3) It announces "learning rate eta = -0.2 (because we used
# positive increments)" and then writes W + eta (...)^T as W - 0.2 (...). (4) Its dL/dx1 = -0.1186 is the
# rounded dL/dx3 = -0.1869 times 1 - tanh^2(0.7) = 0.6347; the unrounded product is -0.11866, which
# rounds to -0.1187 (and 0.1 of it to -0.01187, printed -0.01186).
LECTURE_004_W0 = [[1.0237322576259025, -2.9976267742374096], [0.16578397427257452, 0.9965783974272574]]
LECTURE_004_W1 = [1.0225966869149203, -0.9891081223268791]
LECTURE_004_GRAD_W0 = [
    [-0.11866128812951282, -0.01186612881295128],
    [0.17108012863712752, 0.01710801286371275],
]
LECTURE_004_GRAD_W1 = [-0.11298343457460214, -0.05445938836560459]


def assert_lecture_004_backward(
    x3: float, grad_x3: float, grad_x2: np.ndarray, grad_x1: np.ndarray, x2: np.ndarray
) -> None:
    """The backward values the slide prints (see the notes above for the two -0.1186s)."""
    printed(grad_x3, -0.1869, 4)  # dL/dx3 = x3 - y
    printed(grad_x2, [-0.1869, 0.1869], 4)  # dL/dx3 W1
    printed(grad_x1[1], 0.171, 3)
    printed(grad_x1[0], -0.1187, 4)  # the slide: -0.1186, from the rounded -0.1869:
    printed(-0.1869 * (1 - x2[0] ** 2), -0.1186, 4)
    printed(x3, 0.313, 3)


def test_lecture_004_tanh_net_one_sgd_step():
    w0 = Tensor([[1.0, -3.0], [0.2, 1.0]], requires_grad=True)
    w1 = Tensor([1.0, -1.0], requires_grad=True)
    x0, y = np.array([1.0, 0.1]), 0.5
    grads: dict[str, np.ndarray] = {}
    x1 = tap(w0 @ x0, grads, "x1")
    x2 = tap(x1.tanh(), grads, "x2")
    x3 = tap(w1 @ x2, grads, "x3")
    loss = 0.5 * (x3 - y) ** 2
    loss.backward()
    # Forward: x1 = W0 x0 = (0.7, 0.3), x2 = tanh(x1) = (0.604, 0.291), x3 = W1 x2 = 0.313, L = 0.017.
    np.testing.assert_allclose(x1.data, [0.7, 0.3], rtol=1e-15)
    printed(x2.data, [0.604, 0.291], 3)
    assert x3.item() == pytest.approx(0.3130551646655724, rel=1e-15)
    printed(loss.item(), 0.017, 3)
    assert_lecture_004_backward(x3.item(), grads["x3"].item(), grads["x2"], grads["x1"], x2.data)
    # dL/dW0 = x0 dL/dx1 (the slide's layout: the transpose of W0's) = (-0.1186 0.171; -0.01186 0.0171).
    slide = w0.grad.T
    printed(slide[0, 1], 0.171, 3)
    printed(slide[1, 1], 0.0171, 4)
    printed(slide[:, 0], [-0.1187, -0.01187], [4, 5])  # the slide's -0.1186, -0.01186: note (4) above
    np.testing.assert_allclose(w0.grad, LECTURE_004_GRAD_W0, rtol=1e-14)
    # dL/dW1 = x2 dL/dx3 = (-0.113, -0.054).
    printed(w1.grad, [-0.113, -0.054], 3)
    np.testing.assert_allclose(w1.grad, LECTURE_004_GRAD_W1, rtol=1e-14)
    SGD([w0, w1], lr=0.2).step()
    np.testing.assert_allclose(w0.data, LECTURE_004_W0, rtol=1e-15)
    np.testing.assert_allclose(w1.data, LECTURE_004_W1, rtol=1e-15)
    printed(w0.data, [[1.02, -3.0], [0.17, 1.0]], 2)
    printed(w1.data, [1.02, -0.989], [2, 3])  # as printed: 2 and 3 decimals


def test_lecture_004_tanh_net_by_hand():
    # handgrad computes x @ W with W: (in, out), so the lecture's W0 (out, in) enters transposed.
    first, second = hg.Linear(2, 2, bias=False), hg.Linear(2, 1, bias=False)
    first.weight, second.weight = np.array([[1.0, -3.0], [0.2, 1.0]]).T, np.array([[1.0], [-1.0]])
    tanh = hg.Tanh()
    x1 = first.forward(np.array([[1.0, 0.1]]))
    x2 = tanh.forward(x1)
    x3 = second.forward(x2)
    loss, grad = hg.l2(x3, np.array([[0.5]]))
    grad_x3 = 0.5 * grad  # L = (x3 - y)^2 / 2: half of l2's value and gradient
    printed(0.5 * loss, 0.017, 3)
    grad_x2 = second.backward(grad_x3)
    grad_x1 = tanh.backward(grad_x2)
    first.backward(grad_x1)
    np.testing.assert_allclose(x1, [[0.7, 0.3]], rtol=1e-15)
    printed(x2, [[0.604, 0.291]], 3)
    assert_lecture_004_backward(x3.item(), grad_x3.item(), grad_x2[0], grad_x1[0], x2[0])
    np.testing.assert_allclose(first.grad_weight.T, LECTURE_004_GRAD_W0, rtol=1e-14)
    np.testing.assert_allclose(second.grad_weight[:, 0], LECTURE_004_GRAD_W1, rtol=1e-14)
    for param, grad_param in zip(
        (first.weight, second.weight), (first.grad_weight, second.grad_weight), strict=True
    ):
        param -= 0.2 * grad_param
    np.testing.assert_allclose(first.weight.T, LECTURE_004_W0, rtol=1e-15)
    np.testing.assert_allclose(second.weight[:, 0], LECTURE_004_W1, rtol=1e-15)
