"""Pure traffic-model rules for the interactive scene families: car following, gap acceptance, merging.

Everything is elementwise NumPy over arrays of any (broadcastable) shape, so a builder can evaluate a
whole batch of scenes, and every mixture slot of each, in one call.

- **IDM**, the Intelligent Driver Model (Treiber, Hennecke & Helbing 2000, Phys. Rev. E 62, 1805):
  ``a_idm = a [1 - (v/v0)^4 - (s*/s)^2]``, ``s* = s0 + max(0, v T + v dv / (2 sqrt(a b)))``, with s the
  bumper-to-bumper gap and dv the approach rate. Parameters: a = 1.0 m/s^2, b = 1.5 m/s^2, s0 = 2 m are
  Treiber & Kesting's (Traffic Flow Dynamics, 2013, Table 11.2); T = 1.5 s is highway-env's IDMVehicle
  TIME_WANTED (Treiber's own range is 1.0-1.6 s). highway-env's other defaults (COMFORT_ACC_MAX 3,
  COMFORT_ACC_MIN -5, DISTANCE_WANTED 5 m, ACC_MAX 6) are a sportier driver; we keep the generator's
  gentle acceleration (<= 1 m/s^2) and its hard braking limit (5 m/s^2).
- **Ballistic update** (Treiber & Kanagaraj 2015, Physica A 419, 183): constant acceleration over a step,
  with a stop inside the step handled exactly, so speeds never go negative and a stop never overshoots.
- **Gap acceptance** (Highway Capacity Manual, unsignalised intersections): a driver accepts a lag if it
  is longer than their critical gap t_c. The HCM's base critical headway for a minor-street through
  movement is 6.5 s; measured critical gaps spread over about 4-7 s (Brilon, Koenig & Troutbeck 1999,
  Transp. Res. A 33, 161). The builders draw t_c per driver, uniform in [4.0, 6.5] s.
- **MOBIL's safety criterion** (Kesting, Treiber & Helbing 2007, Transp. Res. Rec. 1999, 86): a lane change
  is allowed only if the new follower's IDM acceleration after it stays >= -b_safe; for a mandatory
  change (a lane that ends) the incentive criterion is void. highway-env's
  LANE_CHANGE_MAX_BRAKING_IMPOSED is 2 m/s^2 and Kesting et al. use 4 m/s^2; the builders draw b_safe per
  driver, uniform in [1, 3] m/s^2, and apply it to the merging driver's own braking too (as highway-env
  does for a lane change its route requires).
"""

from __future__ import annotations

import numpy as np

LENGTH, WIDTH = 5.0, 2.0  # vehicle body, m (highway-env's Vehicle.LENGTH; a car's width)
IDM_A = 1.0  # maximum acceleration a, m/s^2
IDM_B = 1.5  # comfortable deceleration b, m/s^2
IDM_S0 = 2.0  # minimum (jam) gap s0, m
IDM_T = 1.5  # desired time gap T, s
A_HARD = 5.0  # the hardest braking any agent uses, m/s^2 (the generator's limit, paths.A_BRAKE_MAX)


def idm_accel(
    v: np.ndarray,
    v0: np.ndarray,
    gap: np.ndarray,
    dv: np.ndarray,
    a: float = IDM_A,
    b: float = IDM_B,
    s0: float = IDM_S0,
    t_gap: float = IDM_T,
) -> np.ndarray:
    """IDM acceleration at speed v, desired speed v0, net gap to the leader (inf: free road) and
    approach rate dv = v - v_leader. A gap <= 0 (bodies overlap: no gap at all) gives -inf."""
    v = np.asarray(v, dtype=float)
    s_star = s0 + np.maximum(0.0, v * t_gap + v * dv / (2.0 * np.sqrt(a * b)))
    ratio = v / v0
    free = 1.0 - (ratio * ratio) ** 2  # delta = 4, written as two squares (faster than **4)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        pressure = s_star / gap
        acc = a * (free - pressure * pressure)
    if np.any(gap <= 0):  # rare: only rules meet it, so the simulation loops skip the where
        acc = np.where(gap > 0, acc, -np.inf)
    return acc


def idm_free(v: np.ndarray, v0: np.ndarray, a: float = IDM_A) -> np.ndarray:
    """IDM acceleration on a free road: a [1 - (v/v0)^4]."""
    ratio = v / v0
    return a * (1.0 - (ratio * ratio) ** 2)


