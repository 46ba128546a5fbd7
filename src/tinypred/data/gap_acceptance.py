"""The gap-acceptance families: the target takes a gap in other traffic, or waits for the next one.

- ``yield``: crossing an unsignalised junction ahead of a car on the crossing road (the critical-gap
  rule of the HCM);
- ``merge``: leaving a lane that ends, ahead of the lag car in the next lane (MOBIL's safety criterion).

See `tinypred.data.interactive` for what the families share, `tinypred.data.traffic` for the models.
"""

from __future__ import annotations

import numpy as np

from tinypred.data.drawn import Drawn
from tinypred.data.families import A_LAT_DESIGN, LANE_WIDTH, S_END, _choose, _hint
from tinypred.data.interactive_kit import (
    A_PLAN,
    LANE_SPAN,
    V_TOP,
    Y_LANE,
    assemble,
    draw_traits,
    hinted_past,
    history_times,
    idm_history,
    map_lanes,
    posterior,
    speed_rule,
    support,
    traits_with_real,
)
from tinypred.data.paths import path_points
from tinypred.data.scene_config import CROSS_INTENTS, SceneConfig
from tinypred.data.traffic import (
    A_HARD,
    IDM_A,
    IDM_S0,
    LENGTH,
    ballistic_step,
    gap_accepted,
    idm_accel,
    idm_free,
    mobil_safe,
    p_gap_accepted,
    p_mobil_safe,
)

CRITICAL_GAP = (4.0, 6.5)  # s: a driver's critical gap (see traffic)
B_SAFE = (1.0, 3.0)  # m/s^2: a driver's MOBIL safety threshold (see traffic)
# yield: the cross car eases off before turning off
YIELD_MU = [0.0, -1.5]
R_CROSS = 6.0  # radius of its right turn, m
STOP_BACK = 5.75  # a waiting target's centre stops >= this far before the conflict point (its nose 3.25)
STOP_LINE = 3.0  # the stop line, this far before the conflict point, m
CLEAR_S = 4.5  # the cross car has cleared once its centre is this far past the conflict point, m
GO_TIME, GO_CLEAR = 3.3, 6.0  # going first, the target is GO_CLEAR m past the conflict in <= GO_TIME s
YIELD_STYLE = {"cruise": (0.95, 1.05), "turn": (0.8, 1.0), "short": (0.0, 1.0), "v0": (1.1, 1.5)}
# merge
B_YIELD = 2.5  # the hardest a target braking to let the lag pass brakes, m/s^2
# Lane changes take 3-5 s (a mean near 4.6 s is measured on freeways); a 0-0.6 s reaction first.
MERGE_STYLE = {"b_safe": B_SAFE, "delay": (0.0, 0.6), "duration": (3.0, 5.0)}


