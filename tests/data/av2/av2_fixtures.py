"""Argoverse 2 scenario folders written by hand with pyarrow and json, as the av2 API writes them.

`standard_tracks` and `standard_map` describe one scene in a local frame whose origin is the focal
track's position at the last observed step and whose x axis its heading; `write_scenario` moves it to a
world pose, so that the expected agent-frame arrays are the local numbers themselves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tinypred.data.av2.schema import (
    FOCAL_TRACK,
    SCENARIO_COLUMNS,
    SCORED_TRACK,
    TRACK_FRAGMENT,
    UNSCORED_TRACK,
    scenario_files,
)

DT = 0.1
STEPS, LAST = 110, 49  # AV2's train and val: 110 steps, the last observed one 49


@dataclass
class Track:
    """A track in the local frame: at `at` (2,) at step LAST, moving at `velocity` (2,) m/s, with a row
    at each of `steps` (default: all)."""

    track_id: str
    at: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    object_type: str = "vehicle"
    category: int = UNSCORED_TRACK
    steps: np.ndarray = field(default_factory=lambda: np.arange(STEPS))

    def positions(self, steps: np.ndarray) -> np.ndarray:
        return np.asarray(self.at) + (steps[:, None] - LAST) * DT * np.asarray(self.velocity)


def standard_tracks() -> list[Track]:
    """The focal F drives along +x at 10 m/s; around it, by distance at step 49: A (scored, left lane,
    a gap at steps 45-46), B (pedestrian), C (cyclist, gaps at 40-44 and 47), D (starts at step 45),
    H (scored, a hole in its future); E ends at step 30 and G (scored) at step 40: not observed at 49."""
    every = np.arange(STEPS)
    return [
        Track("F", (0.0, 0.0), (10.0, 0.0), category=FOCAL_TRACK),
        Track("A", (-5.0, 3.5), (8.0, 0.0), category=SCORED_TRACK, steps=every[(every < 45) | (every > 46)]),
        Track("B", (3.0, -8.0), object_type="pedestrian"),
        Track(
            "C",
            (-12.0, -4.0),
            (5.0, 0.0),
            "cyclist",
            steps=every[((every < 40) | (every > 44)) & (every != 47)],
        ),
        Track("D", (20.0, 3.5), (6.0, 0.0), steps=every[every >= 45]),
        Track("E", (-30.0, 0.0), (9.0, 0.0), category=TRACK_FRAGMENT, steps=every[every <= 30]),
        Track("G", (-40.0, 3.5), (9.0, 0.0), category=SCORED_TRACK, steps=every[every <= 40]),
        Track("H", (40.0, -3.5), (7.0, 0.0), category=SCORED_TRACK, steps=every[every != 55]),
    ]


def _points(xy) -> list[dict[str, float]]:
    return [{"x": float(x), "y": float(y), "z": 12.5} for x, y in xy]


def _lane(i: int, y: float, x0: float, x1: float, kind: str = "VEHICLE", **extra) -> dict:
    """A straight lane segment along +x centred on y, 3.5 m wide, given by its boundaries (two points)."""
    return {
        "id": i,
        "is_intersection": False,
        "lane_type": kind,
        "left_lane_boundary": _points([(x0, y + 1.75), (x1, y + 1.75)]),
        "right_lane_boundary": _points([(x0, y - 1.75), (x1, y - 1.75)]),
        "left_lane_mark_type": "DASHED_WHITE",
        "right_lane_mark_type": "SOLID_WHITE",
        "left_neighbor_id": None,
        "right_neighbor_id": None,
        "predecessors": [],
        "successors": [],
        **extra,
    }


def standard_map() -> dict:
    """Local-frame map, by distance from the origin: the focal's lane (y = 0, 2 points 50 m either side:
    its vertices are far, its segment is not), the left lane (3.5 m), a bike lane (4 m), a crossing at
    x = 20 (edge2 drawn the other way round), a far lane (30 m) and an intersection lane given by its
    "centerline" (60 m)."""
    lanes = [
        _lane(10, 0.0, -50.0, 50.0),
        _lane(11, 3.5, -50.0, 50.0),
        _lane(12, -4.0, -50.0, 50.0, "BIKE"),
        _lane(13, 30.0, -50.0, 50.0, "BUS"),
        _lane(
            14,
            0.0,
            60.0,
            90.0,
            is_intersection=True,
            centerline=_points([(60.0, 0.0), (75.0, 0.0), (90.0, 0.0)]),
        ),
    ]
    crossing = {
        "id": 20,
        "edge1": _points([(18.0, -6.0), (18.0, 6.0)]),
        "edge2": _points([(22.0, 6.0), (22.0, -6.0)]),
    }
    area = {"id": 30, "area_boundary": _points([(-50, -6), (50, -6), (50, 32), (-50, 32), (-50, -6)])}
    return {
        "drivable_areas": {"30": area},
        "lane_segments": {str(lane["id"]): lane for lane in lanes},
        "pedestrian_crossings": {"20": crossing},
    }


def _to_world(xy: np.ndarray, pose: tuple[float, float, float]) -> np.ndarray:
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return np.stack(
        [pose[0] + c * xy[..., 0] - s * xy[..., 1], pose[1] + s * xy[..., 0] + c * xy[..., 1]], -1
    )


def _map_to_world(obj, pose):
    if isinstance(obj, dict):
        if set(obj) == {"x", "y", "z"}:
            x, y = _to_world(np.array([obj["x"], obj["y"]]), pose)
            return {"x": float(x), "y": float(y), "z": obj["z"]}
        return {k: _map_to_world(v, pose) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_to_world(v, pose) for v in obj]
    return obj


def write_scenario(
    split_dir: Path,
    scenario_id: str,
    tracks: list[Track] | None = None,
    *,
    pose: tuple[float, float, float] = (2500.0, -1300.0, 0.6),
    focal_track_id: str = "F",
    num_timestamps: int = STEPS,
    city: str = "PIT",
    static_map: dict | None = None,
    edit: Callable[[dict[str, np.ndarray]], None] | None = None,
    types: dict[str, pa.DataType] | None = None,
    drop: tuple[str, ...] = (),
) -> Path:
    """Write split_dir/<id>/ (the parquet and the map JSON) of `tracks` (default: the standard ones)
    moved to the world pose (x, y, heading); only steps below num_timestamps get rows. edit(columns)
    may change the columns before they are written, `types` cast them, `drop` leave some out."""
    tracks = standard_tracks() if tracks is None else tracks
    heading = np.arctan2(
        *[np.array([t.velocity[1] for t in tracks]), np.array([t.velocity[0] for t in tracks])]
    )
    rows: dict[str, list] = {name: [] for name in ("track", "step")}
    for i, track in enumerate(tracks):
        steps = track.steps[track.steps < num_timestamps]
        rows["track"].append(np.full(len(steps), i))
        rows["step"].append(steps)
    track = np.concatenate(rows["track"])
    step = np.concatenate(rows["step"])
    local = np.concatenate([t.positions(t.steps[t.steps < num_timestamps]) for t in tracks])
    world = _to_world(local, pose)
    speed = np.array([t.velocity for t in tracks])[track]
    velocity = _to_world(speed, (0.0, 0.0, pose[2]))
    columns = {
        "observed": step <= LAST,
        "track_id": np.array([t.track_id for t in tracks])[track],
        "object_type": np.array([t.object_type for t in tracks])[track],
        "object_category": np.array([t.category for t in tracks], np.int64)[track],
        "timestep": step.astype(np.int64),
        "position_x": world[:, 0],
        "position_y": world[:, 1],
        "heading": np.where(np.hypot(*speed.T) > 0, heading[track], 0.0) + pose[2],
        "velocity_x": velocity[:, 0],
        "velocity_y": velocity[:, 1],
        "scenario_id": np.full(len(step), scenario_id),
        "start_timestamp": np.full(len(step), 1.6e18),
        "end_timestamp": np.full(len(step), 1.6e18 + (num_timestamps - 1) * DT * 1e9),
        "num_timestamps": np.full(len(step), num_timestamps, np.int64),
        "focal_track_id": np.full(len(step), focal_track_id),
        "city": np.full(len(step), city),
    }
    if edit is not None:
        edit(columns)
    types = {**SCENARIO_COLUMNS, **(types or {})}
    table = pa.table(
        {name: pa.array(columns[name]).cast(types[name]) for name in SCENARIO_COLUMNS if name not in drop}
    )
    folder = split_dir / scenario_id
    folder.mkdir(parents=True)
    parquet_name, map_name = scenario_files(scenario_id)
    pq.write_table(table, folder / parquet_name)
    (folder / map_name).write_text(
        json.dumps(_map_to_world(standard_map() if static_map is None else static_map, pose))
    )
    return folder
