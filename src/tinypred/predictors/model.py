"""The learned predictor: an MLP from the encoded scene to K trajectory modes and their probabilities.

    x (B, D) --[Linear -> norm -> activation -> dropout] x depth--> h (B, W) --Linear--> head
    head -> modes (B, K, T, 2)   positions in the agent frame, metres
         -> logits (B, K)        mode probabilities = softmax(logits)
         -> scale (B, K, T)      per-step scale of the NLL loss: softplus(raw) + eps; only with scales=True
                                 (the nll loss trains them; other losses would leave them untrained)

The head predicts positions in units of `pos_scale` (T, 2): the per-step spread of the training
futures, so that every output starts near unit size however far the agent travels by that step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F

SCALE_EPS = 1e-3  # m: the smallest scale, so that a confident mode cannot make the NLL -inf


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


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "silu": nn.SiLU}
NORMS = {"none": lambda w: nn.Identity(), "layernorm": nn.LayerNorm, "batchnorm": nn.BatchNorm1d}


@dataclass
class ModelOutput:
    """modes (B, K, T, 2) in metres, logits (B, K), scale (B, K, T) in metres or None (no scale head)."""

    modes: torch.Tensor
    logits: torch.Tensor
    scale: torch.Tensor | None

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.softmax(-1)

    def float(self) -> ModelOutput:
        """float32 views (no-ops in float32): a loss computed under bf16 autocast needs the precision."""
        return ModelOutput(
            self.modes.float(), self.logits.float(), None if self.scale is None else self.scale.float()
        )


class TrajectoryMLP(nn.Module):
    """K-mode trajectory predictor. `pos_scale` (T, 2) is a buffer, saved with the weights."""

    def __init__(
        self, in_features: int, horizon: int, cfg: ModelConfig | None = None, scales: bool = False
    ) -> None:
        super().__init__()
        cfg = cfg or ModelConfig()
        self.cfg, self.in_features, self.horizon, self.scales = cfg, in_features, horizon, scales
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(cfg.depth):
            layers += [nn.Linear(width, cfg.width), NORMS[cfg.norm](cfg.width), ACTIVATIONS[cfg.activation]()]
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            width = cfg.width
        self.body = nn.Sequential(*layers)
        k, t = cfg.modes, horizon
        self.head = nn.Linear(width, k * t * 2 + k + (k * t if scales else 0))
        self.register_buffer("pos_scale", torch.ones(t, 2))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise every Linear as configured; biases start at zero (as in the lectures)."""
        gain_of = {"relu": "relu", "gelu": "relu", "silu": "relu", "tanh": "tanh", "sigmoid": "linear"}
        nonlinearity = gain_of[self.cfg.activation]
        for _, m in self.linear_layers():
            if self.cfg.init == "kaiming":  # std = gain / sqrt(fan_in): keeps activations' scale
                nn.init.kaiming_normal_(m.weight, nonlinearity=nonlinearity)
            elif self.cfg.init == "xavier":  # std = gain * sqrt(2 / (fan_in + fan_out))
                nn.init.xavier_normal_(m.weight, gain=nn.init.calculate_gain(nonlinearity))
            else:  # the lectures' "small random values"
                nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
        # The output layer starts small: modes near zero motion, logits near uniform (CE = log K).
        nn.init.normal_(self.head.weight, std=1e-3)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        b, k, t = x.shape[0], self.cfg.modes, self.horizon
        # One split, not several slices: its backward writes each part's gradient once instead of
        # zero-filling a full-size buffer per slice.
        parts = self.head(self.body(x)).split([k * t * 2, k] + ([k * t] if self.scales else []), dim=1)
        modes = parts[0].view(b, k, t, 2) * self.pos_scale
        scale = F.softplus(parts[2].view(b, k, t)) + SCALE_EPS if self.scales else None
        return ModelOutput(modes, parts[1], scale)

    def linear_layers(self) -> list[tuple[str, nn.Linear]]:
        """(name, layer) of every Linear, input to output: the layers the logs and diagnostics report on,
        named as a reader says them: hidden1 (module body.0), hidden2 (body.3), ..., head."""
        hidden = [m for m in self.body if isinstance(m, nn.Linear)]
        return [(f"hidden{j}", m) for j, m in enumerate(hidden, 1)] + [("head", self.head)]

    def matmul_params(self) -> int:
        """Weights that take part in a matmul (biases and norms excluded): for FLOP counts."""
        return sum(m.weight.numel() for _, m in self.linear_layers())
