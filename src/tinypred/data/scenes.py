"""Synthetic driving scenes with real decision points, in the world frame.

World in metres, at the configured time step (10 Hz by default). Each scene has one target agent: an
observed past (`history`), the future it actually drove (`future`), the lane centre-lines around it
(`lanes`) and the **ground-truth mixture**: the noise-free future of every intent it could have chosen
from the same past, with its probability. `tinypred.data.families` draws the scenes in a canonical
frame (how the past hints at the intent, why even the mixture cannot know the future exactly);
`tinypred.data.paths` moves the agents. Here they are simulated, observed with noise and moved to a
random world pose.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from typing import Self

import numpy as np

from tinypred.data.families import BUILDERS, S_END, Family
from tinypred.data.paths import SpeedPlan, path_pose, rollout_speed
from tinypred.data.scene_config import (
    DECISION_FAMILIES,
    FAMILIES,
    FAMILY_INTENTS,
    INTENTS,
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
        neighbour_mask (N, M, H) bool; neighbour_type (N, M) int8 index into OBJECT_TYPES, -1 where empty
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
    heading, vx, vy (m, rad, m/s), float64; the generator keeps future, lanes and alternatives float32
    (6e-5 m of resolution within its 1 km), the Argoverse 2 importer float64 (city coordinates)."""

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
            alt_futures=move(self.alt_futures),
        )


# ----------------------------------------------------------------------------------------------------
# Putting a batch together


