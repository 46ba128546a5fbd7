"""Training: a plain loop over tensors held on the device, instrumented so you can see inside it.

A run directory holds:
    config.json        the full TrainConfig and the data it was trained on
    model.safetensors  the best weights so far (lowest val minFDE@6), with the normaliser and config
    checkpoint.safetensors  everything needed to resume: weights, optimizer, schedule, RNG states,
                       early-stopping state and the log so far (in its metadata) -- one atomic file
    metrics.csv / metrics.jsonl   one row per epoch: losses, val metrics, the baselines beside them
    gradients.jsonl    per-layer gradient norms and update-to-weight ratios every `log_every` steps
    init.json          the loss at initialisation against its expected value
    tb/                TensorBoard event files
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from tinypred import losses
from tinypred.dataset import Dataset
from tinypred.encoding import EncodedScenes, Normalizer, features
from tinypred.errors import TinypredError
from tinypred.fileio import atomic_open, write_json, write_text
from tinypred.losses import LossConfig
from tinypred.metrics import Prediction, evaluate_scenes, fit_scales
from tinypred.model import ModelConfig, TrajectoryMLP

CHECKPOINT_VERSION = 1
GRAD_VANISH, GRAD_EXPLODE = 1e-7, 1e3  # per-layer gradient norms outside these get a warning
EVAL_BATCH = 8192
SCALE_FIT_SAMPLES = 4096  # training samples whose predictions fit the NLL scales of a non-NLL model


class TrainConfig(BaseModel):
    """Every knob of a training run. `tinypred train --config FILE` reads it (JSON or TOML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0, le=10)
    weight_decay: float = Field(1e-4, ge=0, le=1)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only")
    batch_size: int = Field(256, ge=1, le=1_000_000)
    epochs: int = Field(20, ge=1, le=100_000)
    warmup_frac: float = Field(0.05, ge=0, lt=1, description="share of the steps spent warming up")
    schedule: Literal["cosine", "constant"] = "cosine"
    grad_clip: float = Field(5.0, ge=0, description="max global gradient norm; 0 = off")
    patience: int = Field(
        0, ge=0, description="epochs without a better val minFDE@6 before stopping; 0 = off"
    )
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    bf16: bool = Field(False, description="bfloat16 autocast for the forward pass")
    log_every: int = Field(25, ge=1, description="steps between gradient-norm records")


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; asking for one that is absent is a user error."""
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    }
    if name == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if available[d]))
    if not available[name]:
        raise TinypredError(f"--device {name}: not available on this machine")
    return torch.device(name)


def lr_lambda(total_steps: int, warmup_frac: float, schedule: str) -> Callable[[int], float]:
    """Linear warm-up over warmup_frac of the steps, then cosine decay to 0 (or constant)."""
    warmup = int(total_steps * warmup_frac)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    # fused: the whole update in one kernel over all parameters (8% of a CPU training step here, against
    # the foreach version); MPS gets foreach, which works everywhere.
    device = params[0].device.type
    fast = {"fused": True} if device in ("cpu", "cuda") else {"foreach": True}
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fast)


@dataclass
class Split:
    """A split as tensors on the device: normalised features x (N, D), ground truth y (N, T, 2)."""

    x: torch.Tensor
    y: torch.Tensor
    scenes: EncodedScenes

    @classmethod
    def of(cls, scenes: EncodedScenes, normalizer: Normalizer, device: torch.device) -> Split:
        return cls(
            torch.from_numpy(normalizer(features(scenes))).to(device),
            torch.from_numpy(scenes.future).to(device),
            scenes,
        )


def build_model(ds: Dataset, cfg: TrainConfig, **model_updates: Any) -> TrajectoryMLP:
    """A fresh model for ds, seeded by cfg.seed: its head in units of the training futures' spread, with a
    scale head only if the loss trains one (nll). `model_updates` change ModelConfig fields (dropout=0)."""
    torch.manual_seed(cfg.seed)
    model = TrajectoryMLP(
        ds.normalizer.mean.shape[0],
        ds.config.future_steps,
        cfg.model.model_copy(update=model_updates),
        scales=cfg.loss.kind == "nll",
    )
    model.pos_scale.copy_(position_scale(ds.train.future))
    return model


def position_scale(future: np.ndarray) -> torch.Tensor:
    """(T, 2) RMS of the training futures per step and coordinate (floored at 0.1 m): the head's units."""
    return torch.from_numpy(
        np.maximum(np.sqrt((future.astype(np.float64) ** 2).mean(0)), 0.1).astype(np.float32)
    )


