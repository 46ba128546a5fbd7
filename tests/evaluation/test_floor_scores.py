"""The floor's scores: every metric per (scene, sample) pair as `evaluate` computes it, and the floor's
value and standard errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinypred.errors import TinypredError
from tinypred.evaluation import floor, metrics
from tinypred.evaluation.floor_scores import floor_summary, metric_samples


@pytest.mark.parametrize("k", [3, 8])
def test_metric_samples_is_evaluate_with_each_sample_as_the_ground_truth(monkeypatch, k):
    monkeypatch.setattr(floor, "CHUNK", 64)  # many chunks of scenes
    rng = np.random.default_rng(14)
    b, s, t = 5, 7, 4
    modes, samples = rng.normal(size=(b, k, t, 2)) * 2, rng.normal(size=(b, s, t, 2)) * 2
    probs = rng.dirichlet(np.ones(k), size=b)
    scale = rng.uniform(0.5, 2, size=(b, k, t))  # per scene: it must follow its scene into the pairs
    per = metric_samples(modes, probs, scale, samples, dist="gaussian", miss_threshold_m=1.5)
    assert set(per) == set(metrics.METRICS) and all(v.shape == (b, s) for v in per.values())
    assert per["MR@6"].dtype == bool
    for j in range(s):
        table = metrics.evaluate(modes, probs, samples[:, j], scale, dist="gaussian", miss_threshold_m=1.5)
        for name in metrics.METRICS:
            assert per[name][:, j].mean() == pytest.approx(table["all"][name], rel=1e-12), name
        one = metrics.per_sample(modes, probs, samples[:, j], scale, "gaussian", 1.5)
        for name in metrics.METRICS:
            np.testing.assert_array_equal(per[name][:, j], one[name])


def test_metric_samples_refuses_bad_input():
    modes, probs = np.zeros((2, 3, 4, 2)), np.full((2, 3), 1 / 3)
    with pytest.raises(TinypredError, match=r"samples must have shape \(B, S, T, 2\)"):
        metric_samples(modes, probs, 1.0, np.zeros((2, 4, 2)))
    with pytest.raises(TinypredError, match=r"gt must have shape \(N, T, 2\)"):
        metric_samples(modes, probs, 1.0, np.zeros((2, 5, 3, 2)))
    with pytest.raises(TinypredError, match="samples contains NaN or Inf"):
        metric_samples(modes, probs, 1.0, np.full((2, 5, 4, 2), np.inf))


def test_floor_summary_on_a_worked_case():
    # Scene means 2, 6, 2; within variances (ddof 1) 2, 2, 0. floor = 20 / 6; mc_se = sqrt(4 / 2) / 3;
    # var of the means (ddof 1) = 16 / 3, so V = (1 - 1/2) * 4/3 + 16/3 = 6 and se = sqrt(6 / 3).
    summary = floor_summary(np.array([[1.0, 3.0], [5.0, 7.0], [2.0, 2.0]]))
    assert summary["value"] == pytest.approx(10 / 3)
    assert summary["mc_se"] == pytest.approx(math.sqrt(2) / 3)
    assert summary["se"] == pytest.approx(math.sqrt(2))
    assert (summary["scenes"], summary["samples"]) == (3, 2)
    assert math.isnan(floor_summary(np.ones((3, 1)))["mc_se"])
    assert math.isnan(floor_summary(np.ones((1, 3)))["se"])
    assert floor_summary(np.array([[True, False]]))["value"] == 0.5  # a miss rate, from bools
    with pytest.raises(TinypredError, match=r"values must have shape \(B, S\)"):
        floor_summary(np.ones(3))


def test_floor_summary_errors_match_their_meaning():
    # Scene means ~ N(0, 1), one future's spread around them N(0, 2^2): one future's variance is 5.
    rng = np.random.default_rng(15)
    b = 4000
    means = rng.normal(size=(b, 1))
    se = floor_summary(means + rng.normal(0, 2, size=(b, 64)))["se"]
    assert se == pytest.approx(math.sqrt(5 / b), rel=0.05)
    # mc_se halves when S quadruples; it is the spread of the floor over repeated draws of samples.
    few, many = (floor_summary(means + rng.normal(0, 2, size=(b, s)))["mc_se"] for s in (16, 64))
    assert few / many == pytest.approx(2, rel=0.05)
    floors = [floor_summary(means + rng.normal(0, 2, size=(b, 16)))["value"] for _ in range(30)]
    assert np.std(floors, ddof=1) == pytest.approx(few, rel=0.35)
