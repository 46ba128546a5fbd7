"""Datasets: three splits of encoded samples, their shapes and time step, and the feature normaliser.

A dataset directory (`store` writes and reads it) holds each split in shards of plain `.npy` arrays
and a ``meta.json``: the schema version, the source ("synthetic" or "av2"), the time step ``dt`` (s),
the shapes (H history and T future steps, L map elements of P points, M neighbour slots, A mixture
slots), the scene config and seed of a synthetic dataset or the options of an import, the counts and
shards of every split, whether each split knows its futures, the vocabularies (families, intents,
lane types, object types), and the feature normalisation fitted on the training split. `load`
validates every shard before it returns; every split carries the dataset's ``dt``.

`load(path, mmap=True)` memory-maps the shards instead (each split a `shards.ShardedScenes`, read by
rows): it checks what the headers say (schema, dtypes, shapes, counts) at once and leaves the values
to whoever reads the rows (the training loader checks each batch) or to `verify`, which checks every
shard whole with memory bounded by one shard.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinypred.config import build
from tinypred.data.encoding import (
    EncodedScenes,
    FeatureMoments,
    Normalizer,
    feature_count,
    features,
    slot_groups,
)
from tinypred.data.scene_config import FAMILIES, MAX_ALTERNATIVES, VOCABULARIES, SceneConfig
from tinypred.data.shards import ShardedScenes, empty
from tinypred.data.store import (
    SHARD_SIZE,
    DatasetWriter,
    check_vocabularies,
    read_meta,
    read_shards,
    shard_dir,
    shard_sizes,
)
from tinypred.data.synthetic import (
    BLOCK,
    SPLITS,
    check_disk,
    check_memory,
    config_shapes,
    encoded_blocks,
    split_sizes,
)
from tinypred.data.validate import check_arrays, check_finite, check_schema, check_values
from tinypred.errors import TinypredError

SCHEMA_VERSION = 4
SOURCES = ("synthetic", "av2")


@dataclass(frozen=True)
class Dataset:
    """Three splits, where they come from and the normaliser fitted on the training split.

    config and seed describe a synthetic dataset (None for an import); `options` the import's (or {}).
    The splits are `EncodedScenes` in memory, or `ShardedScenes` for a dataset loaded with mmap=True.
    """

    train: EncodedScenes | ShardedScenes
    val: EncodedScenes | ShardedScenes
    test: EncodedScenes | ShardedScenes
    normalizer: Normalizer
    source: str = "synthetic"
    config: SceneConfig | None = None
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def dt(self) -> float:
        """The time step of every split, s."""
        return self.train.dt

    @property
    def shapes(self) -> dict[str, int]:
        """H, T, L, P, M and A of every split."""
        return shapes_of(self.train)

    def split(self, name: str) -> EncodedScenes | ShardedScenes:
        """The split called `name` (train, val or test)."""
        if name not in SPLITS:
            raise TinypredError(f"expected one of {', '.join(SPLITS)}, got {name!r}", arg="split")
        return getattr(self, name)


def shapes_of(enc: EncodedScenes | ShardedScenes) -> dict[str, int]:
    """The dimensions of a set of samples: H, T, L, P, M and A (see `SceneArrays`)."""
    if isinstance(enc, ShardedScenes):
        return dict(enc.shapes)
    _, h, _ = enc.history.shape
    _, lanes, p, _ = enc.lanes.shape
    return {
        "H": h,
        "T": enc.future.shape[1],
        "L": lanes,
        "P": p,
        "M": enc.neighbours.shape[1],
        "A": enc.alt_futures.shape[1],
    }


def make(
    config: SceneConfig, n_train: int, n_val: int, n_test: int, seed: int, block: int = BLOCK
) -> Dataset:
    """Generate and encode the three splits in memory; each split has its own random stream from `seed`.
    `write` makes the same dataset on disk, `block` scenes at a time."""
    sizes = split_sizes(n_train, n_val, n_test, seed)
    check_memory(config, sum(sizes.values()))
    moments = FeatureMoments()
    splits = []
    for name, n in sizes.items():
        parts = list(encoded_blocks(config, n, seed, name, block))
        if name == "train":
            for part in parts:
                moments.add(features(part))
        splits.append(parts[0] if len(parts) == 1 else EncodedScenes.concatenate(parts))
    normalizer = moments.normalizer(slot_groups(config_shapes(config)))
    return Dataset(*splits, normalizer=normalizer, config=config, seed=seed)


def write(
    config: SceneConfig,
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int,
    out: str | Path,
    shard_size: int = SHARD_SIZE,
    block: int = BLOCK,
) -> Path:
    """`save(make(...), out)` with memory bounded by one block of scenes and one shard, however many
    scenes: the same samples and normaliser, generated, encoded and written `block` scenes at a time."""
    sizes = split_sizes(n_train, n_val, n_test, seed)
    shapes = config_shapes(config)
    with DatasetWriter(out, shard_size=shard_size) as writer:
        check_disk(writer.tmp, sizes, shapes)  # once the destination is known to be writable
        for name, n in sizes.items():
            for part in encoded_blocks(config, n, seed, name, block):
                writer.append(name, part)
        meta = dataset_meta(
            source="synthetic",
            dt=config.dt,
            shapes=shapes,
            counts=sizes,
            has_future=dict.fromkeys(SPLITS, True),
            normalizer=writer.train_moments.normalizer(slot_groups(shapes)),
            config=config,
            seed=seed,
        )
        return writer.finish(meta, SPLITS)


def dataset_meta(
    *,
    source: str,
    dt: float,
    shapes: dict[str, int],
    counts: dict[str, int],
    has_future: dict[str, bool],
    normalizer: Normalizer,
    config: SceneConfig | None = None,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything meta.json says about a dataset but the shard index (the writer adds it)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "source": source,
        "dt": dt,
        "shapes": shapes,
        "seed": seed,
        "config": config.model_dump() if config is not None else None,
        "options": options or {},
        "counts": counts,
        "has_future": has_future,
        **{field: list(vocabulary) for field, vocabulary in VOCABULARIES.items()},
        "normalization": {"mean": normalizer.mean.tolist(), "std": normalizer.std.tolist()},
    }


def meta_of(ds: Dataset) -> dict[str, Any]:
    """`dataset_meta` of a dataset in memory."""
    return dataset_meta(
        source=ds.source,
        dt=ds.dt,
        shapes=ds.shapes,
        counts={name: len(ds.split(name)) for name in SPLITS},
        has_future={name: ds.split(name).has_future for name in SPLITS},
        normalizer=ds.normalizer,
        config=ds.config,
        seed=ds.seed,
        options=ds.options,
    )


def fingerprint(ds: Dataset) -> str:
    """A hash of a dataset's content: its meta.json (counts, shapes, normaliser -- fitted on every training
    sample --, config, seed) and a strided sample of every split's ids and histories. Where the data came
    from (`options`, `path`) is left out: a moved dataset is the same dataset."""
    meta = {k: v for k, v in meta_of(ds).items() if k != "options"}
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in SPLITS:
        enc = ds.split(name)
        some = enc.subset(slice(None, None, max(1, len(enc) // 256)))  # a few rows of a mapped split
        for array in (some.scenario_id, some.track_id, some.history):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def save(ds: Dataset, out: str | Path, shard_size: int = SHARD_SIZE) -> Path:
    """Write the dataset to directory `out` as a whole (replacing a dataset there), in shards of up to
    `shard_size` samples; returns the path."""
    with DatasetWriter(out, shard_size=shard_size) as writer:
        for name in SPLITS:
            split = ds.split(name)
            for part in split.shards if isinstance(split, ShardedScenes) else (split,):
                writer.append(name, part.subset(slice(None)))
        return writer.finish(meta_of(ds), SPLITS)


def load(path: str | Path, mmap: bool = False) -> Dataset:
    """Read and validate a dataset directory. Raises TinypredError naming the file and field.

    mmap=False (the default) reads every split into memory, checking every value. mmap=True maps the
    shards instead (splits are `ShardedScenes`; almost no RAM however large): schema, dtypes, shapes and
    counts are checked now, the values when rows are read (or by `verify`)."""
    path = Path(path)
    meta = read_meta(path)
    meta_path = path / "meta.json"
    version = meta.get("schema_version")
    if version in (1, 2):
        raise TinypredError(
            f"{meta_path}: schema {version} (one .npz per split) is no longer read; regenerate it with "
            f"`tinypred data generate --out {path}` and its seed and counts (meta.json has its config)"
        )
    if version != SCHEMA_VERSION:
        raise TinypredError(f"{meta_path}: schema_version {version!r} is not the supported {SCHEMA_VERSION}")
    source = meta.get("source")
    if source not in SOURCES:
        raise TinypredError(
            f"{meta_path}: field 'source' must be one of {', '.join(SOURCES)}, got {source!r}"
        )
    config = None
    if source == "synthetic":
        if not isinstance(meta.get("config"), dict):
            raise TinypredError(f"{meta_path}: field 'config' missing or not an object")
        config = build(SceneConfig, meta["config"], f"{meta_path}: config")
    dt, shapes = _dt_and_shapes(meta, meta_path, config)
    check_vocabularies(meta, meta_path)
    seed = meta.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise TinypredError(f"{meta_path}: field 'seed' must be an integer >= 0 or null, got {seed!r}")
    norm = meta.get("normalization")
    if not isinstance(norm, dict) or not all(isinstance(norm.get(k), list) for k in ("mean", "std")):
        raise TinypredError(
            f"{meta_path}: field 'normalization' must be an object with lists 'mean' and 'std'"
        )
    try:
        with np.errstate(over="ignore"):  # a number beyond float32 becomes inf, refused just below
            normalizer = Normalizer(np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32))
    except (TypeError, ValueError):
        raise TinypredError(
            f"{meta_path}: field 'normalization': mean and std must be lists of numbers"
        ) from None
    options = meta.get("options") or {}
    if not isinstance(options, dict):
        raise TinypredError(f"{meta_path}: field 'options' must be an object")
    splits = [_load_split(path, name, meta, shapes, dt, mmap) for name in SPLITS]
    for name, enc in zip(SPLITS, splits, strict=True):
        said = (meta.get("has_future") or {}).get(name)
        if said is not enc.has_future:
            raise TinypredError(
                f"{meta_path}: field 'has_future.{name}' is {said!r}, the arrays say {enc.has_future}"
            )
    problem = normalizer.problem(feature_count(shapes["H"], shapes["L"], shapes["P"], shapes["M"]))
    if problem is not None:
        raise TinypredError(f"{meta_path}: field 'normalization': {problem}")
    return Dataset(
        *splits, normalizer=normalizer, source=source, config=config, seed=seed, options=options, path=path
    )


def _dt_and_shapes(meta: dict, meta_path: Path, config: SceneConfig | None) -> tuple[float, dict[str, int]]:
    dt = meta.get("dt")
    if not isinstance(dt, float | int) or isinstance(dt, bool) or not 0 < dt < np.inf:
        raise TinypredError(f"{meta_path}: field 'dt' must be the time step in s, got {dt!r}")
    if config is not None and dt != config.dt:
        raise TinypredError(f"{meta_path}: field 'dt' is {dt!r} but the scene config's is {config.dt}")
    shapes = meta.get("shapes")
    keys = ("H", "T", "L", "P", "M", "A")
    if not isinstance(shapes, dict) or not all(
        isinstance(shapes.get(k), int) and shapes[k] >= 0 for k in keys
    ):
        raise TinypredError(f"{meta_path}: field 'shapes' must give the integers {', '.join(keys)}")
    if shapes["H"] < 1 or shapes["A"] != MAX_ALTERNATIVES:
        raise TinypredError(f"{meta_path}: field 'shapes': expected H >= 1 and A = {MAX_ALTERNATIVES}")
    return float(dt), {k: shapes[k] for k in keys}


def _load_split(
    path: Path, name: str, meta: dict, shapes: dict[str, int], dt: float, mmap: bool
) -> EncodedScenes | ShardedScenes:
    meta_path = path / "meta.json"
    sizes = shard_sizes(meta, name, meta_path)
    names = EncodedScenes.array_names()
    parts = []
    for i, arrays in enumerate(read_shards(path, name, sizes, names, mmap=mmap)):
        where = shard_dir(path, name, i)
        check_schema(where, arrays, shapes)
        enc = EncodedScenes(**arrays, dt=dt)
        if not mmap:
            check_finite(where, arrays)
            check_values(where, arrays)
        parts.append(enc)
    if mmap:
        return ShardedScenes(parts, [shard_dir(path, name, i) for i in range(len(parts))], shapes, dt)
    if not parts:
        return empty(shapes, dt)
    return EncodedScenes.concatenate(parts)


def verify(path: str | Path) -> dict[str, Any]:
    """Check every value of every shard of a dataset directory (what `load` without mmap checks), one
    shard in memory at a time; the first bad one is a TinypredError naming it. Returns the counts."""
    ds = load(path, mmap=True)  # meta.json, the headers and the normaliser
    counts = {"samples": 0, "shards": 0}
    for name in SPLITS:
        split = ds.split(name)
        for where, shard in zip(split.where, split.shards, strict=True):
            arrays = shard.arrays()
            check_arrays(where, arrays, shapes_of(split))
            check_values(where, arrays)
            counts["samples"] += len(shard)
            counts["shards"] += 1
    return counts


def summary(ds: Dataset) -> list[dict]:
    """One row per split and family: counts and speed / displacement statistics (for `data inspect`)."""
    rows = []
    for name in SPLITS:
        enc = ds.split(name)
        speed = np.linalg.norm(enc.history[:, -1, 2:4], axis=-1)  # at the last observed step, m/s
        disp = np.linalg.norm(enc.future[:, -1], axis=-1)  # how far the agent goes in the future, m
        for k, family in enumerate(FAMILIES):
            m = enc.family == k
            if not m.any():
                continue
            known = enc.has_future
            rows.append(
                {
                    "split": name,
                    "family": family,
                    "count": int(m.sum()),
                    "share": float(m.mean()),
                    "decision": bool(enc.is_decision[m][0]),
                    "interactive": bool(enc.is_interactive[m][0]),
                    "alternatives": float(enc.alt_mask[m].sum(-1).mean()),
                    "neighbours": float(enc.neighbour_mask[m].any(-1).sum(-1).mean()),
                    "speed_mean": float(speed[m].mean()),
                    "speed_std": float(speed[m].std()),
                    "disp_mean": float(disp[m].mean()) if known else None,
                    "disp_p95": float(np.percentile(disp[m], 95)) if known else None,
                }
            )
    return rows
