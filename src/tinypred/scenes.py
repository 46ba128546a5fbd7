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

How the past hints at the intent. A latent z = hint_strength * mu[intent] + eps (eps a normal truncated
at +-2 sigma) shapes the history: extra deceleration before a turn or a stop, a drift toward the target
lane before a lane change. The mixture's probabilities are the posterior p(intent | z), exact because
the truncation width is the same for every intent; with ``hint_strength = 0`` they are the priors.

Why the oracle is not perfect. The alternatives use each intent's *nominal* driver style; the future
actually driven draws its style (cruise speed, turn speed, where it stops, when and how fast it changes
lane) around it, scaled by ``style_spread``. That spread is what no predictor can know from the past.

Families (canonical frame: the agent drives along +x, right-hand traffic, lanes 3.5 m wide):
``intersection`` (straight / left / right at a 4-way junction whose entry is 0-25 m ahead),
``lane_change`` (keep / change left / change right on a 2-3 lane road, where a lane exists),
``stop_or_go`` (brake to stop at a stop line ahead, or go on), ``curve`` and ``cruise`` (one intent).
Each scene is then rotated and translated to a random world pose.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
            "intersection": 0.3, "lane_change": 0.2, "stop_or_go": 0.2, "curve": 0.15, "cruise": 0.15,
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
    style_spread: float = Field(1.0, ge=0, le=2, description="driver-style randomness of the future")
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
                raise ValueError(f"{key}: expected exactly the keys {', '.join(expected)}, got {sorted(priors)}")
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
class Scenes:
    """N scenes in the world frame (float64). Shapes: H history steps, T future, L lanes, P points, M alts.

    history: (N, H, 4) observed x, y, heading, speed (with observation noise)
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

    def rigid_transform(self, angle: float, shift: np.ndarray) -> Scenes:
        """The same scenes rotated by `angle` about the origin, then moved by `shift` (2,)."""
        rot = _rotation(np.asarray(angle))

        def move(points: np.ndarray) -> np.ndarray:
            return points @ rot.T + shift

        history = self.history.copy()
        history[..., :2] = move(history[..., :2])
        history[..., 2] += angle
        return _replace(self, history=history, future=move(self.future), lanes=move(self.lanes),
                        alt_futures=move(self.alt_futures))


def _replace(obj, **changes):
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}
    values.update(changes)
    return type(obj)(**values)


def _rotation(angle: np.ndarray) -> np.ndarray:
    """(..., 2, 2) rotation matrices for angles (...)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


# ----------------------------------------------------------------------------------------------------
# Paths: a start pose and J constant-curvature segments. Shapes broadcast: start (B..., 3), length and
# kappa (B..., J). A query beyond the last segment continues along it.


