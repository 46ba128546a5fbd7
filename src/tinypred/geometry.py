"""Planar geometry on points stored as (..., 2) float arrays, viewed as complex numbers x + iy.

One complex ufunc moves both coordinates at once: a rotation is a single multiplication by e^{i angle}.
"""

from __future__ import annotations

import numpy as np


def as_complex(points: np.ndarray) -> np.ndarray:
    """View points (..., 2) as complex numbers x + iy (...,), without copying when contiguous."""
    dtype = np.complex64 if points.dtype == np.float32 else np.complex128
    return np.ascontiguousarray(points, dtype=np.float32 if dtype == np.complex64 else np.float64).view(
        dtype
    )[..., 0]


def as_points(z: np.ndarray) -> np.ndarray:
    """Complex numbers (...,) back to points (..., 2)."""
    real = np.float32 if z.dtype == np.complex64 else np.float64
    return np.ascontiguousarray(z)[..., None].view(real)


def rotate(points: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Rotate points (N, ..., 2) counter-clockwise by angle: a scalar, or one per scene (N,)."""
    z = as_complex(points)
    angle = np.asarray(angle)
    turn = np.exp(1j * angle.reshape(angle.shape + (1,) * (z.ndim - angle.ndim))).astype(z.dtype)
    return as_points(z * turn)


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Angles wrapped to (-pi, pi] (without trigonometry: a rounding)."""
    return angle - 2 * np.pi * np.ceil(angle / (2 * np.pi) - 0.5)


def arc(dist: np.ndarray, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Travelling `dist` along an arc of curvature `kappa` from heading 0: the displacement (complex) and
    the turn (rad). Exact for any kappa, a straight line included: the chord is dist * sin(half) / half,
    half the turn, and it points along half the turn."""
    half = 0.5 * kappa * dist
    # The trigonometry in float32: vectorised (float64 sin and cos are not here, and cost 20 times more);
    # it bends the chord by 1e-7 of itself, 1e-5 m over 100 m. A straight line's half turn, 0, becomes
    # a tiny one, whose sin(half) / half is exactly 1.
    h = np.asarray(half, np.float32)
    h = np.copysign(np.maximum(np.abs(h), np.float32(1e-30)), h)
    sin = np.sin(h)
    chord = (sin / h).astype(float)
    chord *= dist
    # Filled as points (..., 2) and viewed as complex: half the time of writing .real and .imag apart.
    step = np.empty((*h.shape, 2))
    step[..., 0], step[..., 1] = np.cos(h), sin
    step *= chord[..., None]
    return step.view(complex)[..., 0], 2 * half


def advance(z: np.ndarray, heading: np.ndarray, dist: np.ndarray, kappa: np.ndarray):
    """Exact (position, heading) after travelling `dist` along an arc of curvature `kappa`."""
    step, turn = arc(dist, kappa)
    return z + step * np.exp(1j * heading), heading + turn
