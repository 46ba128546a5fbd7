"""Scenes per second for generation + encoding (the dataset's hot path).

    python benchmarks/generate.py --json          # one JSON line: {"scenes_per_s": ...}

Target (issue 2): >= 100k scenes/s for 200k scenes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from tinypred.data.encoding import encode
from tinypred.data.scene_config import SceneConfig
from tinypred.data.scenes import generate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200_000, help="scenes per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the best is reported")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    cfg = SceneConfig()
    encode(generate(cfg, 1000, 0))  # warm up imports and allocator
    gen_s, enc_s = [], []
    for seed in range(args.repeats):
        t0 = time.perf_counter()
        scenes = generate(cfg, args.n, seed)
        t1 = time.perf_counter()
        encode(scenes)
        t2 = time.perf_counter()
        gen_s.append(t1 - t0)
        enc_s.append(t2 - t1)
        del scenes
    best = min(g + e for g, e in zip(gen_s, enc_s, strict=True))
    result = {
        "scenes_per_s": round(args.n / best),
        "n": args.n,
        "best_total_s": round(best, 3),
        "generate_s": [round(x, 3) for x in gen_s],
        "encode_s": [round(x, 3) for x in enc_s],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
