"""Predictions for a planner: one Parquet row per scene and mode, trajectories in the world frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tinypred.data.encoding import EncodedScenes, to_world
from tinypred.fileio import atomic_open


def prediction_table(modes: np.ndarray, probs: np.ndarray, scenes: EncodedScenes) -> pa.Table:
    """modes (N, K, T, 2) in the agent frames of `scenes`, probs (N, K) -> a table with the columns
    scene_id (int64), scenario_id and track_id (string), mode (int16), probability (float32), x and y
    (list<float64> of T world positions at t = dt, 2 dt, ..., dt = scenes.dt). Rows are ordered by
    sample, then by mode (most probable first)."""
    n, k, t, _ = modes.shape
    order = np.argsort(-probs, axis=1, kind="stable")
    modes = np.take_along_axis(modes, order[:, :, None, None], 1)
    probs = np.take_along_axis(probs, order, 1)
    world = to_world(modes.reshape(n, k * t, 2), scenes.pose).reshape(n * k, t, 2)
    offsets = pa.array(np.arange(0, n * k * t + 1, t, dtype=np.int32))
    return pa.table(
        {
            "scene_id": np.repeat(scenes.scene_id, k),
            "scenario_id": np.repeat(scenes.scenario_id, k),
            "track_id": np.repeat(scenes.track_id, k),
            "mode": np.tile(np.arange(k, dtype=np.int16), n),
            "probability": probs.reshape(-1).astype(np.float32),
            "x": pa.ListArray.from_arrays(offsets, pa.array(world[..., 0].reshape(-1))),
            "y": pa.ListArray.from_arrays(offsets, pa.array(world[..., 1].reshape(-1))),
        },
        metadata={b"dt": str(scenes.dt).encode(), b"frame": b"world", b"units": b"m"},
    )


def write_parquet(path: str | Path, table: pa.Table) -> Path:
    """Write atomically: a reader never sees half a file."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        pq.write_table(table, f)
    return path
