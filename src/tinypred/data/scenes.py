"""Synthetic driving scenes with real decision points, in the world frame.

World in metres, at the configured time step (10 Hz by default). Each scene has one target agent: an
observed past (`history`), the future it actually drove (`future`), the lane centre-lines around it
(`lanes`), the other agents (`neighbours`: their pasts and futures, in the interactive families) and
the **ground-truth mixture**: the noise-free future of every intent it could have chosen, or that the
other agents could have forced on it, from the same past, with its probability.
`tinypred.data.families` and `tinypred.data.interactive` draw the scenes in a canonical frame (how the
past hints at the intent, why even the mixture cannot know the future exactly); `tinypred.data.paths`
moves the agents. Here they are observed with noise and moved to a random world pose.
`generate_with_resamplers` also returns how to draw each scene's future again from its true
conditional distribution: what the `bayes` floor is computed from.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from functools import cache
from typing import Self

import numpy as np

from tinypred.data.drawn import Drawn
from tinypred.data.families import BUILDERS as FAMILY_BUILDERS
from tinypred.data.interactive import BUILDERS as INTERACTIVE_BUILDERS
from tinypred.data.scene_config import (
    DECISION_FAMILIES,
    FAMILIES,
    FAMILY_INTENTS,
    INTENTS,
    INTERACTIVE_FAMILIES,
    MAX_ALTERNATIVES,
    OBJECT_TYPES,
    SYNTHETIC_FAMILIES,
    SceneConfig,
)
from tinypred.errors import TinypredError
from tinypred.geometry import as_points, rotate, wrap_angle

FOCAL, SCORED = 3, 2  # Argoverse 2's track categories of a sample's target


@dataclass(frozen=True)
class SceneArrays:
    """The arrays every sample has, in the world frame (`Scenes`) or its agent's frame (`EncodedScenes`).
    A sample is one target agent of a scene. Shapes: N samples, H history and T future steps, L map
    elements (lanes and stop lines) of P points, M neighbour slots, A = MAX_ALTERNATIVES.

    history: (N, H, F) the target's observed past (F per frame: see the subclasses); history_mask (N, H)
        bool, False where the track has no observation (those steps are zeros, never interpolated)
    future: (N, T, 2) the future actually driven; future_mask (N, T) bool, all False where the future is
        unknown (an Argoverse 2 test split)
    lanes: (N, L, P, 2); lane_mask (N, L) bool; lane_type (N, L) int8 index into LANE_TYPES;
        lane_is_intersection (N, L) bool
    neighbours: (N, M, H, F) the other agents' pasts, nearest first at the last observed step;
        neighbour_mask (N, M, H) bool; neighbour_type (N, M) int8 index into OBJECT_TYPES, -1 where empty;
        neighbour_future (N, M, T, 2) what each drove next, neighbour_future_mask (N, M, T) bool (all
        False where unknown): for pictures and the exporter, never a model input
    alt_futures: (N, A, T, 2) the ground-truth mixture: noise-free future of each intent; alt_probs (N, A),
        0 where masked; alt_mask (N, A) bool; alt_intent (N, A) int8 index into INTENTS, -1 where masked
        (all masked for recorded scenes: their mixture is unknown)
    family: (N,) int8 index into FAMILIES; intent: (N,) int8 slot of the chosen intent, -1 if unknown
    scenario_id, track_id, city: (N,) str: where the sample comes from (the scenario and the target's
        track in Argoverse 2 terms); category (N,) int8: the target's AV2 track category (3 focal,
        2 scored; synthetic targets are focal); object_type (N,) int8 index into OBJECT_TYPES
    dt: the time step between two history or future steps, s. It travels with the arrays, so that
        nothing that turns steps into seconds (velocities, baselines, exports) can assume one.
    """

    history: np.ndarray
    history_mask: np.ndarray
    future: np.ndarray
    future_mask: np.ndarray
    lanes: np.ndarray
    lane_mask: np.ndarray
    lane_type: np.ndarray
    lane_is_intersection: np.ndarray
    neighbours: np.ndarray
    neighbour_mask: np.ndarray
    neighbour_type: np.ndarray
    neighbour_track_id: np.ndarray
    neighbour_future: np.ndarray
    neighbour_future_mask: np.ndarray
    alt_futures: np.ndarray
    alt_probs: np.ndarray
    alt_mask: np.ndarray
    alt_intent: np.ndarray
    family: np.ndarray
    intent: np.ndarray
    scenario_id: np.ndarray
    track_id: np.ndarray
    city: np.ndarray
    category: np.ndarray
    object_type: np.ndarray
    dt: float

    def __len__(self) -> int:
        return self.history.shape[0]

    @classmethod
    @cache  # a batch of one (a planner's call) builds a few of these: walking the fields is its cost
    def array_names(cls) -> tuple[str, ...]:
        """The names of the per-scene arrays (every field but `dt`), in field order."""
        return tuple(f.name for f in fields(cls) if f.name != "dt")

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-scene arrays by name (what a dataset file stores; `dt` goes to its meta.json)."""
        return {name: getattr(self, name) for name in self.array_names()}

    def subset(self, idx: np.ndarray | slice) -> Self:
        """The scenes idx (an index array, a mask or a slice), with the same dt."""
        return replace(self, **{name: a[idx] for name, a in self.arrays().items()})

    @classmethod
    def concatenate(cls, parts: list[Self]) -> Self:
        """The samples of `parts` (at least one, all with the same dt and shapes) one after the other."""
        return replace(
            parts[0],
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name in cls.array_names()},
        )

    @property
    def is_decision(self) -> np.ndarray:
        """(N,) bool: the scene's family has a decision point."""
        return np.isin(self.family, [FAMILIES.index(f) for f in DECISION_FAMILIES])

    @property
    def is_interactive(self) -> np.ndarray:
        """(N,) bool: the scene's family is interactive (its other agents decide the future)."""
        return np.isin(self.family, [FAMILIES.index(f) for f in INTERACTIVE_FAMILIES])

    @property
    def has_future(self) -> bool:
        """Every future is known (not so in an Argoverse 2 test split: predict it, never score it)."""
        return bool(self.future_mask.all())

    @property
    def has_mixture(self) -> bool:
        """Every sample carries its ground-truth mixture (synthetic scenes do, recorded ones do not)."""
        return bool(self.alt_mask.any(1).all())


