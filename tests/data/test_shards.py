"""Memory-mapped datasets: the same rows as in memory across shard boundaries (down to a last shard of
one sample), headers checked at once, values when read or by `data verify`, a bad shard named."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from tinypred.data import dataset
from tinypred.data.encoding import FEATURE_ARRAYS, EncodedScenes
from tinypred.data.scene_config import SceneConfig
from tinypred.data.shards import ShardedScenes
from tinypred.data.validate import MAX_AGENT_FRAME, MAX_WORLD, check_finite
from tinypred.errors import TinypredError

N_TRAIN, SHARD = 211, 30  # train shards: 7 of 30 and a last one of 1 sample


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded") / "ds"
    dataset.save(dataset.make(SceneConfig(), N_TRAIN, 40, 0, seed=5), out, shard_size=SHARD)
    return out


@pytest.fixture(scope="module")
def both(sharded):
    return dataset.load(sharded), dataset.load(sharded, mmap=True)


def _same(a: EncodedScenes, b: EncodedScenes) -> None:
    for name in EncodedScenes.array_names():
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_a_mapped_split_is_its_shards_and_reads_the_rows_of_the_split_in_memory(both, sharded):
    ram, mapped = both
    assert isinstance(mapped.train, ShardedScenes) and len(mapped.train) == N_TRAIN
    assert [len(s) for s in mapped.train.shards] == [30] * 7 + [1]
    assert isinstance(mapped.train.shards[0].history, np.memmap)  # nothing read yet
    assert str(mapped.train.where[7]).endswith("train/00007")
    assert len(mapped.test) == 0 and mapped.test.subset(slice(None)).history.shape[1:] == (20, 6)
    across = np.array([29, 30, 31, 209, 210, 0, 210, 59, 60])  # both sides of boundaries, the lone last
    _same(mapped.train.subset(across), ram.train.subset(across))
    _same(mapped.train.in_memory(), ram.train)
    assert mapped.shapes == ram.shapes and mapped.train.has_future
    assert dataset.fingerprint(mapped) == dataset.fingerprint(ram)  # the same dataset, however opened
    with pytest.raises(AttributeError, match=r"no whole 'future' array: read rows with \.subset"):
        mapped.train.future  # noqa: B018


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, N_TRAIN - 1), max_size=70))
def test_gathered_rows_are_the_rows_asked_for_in_their_order(both, idx):
    ram, mapped = both
    rows = mapped.train.gather(np.array(idx, np.int64), ("history", "future", "scenario_id"), check=True)
    for name, got in rows.items():
        np.testing.assert_array_equal(got, getattr(ram.train, name)[idx], err_msg=name)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["history", "pose"]),
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    where=st.floats(0, 1, exclude_max=True),
    bad=st.sampled_from([np.nan, np.inf, -np.inf, 2.0, -2.0, 1.0, -1.0]),
)
def test_check_finite_names_any_non_finite_or_too_large_value_and_passes_the_limit_itself(
    name, shape, where, bad
):
    """bad = +-1: exactly the limit (allowed); +-2: twice it; the value lands anywhere, the rest are fine."""
    limit = MAX_WORLD if name == "pose" else MAX_AGENT_FRAME
    a = np.zeros(shape, np.float32 if name == "history" else np.float64)
    a.reshape(-1)[int(where * a.size)] = bad * limit
    if abs(bad) == 1.0:
        check_finite("shard", {name: a, "flags": np.ones(3, bool)})
        return
    kind = "contains NaN or Inf" if not np.isfinite(bad) else "holds 2e\\+0[58], beyond"
    with pytest.raises(TinypredError, match=f"^shard: array '{name}' {kind}"):
        check_finite("shard", {"flags": np.ones(3, bool), name: a})


def _damage(src, tmp_path, shard: str, name: str = "history"):
    import shutil

    d = tmp_path / "ds"
    shutil.copytree(src, d)
    file = d / "train" / shard / f"{name}.npy"
    a = np.load(file)
    a[-1, 0, 0] = np.nan
    np.save(file, a)
    return d


def test_a_mapped_load_checks_headers_now_and_values_when_rows_are_read(sharded, tmp_path):
    d = _damage(sharded, tmp_path, "00003")
    mapped = dataset.load(d, mmap=True)  # the values are not read yet
    mapped.train.gather(np.arange(0, 90), check=True)  # shards 0-2: fine
    with pytest.raises(TinypredError, match=r"train/00003: array 'history' contains NaN or Inf") as info:
        mapped.train.gather(np.array([5, 119, 200]), check=True)
    assert "\n" not in str(info.value)
    with pytest.raises(TinypredError, match=r"train/00003: array 'history' contains NaN"):
        dataset.verify(d)
    with pytest.raises(TinypredError, match=r"train/00003: array 'history' contains NaN"):
        dataset.load(d)  # in memory: every value checked, as ever
    np.save(d / "train" / "00002" / "lanes.npy", np.zeros((30, 4, 16, 2), np.float64))
    with pytest.raises(TinypredError, match=r"train/00002: array 'lanes' has dtype float64"):
        dataset.load(d, mmap=True)  # a header is checked at once


def test_the_rows_a_batch_reads_are_checked_for_values_in_range_too(sharded, tmp_path):
    # An out-of-vocabulary lane type one-hot encodes as all zeros: a plain lane, silently, if unchecked.
    import shutil

    d = tmp_path / "ds"
    shutil.copytree(sharded, d)
    file = d / "train" / "00001" / "lane_type.npy"
    lane_type = np.load(file)
    lane_type[3, 1] = 42
    np.save(file, lane_type)
    mapped = dataset.load(d, mmap=True)
    inputs = (*FEATURE_ARRAYS, "future")  # what a training batch reads
    mapped.train.gather(np.array([0, 29, 30 + 4, 99]), inputs, check=True)  # not the bad row
    expected = r"train/00001: array 'lane_type': expected in \[0, 4\)"
    with pytest.raises(TinypredError, match=expected):
        mapped.train.gather(np.array([2, 30 + 3]), inputs, check=True)
    with pytest.raises(TinypredError, match=expected):
        dataset.verify(d)


def test_cli_verify_and_training_name_a_damaged_shard_in_one_line(sharded, tmp_path):
    good = run_cli("data", "verify", str(sharded), check=True)
    assert f"{N_TRAIN + 40} samples in 10 shards, every value checked" in good.stdout
    d = _damage(sharded, tmp_path, "00007", "future")  # the last shard, of one sample
    bad = run_cli("data", "verify", str(d))
    line = f"tinypred: error: {d}/train/00007: array 'future' contains NaN or Inf\n"
    assert bad.returncode == 1 and bad.stderr == line, bad.stderr
    args = ["--data", str(d), "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "64"]
    trained = run_cli("train", *args, "--mmap", "--set", "model.width=8", "--set", "model.depth=1")
    assert trained.returncode == 1 and trained.stderr == line, trained.stderr
