"""The encoded scene: what the model reads, in the agent's own frame.

Agent-centric frame: the origin is the last *observed* position, x points along the last observed
heading, y to the agent's left. Everything a scene holds is moved into that frame; `pose` (x, y,
heading in the world) is kept so that `to_world` can move predictions back.

Per-step history features (H steps, oldest first), 6 numbers each:
    x, y            position (m)
    vx, vy          velocity (m/s): observed speed along the observed heading
    sin, cos        of the heading relative to the last one
The flat feature vector the model reads (`features`, D = 6 H + 2 L P + 2 L; 256 with the defaults):
    [ history (H, 6) | lanes (L, P, 2) | lane_mask (L) | lane_is_stop_line (L) ]
Lanes that do not exist are zeros with mask 0. `Normalizer` standardises each feature with a mean
and standard deviation fitted on the training split only.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from tinypred.data.scene_config import LANE_TYPES
from tinypred.data.scenes import SceneArrays, Scenes
from tinypred.geometry import as_complex, as_points

HISTORY_FEATURES = ("x", "y", "vx", "vy", "sin_heading", "cos_heading")


@dataclass(frozen=True)
class EncodedScenes(SceneArrays):
    """N scenes in their agent frames (float32; pose float64). history: (N, H, 6) features as in the
    module docstring; plus pose: (N, 3) world x, y, heading of each agent frame, and scene_id: (N,) int64,
    a stable index for joining predictions back to scenes.
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


BLOCK = 8192  # scenes per block: small temporaries, and blocks run on all cores


def encode(scenes: Scenes, scene_id: np.ndarray | None = None) -> EncodedScenes:
    """Move world-frame scenes into their agent frames (the last observed pose)."""
    n, h = scenes.history.shape[:2]
    f32 = np.float32
    out = EncodedScenes(
        history=np.empty((n, h, 6), f32),
        future=np.empty(scenes.future.shape, f32),
        lanes=np.empty(scenes.lanes.shape, f32),
        lane_mask=scenes.lane_mask.copy(),
        lane_type=scenes.lane_type.copy(),
        alt_futures=np.empty(scenes.alt_futures.shape, f32),
        alt_probs=scenes.alt_probs.astype(f32),
        alt_mask=scenes.alt_mask.copy(),
        alt_intent=scenes.alt_intent.copy(),
        family=scenes.family.copy(),
        intent=scenes.intent.copy(),
        dt=scenes.dt,
        pose=scenes.history[:, -1, :3].astype(np.float64),
        scene_id=np.arange(n, dtype=np.int64) if scene_id is None else np.asarray(scene_id, np.int64),
    )

    def block(lo: int) -> None:
        rows = slice(lo, lo + BLOCK)
        pose = out.pose[rows]
        hist = scenes.history[rows]
        rel = hist[..., 2] - pose[:, 2:3]  # heading relative to the last observed one
        speed = hist[..., 3]
        out.history[rows, :, :2] = to_agent(hist[..., :2], pose, f32)
        out.history[rows, :, 2] = speed * np.cos(rel)
        out.history[rows, :, 3] = speed * np.sin(rel)
        out.history[rows, :, 4] = np.sin(rel)
        out.history[rows, :, 5] = np.cos(rel)
        out.future[rows] = to_agent(scenes.future[rows], pose, f32)
        # Lanes and alternatives that do not exist stay exactly zero.
        out.lanes[rows] = to_agent(scenes.lanes[rows], pose, f32) * out.lane_mask[rows, :, None, None]
        out.alt_futures[rows] = (
            to_agent(scenes.alt_futures[rows], pose, f32) * out.alt_mask[rows, :, None, None]
        )

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # NumPy releases the GIL
        list(pool.map(block, range(0, n, BLOCK)))
    return out


def features(enc: EncodedScenes) -> np.ndarray:
    """The flat (N, D) float32 model input; the layout is in the module docstring."""
    n = len(enc)
    stop = (enc.lane_type == LANE_TYPES.index("stop_line")) & enc.lane_mask
    return np.concatenate(
        [
            enc.history.reshape(n, -1),
            enc.lanes.reshape(n, -1),
            enc.lane_mask.astype(np.float32),
            stop.astype(np.float32),
        ],
        -1,
        dtype=np.float32,
    )


def feature_names(history_steps: int, max_lanes: int, lane_points: int) -> list[str]:
    """Names of the D features, in `features` order (for saliency plots and the docs)."""
    names = [f"h{t}.{f}" for t in range(history_steps) for f in HISTORY_FEATURES]
    names += [f"lane{i}.p{p}.{c}" for i in range(max_lanes) for p in range(lane_points) for c in "xy"]
    names += [f"lane{i}.mask" for i in range(max_lanes)] + [f"lane{i}.is_stop_line" for i in range(max_lanes)]
    return names


@dataclass(frozen=True)
class Normalizer:
    """Per-feature standardisation: (x - mean) / std. Fit on the training split only."""

    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)

    @classmethod
    def fit(cls, x: np.ndarray) -> Normalizer:
        """Fit on training features x (N, D). Constant features (the last position, always 0) get std 1."""
        mean = x.mean(0, dtype=np.float64)
        std = x.std(0, dtype=np.float64)
        return cls(mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)
