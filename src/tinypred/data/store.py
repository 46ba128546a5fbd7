"""A dataset directory on disk: `meta.json` and each split in shards of plain `.npy` arrays.

    DIR/meta.json                        written last; lists every shard and its size
    DIR/<split>/<shard>/<array>.npy      shard = 00000, 00001, ...: up to `shard_size` samples each

A directory is written as a whole: everything goes into a temporary sibling, renamed into place only
when complete (replacing a dataset already there only then). A kill leaves the old dataset, or none,
never a mix of two; a later write removes the kill's leftovers. Memory stays bounded by one shard
however many samples are appended. Arrays are read with ``allow_pickle=False``: nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tinypred.data.encoding import EncodedScenes, FeatureMoments, features
from tinypred.data.scene_config import VOCABULARIES
from tinypred.errors import TinypredError
from tinypred.fileio import atomic_directory, write_json

SHARD_SIZE = 65536


class DatasetWriter:
    """Writes a dataset directory shard by shard; it goes into place when the `with` block ends after
    `finish` (on an error, or without `finish`, nothing of it survives and `out` stays as it was).

        with DatasetWriter(out) as w:
            w.append("train", encoded_chunk)   # any number of chunks per split, in order
            w.finish(meta, SPLITS)             # meta.json gains "splits": counts and shard sizes

    `w.tmp` is the directory being written (for extra files, such as an import report). The moments of
    the training features are gathered on the way, so that the normaliser is fitted on the whole
    training split without holding it (`train_moments`).
    """

    def __init__(self, out: str | Path, shard_size: int = SHARD_SIZE) -> None:
        if shard_size < 1:
            raise TinypredError(f"expected a number of samples >= 1, got {shard_size}", arg="shard_size")
        self.out = Path(out)
        self.shard_size = shard_size
        self.train_moments = FeatureMoments()
        self._buffers: dict[str, list[EncodedScenes]] = {}
        self._shards: dict[str, list[int]] = {}
        self._dt: float | None = None
        self._finished = False
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> DatasetWriter:
        out = self.out
        if out.exists() and not out.is_dir():
            raise TinypredError(f"{out} exists and is not a directory", arg="out")
        if out.is_dir() and not is_dataset_dir(out):
            raise TinypredError(
                f"{out} is a directory but not a tinypred dataset; refusing to replace it", arg="out"
            )
        self.tmp = self._stack.enter_context(atomic_directory(out, is_dataset_dir))
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and not self._finished:
            exc_type, exc = RuntimeError, RuntimeError("DatasetWriter closed without finish()")
        self._stack.__exit__(exc_type, exc, tb)

    def append(self, split: str, enc: EncodedScenes) -> None:
        """Add samples to a split; full shards go to disk at once."""
        if self._dt is None:
            self._dt = enc.dt
        elif enc.dt != self._dt:
            raise TinypredError(f"samples at dt {enc.dt} s and {self._dt} s in one dataset", arg="dt")
        if split == "train":
            self.train_moments.add(features(enc))
        buffer = self._buffers.setdefault(split, [])
        self._shards.setdefault(split, [])
        buffer.append(enc)
        while sum(len(b) for b in buffer) >= self.shard_size:
            whole = EncodedScenes.concatenate(buffer)
            self._write_shard(split, whole.subset(slice(0, self.shard_size)))
            rest = whole.subset(slice(self.shard_size, None))
            buffer[:] = [rest] if len(rest) else []

    def _write_shard(self, split: str, enc: EncodedScenes) -> None:
        shard = shard_dir(self.tmp, split, len(self._shards[split]))
        shard.mkdir(parents=True)
        for name, array in enc.arrays().items():
            np.save(shard / f"{name}.npy", array, allow_pickle=False)
        self._shards[split].append(len(enc))

    def finish(self, meta: dict[str, Any], splits: tuple[str, ...]) -> Path:
        """Write what is buffered, then meta.json (with the shard index). Every split of `splits` exists,
        if empty. Returns the final path."""
        for split in splits:
            self._shards.setdefault(split, [])
            buffer = self._buffers.get(split, [])
            if buffer and sum(len(b) for b in buffer):
                self._write_shard(split, EncodedScenes.concatenate(buffer))
            (self.tmp / split).mkdir(exist_ok=True)
        meta = {
            **meta,
            "splits": {s: {"count": sum(self._shards[s]), "shards": self._shards[s]} for s in splits},
        }
        write_json(self.tmp / "meta.json", meta)
        self._finished = True
        return self.out


def shard_dir(path: Path, split: str, index: int) -> Path:
    """The directory of a split's shard `index` (from 0)."""
    return path / split / f"{index:05d}"


