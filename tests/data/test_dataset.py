"""Dataset files: round trip, determinism, and every kind of bad file refused with a one-line error."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tinypred.data import dataset
from tinypred.data.scene_config import SceneConfig
from tinypred.errors import TinypredError


def test_round_trip_and_meta(small_dataset):
    ds = dataset.load(small_dataset)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1200, 300, 300)
    meta = json.loads((small_dataset / "meta.json").read_text())
    assert meta["schema_version"] == dataset.SCHEMA_VERSION and meta["seed"] == 7
    assert SceneConfig.model_validate(meta["config"]) == ds.config
    again = dataset.make(ds.config, 1200, 300, 300, seed=7)
    for name in ("history", "future", "alt_futures", "lanes", "pose"):
        np.testing.assert_array_equal(getattr(ds.test, name), getattr(again.test, name))
    np.testing.assert_array_equal(ds.normalizer.mean, again.normalizer.mean)
    assert not np.array_equal(ds.train.future[:300], ds.test.future)  # splits are different draws
    with np.load(small_dataset / "train.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def _copy(src, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value(arrays[key]) if callable(value) else value
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _nan(a):
    a = a.copy()
    a.flat[0] = np.nan
    return a


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "meta.json").unlink(), "meta.json: missing"),
        (lambda d: (d / "meta.json").write_text("{oops"), "not valid JSON"),
        (
            lambda d: (d / "meta.json").write_text(
                json.dumps({**json.loads((d / "meta.json").read_text()), "schema_version": 99})
            ),
            "schema_version 99",
        ),
        (lambda d: (d / "val.npz").unlink(), "val.npz: missing"),
        (
            lambda d: (d / "meta.json").write_text(
                json.dumps({**json.loads((d / "meta.json").read_text()), "counts": {"train": 9, "val": 300}})
            ),
            "field 'test' missing",
        ),
        (lambda d: shutil.copy(d / "train.npz", d / "test.npz"), "test.npz: holds 1200 scenes where"),
        (lambda d: shutil.copy(d / "val.npz", d / "train.npz"), "train.npz: holds 300 scenes where"),
        (lambda d: (d / "val.npz").write_bytes(b"PK\x03\x04 not really a zip"), "damaged"),
        (lambda d: (d / "test.npz").write_bytes((d / "test.npz").read_bytes()[:1000]), "damaged"),
        (lambda d: _rewrite(d / "train.npz", future=_nan), "'future' contains NaN"),
        (
            lambda d: _rewrite(d / "train.npz", lanes=lambda a: a.astype(np.float64)),
            "'lanes' has dtype float64",
        ),
        (lambda d: _rewrite(d / "train.npz", history=lambda a: a[:, :5]), "'history' has shape"),
        (lambda d: _rewrite(d / "train.npz", future=lambda a: a[:10]), "'future' has shape"),
        (lambda d: _rewrite(d / "train.npz", alt_mask=None), "'alt_mask' missing"),
        (lambda d: _rewrite(d / "train.npz", family=lambda a: a + 9), "'family'"),
        (lambda d: _rewrite(d / "train.npz", alt_probs=lambda a: a * 0.5), "rows summing to 1"),
        (lambda d: _rewrite(d / "train.npz", extra=np.zeros(3)), "unexpected arrays"),
        (lambda d: _rewrite(d / "train.npz", history=np.array([{"a": 1}] * 1200, dtype=object)), "damaged"),
    ],
)
def test_bad_files_are_refused(small_dataset, tmp_path, damage, message):
    d = _copy(small_dataset, tmp_path)
    damage(d)
    with pytest.raises(TinypredError, match=message) as info:
        dataset.load(d)
    assert "\n" not in str(info.value)


def test_bad_counts_and_directories(tmp_path):
    with pytest.raises(TinypredError, match="n_val: expected a count >= 0") as info:
        dataset.make(SceneConfig(), 10, -1, 5, 0)
    assert info.value.arg == "n_val"  # the library names its argument; only the CLI speaks of flags
    with pytest.raises(TinypredError, match="seed: expected an integer >= 0"):
        dataset.make(SceneConfig(), 10, 1, 1, -1)
    with pytest.raises(TinypredError, match="split: expected one of train, val, test"):
        dataset.make(SceneConfig(), 5, 0, 0, 0).split("dev")
    with pytest.raises(TinypredError, match="not a dataset directory"):
        dataset.load(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(TinypredError, match="not a directory"):
        dataset.save(dataset.make(SceneConfig(), 5, 0, 0, 0), tmp_path / "file")


def test_summary_counts(small_dataset):
    rows = dataset.summary(dataset.load(small_dataset))
    assert sum(r["count"] for r in rows if r["split"] == "train") == 1200
    assert all(r["alternatives"] == 1.0 for r in rows if not r["decision"])
