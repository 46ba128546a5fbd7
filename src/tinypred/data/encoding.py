"""The encoded scene: what the model reads, in the agent's own frame. One encoding for synthetic scenes
and for scenes imported from Argoverse 2.

Agent-centric frame: the origin is the target's last *observed* position, x points along its last
observed heading, y to its left. Everything a sample holds (its past, its future, the map, the
neighbours' pasts) is moved into that frame; `pose` (x, y, heading in the world) is kept so that
`to_world` can move predictions back.

Per-step state features (H steps, oldest first), 6 numbers each, for the target and every neighbour:
    x, y            position (m)
    vx, vy          observed velocity (m/s)
    sin, cos        of the heading relative to the target's last one
Steps without an observation are zeros with mask 0 (never interpolated). The flat feature vector the
model reads (`features`; `feature_layout` names its groups),
D = 7 H + 2 L P + (len(LANE_TYPES) + 1) L + M (7 H + len(OBJECT_TYPES)):
    [ history (H, 6) | history_mask (H) | lanes (L, P, 2) | lane_mask (L)
      | lane type, one-hot but for "lane" (L, len(LANE_TYPES) - 1) | lane_is_intersection (L)
      | neighbours (M, H, 6) | neighbour_mask (M, H) | neighbour type, one-hot (M, len(OBJECT_TYPES)) ]
888 numbers with the synthetic defaults (288 for the target and the map, 150 per neighbour slot).
Map elements and neighbour slots that do not exist are zeros with mask 0. The neighbours' futures are
kept for pictures and exports, never read by a model. `Normalizer` standardises each feature with a
mean and standard deviation fitted on the training split only; a flag (a feature only ever 0 or 1 there)
stays as it is, so that a mask still says exactly "absent" to the model (its neighbour pooling relies
on it). The neighbour slots are standardised alike, with moments pooled over the slots (`slot_groups`):
an agent reads the same whichever slot it is in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from tinypred.data.scene_config import LANE_TYPES, OBJECT_TYPES
from tinypred.data.scenes import SceneArrays, Scenes
from tinypred.errors import TinypredError
from tinypred.geometry import as_complex, as_points

HISTORY_FEATURES = ("x", "y", "vx", "vy", "sin_heading", "cos_heading")


@dataclass(frozen=True)
class EncodedScenes(SceneArrays):
    """N samples in their agent frames (float32; pose float64). history (N, H, 6) and neighbours
    (N, M, H, 6) hold the state features of the module docstring; plus pose: (N, 3) world x, y, heading
    of each agent frame, and scene_id: (N,) int64, a stable index for joining predictions back to samples.
    """

    pose: np.ndarray
    scene_id: np.ndarray


def to_agent(points: np.ndarray, pose: np.ndarray, dtype=np.float64) -> np.ndarray:
    """World points (N, ..., 2) into the agent frames given by pose (N, 3), as `dtype`."""
    z = as_complex(points)
    shape = (len(pose),) + (1,) * (z.ndim - 1)
    out = np.empty(z.shape, np.complex64 if dtype == np.float32 else np.complex128)
    # (z - origin) * e^{-i heading}, in the input's precision, written straight into the output's.
    origin = (pose[:, 0] + 1j * pose[:, 1]).astype(z.dtype).reshape(shape)
    np.multiply(
        z - origin, np.exp(-1j * pose[:, 2]).astype(z.dtype).reshape(shape), out=out, casting="same_kind"
    )
    return as_points(out)


def to_world(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Agent-frame points (N, ..., 2) back to the world (float64), given pose (N, 3); undoes `to_agent`."""
    z = as_complex(points.astype(np.float64, copy=False))
    shape = (len(pose),) + (1,) * (z.ndim - 1)
    return as_points(
        z * np.exp(1j * pose[:, 2]).reshape(shape) + (pose[:, 0] + 1j * pose[:, 1]).reshape(shape)
    )


