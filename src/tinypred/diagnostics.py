"""Training-craft diagnostics: the checks to run before trusting a training curve.

"Most 'the model won't learn' bugs are a wrong loss, a data/label mismatch, or a learning rate off by an
order of magnitude." Each check below looks for one of them and returns a `CheckResult`: its numbers
(JSON-serialisable), a verdict in plain words, whether it passed, and a figure (a PNG in `out_dir`).

    init        loss at initialisation vs its expected value; activations and gradients per layer
    overfit     memorise one batch: the loop, the loss and the gradient can learn at all
    lr-range    an exponential learning-rate sweep: where the loss falls fastest, where it diverges
    curvature   the sharpest direction of the loss (Hessian lambda_max) vs the step size 2 / lr
    saliency    which inputs the loss depends on; no example may depend on another one in the batch
    gradients   vanishing / exploding gradients through a deep MLP (the lectures' demonstration)
    toy         contradictory 1-D data: MSE averages, a Gaussian NLL widens, K = 2 modes recover both

Every check builds its models like `train` does and is seeded by `cfg.seed`: the same call gives the
same numbers. The checks run on the CPU in float32 (they are small, and so reproducible), whatever
`cfg.device` and `cfg.bf16` say.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt  # the Agg backend: tinypred.plots selects it on import
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tinypred import losses
from tinypred.dataset import Dataset
from tinypred.encoding import HISTORY_FEATURES, feature_names
from tinypred.errors import TinypredError
from tinypred.model import SCALE_EPS, ModelOutput, TrajectoryMLP
from tinypred.plots import save
from tinypred.train import Split, TrainConfig, build_model, init_report, make_optimizer

CPU = torch.device("cpu")


@dataclass
class CheckResult:
    """What a check found. `numbers` holds only JSON types (floats, ints, bools, strings, lists, dicts)."""

    name: str
    passed: bool
    verdict: str  # one or two sentences, plain words
    numbers: dict[str, Any]
    figure: Path | None  # out_dir / f"{name}.png", or None without an out_dir

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (for `<out>/<check>.json`)."""
        return {
            "name": self.name,
            "passed": self.passed,
            "verdict": self.verdict,
            "numbers": self.numbers,
            "figure": str(self.figure) if self.figure else None,
        }


def _result(
    name: str,
    passed: bool,
    verdict: str,
    numbers: dict[str, Any],
    out_dir: Path | None,
    draw: Callable[[], plt.Figure],
) -> CheckResult:
    """Bundle a check's findings; draw its figure into out_dir/name.png only when out_dir is given."""
    figure = save(draw(), Path(out_dir) / f"{name}.png") if out_dir is not None else None
    return CheckResult(name, passed, verdict, numbers, figure)


# ----------------------------------------------------------------------------------------------------
# Shared pieces: a model built like `train` builds it, the data as tensors, one training step


def _split(ds: Dataset, name: str, n: int | None = None) -> Split:
    """The first n samples of a split (all of them when n is None) as normalised CPU tensors."""
    scenes = ds.split(name)
    if len(scenes) == 0:
        raise TinypredError(f"{ds.path}: the {name} split is empty; the diagnostics need samples in it")
    return Split.of(scenes.subset(slice(0, n)), ds.normalizer, CPU)


def _train_step(
    model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig
) -> float:
    """One optimizer step on (x (B, D), y (B, T, 2)) as `train` takes it (with its gradient clipping);
    returns the loss before the step."""
    total, _ = losses.loss(model(x), y, cfg.loss)
    opt.zero_grad(set_to_none=True)
    total.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return total.item()


def _training(
    model: nn.Module, opt: torch.optim.Optimizer, split: Split, cfg: TrainConfig
) -> Iterator[float]:
    """Endless training on shuffled mini-batches of `split` (order seeded by cfg.seed): each `next` takes
    one step and gives its loss. The caller decides when to stop, change the lr or look at the model."""
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(split.x)
    b = min(cfg.batch_size, n)
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - b + 1, b):  # whole batches only: every step sees b samples
            idx = perm[i : i + b]
            yield _train_step(model, opt, split.x[idx], split.y[idx], cfg)


