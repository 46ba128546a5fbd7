"""The curvature check: the sharpest direction of the loss (Hessian lambda_max) against 2 / lr."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch

from tinypred.data.dataset import Dataset
from tinypred.diagnostics.common import CheckResult, Ticker, make_result, sample_split, training_stream
from tinypred.predictors import losses
from tinypred.training.config import TrainConfig
from tinypred.training.step import build_model


def top_hessian_eigenvalue(
    loss: torch.Tensor,
    params: list[torch.Tensor],
    iters: int = 60,
    tol: float = 1e-3,
    seed: int = 0,
) -> tuple[float, int, bool]:
    """lambda_max of the Hessian of a scalar loss (with its graph) w.r.t. params, by power iteration on
    Hessian-vector products.

    H v = d/dtheta (grad . v): one double backward through the graph of the gradient (create_graph=True),
    never forming H. v starts random (seeded), is normalised each round, and the Rayleigh quotient v.Hv
    estimates the eigenvalue of largest magnitude. Returns (lambda, iterations, converged: the relative
    change of the estimate fell below tol).
    """
    grads = torch.autograd.grad(loss, params, create_graph=True)
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen) for p in params]
    lam, prev = 0.0, math.nan
    for it in range(1, iters + 1):
        norm = torch.sqrt(sum((a * a).sum() for a in v))
        v = [a / norm for a in v]
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True, materialize_grads=True)
        lam = sum((a * b).sum() for a, b in zip(v, hv, strict=True)).item()
        if abs(lam - prev) <= tol * abs(lam):
            return lam, it, True
        prev, v = lam, list(hv)
    return lam, iters, False


def check_curvature(
    ds: Dataset,
    cfg: TrainConfig,
    out_dir: Path | None = None,
    checkpoints: tuple[int, ...] = (0, 50, 150, 300),
    batch: int = 512,
    iters: int = 60,
) -> CheckResult:
    """The sharpest curvature of the training loss against the learning rate.

    Plain gradient descent on a quadratic with top Hessian eigenvalue lambda_max is stable only for
    lr < 2 / lambda_max (the update along that eigenvector multiplies the error by 1 - lr lambda_max).
    lambda_max is measured on a fixed training batch (dropout off) by power iteration
    (`top_hessian_eigenvalue`) at initialisation and after each number of `checkpoints` steps of plain
    SGD (no momentum, no weight decay) at cfg.lr on training mini-batches. With ReLU and Huber the loss is
    piecewise smooth: its Hessian exists almost everywhere, which is all the power iteration needs.
    Fails ("unstable") if lr * lambda_max / 2 > 1 at any checkpoint or the run diverges. For Adam(W) the
    bound is a rough guide only: Adam rescales each parameter's step.
    """
    model = build_model(ds, cfg, dropout=0.0)  # a deterministic loss: no dropout masks
    fixed = sample_split(ds, "train", batch)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.lr)
    # Plain means unclipped too: clipping would hide the instability this check is about.
    unclipped = cfg.model_copy(update={"grad_clip": 0.0})
    ticker = Ticker("curvature", max(checkpoints, default=0))
    stream = training_stream(model, opt, sample_split(ds, "train"), unclipped, ticker)
    points: list[dict[str, Any]] = []
    done, diverged_at = 0, None
    for target in sorted({0, *checkpoints}):  # always at init: the first point needs no training
        while done < target and diverged_at is None:
            if not math.isfinite(next(stream)):
                diverged_at = done
            done += 1
        if diverged_at is not None:
            break
        loss = losses.loss(model(fixed.x), fixed.y, cfg.loss)[0]
        lam, its, converged = top_hessian_eigenvalue(loss, params, iters, seed=cfg.seed)
        points.append(
            {
                "step": target,
                "loss": loss.item(),
                "lambda_max": lam,
                "iterations": its,
                "converged": converged,
                "ratio": cfg.lr * lam / 2,
            }
        )
    worst = max(points, key=lambda p: p["ratio"])
    passed = worst["ratio"] < 1 and diverged_at is None
    numbers = {
        "lr": cfg.lr,
        "points": points,
        "max_lambda": worst["lambda_max"],
        "two_over_lambda": 2 / worst["lambda_max"] if worst["lambda_max"] > 0 else None,
        "max_ratio": worst["ratio"],
        "diverged_at_step": diverged_at,
    }
    limit = f"2/lambda_max = {2 / worst['lambda_max']:.3g}" if worst["lambda_max"] > 0 else "no bound"
    if passed:
        verdict = (
            f"stable: the sharpest curvature seen is lambda_max = {worst['lambda_max']:.3g} "
            f"(step {worst['step']}), so plain gradient descent tolerates lr up to {limit}; "
            f"lr {cfg.lr:.3g} sits at {worst['ratio']:.0%} of that limit."
        )
    else:
        blew = f" and the loss went non-finite at step {diverged_at}" if diverged_at is not None else ""
        verdict = (
            f"unstable: lambda_max = {worst['lambda_max']:.3g} at step {worst['step']} puts lr "
            f"{cfg.lr:.3g} at {worst['ratio']:.2g}x the stability limit {limit}{blew} -- lower the "
            "learning rate below that limit."
        )

    def draw() -> plt.Figure:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.plot([p["step"] for p in points], [p["lambda_max"] for p in points], "o-", label="lambda_max")
        ax.axhline(
            2 / cfg.lr, color="crimson", ls="--", label=f"2 / lr = {2 / cfg.lr:.3g} (GD unstable above)"
        )
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set(xlabel="plain SGD steps at the config lr", ylabel="top Hessian eigenvalue")
        ax.set_title(f"Curvature vs learning rate: {verdict.split(':')[0]}", fontsize=9)
        ax.legend(fontsize=8)
        return fig

    return make_result("curvature", passed, verdict, numbers, out_dir, draw)
