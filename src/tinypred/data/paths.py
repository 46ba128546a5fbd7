"""Motion primitives: paths of lines and arcs, and the speed rule agents drive them with.

A path is a start pose and J constant-curvature segments; the agent is a kinematic unicycle whose yaw
rate is the path curvature times its speed, so it tracks the path exactly and its lateral acceleration
is ``kappa * v**2``. Speed follows a plain rule, one time step at a time, vectorised over scenes:
approach a cruise speed gently (+-A_FREE) but never exceed the braking curve
``sqrt(v_cap**2 + 2 a_plan (s_cap - s))`` in front of a speed cap (a turn, a stop line).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinypred.geometry import advance, arc

A_FREE = 1.0  # gentle acceleration toward the cruise speed, m/s^2
A_BRAKE_MAX = 5.0  # the hard braking limit, m/s^2


# Paths: a start pose and J constant-curvature segments. Positions are complex numbers x + iy (one
# ufunc moves both coordinates). Shapes broadcast: start (B..., 3) as x, y, heading; length and kappa
# (B..., J). A query beyond the last segment continues along it, one before the start along the first.


def path_pose(start: np.ndarray, length: np.ndarray, kappa: np.ndarray, s: np.ndarray):
    """Position (B..., S) complex and heading (B..., S) at arc lengths s (B..., S) along the paths."""
    z0, u0, h0, s0, k0 = _segment_starts(start, length, kappa, s, heading=True)
    step, turn = arc(s - s0, k0)
    return z0 + u0 * step, h0 + turn


def path_points(start: np.ndarray, length: np.ndarray, kappa: np.ndarray, s: np.ndarray) -> np.ndarray:
    """`path_pose`'s positions alone (the heading costs a pass over every query)."""
    z0, u0, _, s0, k0 = _segment_starts(start, length, kappa, s, heading=False)
    return z0 + u0 * arc(s - s0, k0)[0]


def _segment_starts(start, length, kappa, s, heading: bool):
    """For each query arc length s (B..., S), the start of the segment it lies on (the last one that starts
    at or before it): position (complex), direction e^{i heading}, heading (None unless asked), arc
    length and curvature, each (B..., S)."""
    z, h = start[..., 0] + 1j * start[..., 1], start[..., 2]
    J = length.shape[-1]
    lead = np.broadcast_shapes(z.shape, length.shape[:-1], s.shape[:-1])
    # A table of the J segment starts per path, then one gather per quantity: a query's segment is how
    # many segments after the first start at or before it (the starts only move forward).
    table_z, table_h, table_s = np.empty((*lead, J), complex), np.empty((*lead, J)), np.zeros((*lead, J))
    table_z[..., 0], table_h[..., 0] = z, h
    segment = np.zeros((*lead, s.shape[-1]), np.intp)
    begin = np.zeros(length.shape[:-1])
    for j in range(1, J):  # few segments
        z, h = advance(z, h, length[..., j - 1], kappa[..., j - 1])
        begin = begin + length[..., j - 1]
        table_z[..., j], table_h[..., j], table_s[..., j] = z, h, begin
        segment += s >= begin[..., None]
    segment += (np.arange(int(np.prod(lead))) * J).reshape(*lead, 1)  # into the flattened tables

    def gather(table: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.broadcast_to(table, (*lead, J))).reshape(-1).take(segment)

    h0 = gather(table_h) if heading else None
    return gather(table_z), gather(np.exp(1j * table_h)), h0, gather(table_s), gather(kappa)


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
class SpeedPlan:
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


def rollout_speed(plan: SpeedPlan, s: np.ndarray, v: np.ndarray, steps: int, dt: float) -> np.ndarray:
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
