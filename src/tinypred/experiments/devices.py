"""Wall-clock training time per device and precision: the same training steps on cpu, cuda and mps."""

from __future__ import annotations

import math

import torch
from torch.utils import benchmark

from tinypred.data.dataset import Dataset
from tinypred.errors import TinypredError
from tinypred.training.config import TrainConfig, resolve_device
from tinypred.training.step import Split, build_model, make_optimizer, train_step

DEVICES = ("cpu", "cuda", "mps")


def _bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type in ("cpu", "mps")


def device_bench(ds: Dataset, cfg: TrainConfig, steps: int = 200, batch_size: int = 512) -> list[dict]:
    """Time `steps` training steps of the model on every device and precision; absent ones say so.

    Rows: device, precision (fp32 / bf16 autocast), status ("ok" / "unavailable" / "unsupported"),
    seconds (wall clock for the steps, after a warm-up), samples_per_s, and the final loss.
    """
    rows = []
    for name in DEVICES:
        try:
            device = resolve_device(name)
        except TinypredError:
            rows += [{"device": name, "precision": p, "status": "unavailable"} for p in ("fp32", "bf16")]
            continue
        for precision in ("fp32", "bf16"):
            if precision == "bf16" and not _bf16_supported(device):
                rows.append({"device": name, "precision": precision, "status": "unsupported"})
                continue
            run_cfg = cfg.model_copy(update={"batch_size": batch_size, "bf16": precision == "bf16"})
            rows.append(
                {
                    "device": name,
                    "precision": precision,
                    "status": "ok",
                    **_time_training(ds, run_cfg, device, steps),
                }
            )
    return rows


def _time_training(ds: Dataset, cfg: TrainConfig, device: torch.device, steps: int) -> dict:
    """`steps` training steps timed with torch.utils.benchmark.Timer: after a warm-up, on this process's
    torch threads, with the device synchronised (Timer does it for CUDA; MPS is synchronised per step)."""
    split = Split.of(ds.train, ds.normalizer, device)
    model = build_model(ds, cfg).to(device)
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    n, batch_size = len(split.x), cfg.batch_size
    last = [torch.zeros(())]

    def step() -> None:
        idx = torch.randint(0, n, (batch_size,), generator=gen).to(device)
        last[0], _ = train_step(model, opt, split.x[idx], split.y[idx], cfg)

    for _ in range(10):  # warm-up: kernels, allocator, autotuning
        step()
    sync = torch.mps.synchronize if device.type == "mps" else (lambda: None)
    timer = benchmark.Timer(
        stmt="step(); sync()", globals={"step": step, "sync": sync}, num_threads=torch.get_num_threads()
    )
    seconds = timer.timeit(steps).mean * steps
    final = last[0].item()
    return {
        "seconds": seconds,
        "samples_per_s": steps * batch_size / seconds,
        "steps": steps,
        "batch_size": batch_size,
        "final_loss": final if math.isfinite(final) else None,
    }
