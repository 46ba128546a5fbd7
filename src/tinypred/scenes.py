"""Synthetic driving scenes with real decision points, in the world frame.

World in metres, 10 Hz. Each scene has one target agent: an observed past (`history`), the future it
actually drove (`future`), the lane centre-lines around it (`lanes`) and the **ground-truth mixture**:
the noise-free future of every intent it could have chosen from the same past, with its probability.

How the agent moves. Every path is a chain of constant-curvature segments (lines and arcs); the agent
is a kinematic unicycle whose yaw rate is the path curvature times its speed, so it tracks the path
exactly and its lateral acceleration is ``kappa * v**2``. Speed follows a plain rule, one time step at a
time, vectorised over scenes: approach a cruise speed gently (+-1 m/s^2) but never exceed the braking
curve ``sqrt(v_cap**2 + 2 a_plan (s_cap - s))`` in front of a speed cap (a turn, a stop line). Caps and
curvatures are chosen so that |lateral accel| <= 3.6 m/s^2 and braking <= 4 m/s^2 by construction.

How the past hints at the intent. A latent z = hint_strength * mu[intent] + eps, eps ~ N(0, 0.5^2),
shapes the history: extra deceleration before a turn or a stop, a drift toward the target lane before a
lane change. The mixture's probabilities are the posterior p(intent | z) given that noise-free latent;
with ``hint_strength = 0`` they are the priors. Every intent the map allows stays in the mixture.

Why the oracle is not perfect. The alternatives use each intent's *nominal* driver style; the future
actually driven draws its style (cruise speed, turn speed, where it stops, when and how fast it changes
lane) around it, scaled by ``style_spread``. That spread is what no predictor can know from the past.

Families (canonical frame: the agent drives along +x, right-hand traffic, lanes 3.5 m wide):
``intersection`` (straight / left / right at a 4-way junction whose centre is 10-23 m ahead),
``lane_change`` (keep / change left / change right on a 2-3 lane road, where a lane exists),
``stop_or_go`` (brake to stop at a stop line ahead, or go on), ``curve`` and ``cruise`` (one intent).
Each scene is then rotated and translated to a random world pose.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tinypred.geometry import advance, as_points, rotate

FAMILIES = ("intersection", "lane_change", "stop_or_go", "curve", "cruise")
DECISION_FAMILIES = ("intersection", "lane_change", "stop_or_go")
INTENTS = ("follow", "straight", "left", "right", "keep", "change_left", "change_right", "go", "stop")
# The intents of each family, in mixture-slot order.
FAMILY_INTENTS = {
    "intersection": ("straight", "left", "right"),
    "lane_change": ("keep", "change_left", "change_right"),
    "stop_or_go": ("go", "stop"),
    "curve": ("follow",),
    "cruise": ("follow",),
}
LANE_TYPES = ("lane", "stop_line")

MAX_ALTERNATIVES = 3  # M: the most intents any family has
LANE_WIDTH = 3.5
JUNCTION_HALF = 10.0  # half the side of the junction box, m
A_LAT_DESIGN = 3.6  # lateral acceleration the turn and curve speeds are designed for, m/s^2
A_PLAN_MAX = 4.0  # the hardest planned braking, m/s^2 (the hard limit is 5)
A_FREE = 1.0  # gentle acceleration toward the cruise speed, m/s^2
A_BRAKE_MAX = 5.0
V_MIN, V_MAX = 3.0, 20.0  # cruise speeds; only a stop goes below V_MIN
HINT_SIGMA = 0.5  # std of the hint latent's noise (in units of mu)
S_END = 60.0  # arc length of the last observed position along the agent's path
LANE_BEHIND, LANE_AHEAD = 20.0, 60.0  # the stretch of each lane that the map context shows, m


class SceneConfig(BaseModel):
    """Every knob of the generator. Unknown keys are refused; `tinypred data generate --config FILE`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
        }
    )
    intersection_priors: dict[str, float] = Field(
        default_factory=lambda: {"straight": 0.5, "left": 0.25, "right": 0.25}
    )
    lane_change_priors: dict[str, float] = Field(
        default_factory=lambda: {"keep": 0.5, "change_left": 0.25, "change_right": 0.25}
    )
    stop_or_go_priors: dict[str, float] = Field(default_factory=lambda: {"go": 0.5, "stop": 0.5})
    hint_strength: float = Field(0.3, ge=0, le=1, description="how strongly the past shows the intent")
    style_spread: float = Field(1.0, ge=0, le=1, description="driver-style randomness of the future, 0-1")
    pos_noise: float = Field(0.05, ge=0, le=5, description="observation noise std on history x, y (m)")
    heading_noise: float = Field(0.01, ge=0, le=1, description="observation noise on heading (rad)")
    speed_noise: float = Field(0.1, ge=0, le=5, description="observation noise on speed (m/s)")
    max_lanes: int = Field(4, ge=3, le=16, description="L: lanes in the map context")
    lane_points: int = Field(16, ge=2, le=256, description="P: points per lane")

    @field_validator("family_weights")
    @classmethod
    def _weights(cls, w: dict[str, float]) -> dict[str, float]:
        for name, value in w.items():
            if name not in FAMILIES:
                raise ValueError(f"unknown family {name!r}; expected some of {', '.join(FAMILIES)}")
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"weight of {name!r} must be a finite number >= 0, got {value}")
        if sum(w.values()) <= 0:
            raise ValueError("at least one family needs a weight > 0")
        return w

    @model_validator(mode="after")
    def _priors(self) -> SceneConfig:
        for family in DECISION_FAMILIES:
            key = f"{family}_priors"
            priors = getattr(self, key)
            expected = FAMILY_INTENTS[family]
            if set(priors) != set(expected):
                raise ValueError(
                    f"{key}: expected exactly the keys {', '.join(expected)}, got {sorted(priors)}"
                )
            values = np.array([priors[k] for k in expected])
            if not np.all(np.isfinite(values)) or np.any(values < 0) or abs(values.sum() - 1) > 1e-6:
                raise ValueError(f"{key}: priors must be >= 0 and sum to 1, got {priors}")
        return self

    def priors(self, family: str) -> np.ndarray:
        """(M,) prior of each mixture slot of `family` (zero-padded)."""
        out = np.zeros(MAX_ALTERNATIVES)
        names = FAMILY_INTENTS[family]
        table = getattr(self, f"{family}_priors", {names[0]: 1.0})
        out[: len(names)] = [table[n] for n in names]
        return out


