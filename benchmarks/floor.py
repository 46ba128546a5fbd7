"""The bayes floor: how long it takes, and how far a trained model is from it.

    python benchmarks/floor.py --json                         # a fresh 4000-scene test split: timings
    python benchmarks/floor.py --data runs/demo/data --run runs/demo/run --json   # + model/floor ratios

Targets (issue 13): drawing the floor's samples for a 4,000-scene test split under a minute on 2
cores (`sampling_s`: 512 draws to choose the predictions and 512 held out, per scene); at decision
points the model's minFDE@6 within 1.25x of the floor (aim 1.10x). Ratios are in expectation over the
held-out draws (`expected / floor`), per slice, @1 beside @6.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from tinypred.data import dataset
from tinypred.data.scene_config import SceneConfig
from tinypred.data.truth import future_samples
from tinypred.predictors.bayes import bayes_floor
from tinypred.predictors.model_file import load_run
from tinypred.predictors.prediction import predict_split

RATIO_METRICS = ("minFDE@6", "minFDE@1", "minADE@6", "MR@6", "brier-minFDE@6")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="a synthetic dataset (default: a fresh one, --n test scenes)")
    parser.add_argument("--run", help="a run directory trained on --data: adds the model/floor ratios")
    parser.add_argument("--n", type=int, default=4000, help="test scenes of the fresh dataset")
    parser.add_argument("--samples", type=int, default=512, help="draws per scene, and as many held out")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    if args.run and not args.data:
        parser.error("--run needs the --data it was trained on")
    ds = dataset.load(args.data) if args.data else dataset.make(SceneConfig(), 1000, 10, args.n, seed=0)

    start = time.perf_counter()
    for _ in future_samples(ds, "test", 2 * args.samples, seed=0):
        pass
    sampling = time.perf_counter() - start

    compare = {}
    if args.run:
        compare["mlp"] = predict_split(load_run(args.run, ds), ds, "test")
    start = time.perf_counter()
    floor = bayes_floor(ds, "test", args.samples, args.samples, seed=0, compare=compare)
    total = time.perf_counter() - start

    result = {
        "test_scenes": len(ds.test),
        "samples": args.samples,
        "sampling_s": round(sampling, 2),
        "floor_s": round(total, 2),
        "cpus": len(os.sched_getaffinity(0)),
        "floor": {
            part: {m: round(floor.floor[part][m]["value"], 4) for m in RATIO_METRICS}
            for part in ("all", "decision", "interactive", "other")
            if part in floor.floor
        },
    }
    if compare:
        result["model_over_floor"] = {
            part: {
                m: round(floor.expected["mlp"][part][m] / max(floor.floor[part][m]["value"], 1e-9), 3)
                for m in RATIO_METRICS
            }
            for part in result["floor"]
        }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
