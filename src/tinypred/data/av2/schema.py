"""The Argoverse 2 motion-forecasting formats, as the av2 API reads and writes them.

A dataset root holds ``train/``, ``val/``, ``test/``; a split folder holds one folder per scenario:
``<id>/scenario_<id>.parquet`` and ``<id>/log_map_archive_<id>.json``. Sampled at 10 Hz: 50 observed
steps and 60 to predict; train and val hold all 110, test only the 50 observed.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tinypred.data.scene_config import LANE_TYPES

DT = 0.1  # s
HISTORY_STEPS, FUTURE_STEPS = 50, 60
SPLITS = ("train", "val", "test")

# TrackCategory values.
TRACK_FRAGMENT, UNSCORED_TRACK, SCORED_TRACK, FOCAL_TRACK = 0, 1, 2, 3

# The scenario parquet: one row per track and time step (serialize_argoverse_scenario_parquet's columns,
# and the dtypes of the published files; map_id and slice_id are optional).
SCENARIO_COLUMNS: dict[str, pa.DataType] = {
    "observed": pa.bool_(),
    "track_id": pa.string(),
    "object_type": pa.string(),
    "object_category": pa.int64(),
    "timestep": pa.int64(),
    "position_x": pa.float64(),
    "position_y": pa.float64(),
    "heading": pa.float64(),
    "velocity_x": pa.float64(),
    "velocity_y": pa.float64(),
    "scenario_id": pa.string(),
    "start_timestamp": pa.float64(),
    "end_timestamp": pa.float64(),
    "num_timestamps": pa.int64(),
    "focal_track_id": pa.string(),
    "city": pa.string(),
}
OPTIONAL_COLUMNS: dict[str, pa.DataType] = {"map_id": pa.int64(), "slice_id": pa.string()}

# ObjectType values: tinypred's OBJECT_TYPES are exactly these, in av2's order.

# The map JSON: {"lane_segments": {id: {...}}, "drivable_areas": {id: {...}}, "pedestrian_crossings":
# {id: {...}}}, points as {"x", "y", "z"}. LaneSegment.from_dict reads exactly these keys.
LANE_SEGMENT_KEYS = (
    "id",
    "is_intersection",
    "lane_type",
    "left_lane_boundary",
    "right_lane_boundary",
    "left_lane_mark_type",
    "right_lane_mark_type",
    "left_neighbor_id",
    "right_neighbor_id",
    "predecessors",
    "successors",
)
# LaneType values -> tinypred's map element types; pedestrian crossings import as stop lines (a line
# across the road where traffic stops or yields).
LANE_TYPE_OF = {"VEHICLE": "lane", "BIKE": "bike_lane", "BUS": "bus_lane"}
AV2_LANE_TYPE = {v: k for k, v in LANE_TYPE_OF.items()}
CROSSING = "stop_line"
assert set(LANE_TYPE_OF.values()) | {CROSSING} == set(LANE_TYPES)
LANE_MARK_TYPES = (
    "DASH_SOLID_YELLOW",
    "DASH_SOLID_WHITE",
    "DASHED_WHITE",
    "DASHED_YELLOW",
    "DOUBLE_SOLID_YELLOW",
    "DOUBLE_SOLID_WHITE",
    "DOUBLE_DASH_YELLOW",
    "DOUBLE_DASH_WHITE",
    "SOLID_YELLOW",
    "SOLID_WHITE",
    "SOLID_DASH_WHITE",
    "SOLID_DASH_YELLOW",
    "SOLID_BLUE",
    "NONE",
    "UNKNOWN",
)

# The challenge submission: one row per (scenario, track, mode); a track's probabilities sum to 1
# (np.isclose), trajectories in the city frame.
SUBMISSION_COLUMNS: dict[str, pa.DataType] = {
    "scenario_id": pa.string(),
    "track_id": pa.string(),
    "probability": pa.float64(),
    "predicted_trajectory_x": pa.list_(pa.float64()),
    "predicted_trajectory_y": pa.list_(pa.float64()),
}
SUBMISSION_MODES = 6


def probs_sum_to_one(sums: np.ndarray) -> np.ndarray:
    """(N,) bool: which sums of probabilities count as 1, by ChallengeSubmission's rule np.isclose(1, sum)
    (rtol 1e-5, atol 1e-8). The metrics apply the same rule, so every valid submission can be scored."""
    return np.isclose(1.0, sums)


def scenario_files(scenario_id: str) -> tuple[str, str]:
    """The two file names of a scenario folder."""
    return f"scenario_{scenario_id}.parquet", f"log_map_archive_{scenario_id}.json"
