"""A trained model as one self-contained graph: ONNX (for onnxruntime and friends) or a `torch.export`
program (.pt2), each checked against `Predictor.predict_encoded` before it is written.

The graph (`EncodedModel`) reads the encoded arrays, named as in the dataset files, all float32 (masks
0/1, lane_type the index into LANE_TYPES, neighbour_type into OBJECT_TYPES or -1 for an empty slot),
with a dynamic batch B:

    history (B, H, 6)  history_mask (B, H)  lanes (B, L, P, 2)  lane_mask (B, L)  lane_type (B, L)
    lane_is_intersection (B, L)  neighbours (B, M, H, 6)  neighbour_mask (B, M, H)  neighbour_type (B, M)

and returns ``modes`` (B, K, T, 2), metres in each agent's frame, and ``probs`` (B, K). The feature
flattening (`data.encoding.features`) and the normaliser are inside it: nothing else is needed to run
it. Moving world-frame input into the agent frame and back stays outside (`Predictor.predict` does it),
as does the far-out warning. The model file's `EncodingSpec` travels with the graph: in the ONNX
model's metadata (``tinypred.encoding``) and in the .pt2 archive (``extra/tinypred_encoding.json``, as
`torch.export.load(f, extra_files={"tinypred_encoding.json": ""})` returns it).

A .pt2 file is read with `load_pt2`, never with `torch.export.load` alone: that one unpickles in full a
weight or constant stored pickled, a custom object, and sample inputs that fail a weights-only load. So
every member is checked first (a pickled member must load weights-only, a weight or constant must be
stored raw), and a file that needs more is refused.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from tinypred.data.encoding import encode
from tinypred.data.scene_config import LANE_TYPES, OBJECT_TYPES, SceneConfig
from tinypred.data.scenes import generate
from tinypred.errors import TinypredError
from tinypred.fileio import atomic_open
from tinypred.predictors.api import Predictor
from tinypred.predictors.onnx_model import DIGEST_KEY, ENCODING_KEY, weights_digest
from tinypred.predictors.world_input import ENCODED_INPUTS

# Accepted: |exported - Predictor.predict_encoded| <= TOLERANCE + RELATIVE * |predict_encoded| (m and
# probability), numpy's allclose rule. float32 kernels that sum in another order (onnxruntime's) differ
# by a few 1e-7 of the value: 1.4e-4 on a 276 m mode of almost no probability. A wrong graph is off by
# far more (a misplaced lane-type one-hot: 0.27 m).
TOLERANCE, RELATIVE = 1e-4, 1e-5
PT2_ENCODING_FILE = "tinypred_encoding.json"
Format = Literal["onnx", "pt2"]


class EncodedModel(nn.Module):
    """The normaliser, the feature flattening and the model: encoded arrays in, (modes, probs) out."""

    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        if predictor.loaded is None:
            raise TinypredError(f"{predictor.name}: only a trained model can be exported", arg="predictor")
        self.model = predictor.loaded.model
        self.register_buffer("mean", torch.from_numpy(predictor.loaded.normalizer.mean).clone())
        self.register_buffer("std", torch.from_numpy(predictor.loaded.normalizer.std).clone())
        self.register_buffer("kinds", torch.arange(1, len(LANE_TYPES), dtype=torch.float32))
        self.register_buffer("agents", torch.arange(len(OBJECT_TYPES), dtype=torch.float32))

    def forward(
        self,
        history: torch.Tensor,
        history_mask: torch.Tensor,
        lanes: torch.Tensor,
        lane_mask: torch.Tensor,
        lane_type: torch.Tensor,
        lane_is_intersection: torch.Tensor,
        neighbours: torch.Tensor,
        neighbour_mask: torch.Tensor,
        neighbour_type: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b = history.shape[0]
        # As `features` lays them out; unobserved steps and absent elements count as zeros, whatever
        # they hold, as in the dataset files.
        kinds = (lane_type.unsqueeze(-1) == self.kinds).to(history.dtype) * lane_mask.unsqueeze(-1)
        agents = (neighbour_type.unsqueeze(-1) == self.agents).to(history.dtype)
        x = torch.cat(
            [
                (history * history_mask.unsqueeze(-1)).reshape(b, -1),
                history_mask,
                (lanes * lane_mask[..., None, None]).reshape(b, -1),
                lane_mask,
                kinds.reshape(b, -1),
                lane_is_intersection * lane_mask,
                (neighbours * neighbour_mask.unsqueeze(-1)).reshape(b, -1),
                neighbour_mask.reshape(b, -1),
                agents.reshape(b, -1),
            ],
            1,
        )
        out = self.model((x - self.mean) / self.std)
        return out.modes, out.probs


@dataclass(frozen=True)
class ExportCheck:
    """What an export was checked on: `samples` encoded samples (from `source`), and the largest absolute
    difference of its modes (m) and probabilities from `Predictor.predict_encoded`."""

    samples: int
    source: str
    max_abs_diff: float


def check_batch(predictor: Predictor, data: str | Path | None = None, n: int = 256) -> tuple[dict, str]:
    """Encoded arrays to check an export on, and where they come from: the first n samples of a dataset's
    test split, or n scenes the generator draws at the model's own conventions (dt, H, T, L, P)."""
    e = predictor.encoding
    if data is not None:
        from tinypred.data import dataset

        ds = dataset.load(data)
        if ds.shapes["H"] != e.history_steps or ds.normalizer.mean.shape[0] != e.features:
            raise TinypredError(f"{data}: not encoded as {predictor.name} was trained", arg="data")
        split = next((s for s in (ds.test, ds.val, ds.train) if len(s)), None)
        if split is None:
            raise TinypredError(f"{data}: holds no samples", arg="data")
        arrays = split.subset(slice(0, n)).arrays()
        source = f"{data}"
    else:
        try:
            cfg = SceneConfig(
                dt=e.dt,
                history_steps=e.history_steps,
                future_steps=e.future_steps,
                max_lanes=e.max_lanes,
                lane_points=e.lane_points,
                max_neighbours=e.max_neighbours,
            )
        except ValidationError:
            raise TinypredError(
                "the generator cannot draw scenes of this model's shapes: give a dataset", arg="data"
            ) from None
        arrays = encode(generate(cfg, n, seed=0)).arrays()
        source = "generated scenes"
    return {k: arrays[k] for k in ENCODED_INPUTS}, source


