"""Dataset files: three splits of encoded scenes as `.npz` arrays plus a `meta.json`.

A dataset directory holds ``train.npz``, ``val.npz``, ``test.npz`` (plain arrays, never pickled
objects; loaded with ``allow_pickle=False``) and ``meta.json``: the schema version, the time step ``dt``
(s), the full scene config, the seed, the array shapes (H history and T future steps, ...), the scene
counts, the names of families/intents/lane types, and the feature normalisation fitted on the training
split. Every file is written atomically, ``meta.json`` last. `load` validates everything before it
returns, and every split it returns carries the dataset's ``dt``.

Schema 2 added the top-level ``dt``; a schema-1 dataset still loads (its dt is its config's).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinypred.config import build
from tinypred.data.encoding import EncodedScenes, Normalizer, encode, feature_names, features
from tinypred.data.scene_config import FAMILIES, INTENTS, LANE_TYPES, MAX_ALTERNATIVES, SceneConfig
from tinypred.data.scenes import generate
from tinypred.errors import TinypredError
from tinypred.fileio import atomic_open, write_json

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Dataset:
    """Three splits, their config and the normaliser fitted on the training split."""

    train: EncodedScenes
    val: EncodedScenes
    test: EncodedScenes
    config: SceneConfig
    seed: int
    normalizer: Normalizer
    path: Path | None = None

    @property
    def dt(self) -> float:
        """The time step of every split, s."""
        return self.train.dt

    def split(self, name: str) -> EncodedScenes:
        """The split called `name` (train, val or test)."""
        if name not in SPLITS:
            raise TinypredError(f"expected one of {', '.join(SPLITS)}, got {name!r}", arg="split")
        return getattr(self, name)


def make(config: SceneConfig, n_train: int, n_val: int, n_test: int, seed: int) -> Dataset:
    """Generate and encode the three splits; each split has its own random stream from `seed`."""
    for arg, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if n < 0:
            raise TinypredError(f"expected a count >= 0, got {n}", arg=arg)
    if seed < 0:
        raise TinypredError(f"expected an integer >= 0, got {seed}", arg="seed")
    if n_train < 1:
        raise TinypredError("expected at least 1 scene (normalisation is fitted on it)", arg="n_train")
    streams = np.random.SeedSequence(seed).spawn(len(SPLITS))
    splits = [encode(generate(config, n, s)) for n, s in zip((n_train, n_val, n_test), streams, strict=True)]
    return Dataset(*splits, config=config, seed=seed, normalizer=Normalizer.fit(features(splits[0])))


def save(ds: Dataset, out: str | Path) -> Path:
    """Write the dataset to directory `out` (created if missing); returns the path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TinypredError(f"{out} exists and is not a directory", arg="out")
    out.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        with atomic_open(out / f"{name}.npz", "wb") as f:
            np.savez(f, **ds.split(name).arrays())
    write_json(out / "meta.json", _meta(ds))
    return out


def _meta(ds: Dataset) -> dict:
    cfg = ds.config
    return {
        "schema_version": SCHEMA_VERSION,
        "dt": ds.dt,
        "seed": ds.seed,
        "config": cfg.model_dump(),
        "counts": {name: len(ds.split(name)) for name in SPLITS},
        "shapes": {
            "H": cfg.history_steps,
            "T": cfg.future_steps,
            "L": cfg.max_lanes,
            "P": cfg.lane_points,
            "M": MAX_ALTERNATIVES,
        },
        "families": list(FAMILIES),
        "intents": list(INTENTS),
        "lane_types": list(LANE_TYPES),
        "normalization": {"mean": ds.normalizer.mean.tolist(), "std": ds.normalizer.std.tolist()},
    }


