"""Metrics: hand-worked cases, properties (hypothesis), input refusal, evaluate's slices."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinypred.errors import TinypredError
from tinypred.evaluation import metrics, scales
from tinypred.evaluation.metrics import (
    ade,
    brier_min_fde,
    evaluate,
    fde,
    min_ade,
    min_fde,
    miss,
    nll,
    per_sample,
)
from tinypred.evaluation.scales import fit_scales

prop = settings(max_examples=50, deadline=None)
coords = st.floats(-50, 50, allow_nan=False, allow_infinity=False, allow_subnormal=False)

# --- one sample, two modes, T = 2, worked by hand ------------------------------------------------------
# gt goes (0, 0) -> (10, 0). Mode A is off by 5 then 1: ADE 3, FDE 1. Mode B is exact then off by 2:
# ADE 1, FDE 2. So A has the best endpoint but B the best average: endpoint minADE 3, independent 1.
GT = np.array([[[0.0, 0.0], [10.0, 0.0]]])
PRED = np.array([[[[3.0, 4.0], [10.0, 1.0]], [[0.0, 0.0], [10.0, 2.0]]]])
PROBS = np.array([[0.4, 0.6]])
# Log-density of each mode at scale 1, from the per-coordinate errors (3, 4, 0, 1) and (0, 0, 0, 2):
# Gaussian -sum(e^2)/2 - 4 * log(2 pi)/2; Laplace -sum|e| - 4 log 2.
HAND_NLL = {
    "gaussian": -math.log(0.4 * math.exp(-13) + 0.6 * math.exp(-2)) + 2 * math.log(2 * math.pi),
    "laplace": -math.log(0.4 * math.exp(-8) + 0.6 * math.exp(-2)) + 4 * math.log(2),
}


def test_hand_case_per_mode_and_min_metrics():
    np.testing.assert_allclose(ade(PRED, GT), [[3.0, 1.0]])
    np.testing.assert_allclose(fde(PRED, GT), [[1.0, 2.0]])
    np.testing.assert_allclose(min_fde(PRED, GT), [1.0])
    np.testing.assert_allclose(min_ade(PRED, GT), [3.0])
    np.testing.assert_allclose(min_ade(PRED, GT, mode="independent"), [1.0])
    np.testing.assert_allclose(brier_min_fde(PRED, PROBS, GT), [1.0 + 0.6**2])


def test_hand_case_miss_is_strict():
    assert miss(PRED, GT).tolist() == [False]
    assert miss(PRED, GT, threshold_m=1.0).tolist() == [False]  # FDE 1 is not > 1
    assert miss(PRED, GT, threshold_m=0.99).tolist() == [True]


@pytest.mark.parametrize("dist", metrics.DISTS)
def test_hand_case_nll(dist):
    np.testing.assert_allclose(nll(PRED, PROBS, GT, 1.0, dist), [HAND_NLL[dist]], rtol=1e-12)


def test_hand_case_evaluate():
    table = evaluate(PRED, PROBS, GT, np.ones(2), dist="gaussian")
    assert list(table) == ["all"]
    # @1 is mode B (p = 0.6): ADE 1, FDE 2, and FDE 2 is not a miss at 2 m.
    expected = {
        "minADE@1": 1.0,
        "minFDE@1": 2.0,
        "MR@1": 0.0,
        "minADE@6": 3.0,
        "minFDE@6": 1.0,
        "MR@6": 0.0,
        "brier-minFDE@6": 1.36,
        "NLL": HAND_NLL["gaussian"],
        "count": 1,
    }
    assert table["all"].keys() == expected.keys()
    for name, value in expected.items():
        assert table["all"][name] == pytest.approx(value, rel=1e-12), name


def test_one_step_nll_matches_closed_form():
    gt = np.array([[[1.0, -2.0]]])
    pred = np.array([[[[4.0, 2.0]]]])  # errors 3 and 4
    sigma = 2.0
    gauss = 25 / (2 * sigma**2) + 2 * math.log(sigma) + math.log(2 * math.pi)
    laplace = 7 / sigma + 2 * math.log(2 * sigma)
    np.testing.assert_allclose(nll(pred, [[1.0]], gt, [sigma], "gaussian"), [gauss], rtol=1e-12)
    np.testing.assert_allclose(nll(pred, [[1.0]], gt, [sigma], "laplace"), [laplace], rtol=1e-12)


def test_nll_stays_finite_where_the_density_underflows():
    # Errors of 1 km at 1 cm scale: the density is exp(-1e10), 0 in float64, but its log is exact.
    gt = np.zeros((1, 1, 2))
    pred = np.full((1, 2, 1, 2), 1000.0)
    expected = 2e6 / (2 * 1e-4) + 2 * math.log(0.01) + math.log(2 * math.pi)
    np.testing.assert_allclose(nll(pred, [[0.5, 0.5]], gt, 0.01, "gaussian"), [expected], rtol=1e-12)


@pytest.mark.parametrize("dist", metrics.DISTS)
def test_zero_probability_mode_contributes_nothing_without_warnings(dist):
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(3, 4, 2))
    pred = rng.normal(size=(3, 2, 4, 2))
    pred[:, 1] = gt  # a perfect mode, but with probability 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both = nll(pred, [[1.0, 0.0]] * 3, gt, 0.7, dist)
        table = evaluate(pred, np.array([[1.0, 0.0]] * 3), gt, 0.7, dist=dist)
    np.testing.assert_allclose(both, nll(pred[:, :1], [[1.0]] * 3, gt, 0.7, dist), rtol=1e-12)
    assert table["all"]["NLL"] == pytest.approx(both.mean(), rel=1e-12)


def test_scale_shapes_broadcast_alike():
    rng = np.random.default_rng(1)
    n, k, t = 4, 3, 5
    pred, gt = rng.normal(size=(n, k, t, 2)), rng.normal(size=(n, t, 2))
    probs = rng.dirichlet(np.ones(k), size=n)
    per_step = rng.uniform(0.5, 2, size=t)
    for dist in metrics.DISTS:
        expected = nll(pred, probs, gt, np.broadcast_to(per_step, (n, k, t)), dist)
        for scale in (per_step, per_step[None, None], np.broadcast_to(per_step, (n, 1, t))):
            np.testing.assert_allclose(nll(pred, probs, gt, scale, dist), expected, rtol=1e-12)
        flat = nll(pred, probs, gt, np.full((n, k, 1), 0.8), dist)
        np.testing.assert_allclose(flat, nll(pred, probs, gt, 0.8, dist), rtol=1e-12)


def test_float32_stays_float32_and_agrees_with_float64():
    rng = np.random.default_rng(2)
    pred, gt = rng.normal(size=(50, 6, 30, 2)) * 3, rng.normal(size=(50, 30, 2)) * 3
    probs = rng.dirichlet(np.ones(6), size=50)
    assert ade(pred.astype(np.float32), gt.astype(np.float32)).dtype == np.float32
    assert min_fde(pred.astype(np.float32), gt.astype(np.float32)).dtype == np.float32
    scale = np.linspace(0.5, 2.0, 30)
    t64 = evaluate(pred, probs, gt, scale)["all"]
    t32 = evaluate(pred.astype(np.float32), probs.astype(np.float32), gt.astype(np.float32), scale)["all"]
    for name, value in t64.items():
        assert t32[name] == pytest.approx(value, rel=1e-5), name


# --- properties ---------------------------------------------------------------------------------------


@st.composite
def forecasts(draw, max_k: int = 7, max_t: int = 6, elements=coords):
    """(pred (N, K, T, 2), gt (N, T, 2), probs (N, K) > 0, scale (T,)), small and in float64."""
    n, k, t = draw(st.integers(1, 4)), draw(st.integers(1, max_k)), draw(st.integers(1, max_t))
    pred = draw(arrays(np.float64, (n, k, t, 2), elements=elements))
    gt = draw(arrays(np.float64, (n, t, 2), elements=elements))
    weights = draw(arrays(np.float64, (n, k), elements=st.floats(0, 1))) + 1e-3
    scale = draw(arrays(np.float64, (t,), elements=st.floats(0.1, 10)))
    return pred, gt, weights / weights.sum(axis=1, keepdims=True), scale


def _clear(pred: np.ndarray, gt: np.ndarray, threshold: float = 2.0, margin: float = 1e-6) -> np.ndarray:
    """(N,) samples whose best endpoint is unique and not at the miss threshold, by `margin`: where the
    endpoint-chosen metrics cannot flip under a rounding-sized change of the input."""
    ranked = np.sort(fde(pred, gt), axis=1)
    unique = ranked[:, 1] - ranked[:, 0] > margin if ranked.shape[1] > 1 else np.ones(len(ranked), bool)
    return unique & (np.abs(ranked[:, 0] - threshold) > margin)


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, -s], [s, c]]).T


@prop
@given(forecasts())
def test_minimum_is_at_most_every_mode(data):
    pred, gt, probs, _ = data
    ades, fdes = ade(pred, gt), fde(pred, gt)
    assert np.all(min_fde(pred, gt)[:, None] <= fdes)
    independent = min_ade(pred, gt, mode="independent")
    assert np.all(independent[:, None] <= ades)
    endpoint = min_ade(pred, gt)
    assert np.all(independent <= endpoint)
    assert np.all(np.isin(endpoint, ades))  # the ADE of an actual mode
    assert np.all(brier_min_fde(pred, probs, gt) >= min_fde(pred, gt))


@prop
@given(forecasts(), st.randoms(use_true_random=False), st.sampled_from(metrics.DISTS))
def test_permuting_modes_with_their_probabilities_changes_nothing(data, random, dist):
    pred, gt, probs, scale = data
    n, k, t = pred.shape[:3]
    order = list(range(k))
    random.shuffle(order)
    per_mode_scale = np.broadcast_to(scale, (n, k, t)) * np.linspace(1, 2, k)[None, :, None]
    shuffled = pred[:, order], probs[:, order], per_mode_scale[:, order]
    np.testing.assert_allclose(min_fde(shuffled[0], gt), min_fde(pred, gt))
    for mode in metrics.MIN_ADE_MODES:
        np.testing.assert_allclose(min_ade(shuffled[0], gt, mode), min_ade(pred, gt, mode))
    np.testing.assert_allclose(brier_min_fde(shuffled[0], shuffled[1], gt), brier_min_fde(pred, probs, gt))
    assert np.array_equal(miss(shuffled[0], gt), miss(pred, gt))
    np.testing.assert_allclose(
        nll(shuffled[0], shuffled[1], gt, shuffled[2], dist), nll(pred, probs, gt, per_mode_scale, dist)
    )


@prop
@given(st.integers(0, 2**32 - 1), st.integers(1, 9))
def test_evaluate_is_invariant_to_mode_order(seed, k):
    # Distinct random probabilities, so that "@1" and the top 6 are well defined (ties go to the first).
    rng = np.random.default_rng(seed)
    pred, gt = rng.normal(size=(20, k, 4, 2)) * 3, rng.normal(size=(20, 4, 2)) * 3
    probs = rng.dirichlet(np.ones(k), size=20)
    order = rng.permutation(k)
    before = evaluate(pred, probs, gt, 1.0)["all"]
    after = evaluate(pred[:, order], probs[:, order], gt, 1.0)["all"]
    for name, value in before.items():
        assert after[name] == pytest.approx(value, rel=1e-12), name


@prop
@given(forecasts(max_k=1))
def test_one_mode_reduces_to_plain_ade_fde(data):
    pred, gt, _, _ = data
    errors = np.linalg.norm(pred[:, 0] - gt, axis=-1)  # (N, T); its squares may underflow, hence atol
    np.testing.assert_allclose(min_fde(pred, gt), errors[:, -1], atol=1e-12)
    for mode in metrics.MIN_ADE_MODES:
        np.testing.assert_allclose(min_ade(pred, gt, mode), errors.mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(brier_min_fde(pred, np.ones((len(pred), 1)), gt), errors[:, -1], atol=1e-12)


@prop
@given(
    forecasts(),
    st.floats(-math.pi, math.pi),
    arrays(np.float64, 2, elements=st.floats(-1000, 1000)),
    st.integers(0, 3),
)
def test_rigid_motion_invariance(data, angle, shift, quarter_turns):
    pred, gt, probs, scale = data

    def check(move, dists):
        pred2, gt2 = move(pred), move(gt)
        np.testing.assert_allclose(ade(pred2, gt2), ade(pred, gt), rtol=1e-9, atol=1e-8)
        np.testing.assert_allclose(fde(pred2, gt2), fde(pred, gt), rtol=1e-9, atol=1e-8)
        clear = _clear(pred, gt)
        assert np.array_equal(miss(pred2, gt2)[clear], miss(pred, gt)[clear])
        np.testing.assert_allclose(min_ade(pred2, gt2)[clear], min_ade(pred, gt)[clear], rtol=1e-9, atol=1e-8)
        np.testing.assert_allclose(
            brier_min_fde(pred2, probs, gt2)[clear],
            brier_min_fde(pred, probs, gt)[clear],
            rtol=1e-9,
            atol=1e-8,
        )
        for dist in dists:
            np.testing.assert_allclose(
                nll(pred2, probs, gt2, scale, dist), nll(pred, probs, gt, scale, dist), rtol=1e-7, atol=1e-6
            )

    check(lambda p: p + shift, metrics.DISTS)
    check(lambda p: _rotate(p, angle), ["gaussian"])  # isotropic: any angle
    # The Laplace density is a product over x and y, symmetric only under quarter turns: (x, y) -> (-y, x).
    quarter = np.linalg.matrix_power(np.array([[0.0, -1.0], [1.0, 0.0]]), quarter_turns)  # exact
    check(lambda p: p @ quarter.T, metrics.DISTS)


@prop
@given(forecasts(), st.integers(0, 100), st.floats(0.01, 1.0), st.sampled_from(metrics.DISTS))
def test_nll_falls_as_the_true_mode_gains_probability(data, j, alpha, dist):
    pred, gt, probs, scale = data
    j %= pred.shape[1]
    pred = pred.copy()
    pred[:, j] = gt  # with a shared scale, the exact mode has the highest density of all
    raised = (1 - alpha) * probs
    raised[:, j] += alpha
    before, after = nll(pred, probs, gt, scale, dist), nll(pred, raised, gt, scale, dist)
    assert np.all(after <= before + 1e-9 * (1 + np.abs(before)))


@prop
@given(forecasts(), st.floats(0, 60))
def test_miss_is_min_fde_above_threshold(data, threshold):
    pred, gt, _, _ = data
    assert np.array_equal(miss(pred, gt, threshold), min_fde(pred, gt) > threshold)


def _reference_nll(pred, gt, probs, scale, dist):
    """The definition, term by term, in plain floats."""
    n, k, t = pred.shape[:3]
    out = []
    for i in range(n):
        total = 0.0
        for m in range(k):
            lik = probs[i, m]
            for s in range(t):
                for c in range(2):
                    e, b = gt[i, s, c] - pred[i, m, s, c], scale[s]
                    if dist == "gaussian":
                        lik *= math.exp(-(e**2) / (2 * b**2)) / (b * math.sqrt(2 * math.pi))
                    else:
                        lik *= math.exp(-abs(e) / b) / (2 * b)
            total += lik
        out.append(-math.log(total))
    return out


@prop
@given(forecasts(max_k=4, max_t=3, elements=st.floats(-2, 2)), st.sampled_from(metrics.DISTS))
def test_nll_matches_its_definition(data, dist):
    pred, gt, probs, scale = data
    scale = np.clip(scale, 0.5, 3)  # keeps the plain product well away from underflow
    np.testing.assert_allclose(
        nll(pred, probs, gt, scale, dist), _reference_nll(pred, gt, probs, scale, dist), rtol=1e-9, atol=1e-12
    )


# --- fit_scales ---------------------------------------------------------------------------------------


def _total_nll(pred, gt, probs, scale, dist):
    return nll(pred, probs, gt, scale, dist).sum()


def _assert_local_maximum(pred, gt, probs, scale, dist):
    """Moving all scales, or any one, by 0.1% up or down lowers the likelihood."""
    best = _total_nll(pred, gt, probs, scale, dist)
    for factor in (1.001, 0.999):
        assert _total_nll(pred, gt, probs, scale * factor, dist) > best
        for step in range(len(scale)):
            nudged = scale.copy()
            nudged[step] *= factor
            assert _total_nll(pred, gt, probs, nudged, dist) > best


def _rng_forecast(seed, n=400, k=1, t=5):
    """Random-walk gt; each mode is gt plus Laplace noise that grows along the horizon, at its own spread."""
    rng = np.random.default_rng(seed)
    gt = np.cumsum(rng.normal(size=(n, t, 2)), axis=1)
    spread = np.linspace(0.2, 2, t)[:, None] * rng.uniform(0.5, 3, size=(1, k, 1, 1))
    pred = gt[:, None] + rng.laplace(size=(n, k, t, 2)) * spread
    return pred, gt, rng.dirichlet(np.ones(k), size=n)


@pytest.mark.parametrize("dist", metrics.DISTS)
def test_fit_scales_one_mode_is_the_closed_form_and_the_maximum(dist):
    pred, gt, _ = _rng_forecast(3)
    errors = pred[:, 0] - gt  # (N, T, 2)
    closed = (
        np.sqrt((errors**2).mean(axis=(0, 2))) if dist == "gaussian" else np.abs(errors).mean(axis=(0, 2))
    )
    scale = fit_scales(pred, gt, dist=dist)
    assert scale.shape == (5,) and scale.dtype == np.float64
    np.testing.assert_allclose(scale, closed, rtol=1e-12)
    _assert_local_maximum(pred, gt, np.ones((len(pred), 1)), scale, dist)


@pytest.mark.parametrize("dist", metrics.DISTS)
@pytest.mark.parametrize("seed", [4, 5])
def test_fit_scales_mixture_em_reaches_a_maximum(dist, seed):
    pred, gt, probs = _rng_forecast(seed, k=4)
    scale = fit_scales(pred, gt, probs, dist=dist)
    _assert_local_maximum(pred, gt, probs, scale, dist)
    # ... and beats its starting point, the closed form on each sample's most probable mode.
    top = pred[np.arange(len(pred)), probs.argmax(axis=1)][:, None]
    start = fit_scales(top, gt, dist=dist)
    assert _total_nll(pred, gt, probs, scale, dist) < _total_nll(pred, gt, probs, start, dist)


def test_fit_scales_defaults_to_uniform_probabilities():
    pred, gt, _ = _rng_forecast(6, k=3)
    uniform = np.full((len(pred), 3), 1 / 3)
    np.testing.assert_allclose(fit_scales(pred, gt), fit_scales(pred, gt, uniform), rtol=1e-12)


def test_fit_scales_floors_an_exact_prediction():
    gt = np.random.default_rng(7).normal(size=(10, 3, 2))
    scale = fit_scales(gt[:, None], gt, dist="gaussian")
    np.testing.assert_array_equal(scale, scales.MIN_SCALE)
    assert np.isfinite(nll(gt[:, None], np.ones((10, 1)), gt, scale, "gaussian")).all()


# --- input refusal ------------------------------------------------------------------------------------

N, K, T = 3, 2, 4
_pred, _gt = np.zeros((N, K, T, 2)), np.zeros((N, T, 2))
_probs, _scale = np.full((N, K), 0.5), np.ones(T)


def _with(array: np.ndarray, index: tuple, value: float) -> np.ndarray:
    out = array.copy()
    out[index] = value
    return out


BAD_INPUTS = {
    "pred ndim": (dict(pred=np.zeros((N, T, 2))), "pred must have shape (N, K, T, 2); got (3, 4, 2)"),
    "pred last dim": (dict(pred=np.zeros((N, K, T, 3))), "pred must have shape (N, K, T, 2)"),
    "pred dtype": (dict(pred=np.full((N, K, T, 2), "a")), "pred must be a real-valued array"),
    "gt ndim": (dict(gt=np.zeros((N, T))), "gt must have shape (N, T, 2); got (3, 4)"),
    "gt N": (dict(gt=np.zeros((N + 1, T, 2))), "gt must have shape (N, T, 2) = (3, 4, 2) to match pred"),
    "gt T": (dict(gt=np.zeros((N, T - 1, 2))), "to match pred (3, 2, 4, 2); got (3, 3, 2)"),
    "N = 0": (dict(pred=np.zeros((0, K, T, 2)), gt=np.zeros((0, T, 2))), "pred has no samples (N = 0)"),
    "K = 0": (dict(pred=np.zeros((N, 0, T, 2))), "pred has no modes (K = 0)"),
    "T = 0": (dict(pred=np.zeros((N, K, 0, 2)), gt=np.zeros((N, 0, 2))), "pred has no time steps (T = 0)"),
    "pred NaN": (dict(pred=_with(_pred, (1, 1, 2, 0), np.nan)), "pred contains NaN or Inf"),
    "gt Inf": (dict(gt=_with(_gt, (0, 3, 1), np.inf)), "gt contains NaN or Inf"),
    "probs NaN": (dict(probs=_with(_probs, (2, 0), np.nan)), "probs contains NaN or Inf"),
    "probs shape": (dict(probs=np.full((N, K + 1), 1 / 3)), "probs must have shape (N, K) = (3, 2)"),
    "probs < 0": (dict(probs=_with(_with(_probs, (0, 0), -0.5), (0, 1), 1.5)), "probs must lie in [0, 1]"),
    "probs sum": (
        dict(probs=_with(_probs, (1, 1), 0.4)),
        "probs rows must sum to 1 (np.isclose(1, sum), as AV2); row 1 sums to 0.9",
    ),
    "scale shape": (dict(scale=np.ones(T + 1)), "scale must be broadcastable to (N, K, T) = (3, 2, 4)"),
    "scale 0": (dict(scale=_with(_scale, (2,), 0.0)), "scale must be > 0; got minimum 0"),
    "scale < 0": (dict(scale=-1.0), "scale must be > 0; got minimum -1"),
    "scale Inf": (dict(scale=_with(_scale, (0,), np.inf)), "scale contains NaN or Inf"),
    "dist": (dict(dist="cauchy"), "dist must be one of 'laplace', 'gaussian'; got 'cauchy'"),
    "threshold": (dict(miss_threshold_m=-1.0), "miss_threshold_m must be a finite number >= 0; got -1.0"),
    "threshold NaN": (dict(miss_threshold_m=float("nan")), "miss_threshold_m must be a finite number >= 0"),
    "family shape": (dict(family=np.zeros(N + 1, int)), "family must be integers of shape (3,)"),
    "family dtype": (dict(family=np.zeros(N)), "family must be integers of shape (3,); got float64"),
    "family range": (
        dict(family=np.array([0, 1, 2]), family_names=["a", "b"]),
        "family holds indices in [0, 2]; family_names has 2 names",
    ),
    "family negative": (dict(family=np.array([0, -1, 0])), "family holds indices in [-1, 0]"),
    "family names alone": (dict(family_names=["a"]), "family_names was given without family"),
    "family names twice": (
        dict(family=np.zeros(N, int), family_names=["a", "a"]),
        "family_names has duplicates",
    ),
    "is_decision dtype": (
        dict(is_decision=np.zeros(N, int)),
        "is_decision must be a bool array of shape (3,)",
    ),
    "is_interactive shape": (
        dict(is_decision=np.zeros(N, bool), is_interactive=np.zeros(N + 1, bool)),
        "is_interactive must be a bool array of shape (3,)",
    ),
    "is_interactive alone": (
        dict(is_interactive=np.zeros(N, bool)),
        "is_interactive was given without is_decision",
    ),
    "slices overlap": (
        dict(is_decision=np.array([True, True, False]), is_interactive=np.array([False, True, True])),
        "is_decision and is_interactive must not overlap (the slices partition the samples); 1 samples are "
        "both, the first 1",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_evaluate_refuses_bad_input_naming_the_problem(case):
    changes, message = BAD_INPUTS[case]
    args = dict(pred=_pred, probs=_probs, gt=_gt, scale=_scale) | changes
    with pytest.raises(TinypredError) as info:
        evaluate(args.pop("pred"), args.pop("probs"), args.pop("gt"), args.pop("scale"), **args)
    assert isinstance(info.value, ValueError)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


EVERY_FUNCTION = {
    "ade": lambda p: ade(p, _gt),
    "fde": lambda p: fde(p, _gt),
    "min_fde": lambda p: min_fde(p, _gt),
    "min_ade": lambda p: min_ade(p, _gt),
    "miss": lambda p: miss(p, _gt),
    "brier_min_fde": lambda p: brier_min_fde(p, _probs, _gt),
    "nll": lambda p: nll(p, _probs, _gt, _scale),
    "fit_scales": lambda p: fit_scales(p, _gt),
    "evaluate": lambda p: evaluate(p, _probs, _gt, _scale),
    "per_sample": lambda p: per_sample(p, _probs, _gt, _scale),
}


@pytest.mark.parametrize("name", EVERY_FUNCTION)
def test_every_function_validates(name):
    EVERY_FUNCTION[name](_pred)  # good input passes
    with pytest.raises(TinypredError, match="pred contains NaN or Inf"):
        EVERY_FUNCTION[name](_with(_pred, (0, 0, 0, 0), np.nan))
    with pytest.raises(TinypredError, match=r"gt must have shape \(N, T, 2\)"):
        EVERY_FUNCTION[name](_pred[:, :, :-1])


def test_other_arguments_are_refused_by_name():
    with pytest.raises(TinypredError, match="mode must be one of 'endpoint', 'independent'; got 'best'"):
        min_ade(_pred, _gt, mode="best")
    with pytest.raises(TinypredError, match="threshold_m must be a finite number >= 0"):
        miss(_pred, _gt, threshold_m=float("inf"))
    with pytest.raises(TinypredError, match="dist must be one of"):
        fit_scales(_pred, _gt, dist="normal")
    with pytest.raises(TinypredError, match="probs rows must sum to 1"):
        nll(_pred, np.full((N, K), 0.4), _gt, _scale)


@pytest.mark.parametrize(
    ("excess", "accepted"), [(9e-6, True), (-9e-6, True), (1.2e-5, False), (-1.2e-5, False)]
)
def test_probabilities_sum_to_one_by_av2s_rule(excess, accepted):
    """AV2's submission check is np.isclose(1, sum): |1 - sum| <= 1e-8 + 1e-5 |sum|. A row off by 9e-6
    is a valid submission and must be scored; one off by 1.2e-5 is not."""
    probs = _with(_probs, (1, 1), 0.5 + excess)
    assert bool(np.isclose(1.0, probs[1].sum())) is accepted  # the rule itself, as AV2 applies it
    if accepted:
        assert np.isfinite(nll(_pred, probs, _gt, _scale)).all()
    else:
        with pytest.raises(TinypredError, match="row 1 sums to"):
            nll(_pred, probs, _gt, _scale)


def test_float32_softmax_probabilities_are_accepted():
    logits = np.random.default_rng(8).normal(size=(1000, 6)).astype(np.float32) * 5
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    pred, gt = np.zeros((1000, 6, 2, 2), np.float32), np.ones((1000, 2, 2), np.float32)
    assert brier_min_fde(pred, probs, gt).shape == (1000,)


# --- evaluate: top 6 and slices -----------------------------------------------------------------------


def test_top6_leaves_out_the_least_probable_modes():
    # T = 1, gt at the origin; mode k ends (d_k, 0) away. The closest mode (0.5 m) has the lowest
    # probability, so it is not among the 6 most probable: minFDE@6 is the next closest, mode 1 (1 m).
    d = np.array([0.5, 1, 2, 3, 4, 5, 6, 7])
    pred = np.stack([d, np.zeros(8)], axis=-1)[None, :, None, :]
    probs = np.array([[0.01, 0.2, 0.15, 0.15, 0.15, 0.15, 0.15, 0.04]])
    gt = np.zeros((1, 1, 2))
    table = evaluate(pred, probs, gt, 1.0)["all"]
    assert table["minFDE@6"] == pytest.approx(1.0)
    assert table["minADE@6"] == pytest.approx(1.0)
    assert table["brier-minFDE@6"] == pytest.approx(1.0 + 0.8**2)  # raw p = 0.2, not renormalised
    assert table["minFDE@1"] == pytest.approx(1.0)
    assert table["NLL"] == pytest.approx(nll(pred, probs, gt, 1.0)[0], rel=1e-12)  # all 8 modes
    assert min_fde(pred, gt)[0] == pytest.approx(0.5)


def _slice_inputs(n=60, k=3, t=4):
    rng = np.random.default_rng(9)
    pred, gt = rng.normal(size=(n, k, t, 2)) * 3, rng.normal(size=(n, t, 2)) * 3
    probs = rng.dirichlet(np.ones(k), size=n)
    scale = rng.uniform(0.5, 2, size=(n, k, t))  # per sample, so slicing must carry it along
    family = rng.choice([0, 1, 3], size=n).astype(np.int8)  # family 2 is empty
    return pred, probs, gt, scale, family


def test_slices_partition_all():
    pred, probs, gt, scale, family = _slice_inputs()
    names = ["intersection", "lane_change", "stop_or_go", "cruise"]
    table = evaluate(pred, probs, gt, scale, family=family, is_decision=family < 2, family_names=names)
    assert set(table) == {
        "all",
        "decision",
        "other",
        "family/intersection",
        "family/lane_change",
        "family/cruise",
    }
    assert table["decision"]["count"] + table["other"]["count"] == table["all"]["count"] == 60
    assert sum(table[f"family/{name}"]["count"] for name in ("intersection", "lane_change", "cruise")) == 60
    for metric in metrics.METRICS:
        pooled = (
            table["decision"][metric] * table["decision"]["count"]
            + table["other"][metric] * table["other"]["count"]
        ) / 60
        assert pooled == pytest.approx(table["all"][metric], rel=1e-12), metric


def test_family_slice_equals_evaluating_its_samples_alone():
    pred, probs, gt, scale, family = _slice_inputs()
    table = evaluate(pred, probs, gt, scale, family=family)
    assert set(table) == {"all", "family/0", "family/1", "family/3"}  # default names; 2 is empty
    mask = family == 3
    alone = evaluate(pred[mask], probs[mask], gt[mask], scale[mask])["all"]
    for name, value in alone.items():
        assert table["family/3"][name] == pytest.approx(value, rel=1e-12), name


def test_empty_decision_slice_is_left_out():
    pred, probs, gt, scale, _ = _slice_inputs()
    table = evaluate(pred, probs, gt, scale, is_decision=np.ones(60, bool))
    assert set(table) == {"all", "decision"}
    assert table["decision"] == table["all"]


def test_tiny_scale_on_float32_input_neither_overflows_nor_warns():
    # float32 input with a scale so small its weight overflows float32: computed in float64 instead.
    pred = np.ones((2, 2, 3, 2), np.float32)
    gt = np.zeros((2, 3, 2), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = nll(pred, np.full((2, 2), 0.5), gt, 1e-20, "gaussian")
    assert np.all(np.isfinite(value)) and np.all(value > 1e38)


def test_interactive_slice_partitions_with_decision_and_other():
    pred, probs, gt, scale, family = _slice_inputs()
    decision, interactive = family == 0, family == 3
    table = evaluate(pred, probs, gt, scale, is_decision=decision, is_interactive=interactive)
    assert set(table) == {"all", "decision", "interactive", "other"}
    counts = [table[name]["count"] for name in ("decision", "interactive", "other")]
    assert counts == [decision.sum(), interactive.sum(), 60 - decision.sum() - interactive.sum()]
    assert sum(counts) == table["all"]["count"] == 60
    other = ~(decision | interactive)
    alone = evaluate(pred[other], probs[other], gt[other], scale[other])["all"]
    for metric in metrics.METRICS:
        pooled = sum(
            table[name][metric] * table[name]["count"] for name in ("decision", "interactive", "other")
        )
        assert pooled / 60 == pytest.approx(table["all"][metric], rel=1e-12), metric
        assert table["other"][metric] == pytest.approx(alone[metric], rel=1e-12), metric
    # Without is_interactive, "other" is everything not at a decision point, as before.
    assert evaluate(pred, probs, gt, scale, is_decision=decision)["other"]["count"] == 60 - decision.sum()


def test_an_empty_interactive_slice_is_left_out():
    pred, probs, gt, scale, family = _slice_inputs()
    table = evaluate(pred, probs, gt, scale, is_decision=family < 2, is_interactive=np.zeros(60, bool))
    assert set(table) == {"all", "decision", "other"}
    assert table["other"] == evaluate(pred, probs, gt, scale, is_decision=family < 2)["other"]


def test_per_sample_is_what_evaluate_averages():
    pred, probs, gt, scale, _ = _slice_inputs()
    per = per_sample(pred, probs, gt, scale, "gaussian", 1.0)
    assert list(per) == list(metrics.METRICS) and all(v.shape == (60,) for v in per.values())
    assert per["MR@1"].dtype == bool and per["MR@6"].dtype == bool
    table = evaluate(pred, probs, gt, scale, dist="gaussian", miss_threshold_m=1.0)["all"]
    for name, values in per.items():
        assert table[name] == pytest.approx(values.mean(), rel=1e-12), name
    np.testing.assert_allclose(per["NLL"], nll(pred, probs, gt, scale, "gaussian"), rtol=1e-12)
    np.testing.assert_allclose(per["minFDE@6"], min_fde(pred, gt), rtol=1e-12)  # K = 3 <= 6
