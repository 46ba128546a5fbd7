"""TrainConfig: every knob of a training run, and the device it runs on."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tinypred.errors import TinypredError
from tinypred.predictors.config import LossConfig, ModelConfig

if TYPE_CHECKING:
    import torch


class TrainConfig(BaseModel):
    """Every knob of a training run. `tinypred train --config FILE` reads it (JSON or TOML).

    For Lightning users: `grad_clip` is `gradient_clip_val` (by global norm), `bf16` is
    `precision="bf16-mixed"`, `patience` is EarlyStopping's `patience` on val minFDE@6.
    """

    # strict: true is not 1; finite: NaN is not a learning rate
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

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
    compile: bool = Field(
        False, description="torch.compile forward and loss (CUDA graphs on one NVIDIA GPU); slow first steps"
    )
    log_every: int = Field(25, ge=1, description="steps between gradient-norm records")
    histogram_every: int = Field(
        250, ge=0, description="steps between TensorBoard weight/gradient histograms; 0 = none"
    )
    checkpoint_every: str = Field(
        "5min",
        description="checkpoint mid-epoch too: every N steps ('500') or minutes ('5min'); '0': per epoch",
    )

    @field_validator("checkpoint_every")
    @classmethod
    def _interval(cls, value: str) -> str:
        checkpoint_interval(value)
        return value

    @property
    def checkpoint_interval(self) -> tuple[str, float]:
        """("steps", n) or ("minutes", m) between mid-epoch checkpoints; ("steps", 0) for none."""
        return checkpoint_interval(self.checkpoint_every)


def checkpoint_interval(value: str) -> tuple[str, float]:
    """'500' -> ("steps", 500); '5min' -> ("minutes", 5.0); '0' -> ("steps", 0): per epoch only."""
    text = value.strip().lower()
    match = re.fullmatch(r"(\d+)|(\d+(?:\.\d+)?)\s*(?:min|m|minutes?)", text)
    if match is None:
        raise ValueError(f"expected a number of steps (500) or of minutes (5min), got {value!r}")
    if match.group(1) is not None:
        return "steps", float(match.group(1))
    return "minutes", float(match.group(2))


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; asking for one that is absent is a user error."""
    import torch  # here, not above: TrainConfig alone (a config file, --help) needs no torch

    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    }
    if name == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if available[d]))
    if name not in available:
        raise TinypredError(f"expected auto, cpu, cuda or mps, got {name!r}", arg="device")
    if not available[name]:
        raise TinypredError(f"{name} is not available on this machine", arg="device")
    return torch.device(name)