@torch.inference_mode()
def predict(model: TrajectoryMLP, x: torch.Tensor, batch: int = EVAL_BATCH) -> tuple[np.ndarray, ...]:
    """modes (N, K, T, 2), probs (N, K) and scale (N, K, T) -- None without a scale head -- as NumPy
    arrays, in eval mode, in batches."""
    was_training = model.training
    model.eval()
    parts = [model(x[i : i + batch]) for i in range(0, len(x), batch)]
    model.train(was_training)

    def cat(name: str) -> np.ndarray | None:
        if getattr(parts[0], name) is None:
            return None
        return torch.cat([getattr(p, name).float() for p in parts]).cpu().numpy()

    return cat("modes"), cat("probs"), cat("scale")


def as_prediction(model: TrajectoryMLP, split: Split, loss_cfg: LossConfig, scale_from: Split) -> Prediction:
    """The model's prediction on a split. Its NLL uses the predicted scales if the loss trained them (nll),
    otherwise per-step scales fitted on training predictions, as for the baselines."""
    modes, probs, scale = predict(model, split.x)
    if loss_cfg.kind != "nll":
        n = min(len(scale_from.x), SCALE_FIT_SAMPLES)
        fit_modes, fit_probs, _ = predict(model, scale_from.x[:n])
        scale = fit_scales(fit_modes, scale_from.scenes.future[:n], fit_probs)
    return Prediction(modes, probs, scale)


def load_run(run: str | Path, ds: Dataset, device: str = "cpu") -> LoadedModel:
    """A run's best model, checked against a dataset: the same features and horizon."""
    loaded = load_model(Path(run) / "model.safetensors", device)
    d, horizon = ds.normalizer.mean.shape[0], ds.config.future_steps
    if (loaded.model.in_features, loaded.model.horizon) != (d, horizon):
        raise TinypredError(
            f"{run}: the model reads {loaded.model.in_features} features over {loaded.model.horizon} steps; "
            f"{ds.path} has {d} and {horizon}"
        )
    return loaded


def forward_backward(
    model: TrajectoryMLP,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    autocast,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, loss, backward and clipping for one batch x (B, D), y (B, T, 2).

    Returns the loss and the global gradient norm before clipping. The loss is computed in float32
    even under bf16 autocast: the min over modes and the log-softmax need the precision.
    """
    with autocast:
        out = model(x)
    total, _ = losses.loss(out.float(), y, cfg.loss)
    opt.zero_grad(set_to_none=True)
    total.backward()
    return total, torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)


def first_bad_layer(model: torch.nn.Module) -> str:
    """The first parameter (input to output) whose gradient holds NaN or Inf."""
    for name, p in model.named_parameters():
        if p.grad is not None and not torch.isfinite(p.grad).all():
            return name
    return "(none: the loss itself)"


# ----------------------------------------------------------------------------------------------------
# Saving and loading


def save_model(
    path: Path, model: TrajectoryMLP, normalizer: Normalizer, cfg: TrainConfig, info: dict
) -> None:
    """Weights, the normaliser and the config in one safetensors file (no pickle), written atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors["normalizer.mean"] = torch.from_numpy(normalizer.mean)
    tensors["normalizer.std"] = torch.from_numpy(normalizer.std)
    meta = {
        "config": cfg.model_dump_json(),
        "in_features": str(model.in_features),
        "horizon": str(model.horizon),
        "info": json.dumps(info),
    }
    with atomic_open(path, "wb") as f:
        f.write(st_save(tensors, metadata=meta))


@dataclass
class LoadedModel:
    model: TrajectoryMLP
    normalizer: Normalizer
    config: TrainConfig
    info: dict


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a model.safetensors written by `save_model`; a damaged or foreign file is a user error."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        tensors = st_load(raw)
        meta = _safetensors_metadata(raw)
        cfg = TrainConfig.model_validate_json(meta["config"])
        model = TrajectoryMLP(
            int(meta["in_features"]), int(meta["horizon"]), cfg.model, scales=cfg.loss.kind == "nll"
        )
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        normalizer = Normalizer(tensors["normalizer.mean"].numpy(), tensors["normalizer.std"].numpy())
        info = json.loads(meta.get("info", "{}"))
    except FileNotFoundError:
        raise TinypredError(f"{path}: missing (is it a tinypred run directory?)") from None
    except (KeyError, ValueError, RuntimeError, TypeError, SafetensorError) as e:
        raise TinypredError(f"{path}: not a tinypred model or damaged ({str(e).splitlines()[0]})") from None
    return LoadedModel(model.to(device).eval(), normalizer, cfg, info)


def _safetensors_metadata(raw: bytes) -> dict[str, str]:
    """The __metadata__ of a safetensors file (the header is 8 bytes of length, then JSON)."""
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + n]).get("__metadata__", {})


