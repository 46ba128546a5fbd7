"""Export to Argoverse 2 scenario folders, read back the way av2's own loaders read them.

`read_scenario` and `read_map` re-implement `load_argoverse_scenario_parquet` and
`ArgoverseStaticMap.from_json` (LaneSegment / DrivableArea / PedestrianCrossing.from_dict,
Polyline.from_json_data) literally: the same keys, the same enum values, the same grouping.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tinypred.data import dataset
from tinypred.data.av2.exporter import MANIFEST, export_av2
from tinypred.data.av2.schema import LANE_MARK_TYPES, LANE_TYPE_OF, SCENARIO_COLUMNS, scenario_files
from tinypred.data.encoding import encode, to_world
from tinypred.data.scene_config import LANE_TYPES, OBJECT_TYPES, SceneConfig
from tinypred.data.scenes import generate
from tinypred.errors import TinypredError

STOP_LINE = LANE_TYPES.index("stop_line")


def read_scenario(path: Path) -> dict:
    """As load_argoverse_scenario_parquet: tracks grouped by track_id (file order within a track), the
    scenario's fields from row 0, timestamps_ns = linspace(start, end, num)."""
    df = pq.read_table(path).to_pydict()
    col = {k: np.asarray(v) for k, v in df.items()}
    tracks = {}
    for track_id in np.unique(col["track_id"]):
        rows = col["track_id"] == track_id
        tracks[str(track_id)] = {
            "object_type": str(col["object_type"][rows][0]),
            "category": int(col["object_category"][rows][0]),
            "observed": col["observed"][rows],
            "timestep": col["timestep"][rows],
            "position": np.stack([col["position_x"][rows], col["position_y"][rows]], -1),
            "heading": col["heading"][rows],
            "velocity": np.stack([col["velocity_x"][rows], col["velocity_y"][rows]], -1),
        }
    return {
        "scenario_id": df["scenario_id"][0],
        "focal_track_id": df["focal_track_id"][0],
        "city_name": df["city"][0],
        "timestamps_ns": np.linspace(
            df["start_timestamp"][0], df["end_timestamp"][0], num=df["num_timestamps"][0]
        ),
        "tracks": tracks,
    }


def polyline(json_data: list) -> np.ndarray:
    """Polyline.from_json_data: Point(x=v["x"], y=v["y"], z=v["z"]) per waypoint."""
    return np.array([(v["x"], v["y"], v["z"]) for v in json_data], float)


def read_map(path: Path) -> dict:
    """As ArgoverseStaticMap.from_json, with the from_dict of each element and enum checks."""
    log_id = path.stem.split("log_map_archive_")[1]
    data = json.loads(path.read_text())
    areas = {}
    for da in data["drivable_areas"].values():
        points = [(v["x"], v["y"], v["z"]) for v in da["area_boundary"]]
        areas[da["id"]] = np.array([*points, points[0]])
    lanes = {}
    for ls in data["lane_segments"].values():
        assert ls["lane_type"] in LANE_TYPE_OF  # LaneType(...)
        assert ls["left_lane_mark_type"] in LANE_MARK_TYPES and ls["right_lane_mark_type"] in LANE_MARK_TYPES
        lanes[ls["id"]] = {
            "is_intersection": ls["is_intersection"],
            "lane_type": ls["lane_type"],
            "right": polyline(ls["right_lane_boundary"]),
            "left": polyline(ls["left_lane_boundary"]),
            "right_mark": ls["right_lane_mark_type"],
            "left_mark": ls["left_lane_mark_type"],
            "right_neighbor_id": ls["right_neighbor_id"],
            "left_neighbor_id": ls["left_neighbor_id"],
            "predecessors": ls["predecessors"],
            "successors": ls["successors"],
            "centerline": polyline(ls["centerline"]),
        }
    crossings = {
        pc["id"]: (polyline(pc["edge1"]), polyline(pc["edge2"]))
        for pc in data["pedestrian_crossings"].values()
    }
    # Beyond the loaders: keys are the str of unique int ids, links point at lane segments.
    for group in ("drivable_areas", "lane_segments", "pedestrian_crossings"):
        for key, value in data[group].items():
            assert isinstance(value["id"], int) and key == str(value["id"])
    ids = [*areas, *lanes, *crossings]
    assert len(set(ids)) == len(ids)
    for ls in lanes.values():
        assert isinstance(ls["is_intersection"], bool)
        for other in (
            *ls["predecessors"],
            *ls["successors"],
            ls["left_neighbor_id"],
            ls["right_neighbor_id"],
        ):
            assert other is None or other in lanes
    return {
        "log_id": log_id,
        "drivable_areas": areas,
        "lane_segments": lanes,
        "pedestrian_crossings": crossings,
    }


