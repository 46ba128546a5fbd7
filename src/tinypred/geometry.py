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


def advance(z: np.ndarray, heading: np.ndarray, dist: np.ndarray, kappa: np.ndarray):
    """Exact (position, heading) after travelling `dist` along an arc of curvature `kappa`."""
    half = 0.5 * kappa * dist
    chord = dist * np.sinc(half / np.pi)  # chord length; sinc keeps kappa -> 0 exact (a straight line)
    return z + chord * np.exp(1j * (heading + half)), heading + 2 * half
