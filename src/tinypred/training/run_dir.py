"""The run directory: one training in it at a time, and a resume only of the very run it holds.

A run is locked while it trains (an OS-level `flock` on ``RUN/.lock``: a second training into the same
directory is refused, and a killed process releases the lock without cleanup). ``config.json`` records
what the run is: its TrainConfig, the data's path and content fingerprint and seed. A resume must match
it field by field (the checkpoint interval aside: it changes when the run is saved, never what it
computes); a mismatch names the field and both values.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tinypred.data.dataset import Dataset, fingerprint
from tinypred.errors import TinypredError
from tinypred.fileio import cannot_write
from tinypred.training.checkpoint import CHECKPOINT_FILE
from tinypred.training.config import TrainConfig

LOCK_FILE = ".lock"
CONFIG_FILE = "config.json"
FREE_ON_RESUME = ("checkpoint_every", "compile")  # may change between a run and its resume: not its numbers


@contextlib.contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock (created with the directory if need be) for the block."""
    if out_dir.exists() and not out_dir.is_dir():
        raise TinypredError(f"{out_dir} exists and is not a directory", arg="out_dir")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise cannot_write(out_dir, e) from None
    fd = os.open(out_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            raise TinypredError(
                f"{out_dir} is in use by another training (pid {holder}); wait for it or use another",
                arg="out_dir",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


def identity(ds: Dataset, cfg: TrainConfig) -> dict[str, Any]:
    """What config.json records about a run: what would make a resume of it another run."""
    return {
        "train": json.loads(cfg.model_dump_json()),
        "data": str(ds.path) if ds.path else None,
        "data_fingerprint": fingerprint(ds),
        "data_seed": ds.seed,
    }


def read_identity(out_dir: Path) -> dict[str, Any] | None:
    """The run's config.json (None if there is none); a damaged one is a user error naming it."""
    path = out_dir / CONFIG_FILE
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TinypredError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("train"), dict):
        raise TinypredError(f"{path}: expected an object with the run's settings under 'train'")
    return saved


def check_same_run(out_dir: Path, saved: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse a resume that is not the saved run: the first field that differs, with both values."""
    if saved.get("data_fingerprint") != now["data_fingerprint"]:
        raise TinypredError(
            f"{out_dir} was trained on other data ({saved.get('data')}, fingerprint "
            f"{saved.get('data_fingerprint')}); this is {now['data']} ({now['data_fingerprint']})",
            arg="resume",
        )
    for field, (was, asked) in _differences(saved["train"], now["train"]).items():
        if field not in FREE_ON_RESUME:
            raise TinypredError(
                f"{out_dir} was started with {field} = {was!r}; this call asks for {asked!r}", arg="resume"
            )


def _differences(a: Any, b: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Dotted field -> (a's value, b's value) wherever two nested config dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for key in sorted(set(a) | set(b)):
            out |= _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return {} if a == b else {prefix.rstrip("."): (a, b)}


def how_to_start(out_dir: Path, run: dict[str, Any], resume: bool) -> str:
    """ "new", "resumed" (from the checkpoint) or why a resume starts from scratch; refuses a directory
    holding another run, and a resume that is not this run."""
    has_checkpoint = (out_dir / CHECKPOINT_FILE).exists()
    if not resume:
        if has_checkpoint:
            raise TinypredError(
                f"{out_dir} already holds a run; resume it or choose another directory", arg="out_dir"
            )
        return "new"
    saved = read_identity(out_dir)
    if saved is None:
        if has_checkpoint:
            raise TinypredError(
                f"{out_dir / CONFIG_FILE}: missing beside a checkpoint; cannot tell what run this is"
            )
        return "nothing to resume in an empty directory: started from scratch"
    check_same_run(out_dir, saved, run)
    if not has_checkpoint:
        return "no checkpoint yet (stopped before its first): started from scratch"
    if not (out_dir / "init.json").is_file():
        raise TinypredError(f"{out_dir / 'init.json'}: missing beside the checkpoint")
    return "resumed"


def read_init(path: Path) -> dict[str, float]:
    """The run's init.json; a damaged one is a user error naming it."""
    try:
        init = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TinypredError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(init, dict) or not all(isinstance(v, float | int) for v in init.values()):
        raise TinypredError(f"{path}: expected an object of numbers (the loss at initialisation)")
    return init
