"""The ablation: L2 versus min-over-modes (WTA), with and without the classification term, the main
configuration at a learning rate an order of magnitude off, and the main configuration blind to the
neighbours (its agent encoder off): what reading the other agents is worth, on the interactive scenes.

Mode averaging is measured, not just seen (`tinypred.evaluation.averaging`): at decision points, the
mode spread and each predicted endpoint's distance to the nearest branch of the ground-truth mixture
against its distance to the mixture's mean.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tinypred.data.dataset import Dataset
from tinypred.evaluation.averaging import averaging_stats
from tinypred.evaluation.tables import evaluate_scenes
from tinypred.predictors.model_file import MODEL_FILE, load_model
from tinypred.predictors.prediction import predict_split
from tinypred.training.config import TrainConfig
from tinypred.training.loop import train


def ablation_grid(base: TrainConfig) -> list[dict]:
    """The runs: name, loss kind, classification term on/off, learning rate, neighbours read or not."""
    good, off = base.lr, base.lr * 10
    runs = [
        {"name": "wta+ce", "loss": "wta", "ce": True, "lr": good},
        {"name": "wta", "loss": "wta", "ce": False, "lr": good},
        {"name": "l2+ce", "loss": "l2", "ce": True, "lr": good},
        {"name": "l2", "loss": "l2", "ce": False, "lr": good},
        {"name": "nll", "loss": "nll", "ce": False, "lr": good},
        {"name": f"wta+ce lr x10 ({off:g})", "loss": "wta", "ce": True, "lr": off},
        {"name": f"wta+ce lr /10 ({good / 10:g})", "loss": "wta", "ce": True, "lr": good / 10},
    ]
    runs = [run | {"neighbours": base.model.neighbours} for run in runs]
    return [
        *runs,
        {"name": "wta+ce no neighbours", "loss": "wta", "ce": True, "lr": good, "neighbours": False},
    ]


def run_config(base: TrainConfig, run: dict) -> TrainConfig:
    """The TrainConfig of one ablation run: `base` with its loss, classification term and lr."""
    ce_weight = base.loss.ce_weight if run["ce"] else 0.0
    loss = base.loss.model_copy(update={"kind": run["loss"], "ce_weight": ce_weight})
    model = base.model.model_copy(update={"neighbours": run["neighbours"]})
    return base.model_copy(update={"loss": loss, "lr": run["lr"], "model": model})


def run_ablation(
    ds: Dataset,
    base: TrainConfig,
    out_dir: str | Path,
    split: str = "test",
    done: dict[str, Path] | None = None,
    on_run: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train every run of `ablation_grid` and evaluate it on `split`; each run has its own directory.

    `done` maps run names to run directories already trained with that configuration (the demo's main
    run is the "wta+ce" one): those are evaluated, not trained again.
    """
    out_dir = Path(out_dir)
    done = done or {}
    scenes = ds.split(split)
    rows = []
    for i, run in enumerate(ablation_grid(base)):
        run_dir = Path(done.get(run["name"], out_dir / f"run{i}"))
        if run["name"] not in done:
            train(ds, run_config(base, run), run_dir, progress=False)
        history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        loaded = load_model(run_dir / MODEL_FILE)
        pred = predict_split(loaded, ds, split)
        metrics = evaluate_scenes(pred, scenes)
        row = {
            **run,
            "dir": str(run_dir),
            "train_seconds": history[-1]["seconds"],
            "best_epoch": loaded.info["epoch"],
            "all": metrics["all"],
            "decision": {**metrics["decision"], **averaging_stats(pred, scenes)},
            **{part: metrics[part] for part in ("interactive", "other") if part in metrics},
        }
        rows.append(row)
        if on_run is not None:
            on_run(row)
    return rows