def _orders(a: float, b: float) -> float:
    """log10(a / b) for norms a, b >= 0, each floored at 1e-300 so that an underflow to 0 stays finite."""
    return math.log10(max(a, 1e-300)) - math.log10(max(b, 1e-300))


# ----------------------------------------------------------------------------------------------------
# init


def check_init(
    ds: Dataset, cfg: TrainConfig, out_dir: Path | None = None, samples: int = 1024, ce_tol: float = 0.1
) -> CheckResult:
    """The loss at initialisation against its expected value, and the activations and gradients per layer.

    Expected: CE = log K (near-zero logits give uniform probabilities) and a regression loss close to that
    of a model predicting no motion (the head starts near zero). Forward hooks on every Linear record the
    mean of its output (B, W) (the pre-activation) and its std across the batch, averaged over the units:
    how much of the input's variation reaches that layer (with tiny weights a sigmoid layer outputs ~0.5
    whatever the input, which a std over the whole tensor would count as spread). One backward then gives
    each weight's gradient norm. Fails if CE is off by more than `ce_tol` nats, another loss part by more
    than 25 %, or the pre-activation std shrinks or grows by more than 10x from the first to the last
    hidden layer.
    """
    split = _split(ds, "train", samples)
    model = build_model(ds, cfg)  # in train mode, as training sees it (batch statistics for batchnorm)
    report = init_report(model, split, cfg)
    linear = model.linear_layers()
    stats: dict[str, dict[str, float]] = {}

    def record(name: str) -> Callable:
        def hook(_module, _inputs, output: torch.Tensor) -> None:
            stats[name] = {"mean": output.mean().item(), "std": output.std(0).mean().item()}

        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in linear]
    total, _ = losses.loss(model(split.x), split.y, cfg.loss)
    for h in handles:
        h.remove()
    total.backward()
    for name, m in linear:
        stats[name]["grad_norm"] = m.weight.grad.norm().item()
    with torch.no_grad():  # an input-independent baseline: the loss when every input is its mean
        zero_input_loss = losses.loss(model(torch.zeros_like(split.x)), split.y, cfg.loss)[0].item()

    hidden = [name for name, _ in linear[:-1]]  # the last Linear is the head
    std_ratio = stats[hidden[-1]]["std"] / max(stats[hidden[0]]["std"], 1e-30)
    off = {part: report[part] - report[f"expected_{part}"] for part in report if f"expected_{part}" in report}
    bad = [
        f"{part} is {report[part]:.3g} where {report[f'expected_{part}']:.3g} is expected"
        for part, d in off.items()
        if abs(d) > (ce_tol if part == "ce" else 0.25 * abs(report[f"expected_{part}"]))
    ]
    if not 0.1 <= std_ratio <= 10:
        kind = "collapse" if std_ratio < 0.1 else "explode"
        bad.append(
            f"activations {kind} across the layers "
            f"(std of the last hidden layer / the first = {std_ratio:.2g})"
        )
    passed = not bad
    verdict = (
        f"passed: the loss at init ({report['loss']:.3g}) is what an untrained model should score, and the "
        f"activations keep their scale across the layers (std ratio last/first {std_ratio:.2g})."
        if passed
        else f"failed: {'; '.join(bad)} -- check the initialisation ({cfg.model.init}) and the output head."
    )
    numbers = {
        "init": report,
        "zero_input_loss": zero_input_loss,
        "std_ratio_last_first": std_ratio,
        "layers": stats,
    }

    def draw() -> plt.Figure:
        names = [name for name, _ in linear]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for ax, key, title in (
            (axes[0], "std", "pre-activation std across the batch, per layer"),
            (axes[1], "grad_norm", "weight gradient norm per layer"),
        ):
            ax.semilogy(names, [stats[n][key] for n in names], "o-")
            ax.set_title(title, fontsize=9)
            ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        fig.suptitle(
            f"At init ({cfg.model.init}, {cfg.model.activation}): loss {report['loss']:.3g}, "
            f"zero-input loss {zero_input_loss:.3g}",
            fontsize=9,
        )
        return fig

    return _result("init", passed, verdict, numbers, out_dir, draw)


