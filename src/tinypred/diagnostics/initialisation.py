"""The init check: the loss at initialisation against its expected value; activations and gradients
per layer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from tinypred.data.dataset import Dataset
from tinypred.diagnostics.common import CheckResult, make_result, sample_split
from tinypred.predictors import losses
from tinypred.training.config import TrainConfig
from tinypred.training.step import build_model
from tinypred.training.validation import init_report


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
    split = sample_split(ds, "train", samples)
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
        for ax, key, title, ylabel in (
            (axes[0], "std", "pre-activation std across the batch, per layer", "std (log scale)"),
            (axes[1], "grad_norm", "weight gradient norm per layer", "||d loss / d W|| (L2, log scale)"),
        ):
            ax.semilogy(names, [stats[n][key] for n in names], "o-")
            ax.set_title(title, fontsize=9)
            ax.set(xlabel="layer (input to output)", ylabel=ylabel)
            ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        fig.suptitle(
            f"At init ({cfg.model.init}, {cfg.model.activation}): loss {report['loss']:.3g}, "
            f"zero-input loss {zero_input_loss:.3g}",
            fontsize=9,
        )
        return fig

    return make_result("init", passed, verdict, numbers, out_dir, draw)