def wrapped(a: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * a))


def unit_left(d: np.ndarray) -> np.ndarray:
    """The left normals of directions d (..., 2)."""
    return np.stack([-d[..., 1], d[..., 0]], -1) / np.linalg.norm(d, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def exported(small_dataset, tmp_path_factory):
    ds = dataset.load(small_dataset)
    out = tmp_path_factory.mktemp("av2") / "test"
    return ds.test, out, export_av2(ds, out, "test")


def test_one_folder_per_scenario_with_the_exact_columns_and_dtypes(exported):
    enc, out, summary = exported
    ids = set(enc.scenario_id.tolist())
    assert {p.name for p in out.iterdir() if p.is_dir()} == ids
    others = int(enc.neighbour_mask.any(-1).sum())  # the interactive scenes' other agents, a track each
    assert others > 0 and summary["split"] == "test"
    assert summary["scenarios"] == len(ids) and summary["tracks"] == len(ids) + others
    assert json.loads((out / MANIFEST).read_text())["scenarios"] == len(ids)
    for sid in ids:
        assert sorted(p.name for p in (out / sid).iterdir()) == sorted(scenario_files(sid))
        assert pq.read_schema(out / sid / scenario_files(sid)[0]).equals(pa.schema(SCENARIO_COLUMNS))


def test_scenarios_read_back_in_the_city_frame(exported):
    enc, out, _ = exported
    h, t, dt = enc.history.shape[1], enc.future.shape[1], enc.dt
    hist = to_world(enc.history[..., :2], enc.pose)
    fut = to_world(enc.future, enc.pose)
    c, s = np.cos(enc.pose[:, 2])[:, None], np.sin(enc.pose[:, 2])[:, None]
    vx, vy = enc.history[..., 2].astype(float), enc.history[..., 3].astype(float)
    hist_vel = np.stack([c * vx - s * vy, s * vx + c * vy], -1)
    hist_heading = np.arctan2(enc.history[..., 4], enc.history[..., 5]) + enc.pose[:, 2:3]
    step = np.diff(np.concatenate([hist[:, -1:], fut], 1), axis=1)
    nb_hist = to_world(enc.neighbours[..., :2], enc.pose)
    nb_fut = to_world(enc.neighbour_future, enc.pose)
    for i in range(len(enc)):
        sid = enc.scenario_id[i]
        sc = read_scenario(out / sid / scenario_files(sid)[0])
        assert sc["scenario_id"] == sid and sc["focal_track_id"] == "focal" and sc["city_name"] == "synthetic"
        np.testing.assert_allclose(sc["timestamps_ns"], np.arange(h + t) * dt * 1e9)
        track = sc["tracks"]["focal"]
        assert len(sc["tracks"]) == 1 + enc.neighbour_mask[i].any(-1).sum()
        assert track["category"] == 3 and track["object_type"] == OBJECT_TYPES[enc.object_type[i]]
        np.testing.assert_array_equal(track["timestep"], np.arange(h + t))
        np.testing.assert_array_equal(track["observed"], np.arange(h + t) < h)
        np.testing.assert_allclose(track["position"], np.concatenate([hist[i], fut[i]]), atol=1e-3)
        np.testing.assert_allclose(track["velocity"][:h], hist_vel[i], atol=1e-4)
        np.testing.assert_allclose(track["velocity"][h:], step[i] / dt, atol=1e-4)
        np.testing.assert_allclose(wrapped(track["heading"][:h] - hist_heading[i]), 0, atol=1e-5)
        assert np.all((track["heading"] > -np.pi) & (track["heading"] <= np.pi))
        moving = np.linalg.norm(step[i], axis=-1) > 1e-2
        direction = np.arctan2(step[i][moving, 1], step[i][moving, 0])
        np.testing.assert_allclose(wrapped(track["heading"][h:][moving] - direction), 0, atol=1e-4)
        for m in np.flatnonzero(enc.neighbour_mask[i].any(-1)):  # the neighbours, past and future
            other = sc["tracks"][enc.neighbour_track_id[i, m]]
            assert other["category"] == 1 and len(other["timestep"]) == h + t
            np.testing.assert_allclose(other["position"][:h], nb_hist[i, m], atol=1e-3)
            np.testing.assert_allclose(other["position"][h:], nb_fut[i, m], atol=1e-3)


def test_maps_read_back_with_every_key_and_the_lanes_of_the_dataset(exported):
    enc, out, summary = exported
    world = to_world(enc.lanes, enc.pose)
    n_lanes = n_dashed = 0
    for i in range(len(enc)):
        sid = enc.scenario_id[i]
        m = read_map(out / sid / scenario_files(sid)[1])
        assert m["log_id"] == sid
        kinds = enc.lane_type[i][enc.lane_mask[i]]
        lines = world[i][enc.lane_mask[i]]
        lanes = list(m["lane_segments"].values())
        assert len(lanes) == np.sum(kinds != STOP_LINE) and len(m["drivable_areas"]) == len(lanes)
        for ls, centre, kind in zip(lanes, lines[kinds != STOP_LINE], kinds[kinds != STOP_LINE], strict=True):
            assert LANE_TYPE_OF[ls["lane_type"]] == LANE_TYPES[kind]
            np.testing.assert_allclose(ls["centerline"][:, :2], centre, atol=1e-3)
            for side, sign in (("left", 1), ("right", -1)):
                offset = ls[side][:, :2] - ls["centerline"][:, :2]
                np.testing.assert_allclose(np.linalg.norm(offset, axis=-1), 1.75, atol=1e-9)
                # Across the direction of travel, on its own side of it.
                tangent = np.gradient(ls["centerline"][:, :2], axis=0)
                np.testing.assert_allclose(np.sum(offset * unit_left(tangent), -1), sign * 1.75, atol=1e-6)
            assert np.all(ls["centerline"][:, 2] == 0)
            for side, other in (("left", "right"), ("right", "left")):
                neighbour = ls[f"{side}_neighbor_id"]
                assert ls[f"{side}_mark"] == ("SOLID_WHITE" if neighbour is None else "DASHED_WHITE")
                if neighbour is not None:
                    n_dashed += 1
                    np.testing.assert_allclose(ls[side], m["lane_segments"][neighbour][other], atol=1e-2)
        for area, ls in zip(m["drivable_areas"].values(), lanes, strict=True):
            np.testing.assert_array_equal(area[:-1], np.concatenate([ls["left"], ls["right"][::-1]]))
        # A stop line is the midline of its crossing's two edges, 1.5 m either side.
        crossings = list(m["pedestrian_crossings"].values())
        assert len(crossings) == np.sum(kinds == STOP_LINE)
        for (edge1, edge2), line in zip(crossings, lines[kinds == STOP_LINE], strict=True):
            assert edge1.shape == edge2.shape == (2, 3)
            mid = (edge1[:, :2] + edge2[:, :2]) / 2
            resampled = mid[0] + np.linspace(0, 1, len(line))[:, None] * (mid[1] - mid[0])
            np.testing.assert_allclose(resampled, line, atol=1e-3)
            np.testing.assert_allclose(np.linalg.norm(edge2 - edge1, axis=-1), 3.0, atol=1e-9)
        n_lanes += len(lanes)
    assert n_lanes == summary["lane_segments"] and n_dashed > 0  # lane-change scenes share boundaries


def test_a_second_export_replaces_the_first_and_a_foreign_directory_is_refused(tmp_path):
    ds = dataset.make(SceneConfig(), 4, 3, 2, seed=3)
    out = tmp_path / "av2"
    export_av2(ds, out, "val")
    (out / "stray.txt").write_text("left by a user")
    summary = export_av2(ds.test, out)
    assert {p.name for p in out.iterdir()} == {*ds.test.scenario_id.tolist(), MANIFEST}
    assert summary["scenarios"] == 2 and summary["out"] == str(out) and summary["split"] is None
    assert not [p for p in tmp_path.iterdir() if p.name != "av2"]  # no temporary left beside it

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    (foreign / MANIFEST).write_text('{"format": "something else"}')
    for target in (foreign, foreign / "notes.txt"):
        with pytest.raises(TinypredError) as e:
            export_av2(ds, target, "test")
        assert e.value.arg == "out" and "not an AV2 export" in str(e.value)
    assert sorted(p.name for p in foreign.iterdir()) == sorted(["notes.txt", MANIFEST])
    assert (foreign / "notes.txt").read_text() == "keep me"
    for split in ("dev", None):  # a dataset's split must be named
        with pytest.raises(TinypredError) as e:
            export_av2(ds, tmp_path / "new", split)
        assert e.value.arg == "split" and not (tmp_path / "new").exists()


# ----------------------------------------------------------------------------------------------------
# A hand-built world: scenarios of several samples, neighbours, gaps, shared lanes


CFG = SceneConfig(history_steps=6, future_steps=5, max_lanes=4, lane_points=5, max_neighbours=2)
H, T = CFG.history_steps, CFG.future_steps


def line(a, b, p=CFG.lane_points) -> np.ndarray:
    return np.asarray(a, float) + np.linspace(0, 1, p)[:, None] * (np.asarray(b, float) - a)


def hand_built():
    """Scenario s0: focal A and scored bus B (seen from step 2, a gap in its future), neighbour C seen by
    both, B seen by A (a target: no second track); A's lanes a, b (a's successor), c (a's left
    neighbour) and a stop line, B's lanes a again (a duplicate) and d. Scenario s1: focal A, stopping."""
    sc = generate(CFG, 3, 11)
    n, m = 3, CFG.max_neighbours
    lanes = np.zeros((n, CFG.max_lanes, CFG.lane_points, 2))
    lane_mask = np.zeros((n, CFG.max_lanes), bool)
    lane_type = np.zeros((n, CFG.max_lanes), np.int8)
    lanes[0, :4] = [
        line((0, 0), (40, 0)),
        line((40, 0), (80, 0)),
        line((0, 3.5), (40, 3.5)),
        line((50, -2), (50, 2)),
    ]
    lane_mask[0] = True
    lane_type[0, 3] = STOP_LINE
    lanes[1, :2] = [line((0, 0), (40, 0)), line((0, 20), (0, 60))]
    lane_mask[1, :2] = True
    lanes[2, 0] = line((100, 100), (100, 140))
    lane_mask[2, 0] = True
    lane_type[2, 0] = LANE_TYPES.index("bike_lane")

    neighbours = np.zeros((n, m, H, 5))
    neighbour_mask = np.zeros((n, m, H), bool)
    neighbours[0, 0], neighbours[0, 1] = sc.history[1], sc.history[2] + [5, 5, 0, 0, 0]
    neighbours[1, 0] = neighbours[0, 1]
    neighbour_mask[0, 0, 2:] = True
    neighbour_mask[0, 1, 2:] = neighbour_mask[1, 0, 2:] = True
    neighbour_type = np.array([[0, 1], [1, -1], [-1, -1]], np.int8)
    neighbour_track_id = np.array([["B", "C"], ["C", ""], ["", ""]])

    history_mask = np.ones((n, H), bool)
    history_mask[1, :2] = False
    future_mask = np.ones((n, T), bool)
    future_mask[1, 2] = False
    future = sc.future.copy()
    future[2] = sc.history[2, -1, :2]  # s1's agent stands still
    world = replace(
        sc,
        history=sc.history * history_mask[..., None],
        history_mask=history_mask,
        future=future,
        future_mask=future_mask,
        lanes=lanes.astype(np.float32),
        lane_mask=lane_mask,
        lane_type=lane_type,
        neighbours=neighbours,
        neighbour_mask=neighbour_mask,
        neighbour_type=neighbour_type,
        neighbour_track_id=neighbour_track_id,
        scenario_id=np.array(["s0", "s0", "s1"]),
        track_id=np.array(["A", "B", "A"]),
        city=np.array(["austin", "austin", "miami"]),
        category=np.array([3, 2, 3], np.int8),
        object_type=np.array([0, 4, 3], np.int8),
    )
    return world, encode(world)


def test_a_scenario_of_several_samples_neighbours_and_a_shared_map(tmp_path):
    world, enc = hand_built()
    summary = export_av2(enc, tmp_path / "out", "val")
    assert (summary["scenarios"], summary["tracks"], summary["lane_segments"]) == (2, 4, 5)
    assert summary["pedestrian_crossings"] == 1

    s0 = read_scenario(tmp_path / "out" / "s0" / "scenario_s0.parquet")
    assert (
        s0["focal_track_id"] == "A" and s0["city_name"] == "austin" and set(s0["tracks"]) == {"A", "B", "C"}
    )
    np.testing.assert_allclose(s0["timestamps_ns"], np.arange(H + T) * 1e8)
    a, b, c = (s0["tracks"][k] for k in "ABC")
    assert (a["category"], b["category"], c["category"]) == (3, 2, 1)
    assert (a["object_type"], b["object_type"], c["object_type"]) == ("vehicle", "bus", "pedestrian")
    np.testing.assert_array_equal(b["timestep"], [2, 3, 4, 5, 6, 7, 9, 10])
    np.testing.assert_array_equal(c["timestep"], [2, 3, 4, 5])
    assert c["observed"].all() and list(b["observed"]) == [True] * 4 + [False] * 4
    np.testing.assert_allclose(b["position"][:4], world.history[1, 2:, :2], atol=1e-3)
    np.testing.assert_allclose(b["position"][4:], world.future[1][[0, 1, 3, 4]], atol=1e-3)
    np.testing.assert_allclose(c["position"], world.neighbours[0, 1, 2:, :2], atol=1e-3)
    np.testing.assert_allclose(c["velocity"], world.neighbours[0, 1, 2:, 3:5], atol=1e-3)
    np.testing.assert_allclose(wrapped(c["heading"] - world.neighbours[0, 1, 2:, 2]), 0, atol=1e-5)
    np.testing.assert_allclose(wrapped(a["heading"][:H] - world.history[0, :, 2]), 0, atol=1e-5)
    # Across the gap, the velocity is the displacement over the two steps it took.
    np.testing.assert_allclose(b["velocity"][6], (world.future[1, 3] - world.future[1, 1]) / 0.2, atol=2e-3)

    s1 = read_scenario(tmp_path / "out" / "s1" / "scenario_s1.parquet")
    (a1,) = s1["tracks"].values()
    assert a1["object_type"] == "cyclist"
    np.testing.assert_allclose(a1["velocity"][H:], 0, atol=1e-3)  # standing still, heading kept
    np.testing.assert_allclose(wrapped(a1["heading"][H:] - world.history[2, -1, 2]), 0, atol=1e-5)

    m = read_map(tmp_path / "out" / "s0" / "log_map_archive_s0.json")
    starts = {int(k): tuple(np.round(v["centerline"][0, :2], 2)) for k, v in m["lane_segments"].items()}
    ids = {start: k for k, start in starts.items()}
    assert len(starts) == 4  # lane a once
    la, lb, lc = ids[(0, 0)], ids[(40, 0)], ids[(0, 3.5)]
    lanes = m["lane_segments"]
    assert lanes[la]["successors"] == [lb] and lanes[lb]["predecessors"] == [la]
    assert lanes[la]["left_neighbor_id"] == lc and lanes[lc]["right_neighbor_id"] == la
    assert (lanes[la]["left_mark"], lanes[la]["right_mark"]) == ("DASHED_WHITE", "SOLID_WHITE")
    assert lanes[lc]["right_mark"] == "DASHED_WHITE"
    ((edge1, edge2),) = m["pedestrian_crossings"].values()
    np.testing.assert_allclose((edge1 + edge2)[:, :2] / 2, [(50, -2), (50, 2)], atol=1e-3)
    np.testing.assert_allclose(edge1[:, 0], 51.5, atol=1e-3)  # right of the line's direction (+y)
    m1 = read_map(tmp_path / "out" / "s1" / "log_map_archive_s1.json")
    assert [v["lane_type"] for v in m1["lane_segments"].values()] == ["BIKE"]


def test_a_split_without_futures_ends_with_the_history_and_the_targets_are_checked(tmp_path):
    _, enc = hand_built()
    export_av2(replace(enc, future_mask=np.zeros_like(enc.future_mask)), tmp_path / "t")
    sc = read_scenario(tmp_path / "t" / "s1" / "scenario_s1.parquet")
    assert len(sc["timestamps_ns"]) == H and sc["timestamps_ns"][-1] == (H - 1) * 1e8
    assert all(track["observed"].all() for track in sc["tracks"].values())
    for category, found in (([3, 3, 3], 2), ([2, 2, 3], 0)):
        with pytest.raises(TinypredError) as e:
            export_av2(replace(enc, category=np.array(category, np.int8)), tmp_path / "bad")
        assert e.value.arg == "dataset" and f"'s0' has {found} focal samples" in str(e.value)
        assert not (tmp_path / "bad").exists()
    with pytest.raises(TinypredError, match="scenario 's0' has track 'A' as the target of two samples"):
        export_av2(replace(enc, track_id=np.array(["A", "A", "A"])), tmp_path / "bad")
