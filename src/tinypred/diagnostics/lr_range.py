"""The lr-range check: an exponential learning-rate sweep; where the loss falls fastest, where it
diverges."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from tinypred.data.dataset import Dataset
from tinypred.diagnostics.common import CheckResult, Ticker, make_result, sample_split, training_stream
from tinypred.errors import TinypredError
from tinypred.predictors.model import TrajectoryMLP
from tinypred.training.config import TrainConfig
from tinypred.training.step import build_model, make_optimizer


def check_lr_range(
    ds: Dataset,
    cfg: TrainConfig,
    out_dir: Path | None = None,
    lr_min: float = 1e-6,
    lr_max: float = 1.0,
    steps: int = 150,
    beta: float = 0.9,
    rise: float = 1.5,
    model: TrajectoryMLP | None = None,
) -> CheckResult:
    """Learning-rate range test: train with the config's optimizer while the lr grows exponentially from
    lr_min to lr_max, one step per training batch, and watch the loss.

    The loss is smoothed by an EMA (beta) with bias correction; the sweep stops once the smoothed loss
    exceeds 4x its best. Suggested lr: where the smoothed loss falls fastest, the most negative slope of
    loss against log10(lr) before the minimum. Divergence lr: the first lr past the minimum where the
    smoothed loss is back above `rise` times its best (with AdamW and gradient clipping the loss rarely
    explodes; it turns up and stays there). Passes if the curve has that clear minimum: the loss falls by
    at least 20 % and diverges later in the sweep.
    """
    model = model if model is not None else build_model(ds, cfg)
    opt = make_optimizer(model, cfg)
    stream = training_stream(model, opt, sample_split(ds, "train"), cfg, Ticker("lr-range", steps))
    lrs: list[float] = []
    raw: list[float] = []
    smooth: list[float] = []
    avg = 0.0
    for i in range(steps):
        lr = lr_min * (lr_max / lr_min) ** (i / (steps - 1))
        for group in opt.param_groups:
            group["lr"] = lr
        loss = next(stream)
        avg = beta * avg + (1 - beta) * loss
        s = avg / (1 - beta ** (i + 1))  # bias correction: the EMA starts at 0
        if not math.isfinite(s):
            break
        lrs.append(lr)
        raw.append(loss)
        smooth.append(s)
        if s > 4 * min(smooth):
            break
    if not smooth:
        raise TinypredError("lr-range: the loss at initialisation is not finite; run the init check")
    low = int(np.argmin(smooth))
    best = smooth[low]
    skip = max(1, len(smooth) // 10)  # the first steps: the EMA still warming up, the lr negligible
    slope = np.gradient(np.asarray(smooth), np.log10(lrs)) if len(smooth) > 1 else np.zeros(1)
    # The steepest fall before the minimum; with no fall (the loss only rises) take the first point.
    steep = skip + int(np.argmin(slope[skip : low + 1])) if low > skip else 0
    suggested = lrs[steep]
    turned = next((i for i in range(low, len(smooth)) if smooth[i] > rise * best), None)
    if turned is None and len(smooth) < steps:  # a non-finite loss ended the sweep: that lr diverged
        turned = len(smooth) - 1
    divergence = lrs[turned] if turned is not None else None
    fell = best <= 0.8 * smooth[0]
    clear = fell and divergence is not None
    numbers = {
        "suggested_lr": suggested,
        "lr_at_min": lrs[low],
        "divergence_lr": divergence,
        "min_loss": best,
        "start_loss": smooth[0],
        "config_lr": cfg.lr,
        "optimizer": cfg.optimizer,
        "lrs": lrs,
        "losses": raw,
        "smoothed": smooth,
    }
    if clear:
        yours = (
            "past the divergence point: lower it"
            if cfg.lr >= divergence
            else f"{cfg.lr / suggested:.2g}x the suggestion"
        )
        verdict = (
            f"passed: the loss falls fastest at lr {suggested:.2g}, is lowest at {lrs[low]:.2g} and diverges "
            f"from {divergence:.2g}. Your lr {cfg.lr:.2g} is {yours}."
        )
    elif fell:
        verdict = (
            f"failed: the loss falls (from {smooth[0]:.3g} to {best:.3g}) but never diverges up to lr "
            f"{lrs[-1]:.2g}, so there is no clear minimum -- widen the sweep (lr_max) before trusting it."
        )
    else:
        verdict = (
            f"failed: no clear minimum (the smoothed loss went from {smooth[0]:.3g} to at best "
            f"{best:.3g}) -- the loss does not respond to the learning rate: suspect a wrong gradient "
            "or loss."
        )

    def draw() -> plt.Figure:
        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        ax.semilogx(lrs, raw, color="0.75", lw=0.8, label="loss per step")
        ax.semilogx(lrs, smooth, lw=2, label=f"smoothed (EMA {beta})")
        ax.axvline(suggested, color="green", ls="--", label=f"suggested {suggested:.2g} (steepest fall)")
        ax.axvline(cfg.lr, color="purple", ls=":", label=f"config lr {cfg.lr:.2g}")
        if divergence is not None:
            ax.axvline(divergence, color="crimson", ls="--", label=f"diverges {divergence:.2g}")
        ax.set_ylim(top=min(max(raw), 4.5 * best))
        ax.set(
            xlabel=f"learning rate ({cfg.optimizer})",
            ylabel="training loss",
            title="Learning-rate range test",
        )
        ax.legend(fontsize=7)
        return fig

    return make_result("lr-range", clear, verdict, numbers, out_dir, draw)
