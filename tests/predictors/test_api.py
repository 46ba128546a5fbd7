"""The Predictor: the dataset path on world-frame input, rigid motions, units and shapes refused in one
line, model files old and foreign, the far-out warning, every baseline behind the same calls, the example."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from tinypred.data import SceneConfig, dataset, encode, generate, to_world
from tinypred.errors import TinypredError
from tinypred.geometry import rotate
from tinypred.predictors.baselines import BASELINES
from tinypred.predictors.model_file import (
    EncodingSpec,
    load_model,
    read_safetensors,
    save_model,
    write_safetensors,
)
from tinypred.predictors.prediction import predict_split
from tinypred.predictors.world_input import ENCODED_INPUTS

ROOT = Path(__file__).resolve().parents[2]
prop = settings(max_examples=12, deadline=None)


@pytest.fixture(scope="module")
def ds(small_dataset):
    return dataset.load(small_dataset)


@pytest.fixture(scope="module")
def run(tiny_run) -> Path:
    return tiny_run


@pytest.fixture(scope="module")
def p(run):
    from tinypred import Predictor

    return Predictor.load(run)


@pytest.fixture(scope="module")
def world():
    """64 world-frame scenes the model has not seen; lanes float64, as a planner's map would be."""
    scenes = generate(SceneConfig(), 64, seed=5)
    return replace(scenes, lanes=scenes.lanes.astype(np.float64))


def inputs(scenes, **changes) -> dict:
    return {
        "history": scenes.history,
        "lanes": scenes.lanes,
        "history_mask": scenes.history_mask,
        "lane_mask": scenes.lane_mask,
        "lane_type": scenes.lane_type,
        "lane_is_intersection": scenes.lane_is_intersection,
        "neighbours": scenes.neighbours,
        "neighbour_mask": scenes.neighbour_mask,
        "neighbour_type": scenes.neighbour_type,
    } | changes


def test_world_input_gives_the_dataset_path(p, ds):
    scenes = generate(SceneConfig(), 64, seed=9)  # float32 lanes, exactly as a dataset is made
    enc = encode(scenes)
    expected = predict_split(p.loaded, replace(ds, test=enc), "test", with_scale=False)
    out = p.predict(**inputs(scenes))
    assert out.modes.shape == (64, 6, 30, 2) and out.probs.shape == (64, 6)
    np.testing.assert_allclose(out.modes, to_world(expected.modes, enc.pose), atol=1e-5, rtol=0)
    np.testing.assert_allclose(out.probs, expected.probs, atol=1e-6, rtol=0)
    np.testing.assert_allclose(out.probs.sum(1), 1.0, atol=1e-5)
    # Encoded arrays in: the split itself, or only what the model reads, give the same agent-frame modes.
    split = predict_split(p.loaded, ds, "test", with_scale=False)
    np.testing.assert_array_equal(p.predict_encoded(ds.test).modes, split.modes)
    own = p.predict_encoded({k: getattr(ds.test, k) for k in ENCODED_INPUTS})
    np.testing.assert_array_equal(own.modes, split.modes)
    # ... as do the float32 arrays the exported ONNX graph takes (its type indices included).
    as_onnx = p.predict_encoded({k: getattr(ds.test, k).astype(np.float32) for k in ENCODED_INPUTS})
    np.testing.assert_array_equal(as_onnx.modes, split.modes)


@prop
@given(st.floats(-np.pi, np.pi), st.floats(-2000, 2000), st.floats(-2000, 2000))
def test_moving_the_whole_input_moves_the_output(p, world, angle, dx, dy):
    shift = np.array([dx, dy])
    before = p.predict(**inputs(world))
    after = p.predict(**inputs(world.rigid_transform(angle, shift)))
    np.testing.assert_allclose(after.modes, rotate(before.modes, angle) + shift, atol=1e-3, rtol=0)
    np.testing.assert_allclose(after.probs, before.probs, atol=1e-5)


