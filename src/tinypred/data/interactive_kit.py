"""The kit the interactive builders (`interactive`, `gap_acceptance`) are made of: hidden driver traits
and their priors, pasts that show a hint, IDM histories, the speed rule a neighbour plans with, map
lanes, and assembling a `Drawn` from time-major arrays.

Conventions: positions are complex (x + iy) in the canonical frame; internal arrays are time-major,
(H or T, B, K) for B scenes and K columns (the nominal future of each mixture slot, then the one
actually driven; `resample` simulates one column), so that a loop over time steps reads contiguous
memory. A hidden trait is uniform on its range shrunk about the midpoint by ``style_spread``; its
midpoint is the nominal value the mixture slots use.
"""

from __future__ import annotations

import numpy as np

from tinypred.data.drawn import Drawn
from tinypred.data.families import LANE_WIDTH, S_END
from tinypred.data.paths import A_FREE, path_points
from tinypred.data.scene_config import MAX_ALTERNATIVES, SceneConfig
from tinypred.data.traffic import A_HARD, ballistic_step, follow_leader

HINT_WINDOW = 2.0  # s: a hint shapes the last 2 s of a past; before, the agent held its speed
A_PLAN = 3.5  # the hardest planned braking (a neighbour's for a turn or a stop; a stop at a line), m/s^2
V_TOP = 20.0  # no desired speed exceeds it, m/s (the generator's top speed)
Y_LANE = -LANE_WIDTH / 2  # the target's lane centre
LANE_SPAN = (S_END - 20.0, S_END + 60.0)  # the stretch of the target's lane the map shows


def support(cfg: SceneConfig, low: float, high: float) -> tuple[float, float]:
    """The range a hidden trait is drawn from: [low, high] shrunk about its midpoint by style_spread."""
    mid = 0.5 * (low + high)
    return mid - cfg.style_spread * (mid - low), mid + cfg.style_spread * (high - mid)


def draw_traits(r: np.random.Generator | None, cfg: SceneConfig, shape, ranges: dict) -> dict:
    """Hidden traits {name: (shape)}: uniform on their `support` with r, or nominal (the mid) if r is None."""
    out = {}
    for name, (low, high) in ranges.items():
        lo, hi = support(cfg, low, high)
        out[name] = np.full(shape, 0.5 * (lo + hi)) if r is None else r.uniform(lo, hi, shape)
    return out


def traits_with_real(rng: np.random.Generator, cfg: SceneConfig, b: int, ranges: dict, m: int) -> dict:
    """Traits (B, m + 1): m nominal columns (the mixture slots), then one drawn (the future driven)."""
    nominal, drawn = draw_traits(None, cfg, (b, m), ranges), draw_traits(rng, cfg, (b, 1), ranges)
    return {k: np.concatenate([nominal[k], drawn[k]], 1) for k in ranges}


