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
from tinypred.geometry import as_points, rotate

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


CHUNK = 8192  # scenes per vectorised batch; fixed, so that a seed always gives the same arrays
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


def generate(cfg: SceneConfig, n: int, seed: int | np.random.SeedSequence) -> Scenes:
    """N scenes in the world frame. The same (config, n, seed) gives the same arrays."""
    return generate_with_resamplers(cfg, n, seed)[0]


def generate_with_resamplers(
    cfg: SceneConfig, n: int, seed: int | np.random.SeedSequence
) -> tuple[Scenes, list[Resampler]]:
    """`generate`, and a `Resampler` per family batch: what the bayes floor draws the futures from."""
    if n < 0:
        raise TinypredError(f"expected a number of scenes >= 0, got {n}", arg="n")
    H, T, L, M = cfg.history_steps, cfg.future_steps, cfg.max_lanes, cfg.max_neighbours
    A = MAX_ALTERNATIVES
    # The arrays every scene has the same value in; the rest each chunk writes. np.zeros costs nothing
    # until written, so the neighbour slots of scenes without other agents cost nothing.
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
        neighbour_mask=np.empty((n, M, H), bool),
        neighbour_type=np.empty((n, M), np.int8),
        neighbour_track_id=np.empty((n, M), "<U21"),
        neighbour_future=np.empty((n, M, T, 2), np.float32),
        neighbour_future_mask=np.empty((n, M, T), bool),
        alt_futures=np.empty((n, A, T, 2), np.float32),
        alt_probs=np.empty((n, A)),
        alt_mask=np.empty((n, A), bool),
        alt_intent=np.empty((n, A), np.int8),
        family=np.empty(n, np.int8),
        intent=np.empty(n, np.int8),
        scenario_id=np.arange(n).astype("U"),
        track_id=np.full(n, "focal"),
        city=np.full(n, "synthetic"),
        category=np.full(n, FOCAL, np.int8),
        object_type=np.full(n, OBJECT_TYPES.index("vehicle"), np.int8),
        dt=cfg.dt,
    )
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    starts = range(0, n, CHUNK)

    def fill(lo: int, child: np.random.SeedSequence) -> list[Resampler]:
        work = _workspace(cfg, min(CHUNK, n - lo))
        parts = _fill(cfg, np.random.default_rng(child), work)
        _assemble(work, scenes, lo)
        return [replace(r, rows=r.rows + lo) for r in parts]

    # Chunks have their own random streams and disjoint outputs, so threads (NumPy releases the GIL in
    # its loops) change the speed, never the numbers.
    with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1) or 1) as pool:
        resamplers = [r for parts in pool.map(fill, starts, seq.spawn(len(starts))) for r in parts]
    return scenes, resamplers


def _workspace(cfg: SceneConfig, n: int) -> dict[str, np.ndarray]:
    """A chunk's arrays as the builders write them: positions complex, the target's past as position,
    heading and speed, the other agents in slots nearest first."""
    H, T, L, P, A = cfg.history_steps, cfg.future_steps, cfg.max_lanes, cfg.lane_points, MAX_ALTERNATIVES
    M = cfg.max_neighbours
    return {
        "hist_z": np.zeros((n, H), complex),
        "hist_heading": np.zeros((n, H)),
        "hist_speed": np.zeros((n, H)),
        "future": np.zeros((n, T), np.complex64),
        "lanes": np.zeros((n, L, P), np.complex64),
        "lane_mask": np.zeros((n, L), bool),
        "lane_type": np.zeros((n, L), np.int8),
        "alt_futures": np.zeros((n, A, T), np.complex64),
        "alt_probs": np.zeros((n, A)),
        "alt_mask": np.zeros((n, A), bool),
        "alt_intent": np.full((n, A), -1, np.int8),
        "family": np.zeros(n, np.int8),
        "intent": np.zeros(n, np.int8),
        "nb_z": np.zeros((n, M, H), np.complex64),
        "nb_heading": np.zeros((n, M, H), np.float32),
        "nb_speed": np.zeros((n, M, H), np.float32),
        "nb_future": np.zeros((n, M, T), np.complex64),
        "nb_mask": np.zeros((n, M), bool),
    }


def _assemble(work: dict[str, np.ndarray], scenes: Scenes, lo: int) -> None:
    """Write a chunk's workspace into rows lo: of the scenes' arrays, as states and points."""
    rows = slice(lo, lo + len(work["family"]))
    history = scenes.history[rows]
    velocity = work["hist_speed"] * np.exp(1j * work["hist_heading"])
    for c, part in enumerate(
        (work["hist_z"].real, work["hist_z"].imag, work["hist_heading"], velocity.real, velocity.imag)
    ):
        history[..., c] = part
    for key in ("future", "lanes", "alt_futures"):
        getattr(scenes, key)[rows] = as_points(work[key])
    for key in ("lane_mask", "lane_type", "alt_probs", "alt_mask", "alt_intent", "family", "intent"):
        getattr(scenes, key)[rows] = work[key]
    nb = work["nb_mask"]
    # Only the scenes with other agents (the interactive families) have neighbours to assemble.
    some = np.flatnonzero(nb.any(1))
    z, heading = work["nb_z"][some], work["nb_heading"][some]
    velocity = work["nb_speed"][some] * np.exp(1j * heading)
    scenes.neighbours[lo + some] = np.stack([z.real, z.imag, heading, velocity.real, velocity.imag], -1)
    scenes.neighbour_mask[rows] = nb[:, :, None]
    scenes.neighbour_type[rows] = np.where(nb, OBJECT_TYPES.index("vehicle"), -1)
    slot_names = np.arange(1, nb.shape[1] + 1).astype("U")  # track ids within a scene; the target is "focal"
    scenes.neighbour_track_id[rows] = np.where(nb, slot_names, "")
    scenes.neighbour_future[rows] = as_points(work["nb_future"])
    scenes.neighbour_future_mask[rows] = nb[:, :, None]