@dataclass(frozen=True)
class SceneArrays:
    """The arrays every scene has, in the world frame (`Scenes`) or an agent frame (`EncodedScenes`).
    Shapes: N scenes, H history steps, T future steps, L lanes, P points per lane, M alternatives.

    history: (N, H, F) the observed past (F per frame: see the subclasses)
    future: (N, T, 2) the future actually driven
    lanes: (N, L, P, 2); lane_mask: (N, L) bool; lane_type: (N, L) int8 index into LANE_TYPES
    alt_futures: (N, M, T, 2) noise-free nominal future of each intent; alt_probs: (N, M), 0 where masked;
    alt_mask: (N, M) bool; alt_intent: (N, M) int8 index into INTENTS, -1 where masked
    family: (N,) int8 index into FAMILIES; intent: (N,) int8 slot of the chosen intent in the mixture
    """

    history: np.ndarray
    future: np.ndarray
    lanes: np.ndarray
    lane_mask: np.ndarray
    lane_type: np.ndarray
    alt_futures: np.ndarray
    alt_probs: np.ndarray
    alt_mask: np.ndarray
    alt_intent: np.ndarray
    family: np.ndarray
    intent: np.ndarray

    def __len__(self) -> int:
        return self.history.shape[0]

    @property
    def is_decision(self) -> np.ndarray:
        """(N,) bool: the scene's family has a decision point."""
        return np.isin(self.family, [FAMILIES.index(f) for f in DECISION_FAMILIES])


@dataclass(frozen=True)
class Scenes(SceneArrays):
    """N scenes in the world frame: history (N, H, 4) is the observed x, y, heading, speed (with
    observation noise), float64; future, lanes and alternatives are float32 (6e-5 m of resolution at 1 km)."""

    def rigid_transform(self, angle: float, shift: np.ndarray) -> Scenes:
        """The same scenes rotated by `angle` about the origin, then moved by `shift` (2,)."""

        def move(points: np.ndarray) -> np.ndarray:
            return rotate(points, angle) + shift

        history = self.history.copy()
        history[..., :2] = move(history[..., :2])
        history[..., 2] += angle
        return _replace(
            self,
            history=history,
            future=move(self.future),
            lanes=move(self.lanes),
            alt_futures=move(self.alt_futures),
        )


def _replace(obj, **changes):
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}
    values.update(changes)
    return type(obj)(**values)