def _simulate(fam: Family, cfg: SceneConfig) -> dict[str, np.ndarray]:
    """Canonical-frame arrays of one family's batch, positions complex (no noise, no world pose yet)."""
    b = len(fam.v_end)
    T, L, P, M = cfg.future_steps, cfg.max_lanes, cfg.lane_points, MAX_ALTERNATIVES
    t = -np.arange(cfg.history_steps - 1, -1, -1) * cfg.dt  # history times, the last one 0
    s_hist = S_END + fam.v_end[:, None] * t + 0.5 * fam.a_hist[:, None] * t**2
    hist_z, hist_heading = path_pose(fam.start, fam.alts.length[:, 0], fam.alts.kappa[:, 0], s_hist)

    m = int(np.max(np.flatnonzero(fam.prior.any(0)))) + 1  # slots past the family's intents stay empty
    alts = SpeedPlan(*(getattr(fam.alts, f.name)[:, :m] for f in fields(SpeedPlan)))
    s_alt = rollout_speed(alts, np.full((b, m), S_END), np.repeat(fam.v_end[:, None], m, 1), T, cfg.dt)
    alt_z = np.zeros((b, M, T), complex)
    alt_z[:, :m] = path_pose(fam.start[:, None], alts.length, alts.kappa, s_alt)[0]
    s_real = rollout_speed(fam.real, np.full(b, S_END), fam.v_end, T, cfg.dt)
    future_z, _ = path_pose(fam.start, fam.real.length, fam.real.kappa, s_real)

    lanes = np.zeros((b, L, P), complex)
    lane_mask = np.zeros((b, L), bool)
    lane_type = np.zeros((b, L), np.int8)
    grid = np.linspace(0.0, 1.0, P)
    for i, ln in enumerate(fam.lanes):
        s = ln["span"][:, :1] + grid * (ln["span"][:, 1:] - ln["span"][:, :1])
        lanes[:, i] = path_pose(ln["start"], ln["length"], ln["kappa"], s)[0] * ln["mask"][:, None]
        lane_mask[:, i] = ln["mask"]
        lane_type[:, i] = ln["type"]

    # Posterior over intents given the (noise-free) hint; the prior where the hint is off.
    mask = fam.prior > 0
    logp = np.where(mask, np.log(np.where(mask, fam.prior, 1.0)) + fam.log_lik, -np.inf)
    probs = np.exp(logp - logp.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return {
        "hist_z": hist_z,
        "hist_heading": hist_heading,
        "hist_speed": fam.v_end[:, None] + fam.a_hist[:, None] * t,
        "future": future_z,
        "lanes": lanes,
        "lane_mask": lane_mask,
        "lane_type": lane_type,
        "alt_futures": alt_z * mask[..., None],
        "alt_probs": np.where(mask, probs, 0.0),
        "alt_mask": mask,
        "intent": fam.intent,
    }


CHUNK = 8192  # scenes per vectorised batch; fixed, so that a seed always gives the same arrays


def generate(cfg: SceneConfig, n: int, seed: int | np.random.SeedSequence) -> Scenes:
    """N scenes in the world frame. The same (config, n, seed) gives the same arrays."""
    if n < 0:
        raise TinypredError(f"expected a number of scenes >= 0, got {n}", arg="n")
    H, T, L, P, M = cfg.history_steps, cfg.future_steps, cfg.max_lanes, cfg.lane_points, MAX_ALTERNATIVES
    out = {
        "hist_z": np.zeros((n, H), complex),
        "hist_heading": np.zeros((n, H)),
        "hist_speed": np.zeros((n, H)),
        "future": np.zeros((n, T), np.complex64),
        "lanes": np.zeros((n, L, P), np.complex64),
        "lane_mask": np.zeros((n, L), bool),
        "lane_type": np.zeros((n, L), np.int8),
        "alt_futures": np.zeros((n, M, T), np.complex64),
        "alt_probs": np.zeros((n, M)),
        "alt_mask": np.zeros((n, M), bool),
        "alt_intent": np.full((n, M), -1, np.int8),
        "family": np.zeros(n, np.int8),
        "intent": np.zeros(n, np.int8),
    }
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    starts = range(0, n, CHUNK)

    def fill(lo: int, child: np.random.SeedSequence) -> None:
        _fill(cfg, np.random.default_rng(child), {k: v[lo : lo + CHUNK] for k, v in out.items()})

    # Chunks have their own random streams and disjoint outputs, so threads (NumPy releases the GIL in
    # its loops) change the speed, never the numbers.
    with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1) or 1) as pool:
        list(pool.map(fill, starts, seq.spawn(len(starts))))
    velocity = out["hist_speed"] * np.exp(1j * out["hist_heading"])
    history = np.stack(
        [out["hist_z"].real, out["hist_z"].imag, out["hist_heading"], velocity.real, velocity.imag], -1
    )
    M = cfg.max_neighbours
    return Scenes(
        history=history,
        history_mask=np.ones((n, H), bool),
        future=as_points(out["future"]),
        future_mask=np.ones((n, T), bool),
        lanes=as_points(out["lanes"]),
        lane_mask=out["lane_mask"],
        lane_type=out["lane_type"],
        lane_is_intersection=np.zeros((n, L), bool),
        # No family has other agents yet: the slots are there, empty (np.zeros costs no memory untouched).
        neighbours=np.zeros((n, M, H, 5)),
        neighbour_mask=np.zeros((n, M, H), bool),
        neighbour_type=np.full((n, M), -1, np.int8),
        neighbour_track_id=np.full((n, M), ""),
        alt_futures=as_points(out["alt_futures"]),
        alt_probs=out["alt_probs"],
        alt_mask=out["alt_mask"],
        alt_intent=out["alt_intent"],
        family=out["family"],
        intent=out["intent"],
        scenario_id=np.arange(n).astype("U"),
        track_id=np.full(n, "focal"),
        city=np.full(n, "synthetic"),
        category=np.full(n, FOCAL, np.int8),
        object_type=np.full(n, OBJECT_TYPES.index("vehicle"), np.int8),
        dt=cfg.dt,
    )


def _fill(cfg: SceneConfig, rng: np.random.Generator, out: dict[str, np.ndarray]) -> None:
    """Generate len(out['family']) scenes into the views `out`."""
    n = len(out["family"])
    weights = np.array([cfg.family_weights.get(f, 0.0) for f in SYNTHETIC_FAMILIES])
    out["family"][:] = rng.choice(len(SYNTHETIC_FAMILIES), n, p=weights / weights.sum())
    for k, name in enumerate(SYNTHETIC_FAMILIES):
        idx = np.flatnonzero(out["family"] == k)
        if len(idx) == 0:
            continue
        for key, value in _simulate(BUILDERS[name](rng, cfg, len(idx)), cfg).items():
            out[key][idx] = value
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
