"""Scenes per second for generation + encoding (the dataset's hot path).

    python benchmarks/generate.py --json                  # one JSON line: {"scenes_per_s": ...}
    python benchmarks/generate.py --write 1000000 --json  # `dataset.write` to disk: rate and peak memory

Targets: >= 100k scenes/s for 200k scenes on 2 CPU cores (issue 2), 200k scenes/s (issue 15); `--write`
shows the peak memory of writing a dataset shard by shard staying at about one block, whatever its size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from tinypred.data import dataset
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
    parser.add_argument(
        "--write", type=int, metavar="N", help="time `dataset.write` of N train scenes instead"
    )
    args = parser.parse_args()
    cfg = SceneConfig()
    result = write(cfg, args.write) if args.write else in_memory(cfg, args.n, args.repeats)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


def write(cfg: SceneConfig, n: int) -> dict:
    """Generate, encode and write n training scenes to a temporary directory, as `tinypred data generate`
    does; the peak resident memory of this process against the size of the dataset."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        dataset.write(cfg, n, 0, 0, seed=0, out=f"{tmp}/ds")
        seconds = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*.npy"))
    return {
        "scenes_per_s": round(n / seconds),
        "n": n,
        "total_s": round(seconds, 3),
        "dataset_mib": round(size / 2**20),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10),
        "cpus": os.cpu_count(),
    }


def in_memory(cfg: SceneConfig, n: int, repeats: int) -> dict:
    """The best of `repeats` runs of generating and encoding n scenes in memory."""
    encode(generate(cfg, 1000, 0))  # warm up imports and allocator
    gen_s, enc_s = [], []
    for seed in range(repeats):
        t0 = time.perf_counter()
        scenes = generate(cfg, n, seed)
        t1 = time.perf_counter()
        encode(scenes)
        t2 = time.perf_counter()
        gen_s.append(t1 - t0)
        enc_s.append(t2 - t1)
        del scenes
    best = min(g + e for g, e in zip(gen_s, enc_s, strict=True))
    return {
        "scenes_per_s": round(n / best),
        "n": n,
        "best_total_s": round(best, 3),
        "generate_s": [round(x, 3) for x in gen_s],
        "encode_s": [round(x, 3) for x in enc_s],
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    main()