# ----------------------------------------------------------------------------------------------------
# Paths: a start pose and J constant-curvature segments. Positions are complex numbers x + iy (one
# ufunc moves both coordinates). Shapes broadcast: start (B..., 3) as x, y, heading; length and kappa
# (B..., J). A query beyond the last segment continues along it, one before the start along the first.


def path_pose(start: np.ndarray, length: np.ndarray, kappa: np.ndarray, s: np.ndarray):
    """Position (B..., S) complex and heading (B..., S) at arc lengths s (B..., S) along the paths."""
    z, heading = start[..., 0] + 1j * start[..., 1], start[..., 2]
    z0, h0 = z[..., None], heading[..., None]
    s0, k0 = np.zeros_like(s), kappa[..., :1]
    begin = np.zeros(length.shape[:-1])
    # Walk the segments: a query takes the last segment that starts at or before it.
    for j in range(1, length.shape[-1]):
        z, heading = advance(z, heading, length[..., j - 1], kappa[..., j - 1])
        begin = begin + length[..., j - 1]
        later = s >= begin[..., None]
        z0 = np.where(later, z[..., None], z0)
        h0 = np.where(later, heading[..., None], h0)
        s0 = np.where(later, begin[..., None], s0)
        k0 = np.where(later, kappa[..., j : j + 1], k0)
    return advance(z0, h0, s - s0, k0)


