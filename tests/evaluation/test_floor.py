"""The `bayes` floor's solvers: known answers, guarantees (hypothesis), agreement with `evaluate`."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinypred.errors import TinypredError
from tinypred.evaluation import metrics
from tinypred.evaluation.floor import k_median, max_coverage
from tinypred.evaluation.floor_scores import metric_samples

prop = settings(max_examples=40, deadline=None)
coords = st.floats(-20, 20, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _cost(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(B,) the objective by its definition: mean over samples of the min over centres of the mean over
    points of the Euclidean norm. points (B, S, P, 2), centres (B, k, P, 2)."""
    d = np.linalg.norm(points[:, :, None] - centres[:, None], axis=-1).mean(axis=-1)  # (B, S, k)
    return d.min(axis=2).mean(axis=1)


def _weiszfeld_reference(points: np.ndarray, iters: int = 1000) -> np.ndarray:
    """The geometric median of points (S, 2), by plain Weiszfeld iteration in float64 from the mean."""
    y = points.mean(axis=0)
    for _ in range(iters):
        w = 1 / np.maximum(np.linalg.norm(points - y, axis=1), 1e-300)
        y = (points * w[:, None]).sum(axis=0) / w.sum()
    return y


def _best_sample_cost(points: np.ndarray) -> np.ndarray:
    """(B,) the objective of the best single sample as the only centre."""
    d = np.linalg.norm(points[:, :, None] - points[:, None], axis=-1).mean(axis=-1)  # (B, S, S)
    return d.mean(axis=1).min(axis=1)


# --- k_median: known answers --------------------------------------------------------------------------


def test_one_tight_cluster_is_its_geometric_median():
    rng = np.random.default_rng(0)
    cloud = np.array([3.0, -1.0]) + rng.normal(0, 0.2, size=(200, 2)) * [1.0, 0.3]
    cloud[:20] += [1.5, 0.0]  # skewed, so that the median is not the mean
    centres, mass, objective = k_median(cloud[None, :, None], 1, np.random.default_rng(1))
    median = _weiszfeld_reference(cloud)
    assert np.linalg.norm(median - cloud.mean(axis=0)) > 0.05
    np.testing.assert_allclose(centres[0, 0, 0], median, atol=1e-4)
    np.testing.assert_array_equal(mass, [[1.0]])
    np.testing.assert_allclose(objective, np.linalg.norm(cloud - median, axis=1).mean(), rtol=1e-6)


def test_two_separated_clusters_get_a_centre_each_with_their_weights():
    rng = np.random.default_rng(2)
    a = rng.normal(0, 0.3, size=(70, 2))
    b = np.array([25.0, 10.0]) + rng.normal(0, 0.3, size=(30, 2))
    points = np.concatenate([b[:15], a, b[15:]])[None, :, None]  # the clusters interleaved
    centres, mass, objective = k_median(points, 2, np.random.default_rng(3))
    order = np.argsort(-mass[0])
    np.testing.assert_allclose(mass[0, order], [0.7, 0.3])
    medians = np.stack([_weiszfeld_reference(a), _weiszfeld_reference(b)])
    # Lloyd stops once the objective stalls (by 1e-4): the centres are then within 1 % of the spread,
    # and the objective, flat at its minimum, within 1e-5 of the medians'.
    np.testing.assert_allclose(centres[0, order, 0], medians, atol=3e-3)
    np.testing.assert_allclose(objective, _cost(points, medians[None, :, None]), rtol=1e-5)
    np.testing.assert_allclose(objective, _cost(points, centres), rtol=1e-9)


def test_k1_on_symmetric_points_is_the_centre_of_symmetry():
    angles = np.arange(7) * 2 * math.pi / 7 + 0.3
    ring = 2 * np.stack([np.cos(angles), np.sin(angles)], axis=1) + [5.0, -3.0]
    # A rectangle and two far points on its axis: symmetric in x and in y, the median is the origin.
    cross = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [9.0, 0.0], [-9.0, 0.0]])
    for points, centre in ((ring, [5.0, -3.0]), (cross, [0.0, 0.0])):
        centres, _, _ = k_median(points[None, :, None], 1, np.random.default_rng(4))
        np.testing.assert_allclose(centres[0, 0, 0], centre, atol=1e-6)


