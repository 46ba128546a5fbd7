"""Argoverse 2 import speed: scenarios per second, with 1 and 2 worker processes.

    python benchmarks/import_av2.py --json            # one JSON line
    python benchmarks/import_av2.py --profile         # cProfile of the 1-worker import, top functions

Writes N realistic scenarios into a temporary directory (about 50 tracks x 110 steps, some starting
late or ending early, 5 scored; a map of 70 lane segments with 10-20 point boundaries, 5 pedestrian
crossings and 3 drivable areas), then imports them (focal agents, the default options). One JSON line:
  scenarios_per_s_per_worker  the 1-worker import, the whole of `import_av2` (target >= 100)
  scenarios_per_s             the same with 2 workers (processes started included)
  peak_rss_mib                ru_maxrss of this process (it writes the scenarios and imports them)
  peak_rss_children_mib       ru_maxrss of the largest worker process
  n, cpus, rows_per_scenario, map_kib_per_scenario
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tinypred.data.av2.importer import import_av2
from tinypred.data.av2.schema import (
    FOCAL_TRACK,
    LANE_TYPE_OF,
    SCENARIO_COLUMNS,
    SCORED_TRACK,
    UNSCORED_TRACK,
    scenario_files,
)
from tinypred.data.scene_config import OBJECT_TYPES

STEPS, LAST, DT = 110, 49, 0.1


def _points(xy: np.ndarray) -> list[dict[str, float]]:
    return [{"x": x, "y": y, "z": 30.25} for x, y in xy.tolist()]


def _arc(rng: np.random.Generator, n: int, start: np.ndarray, heading: float, length: float) -> np.ndarray:
    """n points along a gentle arc: (n, 2)."""
    s = np.linspace(0.0, length, n)
    angle = heading + rng.normal(0.0, 0.01) * s
    step = np.diff(s, prepend=0.0)
    return start + np.cumsum(step[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1), 0)


def scenario_map(rng: np.random.Generator, centre: np.ndarray) -> dict:
    lanes, crossings, areas = {}, {}, {}
    kinds = list(LANE_TYPE_OF)
    for i in range(70):
        n = int(rng.integers(10, 21))
        mid = _arc(
            rng, n, centre + rng.uniform(-100, 100, 2), rng.uniform(-np.pi, np.pi), rng.uniform(20, 60)
        )
        d = np.gradient(mid, axis=0)
        normal = np.stack([-d[:, 1], d[:, 0]], -1) / np.hypot(d[:, 0], d[:, 1])[:, None]
        lanes[str(1000 + i)] = {
            "id": 1000 + i,
            "is_intersection": bool(rng.random() < 0.3),
            "lane_type": kinds[int(rng.choice(3, p=[0.9, 0.05, 0.05]))],
            "left_lane_boundary": _points(mid + 1.75 * normal),
            "right_lane_boundary": _points(mid - 1.75 * normal),
            "left_lane_mark_type": "DASHED_WHITE",
            "right_lane_mark_type": "SOLID_WHITE",
            "left_neighbor_id": None,
            "right_neighbor_id": None,
            "predecessors": [int(x) for x in rng.integers(1000, 1070, 2)],
            "successors": [int(x) for x in rng.integers(1000, 1070, 2)],
        }
    for i in range(5):
        a = centre + rng.uniform(-60, 60, 2)
        crossings[str(2000 + i)] = {
            "id": 2000 + i,
            "edge1": _points(a + np.array([[0.0, 0.0], [0.0, 12.0]])),
            "edge2": _points(a + np.array([[3.0, 0.0], [3.0, 12.0]])),
        }
    for i in range(3):
        angle = np.linspace(0, 2 * np.pi, 40)
        ring = centre + rng.uniform(-50, 50, 2) + 60 * np.stack([np.cos(angle), np.sin(angle)], -1)
        areas[str(3000 + i)] = {"id": 3000 + i, "area_boundary": _points(ring)}
    return {"drivable_areas": areas, "lane_segments": lanes, "pedestrian_crossings": crossings}


def write_scenario(folder: Path, scenario_id: str, rng: np.random.Generator) -> tuple[int, int]:
    """One realistic scenario folder; returns (rows, map bytes)."""
    k = 50
    centre = rng.uniform(-5000, 5000, 2)
    start = np.where(np.arange(k) < 6, 0, rng.integers(0, 30, k))  # focal and scored: every step
    end = np.where(np.arange(k) < 6, STEPS - 1, rng.integers(70, STEPS + 20, k))
    present = (np.arange(STEPS) >= start[:, None]) & (np.arange(STEPS) <= end[:, None])
    track, step = np.nonzero(present)
    heading = rng.uniform(-np.pi, np.pi, k)
    speed = rng.uniform(0, 15, k)
    velocity = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], -1)
    at = centre + rng.uniform(-60, 60, (k, 2))
    xy = at[track] + (step[:, None] - LAST) * DT * velocity[track] + rng.normal(0, 0.05, (len(step), 2))
    ids = np.array(["focal", *(str(x) for x in rng.choice(np.arange(10_000, 100_000), k - 1, replace=False))])
    category = np.where(
        np.arange(k) == 0, FOCAL_TRACK, np.where(np.arange(k) < 6, SCORED_TRACK, UNSCORED_TRACK)
    )
    types = np.array(OBJECT_TYPES)[rng.choice(4, k, p=[0.8, 0.1, 0.05, 0.05])]
    n = len(step)
    columns = {
        "observed": step <= LAST,
        "track_id": ids[track],
        "object_type": types[track],
        "object_category": category[track].astype(np.int64),
        "timestep": step.astype(np.int64),
        "position_x": xy[:, 0],
        "position_y": xy[:, 1],
        "heading": heading[track],
        "velocity_x": velocity[track, 0],
        "velocity_y": velocity[track, 1],
        "scenario_id": np.full(n, scenario_id),
        "start_timestamp": np.full(n, 1.6e18),
        "end_timestamp": np.full(n, 1.6e18 + (STEPS - 1) * DT * 1e9),
        "num_timestamps": np.full(n, STEPS, np.int64),
        "focal_track_id": np.full(n, "focal"),
        "city": np.full(n, "miami"),
    }
    folder.mkdir(parents=True)
    parquet_name, map_name = scenario_files(scenario_id)
    pq.write_table(
        pa.table({name: pa.array(columns[name], t) for name, t in SCENARIO_COLUMNS.items()}),
        folder / parquet_name,
    )
    text = json.dumps(scenario_map(rng, centre))
    (folder / map_name).write_text(text)
    return n, len(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="scenarios")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the 1-worker import")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "av2" / "train"
        sizes = [write_scenario(src / f"{i:08d}", f"{i:08d}", rng) for i in range(args.n)]
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(import_av2, src, Path(tmp) / "profiled", split="train")
            pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
            return
        seconds = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            import_av2(src, Path(tmp) / f"out{workers}", split="train", workers=workers)
            seconds[workers] = time.perf_counter() - t0
    mib = 1024.0  # ru_maxrss is in KiB on Linux
    result = {
        "scenarios_per_s_per_worker": round(args.n / seconds[1], 1),
        "scenarios_per_s": round(args.n / seconds[2], 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / mib, 1),
        "peak_rss_children_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / mib, 1),
        "n": args.n,
        "cpus": os.cpu_count(),
        "rows_per_scenario": round(float(np.mean([r for r, _ in sizes]))),
        "map_kib_per_scenario": round(float(np.mean([b for _, b in sizes])) / 1024, 1),
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
