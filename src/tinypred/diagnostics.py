"""Training-craft diagnostics: the checks to run before trusting a training curve.

Each check is a function that returns its numbers and a verdict in plain words.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tinypred import losses
from tinypred.dataset import Dataset
from tinypred.model import TrajectoryMLP
from tinypred.train import Split, TrainConfig, position_scale


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
) -> OverfitResult:
    """Train on one fixed batch until the loss is below `target_ratio` of its initial value.

    Passing proves the model can learn and the gradient is right; failing means a wrong gradient or
    loss, a data/label mismatch, or too little capacity. Dropout and weight decay are off: the point is
    to memorise.
    """
    torch.manual_seed(cfg.seed)
    split = Split.of(ds.train.subset(slice(0, batch)), ds.normalizer, torch.device("cpu"))
    model = TrajectoryMLP(split.x.shape[1], split.y.shape[1], cfg.model.model_copy(update={"dropout": 0.0}))
    model.pos_scale.copy_(position_scale(ds.train.future))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for step in range(max_steps + 1):
        total, _ = losses.loss(model(split.x), split.y, cfg.loss)
        history.append(total.item())
        if history[-1] <= target_ratio * history[0] or step == max_steps:
            break
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
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
            "wrong gradient or loss, inputs that do not match their labels, or too little capacity"
        )
    )
    return OverfitResult(history, len(history) - 1, ratio, passed, verdict)
