"""The model file: a trained predictor's weights, normaliser and settings in one safetensors file.

`model.safetensors` holds the weights (``model.*``), the feature normaliser (``normalizer.mean/std``)
and, in its metadata, the training config (JSON), the number of input features, the horizon T, the
time step dt (s) and free-form info (the epoch it was saved at, its validation metrics). Nothing is
pickled; a damaged or foreign file is a one-line `TinypredError` naming the file. Every file tinypred
writes carries a SHA-256 of its tensors in its metadata, checked on reading: a flipped byte is caught,
not used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from tinypred.data.dataset import Dataset
from tinypred.data.encoding import Normalizer
from tinypred.errors import TinypredError
from tinypred.fileio import atomic_open
from tinypred.predictors.losses import LossConfig
from tinypred.predictors.model import ModelConfig, TrajectoryMLP

MODEL_FILE = "model.safetensors"


def save_model(
    path: str | Path,
    model: TrajectoryMLP,
    normalizer: Normalizer,
    train_config: dict[str, Any],
    info: dict[str, Any],
    dt: float,
) -> None:
    """Write the model file atomically. `train_config` is the full training config as a JSON object
    (its "model" and "loss" sections rebuild the predictor)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors["normalizer.mean"] = torch.from_numpy(normalizer.mean)
    tensors["normalizer.std"] = torch.from_numpy(normalizer.std)
    meta = {
        "config": json.dumps(train_config),
        "in_features": str(model.in_features),
        "horizon": str(model.horizon),
        "dt": repr(float(dt)),
        "info": json.dumps(info),
    }
    write_safetensors(path, tensors, meta)


def tensor_digest(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    """SHA-256 of every metadata entry (its own digest aside) and every tensor's name, dtype, shape and
    bytes, in name order: a flipped byte anywhere in the file changes it."""
    digest = hashlib.sha256(
        json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode()
    )
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def write_safetensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    """Tensors and metadata (plus the tensors' digest) as one safetensors file, written atomically."""
    with atomic_open(path, "wb") as f:
        f.write(st_save(tensors, metadata={**meta, "sha256": tensor_digest(tensors, meta)}))


def read_safetensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor (on the CPU) and the metadata of a safetensors file holding a `what` (for messages),
    its digest checked; a missing, unreadable or damaged file is a user error."""
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}  # noqa: SIM118
    except FileNotFoundError:
        raise TinypredError(f"{path}: missing (is it a tinypred run directory?)") from None
    except (OSError, SafetensorError) as e:
        raise TinypredError(f"{path}: not a {what} or damaged ({str(e).splitlines()[0]})") from None
    # Files from before tinypred 0.2 have no digest: they are read as they are.
    if "sha256" in meta and meta["sha256"] != tensor_digest(tensors, meta):
        raise TinypredError(f"{path}: damaged (its contents do not match the checksum it was written with)")
    return tensors, meta


@dataclass
class LoadedModel:
    """A model file, read back: the model in eval mode and everything needed to feed it."""

    model: TrajectoryMLP
    normalizer: Normalizer
    loss: LossConfig  # how it was trained: decides where its NLL scales come from
    config: dict[str, Any]  # the full training config, as saved
    dt: float | None  # the time step it was trained at, s (None in files older than tinypred 0.2)
    info: dict[str, Any]


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a model file written by `save_model`; a damaged or foreign file is a user error."""
    path = Path(path)
    tensors, meta = read_safetensors(path, "tinypred model")
    try:
        config = json.loads(meta["config"])
        model_cfg = ModelConfig.model_validate(config["model"])
        loss_cfg = LossConfig.model_validate(config["loss"])
        model = TrajectoryMLP(
            int(meta["in_features"]), int(meta["horizon"]), model_cfg, scales=loss_cfg.kind == "nll"
        )
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        normalizer = Normalizer(tensors["normalizer.mean"].numpy(), tensors["normalizer.std"].numpy())
        problem = normalizer.problem(model.in_features)
        if problem is not None:
            raise ValueError(f"normaliser: {problem}")
        if not all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point()):
            raise ValueError("a weight is not finite")
        dt = float(meta["dt"]) if "dt" in meta else None
        info = json.loads(meta.get("info", "{}"))
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise TinypredError(f"{path}: not a tinypred model or damaged ({str(e).splitlines()[0]})") from None
    return LoadedModel(model.to(device).eval(), normalizer, loss_cfg, config, dt, info)


def load_run(run: str | Path, ds: Dataset, device: str | torch.device = "cpu") -> LoadedModel:
    """A run directory's best model, checked against a dataset: the same features, horizon and dt."""
    loaded = load_model(Path(run) / MODEL_FILE, device)
    d, horizon = ds.normalizer.mean.shape[0], ds.train.future.shape[1]
    m = loaded.model
    if (m.in_features, m.horizon) != (d, horizon):
        raise TinypredError(
            f"{run}: the model reads {m.in_features} features and predicts {m.horizon} steps; "
            f"{ds.path} has {d} features and {horizon} steps"
        )
    if loaded.dt is not None and abs(loaded.dt - ds.dt) > 1e-9:
        raise TinypredError(f"{run}: the model was trained at dt {loaded.dt} s; {ds.path} has dt {ds.dt} s")
    return loaded