# ----------------------------------------------------------------------------------------------------
# overfit


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
    to memorise. `model` replaces the one built from cfg (to check a model of your own).
    """
    split = _split(ds, "train", batch)
    model = model if model is not None else build_model(ds, cfg, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[float] = []
    for _ in range(max_steps + 1):
        history.append(_train_step(model, opt, split.x, split.y, cfg))
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

    return _result("overfit", res.passed, res.verdict + ".", numbers, out_dir, draw)


# ----------------------------------------------------------------------------------------------------
# lr-range


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
    stream = _training(model, opt, _split(ds, "train"), cfg)
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

    return _result("lr-range", clear, verdict, numbers, out_dir, draw)


# ----------------------------------------------------------------------------------------------------
# curvature


def top_hessian_eigenvalue(
    loss: torch.Tensor,
    params: list[torch.Tensor],
    iters: int = 30,
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
    iters: int = 30,
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
    fixed = _split(ds, "train", batch)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.lr)
    # Plain means unclipped too: clipping would hide the instability this check is about.
    stream = _training(model, opt, _split(ds, "train"), cfg.model_copy(update={"grad_clip": 0.0}))
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

    return _result("curvature", passed, verdict, numbers, out_dir, draw)


# ----------------------------------------------------------------------------------------------------
# saliency and the batch-dependency check


def cross_example_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig
) -> torch.Tensor:
    """(B, B): entry [i, j] is max |d loss_i / d x_j| for the batch run through the model in its current mode.

    Examples must be independent: the loss of example i may depend only on x_i, so everything off the
    diagonal must be exactly 0. Batchnorm in train mode mixes the batch (its mean and variance come from
    every example) and breaks that. One forward over the whole batch, then one backward per example.
    """
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    rows = []
    for i in range(len(x)):
        one = ModelOutput(
            out.modes[i : i + 1], out.logits[i : i + 1], None if out.scale is None else out.scale[i : i + 1]
        )
        (grad,) = torch.autograd.grad(losses.loss(one, y[i : i + 1], cfg.loss)[0], x, retain_graph=True)
        rows.append(grad.abs().amax(-1))
    return torch.stack(rows)


def input_saliency(
    model: TrajectoryMLP, split: Split, cfg: TrainConfig, chunk: int = 512
) -> dict[str, np.ndarray]:
    """Mean |gradient| w.r.t. each normalised input feature (D,) over the split, in eval mode:

    "loss"      of each example's own loss (the batch loss times B: examples are independent in eval mode)
    "endpoint"  of the distance to the final point of each example's most probable mode
    """
    was_training = model.training
    model.eval()
    sums = {"loss": torch.zeros(split.x.shape[1]), "endpoint": torch.zeros(split.x.shape[1])}
    for i in range(0, len(split.x), chunk):
        x = split.x[i : i + chunk].clone().requires_grad_(True)
        y = split.y[i : i + chunk]
        out = model(x)
        top = out.logits.argmax(-1)
        targets = {
            "loss": losses.loss(out, y, cfg.loss)[0] * len(x),
            "endpoint": out.modes[torch.arange(len(x)), top, -1].norm(dim=-1).sum(),
        }
        for key, target in targets.items():
            (grad,) = torch.autograd.grad(target, x, retain_graph=True)
            sums[key] += grad.abs().sum(0)
    model.train(was_training)
    return {key: (s / len(split.x)).numpy() for key, s in sums.items()}


def check_saliency(
    ds: Dataset,
    cfg: TrainConfig,
    out_dir: Path | None = None,
    steps: int = 300,
    samples: int = 2000,
    batch: int = 16,
    split: str = "val",
) -> CheckResult:
    """What the model looks at, and whether examples stay independent within a batch.

    The model is trained for `steps` steps as configured (saliency of random weights says nothing), then
    the mean |d loss / d x| and |d endpoint / d x| over up to `samples` examples of `split` are mapped back
    to the feature layout: per history step (summed over its 6 features) and per lane point (summed
    over x, y). Passes if the dependency check passes: on `batch` training examples in train mode,
    no example's loss has a gradient above 1e-12 w.r.t. another example's inputs.
    """
    model = build_model(ds, cfg)
    stream = _training(model, make_optimizer(model, cfg), _split(ds, "train"), cfg)
    for _ in range(steps):
        next(stream)
    fixed = _split(ds, "train", batch)
    cross = cross_example_gradients(model, fixed.x, fixed.y, cfg)  # still in train mode, as it trained
    diagonal = torch.eye(len(cross), dtype=torch.bool)
    max_cross = cross[~diagonal].max().item() if len(cross) > 1 else 0.0
    max_self = cross[diagonal].max().item()
    independent = max_cross <= 1e-12

    sal = input_saliency(model, _split(ds, split, samples), cfg)
    c = ds.config
    h, lanes, p = c.history_steps, c.max_lanes, c.lane_points
    names = feature_names(h, lanes, p)
    cut = (h * len(HISTORY_FEATURES), h * len(HISTORY_FEATURES) + lanes * p * 2)
    layout = {
        key: {
            "history_by_step": s[: cut[0]].reshape(h, -1).sum(-1),  # (H,) oldest first
            "lanes_by_point": s[cut[0] : cut[1]].reshape(lanes, p, 2).sum(-1),  # (L, P)
            "groups": {
                "history": s[: cut[0]].sum(),
                "lanes": s[cut[0] : cut[1]].sum(),
                "masks": s[cut[1] :].sum(),
            },
        }
        for key, s in sal.items()
    }
    loss_map = layout["loss"]
    total = float(sum(loss_map["groups"].values()))
    shares = {g: float(v / total) if total > 0 else 0.0 for g, v in loss_map["groups"].items()}
    top = [names[i] for i in np.argsort(sal["loss"])[::-1][:5]]
    informative = bool(np.isfinite(sal["loss"]).all()) and total > 0
    passed = independent and informative
    numbers = {
        "dependency": {
            "passed": independent,
            "max_cross_gradient": max_cross,
            "max_self_gradient": max_self,
            "batch": len(cross),
            "norm": cfg.model.norm,
        },
        "shares": shares,
        "top_features": top,
        **{
            f"{key}_saliency": {
                "history_by_step": m["history_by_step"].tolist(),
                "lanes_by_point": m["lanes_by_point"].tolist(),
            }
            for key, m in layout.items()
        },
    }
    if not independent:
        verdict = (
            f"failed: examples in a batch depend on each other (largest cross-example gradient "
            f"{max_cross:.2g} vs {max_self:.2g} on the example itself) -- a batch-mixing layer such as "
            f"batchnorm ({cfg.model.norm}) makes each prediction depend on the rest of the batch."
        )
    elif not informative:
        verdict = (
            "failed: the loss has no (finite) gradient w.r.t. the inputs -- the model ignores what it reads."
        )
    else:
        verdict = (
            f"passed: no example depends on another (largest cross-example gradient {max_cross:.2g}); "
            f"the loss draws {shares['history']:.0%} of its input gradient from the history, "
            f"{shares['lanes']:.0%} from the lanes, most from {', '.join(top[:3])}."
        )

    def draw() -> plt.Figure:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for key, style in (("loss", "-"), ("endpoint", "--")):
            m = layout[key]
            scale = max(m["history_by_step"].max(), m["lanes_by_point"].max(), 1e-30)
            axes[0].plot(np.arange(h) - (h - 1), m["history_by_step"] / scale, "o" + style, ms=3, label=key)
            for lane in range(lanes):
                axes[1].plot(
                    m["lanes_by_point"][lane] / scale, style, color=f"C{lane}", label=f"lane {lane} ({key})"
                )
        axes[0].set(xlabel="history step (0 = last observed)", ylabel="mean |grad| (relative)")
        axes[0].set_title("Saliency over the history (summed over its 6 features)", fontsize=9)
        axes[1].set(xlabel="lane point (in the lane's order)", ylabel="mean |grad| (relative)")
        axes[1].set_title("Saliency over the lanes' points (summed over x, y)", fontsize=9)
        axes[0].legend(fontsize=7)
        axes[1].legend(fontsize=6, ncol=2)
        fig.suptitle(
            f"d loss / d input and d endpoint / d input on {split}; "
            f"dependency check {'passed' if independent else 'FAILED'} (max cross {max_cross:.2g})",
            fontsize=9,
        )
        return fig

    return _result("saliency", passed, verdict, numbers, out_dir, draw)


# ----------------------------------------------------------------------------------------------------
# gradients: vanishing and exploding


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
    split = _split(ds, "train", samples)
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
    orders = {name: _orders(n[0], n[-1]) for name, n in norms.items()}
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

    return _result("gradients", passed, verdict, numbers, out_dir, draw)


# ----------------------------------------------------------------------------------------------------
# toy: contradictory data in one dimension


def _toy_net(outputs: int, width: int) -> nn.Sequential:
    """The lectures' 1-D regressor: x (N, 1) -> two ReLU layers of `width` -> (N, outputs)."""
    return nn.Sequential(
        nn.Linear(1, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, outputs)
    )


