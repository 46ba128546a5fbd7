"""The Predictor: a trained model, or any baseline, behind one call: world-frame NumPy arrays in, K modes
with their probabilities out, so that a planner can swap one predictor for another.

    p = Predictor.load("runs/mlp")                      # a run directory or a model.safetensors
    p = Predictor.load("model.onnx")                    # or its `tinypred export`, run by onnxruntime
    out = p.predict(history, lanes)                     # world frame in and out
    out.modes  (N, K, T, 2)  m, world frame              out.probs  (N, K), each row sums to 1
    out = p.predict_encoded(arrays)                     # a dataset's encoded arrays: agent frame in and out
    cv = Predictor.baseline("cv_fan", train="data/ds")  # the same calls

`predict` checks the arrays (`world_input`), moves them into each agent's frame with the one move of
the encoding (`data.encoding.move_inputs`, which `encode` uses too; a baseline gets whole encoded
scenes), standardises the features with the model file's normaliser, runs the one prediction step
(`prediction.model_outputs`: eval mode, `torch.inference_mode`; or the ONNX graph, `onnx_model`) and
moves the modes back with `to_world`. Every convention it needs (dt, H, T, L, P, the lane window, the
frame) comes from the model file (`model_file.EncodingSpec`, `Predictor.encoding`); the arrays follow
them:

    history    (N, H, 2) x, y; (N, H, 3) x, y, heading; or (N, H, 5) x, y, heading, vx, vy (the state
               `Scenes.history` holds): world frame, metres, radians counter-clockwise from +x, m/s;
               H steps dt apart, oldest first, the last one now (it must be observed). A planner's 2 s at
               10 Hz is H = 20. Without velocities they are central differences of the positions over
               the observed steps, averaged over 3 steps; without headings, the direction of that motion
               averaged over 7 (an agent never faster than 0.5 m/s faces +x). Give headings when you
               have them: estimated ones are noisier than any tracker's and move the modes more.
    history_mask (N, H) bool, default all True: unobserved steps may hold anything, NaN included.
    lanes      (N, L', P, 2) world-frame centre-lines, L' <= L nearest first, P points each, sampled as the
               training data was (`EncodingSpec.lane_window`: from 20 m behind to 60 m ahead of the agent
               along the lane for the synthetic scenes); lane_mask (N, L') bool, lane_type (N, L') index
               into LANE_TYPES (default 0, "lane"), lane_is_intersection (N, L') bool. None: no map.
    neighbours (N, M', H, 2|3|5) the other agents' pasts, like history, M' <= M nearest first, with
               neighbour_mask (N, M', H) and neighbour_type (N, M') index into OBJECT_TYPES (default
               "vehicle"). The model reads them through its agent encoder; None: nobody else around.

A bad shape, a NaN where a value is observed, or units that cannot be right (a speed over 100 m/s, a
heading over 4 pi) is a one-line `TinypredError` naming the argument. A normalised feature more than
`FAR_OUT` standard deviations from the training data (lanes sampled over another window, another frame)
gets a `warnings.warn` naming the input and how far out: the model is extrapolating there.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinypred.data.dataset import Dataset
from tinypred.data.dataset import load as load_dataset
from tinypred.data.encoding import (
    EncodedScenes,
    Normalizer,
    encode,
    feature_layout,
    features,
    move_inputs,
    to_world,
)
from tinypred.data.scene_config import SceneConfig
from tinypred.data.scenes import Scenes
from tinypred.errors import TinypredError
from tinypred.predictors.baselines import BASELINES, Baseline
from tinypred.predictors.model_file import (
    MODEL_FILE,
    EncodingSpec,
    LoadedModel,
    default_encoding,
    encoding_of,
    load_model,
)
from tinypred.predictors.onnx_model import OnnxModel
from tinypred.predictors.prediction import model_outputs
from tinypred.predictors.world_input import InputBuilder

# Standard deviations. The synthetic data reach about 20 (the heading features of turning agents); lanes
# sampled over a window 20 % too long reach 40, lanes in another frame thousands.
FAR_OUT = 30.0


@dataclass(frozen=True)
class Forecast:
    """modes (N, K, T, 2) positions in metres, in the frame of the input (world for `predict`, float64:
    city coordinates need it; each agent's for `predict_encoded`), probs (N, K), each row summing to 1."""

    modes: np.ndarray
    probs: np.ndarray


class Predictor:
    """A trained model or a baseline, fed world-frame or encoded arrays; see the module docstring."""

    def __init__(
        self,
        encoding: EncodingSpec,
        *,
        loaded: LoadedModel | None = None,
        baseline: Baseline | None = None,
        onnx: OnnxModel | None = None,
        normalizer: Normalizer | None = None,
        name: str = "model",
    ) -> None:
        """Prefer `Predictor.load` and `Predictor.baseline`. `normalizer` (a baseline's training data's)
        only feeds the far-out warning; a model always uses its own."""
        if sum(x is not None for x in (loaded, baseline, onnx)) != 1:
            raise TypeError("a Predictor wraps a loaded model, an ONNX graph or a baseline, exactly one")
        self.encoding, self.name = encoding, name
        self.loaded, self.baseline_, self.onnx = loaded, baseline, onnx
        self.normalizer = next((m.normalizer for m in (loaded, onnx) if m is not None), normalizer)
        self.inputs = InputBuilder(encoding)
        self._groups = feature_layout(
            encoding.history_steps, encoding.max_lanes, encoding.lane_points, encoding.max_neighbours
        )

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Predictor:
        """The model of a run directory (its model.safetensors), of a model file, or of an ONNX graph
        `tinypred export` wrote (run by onnxruntime on the CPU: `device` must be "cpu")."""
        path = Path(path)
        if path.suffix == ".onnx":
            if torch.device(device).type != "cpu":
                raise TinypredError("an ONNX graph runs on the CPU here: load the run for CUDA", arg="device")
            onnx = OnnxModel(path)
            return cls(onnx.encoding, onnx=onnx, name=str(path))
        file = path / MODEL_FILE if path.is_dir() else path
        loaded = load_model(file, device)
        if loaded.encoding is None:
            raise TinypredError(
                f"{file}: written before model files stored their encoding, and its "
                f"{loaded.model.in_features} features are not the synthetic defaults'; retrain it",
                arg="path",
            )
        return cls(loaded.encoding, loaded=loaded, name=str(path))

    @classmethod
    def baseline(
        cls, name: str, train: str | Path | Dataset | None = None, *, encoding: EncodingSpec | None = None
    ) -> Predictor:
        """A baseline (`baselines.BASELINES`) as a Predictor. `train`, a dataset or its directory, fits
        what it fits (cv_fan's probabilities: it needs one) and gives the encoding and the normaliser of
        the far-out warning; without it, `encoding` or the synthetic defaults. The intent mixture is
        refused: it reads the ground-truth mixture, which no planner has."""
        if name not in BASELINES or name == "intent_mixture":
            usable = ", ".join(n for n in BASELINES if n != "intent_mixture")
            raise TinypredError(f"unknown baseline {name!r}; expected one of {usable}", arg="name")
        if train is None:
            if name == "cv_fan":
                raise TinypredError("cv_fan fits its probabilities: give the training data", arg="train")
            spec = encoding or default_encoding(SceneConfig().future_steps, None)
            return cls(spec, baseline=BASELINES[name](), name=name)
        ds = train if isinstance(train, Dataset) else load_dataset(train)
        fitted = BASELINES[name]().fit(ds.train)
        return cls(encoding_of(ds), baseline=fitted, normalizer=ds.normalizer, name=name)

    def predict(
        self,
        history: Any,
        lanes: Any = None,
        neighbours: Any = None,
        *,
        history_mask: Any = None,
        lane_mask: Any = None,
        lane_type: Any = None,
        lane_is_intersection: Any = None,
        neighbour_mask: Any = None,
        neighbour_type: Any = None,
    ) -> Forecast:
        """K modes for each of N agents from world-frame arrays (module docstring); modes in the world."""
        given = self.inputs.world_inputs(
            history,
            lanes,
            neighbours,
            history_mask=history_mask,
            lane_mask=lane_mask,
            lane_type=lane_type,
            lane_is_intersection=lane_is_intersection,
            neighbour_mask=neighbour_mask,
            neighbour_type=neighbour_type,
        )
        pose = given["history"][:, -1, :3].astype(np.float64)  # as `encode` takes it
        if self.baseline_ is None:  # a model reads the features alone: move just those
            modes, probs = self.run({**given, **move_inputs(given, pose)})
        else:  # a baseline reads whole encoded scenes
            modes, probs = self.run(encode(self.inputs.scenes(given)))
        return Forecast(to_world(modes, pose), probs)

    def world_scenes(self, history: Any, lanes: Any = None, neighbours: Any = None, **masks: Any) -> Scenes:
        """The checked world-frame `Scenes` that `predict`'s arguments describe (futures unknown)."""
        return self.inputs.world(history, lanes, neighbours, **masks)

    def predict_encoded(self, arrays: Mapping[str, np.ndarray] | EncodedScenes) -> Forecast:
        """K modes from a dataset's encoded arrays (agent frame in, agent frame out): history (N, H, 6),
        history_mask (N, H); lanes, lane_mask, lane_type, lane_is_intersection if there is a map. A split
        (`ds.test`, or its `arrays()`) can be given whole: the arrays the model does not read are ignored."""
        return Forecast(*self.run(self.inputs.encoded(arrays)))

    def run(self, enc: EncodedScenes | Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """modes (N, K, T, 2) in the agent frame and probs (N, K) of encoded scenes (for the model, the
        FEATURE_ARRAYS are enough)."""
        x = self.normalised(enc)
        if self.onnx is not None:  # the graph normalises inside: x only fed the far-out warning
            return self.onnx(enc if isinstance(enc, Mapping) else enc.arrays())
        if self.loaded is not None:
            assert x is not None
            device = next(self.loaded.model.parameters()).device
            modes, probs, _ = model_outputs(self.loaded.model, torch.from_numpy(x).to(device))
            return modes, probs
        assert self.baseline_ is not None and isinstance(enc, EncodedScenes)
        if self.baseline_.scale is None:  # unfitted: only the NLL's scales are missing, unused here
            return self.baseline_._predict(enc)
        pred = self.baseline_.predict(enc)
        return pred.modes, pred.probs

    def normalised(self, enc: EncodedScenes | Mapping[str, np.ndarray]) -> np.ndarray | None:
        """(N, D) standardised features of `enc` (None without a normaliser); warns when one is more than
        FAR_OUT standard deviations out."""
        if self.normalizer is None:
            return None
        x = self.normalizer(features(enc))
        if np.abs(x).max(initial=0.0) > FAR_OUT:  # rare: only then find where
            self._warn_far_out(x)
        return x

    def _warn_far_out(self, x: np.ndarray) -> None:
        e = self.encoding
        window = (
            f"lanes from {e.lane_window[0]:g} m behind to {e.lane_window[1]:g} m ahead"
            if e.lane_window is not None
            else "the nearest map elements"
        )
        for group, cols in self._groups.items():
            z = np.abs(x[:, cols])
            if z.size and z.max() > FAR_OUT:
                sample, col = np.unravel_index(z.argmax(), z.shape)
                warnings.warn(
                    f"{group}: a normalised feature (sample {sample}, feature {cols.start + col}) is "
                    f"{z.max():.0f} standard deviations from the training data (over {FAR_OUT:g}): the "
                    f"prediction extrapolates; check the frame, the units and the sampling (dt {e.dt:g} s, "
                    f"{e.history_steps} steps, {window}, {e.lane_points} points each)",
                    stacklevel=5,  # the caller of predict or predict_encoded
                )
