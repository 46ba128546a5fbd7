"""Predictions as an Argoverse 2 motion-forecasting challenge submission (the single-agent challenge).

One row per (scenario, focal track, mode): its probability and the 60 predicted city-frame positions
(10 Hz, t = 0.1 s ... 6 s). AV2 scores the 6 most probable modes of a track, so every track gets
exactly 6 rows: more modes keep the 6 most probable, renormalised; fewer repeat the most probable
with probability 0. A copy ties with its original, which AV2's probability-sorted order puts first, so
a 1-mode baseline is scored as that one mode (its minADE, minFDE and Brier term alike). `check_submission`
applies the rules `ChallengeSubmission` (av2's loader) enforces, with one-line errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tinypred.data.av2.schema import (
    DT,
    FOCAL_TRACK,
    FUTURE_STEPS,
    SUBMISSION_COLUMNS,
    SUBMISSION_MODES,
    probs_sum_to_one,
)
from tinypred.data.encoding import EncodedScenes, to_world
from tinypred.errors import TinypredError
from tinypred.fileio import atomic_open


def submission_table(modes: np.ndarray, probs: np.ndarray, scenes: EncodedScenes) -> pa.Table:
    """modes (N, K, T, 2) in the agent frames of the N samples `scenes`, probs (N, K) rows summing to 1
    -> the submission of the focal samples (columns SUBMISSION_COLUMNS), rows ordered by scenario, then
    by decreasing probability. T must be 60 and scenes.dt 0.1 s."""
    modes, probs = np.asarray(modes), np.asarray(probs, np.float64)
    n = len(scenes)
    if modes.ndim != 4 or modes.shape[0] != n or modes.shape[1] < 1 or modes.shape[3] != 2:
        raise TinypredError(
            f"expected shape (N, K, T, 2) with N = {n} and K >= 1, got {modes.shape}", arg="modes"
        )
    _, k, t, _ = modes.shape
    if probs.shape != (n, k):
        raise TinypredError(f"expected shape {(n, k)} (one per mode), got {probs.shape}", arg="probs")
    steps = scenes.future.shape[1]
    if t != steps:
        raise TinypredError(f"expected {steps} steps per mode (the samples' future), got {t}", arg="modes")
    if steps != FUTURE_STEPS or not np.isclose(scenes.dt, DT, rtol=0, atol=1e-9):
        raise TinypredError(
            f"AV2 submissions are {FUTURE_STEPS} steps at {round(1 / DT)} Hz; this dataset has {steps} "
            f"steps at {scenes.dt:g} s",
            arg="scenes",
        )
    focal = np.flatnonzero(scenes.category == FOCAL_TRACK)
    if len(focal) == 0:
        raise TinypredError(f"no focal samples (category {FOCAL_TRACK}) to submit", arg="scenes")
    scenario, track = scenes.scenario_id[focal], scenes.track_id[focal]
    ids, counts = np.unique(scenario, return_counts=True)
    if np.any(counts > 1):
        twice = str(ids[np.argmax(counts > 1)])
        raise TinypredError(
            f"scenario {twice!r} has {counts.max()} focal samples (tracks "
            f"{', '.join(map(repr, track[scenario == twice].tolist()))}); a submission takes one per "
            "scenario",
            arg="scenes",
        )
    modes, probs = modes[focal].astype(np.float64), probs[focal]
    if not np.all(np.isfinite(modes)):
        raise TinypredError(
            f"NaN or Inf in the modes of sample {focal[~np.isfinite(modes).all((1, 2, 3))][0]}", arg="modes"
        )
    bad = np.flatnonzero(~np.all(np.isfinite(probs) & (probs >= 0), 1) | ~probs_sum_to_one(probs.sum(1)))
    if len(bad):
        raise TinypredError(
            f"each row must be >= 0 and sum to 1 (np.isclose, as AV2); row {focal[bad[0]]} is "
            f"{probs[bad[0]].tolist()}",
            arg="probs",
        )

    m, kept = len(focal), min(k, SUBMISSION_MODES)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :kept]
    # Too few modes: the most probable again, at probability 0 (see the module docstring).
    order = np.concatenate([order, np.repeat(order[:, :1], SUBMISSION_MODES - kept, 1)], 1)
    p = np.take_along_axis(probs, order, 1)
    p[:, kept:] = 0.0
    p /= p.sum(1, keepdims=True)  # a no-op unless modes were dropped
    world = to_world(
        np.take_along_axis(modes, order[:, :, None, None], 1).reshape(m, -1, 2), scenes.pose[focal]
    )

    rows = np.argsort(scenario, kind="stable")
    world = world[rows].reshape(m * SUBMISSION_MODES, t, 2)
    offsets = pa.array(np.arange(0, m * SUBMISSION_MODES * t + 1, t, dtype=np.int32))
    columns = [
        pa.array(np.repeat(scenario[rows], SUBMISSION_MODES), pa.string()),
        pa.array(np.repeat(track[rows], SUBMISSION_MODES), pa.string()),
        pa.array(p[rows].reshape(-1), pa.float64()),
        pa.ListArray.from_arrays(offsets, pa.array(world[..., 0].reshape(-1), pa.float64())),
        pa.ListArray.from_arrays(offsets, pa.array(world[..., 1].reshape(-1), pa.float64())),
    ]
    return pa.Table.from_arrays(columns, schema=pa.schema(SUBMISSION_COLUMNS))


def check_submission(table: pa.Table) -> None:
    """Raise a one-line TinypredError unless `table` passes ChallengeSubmission's checks: the columns,
    trajectories of 60 steps, as many probabilities as trajectories per (scenario, track), and those
    probabilities summing to 1 (np.isclose)."""
    expected = pa.schema(SUBMISSION_COLUMNS)
    if not table.schema.equals(expected):
        raise TinypredError(f"expected the columns {_columns(expected)}; got {_columns(table.schema)}")
    groups = table.group_by(["scenario_id", "track_id"], use_threads=False).aggregate(
        [
            ("probability", "sum"),
            ("probability", "count"),
            ("predicted_trajectory_x", "count"),
            ("predicted_trajectory_y", "count"),
        ]
    )
    n_probs = groups["probability_count"].to_numpy()
    n_modes = np.minimum(
        groups["predicted_trajectory_x_count"].to_numpy(), groups["predicted_trajectory_y_count"].to_numpy()
    )
    bad = np.flatnonzero(n_probs != n_modes)
    if len(bad):
        raise TinypredError(
            f"{_track(groups, bad[0])}: {n_probs[bad[0]]} probabilities for {n_modes[bad[0]]} trajectories"
        )
    for column in ("predicted_trajectory_x", "predicted_trajectory_y"):
        length = pc.list_value_length(table[column]).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(length != FUTURE_STEPS)
        if len(bad):
            raise TinypredError(
                f"{_track(table, bad[0])}: {column} has {length[bad[0]]} steps, expected {FUTURE_STEPS}"
            )
    sums = groups["probability_sum"].to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(~probs_sum_to_one(sums))
    if len(bad):
        raise TinypredError(
            f"{_track(groups, bad[0])}: probabilities sum to {sums[bad[0]]:.9g}, not 1 "
            "(AV2: np.isclose(1, sum))"
        )


def _track(table: pa.Table, row: int) -> str:
    return f"scenario {table['scenario_id'][row].as_py()!r}, track {table['track_id'][row].as_py()!r}"


def _columns(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name} ({f.type})" for f in schema)


def write_submission(path: str | Path, table: pa.Table) -> Path:
    """Check `table` (check_submission), then write it as Parquet atomically; returns the path."""
    check_submission(table)
    path = Path(path)
    with atomic_open(path, "wb") as f:
        pq.write_table(table, f)
    return path
