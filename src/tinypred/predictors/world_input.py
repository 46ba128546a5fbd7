"""A planner's arrays, checked, as the arrays the one encoding reads: world-frame inputs (or whole
`Scenes`, for a baseline) for `Predictor.predict`, `EncodedScenes` for `Predictor.predict_encoded`.

The conventions come from the model file (`EncodingSpec`); `tinypred.predictors.api` documents the
arrays. Nothing here moves a point between frames: `data.encoding` does, for every path. What a
planner does not have (futures, the ground-truth mixture, ids) is filled with the dataset's "unknown"
values: futures masked, no mixture slots, family "recorded".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tinypred.data.encoding import FEATURE_ARRAYS, EncodedScenes
from tinypred.data.scene_config import FAMILIES, LANE_TYPES, OBJECT_TYPES
from tinypred.data.scenes import FOCAL, SceneArrays, Scenes
from tinypred.errors import TinypredError
from tinypred.predictors.model_file import EncodingSpec

MAX_SPEED = 100.0  # m/s: faster is another unit (cm, a wrong dt), not a road agent
MAX_HEADING = 4 * np.pi  # rad: beyond, headings are degrees
MOVING = 0.5  # m/s: slower, the direction of motion says nothing about the heading
ENCODED_INPUTS = FEATURE_ARRAYS  # what a model reads of a dataset's encoded arrays, in order


class InputBuilder:
    """Checks arrays against one `EncodingSpec` and builds the scenes `encode` and the model read."""

    def __init__(self, spec: EncodingSpec) -> None:
        self.spec = spec
        self._fillers: dict[int, dict[str, np.ndarray]] = {}

    def world(self, history: Any, lanes: Any = None, neighbours: Any = None, **masks: Any) -> Scenes:
        """World-frame `Scenes` of N agents (arrays as in `tinypred.predictors.api`); futures unknown."""
        return self.scenes(self.world_inputs(history, lanes, neighbours, **masks))

    def scenes(self, given: Mapping[str, np.ndarray]) -> Scenes:
        """`world_inputs`' arrays as world-frame Scenes, what a planner does not have filled in."""
        fill = self._filler(len(given["history"]))
        return Scenes(**{k: fill[k] for k in Scenes.array_names() if k not in given} | given, dt=self.spec.dt)

    def world_inputs(
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
    ) -> dict[str, np.ndarray]:
        """The checked world-frame FEATURE_ARRAYS of N agents: history (N, H, 5) states, the map padded
        to L elements, the neighbours to M slots; what `world` wraps in Scenes."""
        e = self.spec
        h = e.history_steps
        history = np.asarray(history)
        if history.ndim != 3 or history.shape[1:] not in ((h, 2), (h, 3), (h, 5)) or len(history) == 0:
            raise TinypredError(
                f"expected (N >= 1, {h}, 2|3|5) world-frame x, y[, heading[, vx, vy]] over the last "
                f"{h} steps of {e.dt:g} s, got shape {history.shape}",
                arg="history",
            )
        n = len(history)
        mask = _mask(history_mask, "history_mask", n, (h,))
        if not mask[:, -1].all():
            raise TinypredError("the last step (now) of every agent must be observed", arg="history_mask")
        fill = self._filler(n)
        if neighbours is None:
            if neighbour_mask is not None or neighbour_type is not None:
                raise TinypredError("given without neighbours", arg="neighbour_mask/neighbour_type")
            nb, nb_mask, nb_type = fill["neighbours"], fill["neighbour_mask"], fill["neighbour_type"]
        else:
            nb, nb_mask, nb_type = self._neighbours(neighbours, neighbour_mask, neighbour_type, n)
        # float32 or float64 as given, as the generator and the AV2 importer keep them: encode moves them
        # in their own precision, so a dataset's world scenes give exactly the dataset's features.
        keep = lanes is not None and np.asarray(lanes).dtype == np.float32
        lanes, l_mask, l_type, l_int = self._map(
            lanes, lane_mask, lane_type, lane_is_intersection, n=n, dtype=np.float32 if keep else np.float64
        )
        return {
            "history": _states(history, mask, e.dt, "history"),
            "history_mask": mask,
            "lanes": lanes,
            "lane_mask": l_mask,
            "lane_type": l_type,
            "lane_is_intersection": l_int,
            "neighbours": nb,
            "neighbour_mask": nb_mask,
            "neighbour_type": nb_type,
        }

    def encoded(self, arrays: Mapping[str, Any] | EncodedScenes) -> EncodedScenes:
        """`EncodedScenes` of a dataset's encoded arrays (agent frame): history (N, H, 6) and history_mask
        (N, H) at least; the map's four arrays if there is one; neighbours (N, M, H, 6) with neighbour_mask
        (and neighbour_type) if there are any. A split's other arrays are ignored."""
        if isinstance(arrays, EncodedScenes):
            arrays = arrays.arrays()
        unknown = sorted(set(arrays) - {*SceneArrays.array_names(), "pose", "scene_id"})
        if unknown:
            expected = ", ".join(ENCODED_INPUTS)
            raise TinypredError(f"unknown array {unknown[0]!r}; expected {expected}", arg="arrays")
        if "history" not in arrays:
            raise TinypredError("expected at least history and history_mask", arg="arrays")
        if "neighbours" in arrays and "neighbour_mask" not in arrays:
            raise TinypredError("neighbours given without neighbour_mask", arg="arrays")
        e = self.spec
        history = _array(arrays["history"], "history", (e.history_steps, 6), np.float32)
        n = len(history)
        h_mask = _mask(arrays.get("history_mask"), "history_mask", n, (e.history_steps,))
        _finite(history, h_mask, "history")
        lanes, l_mask, l_type, l_int = self._map(
            *(arrays.get(k) for k in ENCODED_INPUTS[2:6]), n=n, dtype=np.float32
        )
        fill = self._filler(n)
        nb, nb_mask, nb_type = fill["neighbours_enc"], fill["neighbour_mask"], fill["neighbour_type"]
        if "neighbours" in arrays:
            m, h = e.max_neighbours, e.history_steps
            nb = _array(arrays["neighbours"], "neighbours", (m, h, 6), np.float32)
            nb_mask = _mask(arrays["neighbour_mask"], "neighbour_mask", n, (m, h))
            nb_type = self._types(arrays.get("neighbour_type"), nb_mask, n, m)
            _finite(nb, nb_mask, "neighbours")
            nb = np.where(nb_mask[..., None], nb, np.float32(0))
        given = {
            "history": np.where(h_mask[..., None], history, np.float32(0)),  # as a dataset stores them
            "history_mask": h_mask,
            "lanes": lanes,
            "lane_mask": l_mask,
            "lane_type": l_type,
            "lane_is_intersection": l_int,
            "neighbours": nb,
            "neighbour_mask": nb_mask,
            "neighbour_type": nb_type,
        }
        filled = {k: fill[k] for k in EncodedScenes.array_names() if k not in given}
        return EncodedScenes(**filled | given, dt=e.dt)

    def _neighbours(
        self, neighbours: Any, neighbour_mask: Any, neighbour_type: Any, n: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World states (N, M, H, 5), mask (N, M, H) and type (N, M) of the neighbours' pasts, the M'
        given padded with empty slots to the model's M."""
        e = self.spec
        nb = np.asarray(neighbours)
        shapes = [(e.history_steps, c) for c in (2, 3, 5)]
        if nb.ndim != 4 or len(nb) != n or nb.shape[1] > e.max_neighbours or nb.shape[2:] not in shapes:
            raise TinypredError(
                f"expected ({n}, <= {e.max_neighbours}, {e.history_steps}, 2|3|5) world-frame pasts like "
                f"history, got shape {nb.shape}",
                arg="neighbours",
            )
        m = nb.shape[1]
        mask = _mask(neighbour_mask, "neighbour_mask", n, (m, e.history_steps))
        flat = _states(nb.reshape(n * m, *nb.shape[2:]), mask.reshape(n * m, -1), e.dt, "neighbours")
        if nb.dtype == np.float32 and nb.shape[-1] == 5:  # as the generator keeps them: encoded alike
            flat = flat.astype(np.float32)
        kinds = self._types(neighbour_type, mask, n, m)
        pad = e.max_neighbours - m
        return (
            np.pad(flat.reshape(n, m, e.history_steps, 5), ((0, 0), (0, pad), (0, 0), (0, 0))),
            np.pad(mask, ((0, 0), (0, pad), (0, 0))),
            np.pad(kinds, ((0, 0), (0, pad)), constant_values=-1),
        )

    @staticmethod
    def _types(kinds: Any, mask: np.ndarray, n: int, m: int) -> np.ndarray:
        """(N, M) int8 index into OBJECT_TYPES of each slot (default "vehicle"); -1 where never observed."""
        present = mask.any(-1)
        if kinds is None:
            return np.where(present, OBJECT_TYPES.index("vehicle"), -1).astype(np.int8)
        kinds = np.asarray(kinds)
        if (
            kinds.shape != (n, m)
            or kinds.dtype.kind not in "iuf"  # float: what the exported ONNX graph takes
            or not np.all((kinds[present] >= 0) & (kinds[present] < len(OBJECT_TYPES)))
            or (kinds.dtype.kind == "f" and not (kinds[present] == np.round(kinds[present])).all())
        ):
            raise TinypredError(
                f"expected ({n}, {m}) indices into OBJECT_TYPES (0-{len(OBJECT_TYPES) - 1}) for the observed "
                f"slots, got {kinds.dtype} {kinds.shape}",
                arg="neighbour_type",
            )
        return np.where(present, kinds, -1).astype(np.int8)

    def _map(
        self, lanes: Any, lane_mask: Any, lane_type: Any, lane_is_intersection: Any, n: int, dtype: type
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """lanes (N, L, P, 2), lane_mask, lane_type and lane_is_intersection, padded to the model's L."""
        e = self.spec
        big_l, p = e.max_lanes, e.lane_points
        if lanes is None:
            if any(a is not None for a in (lane_mask, lane_type, lane_is_intersection)):
                raise TinypredError("given without lanes", arg="lane_mask")
            fill = self._filler(n)  # float32 zeros in either frame: masked elements stay exactly zero
            return fill["lanes"], fill["lane_mask"], fill["lane_type"], fill["lane_mask"]
        lanes = np.asarray(lanes)
        if lanes.ndim != 4 or len(lanes) != n or lanes.shape[1] > big_l or lanes.shape[2:] != (p, 2):
            window = (
                f"from {e.lane_window[0]:g} m behind to {e.lane_window[1]:g} m ahead of the agent"
                if e.lane_window is not None
                else "over the whole map element"
            )
            raise TinypredError(
                f"expected ({n}, <= {big_l}, {p}, 2) centre-lines of {p} points {window}, nearest first; "
                f"got shape {lanes.shape}",
                arg="lanes",
            )
        lanes = _array(lanes, "lanes", lanes.shape[1:], dtype)
        k = lanes.shape[1]
        mask = _mask(lane_mask, "lane_mask", n, (k,))
        _finite(lanes, mask, "lanes")
        kind = self._filler(n)["lane_type"][:, :k] if lane_type is None else np.asarray(lane_type)
        if (
            kind.shape != (n, k)
            or kind.dtype.kind not in "iuf"
            or (kind.size and not (kind.min() >= 0 and kind.max() < len(LANE_TYPES)))
            or (kind.dtype.kind == "f" and not (kind == np.round(kind)).all())
        ):
            raise TinypredError(
                f"expected ({n}, {k}) indices into {', '.join(LANE_TYPES)}, got {kind.dtype} {kind.shape}",
                arg="lane_type",
            )
        inter = _mask(lane_is_intersection, "lane_is_intersection", n, (k,), default=False)
        if not mask.all():  # encode multiplies by the mask, but NaN * 0 is NaN
            lanes = np.where(mask[..., None, None], lanes, dtype(0))
        if k == big_l:
            return lanes, mask, kind.astype(np.int8, copy=False), inter
        # Absent elements: zeros, masked, exactly as a dataset stores them.
        out = np.zeros((n, big_l, p, 2), dtype)
        out[:, :k] = lanes
        padded = [np.zeros((n, big_l), a.dtype) for a in (mask, inter)] + [np.zeros((n, big_l), np.int8)]
        for full, part in zip(padded, (mask, inter, kind), strict=True):
            full[:, :k] = part
        return out, padded[0], padded[2], padded[1]

    def _filler(self, n: int) -> dict[str, np.ndarray]:
        """The arrays a planner does not give, for N samples: made once per N and shared read-only
        (`encode` copies what it keeps), since allocating them is most of a batch of one's cost."""
        if n not in self._fillers:
            e = self.spec
            h, t, big_l, p, m = e.history_steps, e.future_steps, e.max_lanes, e.lane_points, e.max_neighbours
            fill = {
                "future": np.zeros((n, t, 2), np.float32),
                "future_mask": np.zeros((n, t), bool),
                "lanes": np.zeros((n, big_l, p, 2), np.float32),
                "lane_mask": np.zeros((n, big_l), bool),
                "lane_type": np.zeros((n, big_l), np.int8),
                "lane_is_intersection": np.zeros((n, big_l), bool),
                "neighbours": np.zeros((n, m, h, 5)),
                "neighbours_enc": np.zeros((n, m, h, 6), np.float32),
                "neighbour_mask": np.zeros((n, m, h), bool),
                "neighbour_type": np.full((n, m), -1, np.int8),
                "neighbour_track_id": np.full((n, m), ""),
                "neighbour_future": np.zeros((n, m, t, 2), np.float32),
                "neighbour_future_mask": np.zeros((n, m, t), bool),
                "alt_futures": np.zeros((n, 0, t, 2), np.float32),
                "alt_probs": np.zeros((n, 0), np.float32),
                "alt_mask": np.zeros((n, 0), bool),
                "alt_intent": np.zeros((n, 0), np.int8),
                "family": np.full(n, FAMILIES.index("recorded"), np.int8),
                "intent": np.full(n, -1, np.int8),
                "scenario_id": np.arange(n).astype("U"),
                "track_id": np.full(n, "agent"),
                "city": np.full(n, ""),
                "category": np.full(n, FOCAL, np.int8),
                "object_type": np.full(n, OBJECT_TYPES.index("vehicle"), np.int8),
                "pose": np.zeros((n, 3)),
                "scene_id": np.arange(n, dtype=np.int64),
            }
            for a in fill.values():
                a.flags.writeable = False
            if len(self._fillers) >= 8:  # a planner uses a few batch sizes; keep memory bounded
                self._fillers.pop(next(iter(self._fillers)))
            self._fillers[n] = fill
        return self._fillers[n]


def _array(a: Any, arg: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """a as a (N, *shape) array of dtype; anything else is a one-line error naming arg."""
    a = np.asarray(a)
    if a.ndim != len(shape) + 1 or a.shape[1:] != tuple(shape) or a.dtype.kind not in "fiu":
        expected = ", ".join(map(str, ("N", *shape)))
        raise TinypredError(f"expected ({expected}) numbers, got {a.dtype} {a.shape}", arg=arg)
    return a.astype(dtype, copy=False)


def _mask(a: Any, arg: str, n: int, shape: tuple[int, ...], default: bool = True) -> np.ndarray:
    """A bool mask of shape (n, *shape); None means all `default`."""
    if a is None:
        return np.full((n, *shape), default)
    a = np.asarray(a)
    if (
        a.shape != (n, *shape)
        or a.dtype.kind not in "biuf"
        or (a.dtype != bool and not ((a == 0) | (a == 1)).all())
    ):
        expected = ", ".join(map(str, (n, *shape)))
        raise TinypredError(f"expected ({expected}) booleans, got {a.dtype} {a.shape}", arg=arg)
    return a.astype(bool, copy=False)


def _finite(a: np.ndarray, mask: np.ndarray, arg: str) -> None:
    """Every observed value of a (N, ..., C) is finite (mask (N, ...) says which are observed)."""
    finite = np.isfinite(a)
    if finite.all():  # the usual case, in one pass
        return
    bad = ~finite.all(-1) & mask.reshape(mask.shape + (1,) * (a.ndim - 1 - mask.ndim))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise TinypredError(f"not finite at index {where}, an observed value", arg=arg)


def _states(history: np.ndarray, mask: np.ndarray, dt: float, arg: str) -> np.ndarray:
    """World states (N, H, 5) x, y, heading, vx, vy from (N, H, 2|3|5) arrays, units checked; unobserved
    steps become zeros (they may hold anything, NaN too)."""
    history = _array(history, arg, history.shape[1:], np.float64)
    _finite(history, mask, arg)
    if not mask.all():
        history = np.where(mask[..., None], history, 0.0)
    c = history.shape[-1]
    if c == 5:
        states = history
    else:
        states = np.empty((*history.shape[:2], 5))
        states[..., :2] = history[..., :2]
        # Differences of noisy positions are far noisier than a tracker's velocity and heading (the
        # synthetic data's noise is 5 cm, 0.1 m/s, 0.01 rad): averaged over 3 steps, and the direction of
        # motion over 7, it is what brings positions-only input back near the training distribution.
        velocity = _velocity(history[..., :2], mask, dt)
        states[..., 3:5] = _smooth(velocity, mask, 1)
        if c == 3:
            states[..., 2] = history[..., 2]
        else:
            motion = _smooth(velocity, mask, 3)
            states[..., 2] = _heading_of_motion(motion, np.hypot(motion[..., 0], motion[..., 1]), mask)
        states *= mask[..., None]  # a difference reaching past the first observation means nothing
    fastest = np.hypot(states[..., 3], states[..., 4]).max(initial=0.0)
    if fastest > MAX_SPEED:
        raise TinypredError(
            f"moves at {fastest:.0f} m/s (over {MAX_SPEED:.0f}): expected metres, steps {dt:g} s apart, m/s",
            arg=arg,
        )
    if c >= 3 and np.abs(states[..., 2]).max(initial=0.0) > MAX_HEADING:
        raise TinypredError("heading beyond 4 pi: expected radians, counter-clockwise from +x", arg=arg)
    return states


def _velocity(pos: np.ndarray, mask: np.ndarray, dt: float) -> np.ndarray:
    """(N, H, 2) velocities of positions (N, H, 2): central differences over the nearest observed steps
    before and after each step (one-sided at the ends and beside gaps; 0 for a lone observation)."""
    n, h = mask.shape
    steps = np.arange(h)
    before = np.maximum.accumulate(np.where(mask, steps, -1), axis=1)  # last observed <= t
    after = np.minimum.accumulate(np.where(mask, steps, h)[:, ::-1], axis=1)[:, ::-1]  # first >= t
    prev = np.concatenate([np.full((n, 1), -1), before[:, :-1]], 1)
    nxt = np.concatenate([after[:, 1:], np.full((n, 1), h)], 1)
    a = np.where(prev >= 0, prev, steps)
    b = np.where(nxt < h, nxt, steps)
    span = (b - a) * dt
    delta = np.take_along_axis(pos, b[..., None], 1) - np.take_along_axis(pos, a[..., None], 1)
    return np.where(span[..., None] > 0, delta / np.where(span > 0, span, 1.0)[..., None], 0.0)


def _smooth(values: np.ndarray, mask: np.ndarray, w: int) -> np.ndarray:
    """values (N, H, C) averaged over the observed steps within w of each step (fewer at the ends)."""
    h = mask.shape[1]
    weight = mask[..., None].astype(values.dtype)
    total = np.concatenate([np.zeros_like(values[:, :1]), np.cumsum(values * weight, 1)], 1)
    count = np.concatenate([np.zeros_like(weight[:, :1]), np.cumsum(weight, 1)], 1)
    lo, hi = np.clip(np.arange(h) - w, 0, h), np.clip(np.arange(h) + w + 1, 0, h)
    return (total[:, hi] - total[:, lo]) / np.maximum(count[:, hi] - count[:, lo], 1)


def _heading_of_motion(velocity: np.ndarray, speed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, H) the direction of motion where the agent moves; elsewhere the nearest moving step's (the
    last one before, else the first after); 0 (+x) for an agent that never moves."""
    moving = mask & (speed >= MOVING)
    angle = np.arctan2(velocity[..., 1], velocity[..., 0])
    before = np.maximum.accumulate(np.where(moving, np.arange(mask.shape[1]), -1), axis=1)
    first = moving.argmax(1)[:, None]  # 0 when it never moves: masked out below
    heading = np.take_along_axis(angle, np.where(before >= 0, before, first), 1)
    return np.where(moving.any(1)[:, None], heading, 0.0)
