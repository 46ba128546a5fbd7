"""Paths of lines and arcs: the vectorised segment lookup against a walk of one query at a time."""

from __future__ import annotations

import cmath
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinypred.data.paths import path_points, path_pose


def walk(start: np.ndarray, length: np.ndarray, kappa: np.ndarray, s: float) -> tuple[complex, float]:
    """Position and heading at arc length s of one path, in plain float64 arithmetic: find the last
    segment that starts at or before s (the first one for any s before it), then travel the rest along
    its circle (or line)."""
    z, h, begin = complex(start[0], start[1]), float(start[2]), 0.0
    for j in range(1, len(length)):
        if s < begin + length[j - 1]:
            break
        z, h = _travel(z, h, float(length[j - 1]), float(kappa[j - 1]))
        begin += length[j - 1]
    else:
        j = len(length)
    return _travel(z, h, s - begin, float(kappa[j - 1]))


def _travel(z: complex, h: float, d: float, k: float) -> tuple[complex, float]:
    if k == 0.0:
        return z + d * cmath.exp(1j * h), h
    return z + (cmath.exp(1j * (h + k * d)) - cmath.exp(1j * h)) / (1j * k), h + k * d


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    paths=st.integers(1, 4),
    alternatives=st.integers(1, 3),
    segments=st.integers(1, 6),
    queries=st.integers(1, 12),
)
def test_every_query_lies_on_the_segment_it_reached(seed, paths, alternatives, segments, queries):
    rng = np.random.default_rng(seed)
    # One start per path, shared by its alternatives (as the generator broadcasts them); some segments of
    # length 0 and some straight ones; queries before the start, on the path and beyond its end.
    start = np.concatenate([rng.uniform(-50, 50, (paths, 1, 2)), rng.uniform(-4, 4, (paths, 1, 1))], -1)
    length = rng.uniform(0, 30, (paths, alternatives, segments)) * (
        rng.random((paths, alternatives, segments)) > 0.2
    )
    kappa = rng.normal(0, 0.05, (paths, alternatives, segments)) * (
        rng.random((paths, alternatives, segments)) > 0.3
    )
    s = rng.uniform(-10, length.sum(-1, keepdims=True) + 20, (paths, alternatives, queries))
    s[..., 0] = 0.0  # exactly at a segment start
    if segments > 1:
        s[..., -1] = length[..., 0]  # exactly at the second segment's start
    z, heading = path_pose(start, length, kappa, s)
    assert z.shape == heading.shape == s.shape
    np.testing.assert_array_equal(path_points(start, length, kappa, s), z)
    for b, a, q in np.ndindex(s.shape):
        want_z, want_h = walk(start[b, 0], length[b, a], kappa[b, a], float(s[b, a, q]))
        # The arc's trigonometry is float32: 1e-7 of the distance travelled (module `geometry`).
        assert abs(z[b, a, q] - want_z) < 1e-4, (b, a, q)
        assert math.isclose(heading[b, a, q], want_h, abs_tol=1e-9)