def export(
    predictor: Predictor, fmt: Format, out: str | Path, data: str | Path | None = None, samples: int = 256
) -> ExportCheck:
    """Export a trained model's graph to `out` as ONNX or a .pt2 program; written (atomically) only if
    it matches `Predictor.predict_encoded` within TOLERANCE + RELATIVE x |value| on `check_batch(predictor,
    data, samples)`."""
    if samples < 2:
        raise TinypredError(f"expected at least 2 samples to check on, got {samples}", arg="samples")
    module = EncodedModel(predictor).eval()
    batch, source = check_batch(predictor, data, samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # generated scenes may be far from an imported dataset's
        expected = predictor.predict_encoded(batch)
    inputs = {k: np.ascontiguousarray(v, np.float32) for k, v in batch.items()}
    blob, got = _to_onnx(module, inputs, predictor) if fmt == "onnx" else _to_pt2(module, inputs, predictor)
    pairs = ((got[0], expected.modes), (got[1], expected.probs))
    diff = max(float(np.abs(a - b).max()) for a, b in pairs)
    over = max(float((np.abs(a - b) - (TOLERANCE + RELATIVE * np.abs(b))).max()) for a, b in pairs)
    if not over <= 0:  # NaN too
        raise TinypredError(
            f"the exported graph differs from the model by up to {diff:.2e} (over {TOLERANCE:g} + "
            f"{RELATIVE:g} x |value|); nothing written"
        )
    with atomic_open(out, "wb") as f:
        f.write(blob)
    return ExportCheck(len(batch["history"]), source, diff)


def _example(inputs: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    # Two samples to trace: a batch of one would be specialised to a constant.
    return tuple(torch.from_numpy(inputs[k][:2]) for k in ENCODED_INPUTS)


def _dynamic() -> tuple[dict[int, torch.export.Dim], ...]:
    """The batch axis of every input, one shared dimension."""
    batch = torch.export.Dim("batch")
    return tuple({0: batch} for _ in ENCODED_INPUTS)


def _to_onnx(
    module: EncodedModel, inputs: dict[str, np.ndarray], predictor: Predictor
) -> tuple[bytes, tuple[np.ndarray, np.ndarray]]:
    """The ONNX model's bytes and its outputs on inputs under onnxruntime."""
    import onnxruntime

    quiet = logging.getLogger("torch.onnx")  # it logs every optional op it cannot register
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                _example(inputs),
                dynamo=True,
                input_names=list(ENCODED_INPUTS),
                output_names=["modes", "probs"],
                dynamic_shapes=_dynamic(),
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    proto = program.model_proto
    for key, value in ((ENCODING_KEY, predictor.encoding.to_json()), (DIGEST_KEY, weights_digest(proto))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    blob = proto.SerializeToString()
    session = onnxruntime.InferenceSession(blob, providers=["CPUExecutionProvider"])
    modes, probs = session.run(["modes", "probs"], inputs)
    return blob, (modes, probs)


def _to_pt2(
    module: EncodedModel, inputs: dict[str, np.ndarray], predictor: Predictor
) -> tuple[bytes, tuple[np.ndarray, np.ndarray]]:
    """The .pt2 archive's bytes and the outputs on inputs of the program loaded back from them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(module, _example(inputs), dynamic_shapes=_dynamic())
        buffer = io.BytesIO()
        torch.export.save(program, buffer, extra_files={PT2_ENCODING_FILE: predictor.encoding.to_json()})
    blob = buffer.getvalue()
    loaded = load_pt2(blob)
    with torch.inference_mode():
        modes, probs = loaded.module()(*(torch.from_numpy(inputs[k]) for k in ENCODED_INPUTS))
    return blob, (modes.numpy(), probs.numpy())


def load_pt2(source: str | Path | bytes) -> torch.export.ExportedProgram:
    """A .pt2 program (a path or its bytes), loaded without unpickling anything but tensors."""
    blob = source if isinstance(source, bytes) else _read(Path(source))
    name = "the .pt2 bytes" if isinstance(source, bytes) else str(source)
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            for member in archive.namelist():
                _check_member(member, archive.read(member))
    except zipfile.BadZipFile:
        raise TinypredError(f"{name}: not a .pt2 archive") from None
    except Exception as e:  # whatever the weights-only unpickler or the checks refuse
        raise TinypredError(f"{name}: holds more than tensors; refused ({str(e).splitlines()[0]})") from None
    try:
        return torch.export.load(io.BytesIO(blob))
    except Exception as e:  # torch raises many kinds for a foreign archive
        raise TinypredError(f"{name}: not a torch.export program ({str(e).splitlines()[0]})") from None


def _check_member(member: str, data: bytes) -> None:
    """Raise unless torch.export.load would read this archive member without a full unpickle: a
    pickled member (.pt: the sample inputs, an older format's weights) must load weights-only, and a
    weight or constant must be stored raw, not pickled, nor be a custom or opaque object."""
    from torch.export.pt2_archive import constants as pt2

    if member.endswith(".pt"):
        torch.load(io.BytesIO(data), weights_only=True)
    elif member.endswith("_config.json") and any(d in member for d in (pt2.WEIGHTS_DIR, pt2.CONSTANTS_DIR)):
        raw = (pt2.WEIGHT_FILENAME_PREFIX, pt2.TENSOR_CONSTANT_FILENAME_PREFIX)
        for fqn, entry in json.loads(data)["config"].items():
            if entry.get("use_pickle", True) or not str(entry.get("path_name", "")).startswith(raw):
                raise ValueError(f"{member}: {fqn} is a pickled object")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TinypredError(f"{path}: missing") from None
    except OSError as e:
        raise TinypredError(f"{path}: cannot be read ({e.strerror or e})") from None
