"""Export: ONNX and pt2 graphs equal the model on encoded arrays, refuse to be written when they do not,
load without unpickling, and the `tinypred export` command's one-line errors."""

from __future__ import annotations

import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from conftest import run_cli

from tinypred.data import dataset
from tinypred.errors import TinypredError
from tinypred.predictors import export as export_module
from tinypred.predictors.api import Predictor
from tinypred.predictors.export import TOLERANCE, EncodedModel, export, load_pt2
from tinypred.predictors.world_input import ENCODED_INPUTS


@pytest.fixture(scope="module")
def ds(small_dataset):
    return dataset.load(small_dataset)


@pytest.fixture(scope="module")
def run(tiny_run) -> Path:
    return tiny_run


@pytest.fixture(scope="module")
def p(run) -> Predictor:
    return Predictor.load(run)


def encoded(ds, rows: slice) -> dict[str, np.ndarray]:
    """A test batch as the graph reads it: the dataset's arrays, float32."""
    return {k: getattr(ds.test, k)[rows].astype(np.float32) for k in ENCODED_INPUTS}


def test_onnx_round_trip(p, ds, tmp_path):
    check = export(p, "onnx", tmp_path / "m.onnx", data=ds.path, samples=64)
    assert check.samples == 64 and check.max_abs_diff <= TOLERANCE
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(ENCODED_INPUTS)
    for rows in (slice(0, 1), slice(10, 47)):  # the batch is dynamic
        modes, probs = session.run(["modes", "probs"], encoded(ds, rows))
        expected = p.predict_encoded(ds.test.subset(rows))
        np.testing.assert_allclose(modes, expected.modes, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(probs, expected.probs, atol=TOLERANCE, rtol=0)
    meta = {m.key: m.value for m in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["tinypred.encoding"])["lane_window"] == [20.0, 60.0]


def test_the_onnx_graph_serves_the_predictor_calls(p, ds, tmp_path):
    from dataclasses import replace

    from tinypred.data import SceneConfig, encode, generate, to_world

    export(p, "onnx", tmp_path / "m.onnx", data=ds.path, samples=64)
    g = Predictor.load(tmp_path / "m.onnx")
    assert g.encoding == p.encoding and g.onnx is not None and g.loaded is None
    scenes = generate(SceneConfig(), 32, seed=3)
    world = {k: getattr(scenes, k) for k in ENCODED_INPUTS}  # world frame: states, the map, neighbours
    got, expected = g.predict(**world), p.predict(**world)
    np.testing.assert_allclose(got.modes, expected.modes, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(got.probs, expected.probs, atol=TOLERANCE, rtol=0)
    encoded_got = g.predict_encoded(ds.test.subset(slice(0, 9)))
    np.testing.assert_allclose(
        encoded_got.modes, p.predict_encoded(ds.test.subset(slice(0, 9))).modes, atol=TOLERANCE
    )
    enc = encode(replace(scenes, lanes=scenes.lanes.astype(np.float64)))
    far = to_world(enc.lanes * 1.3, enc.pose)  # the normaliser read back from the graph still warns
    with pytest.warns(UserWarning, match=r"^lanes: a normalised feature"):
        g.predict(**(world | {"lanes": far}))
    with pytest.raises(TinypredError, match=r"history: expected \(N >= 1, 20, 2\|3\|5\)"):
        g.predict(scenes.history[:, :5])


def test_onnx_files_of_the_wrong_kind_are_one_line_errors(p, tmp_path):
    (tmp_path / "cut.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(TinypredError, match=r"cut.onnx: not an ONNX model"):
        Predictor.load(tmp_path / "cut.onnx")
    with pytest.raises(TinypredError, match=r"gone.onnx: missing"):
        Predictor.load(tmp_path / "gone.onnx")
    export(p, "onnx", tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    del model.metadata_props[:]  # any ONNX model, not one of ours
    onnx.save(model, str(tmp_path / "foreign.onnx"))
    with pytest.raises(TinypredError, match=r"foreign.onnx: not written by `tinypred export"):
        Predictor.load(tmp_path / "foreign.onnx")
    with pytest.raises(TinypredError, match=r"runs on the CPU"):
        Predictor.load(tmp_path / "m.onnx", device="cuda")
    # One bit of one weight flipped (the exponent's: the graph still runs, and serves 1e38 m) is caught.
    model = onnx.load(str(tmp_path / "m.onnx"))
    weight = next(w for w in model.graph.initializer if w.name.endswith("body.0.weight"))
    raw = bytearray(weight.raw_data)
    raw[3] ^= 0x40
    weight.raw_data = bytes(raw)
    onnx.save(model, str(tmp_path / "flipped.onnx"))
    with pytest.raises(
        TinypredError, match=r"flipped.onnx: damaged \(its weights do not match their SHA-256\)"
    ):
        Predictor.load(tmp_path / "flipped.onnx")


def test_pt2_round_trip(p, ds, tmp_path):
    check = export(p, "pt2", tmp_path / "m.pt2")  # checked on generated scenes
    assert check.source == "generated scenes" and check.max_abs_diff <= TOLERANCE
    program = load_pt2(tmp_path / "m.pt2").module()
    for rows in (slice(0, 1), slice(5, 42)):
        with torch.inference_mode():
            modes, probs = program(*(torch.from_numpy(a) for a in encoded(ds, rows).values()))
        expected = p.predict_encoded(ds.test.subset(rows))
        np.testing.assert_allclose(modes.numpy(), expected.modes, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(probs.numpy(), expected.probs, atol=TOLERANCE, rtol=0)
    with zipfile.ZipFile(tmp_path / "m.pt2") as archive:
        stored = [n for n in archive.namelist() if n.endswith("/tinypred_encoding.json")]
        assert json.loads(archive.read(stored[0]))["dt"] == 0.1


def test_an_export_that_differs_from_the_model_is_not_written(p, tmp_path, monkeypatch):
    forward = EncodedModel.forward

    def off(
        self,
        history,
        history_mask,
        lanes,
        lane_mask,
        lane_type,
        lane_is_intersection,
        neighbours,
        neighbour_mask,
        neighbour_type,
    ):
        arrays = (history, history_mask, lanes, lane_mask, lane_type, lane_is_intersection)
        modes, probs = forward(self, *arrays, neighbours, neighbour_mask, neighbour_type)
        return modes + 1e-3, probs  # a millimetre: what a wrong normaliser or layout would do, and more

    monkeypatch.setattr(EncodedModel, "forward", off)
    with pytest.raises(
        TinypredError,
        match=r"differs from the model by up to 1\.0\de-03 \(over 0\.0001 \+ 1e-05 x \|value\|\)",
    ):
        export(p, "pt2", tmp_path / "m.pt2", samples=8)
    assert not list(tmp_path.iterdir())


def test_pt2_files_holding_more_than_tensors_are_refused(p, tmp_path):
    export(p, "pt2", tmp_path / "good.pt2", samples=8)
    with zipfile.ZipFile(tmp_path / "good.pt2") as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    evil = io.BytesIO()
    torch.save({"weights": torch.zeros(2), "code": print}, evil)  # a function: only a full unpickle runs it
    weights = next(n for n in members if n.endswith("data/weights/model_weights_config.json"))
    config = json.loads(members[weights])
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True  # torch.export.load would torch.load this one with weights_only=False
    pickled_weight = {
        **members,
        weights: json.dumps(config).encode(),
        weights.rsplit("/", 1)[0] + "/" + first["path_name"]: evil.getvalue(),
    }
    inputs = next(n for n in members if n.endswith(".pt"))  # the sample inputs: a weights-only fallback
    pickled_inputs = {**members, inputs: evil.getvalue()}
    for name, contents in (("weight.pt2", pickled_weight), ("inputs.pt2", pickled_inputs)):
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            for member, data in contents.items():
                archive.writestr(member, data)
        with pytest.raises(TinypredError, match=rf"{name}: holds more than tensors; refused"):
            load_pt2(tmp_path / name)
    (tmp_path / "noise.pt2").write_bytes(b"\x00" * 100)
    with pytest.raises(TinypredError, match=r"noise\.pt2: not a \.pt2 archive"):
        load_pt2(tmp_path / "noise.pt2")
    with pytest.raises(TinypredError, match="missing"):
        load_pt2(tmp_path / "nothing.pt2")


def test_baselines_and_bad_check_data_are_refused(ds, p, run, tmp_path):
    with pytest.raises(TinypredError, match="only a trained model can be exported"):
        export(Predictor.baseline("cv"), "onnx", tmp_path / "cv.onnx")
    with pytest.raises(TinypredError, match="not encoded as") as info:
        export(p, "pt2", tmp_path / "m.pt2", data=_other_dataset(tmp_path))
    assert info.value.arg == "data"
    assert (export_module.TOLERANCE, export_module.RELATIVE) == (1e-4, 1e-5)


def _other_dataset(tmp_path: Path) -> Path:
    from tinypred.data import SceneConfig

    out = tmp_path / "other"
    dataset.save(dataset.make(SceneConfig(history_steps=10), 20, 5, 5, seed=0), out)
    return out


def test_the_export_command(run, tmp_path):
    out = tmp_path / "m.pt2"
    calls = {
        "good": ("--format", "pt2", "--out", str(out), "--samples", "16"),
        "bad format": ("--format", "zip", "--out", str(tmp_path / "m.zip")),
        "missing": ("--out", str(tmp_path / "x.onnx")),
    }
    runs = {"missing": tmp_path / "nothing"}  # foreign model files: test_api, without a subprocess
    with ThreadPoolExecutor(len(calls)) as pool:  # each pays for importing torch: side by side
        procs = dict(
            zip(
                calls,
                pool.map(lambda k: run_cli("export", str(runs.get(k, run)), *calls[k]), calls),
                strict=True,
            )
        )
    good = procs.pop("good")
    assert good.returncode == 0, good.stderr
    assert "max |difference| from the model" in good.stdout and f"wrote {out}" in good.stdout
    assert load_pt2(out) is not None
    bad_format = procs.pop("bad format")
    assert bad_format.returncode == 2 and "--format" in bad_format.stderr
    missing, err = procs["missing"], procs["missing"].stderr.strip()
    assert missing.returncode == 1 and "Traceback" not in missing.stderr, missing.stderr
    assert err.startswith("tinypred: error: ") and "\n" not in err and "nothing: missing" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt2"]


def test_an_exported_program_is_named_for_what_it_is(p, tmp_path):
    export(p, "pt2", tmp_path / "m.pt2")
    with pytest.raises(TinypredError, match=r"m.pt2: an exported program, not a model file: run it with"):
        Predictor.load(tmp_path / "m.pt2")
