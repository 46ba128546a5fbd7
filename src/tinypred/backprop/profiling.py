"""Where the engine's training step spends its time: per op type, forward and backward.

``op_timer()`` times every op of ``Tensor`` without touching ``engine.py``: for the length of the block it
replaces each op method (and ``losses.huber``) by a timed wrapper, and ``engine.make_op`` -- through which
every op registers its ``backward`` closure -- by one that wraps that closure in a timer too. An op called
inside another (``mean`` is ``sum`` then a division, ``a - b`` with ``b`` a Tensor goes through ``__rsub__``
to ``__sub__``) is part of the outer op's cost: each op is counted once, as its caller wrote it. On exit,
exception or not, every original is put back.

``profile_training`` runs the engine's version of the project's training step (the MLP, the
winner-take-all loss, gradient clipping, AdamW) on given batches under the timer and splits a step's
wall-clock time into ops, the backward graph walk and the optimizer.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tinypred.backprop import engine, losses
from tinypred.backprop.engine import Tensor
from tinypred.backprop.losses import split_modes, wta_loss
from tinypred.backprop.nn import MLP
from tinypred.backprop.optim import SGD, AdamW, Optimizer

# Attributes of Tensor that are not ops: bookkeeping, accessors and helpers (single underscore).
NOT_OPS = frozenset({"__init__", "__repr__", "item", "zero_grad", "backward", "shape", "dtype", "is_leaf"})
# Ops that are module functions rather than Tensor methods: (module, name).
FUNCTION_OPS = ((losses, "huber"),)


def op_name(attr: str) -> str:
    """The op type of a Tensor attribute: "__radd__" and "__add__" are both "add"."""
    name = attr.strip("_")
    if attr.startswith("__r") and f"__{name[1:]}__" in vars(Tensor):
        return name[1:]
    return name


def tensor_ops() -> dict[str, str]:
    """Every op of Tensor: attribute name -> op type. Found, not listed, so that a new op is timed too."""
    return {
        attr: op_name(attr)
        for attr, value in vars(Tensor).items()
        if attr not in NOT_OPS
        and not (attr.startswith("_") and not attr.startswith("__"))
        and (isinstance(value, property) or inspect.isfunction(value))
        and attr not in vars(object)
    }


@dataclass
class OpStats:
    """Seconds spent in an op type's forward calls and in its backward closures, and how many of each."""

    forward: float = 0.0
    backward: float = 0.0
    calls: int = 0
    backward_calls: int = 0


@dataclass
class OpTimes:
    """What ``op_timer`` measured, by op type; ``active`` is the outermost op being run (None outside)."""

    ops: dict[str, OpStats] = field(default_factory=dict)
    active: str | None = None

    def stats(self, op: str) -> OpStats:
        return self.ops.setdefault(op, OpStats())

    def reset(self) -> None:
        self.ops.clear()


def _timed_op(fn: Callable[..., Any], op: str, times: OpTimes) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if times.active is not None:  # inside another op: part of that op's cost, counted there
            return fn(*args, **kwargs)
        times.active = op
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            stats = times.stats(op)
            stats.forward += time.perf_counter() - start
            stats.calls += 1
            times.active = None

    return wrapper


@contextmanager
def op_timer() -> Iterator[OpTimes]:
    """Time every engine op, forward and backward, inside the block; the engine is restored on exit."""
    times = OpTimes()
    make_op = engine.make_op

    def timed_make_op(data: Any, parents: tuple[Tensor, ...], backward: engine.Backward) -> Tensor:
        op = times.active or "make_op"  # make_op called by code outside any op: a custom op

        def timed_backward(g: np.ndarray) -> Sequence[np.ndarray | None]:
            start = time.perf_counter()
            try:
                return backward(g)
            finally:
                stats = times.stats(op)
                stats.backward += time.perf_counter() - start
                stats.backward_calls += 1

        return make_op(data, parents, timed_backward)

    saved_methods = {attr: vars(Tensor)[attr] for attr in tensor_ops()}
    saved_functions = [(module, name, getattr(module, name)) for module, name in FUNCTION_OPS]
    try:
        for attr, original in saved_methods.items():
            if isinstance(original, property):
                setattr(Tensor, attr, property(_timed_op(original.fget, op_name(attr), times)))
            else:
                setattr(Tensor, attr, _timed_op(original, op_name(attr), times))
        for module, name, original in saved_functions:
            setattr(module, name, _timed_op(original, name, times))
        # The ops look make_op up in the engine's globals at each call, so replacing it there reaches them.
        engine.make_op = timed_make_op
        yield times
    finally:
        engine.make_op = make_op
        for module, name, original in saved_functions:
            setattr(module, name, original)
        for attr, original in saved_methods.items():
            setattr(Tensor, attr, original)


