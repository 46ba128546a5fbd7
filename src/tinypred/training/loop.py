"""Training: a plain loop over tensors held on the device, instrumented so you can see inside it.

    for each epoch:  train_epoch (one `train_step` per batch)  ->  evaluate_epoch  ->  keep the best
                     model  ->  checkpoint  ->  log

A run directory holds:
    config.json        the full TrainConfig and the data it was trained on
    model.safetensors  the best weights so far (lowest val minFDE@6), with the normaliser and config
    checkpoint.safetensors  everything needed to resume exactly (see `checkpoint`)
    metrics.csv / metrics.jsonl   one row per epoch: losses, val metrics, the baselines beside them
    gradients.jsonl    per-layer gradient norms and update-to-weight ratios every `log_every` steps
    init.json          the loss at initialisation against its expected value
    tb/                TensorBoard event files
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tinypred.data.dataset import Dataset
from tinypred.errors import TinypredError
from tinypred.evaluation.tables import evaluate_scenes
from tinypred.fileio import write_json
from tinypred.predictors.losses import loss
from tinypred.predictors.model import ModelOutput, TrajectoryMLP
from tinypred.predictors.model_file import MODEL_FILE, save_model
from tinypred.predictors.prediction import EVAL_BATCH, model_prediction
from tinypred.training.checkpoint import CHECKPOINT_FILE, TrainState, load_checkpoint, save_checkpoint
from tinypred.training.config import TrainConfig, resolve_device
from tinypred.training.log import RunLog
from tinypred.training.step import Split, build_model, first_bad_layer, lr_lambda, make_optimizer, train_step


@dataclass
class RunResult:
    out_dir: Path
    history: list[dict]  # one row per epoch
    best_epoch: int
    best_val: dict[str, float]  # val metrics ("all" and "decision") of the best epoch
    init: dict[str, float]
    train_seconds: float
    warnings: list[str] = field(default_factory=list)


def train(
    ds: Dataset,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    baselines: dict[str, dict] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> RunResult:
    """Train a TrajectoryMLP on ds.train, validating on ds.val every epoch; see the module docstring.

    `baselines` maps names to their validation tables (`evaluate_scenes`), logged beside the model's;
    `on_epoch` receives each epoch's log row.
    """
    out_dir = Path(out_dir)
    _check_run_dir(out_dir, cfg, resume)
    if len(ds.train) == 0 or len(ds.val) == 0:
        raise TinypredError(f"{ds.path}: training needs non-empty train and val splits")
    if not (ds.train.has_future and ds.val.has_future):
        raise TinypredError(f"{ds.path}: training needs train and val splits whose futures are known")
    device = resolve_device(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)  # the order of the batches; build_model seeds the rest
    train_split = Split.of(ds.train, ds.normalizer, device)
    val_split = Split.of(ds.val, ds.normalizer, device)
    model = build_model(ds, cfg).to(device)
    opt = make_optimizer(model, cfg)
    steps_per_epoch = math.ceil(len(ds.train) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total_steps, cfg.warmup_frac, cfg.schedule))

    if resume:
        state = load_checkpoint(out_dir / CHECKPOINT_FILE, model, opt, sched, gen)
        init = json.loads((out_dir / "init.json").read_text())
    else:
        state = TrainState()
        out_dir.mkdir(parents=True, exist_ok=True)
        run_config = {"train": _as_json(cfg), "data": str(ds.path) if ds.path else None, "data_seed": ds.seed}
        write_json(out_dir / "config.json", run_config)
        init = init_report(model, train_split, cfg)
        write_json(out_dir / "init.json", init)

    log = RunLog(out_dir, purge_step=state.step if resume else None)
    bar = _progress(progress, total_steps, state.step)
    try:
        for epoch in range(state.epoch, cfg.epochs):
            train_loss = train_epoch(model, opt, sched, train_split, cfg, gen, state, log, bar, epoch)
            lr = sched.get_last_lr()[0]
            row = evaluate_epoch(
                model, cfg, train_split, val_split, state, epoch, train_loss, lr, baselines or {}
            )
            state.history.append(row)
            log.epoch(row, state.step)
            if row["val_minFDE@6"] < state.best:
                state.best, state.best_epoch, state.bad_epochs = row["val_minFDE@6"], epoch, 0
                info = {"epoch": epoch, "step": state.step, "val": row}
                save_model(out_dir / MODEL_FILE, model, ds.normalizer, _as_json(cfg), info, ds.dt)
            else:
                state.bad_epochs += 1
            state.epoch = epoch + 1
            save_checkpoint(out_dir / CHECKPOINT_FILE, model, opt, sched, gen, state)
            log.write(state)
            if on_epoch is not None:
                on_epoch(row)
            if cfg.patience and state.bad_epochs >= cfg.patience:
                break
    finally:
        log.close()
        if bar is not None:
            bar.stop()
    best = state.history[state.best_epoch]
    best_val = {k[4:]: v for k, v in best.items() if k.startswith("val_")}
    return RunResult(
        out_dir, state.history, state.best_epoch, best_val, init, state.train_seconds, state.warnings
    )


def _as_json(cfg: TrainConfig) -> dict[str, Any]:
    return json.loads(cfg.model_dump_json())


def _check_run_dir(out_dir: Path, cfg: TrainConfig, resume: bool) -> None:
    """A new run needs a directory without a run; a resumed one, this run's own config."""
    if resume:
        path = out_dir / "config.json"
        saved = json.loads(path.read_text()) if path.exists() else None
        if saved is None or saved["train"] != _as_json(cfg):
            raise TinypredError(f"{path} is missing or differs from this run's config", arg="resume")
    elif (out_dir / CHECKPOINT_FILE).exists():
        raise TinypredError(
            f"{out_dir} already holds a run; resume it or choose another directory", arg="out_dir"
        )


