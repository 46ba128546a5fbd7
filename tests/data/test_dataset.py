"""Dataset directories: round trip, shards, whole-directory writes, and every kind of bad file refused
with a one-line error."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tinypred.data import dataset
from tinypred.data.encoding import EncodedScenes
from tinypred.data.scene_config import SceneConfig
from tinypred.data.scenes import CHUNK
from tinypred.data.store import DatasetWriter
from tinypred.data.validate import expected_arrays
from tinypred.errors import TinypredError


def test_round_trip_and_meta(small_dataset):
    ds = dataset.load(small_dataset)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1200, 300, 300)
    meta = json.loads((small_dataset / "meta.json").read_text())
    assert meta["schema_version"] == dataset.SCHEMA_VERSION and meta["seed"] == 7
    assert meta["source"] == "synthetic" and meta["has_future"] == {"train": True, "val": True, "test": True}
    assert meta["shapes"] == {"H": 20, "T": 30, "L": 4, "P": 16, "M": 4, "A": 3} == ds.shapes
    assert SceneConfig.model_validate(meta["config"]) == ds.config
    again = dataset.make(ds.config, 1200, 300, 300, seed=7)
    for name in EncodedScenes.array_names():
        np.testing.assert_array_equal(getattr(ds.test, name), getattr(again.test, name), err_msg=name)
    np.testing.assert_array_equal(ds.normalizer.mean, again.normalizer.mean)
    assert not np.array_equal(ds.train.future[:300], ds.test.future)  # splits are different draws
    assert len(set(ds.train.scenario_id) | set(ds.test.scenario_id)) == 1500  # ids unique across splits
    for file in small_dataset.rglob("*.npy"):  # plain arrays: nothing needs unpickling
        assert np.load(file, allow_pickle=False).dtype != object


def test_write_streams_the_dataset_make_builds_block_by_block(tmp_path):
    """`write` (what `tinypred data generate` runs) generates, encodes and writes a block at a time, with
    shards that straddle blocks, and gives the dataset `make` holds in memory."""
    n = CHUNK + 3  # two blocks of the train split
    dataset.write(SceneConfig(), n, 5, 0, seed=4, out=tmp_path / "ds", shard_size=10000, block=CHUNK)
    back = dataset.load(tmp_path / "ds")
    assert json.loads((tmp_path / "ds" / "meta.json").read_text())["splits"]["train"]["shards"] == [
        10000,
        10000,
        10000,
        2771,
    ]
    whole = dataset.make(SceneConfig(), n, 5, 0, seed=4, block=CHUNK)
    for split in dataset.SPLITS:
        for name in EncodedScenes.array_names():
            got, want = getattr(back.split(split), name), getattr(whole.split(split), name)
            np.testing.assert_array_equal(got, want, err_msg=f"{split}.{name}")
    np.testing.assert_array_equal(back.normalizer.mean, whole.normalizer.mean)
    np.testing.assert_array_equal(back.normalizer.std, whole.normalizer.std)
    assert dataset.meta_of(back) == dataset.meta_of(whole)
    # One block or two: the same samples, and the normaliser up to float32 rounding of its moments.
    one = dataset.make(SceneConfig(), n, 5, 0, seed=4)
    np.testing.assert_array_equal(one.train.history, whole.train.history)
    np.testing.assert_allclose(one.normalizer.std, whole.normalizer.std, rtol=1e-6)
    with pytest.raises(TinypredError, match=f"multiple of {CHUNK}"):
        dataset.make(SceneConfig(), 10, 1, 1, seed=0, block=1000)


def test_the_schema_names_every_array_a_split_holds():
    assert set(expected_arrays({k: 1 for k in "HTLPMA"})) == set(EncodedScenes.array_names())


def test_splits_are_written_in_shards_and_read_back_whole(tmp_path):
    ds = dataset.make(SceneConfig(), 250, 10, 0, seed=2)
    with DatasetWriter(tmp_path / "ds", shard_size=100) as writer:
        for lo in range(0, 250, 30):  # chunks that straddle shard boundaries
            writer.append("train", ds.train.subset(slice(lo, lo + 30)))
        writer.append("val", ds.val)
        writer.finish(dataset.meta_of(ds), dataset.SPLITS)
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert meta["splits"]["train"] == {"count": 250, "shards": [100, 100, 50]}
    assert meta["splits"]["test"] == {"count": 0, "shards": []}
    back = dataset.load(tmp_path / "ds")
    for name in EncodedScenes.array_names():
        np.testing.assert_array_equal(getattr(back.train, name), getattr(ds.train, name), err_msg=name)
    assert len(back.test) == 0 and back.test.history.shape[1:] == ds.train.history.shape[1:]


def test_a_rewrite_replaces_the_whole_directory_and_a_failed_one_changes_nothing(tmp_path):
    out = tmp_path / "ds"
    dataset.save(dataset.make(SceneConfig(), 40, 5, 5, seed=0), out)
    dataset.save(dataset.make(SceneConfig(), 30, 5, 5, seed=1), out)
    assert json.loads((out / "meta.json").read_text())["seed"] == 1 and len(dataset.load(out).train) == 30
    with pytest.raises(KeyError), DatasetWriter(out) as writer:
        writer.append("train", dataset.make(SceneConfig(), 10, 0, 0, seed=2).train)
        raise KeyError  # a failure halfway: the old dataset stays, and no temporary is left behind
    assert len(dataset.load(out).train) == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_a_killed_generation_leaves_the_old_dataset_or_none(tmp_path):
    out = tmp_path / "ds"
    dataset.save(dataset.make(SceneConfig(), 40, 5, 5, seed=0), out)
    code = (
        "from tinypred.data import dataset\nfrom tinypred.data.scene_config import SceneConfig\n"
        f"dataset.write(SceneConfig(), 150000, 5, 5, seed=1, out={str(out)!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".ds.tmp-") for p in tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)  # wait until the new dataset is being written
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((out / "meta.json").read_text())["seed"] == 0 and len(dataset.load(out).train) == 40
    dataset.save(dataset.make(SceneConfig(), 20, 5, 5, seed=3), out)  # the next write cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def _copy(src, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def _rewrite(d, name, value, split="train"):
    """Replace one array of the first shard of `split` with value(array) (None deletes the file)."""
    file = d / split / "00000" / f"{name}.npy"
    array = np.load(file, allow_pickle=False)
    if value is None:
        file.unlink()
    else:
        np.save(file, value(array) if callable(value) else value, allow_pickle=True)


def _meta(d, **changes):
    meta = json.loads((d / "meta.json").read_text())
    (d / "meta.json").write_text(json.dumps({**meta, **changes}))


def _set(index, value):
    def change(a):
        a = a.copy()
        a[index] = value
        return a

    return change


def _resize(file, change: int) -> None:
    """Cut `change` bytes off the end of a file (< 0), or append that many bytes of garbage."""
    data = file.read_bytes()
    file.write_bytes(data[:change] if change < 0 else data + b"\xab" * change)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "meta.json").unlink(), "meta.json: missing"),
        (lambda d: (d / "meta.json").write_text("{oops"), "not valid JSON"),
        (lambda d: _meta(d, schema_version=99), "schema_version 99"),
        (
            lambda d: _meta(d, schema_version=2),
            r"schema 2 \(one .npz per split\) is no longer read; regenerate",
        ),
        (lambda d: _meta(d, source="kaggle"), "field 'source'"),
        (lambda d: _meta(d, shapes={"H": 20}), "field 'shapes'"),
        (
            lambda d: _meta(d, splits={"train": {"count": 1200, "shards": [1200]}}),
            "field 'splits.val.shards'",
        ),
        (
            lambda d: _meta(d, counts={"train": 5, "val": 300, "test": 300}),
            r"'counts.train' is 5, its shards hold 1200",
        ),
        (
            lambda d: _meta(d, families=["intersection", "lane_change"]),
            "field 'families' is .* another tinypred version",
        ),
        (lambda d: _meta(d, counts=[1200, 300, 300]), r"'counts.train' is \[1200, 300, 300\], its shards"),
        (lambda d: _meta(d, counts={"train": 1200.0}), r"'counts.train' is 1200.0, its shards hold 1200"),
        (lambda d: _meta(d, object_types=None), "field 'object_types' is None, expected"),
        (lambda d: (d / "train" / "00001").mkdir(), r"train: unexpected \['00001'\] beside the 1 shards"),
        (lambda d: shutil.rmtree(d / "val"), "val/00000/history.npy: missing"),
        (
            lambda d: (d / "test" / "00000" / "future.npy").write_bytes(b"\x93NUMPY junk"),
            r"future.npy: not a .npy array \(its header is unreadable\)",
        ),
        (
            lambda d: _resize(d / "val" / "00000" / "lanes.npy", -100),
            r"lanes.npy: holds \d+ bytes where its header",
        ),
        (
            lambda d: _resize(d / "val" / "00000" / "lanes.npy", 64),
            r"\(float32 of shape \(\d+, 4, 16, 2\)\) needs",
        ),
        (lambda d: _resize(d / "val" / "00000" / "family.npy", -10), "family.npy: holds"),
        (lambda d: _rewrite(d, "history", lambda a: a[:10]), "holds 10 samples where meta.json says 1200"),
        (lambda d: _rewrite(d, "future", _set((0, 0, 0), np.nan)), "'future' contains NaN or Inf"),
        (lambda d: _rewrite(d, "history", _set((3, 2, 1), 3e38)), r"'history' holds 3e\+38, beyond 100000 m"),
        (lambda d: _rewrite(d, "lanes", lambda a: a.astype(np.float64)), "'lanes' has dtype float64"),
        (lambda d: _rewrite(d, "history", lambda a: a[:, :5]), "'history' has shape"),
        (lambda d: _rewrite(d, "alt_mask", None), "alt_mask.npy: missing"),
        (lambda d: _rewrite(d, "family", lambda a: a + 9), "'family'"),
        (lambda d: _rewrite(d, "history_mask", _set((4, -1), False)), "the last history step observed"),
        (lambda d: _rewrite(d, "neighbour_type", _set((2, 0), 3)), "'neighbour_type'"),
        (lambda d: _rewrite(d, "intent", _set(0, -1)), "'intent'"),
        (lambda d: _rewrite(d, "alt_probs", lambda a: a * 0.5), "rows summing to 1"),
        (lambda d: _rewrite(d, "scenario_id", lambda a: np.zeros(len(a))), "'scenario_id' has dtype float64"),
        (lambda d: np.save(d / "train" / "00000" / "extra.npy", np.zeros(3)), "unexpected files"),
        (
            lambda d: _rewrite(d, "history", np.array([{"a": 1}] * 1200, dtype=object)),
            r"history.npy: holds Python objects \(dtype object\); expected a plain array",
        ),
    ],
)
def test_bad_files_are_refused(small_dataset, tmp_path, damage, message):
    d = _copy(small_dataset, tmp_path)
    damage(d)
    with pytest.raises(TinypredError, match=message) as info:
        dataset.load(d)
    assert "\n" not in str(info.value)


def test_hidden_files_beside_the_shards_are_not_shards(small_dataset, tmp_path):
    d = _copy(small_dataset, tmp_path)
    (d / "train" / ".DS_Store").write_bytes(b"\0")  # what a copy from macOS leaves
    (d / "train" / "._00000").write_bytes(b"\0")  # ... or to exFAT
    assert len(dataset.load(d, mmap=True).train) == len(dataset.load(small_dataset, mmap=True).train)


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
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(TinypredError, match="not a tinypred dataset; refusing to replace it"):
        dataset.save(dataset.make(SceneConfig(), 5, 0, 0, 0), tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(
        TinypredError, match=r"1000000000015 scenes need about \d+\.\d GiB on disk; .* free"
    ) as info:
        dataset.write(SceneConfig(), 5, 10**12, 10, 0, tmp_path / "huge")  # refused before anything is made
    assert info.value.arg == "n_val" and not (tmp_path / "huge").exists()


def test_summary_counts(small_dataset):
    rows = dataset.summary(dataset.load(small_dataset))
    assert sum(r["count"] for r in rows if r["split"] == "train") == 1200
    single = [r for r in rows if not (r["decision"] or r["interactive"])]
    assert single and all(r["alternatives"] == 1.0 for r in single)
    # Only the interactive families have other agents: 1 to 2 of them (follow and merge have two).
    assert all(r["neighbours"] == 0.0 for r in rows if not r["interactive"])
    together = {r["family"]: r["neighbours"] for r in rows if r["interactive"] and r["split"] == "train"}
    assert set(together) == {"follow", "yield", "merge"} and together["yield"] == 1.0
    assert all(1.0 <= v <= 2.0 for v in together.values())
