"""Argoverse 2 scenarios imported as a tinypred dataset: one sample per target agent, in its own frame.

    import_av2("av2", "data/av2")                      # av2/train, val, test -> the three splits
    import_av2("av2/val", "data/val", split="val")     # one split folder

Each scenario folder is read (`reader`), turned into world-frame samples (`build_samples`: the target's
past and future, the map elements and the other agents nearest to it) and encoded (`encode`). Workers do
that a fixed chunk of scenarios at a time and hand the chunks back in order, so the dataset never depends
on their number; the main process appends them to a `DatasetWriter`, so memory stays bounded by a shard
however many scenarios there are. A scenario that cannot be imported is skipped and recorded in the
dataset's ``import_report.json`` (with `strict`, it is an error instead).
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tinypred.data.av2 import polylines
from tinypred.data.av2.reader import MapElements, Scenario, ScenarioError, read_map, read_scenario
from tinypred.data.av2.schema import (
    DT,
    FOCAL_TRACK,
    FUTURE_STEPS,
    HISTORY_STEPS,
    SCORED_TRACK,
    scenario_files,
)
from tinypred.data.dataset import SPLITS, dataset_meta, shapes_of
from tinypred.data.encoding import EncodedScenes, Normalizer, encode, feature_count, slot_groups
from tinypred.data.scene_config import FAMILIES, MAX_ALTERNATIVES
from tinypred.data.scenes import Scenes
from tinypred.data.store import SHARD_SIZE, DatasetWriter
from tinypred.data.validate import check_finite, sample_bytes
from tinypred.errors import TinypredError
from tinypred.fileio import write_json

CHUNK = 16  # scenarios per task: fixed, so that the arrays never depend on the number of workers
# The writer holds up to a shard in memory (twice that while it writes one). Its default suits synthetic
# samples; one with AV2's 50 steps and 8 neighbours is ~15 kB, so shards are sized by bytes instead.
SHARD_BYTES = 128 * 2**20
STR_CHARS = 36  # an id's length, for the estimate: AV2's scenario ids are UUIDs
TARGET_AGENTS = ("focal", "scored")
REPORT = "import_report.json"


def build_samples(
    scenario: Scenario,
    map_elements: MapElements,
    agents: str,
    history: int,
    future: int,
    lanes: int,
    lane_points: int,
    neighbours: int,
    has_future: bool,
) -> tuple[Scenes, list[str]]:
    """World-frame samples of one scenario, one per target (the focal track; with agents="scored" also
    every scored track), and the reason each other candidate target was skipped. Shapes as `SceneArrays`
    names them: H = history, T = future, L = lanes, P = lane_points, M = neighbours. Without futures
    (has_future False: the AV2 test split) future is zeros and future_mask all False."""
    sc, last = scenario, scenario.last_observed
    num_steps = sc.valid.shape[1]
    if history > last + 1:
        raise ScenarioError(f"{sc.path}: {history} history steps asked for, {last + 1} observed")
    if has_future and future > num_steps - last - 1:
        raise ScenarioError(f"{sc.path}: {future} future steps asked for, {num_steps - last - 1} recorded")

    candidates = np.array([sc.focal])
    if agents == "scored":
        scored = np.flatnonzero(sc.category == SCORED_TRACK)
        candidates = np.concatenate([candidates, scored[scored != sc.focal]])
    now = sc.valid[candidates, last]
    ahead = sc.valid[candidates, last + 1 : last + 1 + future].all(1) if has_future else now
    skipped = ["not observed at the last observed step"] * int((~now).sum())
    skipped += ["future not observed at every step"] * int((now & ~ahead).sum())
    targets = candidates[now & ahead]
    n, A = len(targets), MAX_ALTERNATIVES

    # Every track's states over the history window: unobserved steps are the reader's zeros.
    window = slice(last - history + 1, last + 1)
    states = np.concatenate(
        [sc.positions[:, window], sc.heading[:, window, None], sc.velocity[:, window]], axis=-1
    )  # (K, H, 5)
    seen = sc.valid[:, window]  # (K, H)
    here = sc.positions[:, last]  # (K, 2), zeros for tracks not observed then (they never count below)

    # Neighbours: the other tracks observed at the last step, nearest first.
    gap = np.hypot(*np.moveaxis(here[None] - here[targets, None], -1, 0))  # (N, K)
    gap[:, ~sc.valid[:, last]] = np.inf
    gap[np.arange(n), targets] = np.inf
    order = np.argsort(gap, axis=1, kind="stable")[:, :neighbours]
    slot = np.zeros((n, neighbours), np.int64)
    present = np.zeros((n, neighbours), bool)
    slot[:, : order.shape[1]] = order
    present[:, : order.shape[1]] = np.take_along_axis(gap, order, 1) < np.inf

    # Map: the elements nearest to the target (to their segments, not just their vertices), nearest first.
    nearest = np.argsort(polylines.distances(here[targets], map_elements.polylines), axis=1, kind="stable")[
        :, :lanes
    ]
    shown = nearest.shape[1]
    # float64 in the city frame (its coordinates run to thousands of metres, where float32 steps are
    # 1e-4 m): the agent frame is float32 only after encode() subtracts the pose.
    lane_points_out = np.zeros((n, lanes, lane_points, 2))
    shaped = polylines.resample(map_elements.polylines, lane_points)
    # An element that already has P points is taken as it is, not re-spaced: AV2's centre-lines come with
    # 10 (the default P), and an exported synthetic lane (arcs sampled evenly along the arc) comes back
    # exactly.
    own = map_elements.points == lane_points
    if own.any():  # then every polyline is at least P points wide
        shaped[own] = map_elements.polylines[own, :lane_points]
    lane_points_out[:, :shown] = shaped[nearest]
    lane_mask = np.zeros((n, lanes), bool)
    lane_mask[:, :shown] = True
    lane_type = np.zeros((n, lanes), np.int8)
    lane_type[:, :shown] = map_elements.type[nearest]
    lane_is_intersection = np.zeros((n, lanes), bool)
    lane_is_intersection[:, :shown] = map_elements.is_intersection[nearest]

    # Every track's future (the targets' to score, the neighbours' to draw); unknown in a test split.
    k = len(sc.track_ids)
    ahead_xy = sc.positions[:, last + 1 : last + 1 + future] if has_future else np.zeros((k, future, 2))
    ahead_seen = sc.valid[:, last + 1 : last + 1 + future] if has_future else np.zeros((k, future), bool)
    future_xy = ahead_xy[targets]
    scenes = Scenes(
        history=states[targets],
        history_mask=seen[targets],
        future=future_xy,
        future_mask=np.full((n, future), has_future),
        lanes=lane_points_out,
        lane_mask=lane_mask,
        lane_type=lane_type,
        lane_is_intersection=lane_is_intersection,
        neighbours=np.where(present[..., None, None], states[slot], 0.0),
        neighbour_mask=seen[slot] & present[..., None],
        neighbour_type=np.where(present, sc.object_type[slot], -1).astype(np.int8),
        neighbour_track_id=np.where(present, sc.track_ids[slot], ""),
        neighbour_future=np.where(present[..., None, None], ahead_xy[slot], 0.0),
        neighbour_future_mask=ahead_seen[slot] & present[..., None],
        # Recorded scenes: no ground-truth mixture, every slot empty.
        alt_futures=np.zeros((n, A, future, 2), np.float32),
        alt_probs=np.zeros((n, A)),
        alt_mask=np.zeros((n, A), bool),
        alt_intent=np.full((n, A), -1, np.int8),
        family=np.full(n, FAMILIES.index("recorded"), np.int8),
        intent=np.full(n, -1, np.int8),
        scenario_id=np.full(n, sc.scenario_id),
        track_id=sc.track_ids[targets],
        city=np.full(n, sc.city),
        category=np.where(targets == sc.focal, FOCAL_TRACK, SCORED_TRACK).astype(np.int8),
        object_type=sc.object_type[targets],
        dt=DT,
    )
    return scenes, skipped


class _Outcome(NamedTuple):
    """What became of one scenario folder: reason is None when it was imported."""

    name: str
    reason: str | None
    has_future: bool | None
    samples: int
    skipped_targets: list[str]


def _import_chunk(
    task: tuple[Path, list[str], dict[str, Any]],
) -> tuple[EncodedScenes | None, list[_Outcome]]:
    """Read, build and encode the scenarios `names` of `folder` (a worker's task): their samples (None if
    there are none) and one outcome per scenario, in order."""
    folder, names, options = task
    parts, outcomes = [], []
    for name in names:
        try:
            scenario = read_scenario(folder / name)
            elements = read_map(folder / name / scenario_files(name)[1])
            scenes, skipped = build_samples(scenario, elements, **options, has_future=scenario.has_future)
            enc = encode(scenes) if len(scenes) else None
            if enc is not None:
                # What loading the dataset checks of every value, checked here: one scenario with a point
                # 100 km off (a bad map element, a glitch in a track) is skipped, not the whole dataset
                # made unreadable.
                check_finite(folder / name, enc.arrays())
        except (ScenarioError, TinypredError) as e:
            outcomes.append(_Outcome(name, str(e), None, 0, []))
            continue
        if enc is not None:
            parts.append(enc)
        outcomes.append(_Outcome(name, None, scenario.has_future, len(scenes), skipped))
    return (EncodedScenes.concatenate(parts) if parts else None), outcomes


@contextlib.contextmanager
def _mapper(workers: int) -> Iterator[Callable]:
    """An in-order map over tasks: in this process, or in a pool of `workers` processes."""
    if workers == 1:
        yield map
        return
    # spawn, not fork: a forked child would inherit Arrow's and encode's thread pools in whatever state.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield pool.imap


def _check_int(arg: str, value: object, low: int, high: int | None = None, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
        bounds = f"from {low} to {high}{why}" if high else f">= {low}"
        raise TinypredError(f"expected an integer {bounds}, got {value!r}", arg=arg)


def _shard_size(shapes: dict[str, int]) -> int:
    """Samples per shard: SHARD_BYTES of arrays (at most the store's default)."""
    return max(1, min(SHARD_SIZE, SHARD_BYTES // sample_bytes(shapes, 4 * STR_CHARS)))


def _plan(src: Path, split: str | None, limit: int | None) -> dict[str, tuple[Path, list[str]]]:
    """Per tinypred split: its folder and its scenario folders' names, sorted, at most `limit`."""
    if not src.exists():
        raise TinypredError(f"{src}: no such directory", arg="src")
    if not src.is_dir():
        raise TinypredError(f"{src}: not a directory", arg="src")
    if split is not None:
        if split not in SPLITS:
            raise TinypredError(f"expected one of {', '.join(SPLITS)}, got {split!r}", arg="split")
        if any((src / name).is_dir() for name in SPLITS):
            raise TinypredError(
                f"{src}: holds train/, val/ or test/ folders, an AV2 root: drop the split to import them, "
                "or name one split's folder",
                arg="src",
            )
        folders = {split: src}
    else:
        folders = {name: src / name for name in SPLITS if (src / name).is_dir()}
        if not folders:
            raise TinypredError(
                f"{src}: no train/, val/ or test/ folder (for a single split's folder, name its split)",
                arg="src",
            )
    plan = {
        name: (
            folder,
            sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))[:limit],
        )
        for name, folder in folders.items()
    }
    if not any(names for _, names in plan.values()):
        raise TinypredError(f"{src}: no scenario folders", arg="src")
    return plan


def import_av2(
    src: str | Path,
    out: str | Path,
    *,
    split: str | None = None,
    agents: str = "focal",
    history: int = HISTORY_STEPS,
    future: int = FUTURE_STEPS,
    lanes: int = 16,
    lane_points: int = 10,
    neighbours: int = 8,
    workers: int = 1,
    limit: int | None = None,
    strict: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Import the AV2 scenarios under `src` (a dataset root, or with `split` one split's folder) into the
    dataset directory `out`, written as a whole. Returns the import report (also in out/import_report.json):
    scenarios read, imported and skipped and samples per split, every skipped scenario with its reason,
    skipped targets by reason, and how the normaliser was fitted. progress(split, done, total) is called
    after each chunk of scenarios."""
    if agents not in TARGET_AGENTS:
        raise TinypredError(f"expected one of {', '.join(TARGET_AGENTS)}, got {agents!r}", arg="agents")
    _check_int("history", history, 1, HISTORY_STEPS, f" (AV2 observes {HISTORY_STEPS} steps)")
    _check_int("future", future, 1, FUTURE_STEPS, f" (AV2 records {FUTURE_STEPS} steps ahead)")
    _check_int("lanes", lanes, 1)
    _check_int("lane_points", lane_points, 2)
    _check_int("neighbours", neighbours, 0)
    _check_int("workers", workers, 1)
    if limit is not None:
        _check_int("limit", limit, 1)
    sample_options = {
        "agents": agents,
        "history": history,
        "future": future,
        "lanes": lanes,
        "lane_points": lane_points,
        "neighbours": neighbours,
    }
    src = Path(src)
    plan = _plan(src, split, limit)
    options = {**sample_options, "src": str(src.resolve())}
    report: dict[str, Any] = {"options": options, "splits": {}, "skipped": [], "skipped_targets": Counter()}
    counts = dict.fromkeys(SPLITS, 0)
    has_future = dict.fromkeys(SPLITS, True)
    shapes = {"H": history, "T": future, "L": lanes, "P": lane_points, "M": neighbours, "A": MAX_ALTERNATIVES}
    with DatasetWriter(out, _shard_size(shapes)) as writer, _mapper(workers) as imap:
        for name, (folder, scenarios) in plan.items():
            stats = {"scenarios": len(scenarios), "imported": 0, "skipped": 0, "samples": 0}
            report["splits"][name] = stats
            # A train or val split's scenarios have futures; a test split's are all like its first one.
            kind: tuple[bool, str] | None = (True, f"a {name} split's scenarios") if name != "test" else None
            chunks = [scenarios[i : i + CHUNK] for i in range(0, len(scenarios), CHUNK)]
            done = 0
            for enc, outcomes in imap(_import_chunk, [(folder, chunk, sample_options) for chunk in chunks]):
                first, kept = 0, []  # the rows of enc each scenario holds, and those kept
                for o in outcomes:
                    reason, rows = o.reason, range(first, first + o.samples)
                    first += o.samples
                    if reason is None:
                        kind = kind or (o.has_future, f"the first scenario of this test split, {o.name}")
                        if o.has_future != kind[0]:
                            reason = (
                                f"{folder / o.name}: {'has' if o.has_future else 'has no'} future steps, "
                                f"unlike {kind[1]} (a split is all train/val or all test)"
                            )
                    if reason is not None:
                        if strict:
                            raise TinypredError(reason)
                        report["skipped"].append({"split": name, "scenario": o.name, "reason": reason})
                        stats["skipped"] += 1
                        continue
                    kept.extend(rows)
                    stats["imported"] += 1
                    report["skipped_targets"].update(o.skipped_targets)
                if enc is not None and len(kept) < len(enc):
                    enc = enc.subset(np.array(kept, np.int64)) if kept else None
                if enc is not None:
                    writer.append(
                        name, replace(enc, scene_id=np.arange(counts[name], counts[name] + len(enc)))
                    )
                    counts[name] += len(enc)
                    has_future[name] &= enc.has_future
                    shapes = shapes_of(enc)
                done += len(outcomes)
                if progress is not None:
                    progress(name, done, len(scenarios))
            stats["samples"] = counts[name]

        if not sum(counts.values()):  # an option that fits no scenario (--history 50 of 20 steps, say)
            why = (
                f"the first skipped scenario's reason: {report['skipped'][0]['reason']}"
                if report["skipped"]
                else f"every target was skipped: {dict(report['skipped_targets'])}"
            )
            raise TinypredError(f"{src}: no samples imported; {why}", arg="src")
        if writer.train_moments.count:
            slots = slot_groups({"H": history, "L": lanes, "P": lane_points, "M": neighbours})
            normalizer = writer.train_moments.normalizer(slots)
            report["normalization"] = f"fitted on the {writer.train_moments.count} training samples"
        else:
            d = feature_count(history, lanes, lane_points, neighbours)
            normalizer = Normalizer(np.zeros(d, np.float32), np.ones(d, np.float32))
            report["normalization"] = "identity (mean 0, std 1): no training samples to fit it on"
        report["skipped_targets"] = dict(report["skipped_targets"])
        meta = dataset_meta(
            source="av2",
            dt=DT,
            shapes=shapes,
            counts=counts,
            has_future=has_future,
            normalizer=normalizer,
            options=options,
        )
        write_json(writer.tmp / REPORT, report)  # inside the directory written as a whole
        writer.finish(meta, SPLITS)
    return report
