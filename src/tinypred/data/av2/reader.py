"""One Argoverse 2 scenario folder read into arrays: its tracks (the parquet) and its map (the JSON).

pyarrow and json only, as the av2 API's own readers define the format (`load_argoverse_scenario_parquet`:
the scenario id, city and focal track come from the first row, tracks are grouped by track_id, in sorted
order; `ArgoverseStaticMap.from_json`: the keys of `schema`). Every row is handled by vectorised
NumPy/Arrow, never a Python loop. Anything wrong with a scenario is a `ScenarioError`: one line naming the
file and the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tinypred.data.av2 import polylines
from tinypred.data.av2.schema import (
    CROSSING,
    DT,
    FOCAL_TRACK,
    LANE_TYPE_OF,
    SCENARIO_COLUMNS,
    scenario_files,
)
from tinypred.data.scene_config import LANE_TYPES, OBJECT_TYPES
from tinypred.errors import TinypredError

STATE_COLUMNS = ("position_x", "position_y", "heading", "velocity_x", "velocity_y")
MAX_STEPS = 10_000  # num_timestamps beyond this is a damaged file, not a scenario (AV2 has 110)
DT_TOLERANCE = 0.05  # relative: the mean step of the timestamps must be DT within 5 %
XY = itemgetter("x", "y")  # of a map point {"x", "y", "z"}


class ScenarioError(TinypredError):
    """A scenario that cannot be imported; the message names its file and the problem, on one line."""


@dataclass(frozen=True)
class Scenario:
    """One scenario's K tracks (sorted by id, as av2 groups them) on its grid of S time steps.

    positions (K, S, 2), heading (K, S), velocity (K, S, 2): float64, city frame, zeros where not valid;
    valid (K, S) bool: the track has a row at that step (a track may start late, end early, have gaps).
    track_ids (K,) str; object_type (K,) int8 index into OBJECT_TYPES; category (K,) int8 AV2 track
    category. last_observed: the largest observed timestep; focal: the focal track's index; path: the
    parquet (what errors about the scenario name).
    """

    path: Path
    scenario_id: str
    city: str
    focal_track_id: str
    track_ids: np.ndarray
    object_type: np.ndarray
    category: np.ndarray
    positions: np.ndarray
    heading: np.ndarray
    velocity: np.ndarray
    valid: np.ndarray
    last_observed: int
    focal: int

    @property
    def has_future(self) -> bool:
        """The scenario holds steps after the last observed one (train and val; not the test split)."""
        return bool(self.valid[:, self.last_observed + 1 :].any())


@dataclass(frozen=True)
class MapElements:
    """E map elements (lane centre-lines, then pedestrian crossings' midlines), city frame.

    polylines (E, P, 2) float64, each padded with its last point (see `polylines`); points (E,) int64: how
    many of each polyline's points are its own (the rest pad it); type (E,) int8 index into LANE_TYPES;
    is_intersection (E,) bool.
    """

    polylines: np.ndarray
    points: np.ndarray
    type: np.ndarray
    is_intersection: np.ndarray


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _accepted(name: str, expected: pa.DataType) -> tuple[pa.DataType, ...]:
    """The types a column may have. Safe variants only: int32 for int64 and large_string for string hold
    the same values; float32 for the states costs at most a millimetre at city coordinates (far below
    the tracker's noise), but not for timestamps (nanoseconds since 1970 need float64)."""
    if expected == pa.int64():
        return (expected, pa.int32())
    if expected == pa.string():
        return (expected, pa.large_string())
    if name in STATE_COLUMNS:
        return (expected, pa.float32())
    return (expected,)


def _read_table(path: Path) -> pa.Table:
    """The scenario columns of the parquet at `path`, their names and types checked before reading (one
    open file for both: faster than read_schema and read_table on files this small)."""
    if not path.is_file():
        raise ScenarioError(f"{path}: missing")
    try:
        with pq.ParquetFile(path) as file:
            schema = file.schema_arrow
            for name, expected in SCENARIO_COLUMNS.items():
                if name not in schema.names:
                    raise ScenarioError(f"{path}: column {name!r} missing")
                actual = schema.field(name).type
                if actual not in _accepted(name, expected):
                    raise ScenarioError(f"{path}: column {name!r} has type {actual}, expected {expected}")
            # One thread: workers are processes already, and Arrow's pool gains nothing on 5000 rows.
            table = file.read(columns=list(SCENARIO_COLUMNS), use_threads=False)
    except (OSError, pa.ArrowException) as e:  # not ScenarioError: that is neither
        raise ScenarioError(f"{path}: unreadable parquet ({_one_line(e)})") from None
    if table.num_rows == 0:
        raise ScenarioError(f"{path}: no rows")
    for name in SCENARIO_COLUMNS:
        if table.column(name).null_count:
            raise ScenarioError(f"{path}: column {name!r} has {table.column(name).null_count} null values")
    return table


def read_scenario(folder: Path) -> Scenario:
    """The tracks of the scenario folder `folder` (its parquet; the map is `read_map`'s)."""
    path = Path(folder) / scenario_files(Path(folder).name)[0]
    table = _read_table(path)

    def first(name: str):
        return table.column(name)[0].as_py()

    num_steps = first("num_timestamps")
    if not 1 <= num_steps <= MAX_STEPS:
        raise ScenarioError(f"{path}: num_timestamps is {num_steps}, expected 1 to {MAX_STEPS}")
    span = first("end_timestamp") - first("start_timestamp")
    if num_steps > 1 and not abs(span / (num_steps - 1) / 1e9 - DT) <= DT_TOLERANCE * DT:
        raise ScenarioError(
            f"{path}: timestamps {span / 1e9:.4g} s apart over {num_steps} steps: not the {DT} s step"
        )

    # Tracks: ids sorted as av2's groupby sorts them; every row's track index, in Arrow.
    ids = table.column("track_id")
    track_ids = np.array(sorted(pc.unique(ids).to_pylist()))
    row_track = pc.index_in(ids, value_set=pa.array(track_ids, ids.type)).to_numpy()
    k = len(track_ids)
    timestep = table.column("timestep").to_numpy().astype(np.int64)
    bad = (timestep < 0) | (timestep >= num_steps)
    if bad.any():
        raise ScenarioError(f"{path}: timestep {timestep[bad][0]} outside 0..{num_steps - 1}")
    cell = row_track * num_steps + timestep
    rows_per_cell = np.bincount(cell, minlength=k * num_steps)
    if rows_per_cell.max() > 1:
        track, step = divmod(int(rows_per_cell.argmax()), num_steps)
        raise ScenarioError(
            f"{path}: track {str(track_ids[track])!r} has {rows_per_cell.max()} rows at timestep {step}"
        )

    observed = table.column("observed").to_numpy()
    if not observed.any():
        raise ScenarioError(f"{path}: no observed rows")
    last = int(timestep[observed].max())
    late = ~observed & (timestep <= last)
    if late.any():
        raise ScenarioError(
            f"{path}: a row not observed at timestep {timestep[late][0]}, before the last observed {last}"
        )

    states = np.empty((len(cell), len(STATE_COLUMNS)))
    for i, name in enumerate(STATE_COLUMNS):
        states[:, i] = table.column(name).to_numpy()
        if not np.isfinite(states[:, i]).all():
            raise ScenarioError(f"{path}: column {name!r} holds NaN or infinite values")
    grid = np.zeros((k * num_steps, len(STATE_COLUMNS)))
    grid[cell] = states
    grid = grid.reshape(k, num_steps, -1)
    valid = (rows_per_cell > 0).reshape(k, num_steps)

    # Per-track attributes from each track's first row, as av2 reads them.
    _, first_row = np.unique(row_track, return_index=True)
    kinds = table.column("object_type").take(pa.array(first_row))
    object_type = pc.index_in(kinds, value_set=pa.array(OBJECT_TYPES, kinds.type))
    if object_type.null_count:
        unknown = kinds.filter(pc.is_null(object_type))[0].as_py()
        raise ScenarioError(f"{path}: unknown object_type {unknown!r}, expected one of {OBJECT_TYPES}")
    category = table.column("object_category").to_numpy()[first_row]
    if ((category < 0) | (category > FOCAL_TRACK)).any():
        raise ScenarioError(f"{path}: object_category outside 0..{FOCAL_TRACK}")

    focal_id = first("focal_track_id")
    focal = int(np.searchsorted(track_ids, focal_id))
    if focal == k or track_ids[focal] != focal_id:
        raise ScenarioError(f"{path}: focal track {focal_id!r} has no rows")
    if not valid[focal, last]:
        raise ScenarioError(f"{path}: focal track {focal_id!r} not observed at the last observed step {last}")
    return Scenario(
        path=path,
        scenario_id=first("scenario_id"),
        city=first("city"),
        focal_track_id=focal_id,
        track_ids=track_ids,
        object_type=object_type.to_numpy().astype(np.int8),
        category=category.astype(np.int8),
        positions=grid[..., :2],
        heading=grid[..., 2],
        velocity=grid[..., 3:],
        valid=valid,
        last_observed=last,
        focal=focal,
    )


def read_map(path: Path) -> MapElements:
    """The lane segments and pedestrian crossings of a map JSON as centre-lines: a lane's "centerline" when
    it has one, else the midline of its two boundaries; a crossing's midline of its two edges."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"{path}: missing (the scenario's map)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ScenarioError(f"{path}: unreadable JSON ({_one_line(e)})") from None
    try:
        return _map_elements(data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise ScenarioError(f"{path}: malformed map ({type(e).__name__}: {_one_line(e)})") from None


def _map_elements(data: dict) -> MapElements:
    lanes = list(data["lane_segments"].values())
    crossings = list(data.get("pedestrian_crossings", {}).values())  # av2 tolerates their absence
    kinds = [lane["lane_type"] for lane in lanes]
    unknown = set(kinds) - set(LANE_TYPE_OF)
    if unknown:
        raise ValueError(f"unknown lane_type {sorted(unknown)[0]!r}, expected one of {list(LANE_TYPE_OF)}")
    crossing_type = LANE_TYPES.index(CROSSING)
    types = [LANE_TYPES.index(LANE_TYPE_OF[kind]) for kind in kinds] + [crossing_type] * len(crossings)
    is_intersection = [bool(lane["is_intersection"]) for lane in lanes] + [False] * len(crossings)

    # Every polyline, in one flat list: the given centre-lines, then boundary pairs (left, right of a lane;
    # edge1, edge2 of a crossing) whose midlines make the other elements.
    given = [i for i, lane in enumerate(lanes) if lane.get("centerline") is not None]
    paired = [i for i, lane in enumerate(lanes) if lane.get("centerline") is None]
    lines = [lanes[i]["centerline"] for i in given]
    for i in paired:
        lines += [lanes[i]["left_lane_boundary"], lanes[i]["right_lane_boundary"]]
    for crossing in crossings:
        lines += [crossing["edge1"], crossing["edge2"]]
    counts = np.array([len(line) for line in lines], np.int64)
    if (counts == 0).any():
        raise ValueError("a polyline without points")
    coords = chain.from_iterable(map(XY, chain.from_iterable(lines)))  # x0, y0, x1, ...: no list of tuples
    points = np.fromiter(coords, np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise ValueError("NaN or infinite coordinates")
    padded = polylines.pad(points, counts)

    n_given, n_elements = len(given), len(types)
    centre = padded[:n_given]
    first, second = padded[n_given::2], padded[n_given + 1 :: 2]
    if len(first):
        # A crossing's edges should point the same way (av2's convention); turn one that does not, lest
        # the average fold the midline onto a point (lane boundaries always do: nothing turns).
        along = np.einsum("ij,ij->i", first[:, -1] - first[:, 0], second[:, -1] - second[:, 0])
        second = np.where((along < 0)[:, None, None], second[:, ::-1], second)
        n = max(int(counts[n_given:].max()), 2)  # as many points as the finer boundary has
        mid = polylines.resample(np.stack([first, second]), n).mean(0)
    else:
        mid = np.zeros((0, 1, 2))
    width = max(centre.shape[1], mid.shape[1])
    out = np.empty((n_elements, width, 2))
    out[given] = polylines.extend(centre, width)
    midlines = paired + list(range(len(lanes), n_elements))
    out[midlines] = polylines.extend(mid, width)
    own = np.empty(n_elements, np.int64)
    own[given] = counts[:n_given]
    own[midlines] = mid.shape[1]
    return MapElements(out, own, np.array(types, np.int8), np.array(is_intersection, bool))
