"""An exported ONNX graph (`tinypred export --format onnx`) run by onnxruntime behind the Predictor's
calls: `Predictor.load("model.onnx")` feeds a planner from the very artifact it ships.

The graph holds the feature flattening, the normaliser and the model (`export.EncodedModel`); its
metadata holds the `EncodingSpec` (ENCODING_KEY). The Predictor still checks the arrays, moves them into
the agent frame and back, and warns about far-out input, with the normaliser read back from the graph's
``mean`` and ``std`` initialisers. At batch 1 on the CPU one onnxruntime call costs less than half of the
eager torch forward (`benchmarks/latency.py`): no per-op Python dispatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tinypred.data.encoding import FEATURE_ARRAYS, Normalizer
from tinypred.errors import TinypredError
from tinypred.predictors.model_file import EncodingSpec

ENCODING_KEY = "tinypred.encoding"  # the metadata entry holding the EncodingSpec as JSON
DIGEST_KEY = "tinypred.sha256"  # ... and the SHA-256 of the weights (`weights_digest`)


def weights_digest(proto) -> str:  # proto: an onnx.ModelProto (onnx is imported late)
    """SHA-256 of the graph's initializers (names, dtypes, shapes and values), as the arrays they decode
    to: however protobuf lays them out in the file, a flipped bit in a weight changes it."""
    import hashlib

    from onnx import numpy_helper

    digest = hashlib.sha256()
    for tensor in sorted(proto.graph.initializer, key=lambda t: t.name):
        array = np.ascontiguousarray(numpy_helper.to_array(tensor))
        digest.update(f"{tensor.name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class OnnxModel:
    """An ONNX graph of `tinypred export`: encoded arrays (agent frame) in, modes and probs out.

    threads: onnxruntime's intra-op threads (None: torch.get_num_threads(), so that one setting governs
    both runtimes)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnx
        import onnxruntime
        import torch
        from onnx import numpy_helper

        self.path = Path(path)
        try:
            proto = onnx.load(str(self.path))
        except FileNotFoundError:
            raise TinypredError(f"{self.path}: missing", arg="path") from None
        except Exception as e:  # a truncated or foreign file: protobuf raises its own kinds
            raise TinypredError(
                f"{self.path}: not an ONNX model ({str(e).splitlines()[0]})", arg="path"
            ) from None
        meta = {p.key: p.value for p in proto.metadata_props}
        if DIGEST_KEY in meta and meta[DIGEST_KEY] != weights_digest(proto):
            raise TinypredError(f"{self.path}: damaged (its weights do not match their SHA-256)", arg="path")
        weights = {t.name: t for t in proto.graph.initializer}
        names = [i.name for i in proto.graph.input]
        if ENCODING_KEY not in meta or "mean" not in weights or "std" not in weights:
            raise TinypredError(
                f"{self.path}: not written by `tinypred export --format onnx` (no {ENCODING_KEY} metadata "
                "or normaliser)",
                arg="path",
            )
        if names != list(FEATURE_ARRAYS):
            raise TinypredError(f"{self.path}: expected inputs {', '.join(FEATURE_ARRAYS)}, got {names}")
        try:
            self.encoding = EncodingSpec.from_json(meta[ENCODING_KEY], 0, None)
        except (ValueError, TypeError) as e:
            raise TinypredError(f"{self.path}: {ENCODING_KEY}: {e}", arg="path") from None
        self.normalizer = Normalizer(
            numpy_helper.to_array(weights["mean"]).astype(np.float32),
            numpy_helper.to_array(weights["std"]).astype(np.float32),
        )
        problem = self.normalizer.problem(self.encoding.features)
        if problem is not None:
            raise TinypredError(f"{self.path}: normaliser: {problem}", arg="path")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """modes (N, K, T, 2) in the agent frame and probs (N, K) of the encoded FEATURE_ARRAYS."""
        feed = {k: np.asarray(arrays[k], np.float32) for k in FEATURE_ARRAYS}  # the graph reads float32
        modes, probs = self.session.run(["modes", "probs"], feed)
        return modes, probs