def s_curve(dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two equal opposite arcs moving (dx ahead, dy left) from heading 0 back to heading 0.

    Returns (arc length, curvature of the first arc); the second arc has the opposite curvature.
    Each arc turns by phi = 2 atan(dy/dx); kappa = 2 sin(phi)/dx; length = phi/kappa = dx / (2 sinc(phi)).
    """
    phi = 2 * np.arctan2(dy, dx)
    return dx / (2 * np.sinc(phi / np.pi)), 2 * np.sin(phi) / dx


# ----------------------------------------------------------------------------------------------------
# Speed: a rule applied one step at a time, vectorised over every scene and alternative.


@dataclass
class Plan:
    """How agents drive from the end of the history. Shapes (B...,) and (B..., C) for C speed caps.

    Cap c: from arc length cap_from[c] to cap_to[c] the speed is at most cap_v[c]; before it the agent
    brakes along sqrt(cap_v**2 + 2 cap_decel (cap_from - s)).
    """

    length: np.ndarray  # (B..., J) segments of the path, from the path start
    kappa: np.ndarray
    v_cruise: np.ndarray  # (B...,)
    cap_from: np.ndarray  # (B..., C)
    cap_to: np.ndarray
    cap_v: np.ndarray
    cap_decel: np.ndarray


def rollout_speed(plan: Plan, s: np.ndarray, v: np.ndarray, steps: int, dt: float) -> np.ndarray:
    """Arc length (B..., steps) at t = dt, 2dt, ... from arc length s and speed v (B...,)."""
    out = np.empty((*s.shape, steps))
    for t in range(steps):
        ahead = np.maximum(plan.cap_from - s[..., None], 0.0)
        inside = (s[..., None] >= plan.cap_from) & (s[..., None] <= plan.cap_to)
        brake_curve = np.sqrt(plan.cap_v**2 + 2 * plan.cap_decel * ahead)
        v_allow = np.where(s[..., None] > plan.cap_to, np.inf, np.where(inside, plan.cap_v, brake_curve)).min(
            -1
        )
        a_free = np.clip((plan.v_cruise - v) / dt, -A_FREE, A_FREE)
        accel = np.clip(np.minimum(a_free, (v_allow - v) / dt), -A_BRAKE_MAX, A_FREE)
        v_next = np.maximum(v + accel * dt, 0.0)
        s = s + 0.5 * (v + v_next) * dt
        v = v_next
        out[..., t] = s
    return out


# ----------------------------------------------------------------------------------------------------
# Families. Each builder works in the canonical frame (the agent's path starts at x = 0 heading +x and
# the last observed step is at arc length S_END) and returns a `Family`.

NO_CAP = (np.inf, np.inf, np.inf, 1.0)


@dataclass
class Family:
    start: np.ndarray  # (B, 3) start pose of the agent's path (shared by every alternative)
    v_end: np.ndarray  # (B,) speed at the last observed step
    a_hist: np.ndarray  # (B,) constant acceleration over the history
    alts: Plan  # (B, M) the nominal plan of each intent
    real: Plan  # (B,) the plan actually driven: the chosen intent with its drawn style
    prior: np.ndarray  # (B, M), 0 where the intent does not exist
    log_lik: np.ndarray  # (B, M) log p(z | intent) up to a constant shared by a scene's intents
    intent: np.ndarray  # (B,) chosen slot
    lanes: list[dict]  # up to L lanes: start (B,3), length/kappa (B,J), span (B,2), type, mask (B,)


def _segments(*parts) -> np.ndarray:
    """Stack per-segment values (broadcast together) on a last axis, then one zero-length straight
    segment, so that a path continues straight on after its last real segment."""
    arr = np.stack(np.broadcast_arrays(*parts), -1).astype(float)
    return np.concatenate([arr, np.zeros((*arr.shape[:-1], 1))], -1)


def _plan(length, kappa, v_cruise, caps) -> Plan:
    """Plan from segments and caps (B..., C, 4) of (from, to, v, decel)."""
    caps = np.broadcast_to(caps, (*np.shape(v_cruise), *np.shape(caps)[-2:]))
    return Plan(length, kappa, v_cruise, caps[..., 0], caps[..., 1], caps[..., 2], caps[..., 3])


def _take(plan: Plan, idx: np.ndarray) -> Plan:
    """The plan of alternative idx (B,) of each scene, from a (B, M) plan."""
    rows = np.arange(len(idx))
    return Plan(
        *(
            np.broadcast_to(getattr(plan, f.name), (len(idx), *getattr(plan, f.name).shape[1:]))[rows, idx]
            for f in fields(Plan)
        )
    )


def _choose(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category per row of probs (B, M)."""
    cum = np.cumsum(probs, -1)
    return np.minimum((rng.random(len(probs))[:, None] > cum).sum(-1), probs.shape[1] - 1)


def _hint(rng, cfg: SceneConfig, mu, prior: np.ndarray, intent: np.ndarray):
    """Latent z ~ N(hint_strength * mu[intent], HINT_SIGMA^2) of the chosen intent (B,), and
    log p(z | each intent) (B, M) up to a shared constant, for the posterior over intents."""
    b = len(intent)
    means = cfg.hint_strength * np.broadcast_to(mu, prior.shape)
    z = means[np.arange(b), intent] + HINT_SIGMA * rng.standard_normal(b)
    return z, np.where(prior > 0, -0.5 * ((z[:, None] - means) / HINT_SIGMA) ** 2, -np.inf)


def _style(rng, cfg: SceneConfig, b: int, low: float, high: float) -> np.ndarray:
    """A driver-style value drawn in [low, high] about its midpoint (the nominal), scaled by style_spread."""
    mid = 0.5 * (low + high)
    return mid + cfg.style_spread * (rng.uniform(low, high, b) - mid)


def _lane(start, length, kappa, span, kind: int = 0, mask=True) -> dict:
    """A lane of the map context: a path (start (B, 3), segments) drawn over arc lengths span (from, to)."""
    b = len(start)
    return {
        "start": start,
        "length": np.atleast_2d(length),
        "kappa": np.atleast_2d(kappa),
        "span": np.broadcast_to(span, (b, 2)),
        "type": kind,
        "mask": np.broadcast_to(mask, (b,)),
    }


def _start(b: int, y: float | np.ndarray) -> np.ndarray:
    """(B, 3) path start poses at x = 0, lateral position y, heading along +x."""
    start = np.zeros((b, 3))
    start[:, 1] = y
    return start


LANE_SPAN = (S_END - LANE_BEHIND, S_END + LANE_AHEAD)


def _intersection(rng, cfg: SceneConfig, b: int) -> Family:
    """Straight / left / right at a 4-way junction: its entry 0-13 m ahead, its centre 10-23 m."""
    prior = np.broadcast_to(cfg.priors("intersection"), (b, MAX_ALTERNATIVES))
    intent = _choose(rng, prior)
    z, log_lik = _hint(rng, cfg, [0.0, -1.5, -1.5], prior, intent)
    # Everyone eases off before a junction; turners more, as much as the hint says. The clip (at about
    # 4 sigma) keeps the past physical; the posterior uses z itself.
    a_hist = np.clip(-1.1 + z, -4.5, 0.4)

    radius = np.array([np.inf, JUNCTION_HALF + LANE_WIDTH / 2, JUNCTION_HALF - LANE_WIDTH / 2])
    arc = np.array([0.0, radius[1] * np.pi / 2, radius[2] * np.pi / 2])
    # Time for a nominal right-turner to reach the junction entry: <= 1.5 s, so that the branches split
    # by metres inside the 3 s horizon. Its distance d = tau (v_end + v_turn) / 2 is then 0-13 m (the
    # junction centre 10-23 m ahead), and v_end is capped so that even the slowest turn a style allows
    # (0.8 of the design speed) needs at most A_PLAN_MAX of braking: v^2 - v_min^2 <= 2 A d. (With
    # tau >= 0.15 s, v_hi >= 4.6 m/s stays above the lower bound v_lo below.)
    tau = rng.uniform(0.15, 1.5, b)
    v_turn_nominal = 0.9 * np.sqrt(A_LAT_DESIGN * radius[2])
    v_turn_min = 0.8 * np.sqrt(A_LAT_DESIGN * radius[2])
    a = A_PLAN_MAX * tau
    v_hi = 0.5 * (a + np.sqrt(a**2 + 4 * v_turn_min**2 + 4 * a * v_turn_nominal))
    v_hi = np.minimum(v_hi, V_MAX + 2 * np.minimum(a_hist, 0))  # the history started at <= 20 m/s
    # ... and at >= 3 m/s; and no slower than 4.5 m/s now, or the turn would barely start by the horizon.
    v_lo = np.maximum(V_MIN + 2 * np.maximum(a_hist, 0), 4.5)
    v_end = rng.uniform(v_lo, np.maximum(v_hi, v_lo))
    d_entry = tau * (v_end + np.minimum(v_end, v_turn_nominal)) / 2  # a slower agent keeps its speed
    s_entry = S_END + d_entry

    length = _segments(s_entry[:, None], arc)  # (B, M, J): approach, turn, then straight on
    kappa = _segments(0.0, np.array([0.0, 1 / radius[1], -1 / radius[2]]) + np.zeros((b, 1)))
    start = _start(b, -LANE_WIDTH / 2)

    def plan(turn_factor, cruise_factor):
        v_turn = turn_factor[:, None] * np.sqrt(A_LAT_DESIGN * radius)  # (B, M); inf straight on
        decel = np.clip(
            (v_end[:, None] ** 2 - v_turn**2) / (2 * np.maximum(d_entry, 1e-3))[:, None], 1.0, A_PLAN_MAX
        )
        caps = np.stack(np.broadcast_arrays(s_entry[:, None], s_entry[:, None] + arc, v_turn, decel), -1)
        return _plan(length, kappa, (v_end * cruise_factor)[:, None] + np.zeros(3), caps[:, :, None])

    nominal = plan(np.full(b, 0.9), np.ones(b))
    real = _take(plan(_style(rng, cfg, b, 0.8, 1.0), _style(rng, cfg, b, 0.9, 1.1)), intent)
    lanes = [_lane(start, length[:, j], kappa[:, j], LANE_SPAN) for j in range(3)]
    return Family(start, v_end, a_hist, nominal, real, prior, log_lik, intent, lanes)


def _lane_change(rng, cfg: SceneConfig, b: int) -> Family:
    """Keep / change left / change right on a road of 2-3 lanes, where the lane exists."""
    n_lanes = rng.integers(2, 4, b)
    lane = rng.integers(0, n_lanes)  # counted from the rightmost
    exists = np.stack([np.ones(b, bool), lane < n_lanes - 1, lane > 0], -1)
    prior = cfg.priors("lane_change") * exists
    total = prior.sum(-1, keepdims=True)
    # If no intent that exists has prior mass, the agent keeps its lane.
    prior = np.where(total > 0, prior / np.where(total > 0, total, 1.0), np.eye(MAX_ALTERNATIVES)[0])
    intent = _choose(rng, prior)
    z, log_lik = _hint(rng, cfg, [0.0, 1.0, -1.0], prior, intent)
    drift = np.clip(0.5 * z, -1.2, 1.2)  # m toward the target lane by the last observed step
    a_hist = rng.uniform(-0.3, 0.3, b)
    v_end = rng.uniform(9.0, 18.0, b)

    drift_len, drift_k = s_curve(np.full(b, 20.0), drift)
    head = S_END - 2 * drift_len  # the drift ends exactly at the last observed step
    still_to_move = np.array([0.0, LANE_WIDTH, -LANE_WIDTH]) - drift[:, None]  # (B, M)
    start = _start(b, lane * LANE_WIDTH)

    def plan(t_start, duration, cruise_factor):
        change_len, change_k = s_curve((v_end * duration)[:, None], still_to_move)
        parts = (
            head[:, None],
            drift_len[:, None],
            drift_len[:, None],
            (v_end * t_start)[:, None],
            change_len,
            change_len,
        )
        curv = (0.0, drift_k[:, None], -drift_k[:, None], 0.0, change_k, -change_k)
        caps = np.broadcast_to(NO_CAP, (b, MAX_ALTERNATIVES, 1, 4))
        return _plan(
            _segments(*parts), _segments(*curv), (v_end * cruise_factor)[:, None] + np.zeros(3), caps
        )

    nominal = plan(np.full(b, 0.25), np.full(b, 3.25), np.ones(b))
    real = _take(
        plan(_style(rng, cfg, b, 0.0, 0.5), _style(rng, cfg, b, 2.5, 4.0), _style(rng, cfg, b, 0.95, 1.05)),
        intent,
    )
    lanes = [_lane(_start(b, j * LANE_WIDTH), 0.0, 0.0, LANE_SPAN, mask=j < n_lanes) for j in range(3)]
    return Family(start, v_end, a_hist, nominal, real, prior, log_lik, intent, lanes)


def _stop_or_go(rng, cfg: SceneConfig, b: int) -> Family:
    """A stop line ahead: brake smoothly to stop at it, or go on."""
    prior = np.broadcast_to(cfg.priors("stop_or_go"), (b, MAX_ALTERNATIVES))
    intent = _choose(rng, prior)
    z, log_lik = _hint(rng, cfg, [0.0, -1.5, 0.0], prior, intent)
    a_hist = np.clip(-0.5 + z, -4.5, 1.0)
    v_lo = V_MIN + 1.0 + 2 * np.maximum(a_hist, 0)
    v_end = rng.uniform(v_lo, np.minimum(15.0, V_MAX + 2 * np.minimum(a_hist, 0)))
    # The line is reachable braking at <= A_PLAN_MAX even when stopping 1.5 m short, and near enough
    # that the stop shows within the future horizon.
    d_lo = v_end**2 / (2 * A_PLAN_MAX) + 1.5
    s_line = S_END + rng.uniform(d_lo, np.maximum(d_lo, 2.5 * v_end))
    start = _start(b, -LANE_WIDTH / 2)
    length = np.zeros((b, MAX_ALTERNATIVES, 1))  # one zero-length straight extends forever
    kappa = np.zeros_like(length)

    def plan(stop_short, cruise_factor):
        stop_at = s_line - stop_short
        stop_cap = np.stack(np.broadcast_arrays(stop_at, np.inf, 0.0, v_end**2 / (2 * (stop_at - S_END))), -1)
        no_cap = np.broadcast_to(NO_CAP, (b, 4))
        caps = np.stack([no_cap, stop_cap, no_cap], 1)[:, :, None]
        return _plan(length, kappa, (v_end * cruise_factor)[:, None] + np.zeros(3), caps)

    nominal = plan(np.full(b, 0.75), np.ones(b))
    real = _take(plan(_style(rng, cfg, b, 0.0, 1.5), _style(rng, cfg, b, 0.9, 1.1)), intent)
    line_start = np.stack([s_line, np.full(b, -LANE_WIDTH), np.full(b, np.pi / 2)], -1)  # across the lane
    lanes = [_lane(start, 0.0, 0.0, LANE_SPAN), _lane(line_start, 0.0, 0.0, (0.0, LANE_WIDTH), kind=1)]
    return Family(start, v_end, a_hist, nominal, real, prior, log_lik, intent, lanes)


def _follow(rng, cfg: SceneConfig, b: int, curved: bool) -> Family:
    """One intent: follow a curved lane, or cruise a straight road with a gentle speed change."""
    prior = np.broadcast_to(np.eye(MAX_ALTERNATIVES)[0], (b, MAX_ALTERNATIVES))
    intent = np.zeros(b, np.int64)
    log_lik = np.where(prior > 0, 0.0, -np.inf)
    a_hist = rng.uniform(-0.5, 0.5, b)
    v_top = np.full(b, 18.0)
    caps = np.broadcast_to(NO_CAP, (b, 1, 4))
    length = kappa = np.zeros((b, 1))
    if curved:
        radius = rng.uniform(30.0, 150.0, b)
        arc = radius * rng.uniform(np.pi / 6, np.pi / 2, b)
        into = rng.uniform(-30.0, np.minimum(0.7 * arc, 55.0))  # how far into the arc the agent is
        length = _segments(S_END - into, arc)
        kappa = _segments(0.0, rng.choice([-1.0, 1.0], b) / radius)
        v_curve = 0.95 * np.sqrt(A_LAT_DESIGN * radius)
        v_top = np.minimum(v_top, v_curve + 2 * np.minimum(a_hist, 0))  # the past was under it too
        caps = np.stack([S_END - into, S_END - into + arc, v_curve, np.full(b, 2.0)], -1)[:, None]
    v_top = np.minimum(v_top, V_MAX + 2 * np.minimum(a_hist, 0))
    v_end = rng.uniform(np.minimum(V_MIN + 2 + 2 * np.maximum(a_hist, 0), v_top), v_top)

    def plan(delta):
        # Drivers keep their trend: the speed they head for follows the past's acceleration (up to
        # +-1.5 m/s), and their style adds up to +-1 m/s that the past does not show.
        return _plan(length, kappa, np.clip(v_end + 3.0 * a_hist + delta, V_MIN, V_MAX), caps)

    real = plan(_style(rng, cfg, b, -1.0, 1.0))
    nominal = Plan(
        *(np.repeat(getattr(plan(np.zeros(b)), f.name)[:, None], MAX_ALTERNATIVES, 1) for f in fields(Plan))
    )
    start = _start(b, -LANE_WIDTH / 2)
    return Family(
        start, v_end, a_hist, nominal, real, prior, log_lik, intent, [_lane(start, length, kappa, LANE_SPAN)]
    )


BUILDERS = {
    "intersection": _intersection,
    "lane_change": _lane_change,
    "stop_or_go": _stop_or_go,
    "curve": lambda rng, cfg, b: _follow(rng, cfg, b, curved=True),
    "cruise": lambda rng, cfg, b: _follow(rng, cfg, b, curved=False),
}


# ----------------------------------------------------------------------------------------------------
# Putting a batch together


def _simulate(fam: Family, cfg: SceneConfig) -> dict[str, np.ndarray]:
    """Canonical-frame arrays of one family's batch, positions complex (no noise, no world pose yet)."""
    b = len(fam.v_end)
    T, L, P, M = cfg.future_steps, cfg.max_lanes, cfg.lane_points, MAX_ALTERNATIVES
    t = -np.arange(cfg.history_steps - 1, -1, -1) * cfg.dt  # history times, the last one 0
    s_hist = S_END + fam.v_end[:, None] * t + 0.5 * fam.a_hist[:, None] * t**2
    hist_z, hist_heading = path_pose(fam.start, fam.alts.length[:, 0], fam.alts.kappa[:, 0], s_hist)

    m = int(np.max(np.flatnonzero(fam.prior.any(0)))) + 1  # slots past the family's intents stay empty
    alts = Plan(*(getattr(fam.alts, f.name)[:, :m] for f in fields(Plan)))
    s_alt = rollout_speed(alts, np.full((b, m), S_END), np.repeat(fam.v_end[:, None], m, 1), T, cfg.dt)
    alt_z = np.zeros((b, M, T), complex)
    alt_z[:, :m] = path_pose(fam.start[:, None], alts.length, alts.kappa, s_alt)[0]
    s_real = rollout_speed(fam.real, np.full(b, S_END), fam.v_end, T, cfg.dt)
    future_z, _ = path_pose(fam.start, fam.real.length, fam.real.kappa, s_real)

    lanes = np.zeros((b, L, P), complex)
    lane_mask = np.zeros((b, L), bool)
    lane_type = np.zeros((b, L), np.int8)
    grid = np.linspace(0.0, 1.0, P)
    for i, ln in enumerate(fam.lanes):
        s = ln["span"][:, :1] + grid * (ln["span"][:, 1:] - ln["span"][:, :1])
        lanes[:, i] = path_pose(ln["start"], ln["length"], ln["kappa"], s)[0] * ln["mask"][:, None]
        lane_mask[:, i] = ln["mask"]
        lane_type[:, i] = ln["type"]

    # Posterior over intents given the (noise-free) hint; the prior where the hint is off.
    mask = fam.prior > 0
    logp = np.where(mask, np.log(np.where(mask, fam.prior, 1.0)) + fam.log_lik, -np.inf)
    probs = np.exp(logp - logp.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return {
        "hist_z": hist_z,
        "hist_heading": hist_heading,
        "hist_speed": fam.v_end[:, None] + fam.a_hist[:, None] * t,
        "future": future_z,
        "lanes": lanes,
        "lane_mask": lane_mask,
        "lane_type": lane_type,
        "alt_futures": alt_z * mask[..., None],
        "alt_probs": np.where(mask, probs, 0.0),
        "alt_mask": mask,
        "intent": fam.intent,
    }


CHUNK = 8192  # scenes per vectorised batch; fixed, so that a seed always gives the same arrays


def generate(cfg: SceneConfig, n: int, seed: int | np.random.SeedSequence) -> Scenes:
    """N scenes in the world frame. The same (config, n, seed) gives the same arrays."""
    if n < 0:
        raise ValueError(f"number of scenes must be >= 0, got {n}")
    H, T, L, P, M = cfg.history_steps, cfg.future_steps, cfg.max_lanes, cfg.lane_points, MAX_ALTERNATIVES
    out = {
        "hist_z": np.zeros((n, H), complex),
        "hist_heading": np.zeros((n, H)),
        "hist_speed": np.zeros((n, H)),
        "future": np.zeros((n, T), np.complex64),
        "lanes": np.zeros((n, L, P), np.complex64),
        "lane_mask": np.zeros((n, L), bool),
        "lane_type": np.zeros((n, L), np.int8),
        "alt_futures": np.zeros((n, M, T), np.complex64),
        "alt_probs": np.zeros((n, M)),
        "alt_mask": np.zeros((n, M), bool),
        "alt_intent": np.full((n, M), -1, np.int8),
        "family": np.zeros(n, np.int8),
        "intent": np.zeros(n, np.int8),
    }
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    starts = range(0, n, CHUNK)

    def fill(lo: int, child: np.random.SeedSequence) -> None:
        _fill(cfg, np.random.default_rng(child), {k: v[lo : lo + CHUNK] for k, v in out.items()})

    # Chunks have their own random streams and disjoint outputs, so threads (NumPy releases the GIL in
    # its loops) change the speed, never the numbers.
    with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1) or 1) as pool:
        list(pool.map(fill, starts, seq.spawn(len(starts))))
    history = np.stack([out["hist_z"].real, out["hist_z"].imag, out["hist_heading"], out["hist_speed"]], -1)
    return Scenes(
        history,
        as_points(out["future"]),
        as_points(out["lanes"]),
        out["lane_mask"],
        out["lane_type"],
        as_points(out["alt_futures"]),
        out["alt_probs"],
        out["alt_mask"],
        out["alt_intent"],
        out["family"],
        out["intent"],
    )


