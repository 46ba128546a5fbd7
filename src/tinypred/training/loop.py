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
from tinypred.predictors.model_file import MODEL_FILE, encoding_of, save_model
from tinypred.predictors.prediction import EVAL_BATCH, model_prediction
from tinypred.training.checkpoint import CHECKPOINT_FILE, TrainState, load_checkpoint, save_checkpoint
from tinypred.training.config import TrainConfig, resolve_device
from tinypred.training.log import RunLog
from tinypred.training.run_dir import CONFIG_FILE, check_same_run, identity, locked, read_identity
from tinypred.training.step import Split, bad_parameters, build_model, lr_lambda, make_optimizer, train_step


@dataclass
class RunResult:
    out_dir: Path
    history: list[dict]  # one row per epoch
    best_epoch: int  # counted from 1
    best_val: dict[str, float]  # val metrics ("all" and "decision") of the best epoch
    init: dict[str, float]
    train_seconds: float
    warnings: list[str] = field(default_factory=list)
    started: str = "new"  # "new", "resumed at step N", or why a resume started from scratch


def train(
    ds: Dataset,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
    baselines: dict[str, dict] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> RunResult:
    """Train a TrajectoryMLP on ds.train, validating on ds.val every epoch; see the module docstring.

    The run directory is locked while training. `resume` continues the run in `out_dir` (it must be
    this run: the same data and config); without a checkpoint yet (killed before its first), it starts
    from scratch and says so in `RunResult.started`. `baselines` maps names to their validation tables
    (`evaluate_scenes`), logged beside the model's; a final model worse than "cv" gets a warning.
    `on_epoch` receives each epoch's log row.
    """
    out_dir = Path(out_dir)
    if len(ds.train) == 0 or len(ds.val) == 0:
        raise TinypredError(f"{ds.path}: training needs non-empty train and val splits")
    if not (ds.train.has_future and ds.val.has_future):
        raise TinypredError(f"{ds.path}: training needs train and val splits whose futures are known")
    device = resolve_device(cfg.device)
    with locked(out_dir):
        return _train(ds, cfg, out_dir, device, resume, progress, baselines or {}, on_epoch)


def _train(
    ds: Dataset,
    cfg: TrainConfig,
    out_dir: Path,
    device: torch.device,
    resume: bool,
    progress: bool,
    baselines: dict[str, dict],
    on_epoch: Callable[[dict], None] | None,
) -> RunResult:
    run = identity(ds, cfg)
    started = _how_to_start(out_dir, run, resume)
    gen = torch.Generator().manual_seed(cfg.seed)  # the order of the batches; build_model seeds the rest
    train_split = Split.of(ds.train, ds.normalizer, device)
    val_split = Split.of(ds.val, ds.normalizer, device)
    model = build_model(ds, cfg).to(device)
    opt = make_optimizer(model, cfg)
    steps_per_epoch = math.ceil(len(ds.train) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total_steps, cfg.warmup_frac, cfg.schedule))

    perm = None
    if started.startswith("resumed"):
        state, perm = load_checkpoint(out_dir / CHECKPOINT_FILE, model, opt, sched, gen)
        init = _read_init(out_dir / "init.json")
        started = f"resumed at step {state.step}"
    else:
        state = TrainState()
        write_json(out_dir / CONFIG_FILE, run)
        init = init_report(model, train_split, cfg)
        write_json(out_dir / "init.json", init)

    def checkpoint(epoch_perm: torch.Tensor | None = None) -> None:
        save_checkpoint(out_dir / CHECKPOINT_FILE, model, opt, sched, gen, state, epoch_perm)

    log = RunLog(out_dir, purge_step=state.step if resume else None)  # a restart purges a dead attempt
    if state.step == 0:
        log.baselines(baselines)
    bar = _progress(progress, total_steps, state.step)
    try:
        for epoch in range(state.epoch, cfg.epochs):
            train_loss = train_epoch(
                model, opt, sched, train_split, cfg, gen, state, log, bar, epoch, perm, checkpoint
            )
            perm = None
            lr = sched.get_last_lr()[0]
            row = evaluate_epoch(model, cfg, train_split, val_split, state, epoch, train_loss, lr, baselines)
            state.history.append(row)
            log.epoch(row, state.step)
            if row["val_minFDE@6"] < state.best:
                state.best, state.best_epoch, state.bad_epochs = row["val_minFDE@6"], epoch, 0
                info = {"epoch": epoch + 1, "step": state.step, "val": row}
                save_model(
                    out_dir / MODEL_FILE, model, ds.normalizer, _as_json(cfg), info, ds.dt, encoding_of(ds)
                )
            else:
                state.bad_epochs += 1
            state.epoch = epoch + 1
            checkpoint()
            log.write(state)
            if on_epoch is not None:
                on_epoch(row)
            if cfg.patience and state.bad_epochs >= cfg.patience:
                break
        log.hparams(_hparams(cfg), state.history[state.best_epoch])
    finally:
        log.close()
        if bar is not None:
            bar.stop()
    best = state.history[state.best_epoch]
    best_val = {k[4:]: v for k, v in best.items() if k.startswith("val_")}
    warnings = list(state.warnings)
    if "cv" in baselines and best_val["minFDE@6"] > baselines["cv"]["all"]["minFDE@6"]:
        warnings.append(
            f"the best model ({best_val['minFDE@6']:.2f} m val minFDE@6) is worse than constant velocity "
            f"({baselines['cv']['all']['minFDE@6']:.2f} m): it has not learned; check the learning rate"
        )
    return RunResult(
        out_dir, state.history, state.best_epoch + 1, best_val, init, state.train_seconds, warnings, started
    )


