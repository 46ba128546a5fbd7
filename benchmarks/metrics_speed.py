"""Time `tinypred.metrics.evaluate` (and `fit_scales`) on an AV2-sized batch of random float32 forecasts.

    python benchmarks/metrics_speed.py [--n 100000 --k 6 --t 30 --runs 5] [--json]

With --json, prints one JSON line: {"n", "k", "t", "dtype", "runs", "evaluate_s", "fit_scales_s"},
each time the median over `runs` calls.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np

from tinypred.evaluation.metrics import evaluate
from tinypred.evaluation.scales import fit_scales


def make_inputs(n: int, k: int, t: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random walks for gt and noisy copies of them for the K modes, with random probabilities."""
    rng = np.random.default_rng(seed)
    gt = np.cumsum(rng.normal(size=(n, t, 2)), axis=1).astype(np.float32)
    pred = (gt[:, None] + 2.0 * rng.normal(size=(n, k, t, 2))).astype(np.float32)
    probs = rng.dirichlet(np.ones(k), size=n).astype(np.float32)
    family = rng.integers(0, 5, size=n)
    return {"pred": pred, "probs": probs, "gt": gt, "family": family, "is_decision": family < 3}


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--t", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)

    x = make_inputs(args.n, args.k, args.t)
    scale = fit_scales(x["pred"], x["gt"], x["probs"])
    result = {
        "n": args.n,
        "k": args.k,
        "t": args.t,
        "dtype": "float32",
        "runs": args.runs,
        "evaluate_s": median_seconds(
            lambda: evaluate(
                x["pred"], x["probs"], x["gt"], scale, family=x["family"], is_decision=x["is_decision"]
            ),
            args.runs,
        ),
        "fit_scales_s": median_seconds(lambda: fit_scales(x["pred"], x["gt"], x["probs"]), args.runs),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>14}: {value:.4f}" if isinstance(value, float) else f"{key:>14}: {value}")


if __name__ == "__main__":
    main()