def _fit(
    net: nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, steps: int, lr: float
) -> None:
    """Full-batch Adam on loss_fn(net(x)) for x (N, 1)."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        loss = loss_fn(net(x))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


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
    _fit(mse, lambda out: F.mse_loss(out, y), x, steps, 3e-3)

    def gaussian_nll(out: torch.Tensor) -> torch.Tensor:  # the lectures' loss, constant term dropped
        var = F.softplus(out[:, 1:]) + 1e-6
        return (torch.log(var) / 2 + (y - out[:, :1]) ** 2 / (2 * var)).mean()

    nll = _toy_net(2, width)
    _fit(nll, gaussian_nll, x, steps, 3e-3)
    gt = torch.stack([torch.zeros_like(y), y], -1)  # (N, 1, 2): one step at (0, y)
    modal = _toy_net(6, width)
    _fit(modal, lambda out: losses.loss(_two_modes(out), gt, cfg.loss)[0], x, steps, 3e-3)

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
        for ax in axes:
            ax.set_xlabel("x")
            ax.legend(fontsize=7)
        return fig

    return _result("toy", passed, verdict, numbers, out_dir, draw)


# ----------------------------------------------------------------------------------------------------
# registry

CHECKS: dict[str, Callable[..., CheckResult]] = {
    "init": check_init,
    "overfit": check_overfit,
    "lr-range": check_lr_range,
    "curvature": check_curvature,
    "saliency": check_saliency,
    "gradients": check_gradients,
    "toy": check_toy,
}


def run_check(name: str, ds: Dataset, cfg: TrainConfig, out_dir: str | Path | None = None) -> CheckResult:
    """Run the check called `name` with its default knobs; the figure goes to out_dir/name.png."""
    if name not in CHECKS:
        raise TinypredError(f"unknown check {name!r}; expected one of: {', '.join(CHECKS)}")
    return CHECKS[name](ds, cfg, Path(out_dir) if out_dir is not None else None)