def _read_init(path: Path) -> dict[str, float]:
    """The run's init.json; a damaged one is a user error naming it."""
    try:
        init = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TinypredError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(init, dict) or not all(isinstance(v, float | int) for v in init.values()):
        raise TinypredError(f"{path}: expected an object of numbers (the loss at initialisation)")
    return init


def _as_json(cfg: TrainConfig) -> dict[str, Any]:
    return json.loads(cfg.model_dump_json())


def _how_to_start(out_dir: Path, run: dict[str, Any], resume: bool) -> str:
    """ "new", "resumed" (from the checkpoint) or why a resume starts from scratch; refuses a directory
    holding another run, and a resume that is not this run."""
    has_checkpoint = (out_dir / CHECKPOINT_FILE).exists()
    if not resume:
        if has_checkpoint:
            raise TinypredError(
                f"{out_dir} already holds a run; resume it or choose another directory", arg="out_dir"
            )
        return "new"
    saved = read_identity(out_dir)
    if saved is None:
        if has_checkpoint:
            raise TinypredError(
                f"{out_dir / CONFIG_FILE}: missing beside a checkpoint; cannot tell what run this is"
            )
        return "nothing to resume in an empty directory: started from scratch"
    check_same_run(out_dir, saved, run)
    if not has_checkpoint:
        return "no checkpoint yet (stopped before its first): started from scratch"
    if not (out_dir / "init.json").is_file():
        raise TinypredError(f"{out_dir / 'init.json'}: missing beside the checkpoint")
    return "resumed"


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
    perm: torch.Tensor | None = None,
    checkpoint: Callable[[torch.Tensor], None] | None = None,
) -> float:
    """One pass over the shuffled training split; returns the mean training loss. `perm` continues an
    epoch a mid-epoch checkpoint stopped in (from state.epoch_step); `checkpoint(perm)` saves one, as
    often as cfg.checkpoint_every says."""
    start = last_checkpoint = time.perf_counter()
    model.train()
    n = len(split.x)
    steps = math.ceil(n / cfg.batch_size)
    if perm is None:
        perm = torch.randperm(n, generator=gen)
        state.epoch_step, state.epoch_loss_sum = 0, 0.0
    perm = perm.to(split.x.device)
    every_kind, every = cfg.checkpoint_interval
    linear = model.linear_layers()
    loss_sum = torch.tensor(state.epoch_loss_sum, device=split.x.device)
    for i in range(state.epoch_step, steps):
        idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        record = state.step % cfg.log_every == 0
        before = [m.weight.detach().clone() for _, m in linear] if record else []
        total, norm = train_step(model, opt, split.x[idx], split.y[idx], cfg)
        # One sync per step: the global gradient norm (which clipping computes anyway) tells whether
        # anything went non-finite, in the loss or in any gradient.
        if not math.isfinite(norm.item()):
            raise _diverged(model, total, state, epoch, log.out_dir / MODEL_FILE)
        if record:  # the lr this step used: before the schedule moves on
            log.gradients(state, linear, before, total.item(), sched.get_last_lr()[0])
        sched.step()
        if cfg.histogram_every and state.step % cfg.histogram_every == 0:
            log.histograms(state.step, linear)
        loss_sum += total.detach()
        state.step += 1
        if bar is not None:
            text = f"epoch {epoch + 1}/{cfg.epochs} loss {total.item():.3f}" if record else None
            bar.update(bar.task_ids[0], advance=1, description=text)
        now = time.perf_counter()
        due = state.step % every == 0 if every_kind == "steps" else now - last_checkpoint >= 60 * every
        if checkpoint is not None and every and due and i + 1 < steps:
            state.train_seconds += now - start
            start = last_checkpoint = now
            state.epoch_step, state.epoch_loss_sum = i + 1, loss_sum.item()
            checkpoint(perm)
    state.train_seconds += time.perf_counter() - start
    state.epoch_step, state.epoch_loss_sum = 0, 0.0
    return loss_sum.item() / steps


def _diverged(
    model: TrajectoryMLP, total: torch.Tensor, state: TrainState, epoch: int, best: Path
) -> TinypredError:
    bad = bad_parameters(model)
    count = sum(1 for _ in model.parameters())
    where = f"first in {bad[0]} ({len(bad)} of {count} parameters)" if bad else "in the loss itself"
    kept = (
        f"the best model by validation so far is kept ({best}, epoch {state.best_epoch + 1})"
        if state.best_epoch >= 0
        else "no model had been saved yet"
    )
    what = "loss" if not torch.isfinite(total) else "gradient"
    return TinypredError(
        f"training stopped at step {state.step} (epoch {epoch + 1}): non-finite {what}, {where}; {kept}; "
        "lower the learning rate or turn gradient clipping on"
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


def _hparams(cfg: TrainConfig) -> dict[str, Any]:
    """The config's knobs as flat TensorBoard hparams (numbers, strings and bools only)."""
    flat: dict[str, Any] = {}
    for key, value in cfg.model_dump().items():
        for sub, v in value.items() if isinstance(value, dict) else [(None, value)]:
            if isinstance(v, int | float | str | bool):
                flat[f"{key}.{sub}" if sub else key] = v
    return flat


def _progress(enabled: bool, total: int, done: int) -> Any:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    bar.add_task("training", total=total, completed=done)
    bar.start()
    return bar
