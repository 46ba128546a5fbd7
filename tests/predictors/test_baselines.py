"""Baselines: exact on the motion they assume, the intent mixture ahead of the rest, the CLI table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli

from tinypred.data import dataset
from tinypred.data.encoding import EncodedScenes
from tinypred.evaluation.metrics import METRICS, fde
from tinypred.evaluation.tables import evaluate_scenes
from tinypred.geometry import advance
from tinypred.predictors.baselines import BASELINES, CTRV, ConstantAcceleration, ConstantVelocity, fit_all

H, T, DT = 20, 30, 0.1


def synthetic(
    speed: float, yaw_rate: float = 0.0, accel: float = 0.0, n: int = 4, dt: float = DT, gaps=()
) -> EncodedScenes:
    """Noise-free unicycle motion sampled every dt s, already in the agent frame: heading 0 at the last
    observed step. History steps in `gaps` are unobserved (zeros, mask off), as in a recorded track."""
    t = np.arange(-(H - 1), T + 1) * dt
    v = speed + accel * t
    heading = yaw_rate * t
    # Integrate exact arcs from the origin, forward and backward in time.
    z = np.zeros(len(t), complex)
    zero = H - 1
    for i in range(zero + 1, len(t)):
        d = 0.5 * (v[i] + v[i - 1]) * dt
        z[i], _ = advance(z[i - 1], heading[i - 1], d, yaw_rate * dt / d)
    for i in range(zero - 1, -1, -1):
        d = 0.5 * (v[i] + v[i + 1]) * dt
        z[i], _ = advance(z[i + 1], heading[i + 1], -d, yaw_rate * dt / d)
    hist = np.stack(
        [z.real, z.imag, v * np.cos(heading), v * np.sin(heading), np.sin(heading), np.cos(heading)], -1
    )[:H]
    future = np.stack([z.real, z.imag], -1)[H:]

    def rep(a, dtype=np.float32):
        return np.repeat(np.asarray(a, dtype)[None], n, 0)

    mask = np.ones(H, bool)
    mask[list(gaps)] = False
    return EncodedScenes(
        history=rep(hist * mask[:, None]),
        history_mask=rep(mask, bool),
        future=rep(future),
        future_mask=np.ones((n, T), bool),
        lanes=np.zeros((n, 4, 16, 2), np.float32),
        lane_mask=np.zeros((n, 4), bool),
        lane_type=np.zeros((n, 4), np.int8),
        lane_is_intersection=np.zeros((n, 4), bool),
        neighbours=np.zeros((n, 2, H, 6), np.float32),
        neighbour_mask=np.zeros((n, 2, H), bool),
        neighbour_type=np.full((n, 2), -1, np.int8),
        neighbour_track_id=np.full((n, 2), ""),
        neighbour_future=np.zeros((n, 2, T, 2), np.float32),
        neighbour_future_mask=np.zeros((n, 2, T), bool),
        alt_futures=rep(np.stack([future] * 3)),
        alt_probs=rep([1.0, 0.0, 0.0]),
        alt_mask=rep([True, False, False], bool),
        alt_intent=rep([0, -1, -1], np.int8),
        family=np.full(n, 4, np.int8),
        intent=np.zeros(n, np.int8),
        scenario_id=np.arange(n).astype("U"),
        track_id=np.full(n, "focal"),
        city=np.full(n, "test"),
        category=np.full(n, 3, np.int8),
        object_type=np.zeros(n, np.int8),
        dt=dt,
        pose=np.zeros((n, 3)),
        scene_id=np.arange(n, dtype=np.int64),
    )


@pytest.mark.parametrize("dt", [0.05, 0.1, 0.2])
@pytest.mark.parametrize(
    ("cls", "motion"),
    [
        (ConstantVelocity, {"speed": 12.0}),
        (ConstantAcceleration, {"speed": 8.0, "accel": 1.5}),
        (CTRV, {"speed": 9.0, "yaw_rate": 0.3}),
    ],
)
@pytest.mark.parametrize("gaps", [(), (H - 2, H - 4, 3)])
def test_each_kinematic_baseline_is_exact_on_its_own_motion(cls, motion, dt, gaps):
    """Exact whatever the time step, and over unobserved steps (a gap is skipped, never read as zeros)."""
    scenes = synthetic(**motion, dt=dt, gaps=gaps)
    baseline = cls().fit(scenes)
    pred = baseline.predict(scenes)
    assert pred.modes.shape == (4, 1, T, 2) and np.allclose(pred.probs, 1.0)
    np.testing.assert_allclose(fde(pred.modes, scenes.future), 0.0, atol=2e-3)
    if cls is not ConstantVelocity:  # ... and constant velocity is not, where the motion is not
        assert fde(ConstantVelocity().fit(scenes).predict(scenes).modes, scenes.future).min() > 1.0


@pytest.fixture(scope="module")
def fitted(small_dataset):
    ds = dataset.load(small_dataset)
    return ds, fit_all(ds.train)


def test_predictions_are_well_formed(fitted):
    ds, baselines = fitted
    assert set(baselines) == set(BASELINES) == {"cv", "ca", "ctrv", "cv_fan", "lane_follow", "intent_mixture"}
    for name, b in baselines.items():
        pred = b.predict(ds.test)
        n, k = pred.probs.shape
        assert pred.modes.shape == (n, k, T, 2) and n == len(ds.test), name
        np.testing.assert_allclose(pred.probs.sum(1), 1.0, atol=1e-6, err_msg=name)
        assert pred.scale.shape == (T,) and np.all(pred.scale > 0), name
        if name != "intent_mixture":  # extrapolating further is less certain; the mixture's error is style
            assert pred.scale[-1] > 3 * pred.scale[0], (name, pred.scale)
    assert baselines["cv_fan"].prior.shape == (6,) and np.all(baselines["cv_fan"].prior > 0)
    assert baselines["cv_fan"].prior.sum() == pytest.approx(1.0)


def test_one_mode_scales_are_the_closed_form_maximum_likelihood(fitted):
    """With K = 1 the Laplace ML scale of each step is the mean |error| over scenes and both coordinates."""
    ds, baselines = fitted
    cv = baselines["cv"]
    err = cv.predict(ds.train).modes[:, 0] - ds.train.future  # (N, T, 2)
    np.testing.assert_allclose(cv.scale, np.abs(err).astype(np.float64).mean(axis=(0, 2)), rtol=1e-7)


def test_the_intent_mixture_beats_every_baseline_at_decision_points(fitted):
    ds, baselines = fitted
    results = {
        name: evaluate_scenes(b.predict(ds.test), ds.test)["decision"] for name, b in baselines.items()
    }
    for name, r in results.items():
        if name != "intent_mixture":
            for metric in ("minADE@6", "minFDE@6", "MR@6", "brier-minFDE@6", "NLL"):
                assert results["intent_mixture"][metric] < r[metric], (name, metric)
    # The multimodal baselines beat constant velocity where the future splits.
    assert results["cv_fan"]["minFDE@6"] < results["cv"]["minFDE@6"]
    assert results["lane_follow"]["MR@6"] < results["cv"]["MR@6"]


def test_predict_before_fit_is_an_error(fitted):
    ds, _ = fitted
    with pytest.raises(RuntimeError, match="fit"):
        ConstantVelocity().predict(ds.test)


def test_cli_table_and_json(small_dataset, tmp_path):
    out = tmp_path / "b.json"
    proc = run_cli("baselines", str(small_dataset), "--split", "val", "--json", str(out), check=True)
    assert "intent_mixture" in proc.stdout and "minFDE@6" in proc.stdout
    # Piped, the table keeps its natural width: every column whole, nothing cut to an ellipsis.
    assert "…" not in proc.stdout and "brier-minFDE@6 ┃    NLL ┃" in proc.stdout
    results = json.loads(out.read_text())["results"]
    assert set(results) == set(BASELINES)
    assert set(results["cv"]["decision"]) == {*METRICS, "count"}
    bad = run_cli("baselines", str(small_dataset), "--split", "nope")
    assert bad.returncode == 2 and "--split" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_floor_adds_the_bayes_row_and_the_floor(small_dataset, tmp_path):
    out = tmp_path / "f.json"
    args = (
        "baselines",
        str(small_dataset),
        "--split",
        "val",
        "--floor",
        "--samples",
        "16",
        "--json",
        str(out),
    )
    proc = run_cli(*args, check=True)
    saved = json.loads(out.read_text())
    assert set(saved["results"]) == {*BASELINES, "bayes"} and "bayes" in proc.stdout
    assert "the floor" in proc.stdout and "interactive" in proc.stdout
    floor = saved["floor"]["decision"]["minFDE@6"]
    assert floor["value"] < saved["expected"]["cv_fan"]["decision"]["minFDE@6"] and floor["mc_se"] > 0


def test_an_empty_split_is_a_user_error(tmp_path):
    from tinypred.data.scene_config import SceneConfig

    dataset.save(dataset.make(SceneConfig(), 100, 20, 0, seed=1), tmp_path / "ds")
    proc = run_cli("baselines", str(tmp_path / "ds"))
    assert proc.returncode == 1 and "the test split" in proc.stderr and "empty" in proc.stderr
