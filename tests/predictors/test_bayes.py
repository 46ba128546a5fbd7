"""The bayes floor: below every predictor in expectation, beaten on one test set only by chance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinypred.data import dataset
from tinypred.errors import TinypredError
from tinypred.evaluation.metrics import METRICS
from tinypred.evaluation.tables import evaluate_scenes
from tinypred.predictors.baselines import fit_all
from tinypred.predictors.bayes import OBJECTIVES, bayes_floor, brier_probs
from tinypred.predictors.model_file import MODEL_FILE, load_model
from tinypred.predictors.prediction import predict_split

FLOORED = [m for m in METRICS if m != "NLL"]
SAMPLES = 128


@pytest.fixture(scope="module")
def floored(small_dataset, tiny_run):
    ds = dataset.load(small_dataset)
    predictions = {name: b.predict(ds.test) for name, b in fit_all(ds.train).items()}
    predictions["mlp"] = predict_split(load_model(tiny_run / MODEL_FILE), ds, "test")
    return ds, predictions, bayes_floor(ds, "test", SAMPLES, SAMPLES, seed=3, compare=predictions)


def test_the_predictions_are_well_formed_and_every_slice_is_floored(floored):
    ds, _, bayes = floored
    n, t = ds.test.future.shape[:2]
    assert set(bayes.predictions) == set(OBJECTIVES)
    for name, p in bayes.predictions.items():
        k = int(name[-1])
        assert p.modes.shape == (n, k, t, 2) and p.probs.shape == (n, k), name
        np.testing.assert_allclose(p.probs.sum(1), 1.0, atol=1e-5, err_msg=name)
        assert np.isfinite(p.modes).all(), name
    assert {"all", "decision", "interactive", "other"} <= set(bayes.floor)
    for part, by_metric in bayes.floor.items():
        for m in METRICS:
            f = by_metric[m]
            assert np.isfinite(f["value"]), (part, m, f)
            if f["value"] == 0:  # a miss rate no held-out draw misses has no error to report
                assert f["mc_se"] == f["se"] == 0, (part, m, f)
            else:
                assert 0 < f["mc_se"] < f["se"], (part, m, f)
    row = bayes.row(ds.test)
    assert set(row) == set(evaluate_scenes(bayes.predictions["fde@6"], ds.test))


def test_the_floor_is_below_every_predictor_in_expectation(floored):
    """Scored on the same held-out draws of the true law, no baseline and no model does better than the
    predictions made for each metric (up to a few Monte-Carlo errors: they were chosen on other draws)."""
    _, predictions, bayes = floored
    for name in predictions:
        for part in ("all", "decision", "interactive", "other"):
            for m in FLOORED:
                floor = bayes.floor[part][m]
                got = bayes.expected[name][part][m]
                assert got >= floor["value"] - 3 * floor["mc_se"], (name, part, m, got, floor)
    # ... and with room to spare where the future splits: every single-motion baseline is far above.
    dec = bayes.floor["decision"]["minFDE@6"]["value"]
    assert bayes.expected["cv"]["decision"]["minFDE@6"] > 2 * dec


def test_no_predictor_beats_the_floor_on_the_test_futures_by_more_than_two_standard_errors(floored):
    ds, predictions, bayes = floored
    rows = {name: evaluate_scenes(p, ds.test) for name, p in predictions.items()}
    rows["bayes"] = bayes.row(ds.test)
    for name, row in rows.items():
        for part in ("all", "decision", "interactive"):
            for m in FLOORED:
                floor = bayes.floor[part][m]
                assert row[part][m] >= floor["value"] - 2 * floor["se"], (name, part, m, row[part][m], floor)


def test_the_same_seed_gives_the_same_floor(floored):
    ds, _, _ = floored
    a = bayes_floor(ds, "test", 16, 8, seed=3)
    b = bayes_floor(ds, "test", 16, 8, seed=3)
    assert a.floor == b.floor
    np.testing.assert_array_equal(a.predictions["ade@6"].modes, b.predictions["ade@6"].modes)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6), st.integers(0, 2**32 - 1))
def test_brier_probabilities_beat_every_other_distribution(raw, seed):
    """sum_k w_k (1 - p_k)^2 over the simplex: no random distribution does better than brier_probs."""
    wins = np.array(raw)[None]
    if wins.sum() == 0:
        wins[0, 0] = 1.0
    wins /= wins.sum()
    p = brier_probs(wins)
    assert p.sum() == pytest.approx(1.0) and (p >= 0).all()
    cost = lambda q: (wins * (1 - q) ** 2).sum(-1)  # noqa: E731
    others = np.random.default_rng(seed).dirichlet(np.ones(wins.shape[1]), 2000)
    assert cost(p)[0] <= cost(others).min() + 1e-9
    if wins.shape[1] == 2:  # two modes: the probabilities are the chances themselves
        np.testing.assert_allclose(p[0], wins[0], atol=1e-9)


def test_only_a_synthetic_split_has_a_floor(floored):
    ds, _, _ = floored
    with pytest.raises(TinypredError, match="synthetic dataset"):
        bayes_floor(replace(ds, config=None, seed=None), "test", 16, 8)
    with pytest.raises(TinypredError, match="samples"):
        bayes_floor(ds, "test", 2, 8)
