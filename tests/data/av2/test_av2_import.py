"""Argoverse 2 import: scenario folders written by hand (pyarrow and json, see av2_fixtures) imported by
the real code, and the dataset it writes read back by `dataset.load`.

The standard scene sits at a rotated, shifted world pose; in the focal's frame its numbers are the local
ones of `av2_fixtures`. Shapes in most tests: H 10, T 20, L 4, P 5, M 8.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from av2_fixtures import LAST, Track, standard_tracks, write_scenario

from tinypred.data import dataset
from tinypred.data.av2.importer import REPORT, import_av2
from tinypred.data.av2.reader import read_scenario
from tinypred.data.encoding import EncodedScenes
from tinypred.data.scene_config import FAMILIES, LANE_TYPES, OBJECT_TYPES
from tinypred.errors import TinypredError
from tinypred.evaluation.tables import evaluate_scenes
from tinypred.predictors.baselines import fit_all

SHAPES = {"history": 10, "future": 20, "lanes": 4, "lane_points": 5, "neighbours": 8}
VEHICLE, PEDESTRIAN, CYCLIST = (OBJECT_TYPES.index(k) for k in ("vehicle", "pedestrian", "cyclist"))
LANE, STOP_LINE, BIKE, BUS = (LANE_TYPES.index(k) for k in ("lane", "stop_line", "bike_lane", "bus_lane"))


def _import(src: Path, out: Path, **kwargs) -> tuple[dataset.Dataset, dict]:
    report = import_av2(src, out, **{**SHAPES, **kwargs})
    assert json.loads((out / REPORT).read_text()) == json.loads(json.dumps(report))
    return dataset.load(out), report


@pytest.fixture(scope="module")
def one(tmp_path_factory) -> Path:
    """A split folder holding the standard scenario."""
    split = tmp_path_factory.mktemp("one") / "train"
    write_scenario(split, "s1")
    return split


@pytest.fixture(scope="module")
def focal(one, tmp_path_factory) -> dataset.Dataset:
    return _import(one, tmp_path_factory.mktemp("focal") / "ds", split="train")[0]


def test_a_focal_import_gives_the_agent_frame_arrays(focal):
    s = focal.train
    assert len(s) == 1 and len(focal.val) == len(focal.test) == 0
    assert (s.scenario_id[0], s.track_id[0], s.city[0]) == ("s1", "F", "PIT")
    assert (s.category[0], s.object_type[0]) == (3, VEHICLE)
    assert (s.family[0], s.intent[0]) == (FAMILIES.index("recorded"), -1)
    # Constant velocity along the heading: 10 m/s = 1 m per step behind, then ahead, on +x.
    past = np.stack(
        [np.arange(-9.0, 1.0), np.zeros(10), np.full(10, 10.0), np.zeros(10), np.zeros(10), np.ones(10)], -1
    )
    np.testing.assert_allclose(s.history[0], past, atol=1e-3)
    assert s.history_mask.all() and s.future_mask.all()
    np.testing.assert_allclose(s.future[0], np.stack([np.arange(1.0, 21.0), np.zeros(20)], -1), atol=1e-3)
    np.testing.assert_allclose(s.pose[0], [2500.0, -1300.0, 0.6], atol=1e-9)
    # The nearest map elements, nearest first: the own lane (its vertices 50 m away, its segment 0 m),
    # the left lane, the bike lane, then the crossing's midline across the road (its edges drawn opposite
    # ways), each 5 points equally spaced, endpoints included.
    x = np.linspace(-50.0, 50.0, 5)
    expected = [np.stack([x, np.full(5, y)], -1) for y in (0.0, 3.5, -4.0)]
    expected.append(np.stack([np.full(5, 20.0), np.linspace(-6.0, 6.0, 5)], -1))
    np.testing.assert_allclose(s.lanes[0], expected, atol=1e-3)
    assert s.lane_mask.all() and s.lane_type[0].tolist() == [LANE, LANE, BIKE, STOP_LINE]
    assert not s.lane_is_intersection.any()
    # Neighbours observed at the last step, nearest first; E and G are not (E ended, G too).
    assert s.neighbour_track_id[0].tolist() == ["A", "B", "C", "D", "H", "", "", ""]
    assert s.neighbour_type[0].tolist() == [VEHICLE, PEDESTRIAN, CYCLIST, VEHICLE, VEHICLE, -1, -1, -1]
    np.testing.assert_allclose(s.neighbours[0, 1, -1], [3.0, -8.0, 0.0, 0.0, 0.0, 1.0], atol=1e-3)
    np.testing.assert_allclose(s.neighbours[0, 4, -1, :3], [40.0, -3.5, 7.0], atol=1e-3)
    assert not s.neighbour_mask[0, 5:].any() and not s.neighbours[0, 5:].any()
    assert not s.alt_mask.any() and not s.alt_probs.any() and (s.alt_intent == -1).all()
    assert focal.source == "av2" and focal.dt == 0.1 and focal.config is None and focal.seed is None
    src = Path(focal.options.pop("src"))
    assert focal.options == {**SHAPES, "agents": "focal"} and src.is_absolute() and src.name == "train"


def test_more_lanes_reach_the_far_ones_and_the_given_centreline(one, tmp_path):
    ds, _ = _import(one, tmp_path / "ds", split="train", lanes=8)
    s = ds.train
    assert s.lane_mask[0].tolist() == [True] * 6 + [False] * 2 and not s.lanes[0, 6:].any()
    assert s.lane_type[0, 4:6].tolist() == [BUS, LANE]
    assert s.lane_is_intersection[0].tolist() == [False] * 5 + [True, False, False]
    np.testing.assert_allclose(
        s.lanes[0, 5], np.stack([np.linspace(60.0, 90.0, 5), np.zeros(5)], -1), atol=1e-3
    )


def test_gaps_and_late_starts_are_masked_never_interpolated(focal):
    s = focal.train
    a, c, d = 0, 2, 3  # neighbour slots: A (gap at 45-46), C (gaps at 40-44 and 47), D (starts at 45)
    window = np.arange(LAST - 9, LAST + 1)
    for slot, missing in ((a, [45, 46]), (c, [40, 41, 42, 43, 44, 47]), (d, [40, 41, 42, 43, 44])):
        seen = ~np.isin(window, missing)
        assert s.neighbour_mask[0, slot].tolist() == seen.tolist()
        assert not s.neighbours[0, slot, ~seen].any()  # zeros, not a line between the neighbours
    np.testing.assert_allclose(s.neighbours[0, c, 5:7, 0], [-14.0, -13.5], atol=1e-3)
    np.testing.assert_allclose(s.neighbours[0, c, 8:, 0], [-12.5, -12.0], atol=1e-3)


def test_scored_agents_become_samples_only_with_agents_scored(one, focal, tmp_path):
    ds, report = _import(one, tmp_path / "ds", split="train", agents="scored")
    s = ds.train
    assert s.track_id.tolist() == ["F", "A"] and s.category.tolist() == [3, 2]
    assert focal.train.track_id.tolist() == ["F"]
    # G ended at step 40; H misses step 55 of its future.
    assert report["skipped_targets"] == {
        "not observed at the last observed step": 1,
        "future not observed at every step": 1,
    }
    # A's own frame: it drives at 8 m/s along the same heading; its gap (steps 45-46) stays a gap.
    assert s.history_mask[1].tolist() == [True] * 5 + [False] * 2 + [True] * 3
    assert not s.history[1, 5:7].any()
    np.testing.assert_allclose(s.history[1, [0, 4, 9], 0], [-7.2, -4.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(s.future[1, :3, 0], [0.8, 1.6, 2.4], atol=1e-3)
    assert s.neighbour_track_id[1, :5].tolist() == ["F", "C", "B", "D", "H"]
    np.testing.assert_allclose(s.neighbours[1, 0, -1, :2], [5.0, -3.5], atol=1e-3)


def _broken_parquet(split: Path) -> None:
    folder = write_scenario(split, "bad")
    (folder / "scenario_bad.parquet").write_bytes(b"PAR1 this is not parquet")


def _without_map(split: Path) -> None:
    (write_scenario(split, "bad") / "log_map_archive_bad.json").unlink()


def _bad_map(split: Path) -> None:
    (write_scenario(split, "bad") / "log_map_archive_bad.json").write_text('{"drivable_areas": {}}')


def _set(column: str, row: int, value):
    def edit(columns):
        columns[column][row] = value

    return edit


FOCAL_LEAVES = [Track("F", (0.0, 0.0), (10.0, 0.0), category=3, steps=np.arange(40)), *standard_tracks()[1:]]
BAD = {
    "unreadable": (_broken_parquet, r"scenario_bad.parquet: unreadable parquet"),
    "no map": (_without_map, r"log_map_archive_bad.json: missing"),
    "bad map": (_bad_map, r"log_map_archive_bad.json: malformed map \(KeyError: 'lane_segments'\)"),
    "missing column": (dict(drop=("heading",)), r"column 'heading' missing"),
    "wrong dtype": (
        dict(types={"timestep": pa.float64()}),
        r"column 'timestep' has type double, expected int64",
    ),
    "string positions": (dict(types={"position_x": pa.string()}), r"column 'position_x' has type string"),
    "NaN position": (dict(edit=_set("position_y", 7, np.nan)), r"column 'position_y' holds NaN"),
    # A glitch of one row 200 km off: loading the dataset would refuse it whole (beyond 100 km of its agent)
    "far point": (
        dict(edit=_set("position_x", 60, 2e5)),
        r"bad: array 'future' holds [0-9.]+e\+05, beyond 100000 m",
    ),
    "no focal": (dict(focal_track_id="Z"), r"focal track 'Z' has no rows"),
    "focal not observed": (
        dict(tracks=FOCAL_LEAVES),
        r"focal track 'F' not observed at the last observed step 49",
    ),
    "duplicate rows": (dict(edit=_set("timestep", 1, 0)), r"track 'F' has 2 rows at timestep 0"),
    "timestep out of range": (dict(edit=_set("timestep", 3, 110)), r"timestep 110 outside 0..109"),
    "unknown type": (dict(edit=_set("object_type", 0, "spaceship")), r"unknown object_type 'spaceship'"),
    "other time step": (
        dict(edit=lambda c: c.update(end_timestamp=2 * c["end_timestamp"])),
        r"not the 0.1 s step",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_scenario_is_skipped_with_its_reason_or_with_strict_an_error(tmp_path, case):
    make, reason = BAD[case]
    split = tmp_path / "src"
    write_scenario(split, "good")
    make(split) if callable(make) else write_scenario(split, "bad", **make)
    ds, report = _import(split, tmp_path / "ds", split="train")
    assert len(ds.train) == 1
    assert report["splits"]["train"] == {"scenarios": 2, "imported": 1, "skipped": 1, "samples": 1}
    [skipped] = report["skipped"]
    assert (skipped["split"], skipped["scenario"]) == ("train", "bad") and "\n" not in skipped["reason"]
    assert re.search(reason, skipped["reason"]), skipped["reason"]
    with pytest.raises(TinypredError, match=reason) as info:
        import_av2(split, tmp_path / "strict", split="train", strict=True)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "src"]  # a failed import leaves nothing


def test_safe_column_variants_are_read(tmp_path):
    variants = {
        "timestep": pa.int32(),
        "position_x": pa.float32(),
        "track_id": pa.large_string(),
        "num_timestamps": pa.int32(),
    }
    write_scenario(tmp_path / "a", "s1")
    write_scenario(tmp_path / "b", "s1", types=variants)
    a, b = read_scenario(tmp_path / "a" / "s1"), read_scenario(tmp_path / "b" / "s1")
    assert a.track_ids.tolist() == b.track_ids.tolist() == list("ABCDEFGH")
    np.testing.assert_array_equal(a.valid, b.valid)
    np.testing.assert_allclose(a.positions, b.positions, atol=1e-3)  # float32 city coordinates: ~0.2 mm


def test_a_test_split_has_no_futures_and_cannot_be_evaluated(tmp_path):
    root = tmp_path / "av2"
    for i, pose in enumerate([(100.0, 50.0, 0.1), (-300.0, 20.0, 2.0), (5.0, 5.0, -1.0)]):
        write_scenario(root / "train", f"t{i}", pose=pose)
    write_scenario(root / "val", "v0", pose=(10.0, 10.0, 1.0))
    write_scenario(root / "test", "x0", num_timestamps=LAST + 1)
    ds, report = _import(root, tmp_path / "ds", agents="scored")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (6, 2, 3)  # H is a target of the test split
    assert not ds.test.future_mask.any() and not ds.test.future.any() and ds.val.future_mask.all()
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert meta["has_future"] == {"train": True, "val": True, "test": False}
    assert meta["shapes"] == {"H": 10, "T": 20, "L": 4, "P": 5, "M": 8, "A": 3}
    assert set(meta) == set(dataset.meta_of(ds)) | {"splits"}
    assert report["normalization"] == "fitted on the 6 training samples"
    baselines = fit_all(ds.train)
    assert "intent_mixture" not in baselines and "lane_follow" in baselines  # no mixture to read
    for baseline in baselines.values():
        assert np.isfinite(evaluate_scenes(baseline.predict(ds.val), ds.val)["all"]["minADE@6"])
        assert baseline.predict(ds.test).modes.shape[:1] == (3,)  # predicted, never scored
    with pytest.raises(TinypredError, match="futures of these samples are unknown"):
        evaluate_scenes(baselines["cv"].predict(ds.test), ds.test)


def test_a_scenario_unlike_its_split_in_having_a_future_is_skipped(tmp_path):
    # One scenario cut after its history in a train split (a copy interrupted, say) is skipped, not the
    # whole import; in a test split the first scenario says which kind the split is.
    for name in ("a", "c"):
        write_scenario(tmp_path / "src", name)
    write_scenario(tmp_path / "src", "b", num_timestamps=LAST + 1)
    ds, report = _import(tmp_path / "src", tmp_path / "ds", split="train")
    assert len(ds.train) == 2 and ds.train.has_future
    [skipped] = report["skipped"]
    assert skipped["scenario"] == "b"
    assert re.fullmatch(
        r".*src/b: has no future steps, unlike a train split's scenarios \(.*\)", skipped["reason"]
    )
    with pytest.raises(TinypredError, match="src/b: has no future steps"):
        import_av2(tmp_path / "src", tmp_path / "strict", split="train", strict=True)
    ds, report = _import(tmp_path / "src", tmp_path / "test", split="test")
    assert len(ds.test) == 2 and [s["scenario"] for s in report["skipped"]] == ["b"]
    assert (
        "has no future steps, unlike the first scenario of this test split, a"
        in report["skipped"][0]["reason"]
    )


def test_an_import_of_no_samples_or_of_a_root_as_one_split_is_an_error(tmp_path):
    write_scenario(tmp_path / "src" / "val", "a")
    with pytest.raises(TinypredError, match=r"src: holds train/, val/ or test/ folders, an AV2 root"):
        import_av2(tmp_path / "src", tmp_path / "ds", split="val")
    # Every scenario skipped (an option or a data problem they share): the error gives the reason.
    write_scenario(tmp_path / "one", "a", tracks=FOCAL_LEAVES)
    with pytest.raises(TinypredError, match=r"one: no samples imported; .*focal track 'F' not observed"):
        import_av2(tmp_path / "one", tmp_path / "ds", split="train")
    assert not (tmp_path / "ds").exists()


def test_without_training_samples_the_normaliser_is_the_identity(tmp_path):
    write_scenario(tmp_path / "av2" / "val", "v")
    ds, report = _import(tmp_path / "av2", tmp_path / "ds")
    assert len(ds.train) == 0 and len(ds.val) == 1 and "identity" in report["normalization"]
    assert (ds.normalizer.mean == 0).all() and (ds.normalizer.std == 1).all()


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """40 scenarios at random poses (three chunks of work)."""
    split = tmp_path_factory.mktemp("many") / "train"
    rng = np.random.default_rng(5)
    for i in range(40):
        write_scenario(split, f"m{i:02d}", pose=(*rng.uniform(-3000, 3000, 2), rng.uniform(-np.pi, np.pi)))
    return split


def test_the_worker_count_changes_nothing_and_progress_is_reported(many, tmp_path):
    calls = []
    one, r1 = _import(
        many, tmp_path / "w1", split="train", agents="scored", progress=lambda *a: calls.append(a)
    )
    two, r2 = _import(many, tmp_path / "w2", split="train", agents="scored", workers=2)
    assert len(one.train) == 80 and r1 == r2
    for name in EncodedScenes.array_names():
        np.testing.assert_array_equal(getattr(one.train, name), getattr(two.train, name), err_msg=name)
    np.testing.assert_array_equal(one.normalizer.mean, two.normalizer.mean)
    assert calls == [("train", 16, 40), ("train", 32, 40), ("train", 40, 40)]
    assert one.train.scene_id.tolist() == list(range(80))


def test_limit_takes_the_first_scenarios_in_sorted_order(many, tmp_path):
    ds, report = _import(many, tmp_path / "ds", split="train", limit=5)
    assert ds.train.scenario_id.tolist() == ["m00", "m01", "m02", "m03", "m04"]
    assert report["splits"]["train"]["scenarios"] == 5


@pytest.mark.parametrize(
    ("kwargs", "arg", "message"),
    [
        (dict(src="missing"), "src", "no such directory"),
        (dict(src="file"), "src", "not a directory"),
        (dict(src="empty"), "src", "no train/, val/ or test/ folder"),
        (dict(src="empty", split="train"), "src", "no scenario folders"),
        (dict(split="dev"), "split", "expected one of train, val, test"),
        (dict(agents="all"), "agents", "expected one of focal, scored"),
        (dict(history=0), "history", "expected an integer from 1 to 50"),
        (dict(history=51), "history", "AV2 observes 50 steps"),
        (dict(future=0), "future", "expected an integer from 1 to 60"),
        (dict(lane_points=1), "lane_points", ">= 2"),
        (dict(workers=0), "workers", ">= 1"),
        (dict(limit=0), "limit", ">= 1"),
    ],
)
def test_bad_arguments_name_their_argument(tmp_path, kwargs, arg, message):
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    write_scenario(tmp_path / "root" / "train", "s")
    kwargs = {"src": "root", **kwargs}
    with pytest.raises(TinypredError, match=message) as info:
        import_av2(tmp_path / kwargs.pop("src"), tmp_path / "ds", **kwargs)
    assert info.value.arg == arg
    assert not (tmp_path / "ds").exists()


def test_a_killed_import_leaves_no_output_directory(many, tmp_path):
    out = tmp_path / "ds"
    code = (
        "import time\nfrom tinypred.data.av2.importer import import_av2\n"
        f"import_av2({str(many)!r}, {str(out)!r}, split='train', progress=lambda *a: time.sleep(5))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".ds.tmp-") for p in tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)  # wait until the dataset is being written
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and any(p.name.startswith(".ds.tmp-") for p in tmp_path.iterdir())
    import_av2(many, out, split="train", limit=1)  # the next import cleans up after the killed one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
