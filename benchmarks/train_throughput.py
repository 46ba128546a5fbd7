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

The training loader (`tinypred.training.loader.BatchLoader`), on a real synthetic dataset saved in
shards (its features: D = 888, 600 of them the 4 neighbour slots) and fed to the same step, of the model
as `train` builds it (the slots through the shared agent encoder; loader_matmul_params counts its
weights once per slot):
  loader_resident_samples_per_s   the dataset in memory, its features on the device (as `train` does for
                                  data that fits)
  loader_streamed_samples_per_s   the dataset memory-mapped: rows gathered from the shards, checked,
                                  featurised and normalised per batch on a thread, `prefetch` ahead
  loader_matmul_bound_samples_per_s  what the step would reach if it took only its matmuls at the peak
                                  GEMM rate: peak / (6 x weights); loader_fraction_of_matmul_bound is
                                  streamed / that (target >= 0.75), loader_resident_fraction_of_matmul_bound
                                  resident / that
  loader_slots_present            the fraction of neighbour slots present in this data: training on the
                                  CPU encodes only those (the bound above counts every slot), so
                                  loader_fraction_of_bound_of_work_done is streamed against the bound of
                                  the weights actually multiplied (the encoder's once per present slot)
  loader_vs_tensor_step           streamed / resident: what streaming costs against data already on the
                                  device
  naive_dataset_samples_per_s     a per-sample Dataset over the same memory-mapped shards (features of one
                                  scene per __getitem__) and a DataLoader with shuffling and default
                                  collation: the naive way to the same batches; speedup_streamed_vs_naive
                                  is streamed / that (target >= 1.5)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from tinypred.data import dataset
from tinypred.data.encoding import FEATURE_ARRAYS, features
from tinypred.data.scene_config import SceneConfig
from tinypred.predictors.model import TrajectoryMLP
from tinypred.training import TrainConfig, build_model, make_optimizer, train_step
from tinypred.training.loader import BatchLoader

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
    parser.add_argument("--shard-size", type=int, default=8192, help="samples per shard of the dataset")
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
    loaders = loader_throughput(args, cfg)
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
        **loaders,
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


def loader_throughput(args: argparse.Namespace, cfg: TrainConfig) -> dict[str, float]:
    """The training loader's batches fed to the real step, resident and streamed from memory-mapped
    shards, beside a naive per-sample DataLoader over the same shards and the matmul bound."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = dataset.save(
            dataset.make(SceneConfig(), args.samples, 64, 0, seed=0), f"{tmp}/ds", args.shard_size
        )
        ram, mapped = dataset.load(path), dataset.load(path, mmap=True)
        d = ram.normalizer.mean.shape[0]
        model = build_model(ram, cfg)  # as train builds it: the neighbour slots through the agent encoder
        opt = make_optimizer(model, cfg)
        cpu = torch.device("cpu")
        resident = BatchLoader(ram.train, ram.normalizer, args.batch, 0, cpu)
        streamed = BatchLoader(mapped.train, mapped.normalizer, args.batch, 0, cpu)
        assert resident.resident and not streamed.resident

        class PerScene(torch.utils.data.Dataset):
            """The naive way: one scene's features per item, from the memory-mapped shards."""

            def __len__(self) -> int:
                return len(mapped.train)

            def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
                rows = mapped.train.gather(np.array([i]), (*FEATURE_ARRAYS, "future"))
                x = mapped.normalizer(features(rows))[0]
                return torch.from_numpy(x), torch.from_numpy(rows["future"][0])

        naive = torch.utils.data.DataLoader(PerScene(), batch_size=args.batch, shuffle=True)

        def epoch(batches) -> float:
            start = time.perf_counter()
            for b in batches:
                x, y = (b.x, b.y) if hasattr(b, "x") else b
                total, _ = train_step(model, opt, x, y, cfg)
            total.item()
            return args.samples / (time.perf_counter() - start)

        epoch(resident.epoch(0))  # warm-up
        res, stream, slow, peaks = [], [], [], []
        for e in range(args.epochs):  # interleaved, so that all see the same machine
            peaks.append(peak_gemm_gflops())
            res.append(epoch(resident.epoch(e)))
            stream.append(epoch(streamed.epoch(e)))
            slow.append(epoch(naive))
        peak = float(np.median(peaks)) * 1e9
        bound = peak / (6 * model.matmul_params())
        present = float(ram.train.neighbour_mask[:, :, -1].mean())
        encoder = sum(m.weight.numel() for m in model.agent_encoder if isinstance(m, torch.nn.Linear))
        done = model.matmul_params() - (1 - present) * model.neighbour_slots * encoder
        r, s, n = (float(np.median(v)) for v in (res, stream, slow))
        return {
            "loader_features": d,
            "loader_matmul_params": model.matmul_params(),
            "loader_resident_samples_per_s": round(r),
            "loader_streamed_samples_per_s": round(s),
            "loader_matmul_bound_samples_per_s": round(bound),
            "loader_fraction_of_matmul_bound": round(s / bound, 3),
            "loader_resident_fraction_of_matmul_bound": round(r / bound, 3),
            "loader_slots_present": round(present, 3),
            "loader_fraction_of_bound_of_work_done": round(s / (peak / (6 * done)), 3),
            "loader_vs_tensor_step": round(s / r, 3),
            "naive_dataset_samples_per_s": round(n),
            "speedup_streamed_vs_naive": round(s / n, 2),
            "shards": len(mapped.train.shards),
        }


if __name__ == "__main__":
    main()
