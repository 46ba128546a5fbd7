"""Inference latency on the CPU: the Predictor (encoding included), the bare model, ONNX and pt2 exports.

    python benchmarks/latency.py --json [--run RUN] [--calls 1000] [--threads 2]

Without --run it trains the default model (3 x 256, K = 6) for one epoch on 2,000 generated scenes
(about 10 s): latency depends on the architecture, not on how well it learned. Each entry holds the p50
and p99 over `--calls` calls (after 50 warm-up calls), in ms, at batch 1 and batch 64:

    predictor  Predictor.predict on world-frame arrays (history (N, 20, 5), lanes, lane masks and
               types): checks, encoding, normaliser, model, back to the world
    predictor_onnx  the same calls on `Predictor.load("model.onnx")`: the exported graph under
               onnxruntime in place of the eager torch model
    model      the bare TrajectoryMLP forward on ready normalised features, under torch.inference_mode
    onnx       an onnxruntime session of `tinypred export --format onnx` on the encoded arrays
    pt2        the `tinypred export --format pt2` program on the encoded arrays, under inference_mode
    breakdown  Predictor.predict at batch 1, stage by stage inside the same calls (p50, ms): checking the
               arrays (`world_inputs`), moving them into the agent frame (`move_inputs`), normalise
               (features, normaliser, far-out check), model (`model_outputs`: forward, probabilities,
               NumPy), to_world
    config     threads, the model, the input, and the ratios to the bare model

The target: Predictor.predict at batch 1 under 1 ms p50, and within 2x of the bare model. Each stage
costs more inside the chain than alone in a loop (the bare model's 0.18 ms is 0.25 ms or more after any
NumPy work: the CPU's caches and branch predictors are no longer warm for it), which is why the breakdown
is timed inside the same calls.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tinypred.data import SceneConfig, dataset, encode, generate, to_world
from tinypred.data.encoding import move_inputs
from tinypred.predictors.api import Predictor
from tinypred.predictors.export import export, load_pt2
from tinypred.predictors.prediction import model_outputs
from tinypred.predictors.world_input import ENCODED_INPUTS
from tinypred.training import TrainConfig, train

WARMUP = 50


def percentiles(f: Callable[[], object], calls: int) -> dict[str, float]:
    """p50 and p99 of f's wall time over `calls` calls, ms."""
    for _ in range(WARMUP):
        f()
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        f()
        times[i] = time.perf_counter() - start
    return {
        "p50_ms": round(float(np.percentile(times, 50)) * 1e3, 4),
        "p99_ms": round(float(np.percentile(times, 99)) * 1e3, 4),
    }


def trained_run(root: Path) -> Path:
    """The default architecture, trained for one epoch on a small generated dataset."""
    ds = dataset.make(SceneConfig(), 2000, 300, 10, seed=0)
    dataset.save(ds, root / "ds")
    train(dataset.load(root / "ds"), TrainConfig(epochs=1, device="cpu"), root / "run")
    return root / "run"


