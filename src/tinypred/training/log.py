"""The run log: metrics.csv / metrics.jsonl (one row per epoch), gradients.jsonl and TensorBoard events.

The files are rewritten whole from the `TrainState` after every epoch, so a resumed run never repeats
or skips a row; TensorBoard purges the events past the resumed step.

Every file is flat, for `pandas.read_csv` / `read_json(lines=True)` as they are: `gradients.jsonl` has one
row per (step, layer): step, epoch (from 1), layer (hidden1, ..., head), loss (the step's training loss),
grad_norm (L2 norm of the weight gradient) and update_ratio (|w_after - w_before| / |w_before|).

TensorBoard tags, as PyTorch users know them (x axis: the optimizer step):
    train/loss_step, lr, grad_norm/<layer>, update_ratio/<layer>   every `log_every` steps
    weights/<layer>, grads/<layer> (histograms)                    every `histogram_every` steps
    train/loss, val/loss, val/<metric>, val/decision/<metric>       every epoch
    baseline/<name>/<metric>, baseline/<name>/decision/<metric>     once, at step 0
    hparams: the config's knobs with the best epoch's validation metrics (hparam/...), at the end
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from tinypred.fileio import write_text
from tinypred.training.checkpoint import TrainState
from tinypred.training.config import TrainConfig

GRAD_VANISH, GRAD_EXPLODE = 1e-7, 1e3  # per-layer gradient norms outside these get a warning
BASELINE_METRICS = ("minADE@6", "minFDE@6", "MR@6", "minFDE@1", "MR@1", "NLL")


class RunLog:
    """The logs of the run in `out_dir`."""

    def __init__(
        self, out_dir: Path, purge_step: int | None = None, replaces_dead_attempt: bool = False
    ) -> None:
        """`purge_step`: a resumed run's step (TensorBoard drops what a dead attempt logged from there on).
        `replaces_dead_attempt`: this run starts from step 0 in the directory of one killed before its first
        checkpoint, whose event files are removed (else TensorBoard draws both runs' curves as one); the
        files of anything else stay."""
        from torch.utils.tensorboard import SummaryWriter  # imported late: it is slow to import

        self.out_dir = out_dir
        if replaces_dead_attempt:
            for stale in (out_dir / "tb").glob("events.out.tfevents.*"):
                stale.unlink()
        self.tb = SummaryWriter(str(out_dir / "tb"), purge_step=purge_step)

    def gradients(
        self,
        state: TrainState,
        linear: list[tuple[str, torch.nn.Linear]],
        before: list[torch.Tensor],
        loss_value: float,
        lr: float,
    ) -> None:
        """Record each Linear's gradient norm and update-to-weight ratio (~1e-3 is healthy), given its
        weights `before` the step; warn once per layer and kind on vanishing or exploding gradients."""
        for (name, m), old in zip(linear, before, strict=True):
            grad = m.weight.grad.norm().item()
            ratio = ((m.weight.detach() - old).norm() / old.norm().clamp_min(1e-12)).item()
            state.gradients.append(
                {
                    "step": state.step,
                    "epoch": state.epoch + 1,
                    "layer": name,
                    "loss": loss_value,
                    "grad_norm": grad,
                    "update_ratio": ratio,
                }
            )
            self.tb.add_scalar(f"grad_norm/{name}", grad, state.step)
            self.tb.add_scalar(f"update_ratio/{name}", ratio, state.step)
            kind = "vanishing" if grad < GRAD_VANISH else "exploding" if grad > GRAD_EXPLODE else None
            if kind is not None and not any(f"{kind} gradient in layer {name} " in w for w in state.warnings):
                message = f"step {state.step}: {kind} gradient in layer {name} (norm {grad:.2e})"
                warnings.warn(message, RuntimeWarning, stacklevel=3)
                state.warnings.append(message)
        self.tb.add_scalar("train/loss_step", loss_value, state.step)
        self.tb.add_scalar("lr", lr, state.step)

    def histograms(self, step: int, linear: list[tuple[str, torch.nn.Linear]]) -> None:
        """Each Linear's weights and (this step's) weight gradients as TensorBoard histograms."""
        for name, m in linear:
            self.tb.add_histogram(f"weights/{name}", m.weight.detach().float().cpu(), step)
            if m.weight.grad is not None:
                self.tb.add_histogram(f"grads/{name}", m.weight.grad.float().cpu(), step)

    def baselines(self, results: dict[str, dict]) -> None:
        """The baselines' validation metrics, once (at step 0): constants, not curves."""
        for name, res in results.items():
            for sl, tag in (("all", f"baseline/{name}"), ("decision", f"baseline/{name}/decision")):
                for metric in BASELINE_METRICS:
                    if metric in res.get(sl, {}):
                        self.tb.add_scalar(f"{tag}/{metric}", res[sl][metric], 0)

    def epoch(self, row: dict[str, Any], step: int) -> None:
        """An epoch's row to TensorBoard: train_loss -> train/loss, val_decision_MR@6 -> val/decision/MR@6.
        The baselines' columns are left out (logged once), and lr (logged per step)."""
        for key, value in row.items():
            if not isinstance(value, float):
                continue
            if key.startswith("val_decision_"):
                self.tb.add_scalar(f"val/decision/{key.removeprefix('val_decision_')}", value, step)
            elif key.startswith(("train_", "val_")):
                self.tb.add_scalar(key.replace("_", "/", 1), value, step)
        self.tb.flush()

    def hparams(self, cfg: TrainConfig, best: dict[str, Any]) -> None:
        """The run's knobs beside the best epoch's validation metrics, for TensorBoard's HPARAMS tab."""
        hparams: dict[str, Any] = {}  # flat: numbers, strings and bools only
        for key, value in cfg.model_dump().items():
            for sub, v in value.items() if isinstance(value, dict) else [(None, value)]:
                if isinstance(v, int | float | str | bool):
                    hparams[f"{key}.{sub}" if sub else key] = v
        metrics = {f"hparam/{k}": v for k, v in best.items() if k.startswith("val_") and isinstance(v, float)}
        # run_name ".": the hparams entry sits in the run's own folder, not a timestamped sub-run
        self.tb.add_hparams(hparams, metrics, run_name=".")

    def write(self, state: TrainState) -> None:
        """Rewrite metrics.csv, metrics.jsonl and gradients.jsonl from the state."""
        history = state.history
        buf = io.StringIO()
        cols = list(dict.fromkeys(k for row in history for k in row))
        writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _csv(v) for k, v in row.items()} for row in history)
        write_text(self.out_dir / "metrics.csv", buf.getvalue())
        write_text(self.out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        rows = (row for r in state.gradients for row in _flat(r))
        write_text(self.out_dir / "gradients.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    def close(self) -> None:
        self.tb.close()


def _flat(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A gradients row as written; a checkpoint of an earlier version holds one nested row per step."""
    if "layers" not in record:
        return [record]
    common = {"step": record["step"], "epoch": None, "loss": record["loss"]}
    return [{**common, "layer": name, **values} for name, values in record["layers"].items()]


def _csv(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def progress_bar(enabled: bool, total: int, done: int) -> Any:
    """A rich progress bar over the training steps, started at `done` (None when not `enabled`)."""
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    bar.add_task("training", total=total, completed=done)
    bar.start()
    return bar