@pytest.mark.filterwarnings("ignore:history", "ignore:lanes")  # no map and a gap: far out, rightly
@prop
@given(st.floats(0.0, 30.0), st.floats(-np.pi, np.pi), st.integers(1, 8))
def test_positions_alone_give_the_velocity_and_heading_of_steady_motion(p, speed, heading, gap):
    t = np.arange(-19, 1) * 0.1
    pos = np.stack([speed * t * np.cos(heading), speed * t * np.sin(heading)], -1)[None] + [100.0, -50.0]
    mask = np.ones((1, 20), bool)
    mask[0, gap] = False  # a missed observation: differences span it
    pos[0, gap] = np.nan
    states = p.world_scenes(pos, history_mask=mask).history[0]
    observed = states[mask[0]]
    velocity = np.broadcast_to([speed * np.cos(heading), speed * np.sin(heading)], observed[:, 3:5].shape)
    np.testing.assert_allclose(observed[:, 3:5], velocity, atol=1e-6)
    if speed >= 0.5:
        np.testing.assert_allclose(np.cos(observed[:, 2] - heading), np.ones(len(observed)), atol=1e-9)
    with_heading = np.concatenate([pos, np.full((1, 20, 1), heading)], -1)
    assert p.predict(with_heading, history_mask=mask).modes.shape == (1, 6, 30, 2)


@pytest.mark.filterwarnings("ignore:history")  # rightly: the training data had no gaps
def test_unobserved_steps_may_hold_anything(p, world):
    mask = world.history_mask.copy()
    mask[:, :5] = False
    clean = p.predict(**inputs(world, history_mask=mask))
    garbage = world.history.copy()
    garbage[:, :5] = np.nan
    lane_mask = world.lane_mask.copy()
    lane_mask[:, -1] = False
    lanes = world.lanes.copy()
    lanes[:, -1] = np.inf
    np.testing.assert_array_equal(
        p.predict(**inputs(world, history=garbage, history_mask=mask)).modes, clean.modes
    )
    masked_lane = p.predict(**inputs(world, lane_mask=lane_mask, lanes=lanes))
    assert np.isfinite(masked_lane.modes).all()


BAD = [
    ({"history": np.zeros((4, 20))}, "history", r"\(N >= 1, 20, 2\|3\|5\)"),
    ({"history": np.zeros((4, 19, 5))}, "history", "got shape"),
    ({"history": np.zeros((4, 20, 4))}, "history", "got shape"),
    ({"history": np.zeros((0, 20, 5))}, "history", "N >= 1"),
    ({"history": "a string"}, "history", "got shape"),
    ({"history": np.ones((64, 20, 5), bool)}, "history", "numbers, got bool"),
    ({"history_mask": np.ones((64, 19), bool)}, "history_mask", "booleans"),
    ({"history_mask": np.zeros((64, 20), bool)}, "history_mask", "last step"),
    ({"lanes": np.zeros((64, 4, 10, 2))}, "lanes", "16 points from 20 m behind to 60 m ahead"),
    ({"lanes": np.zeros((64, 5, 16, 2))}, "lanes", "<= 4"),
    ({"lane_type": np.full((64, 4), 7)}, "lane_type", "indices into lane, stop_line"),
    ({"lane_mask": np.full((64, 4), 2)}, "lane_mask", "booleans"),
    ({"neighbours": np.zeros((64, 5, 20, 5))}, "neighbours", "<= 4"),
]


@pytest.mark.parametrize(
    ("change", "arg", "message"), BAD, ids=[f"{a}-{i}" for i, (_, a, _) in enumerate(BAD)]
)
def test_bad_shapes_are_one_line_errors_naming_the_argument(p, world, change, arg, message):
    with pytest.raises(TinypredError, match=message) as info:
        p.predict(**inputs(world, **change))
    assert info.value.arg == arg and "\n" not in str(info.value)