def test_k1_finds_a_median_that_lies_on_a_sample():
    # At (0, 0) the unit pull of the others, |(1, 0) + (0, 1) + (-1, -1)/sqrt 2| = 0.41, is below the
    # weight 1 of the sample there: it is the median. Weiszfeld's iterates only crawl towards it.
    points = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])[None, :, None]
    centres, _, objective = k_median(points, 1, np.random.default_rng(5))
    np.testing.assert_allclose(centres[0, 0, 0], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(objective, (2 + 1 + math.sqrt(2)) / 4, rtol=1e-12)


def test_whole_trajectories_cluster_by_manoeuvre():
    # T = 12 steps: 60 % of the paths go straight, 40 % turn left, each with a small speed spread.
    rng = np.random.default_rng(6)
    t = np.arange(1, 13) / 12
    speed = 1 + rng.normal(0, 0.02, size=(100, 1))
    straight = np.stack([20 * t, 0 * t], axis=-1)
    left = np.stack([15 * np.sin(t), 15 * (1 - np.cos(t))], axis=-1)
    paths = np.where(np.arange(100)[:, None, None] < 60, straight, left) * speed[..., None]
    paths += rng.normal(0, 0.2, size=(100, 1, 2)) * t[:, None]  # and a lateral spread
    points = paths[rng.permutation(100)][None]
    centres, mass, objective = k_median(points, 2, np.random.default_rng(7))
    order = np.argsort(-mass[0])
    np.testing.assert_allclose(mass[0, order], [0.6, 0.4])
    # The centre of each manoeuvre is the median of its paths, point by point, to 5 % of their spread
    # (a few Weiszfeld steps on all points, after the search on 3 of them); the objective to 1e-4.
    medians = np.stack(
        [[_weiszfeld_reference(group[:, i]) for i in range(12)] for group in (paths[:60], paths[60:])]
    )
    np.testing.assert_allclose(centres[0, order], medians, atol=0.02)
    np.testing.assert_allclose(objective, _cost(points, medians[None]), rtol=1e-4)
    np.testing.assert_allclose(objective, _cost(points, centres), rtol=1e-9)
    # The objective is minADE: the mean over samples of the independent minADE of the centres.
    ades = metrics.ade(np.broadcast_to(centres, (100, 2, 12, 2)), points[0])
    np.testing.assert_allclose(objective, ades.min(axis=1).mean(), rtol=1e-9)


def test_k_above_the_distinct_samples_gives_duplicates_of_mass_zero():
    points = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])[None, :, None]
    centres, mass, objective = k_median(points, 4, np.random.default_rng(8))
    assert objective[0] == 0.0
    np.testing.assert_allclose(np.sort(mass[0]), [0, 0, 1 / 3, 2 / 3])
    assert mass.sum() == pytest.approx(1.0)
    assert {tuple(c) for c in centres[0, :, 0]} <= {(0.0, 0.0), (3.0, 4.0)}


def test_float32_stays_float32_and_results_are_deterministic():
    points = np.random.default_rng(9).normal(size=(5, 40, 3, 2)).astype(np.float32)
    first = k_median(points, 3, np.random.default_rng(10))
    second = k_median(points, 3, np.random.default_rng(10))
    assert first[0].dtype == np.float32 and first[0].shape == (5, 3, 3, 2) and first[1].shape == (5, 3)
    for one, two in zip(first, second, strict=True):
        np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(first[1].sum(axis=1), 1.0)


def test_a_scene_is_solved_alike_alone_or_among_others():
    points = np.random.default_rng(11).normal(size=(6, 30, 4, 2)) * 3
    together = k_median(points, 3, np.random.default_rng(12))
    # Same draws for scene 4 alone: the rng's uniforms are drawn per scene, (trials, B) per centre.
    alone_objective = k_median(points[4:5], 3, np.random.default_rng(12))[2]
    assert alone_objective[0] <= _best_sample_cost(points[4:5])[0]
    assert together[2][4] <= _best_sample_cost(points[4:5])[0]


MEDIAN_ON_A_SAMPLE = {
    # Eight samples at the origin, one 1e-6 m from it, three far: Weiszfeld stalled 5e-7 m off, worse
    # than the origin by 4e-7 m, nearest to the twin.
    "beside a near twin": [(0, 0)] * 8 + [(0, 1e-6), (19, 0), (0, 2), (0, 9)],
    # Half the samples on one point, whose pull barely wins (5.99 against 6): Weiszfeld crawled to it and
    # stopped 1.6 m away, nearer to two copies of another point.
    "barely the median": [(0, 0)] * 6 + [(7, 0)] * 2 + [(3, 0)] * 2 + [(7, 1)] * 2,
}


@pytest.mark.parametrize("case", MEDIAN_ON_A_SAMPLE)
def test_a_median_on_a_sample_that_weiszfeld_stalls_short_of_is_that_sample(case):
    points = np.array(MEDIAN_ON_A_SAMPLE[case], float)[None, :, None]  # (1, 12, 1, 2)
    centres, _, objective = k_median(points, 1, np.random.default_rng(0))
    assert centres[0, 0, 0].tolist() == [0.0, 0.0]
    assert objective[0] == pytest.approx(_best_sample_cost(points)[0], rel=1e-12)