def load(path: str | Path) -> Dataset:
    """Read and validate a dataset directory. Raises TinypredError naming the file and field."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not path.is_dir():
        raise TinypredError(f"{path}: not a dataset directory (run `tinypred data generate --out {path}`)")
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise TinypredError(f"{meta_path}: missing (is {path} a tinypred dataset?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TinypredError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise TinypredError(f"{meta_path}: expected a JSON object")
    version = meta.get("schema_version")
    if version not in READABLE_SCHEMAS:
        raise TinypredError(
            f"{meta_path}: schema_version {version!r} is not one this tinypred reads ({READABLE_SCHEMAS})"
        )
    if not isinstance(meta.get("config"), dict):
        raise TinypredError(f"{meta_path}: field 'config' missing or not an object")
    config = build(SceneConfig, meta["config"], f"{meta_path}: config")
    dt = meta.get("dt") if version >= 2 else config.dt
    if not isinstance(dt, float | int) or isinstance(dt, bool) or not 0 < dt < np.inf or dt != config.dt:
        raise TinypredError(f"{meta_path}: field 'dt' must be the config's time step in s, got {dt!r}")
    try:
        seed = int(meta["seed"])
        counts = {name: int(meta["counts"][name]) for name in SPLITS}
        norm = meta["normalization"]
        normalizer = Normalizer(np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32))
    except (KeyError, TypeError, ValueError) as e:
        raise TinypredError(f"{meta_path}: field {e} missing or malformed") from None
    splits = [_load_split(path / f"{name}.npz", config, float(dt)) for name in SPLITS]
    for name, enc in zip(SPLITS, splits, strict=True):
        if len(enc) != counts[name]:
            raise TinypredError(
                f"{path / (name + '.npz')}: holds {len(enc)} scenes where {meta_path} says {counts[name]} "
                "(files from two different generations?)"
            )
    d = len(feature_names(config.history_steps, config.max_lanes, config.lane_points))
    if normalizer.mean.shape != (d,) or normalizer.std.shape != (d,) or not np.all(normalizer.std > 0):
        raise TinypredError(f"{meta_path}: normalization: expected mean and std of {d} numbers, std > 0")
    return Dataset(*splits, config=config, seed=seed, normalizer=normalizer, path=path)


def _expected(cfg: SceneConfig) -> dict[str, tuple[tuple, str]]:
    """Per array: its shape after N (with -1 for N) and its dtype kind."""
    H, T, L, P, M = cfg.history_steps, cfg.future_steps, cfg.max_lanes, cfg.lane_points, MAX_ALTERNATIVES
    return {
        "history": ((H, 6), "float32"),
        "future": ((T, 2), "float32"),
        "lanes": ((L, P, 2), "float32"),
        "lane_mask": ((L,), "bool"),
        "lane_type": ((L,), "int8"),
        "alt_futures": ((M, T, 2), "float32"),
        "alt_probs": ((M,), "float32"),
        "alt_mask": ((M,), "bool"),
        "alt_intent": ((M,), "int8"),
        "family": ((), "int8"),
        "intent": ((), "int8"),
        "pose": ((3,), "float64"),
        "scene_id": ((), "int64"),
    }


def _load_split(file: Path, cfg: SceneConfig, dt: float) -> EncodedScenes:
    try:
        with np.load(file, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise TinypredError(f"{file}: missing") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        # ValueError is also what np.load raises for pickled object arrays with allow_pickle=False.
        raise TinypredError(f"{file}: damaged or not a plain .npz archive ({e})") from None
    n = None
    for name, (shape, dtype) in _expected(cfg).items():
        if name not in arrays:
            raise TinypredError(f"{file}: array {name!r} missing")
        a = arrays[name]
        if a.dtype != np.dtype(dtype):
            raise TinypredError(f"{file}: array {name!r} has dtype {a.dtype}, expected {dtype}")
        n = a.shape[0] if n is None and a.ndim else n
        if a.shape != (n, *shape):
            raise TinypredError(f"{file}: array {name!r} has shape {a.shape}, expected {(n, *shape)}")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise TinypredError(f"{file}: array {name!r} contains NaN or Inf")
    extra = sorted(set(arrays) - set(_expected(cfg)))
    if extra:
        raise TinypredError(f"{file}: unexpected arrays {extra}")
    enc = EncodedScenes(**{name: arrays[name] for name in EncodedScenes.array_names()}, dt=dt)
    _check_values(file, enc)
    return enc


def _check_values(file: Path, enc: EncodedScenes) -> None:
    """Cross-array consistency: indices in range, probabilities a distribution over the mask."""
    M = MAX_ALTERNATIVES
    checks = [
        ("family", np.all((enc.family >= 0) & (enc.family < len(FAMILIES))), f"in [0, {len(FAMILIES)})"),
        (
            "lane_type",
            np.all((enc.lane_type >= 0) & (enc.lane_type < len(LANE_TYPES))),
            f"in [0, {len(LANE_TYPES)})",
        ),
        ("intent", np.all((enc.intent >= 0) & (enc.intent < M)), f"a slot in [0, {M})"),
        (
            "intent",
            np.all(enc.alt_mask[np.arange(len(enc)), enc.intent.astype(np.int64)]) if len(enc) else True,
            "a slot whose alt_mask is set",
        ),
        (
            "alt_intent",
            np.all(
                np.where(
                    enc.alt_mask,
                    (enc.alt_intent >= 0) & (enc.alt_intent < len(INTENTS)),
                    enc.alt_intent == -1,
                )
            ),
            "an intent index where masked in, -1 elsewhere",
        ),
        (
            "alt_probs",
            np.all((enc.alt_probs >= 0) & (enc.alt_probs <= 1) & (enc.alt_mask | (enc.alt_probs == 0))),
            "in [0, 1] and 0 where alt_mask is off",
        ),
        ("alt_probs", np.allclose(enc.alt_probs.sum(-1), 1.0, atol=1e-5), "rows summing to 1"),
    ]
    for name, ok, expected in checks:
        if not ok:
            raise TinypredError(f"{file}: array {name!r}: expected {expected}")


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
            rows.append(
                {
                    "split": name,
                    "family": family,
                    "count": int(m.sum()),
                    "share": float(m.mean()),
                    "decision": bool(enc.is_decision[m][0]),
                    "alternatives": float(enc.alt_mask[m].sum(-1).mean()),
                    "speed_mean": float(speed[m].mean()),
                    "speed_std": float(speed[m].std()),
                    "disp_mean": float(disp[m].mean()),
                    "disp_p95": float(np.percentile(disp[m], 95)),
                }
            )
    return rows
