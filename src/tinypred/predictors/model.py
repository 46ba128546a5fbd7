"""The learned predictor: an MLP from the encoded scene to K trajectory modes and their probabilities.

    x (B, D) = [ target and map (B, D0) | neighbour slots (B, M * (7 H + len(OBJECT_TYPES))) ]
    each neighbour slot --shared agent encoder: [Linear -> ReLU] x 2--> (B, M, E)
        --max and mean over the slots present--> (B, 2E)             (zeros when no slot is)
    [target and map | pooled neighbours] (B, D0 + 2E)
        --[Linear -> norm -> activation -> dropout] x depth--> h (B, W) --Linear--> head
    head -> modes (B, K, T, 2)   positions in the agent frame, metres
         -> logits (B, K)        mode probabilities = softmax(logits)
         -> scale (B, K, T)      per-step scale of the NLL loss: softplus(raw) + eps; only with scales=True
                                 (the nll loss trains them; other losses would leave them untrained)

The head predicts positions in units of `pos_scale` (T, 2): the per-step spread of the training
futures, so that every output starts near unit size however far the agent travels by that step.

Why a shared per-agent MLP with max and mean pooling (as in PointNet and VectorNet's set encoders)
rather than attention: the slots are a set (any order, any number present, all of them possibly
empty), the pooled vector is the same whichever slot an agent lands in, it costs M small matmuls at a
planner's batch of one, and it exports to ONNX as plain ops. Max keeps the one agent that matters (the
lead that brakes), mean how crowded it is. A slot is present when its last history step is observed:
the normaliser leaves flags as they are, so the mask reads exactly 0 or 1. With
``ModelConfig(neighbours=False)`` the model ignores the slots (the ablation's row without them).

The probabilities a prediction reports. The classification head learns how often each mode wins, and
winner-take-all spreads one intent's wins over the several modes that cover its driver styles, so the
most probable mode is often a lone, less likely branch (at decision points its minFDE@1 was worse than
constant velocity's). `ModelOutput.probs` therefore reports each mode's probability smoothed over the
modes whose endpoints lie near it, p'_k ~ sum_j p_j exp(-|e_k - e_j|^2 / r^2) with r =
``prob_radius`` (2 m, the miss threshold; 0: the plain softmax): the mass a mode covers. The top mode is
then the model's best single guess. Training reads the logits, never these.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from tinypred.data.encoding import HISTORY_FEATURES
from tinypred.data.scene_config import OBJECT_TYPES
from tinypred.predictors.config import ModelConfig

SCALE_EPS = 1e-3  # m: the smallest scale, so that a confident mode cannot make the NLL -inf


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "silu": nn.SiLU}
NORMS = {"none": lambda w: nn.Identity(), "layernorm": nn.LayerNorm, "batchnorm": nn.BatchNorm1d}


@dataclass
class ModelOutput:
    """modes (B, K, T, 2) in metres, logits (B, K), scale (B, K, T) in metres or None (no scale head);
    prob_radius: m, how `probs` smooths the mode probabilities (module docstring)."""

    modes: torch.Tensor
    logits: torch.Tensor
    scale: torch.Tensor | None
    prob_radius: float = 0.0

    @property
    def probs(self) -> torch.Tensor:
        """(B, K) the reported probabilities: the softmax of the logits, smoothed over nearby endpoints."""
        p = self.logits.softmax(-1)
        if self.prob_radius <= 0:
            return p
        end = self.modes[:, :, -1]
        near = torch.exp(-(end[:, :, None] - end[:, None]).square().sum(-1) / self.prob_radius**2)
        covered = (near * p[:, None, :]).sum(-1)
        return covered / covered.sum(-1, keepdim=True)

    def float(self) -> ModelOutput:
        """float32 views (no-ops in float32): a loss computed under bf16 autocast needs the precision."""
        scale = None if self.scale is None else self.scale.float()
        return ModelOutput(self.modes.float(), self.logits.float(), scale, self.prob_radius)


def agent_features(history_steps: int) -> int:
    """Features per neighbour slot: its H steps of state and mask, and its type one-hot."""
    return history_steps * (len(HISTORY_FEATURES) + 1) + len(OBJECT_TYPES)


class TrajectoryMLP(nn.Module):
    """K-mode trajectory predictor. `pos_scale` (T, 2) is a buffer, saved with the weights.

    in_features D ends with `neighbour_slots` slots of `history_steps` steps (the layout of
    `data.encoding.features`); neighbour_slots = 0: x is the target and the map alone.
    """

    def __init__(
        self,
        in_features: int,
        horizon: int,
        cfg: ModelConfig | None = None,
        scales: bool = False,
        neighbour_slots: int = 0,
        history_steps: int = 0,
    ) -> None:
        super().__init__()
        cfg = cfg or ModelConfig()
        self.cfg, self.in_features, self.horizon, self.scales = cfg, in_features, horizon, scales
        self.neighbour_slots, self.history_steps = neighbour_slots, history_steps
        self.base_features = in_features - neighbour_slots * agent_features(history_steps)
        if self.base_features < 1:
            raise ValueError(f"{in_features} features cannot hold {neighbour_slots} neighbour slots")
        reads_neighbours = cfg.neighbours and neighbour_slots > 0
        width = self.base_features + (2 * cfg.agent_width if reads_neighbours else 0)
        layers: list[nn.Module] = []
        for _ in range(cfg.depth):
            layers += [nn.Linear(width, cfg.width), NORMS[cfg.norm](cfg.width), ACTIVATIONS[cfg.activation]()]
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            width = cfg.width
        self.body = nn.Sequential(*layers)
        k, t = cfg.modes, horizon
        self.head = nn.Linear(width, k * t * 2 + k + (k * t if scales else 0))
        self.register_buffer("pos_scale", torch.ones(t, 2))
        # Registered after the trunk, so that the trunk's layers come first wherever layers are listed.
        self.agent_encoder: nn.Module | None = None
        if reads_neighbours:
            e = cfg.agent_width
            self.agent_encoder = nn.Sequential(
                nn.Linear(agent_features(history_steps), e), nn.ReLU(), nn.Linear(e, e), nn.ReLU()
            )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise every Linear as configured; biases start at zero (as in the lectures)."""
        gain_of = {"relu": "relu", "gelu": "relu", "silu": "relu", "tanh": "tanh", "sigmoid": "linear"}
        nonlinearity = gain_of[self.cfg.activation]
        agents = (
            [] if self.agent_encoder is None else [m for m in self.agent_encoder if isinstance(m, nn.Linear)]
        )
        for m in [layer for _, layer in self.linear_layers()] + agents:
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
        h = self.trunk_inputs(x)
        # One split, not several slices: its backward writes each part's gradient once instead of
        # zero-filling a full-size buffer per slice.
        parts = self.head(self.body(h)).split([k * t * 2, k] + ([k * t] if self.scales else []), dim=1)
        modes = parts[0].view(b, k, t, 2) * self.pos_scale
        scale = F.softplus(parts[2].view(b, k, t)) + SCALE_EPS if self.scales else None
        return ModelOutput(modes, parts[1], scale, self.cfg.prob_radius)

    def trunk_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D0 [+ 2E]) what the trunk reads: the target and map features, and the pooled neighbours."""
        h = x if self.neighbour_slots == 0 else x[:, : self.base_features]
        if self.agent_encoder is None:
            return h
        return torch.cat([h, self._pooled_neighbours(x[:, self.base_features :])], 1)

    def _pooled_neighbours(self, block: torch.Tensor) -> torch.Tensor:
        """(B, 2E) max and mean of the agent encoder over the slots present; block (B, M * per slot)."""
        b, m, h = block.shape[0], self.neighbour_slots, self.history_steps
        f = len(HISTORY_FEATURES)
        states, mask, kinds = block.split([m * h * f, m * h, m * len(OBJECT_TYPES)], dim=1)
        mask = mask.view(b, m, h)
        slots = torch.cat([states.view(b, m, h * f), mask, kinds.view(b, m, -1)], -1)
        present = mask[..., -1] > 0.5  # (B, M): observed now
        # The encoder ends in a ReLU: its outputs are >= 0, so zeros in the absent slots leave the max over
        # the present ones as it is, and make it 0 where none is. Ties with those zeros are outputs at
        # exactly 0, where the ReLU passes no gradient: the weights' gradients are those of a masked max.
        if self._encodes_present_slots_only(block):
            rows = present.view(-1).nonzero().squeeze(1)
            encoded = self.agent_encoder(slots.view(b * m, -1).index_select(0, rows))
            kept = encoded.new_zeros(b * m, encoded.shape[1]).index_copy(0, rows, encoded).view(b, m, -1)
        else:
            encoded = self.agent_encoder(slots)
            kept = encoded * present[..., None].to(encoded.dtype)
        mean = kept.sum(1) / present.sum(1, keepdim=True).clamp(min=1)
        return torch.cat([kept.amax(1), mean], 1)

    def _encodes_present_slots_only(self, block: torch.Tensor) -> bool:
        """Training on the CPU encodes only the slots present (13% of them in the synthetic scenes: the
        encoder's matmuls and activations shrink as much, 7% of a training step; the numbers are the
        same to float rounding). Everywhere else every slot is encoded, with fixed shapes: in evaluation
        (what the exporters trace and a planner calls), on CUDA (counting the rows would make each step
        wait on the host) and under torch.compile (no data-dependent shapes)."""
        return self.training and block.device.type == "cpu" and not torch.compiler.is_compiling()

    def linear_layers(self) -> list[tuple[str, nn.Linear]]:
        """(name, layer) of every Linear, input to output: the layers the logs and diagnostics report on,
        named as a reader says them: hidden1 (module body.0), hidden2 (body.3), ..., head."""
        hidden = [m for m in self.body if isinstance(m, nn.Linear)]
        return [(f"hidden{j}", m) for j, m in enumerate(hidden, 1)] + [("head", self.head)]

    def matmul_params(self) -> int:
        """Weights that take part in a matmul per sample (biases and norms excluded): for FLOP counts.
        The agent encoder's count once per neighbour slot."""
        trunk = sum(m.weight.numel() for _, m in self.linear_layers())
        if self.agent_encoder is None:
            return trunk
        agents = sum(m.weight.numel() for m in self.agent_encoder if isinstance(m, nn.Linear))
        return trunk + self.neighbour_slots * agents
