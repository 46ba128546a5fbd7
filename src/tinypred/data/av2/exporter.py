"""Any dataset split as Argoverse 2 scenario folders, for tools that read AV2 (and for our importer).

`export_av2` writes ``out/<id>/scenario_<id>.parquet`` and ``out/<id>/log_map_archive_<id>.json`` for
every scenario of a split, the whole directory at once (`atomic_directory`), plus a manifest
(`MANIFEST`) that marks the directory as ours: only such a directory is ever replaced.

The scenario: every sample is a target track (its observed history, then its known future), every
neighbour slot a track of its own (observed history only, unscored) unless that track is a target.
All in the city (world) frame: the agent frame undone with the sample's pose. The future has no
recorded heading or velocity: both come from finite differences of the positions.

The map: the union of the scenario's samples' map elements, each lane a lane segment whose boundaries
lie half a lane width either side of its centre-line, each stop line a pedestrian crossing whose two
edges lie either side of it (their midline is the line), one drivable area per lane segment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tinypred.data.av2.schema import (
    AV2_LANE_TYPE,
    CROSSING,
    FOCAL_TRACK,
    SCENARIO_COLUMNS,
    SPLITS,
    UNSCORED_TRACK,
    scenario_files,
)
from tinypred.data.dataset import Dataset
from tinypred.data.encoding import EncodedScenes, rotate_vectors, to_world
from tinypred.data.scene_config import LANE_TYPES, OBJECT_TYPES
from tinypred.errors import TinypredError
from tinypred.fileio import atomic_directory, write_json
from tinypred.geometry import as_complex, as_points, wrap_angle

MANIFEST = "tinypred_av2_export.json"  # marks a directory as an export of ours (and says what it holds)
FORMAT = "tinypred-av2-export"
HALF_LANE = 1.75  # m: lane boundaries lie this far either side of the centre-line
HALF_CROSSING = 1.5  # m: a crossing's edges lie this far either side of its line
SAME = 1e-3  # m: two map elements this close at every point are one (seen from two samples' frames)
TOUCH = 0.1  # m: a boundary shared with a neighbour; an end that meets a start
STILL = 1e-3  # m: a displacement this small has no direction; the heading before it is kept


def export_av2(data: Dataset | EncodedScenes, out: str | Path, split: str | None = None) -> dict[str, Any]:
    """Write the samples `data` (a split's; or of a dataset, its split `split`) to directory `out` as AV2
    scenario folders, replacing an earlier export there. `split` names the split in the manifest.
    Returns the summary the manifest holds: split, scenarios, tracks, lane_segments,
    pedestrian_crossings, dt; and out."""
    if split not in (*SPLITS, *((None,) if isinstance(data, EncodedScenes) else ())):
        raise TinypredError(f"expected one of {', '.join(SPLITS)}, got {split!r}", arg="split")
    enc = data.split(split) if isinstance(data, Dataset) else data
    out = Path(out)
    if out.exists() and not is_export(out):
        raise TinypredError(
            f"{out} exists and is not an AV2 export of tinypred's (no {MANIFEST}); remove it or choose "
            "another directory",
            arg="out",
        )
    groups = list(_scenarios(enc))
    # A test split knows no futures: its scenarios end with the history (AV2's test files do too).
    has_future = bool(enc.future_mask.any())
    summary: dict[str, Any] = {
        "split": split,
        "scenarios": len(groups),
        "tracks": 0,
        "lane_segments": 0,
        "pedestrian_crossings": 0,
        "dt": enc.dt,
    }
    with atomic_directory(out, is_export) as tmp:
        for scenario_id, rows in groups:
            samples = enc.subset(rows)
            folder = tmp / scenario_id
            folder.mkdir()
            parquet_name, map_name = scenario_files(scenario_id)
            table = scenario_table(samples, has_future)
            pq.write_table(table, folder / parquet_name)
            static_map = map_archive(samples)
            with open(folder / map_name, "w") as f:
                json.dump(static_map, f)
            summary["tracks"] += pc.count_distinct(table["track_id"]).as_py()
            summary["lane_segments"] += len(static_map["lane_segments"])
            summary["pedestrian_crossings"] += len(static_map["pedestrian_crossings"])
        write_json(tmp / MANIFEST, {"format": FORMAT, **summary})
    return {**summary, "out": str(out)}


def is_export(path: Path) -> bool:
    """`path` is a directory `export_av2` wrote (its manifest says so)."""
    try:
        return json.loads((path / MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _scenarios(enc: EncodedScenes) -> list[tuple[str, np.ndarray]]:
    """(scenario id, its sample indices) per scenario, sorted by id; each has exactly one focal sample
    and no track targeted twice."""
    unique, inverse = np.unique(enc.scenario_id, return_inverse=True)
    ids = unique.tolist()
    for sid in ids:
        if sid in ("", ".", "..") or "/" in sid or "\\" in sid:
            raise TinypredError(f"scenario id {sid!r} cannot name a folder", arg="dataset")
    focal = np.bincount(inverse, weights=enc.category == FOCAL_TRACK, minlength=len(ids))
    bad = np.flatnonzero(focal != 1)
    if len(bad):
        raise TinypredError(
            f"scenario {ids[bad[0]]!r} has {int(focal[bad[0]])} focal samples (category "
            f"{FOCAL_TRACK}); AV2 needs exactly one",
            arg="dataset",
        )
    if not ids:
        return []
    pairs, counts = np.unique(np.stack([enc.scenario_id, enc.track_id], 1), axis=0, return_counts=True)
    if np.any(counts > 1):  # one track, two samples: its rows would be written twice
        sid, tid = pairs[np.argmax(counts > 1)].tolist()
        raise TinypredError(f"scenario {sid!r} has track {tid!r} as the target of two samples", arg="dataset")
    bounds = np.cumsum(np.bincount(inverse))[:-1]
    return list(zip(ids, np.split(np.argsort(inverse, kind="stable"), bounds), strict=True))


# ----------------------------------------------------------------------------------------------------
# The scenario parquet


def scenario_table(enc: EncodedScenes, has_future: bool) -> pa.Table:
    """One scenario's samples (S of them) -> its rows, columns and dtypes exactly SCENARIO_COLUMNS.
    Targets first (sample order, history then future), then the neighbours' tracks; each by timestep."""
    h, t = enc.history.shape[1], enc.future.shape[1]
    hist_xy, hist_heading, hist_vel = _world_states(enc.history, enc.pose)
    fut_xy = to_world(enc.future, enc.pose)
    fut_heading, fut_vel = _finite_differences(
        hist_xy[:, -1], hist_heading[:, -1], fut_xy, enc.future_mask, enc.dt
    )
    xy = np.concatenate([hist_xy, fut_xy], 1)
    heading = np.concatenate([hist_heading, fut_heading], 1)
    vel = np.concatenate([hist_vel, fut_vel], 1)
    sample, step = np.nonzero(np.concatenate([enc.history_mask, enc.future_mask], 1))

    # Each neighbour track once (the first sample that sees it), and never a track that is a target.
    slot_sample, slot = np.nonzero(enc.neighbour_mask.any(-1))
    slot_ids = enc.neighbour_track_id[slot_sample, slot]
    _, first = np.unique(slot_ids, return_index=True)
    first = np.sort(first[~np.isin(slot_ids[first], enc.track_id)])
    slot_sample, slot, slot_ids = slot_sample[first], slot[first], slot_ids[first]
    n_xy, n_heading, n_vel = _world_states(enc.neighbours[slot_sample, slot], enc.pose[slot_sample])
    n_seen = enc.neighbour_mask[slot_sample, slot]
    if has_future:  # their futures too, as a recorded scenario has them
        nf_xy = to_world(enc.neighbour_future[slot_sample, slot], enc.pose[slot_sample])
        nf_seen = enc.neighbour_future_mask[slot_sample, slot]
        nf_heading, nf_vel = _finite_differences(n_xy[:, -1], n_heading[:, -1], nf_xy, nf_seen, enc.dt)
        n_xy, n_heading = np.concatenate([n_xy, nf_xy], 1), np.concatenate([n_heading, nf_heading], 1)
        n_vel, n_seen = np.concatenate([n_vel, nf_vel], 1), np.concatenate([n_seen, nf_seen], 1)
    track, n_step = np.nonzero(n_seen)

    types = np.array(OBJECT_TYPES)
    steps = np.concatenate([step, n_step])
    num_timestamps = h + t if has_future else h
    n_rows = len(steps)
    scenario = {
        "scenario_id": enc.scenario_id[0],
        "start_timestamp": 0.0,
        "end_timestamp": (num_timestamps - 1) * enc.dt * 1e9,  # ns
        "num_timestamps": num_timestamps,
        "focal_track_id": enc.track_id[enc.category == FOCAL_TRACK][0],
        "city": enc.city[0],
    }
    columns = {
        "observed": steps < h,
        "track_id": np.concatenate([enc.track_id[sample], slot_ids[track]]),
        "object_type": np.concatenate(
            [types[enc.object_type[sample]], types[enc.neighbour_type[slot_sample, slot][track]]]
        ),
        "object_category": np.concatenate(
            [enc.category[sample].astype(np.int64), np.full(len(track), UNSCORED_TRACK, np.int64)]
        ),
        "timestep": steps.astype(np.int64),
        "position_x": np.concatenate([xy[sample, step, 0], n_xy[track, n_step, 0]]),
        "position_y": np.concatenate([xy[sample, step, 1], n_xy[track, n_step, 1]]),
        "heading": np.concatenate([heading[sample, step], n_heading[track, n_step]]),
        "velocity_x": np.concatenate([vel[sample, step, 0], n_vel[track, n_step, 0]]),
        "velocity_y": np.concatenate([vel[sample, step, 1], n_vel[track, n_step, 1]]),
    }
    arrays = [
        pa.array(columns[name], dtype)
        if name in columns
        else pa.repeat(pa.scalar(scenario[name], dtype), n_rows)
        for name, dtype in SCENARIO_COLUMNS.items()
    ]
    return pa.Table.from_arrays(arrays, schema=pa.schema(SCENARIO_COLUMNS))


def _world_states(states: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Agent-frame state features (K, H, 6) in the frames of pose (K, 3) -> world positions (K, H, 2),
    headings (K, H) and velocities (K, H, 2), float64."""
    states = states.astype(np.float64)
    heading = wrap_angle(np.arctan2(states[..., 4], states[..., 5]) + pose[:, 2:3])
    return to_world(states[..., :2], pose), heading, rotate_vectors(states[..., 2:4], pose[:, 2])


def _finite_differences(
    start: np.ndarray, start_heading: np.ndarray, future: np.ndarray, mask: np.ndarray, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """Headings (S, T) and velocities (S, T, 2) of world futures (S, T, 2) where mask (S, T): the
    displacement from the previous known position (the last observed one, start (S, 2), before the
    first) over the time between them, dt s a step. Standing still, a step keeps the heading before it."""
    s, t = mask.shape
    z = as_complex(np.concatenate([start[:, None], future], 1))  # (S, T + 1), step 0 the last observed
    known = np.concatenate([np.ones((s, 1), bool), mask], 1)
    index = np.arange(t + 1)
    before = np.maximum.accumulate(np.where(known, index, 0), 1)[:, :-1]  # last known step before each
    disp = z[:, 1:] - np.take_along_axis(z, before, 1)
    vel = disp / ((index[1:] - before) * dt)
    moved = np.concatenate([np.ones((s, 1), bool), known[:, 1:] & (np.abs(disp) > STILL)], 1)
    headings = np.concatenate([start_heading[:, None], np.angle(disp)], 1)
    last_moved = np.maximum.accumulate(np.where(moved, index, 0), 1)
    return np.take_along_axis(headings, last_moved, 1)[:, 1:], as_points(vel)


# ----------------------------------------------------------------------------------------------------
# The map JSON


def map_archive(enc: EncodedScenes) -> dict[str, dict[str, dict]]:
    """The AV2 map JSON of one scenario's samples: lane_segments, pedestrian_crossings and
    drivable_areas, keyed by the str of their ids (unique ints within the map)."""
    s, n_lanes, p, _ = enc.lanes.shape
    world = as_complex(to_world(enc.lanes.reshape(s, n_lanes * p, 2), enc.pose)).reshape(s, n_lanes, p)
    line = world[enc.lane_mask]  # (E, P), every sample's elements
    kind = enc.lane_type[enc.lane_mask]
    keep = _distinct(line, kind)
    line, kind, inter = line[keep], kind[keep], enc.lane_is_intersection[enc.lane_mask][keep]
    crossing = kind == LANE_TYPES.index(CROSSING)
    lanes, lane_kind, lane_inter = line[~crossing], kind[~crossing], inter[~crossing]

    normal = 1j * _unit(np.gradient(lanes, axis=1), lanes[:, -1:] - lanes[:, :1])  # to the left
    left, right = lanes + HALF_LANE * normal, lanes - HALF_LANE * normal
    left_of, right_of = _neighbours(left, right)
    meets = _near(lanes[:, -1], lanes[:, 0], TOUCH)  # [i, j]: lane i ends where lane j starts
    np.fill_diagonal(meets, False)

    n = len(lanes)
    segments = {}
    for i in range(n):
        segments[str(i)] = {
            "id": i,
            "is_intersection": bool(lane_inter[i]),
            "lane_type": AV2_LANE_TYPE[LANE_TYPES[lane_kind[i]]],
            "centerline": _points(lanes[i]),
            "left_lane_boundary": _points(left[i]),
            "right_lane_boundary": _points(right[i]),
            # A boundary shared with a neighbour one may change lanes across is dashed; any other solid.
            "left_lane_mark_type": "DASHED_WHITE" if left_of[i] >= 0 else "SOLID_WHITE",
            "right_lane_mark_type": "DASHED_WHITE" if right_of[i] >= 0 else "SOLID_WHITE",
            "left_neighbor_id": int(left_of[i]) if left_of[i] >= 0 else None,
            "right_neighbor_id": int(right_of[i]) if right_of[i] >= 0 else None,
            "predecessors": np.flatnonzero(meets[:, i]).tolist(),
            "successors": np.flatnonzero(meets[i]).tolist(),
        }
    # A crossing is two 2-point edges, as AV2's are (PedestrianCrossing.polygon takes two vertices
    # from each): the line's ends, moved either side along the normal of its chord.
    ends = line[crossing][:, [0, -1]]
    across = HALF_CROSSING * 1j * _unit(ends[:, 1:] - ends[:, :1], np.ones((len(ends), 1)))
    crossings = {
        str(n + i): {"id": n + i, "edge1": _points(edge - shift), "edge2": _points(edge + shift)}
        for i, (edge, shift) in enumerate(zip(ends, across, strict=True))
    }
    first_area = n + len(crossings)
    areas = {
        str(first_area + i): {
            "id": first_area + i,
            "area_boundary": _points(np.concatenate([left[i], right[i][::-1]])),
        }
        for i in range(n)
    }
    return {"drivable_areas": areas, "lane_segments": segments, "pedestrian_crossings": crossings}


def _near(a: np.ndarray, b: np.ndarray, tol: float) -> np.ndarray:
    """(len(a), len(b)) bool: points a[i] and b[j] (complex) are closer than tol."""
    return np.abs(a[:, None] - b[None, :]) < tol


def _distinct(line: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """(E,) bool: the first of every group of elements (E, P) of one kind that coincide within SAME."""
    # Only pairs whose ends coincide are compared point by point (E can be thousands).
    pairs = _near(line[:, 0], line[:, 0], SAME) & _near(line[:, -1], line[:, -1], SAME)
    i, j = np.nonzero(np.triu(pairs & (kind[:, None] == kind[None, :]), 1))
    same = np.abs(line[i] - line[j]).max(-1, initial=0.0) < SAME
    keep = np.ones(len(line), bool)
    keep[j[same]] = False
    return keep


def _neighbours(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) int, -1 for none: the lane whose right boundary is each lane's left one (within TOUCH at
    every point), and the lane whose left boundary is each lane's right one."""
    pairs = _near(left[:, 0], right[:, 0], TOUCH) & _near(left[:, -1], right[:, -1], TOUCH)
    np.fill_diagonal(pairs, False)
    i, j = np.nonzero(pairs)
    shared = np.abs(left[i] - right[j]).max(-1, initial=0.0) < TOUCH
    i, j = i[shared], j[shared]
    left_of, right_of = np.full(len(left), -1), np.full(len(left), -1)
    left_of[i], right_of[j] = j, i
    return left_of, right_of


def _unit(d: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Directions d (complex) as unit vectors; where d is 0, fallback's (broadcast), else +x."""
    d = np.where(d != 0, d, fallback)
    d = np.where(d != 0, d, 1.0)
    return d / np.abs(d)


def _points(z: np.ndarray) -> list[dict[str, float]]:
    """Complex points (P,) -> AV2's [{"x", "y", "z"}] (z is 0: the map is flat)."""
    return [{"x": x, "y": y, "z": 0.0} for x, y in zip(z.real.tolist(), z.imag.tolist(), strict=True)]