# --- k_median: guarantees, on random points ------------------------------------------------------------


@st.composite
def clouds(draw, max_s: int = 12, max_p: int = 5):
    """points (B, S, P, 2): small random problems, some with repeated samples."""
    b, s, p = draw(st.integers(1, 3)), draw(st.integers(1, max_s)), draw(st.integers(1, max_p))
    pts = draw(arrays(np.float64, (b, s, p, 2), elements=coords))
    if draw(st.booleans()):
        pts[:, s // 2 :] = pts[:, : s - s // 2]  # duplicates
    return pts


@prop
@given(clouds(), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_objective_is_its_definition_and_beats_every_single_sample(points, k, seed):
    centres, mass, objective = k_median(points, k, np.random.default_rng(seed))
    np.testing.assert_allclose(objective, _cost(points, centres), rtol=1e-9, atol=1e-12)
    scale = 1 + np.abs(points).max()
    assert np.all(objective <= _best_sample_cost(points) + 1e-9 * scale)
    np.testing.assert_allclose(mass.sum(axis=1), 1.0)


@prop
@given(clouds(max_s=20), st.integers(0, 2**32 - 1))
def test_objective_never_rises_with_k(points, seed):
    objectives = [k_median(points, k, np.random.default_rng(seed))[2] for k in range(1, 6)]
    for fewer, more in itertools.pairwise(objectives):
        assert np.all(more <= fewer)


def test_k_median_refuses_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(TinypredError, match=r"points must have shape \(B, S, P, 2\)"):
        k_median(np.zeros((2, 3, 2)), 2, rng)
    with pytest.raises(TinypredError, match="S and P >= 1"):
        k_median(np.zeros((2, 0, 1, 2)), 2, rng)
    with pytest.raises(TinypredError, match="k must be an integer >= 1; got 0"):
        k_median(np.zeros((2, 3, 1, 2)), 0, rng)
    with pytest.raises(TinypredError, match="points contains NaN or Inf"):
        k_median(np.full((1, 3, 1, 2), np.nan), 1, rng)
    assert k_median(np.zeros((0, 3, 1, 2)), 2, rng)[0].shape == (0, 2, 1, 2)


# --- max_coverage --------------------------------------------------------------------------------------


def test_max_coverage_known_optimum_ties_and_the_boundary():
    # Groups of 5, 3 and 2 samples, far apart; the last sample is exactly 2 m from group 3's others:
    # covered (AV2's hit is FDE <= 2), so group 3 counts 2 from its first sample.
    group = [[0.0, 0.0]] * 5 + [[50.0, 0.0]] * 3 + [[100.0, 0.0], [100.0, 2.0]]
    points = np.array(group)[None]
    index, mass = max_coverage(points, 4)
    assert index.tolist() == [[0, 5, 8, 0]]  # ties to the lowest index; all covered: sample 0
    np.testing.assert_allclose(mass, [[0.5, 0.3, 0.2, 0.0]])
    assert max_coverage(points, 3, radius=1.999)[1][0].tolist() == pytest.approx([0.5, 0.3, 0.1])


@prop
@given(
    arrays(np.float64, (2, 8, 2), elements=st.floats(-4, 4, allow_subnormal=False)),
    st.integers(1, 3),
    st.floats(0.5, 3),
)
def test_max_coverage_greedy_is_within_1_minus_1_over_e_of_the_best(points, k, radius):
    index, mass = max_coverage(points, k, radius)
    for b in range(len(points)):
        cover = np.linalg.norm(points[b, :, None] - points[b, None], axis=-1) <= radius
        best = max(cover[list(chosen)].any(axis=0).sum() for chosen in itertools.combinations(range(8), k))
        got = cover[index[b]].any(axis=0).sum()
        assert mass[b].sum() == pytest.approx(got / 8)
        assert got >= (1 - 1 / math.e) * best


def test_max_coverage_mass_is_one_minus_the_miss_rate_of_its_endpoints():
    points = np.random.default_rng(13).normal(0, 3, size=(20, 64, 2))
    index, mass = max_coverage(points, 6)
    modes = np.take_along_axis(points, index[..., None], axis=1)[:, :, None]  # (B, 6, T = 1, 2)
    per = metric_samples(modes, np.full((20, 6), 1 / 6), 1.0, points[:, :, None])
    np.testing.assert_allclose(mass.sum(axis=1), 1 - per["MR@6"].mean(axis=1), rtol=1e-12)