def rotate_vectors(vectors: np.ndarray, angle: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Free vectors (N, ..., 2) (velocities) rotated by angle (N,), as `dtype`: no translation, unlike
    points."""
    z = as_complex(vectors)
    turn = np.exp(1j * angle).astype(z.dtype).reshape((len(angle),) + (1,) * (z.ndim - 1))
    out = np.empty(z.shape, np.complex64 if dtype == np.float32 else np.complex128)
    np.multiply(z, turn, out=out, casting="same_kind")
    return as_points(out)


def _states(states: np.ndarray, mask: np.ndarray, pose: np.ndarray, out: np.ndarray) -> None:
    """World states (N, ..., 5) of x, y, heading, vx, vy into the agent frames of pose (N, 3), written
    into out (N, ..., 6) as the state features; steps where mask (N, ...) is False become zeros."""
    # float32 trigonometry: vectorised (see `geometry.arc`), and the features are float32.
    rel = (states[..., 2] - pose[:, 2].reshape((-1,) + (1,) * (states.ndim - 2))).astype(np.float32)
    out[..., :2] = to_agent(states[..., :2], pose, np.float32)
    out[..., 2:4] = rotate_vectors(states[..., 3:5], -pose[:, 2], np.float32)
    out[..., 4] = np.sin(rel)
    out[..., 5] = np.cos(rel)
    out *= mask[..., None]


# The world-frame arrays `move_inputs` reads.
MOVED_INPUTS = ("history", "history_mask", "neighbours", "neighbour_mask", "lanes", "lane_mask")


def move_inputs(
    world: Mapping[str, np.ndarray], pose: np.ndarray, out: Mapping[str, np.ndarray] | None = None
) -> Mapping[str, np.ndarray]:
    """The one move of a model's inputs into the agent frames of pose (N, 3): world's history (N, H, 5),
    neighbours (N, M, H, 5) and lanes (N, L, P, 2) with their masks (MOVED_INPUTS) become the features
    history (N, H, 6), neighbours (N, M, H, 6) and lanes (N, L, P, 2) float32, written into out's arrays
    of those names (returned; new ones when None). out's neighbours and lanes must start as zeros: when
    nothing is there they are left alone (most synthetic scenes have no neighbours, a planner's often no
    map)."""
    if out is None:
        n, h = world["history_mask"].shape
        out = {
            "history": np.empty((n, h, 6), np.float32),
            "neighbours": np.zeros((*world["neighbour_mask"].shape, 6), np.float32),
            "lanes": np.zeros(world["lanes"].shape, np.float32),
        }
    _states(world["history"], world["history_mask"], pose, out["history"])
    rows = _rows_with(world["neighbour_mask"])
    if len(rows) == len(pose):
        _states(world["neighbours"], world["neighbour_mask"], pose, out["neighbours"])
    elif len(rows):  # only the interactive scenes of a synthetic set: move just those
        moved = np.zeros((len(rows), *out["neighbours"].shape[1:]), np.float32)
        _states(world["neighbours"][rows], world["neighbour_mask"][rows], pose[rows], moved)
        out["neighbours"][rows] = moved
    if world["lane_mask"].any():  # absent map elements stay exactly zero
        out["lanes"][...] = to_agent(world["lanes"], pose, np.float32) * world["lane_mask"][..., None, None]
    return out


def _rows_with(mask: np.ndarray) -> np.ndarray:
    """The indices of the samples whose mask (N, ...) holds anything."""
    return np.flatnonzero(mask.any(axis=tuple(range(1, mask.ndim))))


BLOCK = 8192  # samples per block: small temporaries, and blocks run on all cores


def encode(scenes: Scenes, scene_id: np.ndarray | None = None) -> EncodedScenes:
    """Move world-frame samples into their agent frames (the target's last observed pose)."""
    n, h = scenes.history.shape[:2]
    if n and not scenes.history_mask[:, -1].all():
        raise TinypredError("every sample's target must be observed at its last history step", arg="scenes")
    f32 = np.float32
    out = EncodedScenes(
        history=np.empty((n, h, 6), f32),
        history_mask=scenes.history_mask.copy(),
        future=np.zeros(scenes.future.shape, f32),
        future_mask=scenes.future_mask.copy(),
        lanes=np.zeros(scenes.lanes.shape, f32),
        lane_mask=scenes.lane_mask.copy(),
        lane_type=scenes.lane_type.copy(),
        lane_is_intersection=scenes.lane_is_intersection.copy(),
        neighbours=np.zeros((*scenes.neighbours.shape[:3], 6), f32),
        neighbour_mask=scenes.neighbour_mask.copy(),
        neighbour_type=scenes.neighbour_type.copy(),
        neighbour_track_id=scenes.neighbour_track_id.copy(),
        neighbour_future=np.zeros(scenes.neighbour_future.shape, f32),
        neighbour_future_mask=scenes.neighbour_future_mask.copy(),
        alt_futures=np.zeros(scenes.alt_futures.shape, f32),
        alt_probs=scenes.alt_probs.astype(f32),
        alt_mask=scenes.alt_mask.copy(),
        alt_intent=scenes.alt_intent.copy(),
        family=scenes.family.copy(),
        intent=scenes.intent.copy(),
        scenario_id=scenes.scenario_id.copy(),
        track_id=scenes.track_id.copy(),
        city=scenes.city.copy(),
        category=scenes.category.copy(),
        object_type=scenes.object_type.copy(),
        dt=scenes.dt,
        pose=scenes.history[:, -1, :3].astype(np.float64),
        scene_id=np.arange(n, dtype=np.int64) if scene_id is None else np.asarray(scene_id, np.int64),
    )

    def block(lo: int) -> None:
        rows = slice(lo, lo + BLOCK)
        pose = out.pose[rows]
        move_inputs(
            {name: getattr(scenes, name)[rows] for name in MOVED_INPUTS},
            pose,
            {name: getattr(out, name)[rows] for name in ("history", "neighbours", "lanes")},
        )
        some = lo + _rows_with(out.neighbour_future_mask[rows])
        if len(some):
            mask = out.neighbour_future_mask[some, ..., None]
            out.neighbour_future[some] = to_agent(scenes.neighbour_future[some], out.pose[some], f32) * mask
        # Unknown futures and alternatives stay exactly zero; a planner's scenes skip those moves.
        if out.future_mask[rows].any():
            out.future[rows] = to_agent(scenes.future[rows], pose, f32) * out.future_mask[rows, :, None]
        if out.alt_mask[rows].any():
            out.alt_futures[rows] = (
                to_agent(scenes.alt_futures[rows], pose, f32) * out.alt_mask[rows, :, None, None]
            )

    if n <= BLOCK:  # one block: starting threads would cost more than it (a planner's batch of one)
        block(0)
        return out
    # The CPUs this process may run on (taskset, a container), not every core of the machine.
    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:  # NumPy releases the GIL
        list(pool.map(block, range(0, n, BLOCK)))
    return out


def feature_layout(
    history_steps: int, max_lanes: int, lane_points: int, max_neighbours: int
) -> dict[str, slice]:
    """The groups of the flat feature vector, in order: name -> its slice of the D features."""
    h, lanes, p, m = history_steps, max_lanes, lane_points, max_neighbours
    sizes = {
        "history": h * len(HISTORY_FEATURES),
        "history_mask": h,
        "lanes": lanes * p * 2,
        "lane_mask": lanes,
        "lane_type": lanes * (len(LANE_TYPES) - 1),
        "lane_is_intersection": lanes,
        "neighbours": m * h * len(HISTORY_FEATURES),
        "neighbour_mask": m * h,
        "neighbour_type": m * len(OBJECT_TYPES),
    }
    bounds = np.cumsum([0, *sizes.values()])
    return {name: slice(int(a), int(b)) for name, a, b in zip(sizes, bounds[:-1], bounds[1:], strict=True)}


def slot_groups(shapes: Mapping[str, int]) -> tuple[tuple[slice, int], ...]:
    """The feature groups made of one block per neighbour slot, with the number of slots M, for a dataset
    of `shapes` (H, L, P, M): what the normaliser standardises alike in every slot."""
    layout = feature_layout(shapes["H"], shapes["L"], shapes["P"], shapes["M"])
    groups = ("neighbours", "neighbour_mask", "neighbour_type")
    return tuple((layout[name], shapes["M"]) for name in groups) if shapes["M"] else ()


def feature_count(history_steps: int, max_lanes: int, lane_points: int, max_neighbours: int) -> int:
    """D: the length of the flat feature vector of these shapes."""
    return feature_layout(history_steps, max_lanes, lane_points, max_neighbours)["neighbour_type"].stop


# The arrays `features` reads: all a batch of model inputs needs from a dataset.
FEATURE_ARRAYS = (
    "history",
    "history_mask",
    "lanes",
    "lane_mask",
    "lane_type",
    "lane_is_intersection",
    "neighbours",
    "neighbour_mask",
    "neighbour_type",
)


def features(enc: EncodedScenes | Mapping[str, np.ndarray]) -> np.ndarray:
    """The flat (N, D) float32 model input; the layout is in the module docstring. `enc` may also be a
    mapping holding just the FEATURE_ARRAYS (rows a loader gathered)."""
    a = enc if isinstance(enc, Mapping) else {name: getattr(enc, name) for name in FEATURE_ARRAYS}
    n = len(a["history"])
    # One-hot of the element type, "lane" (type 0) being all zeros; absent elements are all zeros too.
    kinds = (a["lane_type"][..., None] == np.arange(1, len(LANE_TYPES))) & a["lane_mask"][..., None]
    agents = a["neighbour_type"][..., None] == np.arange(len(OBJECT_TYPES))  # -1 (empty): all zeros

    def flat(x: np.ndarray) -> np.ndarray:  # (n, ...) -> (n, the rest), n = 0 included
        return x.reshape(n, math.prod(x.shape[1:]))

    return np.concatenate(
        [
            flat(a["history"]),
            a["history_mask"],
            flat(a["lanes"]),
            a["lane_mask"],
            flat(kinds),
            a["lane_is_intersection"] & a["lane_mask"],
            flat(a["neighbours"]),
            flat(a["neighbour_mask"]),
            flat(agents),
        ],
        -1,
        dtype=np.float32,
    )


def feature_names(history_steps: int, max_lanes: int, lane_points: int, max_neighbours: int) -> list[str]:
    """Names of the D features, in `features` order (for saliency plots and the docs)."""
    h, lanes, p = range(history_steps), range(max_lanes), range(lane_points)
    m = range(max_neighbours)
    names = [f"h{t}.{f}" for t in h for f in HISTORY_FEATURES] + [f"h{t}.mask" for t in h]
    names += [f"lane{i}.p{j}.{c}" for i in lanes for j in p for c in "xy"]
    names += [f"lane{i}.mask" for i in lanes]
    names += [f"lane{i}.is_{kind}" for i in lanes for kind in LANE_TYPES[1:]]
    names += [f"lane{i}.is_intersection" for i in lanes]
    names += [f"nb{j}.h{t}.{f}" for j in m for t in h for f in HISTORY_FEATURES]
    names += [f"nb{j}.h{t}.mask" for j in m for t in h]
    names += [f"nb{j}.is_{kind}" for j in m for kind in OBJECT_TYPES]
    return names


@dataclass(frozen=True)
class Normalizer:
    """Per-feature standardisation: (x - mean) / std. Fit on the training split only."""

    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)

    @classmethod
    def fit(cls, x: np.ndarray, slots: Sequence[tuple[slice, int]] = ()) -> Normalizer:
        """Fit on training features x (N, D); `slots` as in `FeatureMoments.normalizer`."""
        return FeatureMoments().add(x).normalizer(slots)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32, copy=False)

    def problem(self, features: int) -> str | None:
        """Why these numbers cannot standardise `features` features (None when they can): a NaN mean
        would poison every prediction, an infinite std silently zero a feature."""
        if self.mean.shape != (features,) or self.std.shape != (features,):
            return f"expected mean and std of {features} numbers, got {self.mean.shape} and {self.std.shape}"
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all()):
            return "mean and std must be finite"
        if not (self.std > 0).all():
            return "std must be > 0"
        if np.abs(self.mean).max(initial=0) > 1e6 or self.std.max(initial=0) > 1e6:
            return "mean and std must lie within 1e6 (features are metres, m/s and flags)"
        return None


