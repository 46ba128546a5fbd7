"""Checkpoints: everything a killed run needs to continue exactly, in one atomically written file.

`checkpoint.safetensors` holds the weights, the optimizer's tensors, the torch RNG state (every rank's,
under DDP: what dropout draws from), and in its metadata the optimizer's param groups, the schedule and
the `TrainState` (epoch, step within the run and the epoch, early-stopping state and the log so far).
The batch order needs nothing stored: it is a function of (seed, epoch) (`loader.epoch_order`). A run
resumed from it ends with exactly the weights of an uninterrupted run on the CPU.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from tinypred.errors import TinypredError
from tinypred.predictors.model_file import read_safetensors, write_safetensors

CHECKPOINT_VERSION = 2  # 1: the batch order was a stored generator state and permutation
CHECKPOINT_FILE = "checkpoint.safetensors"


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint, so a resumed run picks up exactly here."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best: float = math.inf  # the best validation minFDE@6 so far, m
    best_epoch: int = -1  # the index of its epoch in `history` (the epoch counted from 0)
    bad_epochs: int = 0  # epochs since it last improved (early stopping)
    history: list[dict[str, Any]] = field(default_factory=list)  # one log row per epoch
    gradients: list[dict[str, Any]] = field(default_factory=list)  # per-layer records every log_every
    warnings: list[str] = field(default_factory=list)
    train_seconds: float = 0.0  # wall clock in training steps (not validation)
    epoch_step: int = 0  # steps taken in the epoch under way (a mid-epoch checkpoint)
    epoch_loss_sum: float = 0.0  # the sum of those steps' losses


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    state: TrainState,
    rng_states: list[torch.Tensor] | None = None,
) -> None:
    """Everything to resume exactly, in one file: a kill leaves the previous checkpoint whole.
    `rng_states`: every rank's torch RNG state, rank order (default: this process's)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    for pid, st in opt_state["state"].items():
        for key, value in st.items():
            tensors[f"optim.{pid}.{key}"] = (value if torch.is_tensor(value) else torch.tensor(value)).cpu()
    for rank, rng in enumerate(rng_states or [torch.get_rng_state()]):
        tensors["rng.torch" if rank == 0 else f"rng.torch.{rank}"] = rng
    meta = {
        "version": str(CHECKPOINT_VERSION),
        "state": json.dumps(asdict(state)),
        "param_groups": json.dumps(opt_state["param_groups"]),
        "scheduler": json.dumps(sched.state_dict()),
    }
    write_safetensors(path, tensors, meta)


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    rank: int = 0,
) -> TrainState:
    """Restore model, optimizer, schedule and this rank's RNG state in place; return the saved
    TrainState. A rank the run did not have (more processes now) keeps its own RNG state."""
    if not path.exists():
        raise TinypredError(f"{path}: no checkpoint to resume from")
    tensors, meta = read_safetensors(path, "tinypred checkpoint")
    if meta.get("version") == "1":
        raise TinypredError(
            f"{path}: written by an earlier tinypred, whose batch order this one cannot continue "
            "exactly; train the run again into a new directory"
        )
    try:
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
        if rank == 0:
            torch.set_rng_state(tensors["rng.torch"])
        elif f"rng.torch.{rank}" in tensors:
            torch.set_rng_state(tensors[f"rng.torch.{rank}"])
        return TrainState(**json.loads(meta["state"]))
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise TinypredError(
            f"{path}: does not match this run's model or is damaged ({str(e).splitlines()[0]})"
        ) from None
