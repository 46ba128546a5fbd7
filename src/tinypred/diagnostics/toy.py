"""The toy check: contradictory 1-D data. MSE averages, a Gaussian NLL widens, K = 2 modes recover both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.nn import functional as F

from tinypred.data.dataset import Dataset
from tinypred.diagnostics.common import CheckResult, Ticker, make_result
from tinypred.predictors import losses
from tinypred.predictors.model import SCALE_EPS, ModelOutput
from tinypred.training.config import TrainConfig


def _toy_net(outputs: int, width: int) -> nn.Sequential:
    """The lectures' 1-D regressor: x (N, 1) -> two ReLU layers of `width` -> (N, outputs)."""
    return nn.Sequential(
        nn.Linear(1, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, outputs)
    )


def _fit(
    name: str,
    net: nn.Module,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    steps: int,
    lr: float,
) -> None:
    """Full-batch Adam on loss_fn(net(x)) for x (N, 1)."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    ticker = Ticker(f"toy ({name})", steps)
    for _ in range(steps):
        loss = loss_fn(net(x))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ticker()


def _two_modes(raw: torch.Tensor) -> ModelOutput:
    """A K = 2 head's raw outputs (N, 6) as tinypred's ModelOutput over one step: the 1-D value is the
    point (0, value), so that `losses.loss` applies to it unchanged."""
    values = raw[:, :2]
    modes = torch.stack([torch.zeros_like(values), values], -1)[:, :, None]  # (N, 2, 1, 2)
    return ModelOutput(modes, raw[:, 2:4], F.softplus(raw[:, 4:6])[:, :, None] + SCALE_EPS)


def check_toy(
    ds: Dataset,
    cfg: TrainConfig,
    out_dir: Path | None = None,
    n: int = 400,
    gap: float = 1.5,
    noise: float = 0.05,
    steps: int = 1000,
    width: int = 64,
    tol: float = 0.15,
) -> CheckResult:
    """The lectures' contradictory data: for x in [-3, 3], half the points follow y = sin x and half
    y = sin x + gap (plus noise). `ds` is unused: the toy needs none of the dataset.

    An MSE fit lands between the curves (on their mean); a Gaussian NLL head (softplus variance + epsilon,
    as in the lectures) explains the disagreement by widening its std to ~gap/2 instead; a K = 2 head
    trained with the config's loss (`losses.loss`, e.g. winner-take-all) should put one mode on each
    curve. Passes if it does: each curve has a mode within `tol` on average. An L2 loss on every mode
    fails here: it averages the modes just as MSE does.
    """
    torch.manual_seed(cfg.seed)
    x = torch.linspace(-3, 3, n)[:, None]
    upper = torch.arange(n)[:, None] % 2 == 1  # alternate points between the two curves
    y = torch.sin(x) + gap * upper + noise * torch.randn(n, 1)
    grid = torch.linspace(-3, 3, 200)[:, None]
    low_curve, mean_curve = torch.sin(grid), torch.sin(grid) + gap / 2

    mse = _toy_net(1, width)
    _fit("mse", mse, lambda out: F.mse_loss(out, y), x, steps, 3e-3)

    def gaussian_nll(out: torch.Tensor) -> torch.Tensor:  # the lectures' loss, constant term dropped
        var = F.softplus(out[:, 1:]) + 1e-6
        return (torch.log(var) / 2 + (y - out[:, :1]) ** 2 / (2 * var)).mean()

    nll = _toy_net(2, width)
    _fit("gaussian nll", nll, gaussian_nll, x, steps, 3e-3)
    gt = torch.stack([torch.zeros_like(y), y], -1)  # (N, 1, 2): one step at (0, y)
    modal = _toy_net(6, width)
    _fit("two modes", modal, lambda out: losses.loss(_two_modes(out), gt, cfg.loss)[0], x, steps, 3e-3)

    with torch.no_grad():
        fit = mse(grid)
        raw = nll(grid)
        mu, std = raw[:, :1], (F.softplus(raw[:, 1:]) + 1e-6).sqrt()
        two = _two_modes(modal(grid))
    modes, probs = two.modes[:, :, 0, 1], two.probs  # (G, 2)
    err = {
        "lower": (modes - low_curve).abs().min(-1).values.mean().item(),
        "upper": (modes - low_curve - gap).abs().min(-1).values.mean().item(),
    }
    nearer = torch.minimum((fit - low_curve).abs(), (fit - low_curve - gap).abs())
    numbers = {
        "mse_distance_to_nearer_curve": nearer.mean().item(),
        "mse_distance_to_mean_curve": (fit - mean_curve).abs().mean().item(),
        "nll_mean_std": std.mean().item(),
        "nll_mu_distance_to_mean_curve": (mu - mean_curve).abs().mean().item(),
        "noise": noise,
        "gap": gap,
        "modes_error_per_curve": err,
        "loss": cfg.loss.kind,
    }
    passed = max(err.values()) <= tol
    verdict = (
        f"MSE lands between the curves ({numbers['mse_distance_to_nearer_curve']:.2f} from the nearer one, "
        f"{numbers['mse_distance_to_mean_curve']:.2f} from their mean); the Gaussian NLL widens its std to "
        f"{numbers['nll_mean_std']:.2f} (noise {noise}). "
        + (
            f"Passed: your loss ({cfg.loss.kind}) with K = 2 puts a mode on each curve (mean errors "
            f"{err['lower']:.3f}, {err['upper']:.3f})."
            if passed
            else f"Failed: your loss ({cfg.loss.kind}) with K = 2 misses a curve (mean errors "
            f"{err['lower']:.2f}, {err['upper']:.2f}) -- it averages the modes instead of letting each "
            "take one branch."
        )
    )

    def draw() -> plt.Figure:
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
        g = grid[:, 0]
        for ax in axes:
            ax.scatter(x[:, 0], y[:, 0], s=4, color="0.6", label="data")
        axes[0].plot(g, fit[:, 0], lw=2.5, color="C0", label="MSE fit")
        axes[0].set_title("MSE: lands between the curves", fontsize=9)
        axes[1].fill_between(
            g, (mu - 2 * std)[:, 0], (mu + 2 * std)[:, 0], alpha=0.35, color="C1", label="mu ± 2 std"
        )
        axes[1].plot(g, mu[:, 0], lw=2.5, color="C1", label="mu")
        axes[1].set_title("Gaussian NLL: widens its variance", fontsize=9)
        for k in range(2):
            axes[2].plot(
                g, modes[:, k], lw=2.5, color=f"C{k + 2}", label=f"mode {k} (mean p {probs[:, k].mean():.2f})"
            )
        axes[2].set_title(
            f"K = 2, {cfg.loss.kind} loss: {'both curves' if passed else 'misses a curve'}", fontsize=9
        )
        axes[0].set_ylabel("y (toy units)")
        for ax in axes:
            ax.set_xlabel("x (toy units)")
            ax.legend(fontsize=7)
        return fig

    return make_result("toy", passed, verdict, numbers, out_dir, draw)