def save_checkpoint(path: Path, model, opt, sched, gen: torch.Generator, state: dict) -> None:
    """Everything to resume exactly, in one file: a kill leaves the previous checkpoint whole."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    for pid, st in opt_state["state"].items():
        for key, value in st.items():
            tensors[f"optim.{pid}.{key}"] = (value if torch.is_tensor(value) else torch.tensor(value)).cpu()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.perm"] = gen.get_state()
    meta = {
        "version": str(CHECKPOINT_VERSION),
        "state": json.dumps(state),
        "param_groups": json.dumps(opt_state["param_groups"]),
        "scheduler": json.dumps(sched.state_dict()),
    }
    with atomic_open(path, "wb") as f:
        f.write(st_save(tensors, metadata=meta))


def load_checkpoint(path: Path, model, opt, sched, gen: torch.Generator) -> dict:
    try:
        raw = path.read_bytes()
        tensors = st_load(raw)
        meta = _safetensors_metadata(raw)
        if meta.get("version") != str(CHECKPOINT_VERSION):
            raise ValueError(f"checkpoint version {meta.get('version')!r}")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        opt_state: dict[str, Any] = {"state": {}, "param_groups": json.loads(meta["param_groups"])}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                opt_state["state"].setdefault(int(pid), {})[name] = value
        opt.load_state_dict(opt_state)
        sched.load_state_dict(json.loads(meta["scheduler"]))
        torch.set_rng_state(tensors["rng.torch"])
        gen.set_state(tensors["rng.perm"])
        return json.loads(meta["state"])
    except FileNotFoundError:
        raise TinypredError(f"{path}: no checkpoint to resume from") from None
    except (KeyError, ValueError, RuntimeError, SafetensorError) as e:
        raise TinypredError(
            f"{path}: does not match this run's model or is damaged ({str(e).splitlines()[0]})"
        ) from None


# ----------------------------------------------------------------------------------------------------
# The loop


@dataclass
class RunResult:
    out_dir: Path
    history: list[dict]  # one row per epoch
    best_epoch: int
    best_val: dict[str, float]  # val metrics ("all" and "decision") of the best epoch
    init: dict[str, float]
    train_seconds: float
    warnings: list[str] = field(default_factory=list)


def init_report(model: TrajectoryMLP, split: Split, cfg: TrainConfig) -> dict[str, float]:
    """The loss at initialisation against what it should be, on up to 1024 training samples.

    Expected: CE = log K (logits ~ 0 give uniform probabilities); regression = the same loss for a model
    that predicts no motion at all (the head starts near zero), an input-independent baseline.
    """
    n = min(1024, len(split.x))
    x, y = split.x[:n], split.y[:n]
    with torch.no_grad():
        out = model(x)
        total, parts = losses.loss(out, y, cfg.loss)
        still = losses.ModelOutput(torch.zeros_like(out.modes), torch.zeros_like(out.logits), out.scale)
        _, still_parts = losses.loss(still, y, cfg.loss)
    report = {"loss": total.item(), **{k: v.item() for k, v in parts.items()}}
    report |= {f"expected_{k}": v.item() for k, v in still_parts.items()}
    if "ce" in parts:
        report["expected_ce"] = math.log(cfg.model.modes)
    return report


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
    """Train a TrajectoryMLP on ds.train, validating on ds.val every epoch; see the module docstring."""
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "checkpoint.safetensors"
    if resume:
        saved = (
            json.loads((out_dir / "config.json").read_text()) if (out_dir / "config.json").exists() else None
        )
        if saved is None or saved["train"] != json.loads(cfg.model_dump_json()):
            raise TinypredError(
                f"--resume: {out_dir}/config.json is missing or differs from this run's config"
            )
    elif ckpt_path.exists():
        raise TinypredError(
            f"--out {out_dir}: already holds a run; pass --resume or choose another directory"
        )
    if len(ds.train) == 0 or len(ds.val) == 0:
        raise TinypredError(f"{ds.path}: training needs non-empty train and val splits")

    device = resolve_device(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)  # the order of the batches; build_model seeds the rest
    train_split = Split.of(ds.train, ds.normalizer, device)
    val_split = Split.of(ds.val, ds.normalizer, device)
    n = len(ds.train)
    model = build_model(ds, cfg)
    model.to(device)
    opt = make_optimizer(model, cfg)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(cfg.epochs * steps_per_epoch, cfg.warmup_frac, cfg.schedule)
    )
    baselines = baselines or {}

    state: dict[str, Any] = {
        "epoch": 0,
        "step": 0,
        "best": math.inf,
        "best_epoch": -1,
        "bad_epochs": 0,
        "history": [],
        "gradients": [],
        "warnings": [],
        "train_seconds": 0.0,
    }
    if resume:
        state = load_checkpoint(ckpt_path, model, opt, sched, gen)
        init = json.loads((out_dir / "init.json").read_text())
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(
            out_dir / "config.json",
            {
                "train": json.loads(cfg.model_dump_json()),
                "data": str(ds.path) if ds.path else None,
                "data_seed": ds.seed,
            },
        )
        init = init_report(model, train_split, cfg)
        write_json(out_dir / "init.json", init)

    from torch.utils.tensorboard import SummaryWriter  # imported late: it is slow to import

    tb = SummaryWriter(str(out_dir / "tb"), purge_step=state["step"] if resume else None)
    linear = model.linear_layers()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    bar = _progress(progress, cfg.epochs * steps_per_epoch, state["step"])
    try:
        for epoch in range(state["epoch"], cfg.epochs):
            epoch_start = time.perf_counter()
            model.train()
            perm = torch.randperm(n, generator=gen).to(device)
            loss_sum = torch.zeros((), device=device)
            for i in range(steps_per_epoch):
                idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                total, norm = forward_backward(
                    model, opt, train_split.x[idx], train_split.y[idx], cfg, autocast
                )
                # One sync per step: the global gradient norm (which clipping computes anyway) tells
                # whether anything went non-finite, in the loss or in any gradient.
                if not math.isfinite(norm.item()):
                    kept = (
                        f"the last good checkpoint ({ckpt_path}, epoch {state['epoch']}) is kept"
                        if ckpt_path.exists()
                        else "no checkpoint had been written yet"
                    )
                    raise TinypredError(
                        f"training stopped at step {state['step']} (epoch {epoch}): non-finite "
                        f"{'loss' if not torch.isfinite(total) else 'gradient'}, first in "
                        f"{first_bad_layer(model)}; {kept}"
                    )
                record = state["step"] % cfg.log_every == 0
                if record:
                    before = [m.weight.detach().clone() for _, m in linear]
                opt.step()
                sched.step()
                if record:
                    _record_gradients(state, linear, before, total.item(), tb)
                loss_sum += total.detach()
                state["step"] += 1
                if bar is not None:
                    bar.update(
                        bar.task_ids[0],
                        advance=1,
                        description=f"epoch {epoch + 1}/{cfg.epochs} loss {total.item():.3f}"
                        if record
                        else None,
                    )

            # End of epoch: validate, log, keep the best, checkpoint.
            state["train_seconds"] += time.perf_counter() - epoch_start
            row = _validate(
                model,
                cfg,
                train_split,
                val_split,
                epoch,
                state,
                loss_sum.item() / steps_per_epoch,
                sched.get_last_lr()[0],
                baselines,
            )
            state["history"].append(row)
            tb_log(tb, row, state["step"])
            improved = row["val_minFDE@6"] < state["best"]
            if improved:
                state.update(best=row["val_minFDE@6"], best_epoch=epoch, bad_epochs=0)
                save_model(
                    out_dir / "model.safetensors",
                    model,
                    ds.normalizer,
                    cfg,
                    {"epoch": epoch, "step": state["step"], "val": row},
                )
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch + 1
            save_checkpoint(ckpt_path, model, opt, sched, gen, state)
            _write_logs(out_dir, state)
            if on_epoch is not None:
                on_epoch(row)
            if cfg.patience and state["bad_epochs"] >= cfg.patience:
                break
    finally:
        tb.close()
        if bar is not None:
            bar.stop()
    best = state["history"][state["best_epoch"]]
    return RunResult(
        out_dir,
        state["history"],
        state["best_epoch"],
        {k[4:]: v for k, v in best.items() if k.startswith("val_")},
        init,
        state["train_seconds"],
        state["warnings"],
    )


def _progress(enabled: bool, total: int, done: int):
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    bar.add_task("training", total=total, completed=done)
    bar.start()
    return bar


def _record_gradients(state: dict, linear, before: list[torch.Tensor], loss_value: float, tb) -> None:
    """Per-layer gradient norm and update-to-weight ratio (~1e-3 is healthy); warn on vanish/explode."""
    row: dict[str, Any] = {"step": state["step"], "loss": loss_value, "layers": {}}
    for (name, m), old in zip(linear, before, strict=True):
        grad = m.weight.grad.norm().item()
        ratio = ((m.weight.detach() - old).norm() / old.norm().clamp_min(1e-12)).item()
        row["layers"][name] = {"grad_norm": grad, "update_ratio": ratio}
        tb.add_scalar(f"grad_norm/{name}", grad, state["step"])
        tb.add_scalar(f"update_ratio/{name}", ratio, state["step"])
        kind = "vanishing" if grad < GRAD_VANISH else "exploding" if grad > GRAD_EXPLODE else None
        if kind is not None and not any(f"{kind} gradient in layer {name} " in w for w in state["warnings"]):
            message = f"step {state['step']}: {kind} gradient in layer {name} (norm {grad:.2e})"
            warnings.warn(message, RuntimeWarning, stacklevel=2)  # once per layer and kind
            state["warnings"].append(message)
    tb.add_scalar("train/loss_step", loss_value, state["step"])
    state["gradients"].append(row)


@torch.no_grad()
def _validate(
    model,
    cfg: TrainConfig,
    train_split: Split,
    val_split: Split,
    epoch: int,
    state: dict,
    train_loss: float,
    lr: float,
    baselines: dict[str, dict],
) -> dict[str, Any]:
    """One epoch's log row: train/val loss, val metrics (all and decision), the baselines' for reference."""
    model.eval()
    val_losses = []
    for i in range(0, len(val_split.x), EVAL_BATCH):
        out = model(val_split.x[i : i + EVAL_BATCH])
        val_losses.append(
            losses.loss(out, val_split.y[i : i + EVAL_BATCH], cfg.loss)[0].item() * len(out.logits)
        )
    metrics = evaluate_scenes(as_prediction(model, val_split, cfg.loss, train_split), val_split.scenes)
    model.train()
    row: dict[str, Any] = {
        "epoch": epoch,
        "step": state["step"],
        "lr": lr,
        "train_loss": train_loss,
        "val_loss": sum(val_losses) / len(val_split.x),
        "seconds": state["train_seconds"],
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


def tb_log(tb, row: dict, step: int) -> None:
    for key, value in row.items():
        if key not in ("epoch", "step") and isinstance(value, float):
            tb.add_scalar(key.replace("_", "/", 1), value, step)
    tb.flush()


def _write_logs(out_dir: Path, state: dict) -> None:
    """Rewrite the logs from the state (so a resumed run never repeats or skips a row)."""
    history = state["history"]
    cols = list(dict.fromkeys(k for row in history for k in row))
    lines = [",".join(cols)] + [",".join(_csv(row.get(c)) for c in cols) for row in history]
    write_text(out_dir / "metrics.csv", "\n".join(lines) + "\n")
    write_text(out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    write_text(out_dir / "gradients.jsonl", "".join(json.dumps(r) + "\n" for r in state["gradients"]))


def _csv(value: Any) -> str:
    return "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
