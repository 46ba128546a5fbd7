"""Training throughput of the default model on the CPU, against the machine's matmul peak and a naive loader.

    python benchmarks/train_throughput.py --json

One JSON line:
  samples_per_s               the real training step (forward, loss, backward, clip, AdamW) on tensors,
                              default model, batch 512, fp32, 2 threads
  achieved_gflops             6 x (weights in matmuls) x samples/s: 2 FLOPs per multiply-add, forward once
                              and backward twice (input and weight gradients); biases, activations, the
                              loss and the optimizer are not counted
  peak_gemm_gflops            a 2048 x 2048 fp32 matmul, measured in the same run
  fraction_of_peak            achieved / peak (target >= 0.6)
  naive_loader_samples_per_s  the same step fed by a per-sample Dataset over the NumPy arrays (what the
                              .npz files hold; __getitem__ returns torch.from_numpy of one scene) and a
                              DataLoader with shuffling and default collation (target: tensors >= 1.2x)
  tensor_dataset_samples_per_s  the same through torch's TensorDataset (per-sample indexing of tensors,
                              the cheapest per-sample path), for reference
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from tinypred.predictors.model import TrajectoryMLP
from tinypred.training import TrainConfig, make_optimizer, train_step

D, T = 256, 30


def peak_gemm_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--samples", type=int, default=32768, help="training set size per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = TrainConfig(batch_size=args.batch)
    x = torch.randn(args.samples, D)
    y = torch.randn(args.samples, T, 2) * 10
    model = TrajectoryMLP(D, T, cfg.model, scales=cfg.loss.kind == "nll")  # as train builds it
    opt = make_optimizer(model, cfg)

    def epoch_on_tensors() -> float:
        start = time.perf_counter()
        perm = torch.randperm(args.samples)
        for i in range(0, args.samples, args.batch):
            idx = perm[i : i + args.batch]
            total, _ = train_step(model, opt, x[idx], y[idx], cfg)
        total.item()
        return args.samples / (time.perf_counter() - start)

    class SceneArrays(torch.utils.data.Dataset):
        """The naive way: one scene at a time from the NumPy arrays."""

        def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
            self.x, self.y = x, y

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.from_numpy(self.x[i]), torch.from_numpy(self.y[i])

    naive_loader = torch.utils.data.DataLoader(
        SceneArrays(x.numpy(), y.numpy()), batch_size=args.batch, shuffle=True
    )
    tensor_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=args.batch, shuffle=True
    )

    def epoch_through(loader) -> float:
        start = time.perf_counter()
        for xb, yb in loader:
            total, _ = train_step(model, opt, xb, yb, cfg)
        total.item()
        return args.samples / (time.perf_counter() - start)

    epoch_on_tensors()  # warm-up
    fast, naive, tensor_ds, peaks = [], [], [], []
    for _ in range(args.epochs):  # interleaved, so that all see the same machine
        peaks.append(peak_gemm_gflops())
        fast.append(epoch_on_tensors())
        naive.append(epoch_through(naive_loader))
        tensor_ds.append(epoch_through(tensor_loader))
    samples_per_s = float(np.median(fast))
    achieved = 6 * model.matmul_params() * samples_per_s / 1e9
    peak = float(np.median(peaks))
    result = {
        "samples_per_s": round(samples_per_s),
        "achieved_gflops": round(achieved, 1),
        "peak_gemm_gflops": round(peak, 1),
        "fraction_of_peak": round(achieved / peak, 3),
        "naive_loader_samples_per_s": round(float(np.median(naive))),
        "speedup_vs_naive": round(samples_per_s / float(np.median(naive)), 2),
        "tensor_dataset_samples_per_s": round(float(np.median(tensor_ds))),
        "speedup_vs_tensor_dataset": round(samples_per_s / float(np.median(tensor_ds)), 2),
        "matmul_params": model.matmul_params(),
        "batch": args.batch,
        "threads": args.threads,
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
