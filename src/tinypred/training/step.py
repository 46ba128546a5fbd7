"""One training step, and what it needs: the model as training builds it, the optimizer, the schedule.

`train_step` is the only place a gradient step is taken: the training loop, the device benchmark, the
diagnostics and the throughput benchmark all call it, with the same loss, autocast and clipping. Its
forward and loss are `forward_loss`, or that compiled once per run by `compiled_forward_loss`
(cfg.compile).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tinypred.data.dataset import Dataset
from tinypred.data.encoding import EncodedScenes, Normalizer
from tinypred.data.shards import ShardedScenes
from tinypred.predictors.losses import loss
from tinypred.predictors.model import TrajectoryMLP
from tinypred.predictors.prediction import model_inputs
from tinypred.training.config import TrainConfig


@dataclass
class Split:
    """A split as tensors on the device: normalised features x (N, D), ground truth y (N, T, 2)."""

    x: torch.Tensor
    y: torch.Tensor
    scenes: EncodedScenes

    @classmethod
    def of(cls, scenes: EncodedScenes, normalizer: Normalizer, device: torch.device) -> Split:
        return cls(
            model_inputs(scenes, normalizer, device), torch.from_numpy(scenes.future).to(device), scenes
        )


def build_model(ds: Dataset, cfg: TrainConfig, **model_updates: Any) -> TrajectoryMLP:
    """A fresh model for ds, seeded by cfg.seed: its head in units of the training futures' spread, with a
    scale head only if the loss trains one (nll). `model_updates` change ModelConfig fields (dropout=0)."""
    torch.manual_seed(cfg.seed)
    model = TrajectoryMLP(
        ds.normalizer.mean.shape[0],
        ds.shapes["T"],
        cfg.model.model_copy(update=model_updates),
        scales=cfg.loss.kind == "nll",
        neighbour_slots=ds.shapes["M"],
        history_steps=ds.shapes["H"],
    )
    train = ds.train
    if isinstance(train, ShardedScenes):  # shard by shard: a mapped split is never read whole
        square = sum(np.square(s.future, dtype=np.float64).sum(0) for s in train.shards)
        model.pos_scale.copy_(_floored(np.sqrt(square / len(train))))
    else:
        model.pos_scale.copy_(position_scale(train.future))
    return model


def position_scale(future: np.ndarray) -> torch.Tensor:
    """(T, 2) RMS of the training futures per step and coordinate (floored at 0.1 m): the head's units."""
    return _floored(np.sqrt((future.astype(np.float64) ** 2).mean(0)))


def _floored(rms: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.maximum(rms, 0.1).astype(np.float32))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (fused where the device has the kernel) or SGD with momentum, as configured."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    # fused: the whole update in one kernel over all parameters (8% of a CPU training step here, against
    # the foreach version); MPS gets foreach, which works everywhere.
    device = params[0].device.type
    fast = {"fused": True} if device in ("cpu", "cuda") else {"foreach": True}
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fast)


def lr_lambda(total_steps: int, warmup_frac: float, schedule: str) -> Callable[[int], float]:
    """Linear warm-up over warmup_frac of the steps, then cosine decay to 0 (or constant)."""
    warmup = int(total_steps * warmup_frac)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


ForwardLoss = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def forward_loss(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The forward on x (B, D) (under bf16 autocast if cfg.bf16) and the loss against y (B, T, 2) in
    float32 (the min over modes and the log-softmax need the precision): the scalar and its parts."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
        out = model(x)
    return loss(out.float(), y, cfg.loss)


def uses_cuda_graphs(device: torch.device, distributed: bool) -> bool:
    """Whether cfg.compile replays CUDA graphs: on NVIDIA CUDA in a single process. Under DDP (its hooks
    run between the graphs) and on ROCm, torch.compile's CUDA graphs have had open bugs (pytorch#128218,
    #187715), so there the step is compiled without them."""
    return device.type == "cuda" and torch.version.hip is None and not distributed


def compiled_forward_loss(model: torch.nn.Module, cfg: TrainConfig) -> ForwardLoss:
    """`forward_loss` of this model (or its DistributedDataParallel) as one torch.compile'd function,
    forward and backward: with CUDA graphs where `uses_cuda_graphs` (mode "reduce-overhead": the step's
    kernels replayed by one launch, where a model this small otherwise waits on launching them one by
    one), else inductor's fused kernels. It compiles on its first call and again for each new batch size
    (an epoch's short last batch), as a static shape (dynamic=False) with kernels made for it."""
    distributed = isinstance(model, torch.nn.parallel.DistributedDataParallel)
    graphs = uses_cuda_graphs(next(model.parameters()).device, distributed)
    mode = "reduce-overhead" if graphs else "default"
    return torch.compile(functools.partial(forward_loss, model, cfg=cfg), mode=mode, dynamic=False)


def train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    weight: float = 1.0,
    compiled: ForwardLoss | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch x (B, D), y (B, T, 2): `forward_loss` (or `compiled`, from
    `compiled_forward_loss` of this model), backward, clipping of the global gradient norm to
    cfg.grad_clip (0: off), the update.

    `weight` scales the loss before backward: under DistributedDataParallel, which averages the ranks'
    gradients, a rank holding share s of the global batch passes s x world, so that the gradient is
    the mean over the global batch however it was divided (see `loader`). The loss returned is not
    scaled.

    Returns the loss and the global gradient norm before clipping, as tensors (reading them syncs the
    device). A non-finite loss or gradient is not caught here: the norm says so, and the gradients are
    still on the parameters for the caller to inspect.
    """
    if compiled is None:
        total, _ = forward_loss(model, x, y, cfg)
    else:
        torch.compiler.cudagraph_mark_step_begin()  # a new step: the last one's graph outputs may be reused
        total, _ = compiled(x, y)
    opt.zero_grad(set_to_none=True)
    (total if weight == 1.0 else total * weight).backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
    opt.step()
    # A CUDA graph's output lives in memory its next replay overwrites: the caller keeps a copy.
    return (total if compiled is None else total.detach().clone()), norm


def bad_parameters(model: torch.nn.Module) -> list[str]:
    """The parameters whose gradient holds NaN or Inf, in forward order (input to output)."""
    return [
        name
        for name, p in model.named_parameters()
        if p.grad is not None and not torch.isfinite(p.grad).all()
    ]
