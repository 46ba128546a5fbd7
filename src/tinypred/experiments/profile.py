"""Where the time goes: torch.profiler over a trained run's inference and training steps.

Three phases, each profiled over `steps` steps after 1 skipped and 2 warm-up steps (torch.profiler's
schedule), each written as a Chrome trace (opens in https://ui.perfetto.dev or chrome://tracing):

    infer_b1     the model's forward pass on 1 sample, in eval and inference mode -> trace_infer_b1.json
    infer_b512   the same on 512 samples                                          -> trace_infer_b512.json
    train        `training.step.train_step` on batches of the run's batch size     -> trace_train.json

Each phase's table: every operator by self CPU time (ms per step), its share of all self time (the
shares sum to 100) and its calls per step. "ProfilerStep*" is the step's own self time: Python and
whatever ran between the operators.

The NumPy engine's side (`tinypred.backprop.profiling`, which imports nothing of the rest) is fed from
here: `engine_spec` turns the run into plain arrays and settings, and `engine_batches` gives it the
training phase's batches. `run_profile` does it all; `write_profile` writes both as profile.json and the
figure profile.png.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, schedule

from tinypred.backprop.profiling import EngineStep, profile_training
from tinypred.config import build
from tinypred.data import dataset
from tinypred.data.dataset import Dataset
from tinypred.errors import TinypredError
from tinypred.fileio import atomic_open, write_json
from tinypred.predictors.model_file import LoadedModel, load_run
from tinypred.predictors.prediction import model_inputs
from tinypred.report.profile_figure import profile_figure
from tinypred.training.config import TrainConfig, resolve_device
from tinypred.training.step import make_optimizer, train_step

WAIT, WARMUP = 1, 2  # profiler schedule: steps skipped, then steps recorded but thrown away
INFER_BATCHES = (1, 512)
POOL = 8192  # training samples the batches are drawn from: enough to vary, bounded in memory
PROFILE_FILE, FIGURE_FILE = "profile.json", "profile.png"


def load(run: str | Path, data: str | Path, device: str) -> tuple[Dataset, LoadedModel, TrainConfig]:
    """The dataset, the run's model on `device` and its training config; errors name run or data."""
    try:
        ds = dataset.load(data)
    except TinypredError as e:
        raise TinypredError(e.message, arg=e.arg or "data") from None
    if len(ds.train) == 0 or not ds.train.has_future:
        raise TinypredError(f"{data}: no training split with known futures to train on", arg="data")
    try:
        loaded = load_run(run, ds, resolve_device(device))
        cfg = build(TrainConfig, loaded.config, f"{Path(run) / 'model.safetensors'}: config")
    except TinypredError as e:
        raise TinypredError(e.message, arg=e.arg or "run") from None
    return ds, loaded, cfg


def batch_indices(n: int, batch: int, count: int, seed: int) -> list[np.ndarray]:
    """`count` batches of `batch` indices into n samples, drawn with replacement (a batch may be larger
    than the pool), seeded: torch and the engine train on the same batches."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, batch) for _ in range(count)]


def _pool(ds: Dataset, loaded: LoadedModel, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    scenes = ds.train.subset(slice(0, POOL))
    return model_inputs(scenes, loaded.normalizer, device), torch.from_numpy(scenes.future).to(device)


def _table(prof: profile, steps: int, cuda: bool) -> tuple[list[dict[str, Any]], float]:
    """Every operator's self CPU time per step, share and calls per step, largest first; and the
    step's total (the sum of all self times: each instant of the step is some event's self time)."""
    events = list(prof.key_averages())
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = []
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total):
        row = {
            "op": e.key,
            "self_cpu_ms": e.self_cpu_time_total / 1e3 / steps,
            "share_pct": 100 * e.self_cpu_time_total / total,
            "calls": e.count / steps,
        }
        if cuda:
            row["self_device_ms"] = e.self_device_time_total / 1e3 / steps
        rows.append(row)
    return rows, total / 1e3 / steps


def _profiled(device: torch.device, steps: int, step_fn: Any, trace: Path) -> tuple[list[dict], float]:
    """Run step_fn(i) for the schedule's steps under the profiler; export the trace; the table."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    done: list[Any] = []
    # Kineto (read when the profiler starts) prints "USDT ... profiler_start" lines to stderr at every
    # level below 6, in the middle of the command's own output; a user who wants them sets the variable.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")

    def ready(prof: profile) -> None:
        prof.export_chrome_trace(str(trace))
        done.append(_table(prof, steps, cuda))

    with profile(
        activities=activities,
        schedule=schedule(wait=WAIT, warmup=WARMUP, active=steps, repeat=1),
        on_trace_ready=ready,
        record_shapes=False,
    ) as prof:
        for i in range(WAIT + WARMUP + steps):
            step_fn(i)
            prof.step()
    return done[0]


