"""A split held as its shards, read by rows: what `dataset.load(path, mmap=True)` gives for each split.

Each shard's arrays are memory-mapped read-only (`np.load(mmap_mode="r")`), so a split costs almost no
RAM however large it is: the rows asked for (`gather`, `subset`) are read through the page cache, which
the OS shares between processes (the ranks of a distributed training on one machine read the same
pages) and evicts under pressure. Opening checked only what the .npy headers say (dtype, shape, count);
`gather(..., check=True)` checks the values of the rows it reads (finite, of a sane magnitude, indices
in range, masks consistent) and names the shard of a bad one, and `dataset.verify` checks every shard
whole.

A `ShardedScenes` is not an `EncodedScenes`: it has no whole arrays (`split.future` would read the
whole split into memory; `in_memory()` does that when it is meant). What both offer alike: `len`, `dt`,
`has_future`, `shapes` (via `dataset.shapes_of`) and `subset(idx)`, which returns an `EncodedScenes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinypred.data.encoding import EncodedScenes
from tinypred.data.validate import check_finite, check_values, expected_arrays


class ShardedScenes:
    """N samples as consecutive shards (each an `EncodedScenes`, usually memory-mapped); `where[i]` is
    shard i's directory (named in errors), `shapes` the dataset's H, T, L, P, M and A."""

    def __init__(
        self, shards: Sequence[EncodedScenes], where: Sequence[Path], shapes: dict[str, int], dt: float
    ) -> None:
        if len(shards) != len(where):
            raise ValueError("one directory per shard")
        self.shards, self.where = tuple(shards), tuple(where)
        self.shapes, self.dt = dict(shapes), dt
        # offsets[i]: the index of shard i's first sample; offsets[-1]: the number of samples
        self.offsets = np.cumsum([0, *(len(s) for s in self.shards)], dtype=np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __repr__(self) -> str:
        return f"ShardedScenes({len(self)} samples in {len(self.shards)} shards, dt {self.dt} s)"

    def __getattr__(self, name: str) -> object:
        if name in EncodedScenes.array_names():
            raise AttributeError(
                f"a sharded split has no whole {name!r} array: read rows with .subset(...) or .gather(...), "
                "or everything with .in_memory()"
            )
        raise AttributeError(name)

    @property
    def has_future(self) -> bool:
        """Every future is known (reads the future masks: N x T booleans)."""
        return all(s.has_future for s in self.shards)

    def gather(
        self, idx: np.ndarray, names: Sequence[str] | None = None, check: bool = False
    ) -> dict[str, np.ndarray]:
        """The rows `idx` (sample indices, any order, repeats allowed) of the arrays `names` (default: all),
        in the order of `idx`. Each shard is read in increasing row order (sequential pages). `check`:
        the rows read must pass `check_finite` and `check_values` (those of their checks that read only
        the arrays asked for), else a TinypredError naming the shard.
        """
        idx = np.asarray(idx, np.int64)
        names = tuple(names or EncodedScenes.array_names())
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"sample index out of range for {n} samples")
        spec = expected_arrays(self.shapes)
        out = {}
        for name in names:
            shape, dtype = spec[name]
            # strings may be wider in one shard than another: the widest fits them all
            kind = [getattr(s, name).dtype for s in self.shards] or ["U1" if dtype == "str" else dtype]
            out[name] = np.empty((len(idx), *shape), np.result_type(*kind))
        # Sorted once, stably: each shard's rows are then one run of the sorted indices, read in increasing
        # order (sequential pages), repeats in the order they were asked for.
        order = np.argsort(idx, kind="stable")
        ordered = idx[order]
        bounds = np.searchsorted(ordered, self.offsets)
        for s in np.flatnonzero(np.diff(bounds)):  # the shards holding any of the rows
            run = slice(bounds[s], bounds[s + 1])
            local, pos = ordered[run] - self.offsets[s], order[run]
            # take on a plain ndarray view: indexing the np.memmap subclass costs twice as much per call
            rows = {name: np.asarray(getattr(self.shards[s], name)).take(local, axis=0) for name in names}
            if check:
                check_finite(self.where[s], rows)
                check_values(self.where[s], rows)
            for name in names:
                out[name][pos] = rows[name]
        return out

    def subset(self, idx: np.ndarray | slice, check: bool = False) -> EncodedScenes:
        """The samples idx (an index array, a mask or a slice) read into memory, as `EncodedScenes.subset`
        does; `check` as in `gather`."""
        if isinstance(idx, slice):
            idx = np.arange(len(self))[idx]
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return EncodedScenes(**self.gather(idx, check=check), dt=self.dt)

    def in_memory(self) -> EncodedScenes:
        """The whole split read into memory (as `dataset.load` without mmap gives it)."""
        if not self.shards:
            return empty(self.shapes, self.dt)
        return EncodedScenes.concatenate([s.subset(slice(None)) for s in self.shards])


def empty(shapes: dict[str, int], dt: float) -> EncodedScenes:
    """A split of no samples, with the dataset's shapes."""
    arrays = {
        name: np.zeros((0, *shape), "U1" if dtype == "str" else dtype)
        for name, (shape, dtype) in expected_arrays(shapes).items()
    }
    return EncodedScenes(**arrays, dt=dt)