def advance(pose: np.ndarray, dist: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """Exact pose after travelling `dist` along an arc of curvature `kappa` from `pose` (..., 3)."""
    half = 0.5 * kappa * dist
    chord = dist * np.sinc(half / np.pi)  # chord length; sinc keeps kappa -> 0 exact (a straight line)
    heading = pose[..., 2] + half
    return np.stack(
        [pose[..., 0] + chord * np.cos(heading), pose[..., 1] + chord * np.sin(heading), pose[..., 2] + 2 * half],
        -1,
    )


def path_pose(start: np.ndarray, length: np.ndarray, kappa: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Pose (B..., S, 3) at arc lengths s (B..., S) along paths start (B..., 3), length/kappa (B..., J)."""
    n_seg = length.shape[-1]
    seg_start = np.zeros_like(length)
    seg_pose = [start]
    for j in range(1, n_seg):
        seg_start[..., j] = seg_start[..., j - 1] + length[..., j - 1]
        seg_pose.append(advance(seg_pose[-1], length[..., j - 1], kappa[..., j - 1]))
    # The segment of each query: the last one that starts at or before it (the first before s = 0).
    s0 = np.zeros_like(s)
    pose0 = np.broadcast_to(start[..., None, :], (*s.shape, 3)).copy()
    k0 = np.broadcast_to(kappa[..., :1], s.shape).copy()
    for j in range(1, n_seg):
        later = s >= seg_start[..., j : j + 1]
        s0 = np.where(later, seg_start[..., j : j + 1], s0)
        pose0 = np.where(later[..., None], seg_pose[j][..., None, :], pose0)
        k0 = np.where(later, kappa[..., j : j + 1], k0)
    return advance(pose0, s - s0, k0)


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
        v_allow = np.where(s[..., None] > plan.cap_to, np.inf, np.where(inside, plan.cap_v, brake_curve)).min(-1)
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

N_SEG = 7  # J: the most segments a path has, plus one zero-length straight that extends its end
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


def _segments(*parts, n: int = N_SEG) -> np.ndarray:
    """Stack per-segment values (broadcast together) on a last axis, padded with zero-length segments."""
    arr = np.stack(np.broadcast_arrays(*parts), -1).astype(float)
    return np.concatenate([arr, np.zeros((*arr.shape[:-1], n - arr.shape[-1]))], -1)


def _plan(length, kappa, v_cruise, caps) -> Plan:
    """Plan from segments and caps (B..., C, 4) of (from, to, v, decel)."""
    caps = np.broadcast_to(caps, (*np.shape(v_cruise), *np.shape(caps)[-2:]))
    return Plan(length, kappa, v_cruise, caps[..., 0], caps[..., 1], caps[..., 2], caps[..., 3])


def _take(plan: Plan, idx: np.ndarray) -> Plan:
    """The plan of alternative idx (B,) of each scene, from a (B, M) plan."""
    rows = np.arange(len(idx))
    return Plan(*(np.broadcast_to(getattr(plan, f.name), (len(idx), *getattr(plan, f.name).shape[1:]))[rows, idx]
                  for f in fields(Plan)))


def _choose(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category per row of probs (B, M)."""
    cum = np.cumsum(probs, -1)
    return np.minimum((rng.random(len(probs))[:, None] > cum).sum(-1), probs.shape[1] - 1)


def _hint(rng, cfg: SceneConfig, mu, prior: np.ndarray, intent: np.ndarray):
    """Latent z (B,) of the chosen intent, and log p(z | each intent) (B, M), -inf outside its support."""
    b = len(intent)
    eps = rng.standard_normal(b)
    while np.any(bad := np.abs(eps) > 2):  # a normal truncated at +-2 sigma, by redrawing
        eps[bad] = rng.standard_normal(int(bad.sum()))
    means = cfg.hint_strength * np.broadcast_to(mu, prior.shape)
    z = means[np.arange(b), intent] + HINT_SIGMA * eps
    dev = (z[:, None] - means) / HINT_SIGMA
    return z, np.where((prior > 0) & (np.abs(dev) <= 2 + 1e-9), -0.5 * dev**2, -np.inf)


def _style(rng, cfg: SceneConfig, b: int, low: float, high: float) -> np.ndarray:
    """A driver-style value drawn in [low, high] about its midpoint (the nominal), scaled by style_spread."""
    mid = 0.5 * (low + high)
    return mid + cfg.style_spread * (rng.uniform(low, high, b) - mid)


def _lane(start, length, kappa, span, kind: int = 0, mask=True) -> dict:
    b = len(start)
    return {"start": start, "length": np.broadcast_to(length, (b, N_SEG)), "kappa": np.broadcast_to(kappa, (b, N_SEG)),
            "span": np.broadcast_to(span, (b, 2)), "type": kind, "mask": np.broadcast_to(mask, (b,))}


def _start(b: int, y: float | np.ndarray) -> np.ndarray:
    return np.stack(np.broadcast_arrays(0.0, y, 0.0, np.zeros(b)), -1)[:, :3]


LANE_SPAN = (S_END - LANE_BEHIND, S_END + LANE_AHEAD)


def _intersection(rng, cfg: SceneConfig, b: int) -> Family:
    """Straight / left / right at a 4-way junction whose entry is 0-25 m ahead."""
    prior = np.broadcast_to(cfg.priors("intersection"), (b, MAX_ALTERNATIVES))
    intent = _choose(rng, prior)
    z, log_lik = _hint(rng, cfg, [0.0, -1.5, -1.5], prior, intent)
    a_hist = -0.8 + z  # everyone eases off before a junction; turners more, as much as the hint says

    d_entry = rng.uniform(0.0, 25.0, b)
    s_entry = S_END + d_entry
    radius = np.array([np.inf, JUNCTION_HALF + LANE_WIDTH / 2, JUNCTION_HALF - LANE_WIDTH / 2])
    arc = np.array([0.0, radius[1] * np.pi / 2, radius[2] * np.pi / 2])
    # The slowest right turn a style allows (0.8 of the design speed) must be reachable by braking.
    v_turn_min = 0.8 * np.sqrt(A_LAT_DESIGN * radius[2])
    v_hi = np.minimum(np.sqrt(v_turn_min**2 + 2 * A_PLAN_MAX * d_entry), 14.0)
    v_hi = np.minimum(v_hi, V_MAX + 2 * np.minimum(a_hist, 0))  # the history started at <= 20 m/s
    v_lo = V_MIN + 2 * np.maximum(a_hist, 0)  # ... and at >= 3 m/s
    v_end = rng.uniform(v_lo, np.maximum(v_hi, v_lo))

    length = _segments(s_entry[:, None], arc)  # (B, M, J): approach, turn, then straight on
    kappa = _segments(0.0, np.array([0.0, 1 / radius[1], -1 / radius[2]]) + np.zeros((b, 1)))
    start = _start(b, -LANE_WIDTH / 2)

    def plan(turn_factor, cruise_factor):
        v_turn = turn_factor[:, None] * np.sqrt(A_LAT_DESIGN * radius)  # (B, M); inf straight on
        decel = np.clip((v_end[:, None] ** 2 - v_turn**2) / (2 * np.maximum(d_entry, 1e-3))[:, None], 1.0, A_PLAN_MAX)
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
    drift = 0.5 * z  # m toward the target lane by the last observed step
    a_hist = rng.uniform(-0.3, 0.3, b)
    v_end = rng.uniform(9.0, 18.0, b)

    drift_len, drift_k = s_curve(np.full(b, 20.0), drift)
    head = S_END - 2 * drift_len  # the drift ends exactly at the last observed step
    still_to_move = np.array([0.0, LANE_WIDTH, -LANE_WIDTH]) - drift[:, None]  # (B, M)
    start = _start(b, lane * LANE_WIDTH)

    def plan(t_start, duration, cruise_factor):
        change_len, change_k = s_curve((v_end * duration)[:, None], still_to_move)
        parts = (head[:, None], drift_len[:, None], drift_len[:, None], (v_end * t_start)[:, None], change_len, change_len)
        curv = (0.0, drift_k[:, None], -drift_k[:, None], 0.0, change_k, -change_k)
        caps = np.broadcast_to(NO_CAP, (b, MAX_ALTERNATIVES, 1, 4))
        return _plan(_segments(*parts), _segments(*curv), (v_end * cruise_factor)[:, None] + np.zeros(3), caps)

    nominal = plan(np.full(b, 0.25), np.full(b, 3.25), np.ones(b))
    real = _take(plan(_style(rng, cfg, b, 0.0, 0.5), _style(rng, cfg, b, 2.5, 4.0), _style(rng, cfg, b, 0.95, 1.05)),
                 intent)
    lanes = [_lane(_start(b, j * LANE_WIDTH), 0.0, 0.0, LANE_SPAN, mask=j < n_lanes) for j in range(3)]
    return Family(start, v_end, a_hist, nominal, real, prior, log_lik, intent, lanes)


def _stop_or_go(rng, cfg: SceneConfig, b: int) -> Family:
    """A stop line ahead: brake smoothly to stop at it, or go on."""
    prior = np.broadcast_to(cfg.priors("stop_or_go"), (b, MAX_ALTERNATIVES))
    intent = _choose(rng, prior)
    z, log_lik = _hint(rng, cfg, [0.0, -1.5, 0.0], prior, intent)
    a_hist = -0.5 + z
    v_lo = V_MIN + 1.0 + 2 * np.maximum(a_hist, 0)
    v_end = rng.uniform(v_lo, np.minimum(15.0, V_MAX + 2 * np.minimum(a_hist, 0)))
    # The line is reachable braking at <= A_PLAN_MAX even when stopping 1.5 m short, and near enough
    # that the stop shows within the future horizon.
    d_lo = v_end**2 / (2 * A_PLAN_MAX) + 1.5
    s_line = S_END + rng.uniform(d_lo, np.maximum(d_lo, 2.5 * v_end))
    start = _start(b, -LANE_WIDTH / 2)
    length = np.zeros((b, MAX_ALTERNATIVES, N_SEG))  # one straight (the zero-length pad extends forever)
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
    length = kappa = np.zeros((b, N_SEG))
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
        return _plan(length, kappa, np.clip(v_end + delta, V_MIN, V_MAX), caps)

    real = plan(_style(rng, cfg, b, -2.0, 2.0))
    nominal = Plan(*(np.repeat(getattr(plan(np.zeros(b)), f.name)[:, None], MAX_ALTERNATIVES, 1) for f in fields(Plan)))
    start = _start(b, -LANE_WIDTH / 2)
    return Family(start, v_end, a_hist, nominal, real, prior, log_lik, intent,
                  [_lane(start, length, kappa, LANE_SPAN)])


BUILDERS = {
    "intersection": _intersection,
    "lane_change": _lane_change,
    "stop_or_go": _stop_or_go,
    "curve": lambda rng, cfg, b: _follow(rng, cfg, b, curved=True),
    "cruise": lambda rng, cfg, b: _follow(rng, cfg, b, curved=False),
}


# ----------------------------------------------------------------------------------------------------
# Putting a batch together


def _simulate(fam: Family, cfg: SceneConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Canonical-frame arrays of one family's batch (no observation noise, no world pose yet)."""
    b = len(fam.v_end)
    H, T, L, P, M = cfg.history_steps, cfg.future_steps, cfg.max_lanes, cfg.lane_points, MAX_ALTERNATIVES
    t = -np.arange(H - 1, -1, -1) * cfg.dt  # history times, the last one 0
    s_hist = S_END + fam.v_end[:, None] * t + 0.5 * fam.a_hist[:, None] * t**2
    hist = path_pose(fam.start, fam.alts.length[:, 0], fam.alts.kappa[:, 0], s_hist)  # (B, H, 3)
    speed = fam.v_end[:, None] + fam.a_hist[:, None] * t

    s_alt = rollout_speed(fam.alts, np.full((b, M), S_END), np.repeat(fam.v_end[:, None], M, 1), T, cfg.dt)
    alt = path_pose(fam.start[:, None], fam.alts.length, fam.alts.kappa, s_alt)[..., :2]
    s_real = rollout_speed(fam.real, np.full(b, S_END), fam.v_end, T, cfg.dt)
    future = path_pose(fam.start, fam.real.length, fam.real.kappa, s_real)[..., :2]

    lanes = np.zeros((b, L, P, 2))
    lane_mask = np.zeros((b, L), bool)
    lane_type = np.zeros((b, L), np.int8)
    grid = np.linspace(0.0, 1.0, P)
    for i, ln in enumerate(fam.lanes):
        s = ln["span"][:, :1] + grid * (ln["span"][:, 1:] - ln["span"][:, :1])
        lanes[:, i] = path_pose(ln["start"], ln["length"], ln["kappa"], s)[..., :2] * ln["mask"][:, None, None]
        lane_mask[:, i] = ln["mask"]
        lane_type[:, i] = ln["type"]

    # Posterior over intents given the (noise-free) hint; the prior where the hint is off.
    mask = fam.prior > 0
    logp = np.where(mask, np.log(np.where(mask, fam.prior, 1.0)) + fam.log_lik, -np.inf)
    probs = np.exp(logp - logp.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    mask &= probs > 0
    return {
        "history": np.concatenate([hist, speed[..., None]], -1),
        "future": future,
        "lanes": lanes,
        "lane_mask": lane_mask,
        "lane_type": lane_type,
        "alt_futures": alt * mask[..., None, None],
        "alt_probs": np.where(mask, probs, 0.0),
        "alt_mask": mask,
        "intent": fam.intent.astype(np.int8),
    }


CHUNK = 16384  # scenes per vectorised batch; fixed, so that a seed always gives the same arrays


def generate(cfg: SceneConfig, n: int, seed: int | np.random.SeedSequence) -> Scenes:
    """N scenes in the world frame. The same (config, n, seed) gives the same arrays."""
    if n < 0:
        raise ValueError(f"number of scenes must be >= 0, got {n}")
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    parts = [_generate_chunk(cfg, min(CHUNK, n - lo), np.random.default_rng(child))
             for lo, child in zip(range(0, n, CHUNK), seq.spawn(max(1, -(-n // CHUNK))), strict=False)]
    if not parts:
        return _generate_chunk(cfg, 0, np.random.default_rng(seq))
    return Scenes(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Scenes)))


def _generate_chunk(cfg: SceneConfig, n: int, rng: np.random.Generator) -> Scenes:
    H, T, L, P, M = cfg.history_steps, cfg.future_steps, cfg.max_lanes, cfg.lane_points, MAX_ALTERNATIVES
    weights = np.array([cfg.family_weights.get(f, 0.0) for f in FAMILIES])
    family = rng.choice(len(FAMILIES), n, p=weights / weights.sum()).astype(np.int8)
    out = {
        "history": np.zeros((n, H, 4)), "future": np.zeros((n, T, 2)), "lanes": np.zeros((n, L, P, 2)),
        "lane_mask": np.zeros((n, L), bool), "lane_type": np.zeros((n, L), np.int8),
        "alt_futures": np.zeros((n, M, T, 2)), "alt_probs": np.zeros((n, M)), "alt_mask": np.zeros((n, M), bool),
        "intent": np.zeros(n, np.int8),
    }
    alt_intent = np.full((n, M), -1, np.int8)
    for k, name in enumerate(FAMILIES):
        idx = np.flatnonzero(family == k)
        if len(idx) == 0:
            continue
        arrays = _simulate(BUILDERS[name](rng, cfg, len(idx)), cfg, rng)
        for key, value in arrays.items():
            out[key][idx] = value
        names = FAMILY_INTENTS[name]
        alt_intent[idx, : len(names)] = [INTENTS.index(x) for x in names]
    alt_intent[~out["alt_mask"]] = -1

    # Observation noise on the history only.
    hist = out["history"]
    hist[..., :2] += cfg.pos_noise * rng.standard_normal((n, H, 2))
    hist[..., 2] += cfg.heading_noise * rng.standard_normal((n, H))
    hist[..., 3] = np.maximum(hist[..., 3] + cfg.speed_noise * rng.standard_normal((n, H)), 0.0)

    # A random world pose per scene: rotate about the canonical origin, then shift.
    angle = rng.uniform(-np.pi, np.pi, n)
    shift = rng.uniform(-1000.0, 1000.0, (n, 2))
    rot = _rotation(angle)

    def move(points: np.ndarray) -> np.ndarray:  # (n, ..., 2)
        extra = points.ndim - 2
        r = rot.reshape(n, *([1] * extra), 2, 2)
        return np.einsum("n...ij,n...j->n...i", np.broadcast_to(r, (*points.shape, 2)), points) + shift.reshape(
            n, *([1] * extra), 2)

    hist[..., :2] = move(hist[..., :2])
    hist[..., 2] = np.angle(np.exp(1j * (hist[..., 2] + angle[:, None])))  # wrap to (-pi, pi]
    lanes = np.where(out["lane_mask"][..., None, None], move(out["lanes"]), 0.0)
    alts = np.where(out["alt_mask"][..., None, None], move(out["alt_futures"]), 0.0)
    return Scenes(hist, move(out["future"]), lanes, out["lane_mask"], out["lane_type"], alts, out["alt_probs"],
                  out["alt_mask"], alt_intent, family, out["intent"])
