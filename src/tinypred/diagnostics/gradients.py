"""The gradients check: vanishing and exploding gradients through a deep MLP (the lectures' demonstration)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from tinypred.data.dataset import Dataset
from tinypred.diagnostics.common import CheckResult, log10_ratio, make_result, sample_split
from tinypred.predictors import losses
from tinypred.predictors.model import TrajectoryMLP
from tinypred.training.config import TrainConfig
from tinypred.training.step import build_model


def _deep_model(
    ds: Dataset, cfg: TrainConfig, depth: int, width: int, alpha: float | None, **updates: str
) -> TrajectoryMLP:
    """A deep narrow TrajectoryMLP (dropout off); alpha sets every hidden weight to alpha * I (the
    lectures' scaled identity; the first, rectangular layer takes the first `width` features)."""
    model = build_model(ds, cfg, depth=depth, width=width, dropout=0.0, **updates)
    if alpha is not None:
        with torch.no_grad():
            for m in model.body:
                if isinstance(m, nn.Linear):
                    nn.init.eye_(m.weight).mul_(alpha)
    return model


def backprop_norms(model: TrajectoryMLP, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig) -> list[float]:
    """||d loss / d z_l|| for the output z_l (B, W) of every hidden Linear, first layer first: the signal
    backprop carries down to each layer (what vanishes or explodes)."""
    outputs: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
        for m in model.body
        if isinstance(m, nn.Linear)
    ]
    total, _ = losses.loss(model(x), y, cfg.loss)
    for h in hooks:
        h.remove()
    return [g.norm().item() for g in torch.autograd.grad(total, outputs)]


def check_gradients(
    ds: Dataset,
    cfg: TrainConfig,
    out_dir: Path | None = None,
    depth: int = 10,
    width: int = 64,
    samples: int = 256,
    max_orders: float = 1.0,
) -> CheckResult:
    """Vanishing and exploding gradients through a deep MLP (`depth` hidden layers of `width`) on the
    dataset's training samples, with the config's loss.

    Settings: the lectures' sigmoid with N(0, 0.01^2) weights (sigma' <= 1/4 and tiny weights: the
    gradient shrinks at every layer), ReLU with scaled-identity weights alpha I for alpha = 1.5 and 0.5
    (the gradient scales by alpha per layer), a healthy Kaiming ReLU, and the config's own activation,
    init and norm. Reported per layer: ||d loss / d z_l||; "orders" = log10(first layer / last layer):
    < 0 vanishes toward the input, > 0 explodes. Passes if the config's setting stays within `max_orders`.
    """
    split = sample_split(ds, "train", samples)
    m = cfg.model
    own = f"{m.activation}, {m.init}, norm {m.norm}"
    yours = f"yours: {own}"
    settings: dict[str, tuple[float | None, dict[str, str]]] = {
        "sigmoid, N(0, 0.01²)": (None, {"activation": "sigmoid", "init": "normal001", "norm": "none"}),
        "relu, 1.5·I": (1.5, {"activation": "relu", "norm": "none"}),
        "relu, 0.5·I": (0.5, {"activation": "relu", "norm": "none"}),
        "relu, kaiming": (None, {"activation": "relu", "init": "kaiming", "norm": "none"}),
        yours: (None, {"activation": m.activation, "init": m.init, "norm": m.norm}),
    }
    norms = {
        name: backprop_norms(_deep_model(ds, cfg, depth, width, alpha, **upd), split.x, split.y, cfg)
        for name, (alpha, upd) in settings.items()
    }
    orders = {name: log10_ratio(n[0], n[-1]) for name, n in norms.items()}
    passed = abs(orders[yours]) <= max_orders

    def words(o: float) -> str:
        if o < -max_orders:
            return f"vanishes by {-o:.1f} orders of magnitude"
        if o > max_orders:
            return f"explodes by {o:.1f} orders of magnitude"
        return f"stays within {abs(o):.1f} orders of magnitude"

    lecture = "; ".join(f"{name}: {words(orders[name])}" for name in settings if name != yours)
    verdict = (
        f"{'passed' if passed else 'failed'}: through {depth} layers your setting ({own}) "
        f"{words(orders[yours])} from the last layer to the first; for comparison, {lecture}."
    )
    numbers = {"depth": depth, "width": width, "grad_norms": norms, "orders": orders}

    def draw() -> plt.Figure:
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for name, n in norms.items():
            style = "o--" if name == yours else "o-"  # dashed: yours may coincide with a lecture setting
            ax.semilogy(
                range(1, depth + 1), np.maximum(n, 1e-300), style, ms=3, label=f"{name} ({orders[name]:+.1f})"
            )
        ax.set(xlabel="hidden layer (1 = input side)", ylabel="||d loss / d z_l||")
        ax.set_title(f"Backpropagated gradient through {depth} layers of {width}", fontsize=9)
        ax.legend(fontsize=7, title="setting (log10 first/last)", title_fontsize=7)
        return fig

    return make_result("gradients", passed, verdict, numbers, out_dir, draw)
