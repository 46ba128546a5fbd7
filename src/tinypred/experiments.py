"""The experiments of the week: the loss ablation and the training-time benchmark per device.

Ablation: L2 versus min-over-modes (WTA), with and without the classification term, and the main
configuration at a learning rate an order of magnitude off. Mode averaging is measured, not just seen:
at decision points, `mode_spread` (the mean pairwise distance between the K predicted endpoints) and,
for each predicted endpoint, its distance to the nearest branch of the ground-truth mixture against its
distance to the mixture's mean (probability-weighted over the predicted modes).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tinypred.dataset import Dataset
from tinypred.encoding import EncodedScenes
from tinypred.metrics import Prediction, evaluate_scenes
from tinypred.train import (
    Split,
    TrainConfig,
    as_prediction,
    build_model,
    forward_backward,
    load_model,
    make_optimizer,
    resolve_device,
    train,
)


def mode_spread(modes: np.ndarray) -> np.ndarray:
    """(N,) mean pairwise distance between the K predicted endpoints of modes (N, K, T, 2); 0 for K = 1."""
    end = modes[:, :, -1]
    k = end.shape[1]
    if k < 2:
        return np.zeros(len(end))
    dist = np.linalg.norm(end[:, :, None] - end[:, None], axis=-1)
    return dist.sum((1, 2)) / (k * (k - 1))


def branch_distances(prediction: Prediction, scenes: EncodedScenes) -> tuple[np.ndarray, np.ndarray]:
    """(N,) probability-weighted distance of the predicted endpoints to the nearest ground-truth branch,
    and (N,) the same to the mixture's mean endpoint. Mode averaging: near the mean, far from branches."""
    end = prediction.modes[:, :, -1]  # (N, K, 2)
    branches = scenes.alt_futures[:, :, -1]  # (N, M, 2)
    to_branch = np.linalg.norm(end[:, :, None] - branches[:, None], axis=-1)  # (N, K, M)
    nearest = np.where(scenes.alt_mask[:, None], to_branch, np.inf).min(-1)
    mean = (scenes.alt_probs[..., None] * branches).sum(1)  # (N, 2)
    to_mean = np.linalg.norm(end - mean[:, None], axis=-1)
    return (prediction.probs * nearest).sum(1), (prediction.probs * to_mean).sum(1)


def averaging_stats(prediction: Prediction, scenes: EncodedScenes) -> dict[str, float]:
    """Mode-averaging measures at decision points (scenes whose mixture has two or more branches)."""
    split = scenes.is_decision & (scenes.alt_mask.sum(1) >= 2)
    nearest, mean = branch_distances(prediction, scenes)
    return {
        "mode_spread": float(mode_spread(prediction.modes)[split].mean()),
        "endpoint_to_nearest_branch_m": float(nearest[split].mean()),
        "endpoint_to_mixture_mean_m": float(mean[split].mean()),
    }


# What the ablation reports per run, at decision points.
ABLATION_COLUMNS = (
    "minFDE@6",
    "MR@6",
    "NLL",
    "mode_spread",
    "endpoint_to_nearest_branch_m",
    "endpoint_to_mixture_mean_m",
)


def ablation_grid(base: TrainConfig) -> list[dict]:
    """The runs: name, loss kind, classification term on/off, learning rate."""
    good, off = base.lr, base.lr * 10
    return [
        {"name": "wta+ce", "loss": "wta", "ce": True, "lr": good},
        {"name": "wta", "loss": "wta", "ce": False, "lr": good},
        {"name": "l2+ce", "loss": "l2", "ce": True, "lr": good},
        {"name": "l2", "loss": "l2", "ce": False, "lr": good},
        {"name": "nll", "loss": "nll", "ce": False, "lr": good},
        {"name": f"wta+ce lr x10 ({off:g})", "loss": "wta", "ce": True, "lr": off},
        {"name": f"wta+ce lr /10 ({good / 10:g})", "loss": "wta", "ce": True, "lr": good / 10},
    ]


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
    scenes = ds.split(split)
    rows = []
    for i, run in enumerate(ablation_grid(base)):
        ce_weight = base.loss.ce_weight if run["ce"] else 0.0
        cfg = base.model_copy(
            update={
                "loss": base.loss.model_copy(update={"kind": run["loss"], "ce_weight": ce_weight}),
                "lr": run["lr"],
            }
        )
        run_dir = Path((done or {}).get(run["name"], out_dir / f"run{i}"))
        if run["name"] not in (done or {}):
            train(ds, cfg, run_dir, progress=False)
        history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        loaded = load_model(run_dir / "model.safetensors")
        device = torch.device("cpu")
        pred = as_prediction(
            loaded.model,
            Split.of(scenes, loaded.normalizer, device),
            loaded.config.loss,
            Split.of(ds.train, loaded.normalizer, device),
        )
        metrics = evaluate_scenes(pred, scenes)
        row = {
            **run,
            "dir": str(run_dir),
            "train_seconds": history[-1]["seconds"],
            "best_epoch": loaded.info["epoch"],
            "all": metrics["all"],
            "decision": {**metrics["decision"], **averaging_stats(pred, scenes)},
        }
        rows.append(row)
        if on_run is not None:
            on_run(row)
    return rows


# ----------------------------------------------------------------------------------------------------
# Wall-clock training time per device

DEVICES = ("cpu", "cuda", "mps")


def _bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type in ("cpu", "mps")


def device_bench(ds: Dataset, cfg: TrainConfig, steps: int = 200, batch_size: int = 512) -> list[dict]:
    """Time `steps` training steps of the model on every device and precision; absent ones say so.

    Rows: device, precision (fp32 / bf16 autocast), status ("ok" / "unavailable" / "unsupported"),
    seconds (wall clock for the steps, after a warm-up), samples_per_s, and the final loss.
    """
    rows = []
    for name in DEVICES:
        try:
            device = resolve_device(name)
        except ValueError:
            rows += [{"device": name, "precision": p, "status": "unavailable"} for p in ("fp32", "bf16")]
            continue
        for precision in ("fp32", "bf16"):
            if precision == "bf16" and not _bf16_supported(device):
                rows.append({"device": name, "precision": precision, "status": "unsupported"})
                continue
            rows.append(
                {
                    "device": name,
                    "precision": precision,
                    "status": "ok",
                    **_time_training(ds, cfg, device, precision == "bf16", steps, batch_size),
                }
            )
    return rows


def _time_training(
    ds: Dataset, cfg: TrainConfig, device: torch.device, bf16: bool, steps: int, batch_size: int
) -> dict:
    split = Split.of(ds.train, ds.normalizer, device)
    model = build_model(ds, cfg)
    model.to(device)
    run_cfg = cfg.model_copy(update={"batch_size": batch_size})
    opt = make_optimizer(model, run_cfg)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(split.x)

    def run(k: int) -> torch.Tensor:
        total = torch.zeros(())
        for _ in range(k):
            idx = torch.randint(0, n, (batch_size,), generator=gen).to(device)
            total, _ = forward_backward(model, opt, split.x[idx], split.y[idx], run_cfg, autocast)
            opt.step()
        return total

    run(10).item()  # warm-up: kernels, allocator, autotuning
    _sync(device)
    start = time.perf_counter()
    final = run(steps).item()
    _sync(device)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "samples_per_s": steps * batch_size / seconds,
        "steps": steps,
        "batch_size": batch_size,
        "final_loss": final if math.isfinite(final) else None,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()
