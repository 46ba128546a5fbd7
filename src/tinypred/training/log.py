"""The run log: metrics.csv / metrics.jsonl (one row per epoch), gradients.jsonl and TensorBoard events.

The files are rewritten whole from the `TrainState` after every epoch, so a resumed run never repeats
or skips a row; TensorBoard purges the events past the resumed step.
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

GRAD_VANISH, GRAD_EXPLODE = 1e-7, 1e3  # per-layer gradient norms outside these get a warning


class RunLog:
    """The logs of the run in `out_dir`."""

    def __init__(self, out_dir: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported late: it is slow to import

        self.out_dir = out_dir
        self.tb = SummaryWriter(str(out_dir / "tb"), purge_step=purge_step)

    def gradients(
        self,
        state: TrainState,
        linear: list[tuple[str, torch.nn.Linear]],
        before: list[torch.Tensor],
        loss_value: float,
    ) -> None:
        """Record each Linear's gradient norm and update-to-weight ratio (~1e-3 is healthy), given its
        weights `before` the step; warn once per layer and kind on vanishing or exploding gradients."""
        row: dict[str, Any] = {"step": state.step, "loss": loss_value, "layers": {}}
        for (name, m), old in zip(linear, before, strict=True):
            grad = m.weight.grad.norm().item()
            ratio = ((m.weight.detach() - old).norm() / old.norm().clamp_min(1e-12)).item()
            row["layers"][name] = {"grad_norm": grad, "update_ratio": ratio}
            self.tb.add_scalar(f"grad_norm/{name}", grad, state.step)
            self.tb.add_scalar(f"update_ratio/{name}", ratio, state.step)
            kind = "vanishing" if grad < GRAD_VANISH else "exploding" if grad > GRAD_EXPLODE else None
            if kind is not None and not any(f"{kind} gradient in layer {name} " in w for w in state.warnings):
                message = f"step {state.step}: {kind} gradient in layer {name} (norm {grad:.2e})"
                warnings.warn(message, RuntimeWarning, stacklevel=3)
                state.warnings.append(message)
        self.tb.add_scalar("train/loss_step", loss_value, state.step)
        state.gradients.append(row)

    def epoch(self, row: dict[str, Any], step: int) -> None:
        """An epoch's row to TensorBoard."""
        for key, value in row.items():
            if key not in ("epoch", "step") and isinstance(value, float):
                self.tb.add_scalar(key.replace("_", "/", 1), value, step)
        self.tb.flush()

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
        write_text(self.out_dir / "gradients.jsonl", "".join(json.dumps(r) + "\n" for r in state.gradients))

    def close(self) -> None:
        self.tb.close()


def _csv(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value