def test_nan_and_wrong_units_are_refused(p, world):
    cases = {
        "history": world.history.copy(),
        "lanes": world.lanes.copy(),
    }
    cases["history"][3, 7, 1] = np.nan
    cases["lanes"][2, 0, 5, 0] = np.inf
    for arg, bad in cases.items():
        with pytest.raises(TinypredError, match="not finite at index") as info:
            p.predict(**inputs(world, **{arg: bad}))
        assert info.value.arg == arg
    centimetres = world.history.copy()
    centimetres[..., :2] *= 100
    with pytest.raises(TinypredError, match=r"m/s \(over 100\): expected metres") as info:
        p.predict(**inputs(world, history=centimetres[..., :3]))
    degrees = world.history.copy()
    degrees[..., 2] = np.degrees(degrees[..., 2]) + 90
    with pytest.raises(TinypredError, match="expected radians"):
        p.predict(**inputs(world, history=degrees))
    with pytest.raises(TinypredError, match="unknown array 'histroy'") as info:
        p.predict_encoded({"histroy": np.zeros((1, 20, 6))})
    assert info.value.arg == "arrays"


def test_model_files_of_the_wrong_kind_are_one_line_errors(run, small_dataset, tmp_path):
    from tinypred import Predictor

    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    arrays = tmp_path / "arrays.safetensors"  # a valid safetensors file, not of a model
    save_file({"history": torch.zeros(2, 3)}, arrays)
    for path, message in (
        (run / "checkpoint.safetensors", "a training checkpoint, not a model file"),
        (arrays, "not a tinypred model"),
        (noise, "not a tinypred model or damaged"),
        (small_dataset, "missing"),
        (small_dataset / "meta.json", "not a tinypred model or damaged"),
        (tmp_path / "nothing", "missing"),
    ):
        with pytest.raises(TinypredError, match=message) as info:
            Predictor.load(path)
        assert "\n" not in str(info.value)


def test_old_model_files_fall_back_to_the_defaults(run, tmp_path):
    from tinypred import Predictor

    tensors, meta = read_safetensors(run / "model.safetensors", "model")
    stored = json.loads(meta["encoding"])
    assert stored["history_steps"] == 20 and stored["lane_window"] == [20.0, 60.0] and stored["dt"] == 0.1
    old = {k: v for k, v in meta.items() if k not in ("encoding", "sha256")}
    write_safetensors(tmp_path / "old.safetensors", tensors, old)
    loaded = Predictor.load(tmp_path / "old.safetensors")
    assert loaded.encoding == Predictor.load(run).encoding
    partial = old | {"encoding": json.dumps({"dt": 0.1, "lane_points": 16})}
    write_safetensors(tmp_path / "partial.safetensors", tensors, partial)
    assert Predictor.load(tmp_path / "partial.safetensors").encoding == loaded.encoding
    wrong = old | {"encoding": json.dumps({"lane_points": 10})}  # would not give the model's features
    write_safetensors(tmp_path / "wrong.safetensors", tensors, wrong)
    with pytest.raises(TinypredError, match=r"encoding: \d+ features, the model reads 888"):
        load_model(tmp_path / "wrong.safetensors")
    # A file from before models read neighbours (no neighbour_slots): refused, with what to do.
    before = {k: v for k, v in old.items() if k not in ("neighbour_slots", "history_steps")}
    write_safetensors(tmp_path / "before.safetensors", tensors, before)
    with pytest.raises(TinypredError, match=r"did not read neighbours .* retrain it"):
        load_model(tmp_path / "before.safetensors")


def test_save_model_refuses_an_encoding_that_does_not_describe_the_model(run, tmp_path):
    m = load_model(run / "model.safetensors")
    assert isinstance(m.encoding, EncodingSpec)
    with pytest.raises(AssertionError):
        save_model(tmp_path / "m.safetensors", m.model, m.normalizer, m.config, m.info, 0.1,
                   replace(m.encoding, max_lanes=5))  # fmt: skip