@dataclass(frozen=True)
class Scenes(SceneArrays):
    """N samples in the world frame: history (N, H, 5) and neighbours (N, M, H, 5) are the observed x, y,
    heading, vx, vy (m, rad, m/s), history float64; the generator keeps the neighbours, futures, lanes
    and alternatives float32 (6e-5 m of resolution within its 1 km), the Argoverse 2 importer float64
    (city coordinates)."""

    def rigid_transform(self, angle: float, shift: np.ndarray) -> Scenes:
        """The same scenes rotated by `angle` about the origin, then moved by `shift` (2,)."""

        def move(points: np.ndarray) -> np.ndarray:
            return rotate(points, angle) + shift

        def move_states(states: np.ndarray) -> np.ndarray:
            out = states.copy()
            out[..., :2] = move(states[..., :2])
            out[..., 2] += angle
            out[..., 3:5] = rotate(states[..., 3:5], angle)
            return out

        return replace(
            self,
            history=move_states(self.history),
            future=move(self.future),
            lanes=move(self.lanes),
            neighbours=move_states(self.neighbours),
            neighbour_future=move(self.neighbour_future),
            alt_futures=move(self.alt_futures),
        )


# ----------------------------------------------------------------------------------------------------
# Putting a batch together


CHUNK = 32768  # scenes per vectorised batch; fixed, so that a seed always gives the same arrays
BUILDERS = FAMILY_BUILDERS | INTERACTIVE_BUILDERS


@dataclass(frozen=True)
class Resampler:
    """How to draw the futures of some scenes of a generated set again (`Drawn.resample`), and the world
    pose the generator gave them: rows (B,) of the set, turn (B,) e^{i angle}, shift (B,) complex."""

    rows: np.ndarray
    resample: Callable[[np.random.Generator], np.ndarray]
    turn: np.ndarray
    shift: np.ndarray

    def world(self, canonical: np.ndarray) -> np.ndarray:
        """Canonical-frame positions (B, ...) complex -> world points (B, ..., 2) float64."""
        extra = (1,) * (canonical.ndim - 1)
        return as_points(canonical * self.turn.reshape(-1, *extra) + self.shift.reshape(-1, *extra))


def generate(cfg: SceneConfig, n: int, seed: int | np.random.SeedSequence, start: int = 0) -> Scenes:
    """N scenes in the world frame. The same (config, n, seed) gives the same arrays.

    `start` (a multiple of CHUNK) gives rows start to start + n of a longer set made with the same seed
    instead, so that a set too large for memory is made piece by piece with the same numbers.
    """
    return generate_with_resamplers(cfg, n, seed, start)[0]


