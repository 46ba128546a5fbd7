"""The schema of a split's arrays, and every check a shard passes before a dataset is handed out.

Checked per array: present, dtype, shape (given the dataset's H, T, L, P, M), finite and of a sane
magnitude; across arrays: indices in range, masks consistent, mixture probabilities a distribution.
Every failure is one line naming the file, the array and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tinypred.data.encoding import HISTORY_FEATURES
from tinypred.data.scene_config import FAMILIES, INTENTS, LANE_TYPES, MAX_ALTERNATIVES, OBJECT_TYPES
from tinypred.data.scenes import FOCAL, SCORED
from tinypred.errors import TinypredError

# Coordinates in an agent frame are metres from the agent; a value beyond this is not a position.
MAX_AGENT_FRAME = 1e5
MAX_WORLD = 1e8  # world (city) coordinates, m


def expected_arrays(shapes: dict[str, int]) -> dict[str, tuple[tuple[int, ...], str]]:
    """Per array: its shape after the sample axis, and its dtype ("str" for any unicode string)."""
    H, T, L, P, M, A = (shapes[k] for k in ("H", "T", "L", "P", "M", "A"))
    F = len(HISTORY_FEATURES)
    return {
        "history": ((H, F), "float32"),
        "history_mask": ((H,), "bool"),
        "future": ((T, 2), "float32"),
        "future_mask": ((T,), "bool"),
        "lanes": ((L, P, 2), "float32"),
        "lane_mask": ((L,), "bool"),
        "lane_type": ((L,), "int8"),
        "lane_is_intersection": ((L,), "bool"),
        "neighbours": ((M, H, F), "float32"),
        "neighbour_mask": ((M, H), "bool"),
        "neighbour_type": ((M,), "int8"),
        "neighbour_track_id": ((M,), "str"),
        "neighbour_future": ((M, T, 2), "float32"),
        "neighbour_future_mask": ((M, T), "bool"),
        "alt_futures": ((A, T, 2), "float32"),
        "alt_probs": ((A,), "float32"),
        "alt_mask": ((A,), "bool"),
        "alt_intent": ((A,), "int8"),
        "family": ((), "int8"),
        "intent": ((), "int8"),
        "scenario_id": ((), "str"),
        "track_id": ((), "str"),
        "city": ((), "str"),
        "category": ((), "int8"),
        "object_type": ((), "int8"),
        "pose": ((3,), "float64"),
        "scene_id": ((), "int64"),
    }


def sample_bytes(shapes: dict[str, int], str_bytes: int) -> int:
    """About how many bytes one sample's arrays take at `shapes`, in memory or on disk, counting each
    string as `str_bytes` (its length is not in the schema)."""
    return sum(
        int(np.prod(shape)) * (str_bytes if dtype == "str" else np.dtype(dtype).itemsize)
        for shape, dtype in expected_arrays(shapes).values()
    )


def check_arrays(where: Path, arrays: dict[str, np.ndarray], shapes: dict[str, int]) -> None:
    """Dtype, shape, finiteness and magnitude of every array of one shard (`where` names it)."""
    check_schema(where, arrays, shapes)
    check_finite(where, arrays)


def check_schema(where: Path, arrays: Mapping[str, np.ndarray], shapes: dict[str, int]) -> None:
    """Dtype and shape of every array of one shard: what its .npy headers say, so a memory-mapped shard
    is checked without reading its data."""
    n = None
    for name, (shape, dtype) in expected_arrays(shapes).items():
        a = arrays[name]
        if (a.dtype.kind != "U") if dtype == "str" else (a.dtype != np.dtype(dtype)):
            raise TinypredError(f"{where}: array {name!r} has dtype {a.dtype}, expected {dtype}")
        n = len(a) if n is None else n
        if a.shape != (n, *shape):
            raise TinypredError(f"{where}: array {name!r} has shape {a.shape}, expected {(n, *shape)}")


def check_finite(where: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Every float array given (all of a shard's, or the rows a batch gathered from it) finite and of a
    sane magnitude."""
    for name, a in arrays.items():
        if a.dtype.kind == "f" and a.size:
            limit = MAX_WORLD if name == "pose" else MAX_AGENT_FRAME
            # One pass for each extreme, no temporaries: a NaN propagates through both and fails both
            # comparisons. Only a failure pays for finding out which it is.
            if a.max() <= limit and a.min() >= -limit:
                continue
            if not np.all(np.isfinite(a)):
                raise TinypredError(f"{where}: array {name!r} contains NaN or Inf")
            raise TinypredError(f"{where}: array {name!r} holds {np.abs(a).max():.3g}, beyond {limit:g} m")


