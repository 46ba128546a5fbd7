"""The training step eager and compiled, in fp32 and bf16, against the device's own matmul peak.

    python benchmarks/compiled_step.py --json                 # the CPU (2 threads)
    python benchmarks/compiled_step.py --device cuda --json   # a GPU: CUDA graphs, bf16

One JSON line: for each of eager / compiled x fp32 / bf16 (bf16 where the device has it), the step time
of the default model (with its 4 neighbour slots, D = 888) at batch 512, samples/s, the TFLOPS its
matmuls reach (6 x weights in matmuls x samples/s, as `train_throughput.py` counts them), that as a
fraction of a large square GEMM in the same precision measured in the same run, and the seconds the
first compiled steps took (compilation). The step is `train_step` with `compiled_forward_loss` (cfg.compile
in `tinypred train`): on CUDA the forward and backward replay as CUDA graphs, which is what a model this
small needs there; on the CPU inductor fuses the elementwise work around the matmuls.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from tinypred.predictors.model import TrajectoryMLP
from tinypred.training import TrainConfig, make_optimizer, train_step
from tinypred.training.step import compiled_forward_loss

D, T, M, H = 888, 30, 4, 20  # the default dataset's features, horizon, neighbour slots, history


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_tflops(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 10) -> float:
    """The best of `repeats` n x n matmuls in dtype."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e12


def time_steps(device: torch.device, bf16: bool, compile_: bool, steps: int, batch: int) -> dict:
    cfg = TrainConfig(batch_size=batch, bf16=bf16, compile=compile_)
    torch.manual_seed(0)
    model = TrajectoryMLP(D, T, cfg.model, neighbour_slots=M, history_steps=H).to(device)
    opt = make_optimizer(model, cfg)
    xs = torch.randn(8, batch, D, device=device)
    ys = torch.randn(8, batch, T, 2, device=device) * 10
    compiled = compiled_forward_loss(model, cfg) if compile_ else None
    start = time.perf_counter()
    for i in range(10):  # warm-up, and compilation
        train_step(model, opt, xs[i % 8], ys[i % 8], cfg, compiled=compiled)
    sync(device)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(steps):
        total, _ = train_step(model, opt, xs[i % 8], ys[i % 8], cfg, compiled=compiled)
    total.item()
    seconds = (time.perf_counter() - start) / steps
    return {
        "step_ms": round(seconds * 1e3, 3),
        "samples_per_s": round(batch / seconds),
        "tflops": round(6 * model.matmul_params() * batch / seconds / 1e12, 4),
        "warmup_s": round(warm, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    precisions = ["fp32"]
    if not on_cuda or torch.cuda.is_bf16_supported():
        precisions.append("bf16")
    n = 8192 if on_cuda else 2048
    result: dict = {"device": torch.cuda.get_device_name(device) if on_cuda else "cpu", "batch": args.batch}
    if on_cuda:
        result["tf32"] = torch.backends.cuda.matmul.allow_tf32
    for precision in precisions:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        peak = peak_tflops(device, dtype, n)
        result[f"peak_{precision}_tflops"] = round(peak, 2)
        for mode in ("eager", "compiled"):
            row = time_steps(device, precision == "bf16", mode == "compiled", args.steps, args.batch)
            row["fraction_of_peak"] = round(row["tflops"] / peak, 3)
            result[f"{mode}_{precision}"] = row
        eager, compiled = result[f"eager_{precision}"], result[f"compiled_{precision}"]
        result[f"speedup_compiled_{precision}"] = round(eager["step_ms"] / compiled["step_ms"], 2)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
