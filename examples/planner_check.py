"""A toy planner check behind the Predictor: how likely is it that the ego's path is blocked?

    python examples/planner_check.py [--run RUN] [--json] [--work DIR]

Without --run it generates a small dataset and trains a tiny model on it (a few seconds). Then, for 32
agents approaching junctions, lane changes and stop lines, it lays a crossing ego path across each
agent's road, 2 s of the agent's current speed ahead (a straight segment 8 m long, perpendicular to
the agent's heading), and asks every predictor the same question:

    P(blocked) = sum of the probabilities of the modes that pass within 2 m of the ego path

The planner sees only world-frame arrays (positions and headings for the last 2 s, the lane
centre-lines) and swaps predictors without changing a line: the trained model, constant velocity, the
constant-velocity fan and the lane follower. The intent mixture is no predictor a planner can have (it
reads the scenes' ground-truth mixture); its P(blocked) is printed beside them as the reference.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from tinypred import Predictor
from tinypred.data import SceneConfig, dataset, encode, generate, to_world
from tinypred.predictors.baselines import fit_all
from tinypred.predictors.model import ModelConfig
from tinypred.training import TrainConfig, train

CLEARANCE = 2.0  # m: a mode this close to the ego path blocks it
EGO_LENGTH = 8.0  # m of ego path across the agent's road: two lanes


def ego_paths(history: np.ndarray, horizon_s: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Per agent, the ends (N, 2) and (N, 2) of a crossing segment: centred on the point the agent would
    reach in horizon_s at its current speed, perpendicular to its heading. history: (N, H, 5)."""
    x, y, heading, vx, vy = np.moveaxis(history[:, -1], -1, 0)
    ahead = np.hypot(vx, vy) * horizon_s
    forward = np.stack([np.cos(heading), np.sin(heading)], -1)
    left = np.stack([-forward[:, 1], forward[:, 0]], -1)
    centre = np.stack([x, y], -1) + forward * ahead[:, None]
    return centre - left * EGO_LENGTH / 2, centre + left * EGO_LENGTH / 2


def distance_to_segment(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of points (N, K, T, 2) to the segments a-b, a and b (N, 2)."""
    a, b = a[:, None, None], b[:, None, None]
    u = np.clip(((points - a) * (b - a)).sum(-1) / ((b - a) ** 2).sum(-1), 0.0, 1.0)
    return np.linalg.norm(points - (a + u[..., None] * (b - a)), axis=-1)


def p_blocked(modes: np.ndarray, probs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) probability that the agent passes within CLEARANCE of the ego path; modes (N, K, T, 2)."""
    hits = distance_to_segment(modes, a, b).min(-1) < CLEARANCE  # (N, K)
    return (probs * hits).sum(1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, help="a trained run [default: train a tiny one]")
    parser.add_argument("--work", type=Path, help="where to write the dataset and run [default: a temp dir]")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        dataset.save(dataset.make(SceneConfig(), 1000, 200, 0, seed=0), work / "ds")
        ds = dataset.load(work / "ds")
        run = args.run
        if run is None:
            cfg = TrainConfig(epochs=2, batch_size=64, device="cpu", model=ModelConfig(width=64, depth=2))
            train(ds, cfg, work / "run")
            run = work / "run"
        predictors = {
            "model": Predictor.load(run),
            "cv": Predictor.baseline("cv"),
            "cv_fan": Predictor.baseline("cv_fan", train=ds),
            "lane_follow": Predictor.baseline("lane_follow", train=ds),
        }
        # What the planner's perception hands over: 32 agents at decision points, world frame.
        scenes = generate(
            SceneConfig(family_weights={"intersection": 0.5, "lane_change": 0.3, "stop_or_go": 0.2}),
            32,
            seed=42,
        )
        seen = {
            "history": scenes.history[..., :3],  # positions and headings: what a tracker gives
            "lanes": scenes.lanes,
            "lane_mask": scenes.lane_mask,
            "lane_type": scenes.lane_type,
        }
        a, b = ego_paths(scenes.history)
        results: dict[str, list[float]] = {}
        timing: dict[str, float] = {}
        for name, predictor in predictors.items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                start = time.perf_counter()
                out = predictor.predict(**seen)
                timing[name] = (time.perf_counter() - start) * 1e3
            for w in caught:
                print(f"{name}: warning: {w.message}", file=sys.stderr)
            results[name] = p_blocked(out.modes, out.probs, a, b).astype(float).round(3).tolist()
        enc = encode(scenes)
        mixture = fit_all(ds.train, ("intent_mixture",))["intent_mixture"].predict(enc)
        reference = (
            p_blocked(to_world(mixture.modes, enc.pose), mixture.probs, a, b).astype(float).round(3).tolist()
        )
    print(f"P(blocked) of a crossing ego path, 2 s ahead of each of {len(a)} agents (first 8 shown):")
    for name, values in (*results.items(), ("intent mixture (reference)", reference)):
        shown = " ".join(f"{v:4.2f}" for v in values[:8])
        mean = f"mean {np.mean(values):.2f}"
        where = f"  ({timing[name]:.2f} ms for the batch)" if name in timing else ""
        print(f"  {name:20s} {shown}   {mean}{where}")
    if args.json:
        print(json.dumps({"p_blocked": results, "intent_mixture": reference, "ms": timing}))


if __name__ == "__main__":
    main()