def check_values(where: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Cross-array consistency of one shard's arrays, or of the rows a batch gathered from it: indices in
    range, masks that agree, probabilities a distribution. Each check runs when the arrays it reads are
    given (a training batch reads the model's inputs only: their checks run on every batch)."""
    for name, needs, ok, expected in _VALUE_CHECKS:
        if all(a in arrays for a in needs) and len(arrays[needs[0]]) and not ok(*(arrays[a] for a in needs)):
            raise TinypredError(f"{where}: array {name!r}: expected {expected}")


def _in_range(k: int):
    return lambda a: np.all((a >= 0) & (a < k))


def _intent_ok(intent: np.ndarray, alt_mask: np.ndarray) -> bool:
    A = alt_mask.shape[1]
    intent = intent.astype(np.int64)
    chosen = alt_mask[np.arange(len(intent)), np.clip(intent, 0, A - 1)]
    return np.all(np.where(alt_mask.any(1), (intent >= 0) & (intent < A) & chosen, intent == -1))


# (array named in the message, the arrays the check reads, the check, what was expected)
_VALUE_CHECKS = (
    ("family", ("family",), _in_range(len(FAMILIES)), f"in [0, {len(FAMILIES)})"),
    ("lane_type", ("lane_type",), _in_range(len(LANE_TYPES)), f"in [0, {len(LANE_TYPES)})"),
    ("object_type", ("object_type",), _in_range(len(OBJECT_TYPES)), f"in [0, {len(OBJECT_TYPES)})"),
    (
        "neighbour_type",
        ("neighbour_type", "neighbour_mask"),
        lambda kind, mask: np.all(
            np.where(mask.any(-1), (kind >= 0) & (kind < len(OBJECT_TYPES)), kind == -1)
        ),
        f"in [0, {len(OBJECT_TYPES)}) for a present neighbour, -1 for an empty slot",
    ),
    ("history_mask", ("history_mask",), lambda m: np.all(m[:, -1]), "the last history step observed"),
    ("category", ("category",), lambda c: np.all((c == FOCAL) | (c == SCORED)), f"{FOCAL} or {SCORED}"),
    (
        "intent",
        ("intent", "alt_mask"),
        _intent_ok,
        f"a slot in [0, {MAX_ALTERNATIVES}) whose alt_mask is set, or -1 without a mixture",
    ),
    (
        "alt_intent",
        ("alt_intent", "alt_mask"),
        lambda kind, mask: np.all(np.where(mask, (kind >= 0) & (kind < len(INTENTS)), kind == -1)),
        "an intent index where masked in, -1 elsewhere",
    ),
    (
        "alt_probs",
        ("alt_probs", "alt_mask"),
        lambda p, mask: np.all((p >= 0) & (p <= 1) & (mask | (p == 0))),
        "in [0, 1] and 0 where alt_mask is off",
    ),
    (
        "alt_probs",
        ("alt_probs", "alt_mask"),
        lambda p, mask: np.allclose(p.sum(-1)[mask.any(1)], 1.0, atol=1e-5),
        "rows summing to 1 wherever there is a mixture",
    ),
)