def generate_with_resamplers(
    cfg: SceneConfig, n: int, seed: int | np.random.SeedSequence, start: int = 0
) -> tuple[Scenes, list[Resampler]]:
    """`generate`, and a `Resampler` per family batch: what the bayes floor draws the futures from."""
    if n < 0:
        raise TinypredError(f"expected a number of scenes >= 0, got {n}", arg="n")
    if start < 0 or start % CHUNK:
        raise TinypredError(f"expected a multiple of {CHUNK} >= 0, got {start}", arg="start")
    H, T, L, M = cfg.history_steps, cfg.future_steps, cfg.max_lanes, cfg.max_neighbours
    A = MAX_ALTERNATIVES
    # Every family batch writes its rows of the np.empty arrays. The neighbour slots start empty (np.zeros
    # costs nothing until written): only the scenes with other agents write theirs.
    scenes = Scenes(
        history=np.empty((n, H, 5)),
        history_mask=np.ones((n, H), bool),
        future=np.empty((n, T, 2), np.float32),
        future_mask=np.ones((n, T), bool),
        lanes=np.empty((n, L, cfg.lane_points, 2), np.float32),
        lane_mask=np.empty((n, L), bool),
        lane_type=np.empty((n, L), np.int8),
        lane_is_intersection=np.zeros((n, L), bool),
        neighbours=np.zeros((n, M, H, 5), np.float32),
        neighbour_mask=np.zeros((n, M, H), bool),
        neighbour_type=np.full((n, M), -1, np.int8),
        neighbour_track_id=np.zeros((n, M), "<U21"),  # all ""
        neighbour_future=np.zeros((n, M, T, 2), np.float32),
        neighbour_future_mask=np.zeros((n, M, T), bool),
        alt_futures=np.empty((n, A, T, 2), np.float32),
        alt_probs=np.empty((n, A)),
        alt_mask=np.empty((n, A), bool),
        alt_intent=np.empty((n, A), np.int8),
        family=np.empty(n, np.int8),
        intent=np.empty(n, np.int8),
        scenario_id=np.arange(start, start + n).astype("U"),
        track_id=np.full(n, "focal"),
        city=np.full(n, "synthetic"),
        category=np.full(n, FOCAL, np.int8),
        object_type=np.full(n, OBJECT_TYPES.index("vehicle"), np.int8),
        dt=cfg.dt,
    )
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    starts = range(0, n, CHUNK)

    def fill(lo: int) -> list[Resampler]:
        # Chunk c of the whole set draws from child c of the seed: seq.spawn(c + 1)[c] of a fresh seq,
        # built here without spawning (spawn counts its children, so a second call would move on).
        child = np.random.SeedSequence(
            seq.entropy, spawn_key=(*seq.spawn_key, (start + lo) // CHUNK), pool_size=seq.pool_size
        )
        return _fill(cfg, np.random.default_rng(child), scenes, lo, min(CHUNK, n - lo))

    # Chunks have their own random streams and disjoint rows, so threads (NumPy releases the GIL in its
    # loops) change the speed, never the numbers.
    with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1) or 1) as pool:
        resamplers = [r for parts in pool.map(fill, starts) for r in parts]
    return scenes, resamplers


def _fill(cfg: SceneConfig, rng: np.random.Generator, scenes: Scenes, lo: int, n: int) -> list[Resampler]:
    """Generate rows lo to lo + n of `scenes`, one family batch at a time; a Resampler per batch."""
    weights = np.array([cfg.family_weights.get(f, 0.0) for f in SYNTHETIC_FAMILIES])
    family = rng.choice(len(SYNTHETIC_FAMILIES), n, p=weights / weights.sum())
    scenes.family[lo : lo + n] = family
    resamplers = []
    for k, name in enumerate(SYNTHETIC_FAMILIES):
        rows = lo + np.flatnonzero(family == k)
        if len(rows) == 0:
            continue
        drawn = BUILDERS[name](rng, cfg, len(rows))
        # A random world pose per scene: rotate about the canonical origin, then shift.
        angle = rng.uniform(-np.pi, np.pi, len(rows))
        shift = rng.uniform(-1000.0, 1000.0, len(rows)) + 1j * rng.uniform(-1000.0, 1000.0, len(rows))
        pose = _Pose(angle, np.exp(1j * angle), shift)
        _write_target(cfg, rng, drawn, pose, scenes, rows, FAMILY_INTENTS[name])
        if drawn.agents and scenes.neighbours.shape[1]:
            _write_others(cfg, rng, drawn, pose, scenes, rows)
        resamplers.append(Resampler(rows, drawn.resample, pose.turn, shift))
    return resamplers


