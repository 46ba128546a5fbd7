"""The vocabulary of every scene (families, intents, map element types, object types) and the synthetic
generator's knobs (`SceneConfig`).

Families (canonical frame: the agent drives along +x, right-hand traffic, lanes 3.5 m wide):
``intersection`` (straight / left / right), ``lane_change`` (keep / change left / change right, where a
lane exists) and ``stop_or_go`` (stop at a line ahead, or go on) are decision points; ``curve`` and
``cruise`` have one intent. `tinypred.data.families` builds them. The interactive families have other
agents whose moves decide the target's future (`tinypred.data.interactive` builds them): ``follow`` (a
lead brakes, cruises or turns off; the target keeps its time gap), ``yield`` (cross traffic at an
unsignalised junction: go first or wait) and ``merge`` (the target's lane ends: into the gap ahead of a
car in the next lane, or behind it). ``recorded`` marks real scenes (imported from Argoverse 2): no
family is known, and they carry no ground-truth mixture.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FAMILIES = (
    "intersection",
    "lane_change",
    "stop_or_go",
    "curve",
    "cruise",
    "follow",
    "yield",
    "merge",
    "recorded",
)
SYNTHETIC_FAMILIES = FAMILIES[:-1]
DECISION_FAMILIES = ("intersection", "lane_change", "stop_or_go")  # the target's own choice
INTERACTIVE_FAMILIES = ("follow", "yield", "merge")  # the other agents decide
INTENTS = (
    "follow",
    "straight",
    "left",
    "right",
    "keep",
    "change_left",
    "change_right",
    "go",
    "stop",
    "keep_gap",
    "stop_behind",
    "speed_up",
    "go_first",
    "wait",
    "merge_ahead",
    "merge_behind",
)
# The intents of each family, in mixture-slot order.
FAMILY_INTENTS = {
    "intersection": ("straight", "left", "right"),
    "lane_change": ("keep", "change_left", "change_right"),
    "stop_or_go": ("go", "stop"),
    "curve": ("follow",),
    "cruise": ("follow",),
    "follow": ("keep_gap", "stop_behind", "speed_up"),  # the lead cruises, brakes to a stop, turns off
    "yield": ("go_first", "wait"),
    "merge": ("merge_ahead", "merge_behind"),
}
# The cross car's intents in ``yield`` (its slots are the target's go_first / wait, which a rule decides).
CROSS_INTENTS = ("straight", "turn_off")
# Families whose slot priors are knobs ("<family>_priors"), and the intents each knob is over.
PRIOR_KNOBS = {family: FAMILY_INTENTS[family] for family in (*DECISION_FAMILIES, "follow")} | {
    "yield": CROSS_INTENTS
}
# Map elements: lane centre-lines by who may use them (AV2's VEHICLE, BIKE, BUS), and lines across the
# road where traffic stops (a synthetic stop line; an AV2 pedestrian crossing's centre-line).
LANE_TYPES = ("lane", "stop_line", "bike_lane", "bus_lane")
# Agents, as Argoverse 2 labels them (its ObjectType values, in its order).
OBJECT_TYPES = (
    "vehicle",
    "pedestrian",
    "motorcyclist",
    "cyclist",
    "bus",
    "static",
    "background",
    "construction",
    "riderless_bicycle",
    "unknown",
)

# The vocabularies the arrays index, by the meta.json field that records them with a dataset.
VOCABULARIES = {
    "families": FAMILIES,
    "intents": INTENTS,
    "lane_types": LANE_TYPES,
    "object_types": OBJECT_TYPES,
}

MAX_ALTERNATIVES = 3  # M: the most intents any family has


class SceneConfig(BaseModel):
    """Every knob of the generator. Unknown keys are refused; `tinypred data generate --config FILE`."""

    # strict: true is not 1; finite: NaN is not a learning rate
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    dt: float = Field(0.1, gt=0, le=1.0, description="time step, s")
    history_steps: int = Field(20, ge=2, le=200)
    future_steps: int = Field(30, ge=1, le=200)
    family_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "intersection": 0.3,
            "lane_change": 0.2,
            "stop_or_go": 0.2,
            "curve": 0.15,
            "cruise": 0.15,
            "follow": 0.15,
            "yield": 0.15,
            "merge": 0.15,
        }
    )
    intersection_priors: dict[str, float] = Field(
        default_factory=lambda: {"straight": 0.5, "left": 0.25, "right": 0.25}
    )
    lane_change_priors: dict[str, float] = Field(
        default_factory=lambda: {"keep": 0.5, "change_left": 0.25, "change_right": 0.25}
    )
    stop_or_go_priors: dict[str, float] = Field(default_factory=lambda: {"go": 0.5, "stop": 0.5})
    # follow: the lead's intent (its slots); yield: the cross car's, not the slots (a rule decides those)
    follow_priors: dict[str, float] = Field(
        default_factory=lambda: {"keep_gap": 0.5, "stop_behind": 0.25, "speed_up": 0.25}
    )
    yield_priors: dict[str, float] = Field(default_factory=lambda: {"straight": 0.7, "turn_off": 0.3})
    hint_strength: float = Field(0.3, ge=0, le=1, description="how strongly the past shows the intent")
    style_spread: float = Field(1.0, ge=0, le=1, description="driver-style randomness of the future, 0-1")
    pos_noise: float = Field(0.05, ge=0, le=5, description="observation noise std on history x, y (m)")
    heading_noise: float = Field(0.01, ge=0, le=1, description="observation noise on heading (rad)")
    speed_noise: float = Field(0.1, ge=0, le=5, description="observation noise on speed (m/s)")
    max_lanes: int = Field(4, ge=3, le=64, description="L: lanes in the map context")
    lane_points: int = Field(16, ge=2, le=256, description="P: points per lane")
    max_neighbours: int = Field(
        4, ge=0, le=64, description="M: neighbour slots, nearest first (the families have up to 2 others)"
    )

    @field_validator("family_weights")
    @classmethod
    def _weights(cls, w: dict[str, float]) -> dict[str, float]:
        for name, value in w.items():
            if name not in SYNTHETIC_FAMILIES:
                raise ValueError(f"unknown family {name!r}; expected some of {', '.join(SYNTHETIC_FAMILIES)}")
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"weight of {name!r} must be a finite number >= 0, got {value}")
        if sum(w.values()) <= 0:
            raise ValueError("at least one family needs a weight > 0")
        return w

    @model_validator(mode="after")
    def _priors(self) -> SceneConfig:
        for family, expected in PRIOR_KNOBS.items():
            key = f"{family}_priors"
            priors = getattr(self, key)
            if set(priors) != set(expected):
                raise ValueError(
                    f"{key}: expected exactly the keys {', '.join(expected)}, got {sorted(priors)}"
                )
            values = np.array([priors[k] for k in expected])
            if not np.all(np.isfinite(values)) or np.any(values < 0) or abs(values.sum() - 1) > 1e-6:
                raise ValueError(f"{key}: priors must be >= 0 and sum to 1, got {priors}")
        return self

    def priors(self, family: str) -> np.ndarray:
        """(M,) prior of each mixture slot of `family` (zero-padded). ``yield`` and ``merge`` have none: a
        rule decides their slots from the scene (`yield_priors` is over the cross car's intents)."""
        if family in ("yield", "merge"):
            raise ValueError(f"the slots of {family!r} have no fixed prior: a rule decides them per scene")
        out = np.zeros(MAX_ALTERNATIVES)
        names = FAMILY_INTENTS[family]
        table = getattr(self, f"{family}_priors", {names[0]: 1.0})
        out[: len(names)] = [table[n] for n in names]
        return out