def _place(out: dict[str, np.ndarray], idx: np.ndarray, drawn: Drawn) -> None:
    """Write one family's batch into rows idx of the chunk's arrays; its other agents into the neighbour
    slots, nearest to the target at the last observed step first (as the AV2 importer orders them)."""
    for key in ("hist_z", "hist_heading", "hist_speed", "future", "lanes", "lane_mask", "lane_type"):
        out[key][idx] = getattr(drawn, key)
    for key in ("alt_futures", "alt_probs", "alt_mask", "intent"):
        out[key][idx] = getattr(drawn, key)
    if drawn.agents == 0 or out["nb_mask"].shape[1] == 0:
        return
    gap = np.where(drawn.nb_mask, np.abs(drawn.nb_z[:, :, -1] - drawn.hist_z[:, -1:]), np.inf)
    order = np.argsort(gap, axis=1, kind="stable")[:, : out["nb_mask"].shape[1]]
    m = order.shape[1]
    for key, src in (("nb_z", "nb_z"), ("nb_heading", "nb_heading"), ("nb_speed", "nb_speed")):
        out[key][idx, :m] = np.take_along_axis(getattr(drawn, src), order[..., None], 1)
    out["nb_future"][idx, :m] = np.take_along_axis(drawn.nb_future, order[..., None], 1)
    out["nb_mask"][idx, :m] = np.take_along_axis(drawn.nb_mask, order, 1)


def _fill(cfg: SceneConfig, rng: np.random.Generator, out: dict[str, np.ndarray]) -> list[Resampler]:
    """Generate len(out['family']) scenes into the chunk's workspace `out`; a Resampler per family batch."""
    n = len(out["family"])
    weights = np.array([cfg.family_weights.get(f, 0.0) for f in SYNTHETIC_FAMILIES])
    out["family"][:] = rng.choice(len(SYNTHETIC_FAMILIES), n, p=weights / weights.sum())
    batches = []
    for k, name in enumerate(SYNTHETIC_FAMILIES):
        idx = np.flatnonzero(out["family"] == k)
        if len(idx) == 0:
            continue
        drawn = BUILDERS[name](rng, cfg, len(idx))
        _place(out, idx, drawn)
        batches.append((idx, drawn.resample))
        names = FAMILY_INTENTS[name]
        out["alt_intent"][idx, : len(names)] = [INTENTS.index(x) for x in names]
    out["alt_intent"][~out["alt_mask"]] = -1

    # Observation noise, on the history only.
    shape = out["hist_speed"].shape
    out["hist_z"] += cfg.pos_noise * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
    out["hist_heading"] += cfg.heading_noise * rng.standard_normal(shape)
    out["hist_speed"][:] = np.maximum(out["hist_speed"] + cfg.speed_noise * rng.standard_normal(shape), 0.0)

    # A random world pose per scene: rotate about the canonical origin, then shift.
    angle = rng.uniform(-np.pi, np.pi, n)
    turn = np.exp(1j * angle)
    shift = rng.uniform(-1000.0, 1000.0, n) + 1j * rng.uniform(-1000.0, 1000.0, n)
    for key, mask in (
        ("hist_z", None),
        ("future", None),
        ("lanes", "lane_mask"),
        ("alt_futures", "alt_mask"),
    ):
        z = out[key]
        extra = (1,) * (z.ndim - 1)
        moved = z * turn.astype(z.dtype).reshape(n, *extra) + shift.astype(z.dtype).reshape(n, *extra)
        z[:] = (
            moved
            if mask is None
            else np.where(out[mask].reshape(*out[mask].shape, *(1,) * (z.ndim - 2)), moved, 0)
        )
    out["hist_heading"][:] = np.angle(
        np.exp(1j * (out["hist_heading"] + angle[:, None]))
    )  # wrap to (-pi, pi]

    # The other agents' pasts are observed like the target's, and move to the same world pose. Drawn
    # last, so that a config without interactive families draws exactly the numbers it always did.
    rows = np.flatnonzero(out["nb_mask"].any(1))
    if len(rows):
        seen = out["nb_mask"][rows][..., None]
        shape = out["nb_speed"][rows].shape
        turn_r = turn[rows, None, None].astype(np.complex64)
        shift_r = shift[rows, None, None].astype(np.complex64)
        noise = cfg.pos_noise * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
        out["nb_z"][rows] = ((out["nb_z"][rows] + noise) * turn_r + shift_r) * seen
        out["nb_future"][rows] = (out["nb_future"][rows] * turn_r + shift_r) * seen
        heading = (
            out["nb_heading"][rows] + angle[rows, None, None] + cfg.heading_noise * rng.standard_normal(shape)
        )
        out["nb_heading"][rows] = np.angle(np.exp(1j * heading)) * seen
        speed = out["nb_speed"][rows] + cfg.speed_noise * rng.standard_normal(shape)
        out["nb_speed"][rows] = np.maximum(speed, 0.0) * seen
    return [Resampler(idx, resample, turn[idx], shift[idx]) for idx, resample in batches]