def profile_torch(
    loaded: LoadedModel, ds: Dataset, cfg: TrainConfig, out: str | Path, steps: int = 20
) -> dict[str, dict[str, Any]]:
    """Profile inference (batch 1 and 512) and `steps` training steps of the loaded model, writing
    each phase's Chrome trace into `out`. Returns by phase: batch, steps, ms_per_step, trace (the file
    name), rows. The training phase trains a copy: `loaded` keeps the run's weights."""
    model = loaded.model
    device = next(model.parameters()).device
    torch.manual_seed(cfg.seed)
    x, y = _pool(ds, loaded, device)
    phases: dict[str, dict[str, Any]] = {}
    count = WAIT + WARMUP + steps
    with tempfile.TemporaryDirectory() as tmp:
        for batch in INFER_BATCHES:
            # Batches gathered beforehand: the gather is the data pipeline's cost, not the model's.
            xs = [x[torch.from_numpy(i).to(device)] for i in batch_indices(len(x), batch, count, cfg.seed)]
            model.eval()

            @torch.inference_mode()
            def infer(i: int, xs: list[torch.Tensor] = xs) -> None:
                model(xs[i])

            phases[f"infer_b{batch}"] = _phase(device, steps, infer, batch, Path(tmp), f"infer_b{batch}")
        idx = [torch.from_numpy(i).to(device) for i in train_batches(len(x), cfg, steps)]
        xs, ys = [x[i] for i in idx], [y[i] for i in idx]
        trained = copy.deepcopy(model).train()
        opt = make_optimizer(trained, cfg)

        def train(i: int) -> None:
            train_step(trained, opt, xs[i], ys[i], cfg)

        phases["train"] = _phase(device, steps, train, cfg.batch_size, Path(tmp), "train")
        for phase in phases.values():  # the traces, each written whole
            with open(Path(tmp) / phase["trace"], "rb") as src, atomic_open(Path(out) / phase["trace"]) as f:
                shutil.copyfileobj(src, f)
    return phases


def _phase(device: torch.device, steps: int, fn: Any, batch: int, tmp: Path, name: str) -> dict[str, Any]:
    trace = f"trace_{name}.json"
    rows, ms = _profiled(device, steps, fn, tmp / trace)
    return {"batch": batch, "steps": steps, "ms_per_step": ms, "trace": trace, "rows": rows}


def train_batches(n: int, cfg: TrainConfig, steps: int) -> list[np.ndarray]:
    """The training phase's batches (skipped and warm-up steps first): the engine trains on them too."""
    return batch_indices(n, cfg.batch_size, WAIT + WARMUP + steps, cfg.seed + 1)


def engine_spec(loaded: LoadedModel, cfg: TrainConfig) -> tuple[dict[str, Any], list[str]]:
    """The run as the NumPy engine rebuilds it (`backprop.profiling.EngineStep`'s fields: the same
    weights, as (in, out) float32 arrays) and, in words, what the engine cannot copy."""
    model, notes = loaded.model, []
    layers = [m for _, m in model.linear_layers()]
    activation = model.cfg.activation
    if activation not in ("relu", "tanh", "sigmoid"):
        notes.append(f"the engine has no {activation}: relu instead")
        activation = "relu"
    if model.cfg.norm != "none" or model.cfg.dropout > 0:
        notes.append("the engine has no normalisation or dropout layers: left out")
    if model.agent_encoder is not None:
        notes.append("the agent encoder runs once in torch: the engine trains the MLP on its pooled output")
    loss = loaded.loss
    if loss.kind != "wta":
        notes.append(f"the engine has no {loss.kind} loss: winner-take-all instead")
    if cfg.bf16:
        notes.append("the engine computes in float32, not bf16")
    spec = {
        "weights": [m.weight.detach().cpu().numpy().T.copy() for m in layers],
        "biases": [m.bias.detach().cpu().numpy().copy() for m in layers],
        "activation": activation,
        "pos_scale": model.pos_scale.detach().cpu().numpy().copy(),
        "modes": model.cfg.modes,
        "regression": loss.regression,
        "huber_delta": loss.huber_delta,
        "ce_weight": loss.ce_weight,
        "optimizer": cfg.optimizer,
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "momentum": cfg.momentum,
        "grad_clip": cfg.grad_clip,
    }
    return spec, notes


def engine_batches(
    ds: Dataset, loaded: LoadedModel, cfg: TrainConfig, steps: int, trunk: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """1 warm-up + `steps` training batches (x (B, D) float32, y (B, T, 2)) for the engine: the first of
    the torch training phase's batches, x as the MLP's first layer reads it (trunk=False: the model's
    own input, before its agent encoder)."""
    x, y = _pool(ds, loaded, torch.device("cpu"))
    if trunk:
        with torch.no_grad():
            x = loaded.model.trunk_inputs(x)  # the inputs of the layers the engine copies
    x_np, y_np = x.numpy(), y.numpy()
    return [(x_np[i], y_np[i]) for i in train_batches(len(x_np), cfg, steps)[: 1 + steps]]


def write_profile(out: str | Path, result: dict[str, Any]) -> tuple[Path, Path]:
    """profile.json (the numbers) and profile.png (the figure) in `out`, each written atomically."""
    out = Path(out)
    write_json(out / PROFILE_FILE, result)
    return out / PROFILE_FILE, profile_figure(result, out / FIGURE_FILE)


def check_out(out: str | Path) -> None:
    """Refuse an --out that cannot be a directory before minutes of profiling, not after."""
    if Path(out).exists() and not Path(out).is_dir():
        raise TinypredError(f"{out}: is a file; expected a directory", arg="out")


def run_profile(
    run: str | Path, data: str | Path, out: str | Path, device: str = "auto", steps: int = 20
) -> dict[str, Any]:
    """Profile the run's model: torch over inference (batch 1 and 512) and training, then the NumPy
    engine's training step on the same batches; writes the traces, profile.json and profile.png into
    `out` and returns what profile.json holds."""
    check_out(out)
    ds, loaded, cfg = load(run, data, device)
    phases = profile_torch(loaded, ds, cfg, out, steps)
    spec, notes = engine_spec(loaded, cfg)
    engine = profile_training(EngineStep(**spec), engine_batches(ds, loaded, cfg, steps), seed=cfg.seed)
    result = {
        "run": str(run),
        "data": str(data),
        "device": str(next(loaded.model.parameters()).device),
        "torch_threads": torch.get_num_threads(),
        "steps": steps,
        "torch": phases,
        "engine": {"batch": cfg.batch_size, **engine, "notes": notes},
    }
    write_profile(out, result)
    return result
