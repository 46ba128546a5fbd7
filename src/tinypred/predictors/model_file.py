"""The model file: a trained predictor's weights, normaliser and settings in one safetensors file.

`model.safetensors` holds the weights (``model.*``), the feature normaliser (``normalizer.mean/std``)
and, in its metadata, the training config (JSON), the number of input features, the horizon T, the
time step dt (s), free-form info (the epoch it was saved at, its validation metrics) and ``encoding``:
every convention the model's input was encoded with (`EncodingSpec`: dt, the history and future
steps, the map elements and their points, the lane window, the frame), so that a model file alone is
enough to feed it world-frame input (`tinypred.predictors.api.Predictor`). Files written before the
``encoding`` key existed still load: a missing key falls back to the file's own dt and horizon, then to
the `SceneConfig` defaults. Nothing is pickled; a damaged or foreign file is a one-line
`TinypredError` naming the file. Every file tinypred writes carries a SHA-256 of its tensors in its
metadata, checked on reading: a flipped byte is caught, not used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from tinypred.data.dataset import Dataset
from tinypred.data.encoding import HISTORY_FEATURES, Normalizer, feature_count
from tinypred.data.families import LANE_AHEAD, LANE_BEHIND
from tinypred.data.scene_config import LANE_TYPES, SceneConfig
from tinypred.errors import TinypredError
from tinypred.fileio import atomic_open
from tinypred.predictors.losses import LossConfig
from tinypred.predictors.model import ModelConfig, TrajectoryMLP

MODEL_FILE = "model.safetensors"
FRAME = (
    "agent: origin at the target's last observed position, x along its last observed heading, y to its "
    "left; metres, m/s, radians"
)


@dataclass(frozen=True)
class EncodingSpec:
    """Every convention a model's input is encoded with: what a caller must match to feed it.

    dt: s between two steps; history_steps H (the last one is "now") and future_steps T; max_lanes L map
    elements of lane_points P points each, max_neighbours M neighbour slots; lane_window: (behind, ahead)
    metres along each lane from the agent, sampled evenly (the synthetic scenes: (20, 60)), or None for
    the L map elements nearest the agent, each resampled whole (an Argoverse 2 import); source: the
    dataset's ("synthetic" or "av2"); frame: the agent frame (`FRAME`); history_features: the 6 state
    features per step; lane_types: the vocabulary `lane_type` indexes.
    """

    dt: float
    history_steps: int
    future_steps: int
    max_lanes: int
    lane_points: int
    max_neighbours: int
    lane_window: tuple[float, float] | None
    source: str = "synthetic"
    frame: str = FRAME
    history_features: tuple[str, ...] = HISTORY_FEATURES
    lane_types: tuple[str, ...] = LANE_TYPES

    @property
    def features(self) -> int:
        """D: the length of the flat feature vector these shapes make."""
        return feature_count(self.history_steps, self.max_lanes, self.lane_points, self.max_neighbours)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None, horizon: int, dt: float | None) -> EncodingSpec:
        """The spec stored in a model file; each missing key from the file's own horizon and dt, then the
        `SceneConfig` defaults (files older than the key hold the synthetic defaults' encoding)."""
        stored = json.loads(text) if text is not None else {}
        if not isinstance(stored, dict):
            raise ValueError(f"encoding: expected a JSON object, got {type(stored).__name__}")
        unknown = set(stored) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"encoding: unknown key {sorted(unknown)[0]!r}")
        return cls(**(default_encoding(horizon, dt).__dict__ | stored)).checked()

    def checked(self) -> EncodingSpec:
        """Self with JSON lists made tuples, after checking every value's type and range."""
        window = None if self.lane_window is None else tuple(float(v) for v in self.lane_window)
        spec = EncodingSpec(
            **{
                **self.__dict__,
                "lane_window": window,
                "history_features": tuple(self.history_features),
                "lane_types": tuple(self.lane_types),
            }
        )
        if not (isinstance(spec.dt, float | int) and 0 < spec.dt <= 60):
            raise ValueError(f"encoding.dt: expected seconds in (0, 60], got {spec.dt!r}")
        for name in ("history_steps", "future_steps", "max_lanes", "lane_points", "max_neighbours"):
            value = getattr(spec, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10_000:
                raise ValueError(f"encoding.{name}: expected an integer in [0, 10000], got {value!r}")
        if window is not None and (len(window) != 2 or not all(0 <= v < 1e5 for v in window)):
            raise ValueError(
                f"encoding.lane_window: expected (behind, ahead) metres, got {self.lane_window!r}"
            )
        # The vocabularies are this code's: a model trained on others would read its features wrongly.
        if spec.history_features != HISTORY_FEATURES or spec.lane_types != LANE_TYPES:
            raise ValueError("encoding: trained with other state features or lane types than this tinypred")
        return spec


def default_encoding(horizon: int, dt: float | None) -> EncodingSpec:
    """The synthetic defaults' encoding (`SceneConfig()`), with a model's own horizon and dt if known."""
    cfg = SceneConfig()
    return EncodingSpec(
        dt=cfg.dt if dt is None else dt,
        history_steps=cfg.history_steps,
        future_steps=horizon,
        max_lanes=cfg.max_lanes,
        lane_points=cfg.lane_points,
        max_neighbours=cfg.max_neighbours,
        lane_window=(LANE_BEHIND, LANE_AHEAD),
    )


def encoding_of(ds: Dataset) -> EncodingSpec:
    """The encoding of a dataset's samples: what a model trained on it expects."""
    shapes = ds.shapes
    return EncodingSpec(
        dt=float(ds.dt),
        history_steps=shapes["H"],
        future_steps=shapes["T"],
        max_lanes=shapes["L"],
        lane_points=shapes["P"],
        max_neighbours=shapes["M"],
        # The generator draws every lane over the same stretch; an import takes the nearest elements.
        lane_window=(LANE_BEHIND, LANE_AHEAD) if ds.source == "synthetic" else None,
        source=ds.source,
    )


def save_model(
    path: str | Path,
    model: TrajectoryMLP,
    normalizer: Normalizer,
    train_config: dict[str, Any],
    info: dict[str, Any],
    dt: float,
    encoding: EncodingSpec | None = None,
) -> None:
    """Write the model file atomically. `train_config` is the full training config as a JSON object
    (its "model" and "loss" sections rebuild the predictor); `encoding` (`encoding_of(ds)`) the
    conventions of its input, stored so that the file alone can be fed world-frame input."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors["normalizer.mean"] = torch.from_numpy(normalizer.mean)
    tensors["normalizer.std"] = torch.from_numpy(normalizer.std)
    meta = {
        "config": json.dumps(train_config),
        "in_features": str(model.in_features),
        "horizon": str(model.horizon),
        "neighbour_slots": str(model.neighbour_slots),
        "history_steps": str(model.history_steps),
        "dt": repr(float(dt)),
        "info": json.dumps(info),
    }
    if encoding is not None:
        # A spec that does not describe this model would make every world-frame prediction wrong.
        assert (encoding.features, encoding.future_steps) == (model.in_features, model.horizon), encoding
        assert abs(encoding.dt - dt) < 1e-9, (encoding.dt, dt)
        meta["encoding"] = encoding.to_json()
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
    # How its input is encoded; in files without it, the defaults (see `EncodingSpec.from_json`). None
    # when those defaults do not even give the model's number of features: only encoded input then.
    encoding: EncodingSpec | None = None


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a model file written by `save_model`; a damaged or foreign file is a user error."""
    path = Path(path)
    if path.suffix in (".pt2", ".onnx"):
        raise TinypredError(
            f"{path}: an exported program, not a model file: run it with torch.export.load (.pt2) or "
            "Predictor.load (.onnx), or load the run's model.safetensors"
        )
    tensors, meta = read_safetensors(path, "tinypred model")
    if "state" in meta and "config" not in meta:  # what checkpoint.save_checkpoint writes
        raise TinypredError(
            f"{path}: a training checkpoint, not a model file: load the run's model.safetensors"
        )
    if "config" in meta and "neighbour_slots" not in meta:
        raise TinypredError(
            f"{path}: written by a tinypred whose models did not read neighbours (before 0.3); "
            "retrain it with this version"
        )
    try:
        config = json.loads(meta["config"])
        model_cfg = ModelConfig.model_validate(config["model"])
        loss_cfg = LossConfig.model_validate(config["loss"])
        model = TrajectoryMLP(
            int(meta["in_features"]),
            int(meta["horizon"]),
            model_cfg,
            scales=loss_cfg.kind == "nll",
            neighbour_slots=int(meta["neighbour_slots"]),
            history_steps=int(meta["history_steps"]),
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
        encoding: EncodingSpec | None = EncodingSpec.from_json(meta.get("encoding"), model.horizon, dt)
        if (encoding.features, encoding.future_steps) != (model.in_features, model.horizon):
            if "encoding" in meta:
                raise ValueError(
                    f"encoding: {encoding.features} features, the model reads {model.in_features}"
                )
            encoding = None
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise TinypredError(f"{path}: not a tinypred model or damaged ({str(e).splitlines()[0]})") from None
    return LoadedModel(model.to(device).eval(), normalizer, loss_cfg, config, dt, info, encoding)


def load_run(run: str | Path, ds: Dataset, device: str | torch.device = "cpu") -> LoadedModel:
    """A run directory's best model, checked against a dataset: the same features, horizon and dt."""
    loaded = load_model(Path(run) / MODEL_FILE, device)
    d, horizon = ds.normalizer.mean.shape[0], ds.shapes["T"]
    m = loaded.model
    if (m.in_features, m.horizon) != (d, horizon):
        raise TinypredError(
            f"{run}: the model reads {m.in_features} features and predicts {m.horizon} steps; "
            f"{ds.path} has {d} features and {horizon} steps"
        )
    if loaded.dt is not None and abs(loaded.dt - ds.dt) > 1e-9:
        raise TinypredError(f"{run}: the model was trained at dt {loaded.dt} s; {ds.path} has dt {ds.dt} s")
    return loaded
