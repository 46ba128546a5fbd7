"""The interactive scene families: other agents decide the target's future. Each builder draws a batch in
the canonical frame (the target at x = S_END heading +x at its last observed step, right-hand traffic,
lanes LANE_WIDTH wide) and returns a `Drawn` (read its docstring: the contract).

- ``follow`` (here): a lead ahead in the target's lane cruises on, brakes to a stop (stop-and-go) or
  turns off into a side road; the target, and a car behind it, follow by IDM. The lead's intent decides.
- ``yield`` (`gap_acceptance`): the target crosses an unsignalised junction; a car on the crossing road,
  from the left, goes straight through the conflict point or turns off before it. The target goes first
  iff that car turns off or its time to arrival exceeds the target's critical gap; else it stops at the
  line and goes once the car has cleared.
- ``merge`` (`gap_acceptance`): the target's lane (an on-ramp) ends; a lead and a lag car drive in the
  next lane. The target merges ahead of the lag iff MOBIL's safety criterion holds for its threshold
  b_safe; else it lets the lag pass and merges behind it.

`tinypred.data.traffic` holds the models (IDM, gap acceptance, MOBIL), their parameters and citations;
`tinypred.data.interactive_kit` what the builders share.

Hints and probabilities follow `families`: a neighbour's intent shows in its own past through a latent
z = hint_strength * mu[intent] + N(0, HINT_SIGMA^2) (its acceleration over the last HINT_WINDOW s); the
probabilities are the posterior given that noise-free z, marginalised over the hidden traits (critical
gap, b_safe). A slot the rule forbids whatever the hidden traits (probability 0) is masked. What a past
shows (speeds, gaps, the desired speeds that shaped it) `resample` keeps; what acts only from now on
(those traits, a neighbour's braking or cruise style, when and how fast a merge goes) it draws from its
prior, with the same code that drew `future`. Agents keep their distance (no two bodies overlap in any
drawn future), speeds stay >= 0 and accelerations within [-5, 1] m/s^2 (a neighbour's hinted past
within [-3.5, 2]).
"""

from __future__ import annotations

import numpy as np

from tinypred.data.drawn import Drawn
from tinypred.data.families import A_LAT_DESIGN, S_END, _choose, _hint
from tinypred.data.gap_acceptance import build_merge, build_yield
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
    traits_with_real,
)
from tinypred.data.scene_config import MAX_ALTERNATIVES, SceneConfig
from tinypred.data.traffic import LENGTH, WIDTH, follow_leader, idm_equilibrium_gap

FOLLOW_MU = [0.0, -1.5, -0.75]  # the lead eases off before a stop, a little before a turn
R_SIDE = 10.0  # radius of the turn into the side road, m
LEAD_STYLE = {"cruise": (0.95, 1.05), "brake": (1.5, 3.0), "delay": (0.0, 1.0), "turn": (0.8, 1.0)}


def _turn_off(s: np.ndarray, x_side: np.ndarray, turn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where a follower in the target's lane sees a lead at arc length s (T, B, K) (= x before the side
    road; a right quarter turn of radius R_SIDE into it at x_side (B, 1) where turn (B, K)): the
    centre-equivalent x of its rearmost corner while any of it is still in the lane (0.3 m to spare),
    inf once it has left. Returns that and the turn angle (0 before the turn). Only the columns where
    some lead turns, and trig only where the turn has begun: this is the family's hot spot."""
    seen, theta = s.copy(), np.zeros(s.shape)
    cols = np.flatnonzero(turn.any(0))
    into = s[..., cols] - x_side
    idx = np.flatnonzero((into > 0) & turn[:, cols])
    into = into.ravel()[idx]
    th = np.minimum(into / R_SIDE, np.pi / 2)
    c, n = np.cos(th), np.sin(th)
    y = -R_SIDE * (1 - c) - np.maximum(into - R_SIDE * np.pi / 2, 0)  # off the lane centre
    gone = y + LENGTH / 2 * n + WIDTH / 2 * c < -WIDTH / 2 - 0.3
    sub_seen = np.ascontiguousarray(s[..., cols])  # ravel() must be a view: it is written through
    sub_theta = np.zeros(sub_seen.shape)
    sub_seen.ravel()[idx] = np.where(
        gone, np.inf, sub_seen.ravel()[idx] - into + (R_SIDE - WIDTH / 2) * n + LENGTH / 2 * (1 - c)
    )
    sub_theta.ravel()[idx] = th
    seen[..., cols], theta[..., cols] = sub_seen, sub_theta
    return seen, theta