def build_yield(rng: np.random.Generator, cfg: SceneConfig, b: int) -> Drawn:
    """Go first across a junction, or stop at the line for a crossing car: the gap-acceptance rule."""
    t_hist, dt, steps = history_times(cfg), cfg.dt, cfg.future_steps
    # Everyone eases off before a junction, whatever they will do: the target's past hints at nothing.
    v_t, a_t = rng.uniform(5.0, 14.0, b), rng.uniform(-1.2, 0.0, b)
    # The conflict point (where the cross car's lane crosses the target's): far enough to stop before it
    # braking <= A_PLAN, near enough that going first clears it (GO_CLEAR past) in GO_TIME, under the
    # shortest critical gap: whoever goes first never meets the cross car.
    d_lo = v_t**2 / (2 * A_PLAN) + STOP_BACK + YIELD_STYLE["short"][1]
    x_conf = S_END + rng.uniform(d_lo, np.maximum(d_lo, GO_TIME * v_t - GO_CLEAR))
    # The cross car, from the left: its time to arrival at the conflict point at its current speed.
    v_c, tta = rng.uniform(5.0, 13.0, b), rng.uniform(1.5, 9.0, b)
    d_c = tta * v_c
    d_turn = d_c - LANE_WIDTH - R_CROSS  # where a right turn off (into the far lane) would begin
    v_cross = np.sqrt(A_LAT_DESIGN * R_CROSS)
    can_turn = (d_turn > 1.0) & (v_c**2 - (0.8 * v_cross) ** 2 <= 2 * A_PLAN * d_turn)
    prior = np.array([cfg.yield_priors[k] for k in CROSS_INTENTS]) * np.stack([np.ones(b), can_turn], -1)
    total = prior.sum(-1, keepdims=True)
    prior = np.where(total > 0, prior / np.where(total > 0, total, 1.0), [1.0, 0.0])
    cross = _choose(rng, prior)
    z, log_lik = _hint(rng, cfg, YIELD_MU, prior, cross)
    post = posterior(prior, log_lik)
    lo, hi = support(cfg, *CRITICAL_GAP)
    p_go = post[:, 1] + post[:, 0] * p_gap_accepted(tta, lo, hi)
    s_t, v_t_past = hinted_past(v_t, a_t, t_hist)
    s_c, v_c_past = hinted_past(v_c, np.clip(z, -3.5, 2.0), t_hist)
    arc = R_CROSS * np.pi / 2
    turn_at = np.maximum(d_turn, 0.0)[:, None]

    def future(go: np.ndarray, turns: np.ndarray, style: dict) -> tuple[np.ndarray, np.ndarray]:
        """Target x and the cross car's arc length (T, B, K) for decisions, its intents, styles (B, K)."""
        v = v_c[:, None] + np.zeros(go.shape)
        v_turn = style["turn"] * v_cross
        decel = np.clip((v**2 - v_turn**2) / (2 * np.maximum(turn_at, 0.1)), 0.5, A_PLAN)
        cap = (
            np.where(turns, turn_at, np.inf),
            np.where(turns, turn_at + arc, np.inf),
            np.where(turns, v_turn, np.inf),
            np.where(turns, decel, 1.0),
        )
        s = speed_rule(v, np.where(turns, v, v * style["cruise"]), cap, steps, dt)
        cleared = s >= d_c[:, None] + CLEAR_S  # straight on: a turning car never gets there
        s_stop = x_conf[:, None] - STOP_BACK - style["short"]
        v0 = np.minimum(v_t[:, None] * style["v0"], V_TOP)
        x, v, go = S_END + np.zeros(go.shape), v_t[:, None] + np.zeros(go.shape), go.copy()
        xs = np.empty(s.shape)
        for k in range(steps):
            if k:
                go |= cleared[k - 1]
            # Waiting: the constant braking that stops it exactly at s_stop (the first step brakes at
            # v^2 / 2d <= A_PLAN, and the ballistic step keeps it constant), until the car has cleared.
            acc = idm_free(v, v0)
            np.minimum(acc, -(v * v) / (2 * np.maximum(s_stop - x, 1e-3)), out=acc, where=~go)
            x, v = ballistic_step(x, v, np.clip(acc, -A_HARD, IDM_A, out=acc), dt)
            xs[k] = x
        return xs, s

    def decide(turns: np.ndarray, style: dict) -> np.ndarray:
        return turns | gap_accepted(tta[:, None], style["t_crit"])

    style = traits_with_real(rng, cfg, b, YIELD_STYLE | {"t_crit": CRITICAL_GAP}, 2)
    turns = np.stack([np.zeros(b, bool), np.zeros(b, bool), cross == 1], 1)  # the wait slot: straight on
    go = decide(turns, style)
    go[:, :2] = [True, False]
    x, s = future(go, turns, style)
    intent = np.where(go[:, 2], 0, 1)

    def resample(r: np.random.Generator) -> np.ndarray:
        turns = (_choose(r, post) == 1)[:, None]
        style = draw_traits(r, cfg, (b, 1), YIELD_STYLE | {"t_crit": CRITICAL_GAP})
        return future(decide(turns, style), turns, style)[0][..., 0].T + 1j * Y_LANE

    # The cross car's path: down its lane (heading -y) through the conflict point, or a right turn into
    # the far lane of the target's road.
    cross_z = (x_conf + 1j * (Y_LANE + d_c - s[..., 2])).T  # straight down its lane ...
    turned = np.flatnonzero(cross == 1)  # ... or turning off (walk the path only there)
    start = np.stack([x_conf, Y_LANE + d_c, np.full(b, -np.pi / 2)], -1)[turned]
    length = np.stack([turn_at[turned, 0], np.full(len(turned), arc), np.zeros(len(turned))], -1)
    kappa = np.broadcast_to([0.0, -1 / R_CROSS, 0.0], length.shape)
    cross_z[turned] = path_points(start, length, kappa, s[:, turned, 2].T)
    cross_z = cross_z.T
    down = -np.pi / 2  # the crossing road's near lane runs down (-y) through the conflict point
    lanes = map_lanes(
        cfg,
        b,
        [
            ((0.0, Y_LANE), 0.0, [0.0], [0.0], LANE_SPAN, 0),
            ((x_conf, Y_LANE + d_c + 20.0), down, [0.0], [0.0], np.stack([np.zeros(b), d_c + 50.0], -1), 0),
            ((x_conf - STOP_LINE, Y_LANE - LANE_WIDTH / 2), np.pi / 2, [0.0], [0.0], (0.0, LANE_WIDTH), 1),
            ((x_conf, -Y_LANE + R_CROSS), down, [arc, 0.0], [-1 / R_CROSS, 0.0], (0.0, arc + 20.0), 0),
        ],
    )
    y, zero = 1j * Y_LANE, np.zeros(s_t.shape)
    past = x_conf + 1j * (Y_LANE + d_c - s_c)
    nb = ([past], [zero - np.pi / 2], [v_c_past], [cross_z])
    return assemble(
        S_END + s_t + y,
        zero,
        v_t_past,
        x[..., 2] + y,
        lanes,
        x[..., :2] + y,
        np.stack([p_go, post[:, 0] * (1 - p_gap_accepted(tta, lo, hi))], -1),
        intent,
        resample,
        nb,
    )


