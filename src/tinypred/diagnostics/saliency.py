"""The saliency check: which inputs the loss depends on; no example may depend on another in its batch."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from tinypred.data.dataset import Dataset
from tinypred.data.encoding import feature_layout, feature_names
from tinypred.diagnostics.common import CheckResult, Ticker, make_result, sample_split, training_stream
from tinypred.predictors import losses
from tinypred.predictors.model import ModelOutput, TrajectoryMLP
from tinypred.training.config import TrainConfig
from tinypred.training.step import Split, build_model, make_optimizer


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
    stream = training_stream(
        model, make_optimizer(model, cfg), sample_split(ds, "train"), cfg, Ticker("saliency", steps)
    )
    for _ in range(steps):
        next(stream)
    fixed = sample_split(ds, "train", batch)
    cross = cross_example_gradients(model, fixed.x, fixed.y, cfg)  # still in train mode, as it trained
    diagonal = torch.eye(len(cross), dtype=torch.bool)
    max_cross = cross[~diagonal].max().item() if len(cross) > 1 else 0.0
    max_self = cross[diagonal].max().item()
    independent = max_cross <= 1e-12

    sal = input_saliency(model, sample_split(ds, split, samples), cfg)
    shapes = ds.shapes
    h, lanes, p, m = shapes["H"], shapes["L"], shapes["P"], shapes["M"]
    names = feature_names(h, lanes, p, m)
    groups = feature_layout(h, lanes, p, m)
    hist, lane_points, others = groups["history"], groups["lanes"], groups["neighbours"]
    layout = {
        key: {
            "history_by_step": s[hist].reshape(h, -1).sum(-1),  # (H,) oldest first
            "lanes_by_point": s[lane_points].reshape(lanes, p, 2).sum(-1),  # (L, P)
            "groups": {  # "masks": every mask and type flag, of the history, the map and the neighbours
                "history": s[hist].sum(),
                "lanes": s[lane_points].sum(),
                "neighbours": s[others].sum(),
                "masks": s.sum() - s[hist].sum() - s[lane_points].sum() - s[others].sum(),
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

    return make_result("saliency", passed, verdict, numbers, out_dir, draw)