@dataclass(frozen=True)
class _Pose:
    """A batch's world poses: angle (B,), turn = e^{i angle}, shift (B,) complex."""

    angle: np.ndarray
    turn: np.ndarray
    shift: np.ndarray

    def move(self, z: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Canonical positions z (B, ...) complex at the world pose, as points (B, ..., 2) float32 (6e-5 m
        of resolution within the 1 km of the shift); zeros where mask (B, ... some leading dims) is False."""
        extra = (1,) * (z.ndim - 1)
        moved = z.astype(np.complex64)
        moved *= self.turn.astype(np.complex64).reshape(-1, *extra)
        moved += self.shift.astype(np.complex64).reshape(-1, *extra)
        if mask is not None:
            moved *= mask.reshape(*mask.shape, *(1,) * (z.ndim - mask.ndim))
        return as_points(moved)


def _observed(
    cfg: SceneConfig, rng: np.random.Generator, z, heading, speed, pose: _Pose, dtype
) -> np.ndarray:
    """The states (B, ..., 5) of x, y, heading, vx, vy, as `dtype`, of agents at noise-free positions z
    (B, ...) complex, headings and speeds: observed with the configured noise, at the world pose."""
    shape = np.shape(z)
    extra = (1,) * (len(shape) - 1)
    noise = rng.standard_normal((4, *shape), dtype=np.float32)  # observation noise on the pasts only
    out = np.empty((*shape, 5), dtype)
    complex_dtype = np.result_type(dtype, np.complex64)
    turn, shift = (x.astype(complex_dtype).reshape(-1, *extra) for x in (pose.turn, pose.shift))
    z = (z + cfg.pos_noise * (noise[0] + 1j * noise[1])).astype(complex_dtype, copy=False) * turn + shift
    out[..., 0], out[..., 1] = z.real, z.imag
    out[..., 2] = h = wrap_angle(heading + (pose.angle.reshape(-1, *extra) + cfg.heading_noise * noise[2]))
    v = np.maximum(speed + cfg.speed_noise * noise[3], 0.0)
    h = h.astype(np.float32)  # vectorised trigonometry (see `geometry.arc`); 1e-7 of the speed
    out[..., 3], out[..., 4] = v * np.cos(h), v * np.sin(h)
    return out


def _write_target(
    cfg: SceneConfig, rng: np.random.Generator, drawn: Drawn, pose: _Pose, scenes: Scenes, rows, intents
) -> None:
    """Write a family batch's target, map and mixture into `rows` of the scenes, at the world pose."""
    scenes.history[rows] = _observed(
        cfg, rng, drawn.hist_z, drawn.hist_heading, drawn.hist_speed, pose, np.float64
    )
    scenes.future[rows] = pose.move(drawn.future)
    scenes.lanes[rows] = pose.move(drawn.lanes, drawn.lane_mask)
    scenes.alt_futures[rows] = pose.move(drawn.alt_futures, drawn.alt_mask)
    scenes.lane_mask[rows], scenes.lane_type[rows] = drawn.lane_mask, drawn.lane_type
    scenes.alt_probs[rows], scenes.alt_mask[rows] = drawn.alt_probs, drawn.alt_mask
    scenes.intent[rows] = drawn.intent
    slots = np.full(MAX_ALTERNATIVES, -1, np.int8)
    slots[: len(intents)] = [INTENTS.index(x) for x in intents]
    scenes.alt_intent[rows] = np.where(drawn.alt_mask, slots, -1)


def _write_others(
    cfg: SceneConfig, rng: np.random.Generator, drawn: Drawn, pose: _Pose, scenes: Scenes, rows
) -> None:
    """Write a family batch's other agents into the neighbour slots of `rows`, nearest to the target at the
    last observed step first (as the AV2 importer orders them), observed like the target."""
    m = min(drawn.agents, scenes.neighbours.shape[1])
    gap = np.where(drawn.nb_mask, np.abs(drawn.nb_z[:, :, -1] - drawn.hist_z[:, -1:]), np.inf)
    order = np.argsort(gap, axis=1, kind="stable")[:, :m]

    def slotted(a: np.ndarray) -> np.ndarray:  # (B, R, ...) -> (B, m, ...) in slot order
        return np.take_along_axis(a, order.reshape(*order.shape, *(1,) * (a.ndim - 2)), 1)

    seen = slotted(drawn.nb_mask)
    states = _observed(
        cfg, rng, slotted(drawn.nb_z), slotted(drawn.nb_heading), slotted(drawn.nb_speed), pose, np.float32
    )
    scenes.neighbours[rows, :m] = states * seen[..., None, None]
    scenes.neighbour_future[rows, :m] = pose.move(slotted(drawn.nb_future), seen)
    scenes.neighbour_mask[rows, :m] = scenes.neighbour_future_mask[rows, :m] = seen[..., None]
    scenes.neighbour_type[rows, :m] = np.where(seen, OBJECT_TYPES.index("vehicle"), -1)
    scenes.neighbour_track_id[rows, :m] = np.where(seen, np.arange(1, m + 1).astype("U"), "")