@dataclass(frozen=True)
class EngineStep:
    """The engine's copy of a trained predictor and how it trains: what ``profile_training`` needs.

    weights[i] (in, out) and biases[i] (out,) of each Linear, input to output (float32); pos_scale (T, 2);
    the loss is winner-take-all with `regression`, `huber_delta` and `ce_weight`; the optimizer AdamW
    (`weight_decay`) or SGD with `momentum`; `grad_clip` the max global gradient norm (0: off).
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation: Literal["relu", "tanh", "sigmoid"]
    pos_scale: np.ndarray
    modes: int
    regression: Literal["l1", "l2", "huber", "displacement"]
    huber_delta: float
    ce_weight: float
    optimizer: Literal["adamw", "sgd"]
    lr: float
    weight_decay: float
    momentum: float
    grad_clip: float


def build(spec: EngineStep, seed: int = 0) -> tuple[MLP, Optimizer]:
    """The engine MLP holding spec's weights (copies), and its optimizer."""
    sizes = [spec.weights[0].shape[0], *(w.shape[1] for w in spec.weights)]
    mlp = MLP(sizes, spec.activation, rng=np.random.default_rng(seed), dtype=np.float32)
    for layer, w, b in zip(mlp.layers, spec.weights, spec.biases, strict=True):
        layer.weight.data[...] = w
        layer.bias.data[...] = b
    if spec.optimizer == "sgd":
        return mlp, SGD(mlp.parameters(), spec.lr, spec.momentum, spec.weight_decay)
    return mlp, AdamW(mlp.parameters(), spec.lr, weight_decay=spec.weight_decay)


def forward_loss(mlp: MLP, spec: EngineStep, x: np.ndarray, y: np.ndarray) -> Tensor:
    """The training loss of a batch x (B, D), y (B, T, 2), as the project's model and loss compute it."""
    out = mlp(Tensor(x))
    pred, logits = split_modes(out, spec.modes, y.shape[1])
    pred = pred * spec.pos_scale  # the head predicts in units of the futures' spread, as TrajectoryMLP
    return wta_loss(pred, logits, y, spec.ce_weight, spec.regression, spec.huber_delta)


def clip_and_step(opt: Optimizer, grad_clip: float) -> float:
    """Clip the global gradient norm to grad_clip (0: off), as torch's clip_grad_norm_, then update."""
    grads = [p.grad for p in opt.params if p.grad is not None]
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    if grad_clip > 0 and norm > grad_clip:
        for g in grads:
            g *= grad_clip / (norm + 1e-6)
    opt.step()
    return norm


def profile_training(
    spec: EngineStep, batches: Sequence[tuple[np.ndarray, np.ndarray]], warmup: int = 1, seed: int = 0
) -> dict[str, Any]:
    """Run one training step per batch (the first `warmup` untimed) and split a step's time.

    Returns ms_per_step, steps, loss (the last step's) and rows, one per op type (forward_ms,
    backward_ms, update_ms, calls per step) plus three that are no op's: "(forward: outside ops)" (the
    loss's winner choice, wrapping the input), "(backward: graph walk)" (the topological sort, the summing
    of gradients) and "(optimizer: clip + step)" (update_ms); share_pct of the step, summing to 100.
    """
    if len(batches) <= warmup:
        raise ValueError(f"need more than {warmup} batches, got {len(batches)}")
    mlp, opt = build(spec, seed)
    forward = backward = update = 0.0
    with op_timer() as times:
        for i, (x, y) in enumerate(batches):
            if i == warmup:  # caches, allocator and BLAS threads warmed up: start counting
                times.reset()
                forward = backward = update = 0.0
            t0 = time.perf_counter()
            loss = forward_loss(mlp, spec, x, y)
            t1 = time.perf_counter()
            opt.zero_grad()
            loss.backward()
            t2 = time.perf_counter()
            clip_and_step(opt, spec.grad_clip)
            t3 = time.perf_counter()
            forward, backward, update = forward + t1 - t0, backward + t2 - t1, update + t3 - t2
    steps = len(batches) - warmup
    total = forward + backward + update
    ops = dict(sorted(times.ops.items(), key=lambda kv: -(kv[1].forward + kv[1].backward)))
    rows = [
        {"op": op, "forward": s.forward, "backward": s.backward, "calls": s.calls} for op, s in ops.items()
    ]
    rows += [
        {"op": "(forward: outside ops)", "forward": forward - sum(s.forward for s in ops.values())},
        {"op": "(backward: graph walk)", "backward": backward - sum(s.backward for s in ops.values())},
        {"op": "(optimizer: clip + step)", "update": update},
    ]
    for r in rows:
        f, b, u = r.pop("forward", 0.0), r.pop("backward", 0.0), r.pop("update", 0.0)
        r["forward_ms"], r["backward_ms"], r["update_ms"] = 1e3 * f / steps, 1e3 * b / steps, 1e3 * u / steps
        r["calls"] = r.get("calls", 0) / steps
        r["share_pct"] = 100 * (f + b + u) / total
    return {"ms_per_step": 1e3 * total / steps, "steps": steps, "loss": loss.item(), "rows": rows}