def is_dataset_dir(path: Path) -> bool:
    """An empty directory, or one holding a tinypred dataset's meta.json: ours to replace."""
    return (path / "meta.json").exists() or not any(path.iterdir())


def read_meta(path: Path) -> dict[str, Any]:
    """A dataset directory's meta.json as a dict; a missing or damaged one is a user error."""
    meta_path = path / "meta.json"
    if not path.is_dir():
        raise TinypredError(f"{path}: not a dataset directory (run `tinypred data generate --out {path}`)")
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise TinypredError(f"{meta_path}: missing (is {path} a tinypred dataset?)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TinypredError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise TinypredError(f"{meta_path}: expected a JSON object")
    return meta


def shard_sizes(meta: dict[str, Any], split: str, meta_path: Path) -> list[int]:
    """The sizes of a split's shards, as meta.json lists them; its counts of the split must add up to
    them."""
    try:
        sizes = meta["splits"][split]["shards"]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes):
            raise TypeError
    except (KeyError, TypeError):
        raise TinypredError(f"{meta_path}: field 'splits.{split}.shards' missing or malformed") from None
    counts = meta.get("counts")
    for field, said in (
        (f"splits.{split}.count", meta["splits"][split].get("count")),
        (f"counts.{split}", counts.get(split) if isinstance(counts, dict) else counts),
    ):
        if type(said) is not int or said != sum(sizes):  # not a bool, not a float
            raise TinypredError(f"{meta_path}: field '{field}' is {said!r}, its shards hold {sum(sizes)}")
    return list(sizes)


def check_vocabularies(meta: dict[str, Any], meta_path: Path) -> None:
    """meta.json's vocabularies must be the ones the arrays' indices refer to: this version's."""
    for field, known in VOCABULARIES.items():
        if meta.get(field) != list(known):
            raise TinypredError(
                f"{meta_path}: field '{field}' is {meta.get(field)!r}, expected {list(known)} (the arrays "
                "index it): a dataset of another tinypred version; regenerate or re-import it"
            )


def read_shards(
    path: Path, split: str, sizes: list[int], names: tuple[str, ...], mmap: bool = False
) -> Iterator[dict[str, np.ndarray]]:
    """Each shard of a split as {array name: array}, read into memory or (`mmap`) memory-mapped read-only:
    then only the headers are read now, and the data page by page when it is used. A missing or damaged
    file is a user error, and so is a shard directory meta.json does not list."""
    listed = {shard_dir(path, split, i).name for i in range(len(sizes))}
    # A hidden file (.DS_Store, an AppleDouble ._00000 from a copy to exFAT) is no shard: left alone.
    entries = (
        {p.name for p in (path / split).iterdir() if not p.name.startswith(".")}
        if (path / split).is_dir()
        else set()
    )
    if extra := sorted(entries - listed):
        raise TinypredError(
            f"{path / split}: unexpected {extra} beside the {len(sizes)} shards meta.json lists"
        )
    for i, size in enumerate(sizes):
        shard = shard_dir(path, split, i)
        arrays = {}
        for name in names:
            file = shard / f"{name}.npy"
            check_npy(file)
            try:
                arrays[name] = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
            except Exception as e:  # checked above: only a file changed meanwhile, or unreadable, gets here
                raise TinypredError(f"{file}: not readable ({type(e).__name__}: {e})") from None
            count = len(arrays[name]) if arrays[name].ndim else 0
            if count != size:
                raise TinypredError(f"{file}: holds {count} samples where meta.json says {size}")
        extra = sorted(p.name for p in shard.iterdir() if p.suffix != ".npy" or p.stem not in names)
        if extra:
            raise TinypredError(f"{shard}: unexpected files {extra}")
        yield arrays


def check_npy(file: Path) -> None:
    """A plain .npy array whose size is what its header says: a user error naming the file and what was
    expected otherwise (a truncated or extended file, an unreadable header, Python objects)."""
    try:
        with open(file, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                    version, np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(f)
            except Exception:  # a damaged header raises ValueError, SyntaxError, EOFError...
                raise TinypredError(f"{file}: not a .npy array (its header is unreadable)") from None
            size, start = os.fstat(f.fileno()).st_size, f.tell()
    except FileNotFoundError:
        raise TinypredError(f"{file}: missing") from None
    except OSError as e:
        raise TinypredError(f"{file}: not readable ({e.strerror or e})") from None
    if dtype.hasobject:
        raise TinypredError(f"{file}: holds Python objects (dtype {dtype}); expected a plain array")
    needed = start + math.prod(shape) * dtype.itemsize
    if size != needed:
        raise TinypredError(
            f"{file}: holds {size} bytes where its header ({dtype} of shape {shape}) needs {needed}"
        )