def idm_equilibrium_gap(
    v: np.ndarray, v0: np.ndarray, s0: float = IDM_S0, t_gap: float = IDM_T
) -> np.ndarray:
    """The net gap at which an IDM driver at constant speed v < v0 behind a leader as fast keeps it:
    s_e = (s0 + v T) / sqrt(1 - (v/v0)^4)."""
    ratio = np.asarray(v, dtype=float) / v0
    return (s0 + v * t_gap) / np.sqrt(1.0 - (ratio * ratio) ** 2)


def ballistic_step(x: np.ndarray, v: np.ndarray, acc: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Position and speed after dt at constant acceleration acc; a vehicle that would reverse stops
    where it reaches zero speed instead (Treiber & Kanagaraj 2015)."""
    v_next = v + acc * dt
    dx = 0.5 * dt * (v + v_next)
    stops = v_next < 0
    if np.any(stops):
        v, acc = np.broadcast_to(v, stops.shape)[stops], np.broadcast_to(acc, stops.shape)[stops]
        dx[stops] = v * v / (2.0 * np.maximum(-acc, 1e-9))
        v_next[stops] = 0.0
    return x + dx, v_next


def gap_accepted(tta: np.ndarray, t_crit: np.ndarray) -> np.ndarray:
    """The gap-acceptance rule: go first iff the other vehicle's time to arrival exceeds the critical gap."""
    return tta > t_crit


def p_gap_accepted(tta: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """P(t_c < tta) for a critical gap t_c uniform in [lo, hi] (a point mass at lo when hi == lo)."""
    if hi <= lo:
        return (tta > lo).astype(float)
    return np.clip((tta - lo) / (hi - lo), 0.0, 1.0)


def mobil_safe(acc_new_follower: np.ndarray, acc_self: np.ndarray, b_safe: np.ndarray) -> np.ndarray:
    """MOBIL's safety criterion for a lane change: the braking it imposes on the new follower, and the
    changer's own braking behind its new leader, both within b_safe. No gap (-inf) is never safe."""
    return (acc_new_follower >= -b_safe) & (acc_self >= -b_safe)


def p_mobil_safe(acc_new_follower: np.ndarray, acc_self: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """P(mobil_safe) for a threshold b_safe uniform in [lo, hi] (a point mass at lo when hi == lo)."""
    need = -np.minimum(acc_new_follower, acc_self)  # the braking b_safe must allow
    if hi <= lo:
        return (lo >= need).astype(float)
    return np.clip((hi - need) / (hi - lo), 0.0, 1.0)


def boxes_overlap(
    z1: np.ndarray,
    h1: np.ndarray,
    z2: np.ndarray,
    h2: np.ndarray,
    length: float = LENGTH,
    width: float = WIDTH,
    margin: float = 0.0,
) -> np.ndarray:
    """Whether two vehicles (centres z complex, headings h) overlap, each body grown by `margin` on every
    side: the separating-axis test on the four edge directions of the two rectangles."""
    d = z2 - z1
    u1, u2 = np.exp(1j * h1), np.exp(1j * h2)
    half_l, half_w = length / 2 + margin, width / 2 + margin
    overlap = np.ones(np.broadcast(d, u1, u2).shape, bool)
    for axis in (u1, 1j * u1, u2, 1j * u2):
        conj = np.conj(axis)
        reach = 0.0
        for u in (u1, u2):  # each body's half extent along the axis
            reach = reach + half_l * np.abs((u * conj).real) + half_w * np.abs((1j * u * conj).real)
        overlap &= np.abs((d * conj).real) <= reach
    return overlap


def follow_leader(
    x: np.ndarray, v: np.ndarray, v0: np.ndarray, lead_x: np.ndarray, lead_v: np.ndarray, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """An IDM driver (centre x, speed v, desired speed v0; any shape S) over N steps behind a leader whose
    centre and speed at the start of each step are lead_x, lead_v (N, *S), time first (inf: no leader).
    Returns its centres and speeds (N, *S) after each step; braking is capped at A_HARD."""
    xs, vs = np.empty(np.broadcast(lead_x, x).shape), np.empty(np.broadcast(lead_x, x).shape)
    for k in range(len(lead_x)):
        acc = idm_accel(v, v0, lead_x[k] - x - LENGTH, v - lead_v[k])
        x, v = ballistic_step(x, v, np.clip(acc, -A_HARD, IDM_A, out=acc), dt)
        xs[k], vs[k] = x, v
    return xs, vs