def _fill(cfg: SceneConfig, rng: np.random.Generator, out: dict[str, np.ndarray]) -> None:
    """Generate len(out['family']) scenes into the views `out`."""
    n = len(out["family"])
    weights = np.array([cfg.family_weights.get(f, 0.0) for f in FAMILIES])
    out["family"][:] = rng.choice(len(FAMILIES), n, p=weights / weights.sum())
    for k, name in enumerate(FAMILIES):
        idx = np.flatnonzero(out["family"] == k)
        if len(idx) == 0:
            continue
        for key, value in _simulate(BUILDERS[name](rng, cfg, len(idx)), cfg).items():
            out[key][idx] = value
        names = FAMILY_INTENTS[name]
        out["alt_intent"][idx, : len(names)] = [INTENTS.index(x) for x in names]
    out["alt_intent"][~out["alt_mask"]] = -1

    # Observation noise, on the history only.
    shape = out["hist_speed"].shape
    out["hist_z"] += cfg.pos_noise * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
    out["hist_heading"] += cfg.heading_noise * rng.standard_normal(shape)
    out["hist_speed"][:] = np.maximum(out["hist_speed"] + cfg.speed_noise * rng.standard_normal(shape), 0.0)

    # A random world pose per scene: rotate about the canonical origin, then shift.
    angle = rng.uniform(-np.pi, np.pi, n)
    turn = np.exp(1j * angle)
    shift = rng.uniform(-1000.0, 1000.0, n) + 1j * rng.uniform(-1000.0, 1000.0, n)
    for key, mask in (
        ("hist_z", None),
        ("future", None),
        ("lanes", "lane_mask"),
        ("alt_futures", "alt_mask"),
    ):
        z = out[key]
        extra = (1,) * (z.ndim - 1)
        moved = z * turn.astype(z.dtype).reshape(n, *extra) + shift.astype(z.dtype).reshape(n, *extra)
        z[:] = (
            moved
            if mask is None
            else np.where(out[mask].reshape(*out[mask].shape, *(1,) * (z.ndim - 2)), moved, 0)
        )
    out["hist_heading"][:] = np.angle(
        np.exp(1j * (out["hist_heading"] + angle[:, None]))
    )  # wrap to (-pi, pi]
