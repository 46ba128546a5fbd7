"""Training: a plain loop over batches on the device, instrumented so you can see inside it.

    for each epoch:  train_epoch (one `train_step` per batch of the `loader`)  ->  evaluate_epoch  ->
                     keep the best model  ->  checkpoint  ->  log

One loop, whatever the data and however many processes: the batches come from a `loader.BatchLoader`
(resident on the device, or streamed from memory-mapped shards), and under a process group of several
processes (torchrun; see `distributed`) the model is wrapped in DistributedDataParallel. Then
`batch_size` is the global batch, divided among the ranks; rank 0 holds the run directory's lock,
validates (on the whole validation split, alone: the others wait; `validation`) and writes every file.

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

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import tinypred.training.distributed as distributed
from tinypred.data.dataset import Dataset
from tinypred.data.encoding import EncodedScenes
from tinypred.data.shards import ShardedScenes
from tinypred.errors import Stopped, TinypredError
from tinypred.fileio import write_json
from tinypred.predictors.model import TrajectoryMLP
from tinypred.predictors.model_file import MODEL_FILE, encoding_of, save_model
from tinypred.predictors.prediction import SCALE_FIT_SAMPLES
from tinypred.training.checkpoint import CHECKPOINT_FILE, TrainState, load_checkpoint, save_checkpoint
from tinypred.training.config import TrainConfig, resolve_device
from tinypred.training.distributed import Group
from tinypred.training.loader import BatchLoader
from tinypred.training.log import RunLog, progress_bar
from tinypred.training.preemption import StopSignal
from tinypred.training.run_dir import CONFIG_FILE, how_to_start, identity, locked, read_init
from tinypred.training.step import (
    ForwardLoss,
    Split,
    bad_parameters,
    build_model,
    compiled_forward_loss,
    lr_lambda,
    make_optimizer,
    train_step,
)
from tinypred.training.validation import evaluate_epoch, init_report


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
    on_start: Callable[[str], None] | None = None,
) -> RunResult:
    """Train a TrajectoryMLP on ds.train, validating on ds.val every epoch; see the module docstring.

    The run directory is locked while training. `resume` continues the run in `out_dir` (it must be
    this run: the same data and config); without a checkpoint yet (killed before its first), it starts
    from scratch and says so in `RunResult.started`. `baselines` maps names to their validation tables
    (`evaluate_scenes`), logged beside the model's; a final model worse than "cv" gets a warning.
    `on_epoch` receives each epoch's log row; `on_start` how the run started ("new", "resumed at step N"
    or why a resume started from scratch, as `RunResult.started`), before the first step.

    Under a process group of several processes every rank calls this alike; rank 0 returns the result,
    the others a RunResult without the log (empty history and best_val).
    """
    out_dir = Path(out_dir)
    check_trainable(ds)
    device = resolve_device(cfg.device)
    group = distributed.current()
    if cfg.batch_size < group.world:
        raise TinypredError(
            f"a global batch of {cfg.batch_size} cannot be divided among {group.world} processes",
            arg="batch_size",
        )
    with contextlib.ExitStack() as stack:
        error = None
        if group.main:  # one lock per run, held by rank 0
            try:
                stack.enter_context(locked(out_dir))
            except TinypredError as e:
                error = e
        distributed.raise_first(group, error)
        stop = stack.enter_context(StopSignal())
        return _train(
            ds, cfg, out_dir, device, resume, progress, baselines or {}, on_epoch, on_start, group, stop
        )


def check_trainable(ds: Dataset) -> None:
    """Training needs train and val splits with samples, their futures known; else a user error naming
    the split."""
    for name in ("train", "val"):
        split = ds.split(name)
        if len(split) == 0:
            raise TinypredError(f"the {name} split of {ds.path} is empty: training needs samples in it")
        if not split.has_future:
            raise TinypredError(f"the {name} split of {ds.path} has unknown futures: training needs them")


def _train(
    ds: Dataset,
    cfg: TrainConfig,
    out_dir: Path,
    device: torch.device,
    resume: bool,
    progress: bool,
    baselines: dict[str, dict],
    on_epoch: Callable[[dict], None] | None,
    on_start: Callable[[str], None] | None,
    group: Group,
    stop_signal: StopSignal,
) -> RunResult:
    run = identity(ds, cfg)
    started, error = "new", None
    if group.main:
        try:
            started = how_to_start(out_dir, run, resume)
        except TinypredError as e:
            error = e
    distributed.raise_first(group, error)
    resumed = distributed.broadcast_flag(group, started == "resumed")
    # A config.json without a checkpoint: an attempt killed before its first, whose logs this run replaces
    dead_attempt = not resumed and (out_dir / CONFIG_FILE).is_file()
    loader = BatchLoader(
        ds.train, ds.normalizer, cfg.batch_size, cfg.seed, device, rank=group.rank, world=group.world
    )
    model = build_model(ds, cfg).to(device)
    if group.rank > 0:  # each rank its own dropout masks; rank 0 draws as a single process does
        torch.manual_seed(cfg.seed + group.rank)
    opt = make_optimizer(model, cfg)
    total_steps = cfg.epochs * len(loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total_steps, cfg.warmup_frac, cfg.schedule))
    fit_split = val_split = None
    init: dict[str, float] = {}
    try:
        if group.main:  # validation, alone: the first training samples fit the NLL scales
            fit_split = Split.of(_rows(ds.train, SCALE_FIT_SAMPLES), ds.normalizer, device)
            val_split = Split.of(_rows(ds.val, len(ds.val)), ds.normalizer, device)
        if resumed:
            state = load_checkpoint(out_dir / CHECKPOINT_FILE, model, opt, sched, group.rank)
            init = read_init(out_dir / "init.json") if group.main else {}
            started = f"resumed at step {state.step}"
        else:
            state = TrainState()
            if group.main:
                write_json(out_dir / CONFIG_FILE, run)
                init = init_report(model, fit_split, cfg)
                write_json(out_dir / "init.json", init)
    except TinypredError as e:
        error = e
    distributed.raise_first(group, error)
    if on_start is not None and group.main:
        on_start(started)
    net, model_on_cuda = model, device.type == "cuda"
    if group.active:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(
            model, device_ids=[torch.cuda.current_device()] if model_on_cuda else None
        )
    compiled = compiled_forward_loss(net, cfg) if cfg.compile else None

    def checkpoint() -> None:
        rng_states = distributed.gather_rng_states(group)
        if group.main:
            save_checkpoint(out_dir / CHECKPOINT_FILE, model, opt, sched, state, rng_states)

    log = None
    if group.main:
        log = RunLog(out_dir, purge_step=state.step if resumed else None, replaces_dead_attempt=dead_attempt)
        if state.step == 0:
            log.baselines(baselines)
    bar = progress_bar(progress and group.main, total_steps, state.step)
    try:
        for epoch in range(state.epoch, cfg.epochs):
            train_loss = train_epoch(
                net, opt, sched, loader, cfg, state, log, bar, epoch, checkpoint, group, stop_signal, compiled
            )
            stop = False
            if log is not None:
                lr = sched.get_last_lr()[0]
                args = (fit_split, val_split, state, epoch, train_loss, lr, baselines)
                row = evaluate_epoch(model, cfg, *args)
                state.history.append(row)
                log.epoch(row, state.step)
                if row["val_minFDE@6"] < state.best:
                    state.best, state.best_epoch, state.bad_epochs = row["val_minFDE@6"], epoch, 0
                    info = {"epoch": epoch + 1, "step": state.step, "val": row}
                    meta = (json.loads(cfg.model_dump_json()), info, ds.dt, encoding_of(ds))
                    save_model(out_dir / MODEL_FILE, model, ds.normalizer, *meta)
                else:
                    state.bad_epochs += 1
            state.epoch = epoch + 1
            checkpoint()
            if log is not None:
                log.write(state)
                if on_epoch is not None:
                    on_epoch(row)
                stop = bool(cfg.patience and state.bad_epochs >= cfg.patience)
            if distributed.broadcast_flag(group, stop):
                break
        if log is not None:
            log.hparams(cfg, state.history[state.best_epoch])
    finally:
        if log is not None:
            log.close()
        if bar is not None:
            bar.stop()
    if not group.main:
        return RunResult(out_dir, [], state.best_epoch + 1, {}, {}, state.train_seconds, [], started)
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


def _rows(split: EncodedScenes | ShardedScenes, n: int) -> EncodedScenes:
    """The first n samples in memory; from a mapped split, with their values checked."""
    if isinstance(split, ShardedScenes):
        return split.subset(slice(0, n), check=True)
    return split.subset(slice(0, n))


def train_epoch(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    loader: BatchLoader,
    cfg: TrainConfig,
    state: TrainState,
    log: RunLog | None,
    bar: Any,
    epoch: int,
    checkpoint: Callable[[], None] | None = None,
    group: Group | None = None,
    stop_signal: StopSignal | None = None,
    compiled: ForwardLoss | None = None,
) -> float:
    """One pass over the training split in the loader's order for `epoch`; returns the mean training
    loss (over the global batches). It continues an epoch a mid-epoch checkpoint stopped in (from
    state.epoch_step); `checkpoint()` saves one, as often as cfg.checkpoint_every says. `model` may be
    wrapped in DistributedDataParallel; `log` is None on the ranks that do not write. When `stop_signal`
    has caught a signal (on any rank), every rank stops after the same step, checkpointed: `Stopped`.
    `compiled`: the model's `compiled_forward_loss`, when cfg.compile."""
    group = group or Group()
    start = last_checkpoint = time.perf_counter()
    model.train()
    steps = len(loader)
    if state.epoch_step == 0:
        state.epoch_loss_sum = 0.0
    batches = loader.epoch(epoch, state.epoch_step)
    every_kind, every = cfg.checkpoint_interval
    module = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    linear = module.linear_layers()
    loss_sum = torch.tensor(state.epoch_loss_sum, device=loader.device)
    for i in range(state.epoch_step, steps):
        failed = None
        try:
            batch = next(batches)
        except TinypredError as e:  # a damaged row: under DDP this rank still takes part in the step
            if not group.active:
                raise
            failed, batch = e, loader.stand_in()
        record = log is not None and state.step % cfg.log_every == 0
        before = [m.weight.detach().clone() for _, m in linear] if record else []
        total, norm = train_step(model, opt, batch.x, batch.y, cfg, batch.share * group.world, compiled)
        late = every_kind == "minutes" and time.perf_counter() - last_checkpoint >= 60 * every
        stopping = stop_signal is not None and stop_signal.requested
        if group.active:  # one all_reduce: the global batch's loss, and whether any rank must stop or save
            bad = (~torch.isfinite(total)).float()
            step_loss, bad_losses, errors, late_ranks, stops = distributed.sum_all(
                group, [total.detach() * batch.share, bad, failed is not None, late, stopping]
            )
            if errors:
                distributed.raise_first(group, failed)
            finite, late, stopping = bad_losses == 0 and math.isfinite(norm.item()), late_ranks > 0, stops > 0
        else:
            # One sync per step: the global gradient norm (which clipping computes anyway) tells whether
            # anything went non-finite, in the loss or in any gradient.
            step_loss, finite = total.detach(), math.isfinite(norm.item())
        if not finite:
            bad_loss = bad_losses > 0 if group.active else not torch.isfinite(total).item()
            best = (log.out_dir if log is not None else Path()) / MODEL_FILE
            raise _diverged(module, bad_loss, state, epoch, best)
        if record:  # the lr this step used: before the schedule moves on
            log.gradients(state, linear, before, float(step_loss), sched.get_last_lr()[0])
        sched.step()
        if log is not None and cfg.histogram_every and state.step % cfg.histogram_every == 0:
            log.histograms(state.step, linear)
        loss_sum += step_loss
        state.step += 1
        if bar is not None:
            text = f"epoch {epoch + 1}/{cfg.epochs} loss {float(step_loss):.3f}" if record else None
            bar.update(bar.task_ids[0], advance=1, description=text)
        due = every and (state.step % every == 0 if every_kind == "steps" else late)  # every 0: per epoch
        if checkpoint is not None and (stopping or (due and i + 1 < steps)):
            now = time.perf_counter()
            state.train_seconds += now - start
            start = last_checkpoint = now
            state.epoch_step, state.epoch_loss_sum = i + 1, loss_sum.item()
            checkpoint()
        if stopping:
            kept = "checkpoint written: continue with --resume" if checkpoint else "nothing written"
            name, code = stop_signal.describe()
            raise Stopped(f"stopped by {name} after step {state.step} (epoch {epoch + 1}); {kept}", code)
    state.train_seconds += time.perf_counter() - start
    state.epoch_step, state.epoch_loss_sum = 0, 0.0
    return loss_sum.item() / steps


def _diverged(
    model: TrajectoryMLP, bad_loss: bool, state: TrainState, epoch: int, best: Path
) -> TinypredError:
    bad = bad_parameters(model)
    count = sum(1 for _ in model.parameters())
    where = f"first in {bad[0]} ({len(bad)} of {count} parameters)" if bad else "in the loss itself"
    kept = (
        f"the best model by validation so far is kept ({best}, epoch {state.best_epoch + 1})"
        if state.best_epoch >= 0
        else "no model had been saved yet"
    )
    what = "loss" if bad_loss else "gradient"
    return TinypredError(
        f"training stopped at step {state.step} (epoch {epoch + 1}): non-finite {what}, {where}; {kept}; "
        "lower the learning rate or turn gradient clipping on"
    )