def train_epoch(
    model: TrajectoryMLP,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    split: Split,
    cfg: TrainConfig,
    gen: torch.Generator,
    state: TrainState,
    log: RunLog,
    bar: Any,
    epoch: int,
) -> float:
    """One pass over the shuffled training split; returns the mean training loss."""
    start = time.perf_counter()
    model.train()
    n = len(split.x)
    steps = math.ceil(n / cfg.batch_size)
    perm = torch.randperm(n, generator=gen).to(split.x.device)
    linear = model.linear_layers()
    loss_sum = torch.zeros((), device=split.x.device)
    for i in range(steps):
        idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        record = state.step % cfg.log_every == 0
        before = [m.weight.detach().clone() for _, m in linear] if record else []
        total, norm = train_step(model, opt, split.x[idx], split.y[idx], cfg)
        # One sync per step: the global gradient norm (which clipping computes anyway) tells whether
        # anything went non-finite, in the loss or in any gradient.
        if not math.isfinite(norm.item()):
            raise _diverged(model, total, state, epoch, log.out_dir / CHECKPOINT_FILE)
        sched.step()
        if record:
            log.gradients(state, linear, before, total.item())
        loss_sum += total.detach()
        state.step += 1
        if bar is not None:
            text = f"epoch {epoch + 1}/{cfg.epochs} loss {total.item():.3f}" if record else None
            bar.update(bar.task_ids[0], advance=1, description=text)
    state.train_seconds += time.perf_counter() - start
    return loss_sum.item() / steps


def _diverged(
    model: TrajectoryMLP, total: torch.Tensor, state: TrainState, epoch: int, ckpt: Path
) -> TinypredError:
    kept = (
        f"the last good checkpoint ({ckpt}, epoch {state.epoch}) is kept"
        if ckpt.exists()
        else "no checkpoint had been written yet"
    )
    what = "loss" if not torch.isfinite(total) else "gradient"
    return TinypredError(
        f"training stopped at step {state.step} (epoch {epoch}): non-finite {what}, first in "
        f"{first_bad_layer(model)}; {kept}"
    )


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
        "epoch": epoch,
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


def _progress(enabled: bool, total: int, done: int) -> Any:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    bar.add_task("training", total=total, completed=done)
    bar.start()
    return bar
