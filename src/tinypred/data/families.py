"""The scene families: each builder draws a batch of one family's scenes in the canonical frame.

The canonical frame: the agent's path starts at x = 0 heading +x, and the last observed step is at arc
length S_END. A builder draws a `Family`: the start pose, the speed and acceleration of the history,
the nominal `SpeedPlan` of every intent, the plan actually driven, the priors and the hint's
likelihood; `BUILDERS` simulate it into a `Drawn` batch (past, future, mixture, map, and how to draw
the future again).

How the past hints at the intent. A latent z = hint_strength * mu[intent] + eps, eps ~ N(0, 0.5^2),
shapes the history: extra deceleration before a turn or a stop, a drift toward the target lane before a
lane change. The mixture's probabilities are the posterior p(intent | z) given that noise-free latent;
with ``hint_strength = 0`` they are the priors. Every intent the map allows stays in the mixture.

Why the mixture is not the floor. The alternatives use each intent's *nominal* driver style; the future
actually driven draws its style (cruise speed, turn speed, where it stops, when and how fast it changes
lane) around it, scaled by ``style_spread``. That spread is what no predictor can know from the past;
the ``bayes`` floor samples it (`Drawn.resample`), the ``intent_mixture`` baseline ignores it.
Caps and curvatures are chosen so that |lateral accel| <= 3.6 m/s^2 and planned braking <= 4 m/s^2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from tinypred.data.drawn import Drawn
from tinypred.data.paths import SpeedPlan, path_points, path_pose, rollout_speed, s_curve
from tinypred.data.scene_config import MAX_ALTERNATIVES, SceneConfig

LANE_WIDTH = 3.5
JUNCTION_HALF = 10.0  # half the side of the junction box, m
A_LAT_DESIGN = 3.6  # lateral acceleration the turn and curve speeds are designed for, m/s^2
A_PLAN_MAX = 4.0  # the hardest planned braking, m/s^2 (the hard limit is 5)
V_MIN, V_MAX = 3.0, 20.0  # cruise speeds; only a stop goes below V_MIN
HINT_SIGMA = 0.5  # std of the hint latent's noise (in units of mu)
S_END = 60.0  # arc length of the last observed position along the agent's path
LANE_BEHIND, LANE_AHEAD = 20.0, 60.0  # the stretch of each lane that the map context shows, m
NO_CAP = (np.inf, np.inf, np.inf, 1.0)


@dataclass
class Family:
    start: np.ndarray  # (B, 3) start pose of the agent's path (shared by every alternative)
    v_end: np.ndarray  # (B,) speed at the last observed step
    a_hist: np.ndarray  # (B,) constant acceleration over the history
    alts: SpeedPlan  # (B, M) the nominal plan of each intent
    real: SpeedPlan  # (B,) the plan actually driven: the chosen intent with its drawn style
    prior: np.ndarray  # (B, M), 0 where the intent does not exist
    log_lik: np.ndarray  # (B, M) log p(z | intent) up to a constant shared by a scene's intents
    intent: np.ndarray  # (B,) chosen slot
    lanes: list[dict]  # up to L lanes: start (B,3), length/kappa (B,J), span (B,2), type, mask (B,)
    # (rng, intent (B,)) -> the plan of those intents with freshly drawn styles, as `real` was drawn:
    # what the bayes floor resamples (the styles the past does not show)
    redraw: Callable[[np.random.Generator, np.ndarray], SpeedPlan]


def _segments(*parts) -> np.ndarray:
    """Stack per-segment values (broadcast together) on a last axis, then one zero-length straight
    segment, so that a path continues straight on after its last real segment."""
    arr = np.stack(np.broadcast_arrays(*parts), -1).astype(float)
    return np.concatenate([arr, np.zeros((*arr.shape[:-1], 1))], -1)


def _plan(length, kappa, v_cruise, caps) -> SpeedPlan:
    """SpeedPlan from segments and caps (B..., C, 4) of (from, to, v, decel)."""
    caps = np.broadcast_to(caps, (*np.shape(v_cruise), *np.shape(caps)[-2:]))
    return SpeedPlan(length, kappa, v_cruise, caps[..., 0], caps[..., 1], caps[..., 2], caps[..., 3])


def _take(plan: SpeedPlan, idx: np.ndarray) -> SpeedPlan:
    """The plan of alternative idx (B,) of each scene, from a (B, M) plan."""
    rows = np.arange(len(idx))
    return SpeedPlan(
        *(
            np.broadcast_to(getattr(plan, f.name), (len(idx), *getattr(plan, f.name).shape[1:]))[rows, idx]
            for f in fields(SpeedPlan)
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

    def redraw(rng, idx):
        return _take(plan(_style(rng, cfg, b, 0.8, 1.0), _style(rng, cfg, b, 0.9, 1.1)), idx)

    real = redraw(rng, intent)
    lanes = [_lane(start, length[:, j], kappa[:, j], LANE_SPAN) for j in range(3)]
    return Family(start, v_end, a_hist, nominal, real, prior, log_lik, intent, lanes, redraw)


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

    def redraw(rng, idx):
        styles = (
            _style(rng, cfg, b, 0.0, 0.5),
            _style(rng, cfg, b, 2.5, 4.0),
            _style(rng, cfg, b, 0.95, 1.05),
        )
        return _take(plan(*styles), idx)

    real = redraw(rng, intent)
    lanes = [_lane(_start(b, j * LANE_WIDTH), 0.0, 0.0, LANE_SPAN, mask=j < n_lanes) for j in range(3)]
    return Family(start, v_end, a_hist, nominal, real, prior, log_lik, intent, lanes, redraw)


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

    def redraw(rng, idx):
        return _take(plan(_style(rng, cfg, b, 0.0, 1.5), _style(rng, cfg, b, 0.9, 1.1)), idx)

    real = redraw(rng, intent)
    line_start = np.stack([s_line, np.full(b, -LANE_WIDTH), np.full(b, np.pi / 2)], -1)  # across the lane
    lanes = [_lane(start, 0.0, 0.0, LANE_SPAN), _lane(line_start, 0.0, 0.0, (0.0, LANE_WIDTH), kind=1)]
    return Family(start, v_end, a_hist, nominal, real, prior, log_lik, intent, lanes, redraw)


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

    def redraw(rng, idx):
        return plan(_style(rng, cfg, b, -1.0, 1.0))

    real = redraw(rng, intent)
    nominal = SpeedPlan(
        *(
            np.repeat(getattr(plan(np.zeros(b)), f.name)[:, None], MAX_ALTERNATIVES, 1)
            for f in fields(SpeedPlan)
        )
    )
    start = _start(b, -LANE_WIDTH / 2)
    lanes = [_lane(start, length, kappa, LANE_SPAN)]
    return Family(start, v_end, a_hist, nominal, real, prior, log_lik, intent, lanes, redraw)


def _drawn(fam: Family, cfg: SceneConfig) -> Drawn:
    """Simulate a family's batch: the past, the future driven, every intent's nominal future and the map,
    in the canonical frame, and how to draw the future again for the bayes floor."""
    b = len(fam.v_end)
    T, L, P, M = cfg.future_steps, cfg.max_lanes, cfg.lane_points, MAX_ALTERNATIVES
    t = -np.arange(cfg.history_steps - 1, -1, -1) * cfg.dt  # history times, the last one 0
    s_hist = S_END + fam.v_end[:, None] * t + 0.5 * fam.a_hist[:, None] * t**2
    hist_z, hist_heading = path_pose(fam.start, fam.alts.length[:, 0], fam.alts.kappa[:, 0], s_hist)

    m = int(np.max(np.flatnonzero(fam.prior.any(0)))) + 1  # slots past the family's intents stay empty
    alts = SpeedPlan(*(getattr(fam.alts, f.name)[:, :m] for f in fields(SpeedPlan)))
    s_alt = rollout_speed(alts, np.full((b, m), S_END), np.repeat(fam.v_end[:, None], m, 1), T, cfg.dt)
    alt_z = np.zeros((b, M, T), complex)
    alt_z[:, :m] = path_points(fam.start[:, None], alts.length, alts.kappa, s_alt)

    def drive(plan: SpeedPlan) -> np.ndarray:
        s = rollout_speed(plan, np.full(b, S_END), fam.v_end, T, cfg.dt)
        return path_points(fam.start, plan.length, plan.kappa, s)

    lanes = np.zeros((b, L, P), complex)
    lane_mask = np.zeros((b, L), bool)
    lane_type = np.zeros((b, L), np.int8)
    grid = np.linspace(0.0, 1.0, P)
    for i, ln in enumerate(fam.lanes):
        s = ln["span"][:, :1] + grid * (ln["span"][:, 1:] - ln["span"][:, :1])
        lanes[:, i] = path_points(ln["start"], ln["length"], ln["kappa"], s) * ln["mask"][:, None]
        lane_mask[:, i] = ln["mask"]
        lane_type[:, i] = ln["type"]

    # Posterior over intents given the (noise-free) hint; the prior where the hint is off.
    mask = fam.prior > 0
    logp = np.where(mask, np.log(np.where(mask, fam.prior, 1.0)) + fam.log_lik, -np.inf)
    probs = np.exp(logp - logp.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)  # exactly 0 where masked: exp(-inf)
    return Drawn(
        hist_z=hist_z,
        hist_heading=hist_heading,
        hist_speed=fam.v_end[:, None] + fam.a_hist[:, None] * t,
        future=drive(fam.real),
        lanes=lanes,
        lane_mask=lane_mask,
        lane_type=lane_type,
        alt_futures=alt_z * mask[..., None],
        alt_probs=probs,
        alt_mask=mask,
        intent=fam.intent,
        # The intent from its posterior, the styles from their prior: what the past leaves open.
        resample=lambda rng: drive(fam.redraw(rng, _choose(rng, probs))),
    )


def _single_agent(builder: Callable[[np.random.Generator, SceneConfig, int], Family]):
    return lambda rng, cfg, b: _drawn(builder(rng, cfg, b), cfg)


BUILDERS = {
    "intersection": _single_agent(_intersection),
    "lane_change": _single_agent(_lane_change),
    "stop_or_go": _single_agent(_stop_or_go),
    "curve": _single_agent(lambda rng, cfg, b: _follow(rng, cfg, b, curved=True)),
    "cruise": _single_agent(lambda rng, cfg, b: _follow(rng, cfg, b, curved=False)),
}