def build_merge(rng: np.random.Generator, cfg: SceneConfig, b: int) -> Drawn:
    """Merge from an ending lane ahead of the lag car if MOBIL deems it safe, else behind it."""
    t_hist, dt, steps = history_times(cfg), cfg.dt, cfg.future_steps
    y_main = Y_LANE + LANE_WIDTH  # the next lane, to the target's left
    # The next lane: a lead cruising at its desired speed, a lag following it by IDM from a random gap.
    v_lead = rng.uniform(10.0, 17.0, b)
    v0_lag = rng.uniform(v_lead + 1.0, V_TOP)
    x_lead = v_lead * t_hist[:, None]  # (H, B), 0 now
    v_lead_past = v_lead + np.zeros(x_lead.shape)
    x0 = x_lead[0] - LENGTH - rng.uniform(40.0, 140.0, b)
    v_start = np.minimum(v_lead + rng.uniform(-1.0, 3.0, b), v0_lag)
    x_lag, v_lag = idm_history(x0, v_start, v0_lag, x_lead, v_lead_past, dt)
    # The target speeds up along the ramp (free-road IDM), and is now somewhere between lag and lead.
    v0_t = rng.uniform(12.0, 18.0, b)
    free = np.full(x_lead.shape, np.inf)
    x_t, v_t = idm_history(np.zeros(b), v0_t * rng.uniform(0.6, 0.95, b), v0_t, free, free, dt)
    shift = S_END - x_lag[-1] * (1.0 - rng.uniform(0.0, 1.0, b))
    x_lead, x_lag, x_t = x_lead + shift, x_lag + shift, x_t + S_END - x_t[-1]
    # MOBIL: the braking the merge would impose on the lag now, and the target's own behind the lead.
    lead_now, lag_now, vl_now, vt_now = x_lead[-1], x_lag[-1], v_lag[-1], v_t[-1]
    acc_lag = idm_accel(vl_now, v0_lag, S_END - lag_now - LENGTH, vl_now - vt_now)
    acc_self = idm_accel(vt_now, v0_t, lead_now - S_END - LENGTH, vt_now - v_lead)
    p_ahead = p_mobil_safe(acc_lag, acc_self, *support(cfg, *B_SAFE))
    x_end = S_END + V_TOP * steps * dt * rng.uniform(1.0, 1.5, b) + 10.0  # never reached in the horizon

    def future(ahead: np.ndarray, style: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Target x, y and the lag's x (T, B, K) for decisions and styles (B, K)."""
        shape = ahead.shape
        x, v, xl, vl = (
            S_END + np.zeros(shape),
            vt_now[:, None] + np.zeros(shape),
            lag_now[:, None],
            vl_now[:, None],
        )
        v0, v0l, vlead = v0_t[:, None], v0_lag[:, None], v_lead[:, None]
        moving, t_start = np.zeros(shape, bool), np.full(shape, np.inf)
        xs, xls = np.empty((steps, *shape)), np.empty((steps, *shape))
        for k in range(steps):
            lead_x = lead_now[:, None] + vlead * (k * dt)
            gap_lag = xl - x - LENGTH
            behind = idm_accel(v, v0, gap_lag, v - vl)  # the target behind the lag: -inf before it passes
            # Ahead: go after a reaction time. Behind: once the lag is ahead and following it is safe.
            safe = (gap_lag >= IDM_S0) & (behind >= -style["b_safe"])
            start = ~moving & (k * dt >= style["delay"]) & (ahead | safe)
            t_start[start], moving = k * dt, moving | start
            # Letting the lag pass: settle at 80% of its speed; once it has passed, follow it (IDM).
            let_pass = np.clip(0.8 * vl - v, -B_YIELD, IDM_A)
            behind = np.where(gap_lag > 0, np.maximum(behind, np.where(moving, -A_HARD, -B_YIELD)), let_pass)
            acc = np.where(ahead, idm_accel(v, v0, lead_x - x - LENGTH, v - vlead), behind)
            # The lag follows whoever is nearest ahead in its lane: the target, once it has decided to
            # merge ahead of it (the lag sees it coming: its indicator, its speed matching).
            cut_in = ahead & (x > xl)
            acc_l = idm_accel(
                vl, v0l, np.where(cut_in, x, lead_x) - xl - LENGTH, vl - np.where(cut_in, v, vlead)
            )
            x, v = ballistic_step(x, v, np.clip(acc, -A_HARD, IDM_A), dt)
            xl, vl = ballistic_step(xl, vl, np.clip(acc_l, -A_HARD, IDM_A), dt)
            xs[k], xls[k] = x, xl
        u = np.clip((np.arange(1, steps + 1)[:, None, None] * dt - t_start) / style["duration"], 0.0, 1.0)
        return xs, Y_LANE + LANE_WIDTH * u**3 * (10 - 15 * u + 6 * u**2), xls  # a smooth (quintic) move

    def decide(style: dict) -> np.ndarray:
        return mobil_safe(acc_lag[:, None], acc_self[:, None], style["b_safe"])

    style = traits_with_real(rng, cfg, b, MERGE_STYLE, 2)
    ahead = decide(style)
    ahead[:, :2] = [True, False]
    x, y, xl = future(ahead, style)
    intent = np.where(ahead[:, 2], 0, 1)

    def resample(r: np.random.Generator) -> np.ndarray:
        style = draw_traits(r, cfg, (b, 1), MERGE_STYLE)
        x, y, _ = future(decide(style), style)
        return (x + 1j * y)[..., 0].T

    main_span = (S_END - 60.0, S_END + 80.0)
    lanes = map_lanes(
        cfg,
        b,
        [
            ((0.0, Y_LANE), 0.0, [0.0], [0.0], np.stack([np.full(b, LANE_SPAN[0]), x_end], -1), 0),
            ((0.0, y_main), 0.0, [0.0], [0.0], main_span, 0),
            ((0.0, y_main + LANE_WIDTH), 0.0, [0.0], [0.0], main_span, 0),
        ],
    )
    zero, t_fut = np.zeros(x_t.shape), np.arange(1, steps + 1)[:, None] * dt
    nb = (
        [x_lead + 1j * y_main, x_lag + 1j * y_main],
        [zero, zero],
        [v_lead_past, v_lag],
        [lead_now + v_lead * t_fut + 1j * y_main, xl[..., 2] + 1j * y_main],
    )
    futures = x + 1j * y
    probs = np.stack([p_ahead, 1 - p_ahead], -1)
    return assemble(
        x_t + 1j * Y_LANE, zero, v_t, futures[..., 2], lanes, futures[..., :2], probs, intent, resample, nb
    )