def breakdown(p: Predictor, inputs: dict, calls: int) -> dict[str, float]:
    """Predictor.predict's stages at batch 1, timed inside the same calls (p50 of each, ms)."""
    assert p.loaded is not None
    stages = ("check_inputs", "move_inputs", "normalise", "model", "to_world")
    times = np.empty((WARMUP + calls, len(stages) + 1))
    for i in range(len(times)):
        t0 = time.perf_counter()
        given = p.inputs.world_inputs(**inputs)
        t1 = time.perf_counter()
        pose = given["history"][:, -1, :3].astype(np.float64)
        enc = {**given, **move_inputs(given, pose)}
        t2 = time.perf_counter()
        x = p.normalised(enc)
        t3 = time.perf_counter()
        modes, _, _ = model_outputs(p.loaded.model, torch.from_numpy(x))
        t4 = time.perf_counter()
        to_world(modes, pose)
        t5 = time.perf_counter()
        times[i] = [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0]
    p50 = np.percentile(times[WARMUP:], 50, axis=0) * 1e3
    return {name: round(float(v), 4) for name, v in zip((*stages, "total"), p50, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, help="a run directory [default: train the default model]")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = args.run or trained_run(root)
        p = Predictor.load(run)
        e = p.encoding
        cfg = SceneConfig(
            dt=e.dt, history_steps=e.history_steps, future_steps=e.future_steps, max_lanes=e.max_lanes,
            lane_points=e.lane_points, max_neighbours=e.max_neighbours,
        )  # fmt: skip
        scenes = generate(cfg, 64, seed=1)
        enc = encode(scenes)
        export(p, "onnx", root / "model.onnx")
        export(p, "pt2", root / "model.pt2")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        session = onnxruntime.InferenceSession(
            str(root / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        program = load_pt2(root / "model.pt2").module()
        served = Predictor.load(root / "model.onnx")
        assert p.loaded is not None
        model = p.loaded.model
        results: dict[str, dict] = {"predictor": {}, "predictor_onnx": {}, "model": {}, "onnx": {}, "pt2": {}}
        for label, n in (("b1", 1), ("b64", 64)):
            world = {
                "history": scenes.history[:n],
                "lanes": scenes.lanes[:n],
                "lane_mask": scenes.lane_mask[:n],
                "lane_type": scenes.lane_type[:n],
                "lane_is_intersection": scenes.lane_is_intersection[:n],
            }
            encoded = {k: np.ascontiguousarray(getattr(enc, k)[:n], np.float32) for k in ENCODED_INPUTS}
            tensors = tuple(torch.from_numpy(encoded[k]) for k in ENCODED_INPUTS)
            x = torch.from_numpy(p.normalised(enc.subset(slice(0, n))))

            def bare(x: torch.Tensor = x) -> object:
                with torch.inference_mode():
                    return model(x)

            def pt2(tensors: tuple = tensors) -> object:
                with torch.inference_mode():
                    return program(*tensors)

            results["predictor"][label] = percentiles(lambda world=world: p.predict(**world), args.calls)
            results["predictor_onnx"][label] = percentiles(
                lambda world=world: served.predict(**world), args.calls
            )
            results["model"][label] = percentiles(bare, args.calls)
            results["onnx"][label] = percentiles(
                lambda encoded=encoded: session.run(None, encoded), args.calls
            )
            results["pt2"][label] = percentiles(pt2, args.calls)
            if n == 1:
                results["breakdown"] = breakdown(p, world, args.calls)
        results["config"] = {
            "threads": args.threads,
            "calls": args.calls,
            "model": {**model.cfg.model_dump(), "in_features": model.in_features, "horizon": model.horizon},
            "predictor_input": "history (N, H, 5) world states, lanes (N, L, P, 2), lane_mask, lane_type",
            "run": str(args.run) if args.run else "trained here: default model, 1 epoch, 2000 scenes",
        }

    def ratio(a: str, b: str) -> float:
        return round(results[a]["b1"]["p50_ms"] / results[b]["b1"]["p50_ms"], 2)

    results["config"]["predictor_over_model_b1_p50"] = ratio("predictor", "model")
    results["config"]["predictor_onnx_over_model_b1_p50"] = ratio("predictor_onnx", "model")
    results["config"]["predictor_onnx_over_onnx_b1_p50"] = ratio("predictor_onnx", "onnx")
    if args.json:
        print(json.dumps(results))
        return
    for name in ("predictor", "predictor_onnx", "model", "onnx", "pt2"):
        r = results[name]
        print(f"{name:14s} b1 p50 {r['b1']['p50_ms']:.3f} ms p99 {r['b1']['p99_ms']:.3f} ms   "
              f"b64 p50 {r['b64']['p50_ms']:.3f} ms p99 {r['b64']['p99_ms']:.3f} ms")  # fmt: skip
    print("breakdown (b1 p50, ms):", results["breakdown"])
    print(f"at batch 1, over the bare torch model: Predictor.predict {ratio('predictor', 'model'):.2f}x, "
          f"on the ONNX graph {ratio('predictor_onnx', 'model'):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
