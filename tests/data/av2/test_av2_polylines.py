"""Map polylines as padded arrays: resampling by arc length, distances to segments, padding."""

from __future__ import annotations

import numpy as np

from tinypred.data.av2.polylines import distances, extend, pad, resample

L_SHAPE = np.array([[0.0, 0.0], [3.0, 0.0], [3.0, 4.0]])  # 7 m long


def test_resampling_is_equally_spaced_by_arc_length_with_the_endpoints_exact():
    out = resample(L_SHAPE[None], 8)[0]
    expected = [[0, 0], [1, 0], [2, 0], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]
    np.testing.assert_allclose(out, expected, atol=1e-12)
    np.testing.assert_array_equal(out[[0, -1]], L_SHAPE[[0, -1]])


def test_padding_and_repeated_points_change_nothing():
    repeated = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 0.0], [3.0, 0.0], [3.0, 4.0], [3.0, 4.0], [3.0, 4.0]])
    lines = np.stack([extend(L_SHAPE[None], 7)[0], repeated])
    out = resample(lines, 8)
    np.testing.assert_allclose(out[0], out[1], atol=1e-12)
    np.testing.assert_allclose(out[0], resample(L_SHAPE[None], 8)[0], atol=1e-12)
    point = np.array([[1.5, 2.0], [-3.0, 0.0], [3.0, 9.0]])
    np.testing.assert_allclose(distances(point, lines)[:, 0], distances(point, lines)[:, 1])


def test_a_line_of_zero_length_resamples_to_copies_of_its_point():
    still = np.array([[[2.0, 5.0], [2.0, 5.0]]])
    np.testing.assert_array_equal(resample(still, 4), np.full((1, 4, 2), [2.0, 5.0]))
    np.testing.assert_array_equal(resample(still[:, :1], 3), np.full((1, 3, 2), [2.0, 5.0]))


def test_distances_are_to_the_segments_not_just_the_vertices():
    long = np.array([[[-50.0, 0.0], [50.0, 0.0]]])
    d = distances(np.array([[0.0, 2.0], [60.0, 0.0], [53.0, 4.0]]), long)
    np.testing.assert_allclose(d[:, 0], [2.0, 10.0, 5.0])  # beside it; beyond an end: to the end
    single = np.array([[[1.0, 1.0]]])
    np.testing.assert_allclose(distances(np.array([[4.0, 5.0]]), single), [[5.0]])
    assert distances(np.zeros((3, 2)), np.zeros((0, 1, 2))).shape == (3, 0)


def test_ragged_polylines_are_padded_with_their_last_point():
    points = np.arange(12.0).reshape(6, 2)  # lines of 1, 3 and 2 points
    out = pad(points, np.array([1, 3, 2]))
    assert out.shape == (3, 3, 2)
    np.testing.assert_array_equal(out[0], [[0, 1]] * 3)
    np.testing.assert_array_equal(out[1], [[2, 3], [4, 5], [6, 7]])
    np.testing.assert_array_equal(out[2], [[8, 9], [10, 11], [10, 11]])