class FeatureMoments:
    """Running count, mean and sum of squared deviations of features, fed chunk by chunk (a split that
    never sits in memory whole), merged exactly as in Chan et al.'s parallel variance algorithm."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray | float = 0.0
        self.m2: np.ndarray | float = 0.0
        self.flag: np.ndarray | bool = True  # (D,): the feature was only ever 0 or 1

    def add(self, x: np.ndarray) -> FeatureMoments:
        """Add the rows of x (N, D); returns self."""
        n = len(x)
        if n == 0:
            return self
        mean = x.mean(0, dtype=np.float64)
        m2 = np.square(x - mean, dtype=np.float64).sum(0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total
        self.flag = self.flag & ((x == 0) | (x == 1)).all(0)
        return self

    def normalizer(self, slots: Sequence[tuple[slice, int]] = ()) -> Normalizer:
        """The Normalizer of everything added. Constant features (the last position, always 0) get std 1;
        flags (only ever 0 or 1) mean 0 and std 1: they stay as they are.

        `slots`: groups of features (a slice holding M slots of the same features, as `slot_groups` gives
        them) standardised alike in every slot, with their moments pooled over the slots: an agent's
        features then read the same whichever slot it lands in (the slots are a set), and a slot the
        training data seldom fills borrows the others' statistics instead of standardising by its few."""
        if self.count == 0:
            raise TinypredError("no training samples to fit the feature normalisation on", arg="train")
        mean, var = np.array(self.mean, np.float64), self.m2 / self.count
        flag = np.array(self.flag, bool)
        for group, m in slots:
            means, variances = mean[group].reshape(m, -1), var[group].reshape(m, -1)
            pooled = means.mean(0)  # every slot counts the same samples: the mean of means, and
            var[group] = np.tile((variances + (means - pooled) ** 2).mean(0), m)  # the law of total variance
            mean[group] = np.tile(pooled, m)
            flag[group] = np.tile(flag[group].reshape(m, -1).all(0), m)
        std = np.sqrt(var)
        return Normalizer(
            np.where(flag, 0.0, mean).astype(np.float32),
            np.where(flag | (std <= 1e-6), 1.0, std).astype(np.float32),
        )
