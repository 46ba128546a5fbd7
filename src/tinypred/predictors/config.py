"""The predictor's settings, plain pydantic models without torch: what a config file, `TrainConfig` and
the command line's --help read. `model.TrajectoryMLP` and `losses.loss` use them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelConfig(BaseModel):
    """Architecture knobs. Defaults: K = 6 modes, three hidden layers of 256, ReLU, Kaiming init."""

    # strict: true is not 1; finite: NaN is not a learning rate
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    modes: int = Field(6, ge=1, le=64, description="K")
    width: int = Field(256, ge=1, le=8192)
    depth: int = Field(3, ge=1, le=32, description="hidden layers")
    activation: Literal["relu", "tanh", "sigmoid", "gelu", "silu"] = "relu"
    norm: Literal["none", "layernorm", "batchnorm"] = "none"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    init: Literal["kaiming", "xavier", "normal001"] = "kaiming"
    neighbours: bool = Field(True, description="read the neighbour slots through the agent encoder")
    agent_width: int = Field(64, ge=1, le=1024, description="E: the agent encoder's width")
    prob_radius: float = Field(2.0, ge=0, le=100, description="m: smooth the reported probabilities, 0: off")


class LossConfig(BaseModel):
    """The training loss (`losses` says what each kind does)."""

    # strict: true is not 1; finite: NaN is not a learning rate
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    kind: Literal["l2", "wta", "nll"] = "wta"
    regression: Literal["displacement", "l1", "huber", "l2"] = "displacement"
    huber_delta: float = Field(1.0, gt=0, description="m")
    ce_weight: float = Field(1.0, ge=0)
    nll_dist: Literal["laplace", "gaussian"] = "laplace"