def _turn_z(s: np.ndarray, x_side: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The lead's centre (complex) from its arc length, the side road's x and its turn angle."""
    z = s + 1j * Y_LANE
    idx = np.flatnonzero(theta > 0)
    th, into = theta.ravel()[idx], (s - x_side).ravel()[idx]
    after = np.maximum(into - R_SIDE * np.pi / 2, 0)
    z.ravel()[idx] = (s.ravel()[idx] - into + R_SIDE * np.sin(th)) + 1j * (
        Y_LANE - R_SIDE * (1 - np.cos(th)) - after
    )
    return z


def build_follow(rng: np.random.Generator, cfg: SceneConfig, b: int) -> Drawn:
    """Stop-and-go: a lead cruises on, brakes to a stop or turns off; the target follows it by IDM."""
    t_hist, dt, steps = history_times(cfg), cfg.dt, cfg.future_steps
    prior = np.broadcast_to(cfg.priors("follow"), (b, MAX_ALTERNATIVES))
    intent = _choose(rng, prior)
    z, log_lik = _hint(rng, cfg, FOLLOW_MU, prior, intent)
    probs = posterior(prior, log_lik)
    # The lead held its speed, then eased off (or sped up) as z says; the clip (about 4 sigma) keeps the
    # past physical, the posterior uses z itself. Its path starts at x = 0: arc length is x.
    v_lead = rng.uniform(5.0, 11.0, b)
    s_lead, v_lead_past = hinted_past(v_lead, np.clip(z, -3.5, 2.0), t_hist)
    # The target and the car behind it start the history at the IDM equilibrium behind their leader, at
    # its speed, with desired speeds above anything the lead drove (so that they do follow it).
    v0 = rng.uniform(np.maximum(14.0, 1.1 * v_lead_past.max(0)), V_TOP, (2, b))
    gap = idm_equilibrium_gap(v_lead_past[0], v0)
    x_t, v_t = idm_history(s_lead[0] - LENGTH - gap[0], v_lead_past[0], v0[0], s_lead, v_lead_past, dt)
    x_r, v_r = idm_history(x_t[0] - LENGTH - gap[1], v_lead_past[0], v0[1], x_t, v_t, dt)
    shift = S_END - x_t[-1]
    x_t, x_r, s_lead = x_t + shift, x_r + shift, s_lead + shift
    s_now = s_lead[-1, :, None]
    # The side road: near enough to turn into within the horizon, far enough to brake for it.
    v_side = np.sqrt(A_LAT_DESIGN * R_SIDE)
    d_lo = np.maximum(3.0, (v_lead**2 - (0.8 * v_side) ** 2) / (2 * A_PLAN) + 1.0)
    x_side = s_now + rng.uniform(d_lo, np.maximum(d_lo, 1.5 * v_lead))[:, None]

    def future(lead: np.ndarray, style: dict) -> tuple[np.ndarray, ...]:
        """Target x and speed, lead arc length and turn angle (T, B, K) for lead intents, styles (B, K)."""
        v, stop, turn = v_lead[:, None] + np.zeros(lead.shape), lead == 1, lead == 2
        v_turn, side = style["turn"] * v_side, x_side - s_now
        cap = (  # the speed rule's cap, from now: from, to, the speed within, the braking before it
            np.select([stop, turn], [v * style["delay"] + v**2 / (2 * style["brake"]), side], np.inf),
            np.where(turn, side + R_SIDE * np.pi / 2, np.inf),
            np.select([stop, turn], [0.0, v_turn], np.inf),
            np.select(
                [stop, turn], [style["brake"], np.clip((v**2 - v_turn**2) / (2 * side), 0.5, A_PLAN)], 1.0
            ),
        )
        ahead = speed_rule(v, np.where(lead == 0, v * style["cruise"], v), cap, steps, dt)
        s = s_now + np.concatenate([np.zeros((1, *lead.shape)), ahead])  # now, then each step
        seen, theta = _turn_off(s, x_side, turn)
        with np.errstate(invalid="ignore"):  # inf once the lead has left: use its speed along the path
            seen_v = np.diff(seen, axis=0) / dt
        bad = ~np.isfinite(seen_v)
        seen_v[bad] = (np.diff(s, axis=0) / dt)[bad]
        x, v_out = follow_leader(x_t[-1, :, None], v_t[-1, :, None], v0[0, :, None], seen[:-1], seen_v, dt)
        return x, v_out, s[1:], theta[1:]

    slots = np.broadcast_to(np.arange(3), (b, 3))
    x, v, s, theta = future(
        np.concatenate([slots, intent[:, None]], 1), traits_with_real(rng, cfg, b, LEAD_STYLE, 3)
    )
    real, s, theta = x[..., 3], s[..., 3], theta[..., 3]
    xs = x_side[:, 0]
    lead = _turn_z(s, xs, theta)
    # The car behind follows what the target actually drove.
    x_back, _ = follow_leader(
        x_r[-1],
        v_r[-1],
        v0[1],
        np.concatenate([x_t[-1:], real[:-1]]),
        np.concatenate([v_t[-1:], v[:-1, :, 3]]),
        dt,
    )

    def resample(r: np.random.Generator) -> np.ndarray:
        lead = _choose(r, probs)[:, None]
        return future(lead, draw_traits(r, cfg, (b, 1), LEAD_STYLE))[0][..., 0].T + 1j * Y_LANE

    arc = R_SIDE * np.pi / 2
    lanes = map_lanes(
        cfg,
        b,
        [
            ((0.0, Y_LANE), 0.0, [0.0], [0.0], LANE_SPAN, 0),
            ((xs, Y_LANE), 0.0, [arc, 0.0], [-1 / R_SIDE, 0.0], (0.0, arc + 20.0), 0),
            ((LANE_SPAN[1], -Y_LANE), np.pi, [0.0], [0.0], (0.0, LANE_SPAN[1] - LANE_SPAN[0]), 0),
        ],
    )
    y, zero = 1j * Y_LANE, np.zeros(x_t.shape)
    nb = ([s_lead + y, x_r + y], [zero, zero], [v_lead_past, v_r], [lead, x_back + y])
    return assemble(x_t + y, zero, v_t, real + y, lanes, x[..., :3] + y, probs, intent, resample, nb)


BUILDERS = {"follow": build_follow, "yield": build_yield, "merge": build_merge}