def test_input_far_from_the_training_data_is_warned_about(p, world):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scenes like the training data's: silence
        p.predict(**inputs(world))
    enc = encode(world)
    far = to_world(enc.lanes * 1.3, enc.pose)  # sampled over a window 30 % too long
    with pytest.warns(UserWarning, match=r"^lanes: a normalised feature .* is \d+ standard deviations"):
        p.predict(**inputs(world, lanes=far))
    with pytest.warns(UserWarning, match=r"^lanes: .* standard deviations"):
        p.predict(**inputs(world, lanes=enc.lanes))  # agent-frame lanes given as world-frame ones


@pytest.mark.parametrize("name", [n for n in BASELINES if n != "intent_mixture"])
def test_every_baseline_is_a_predictor_too(ds, world, name):
    from tinypred import Predictor

    b = Predictor.baseline(name, train=ds)
    enc = encode(world)
    expected = b.baseline_.predict(enc)
    out = b.predict(**inputs(world))
    np.testing.assert_allclose(out.modes, to_world(expected.modes, enc.pose), atol=1e-9)
    np.testing.assert_allclose(out.probs.sum(1), 1.0, atol=1e-5)
    if name != "cv_fan":  # nothing fitted but the NLL's scales, which a planner does not use
        np.testing.assert_array_equal(Predictor.baseline(name).predict(**inputs(world)).modes, out.modes)


def test_baselines_that_cannot_serve_a_planner_are_refused(small_dataset):
    from tinypred import Predictor

    with pytest.raises(TinypredError, match="cv_fan fits its probabilities") as info:
        Predictor.baseline("cv_fan")
    assert info.value.arg == "train"
    with pytest.raises(TinypredError, match="unknown baseline 'intent_mixture'"):
        Predictor.baseline("intent_mixture", train=small_dataset)
    assert Predictor.baseline("cv_fan", train=small_dataset).encoding.lane_window == (20.0, 60.0)


def test_neighbours_are_read_padded_to_the_slots_and_checked(p):
    scenes = generate(SceneConfig(family_weights={"follow": 1.0}), 64, seed=4)  # a lead in every scene
    seen = p.predict(**inputs(scenes))
    blind = p.predict(**inputs(scenes, neighbours=None, neighbour_mask=None, neighbour_type=None))
    assert np.abs(seen.modes - blind.modes).max() > 1e-3  # the model reads them
    # Fewer slots than the model's: padded with empty ones, as the dataset's are.
    m = int(scenes.neighbour_mask.any(-1).sum(1).max())
    assert 0 < m < p.encoding.max_neighbours
    few = {k: getattr(scenes, k)[:, :m] for k in ("neighbours", "neighbour_mask", "neighbour_type")}
    np.testing.assert_array_equal(p.predict(**inputs(scenes, **few)).modes, seen.modes)
    built = p.world_scenes(scenes.history, neighbours=few["neighbours"], neighbour_mask=few["neighbour_mask"])
    assert built.neighbours.shape == (64, p.encoding.max_neighbours, 20, 5)
    np.testing.assert_array_equal(built.neighbour_type, scenes.neighbour_type)  # "vehicle" by default
    with pytest.raises(TinypredError, match="OBJECT_TYPES") as info:
        p.predict(**inputs(scenes, **few | {"neighbour_type": np.full((64, m), 99)}))
    assert info.value.arg == "neighbour_type"
    with pytest.raises(TinypredError, match="without neighbours"):
        p.predict(**inputs(scenes, neighbours=None))


def test_import_tinypred_stays_light_and_exports_predictor():
    code = (
        "import sys, tinypred; assert 'torch' not in sys.modules; "
        "from tinypred import Predictor; print(Predictor.__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "Predictor", proc.stderr
    import tinypred

    with pytest.raises(AttributeError):
        tinypred.Nothing  # noqa: B018


def test_the_planner_example_runs(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "planner_check.py"), "--json", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["p_blocked"]) >= {"model", "cv", "cv_fan", "lane_follow"}
    for values in result["p_blocked"].values():
        assert all(0.0 <= v <= 1.0 + 1e-6 for v in values)
