"""What the training loop measures besides its steps: the loss at initialisation against its expected
value (`init_report`, written to init.json; `tinypred diagnose init` reads it too) and each epoch's
validation row (`evaluate_epoch`: losses, val metrics, the baselines beside them).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from tinypred.evaluation.tables import evaluate_scenes
from tinypred.predictors.losses import loss
from tinypred.predictors.model import ModelOutput, TrajectoryMLP
from tinypred.predictors.prediction import EVAL_BATCH, model_prediction
from tinypred.training.checkpoint import TrainState
from tinypred.training.config import TrainConfig
from tinypred.training.step import Split


@torch.no_grad()
def evaluate_epoch(
    model: TrajectoryMLP,
    cfg: TrainConfig,
    train_split: Split,
    val_split: Split,
    state: TrainState,
    epoch: int,
    train_loss: float,
    lr: float,
    baselines: dict[str, dict],
) -> dict[str, Any]:
    """One epoch's log row: train/val loss, val metrics (all and decision), the baselines' for reference."""
    model.eval()
    val_loss = 0.0
    for i in range(0, len(val_split.x), EVAL_BATCH):
        out = model(val_split.x[i : i + EVAL_BATCH])
        val_loss += loss(out, val_split.y[i : i + EVAL_BATCH], cfg.loss)[0].item() * len(out.logits)
    prediction = model_prediction(model, val_split.x, train_split.x, train_split.scenes.future)
    metrics = evaluate_scenes(prediction, val_split.scenes)
    model.train()
    row: dict[str, Any] = {
        "epoch": epoch + 1,  # counted from 1, as everywhere a person reads it
        "step": state.step,
        "lr": lr,
        "train_loss": train_loss,
        "val_loss": val_loss / len(val_split.x),
        "seconds": state.train_seconds,
    }
    for sl, prefix in (("all", "val_"), ("decision", "val_decision_")):
        for m in ("minADE@6", "minFDE@6", "MR@6", "NLL"):
            if sl in metrics:
                row[prefix + m] = metrics[sl][m]
    for name, res in baselines.items():
        for m in ("minFDE@6", "MR@6"):
            row[f"{name}_{m}"] = res["all"][m]
            if "decision" in res:
                row[f"{name}_decision_{m}"] = res["decision"][m]
    return row


def init_report(model: TrajectoryMLP, split: Split, cfg: TrainConfig) -> dict[str, float]:
    """The loss at initialisation against what it should be, on up to 1024 training samples.

    Expected: CE = log K (logits ~ 0 give uniform probabilities); regression = the same loss for a model
    that predicts no motion at all (the head starts near zero), an input-independent baseline.
    """
    n = min(1024, len(split.x))
    x, y = split.x[:n], split.y[:n]
    with torch.no_grad():
        out = model(x)
        total, parts = loss(out, y, cfg.loss)
        still = ModelOutput(torch.zeros_like(out.modes), torch.zeros_like(out.logits), out.scale)
        _, still_parts = loss(still, y, cfg.loss)
    report = {"loss": total.item(), **{k: v.item() for k, v in parts.items()}}
    report |= {f"expected_{k}": v.item() for k, v in still_parts.items()}
    if "ce" in parts:
        report["expected_ce"] = math.log(cfg.model.modes)
    return report
