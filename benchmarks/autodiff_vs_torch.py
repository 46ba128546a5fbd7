"""Time one training step of the reference trajectory MLP: tinypred.backprop vs torch autograd (float32).

    python benchmarks/autodiff_vs_torch.py [--steps 40 --warmup 5 --batch 512] [--json]

The step is forward, WTA + CE loss, backward and an Adam update, on an MLP 256 -> 256 -> 256 -> 256 ->
K*T*2 + K (K = 6 modes, T = 30 steps: 366 outputs), ReLU, batch 512, both sides from the same weights on
the same batches. torch uses 2 threads; NumPy uses its BLAS default (all cores).

``step_time_ratio`` = engine / torch, each the median over ``steps`` steps taken *interleaved* (engine,
torch, torch, engine, ...), so that both see the same machine state. Interleaving has a cost of its own:
each library's worker threads keep spinning for a while after its last call (OpenBLAS the longest) and
slow down the other library's step that follows. So the same steps are also timed one library after the
other (``sequential_ratio``); on a 2-core machine the two ratios differ, and both are reported.

With --json, prints one JSON line: {"step_time_ratio", "engine_median_s", "torch_median_s",
"sequential_ratio", "engine_sequential_median_s", "torch_sequential_median_s", "batch", "steps", "dtype"}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from tinypred.backprop import MLP, Adam, Tensor, split_modes, wta_loss
from tinypred.backprop.battery import torch_wta_loss

SIZES = (256, 256, 256, 256)
MODES, STEPS = 6, 30
OUT = MODES * STEPS * 2 + MODES


def build(batch: int, seed: int = 0) -> tuple[Callable[[int], None], Callable[[int], None]]:
    """The engine and torch training steps, each taking the index of one of 4 pre-made batches."""
    rng = np.random.default_rng(seed)
    engine = MLP([*SIZES, OUT], "relu", "kaiming", rng, np.float32)
    layers: list[torch.nn.Module] = []
    for layer in engine.layers:
        linear = torch.nn.Linear(*layer.weight.shape)
        with torch.no_grad():  # the engine stores W as (in, out), torch as (out, in)
            linear.weight.copy_(torch.from_numpy(layer.weight.data.T))
            linear.bias.copy_(torch.from_numpy(layer.bias.data))
        layers += [linear, torch.nn.ReLU()]
    reference = torch.nn.Sequential(*layers[:-1])
    engine_opt = Adam(engine.parameters(), lr=1e-3)
    torch_opt = torch.optim.Adam(reference.parameters(), lr=1e-3)

    features = rng.standard_normal((4, batch, SIZES[0])).astype(np.float32)
    gts = np.cumsum(rng.standard_normal((4, batch, STEPS, 2)), axis=2).astype(np.float32)
    torch_features, torch_gts = torch.from_numpy(features), torch.from_numpy(gts)

    def engine_step(i: int) -> None:
        engine_opt.zero_grad()
        pred, logits = split_modes(engine(Tensor(features[i])), MODES, STEPS)
        wta_loss(pred, logits, gts[i]).backward()
        engine_opt.step()

    def torch_step(i: int) -> None:
        torch_opt.zero_grad()
        out = reference(torch_features[i])
        pred = out[:, : MODES * STEPS * 2].reshape(-1, MODES, STEPS, 2)
        torch_wta_loss(pred, out[:, MODES * STEPS * 2 :], torch_gts[i]).backward()
        torch_opt.step()

    return engine_step, torch_step


def _timed(step: Callable[[int], None], i: int) -> float:
    start = time.perf_counter()
    step(i % 4)
    return time.perf_counter() - start


def measure(batch: int, steps: int, warmup: int) -> dict:
    torch.set_num_threads(2)
    engine_step, torch_step = build(batch)
    engine_times, torch_times = [], []
    for i in range(warmup + steps):
        # Alternate which side goes first, so that neither always follows the other.
        pair = [(engine_step, engine_times), (torch_step, torch_times)]
        for step, times in pair if i % 2 == 0 else pair[::-1]:
            elapsed = _timed(step, i)
            if i >= warmup:
                times.append(elapsed)
    engine_s, torch_s = statistics.median(engine_times), statistics.median(torch_times)
    engine_seq, torch_seq = (
        statistics.median([_timed(step, i) for i in range(steps)]) for step in (engine_step, torch_step)
    )
    return {
        "step_time_ratio": engine_s / torch_s,
        "engine_median_s": engine_s,
        "torch_median_s": torch_s,
        "sequential_ratio": engine_seq / torch_seq,
        "engine_sequential_median_s": engine_seq,
        "torch_sequential_median_s": torch_seq,
        "batch": batch,
        "steps": steps,
        "dtype": "float32",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per side first")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    result = measure(args.batch, args.steps, args.warmup)
    if args.json:
        print(json.dumps(result))
        return
    for label, key in (("interleaved", ""), ("sequential", "sequential_")):
        ratio = result["step_time_ratio" if label == "interleaved" else "sequential_ratio"]
        print(
            f"{label}: engine {result[f'engine_{key}median_s'] * 1e3:.2f} ms, "
            f"torch {result[f'torch_{key}median_s'] * 1e3:.2f} ms per step, ratio {ratio:.3f} "
            f"(medians of {args.steps}, batch {args.batch})"
        )


if __name__ == "__main__":
    main()