def posterior(prior: np.ndarray, log_lik: np.ndarray) -> np.ndarray:
    """p(intent | z) (B, M) from the prior and log p(z | intent); 0 where the prior is 0."""
    mask = prior > 0
    logp = np.where(mask, np.log(np.where(mask, prior, 1.0)) + log_lik, -np.inf)
    p = np.exp(logp - logp.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def hinted_past(v_end: np.ndarray, a: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arc length (relative to now) and speed (H, B) at times t (H,) <= 0 of an agent that held its
    speed, then accelerated at a (B,) over the last HINT_WINDOW s (any history length stays physical)."""
    tw = np.maximum(t, -HINT_WINDOW)[:, None]
    v = v_end + a * tw
    return v_end * tw + 0.5 * a * tw**2 + v * (t[:, None] - tw), v


def idm_history(x0, v_start, v0, leader_x, leader_v, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """An IDM driver's past (H, B) from (x0, v_start) at the first step, behind a leader's past (H, B)."""
    x, v = follow_leader(x0, v_start, v0, leader_x[:-1], leader_v[:-1], dt)
    return np.concatenate([x0[None], x]), np.concatenate([v_start[None], v])


def speed_rule(v, v_cruise, cap: tuple, steps: int, dt: float) -> np.ndarray:
    """Arc lengths (T, B, K) from 0 under the speed rule of `paths.rollout_speed` with one cap (from, to,
    v, decel) and the ballistic step: approach v_cruise at +-A_FREE, never above the braking curve
    before the cap, at most its v inside it."""
    c_from, c_to, c_v, c_decel = cap
    s, out = np.zeros(np.shape(v)), np.empty((steps, *np.shape(v)))
    for k in range(steps):
        v_allow = np.sqrt(c_v**2 + 2 * c_decel * np.maximum(c_from - s, 0.0))
        v_allow[s > c_to] = np.inf
        acc = np.minimum(np.clip((v_cruise - v) / dt, -A_FREE, A_FREE), (v_allow - v) / dt)
        s, v = ballistic_step(s, v, np.clip(acc, -A_HARD, A_FREE, out=acc), dt)
        out[k] = s
    return out


def map_lanes(cfg: SceneConfig, b: int, specs: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map context (B, L, P) from lane specs, most important first (those beyond cfg.max_lanes left
    out): start (x, y) (scalars or (B,)), heading, segment lengths and curvatures, the span along the
    lane (a pair, or (B, 2)), and its type. The shape (heading, segments) is shared by the batch: it is
    walked once (`paths.path_points`), then moved to each start."""
    L, P = cfg.max_lanes, cfg.lane_points
    lanes, mask, kind = np.zeros((b, L, P), complex), np.zeros((b, L), bool), np.zeros((b, L), np.int8)
    grid = np.linspace(0.0, 1.0, P)
    for i, ((x, y), heading, length, kappa, span, typ) in enumerate(specs[:L]):
        span = np.asarray(span, float)
        at = span[..., :1] + grid * (span[..., 1:] - span[..., :1])  # (P,) or (B, P)
        if not np.any(kappa):  # a straight line
            shape = at * np.exp(1j * heading)
        else:
            segments = np.array([length], float), np.array([kappa], float)
            shape = path_points(np.array([[0.0, 0.0, heading]]), *segments, np.atleast_2d(at))
        lanes[:, i] = np.asarray(x)[..., None] + 1j * np.asarray(y)[..., None] + shape
        mask[:, i], kind[:, i] = True, typ
    return lanes, mask, kind


def assemble(hist, heading, speed, future, lanes, columns, probs, intent, resample, nb) -> Drawn:
    """Assemble a Drawn: time-major (H or T, B, ...) arrays turned batch-first, the family's M nominal
    futures (T, B, M) padded to MAX_ALTERNATIVES slots, the other agents nb = (pasts, headings, speeds,
    futures), each a list of (H or T, B) arrays."""
    steps, b, m = columns.shape
    alt, p = np.zeros((b, MAX_ALTERNATIVES, steps), complex), np.zeros((b, MAX_ALTERNATIVES))
    alt[:, :m], p[:, :m] = columns.transpose(1, 2, 0), probs
    past, nb_heading, nb_speed, nb_future = (np.stack(part, -1).transpose(1, 2, 0) for part in nb)
    mask = p > 0  # a slot the rule forbids whatever the hidden traits is no alternative
    p, alt = np.where(mask, p, 0.0), alt * mask[..., None]
    return Drawn(
        hist.T,
        heading.T,
        speed.T,
        future.T,
        *lanes,
        alt,
        p,
        mask,
        intent,
        resample,
        nb_z=past,
        nb_heading=nb_heading,
        nb_speed=nb_speed,
        nb_future=nb_future,
        nb_mask=np.ones((b, past.shape[1]), bool),
    )


def history_times(cfg: SceneConfig) -> np.ndarray:
    """History times (H,), the last one 0."""
    return -np.arange(cfg.history_steps - 1, -1, -1) * cfg.dt
