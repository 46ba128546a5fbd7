"""The overfit check: memorise one batch, or the gradient, the loss or the labels are wrong."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from tinypred.data.dataset import Dataset
from tinypred.diagnostics.common import CheckResult, Ticker, make_result, sample_split
from tinypred.predictors.model import TrajectoryMLP
from tinypred.training.config import TrainConfig
from tinypred.training.step import build_model, train_step


@dataclass
class OverfitResult:
    losses: list[float]  # the loss at every step, the first at initialisation
    steps: int  # steps taken to reach the target (or all of them)
    ratio: float  # final loss / initial loss
    passed: bool
    verdict: str


def overfit_one_batch(
    ds: Dataset,
    cfg: TrainConfig,
    batch: int = 32,
    max_steps: int = 1000,
    target_ratio: float = 0.01,
    lr: float = 3e-3,
    model: TrajectoryMLP | None = None,
) -> OverfitResult:
    """Train on one fixed batch until the loss is below `target_ratio` of its initial value.

    Passing proves the model can learn and the gradient is right; failing means a wrong gradient or
    loss, a learning rate far off, or too little capacity. Dropout and weight decay are off: the point is
    to memorise. The winner's regression is the squared error here, whatever cfg says: a loss linear in
    the error (the displacement, L1) has gradients of constant size, and at a fixed learning rate it
    hovers at a few % of its start instead of reaching 1 %. `model` replaces the one built from cfg (to
    check a model of your own).
    """
    cfg = cfg.model_copy(update={"loss": cfg.loss.model_copy(update={"regression": "l2"})})
    split = sample_split(ds, "train", batch)
    model = model if model is not None else build_model(ds, cfg, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[float] = []
    ticker = Ticker("overfit", max_steps)
    for _ in range(max_steps + 1):
        history.append(train_step(model, opt, split.x, split.y, cfg)[0].item())
        ticker()
        if history[-1] <= target_ratio * history[0]:
            break
    ratio = history[-1] / history[0]
    passed = ratio <= target_ratio
    verdict = (
        (
            f"passed: the loss fell from {history[0]:.3g} to {history[-1]:.3g} ({ratio:.2%} of its start) in "
            f"{len(history) - 1} steps -- the model can learn and its gradient is sound"
        )
        if passed
        else (
            f"failed: after {len(history) - 1} steps the loss is still {ratio:.1%} of its start -- suspect a "
            "wrong gradient or loss, a learning rate far off, or too little capacity"
        )
    )
    return OverfitResult(history, len(history) - 1, ratio, passed, verdict)


def check_overfit(
    ds: Dataset,
    cfg: TrainConfig,
    out_dir: Path | None = None,
    batch: int = 32,
    max_steps: int = 1000,
    target_ratio: float = 0.01,
    model: TrajectoryMLP | None = None,
) -> CheckResult:
    """`overfit_one_batch` as a check; the figure is the loss curve on a log scale. A model that cannot
    memorise 32 samples will not learn from 100 000: the gradient, the loss or the labels are wrong."""
    res = overfit_one_batch(ds, cfg, batch=batch, max_steps=max_steps, target_ratio=target_ratio, model=model)
    numbers = {
        "ratio": res.ratio,
        "steps": res.steps,
        "initial_loss": res.losses[0],
        "final_loss": res.losses[-1],
        "curve": res.losses,
    }

    def draw() -> plt.Figure:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.semilogy(res.losses, label="loss on the batch")
        target = target_ratio * res.losses[0]
        ax.axhline(target, color="green", ls="--", lw=1, label=f"target: {target_ratio:.0%} of the start")
        ax.set(
            xlabel="step", ylabel="loss", title=f"Overfitting {batch} samples: {res.verdict.split(':')[0]}"
        )
        ax.legend(fontsize=8)
        return fig

    return make_result("overfit", res.passed, res.verdict + ".", numbers, out_dir, draw)
