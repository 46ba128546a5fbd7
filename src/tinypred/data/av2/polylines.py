"""Map polylines as padded arrays: building them, resampling them by arc length, distances to them.

E polylines of up to P points are stored as one (E, P, 2) float64 array, each padded to P points by
repeating its last point. The padding adds only zero-length segments, which change neither a polyline's
arc length nor its distance to anything, so every operation below runs on all polylines at once.
"""

from __future__ import annotations

import numpy as np

from tinypred.geometry import as_complex


def pad(points: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Ragged polylines, their points (sum(counts), 2) one after the other and counts (E,) >= 1, as
    (E, max(counts), 2), each padded with its last point."""
    counts = np.asarray(counts, np.int64)
    starts = np.cumsum(counts) - counts
    width = int(counts.max()) if len(counts) else 1
    return points[starts[:, None] + np.minimum(np.arange(width), counts[:, None] - 1)]


def extend(lines: np.ndarray, width: int) -> np.ndarray:
    """Padded polylines (E, P, 2) padded further to (E, width, 2), width >= P."""
    return np.concatenate([lines, np.repeat(lines[:, -1:], width - lines.shape[1], axis=1)], axis=1)


def resample(lines: np.ndarray, n: int) -> np.ndarray:
    """Padded polylines (..., P, 2) -> (..., n, 2): n >= 2 points equally spaced by arc length, both
    endpoints included (a polyline of zero length gives n copies of its point)."""
    if lines.shape[-2] == 1:
        return np.repeat(lines, n, axis=-2)
    seg = np.hypot(*np.moveaxis(np.diff(lines, axis=-2), -1, 0))  # (..., P - 1)
    s = np.concatenate([np.zeros((*seg.shape[:-1], 1)), np.cumsum(seg, axis=-1)], axis=-1)  # (..., P)
    u = s[..., -1:] * np.linspace(0.0, 1.0, n)  # (..., n); linspace ends at exactly 1: u ends at s[-1]
    # The segment of each target: its last vertex at or before the target, never the final vertex (so the
    # end of a polyline falls on its last segment, a zero-length one where padded).
    j = np.minimum((s[..., None, :] <= u[..., :, None]).sum(-1) - 1, lines.shape[-2] - 2)
    s0 = np.take_along_axis(s, j, -1)
    length = np.take_along_axis(s, j + 1, -1) - s0
    f = np.clip((u - s0) / np.where(length > 0, length, 1.0), 0.0, 1.0)[..., None]
    a = np.take_along_axis(lines, j[..., None], -2)
    b = np.take_along_axis(lines, j[..., None] + 1, -2)
    return a * (1.0 - f) + b * f  # exact at f = 0 and f = 1: the endpoints are the polyline's own


def distances(points: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """(N, E) Euclidean distance from each point (N, 2) to each padded polyline (E, P, 2): to the nearest
    point of its segments, not just of its vertices."""
    z = as_complex(lines)
    if z.shape[1] == 1:  # single points: one zero-length segment each
        z = np.repeat(z, 2, axis=1)
    a, ab = z[:, :-1], np.diff(z, axis=1)  # (E, P - 1) segment starts and directions
    ap = as_complex(points)[:, None, None] - a  # (N, E, P - 1)
    len2 = ab.real**2 + ab.imag**2
    t = np.clip((ap * ab.conj()).real / np.where(len2 > 0, len2, 1.0), 0.0, 1.0)
    return np.abs(ap - t * ab).min(-1)
