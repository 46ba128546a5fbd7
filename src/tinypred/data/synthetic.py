"""How a synthetic dataset is made: each split's random stream, its samples a block of scenes at a time
(the same samples whatever the block), and the checks made before anything is generated.

`dataset.make` gathers the blocks in memory; `dataset.write` sends them to disk as they come, so that
memory stays bounded by one block however large the dataset.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from tinypred.data.encoding import EncodedScenes, encode
from tinypred.data.scene_config import MAX_ALTERNATIVES, SceneConfig
from tinypred.data.scenes import CHUNK, generate
from tinypred.data.validate import sample_bytes
from tinypred.errors import TinypredError

SPLITS = ("train", "val", "test")
ID_BYTES = 16  # a scenario id's bytes, for the size estimates
# Scenes `dataset.write` generates and encodes at once: two chunks, one per thread on 2 cores; about 2 GiB
# of peak memory at the default shapes (world-frame scenes, their encoding, features for the moments).
BLOCK = 2 * CHUNK


def split_stream(seed: int, split: str) -> np.random.SeedSequence:
    """The random stream of one split of the synthetic dataset made with `seed`."""
    return np.random.SeedSequence(seed).spawn(len(SPLITS))[SPLITS.index(split)]


def split_sizes(n_train: int, n_val: int, n_test: int, seed: int) -> dict[str, int]:
    """The split sizes, checked (with the seed) before anything is generated."""
    for arg, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if n < 0:
            raise TinypredError(f"expected a count >= 0, got {n}", arg=arg)
    if seed < 0:
        raise TinypredError(f"expected an integer >= 0, got {seed}", arg="seed")
    if n_train < 1:
        raise TinypredError("expected at least 1 scene (normalisation is fitted on it)", arg="n_train")
    return dict(zip(SPLITS, (n_train, n_val, n_test), strict=True))


def encoded_blocks(config: SceneConfig, n: int, seed: int, split: str, block: int) -> Iterator[EncodedScenes]:
    """The samples of a split, `block` scenes at a time (the same samples whatever the block); an empty
    split is one empty block."""
    if block < 1 or block % CHUNK:
        raise TinypredError(f"expected a multiple of {CHUNK} scenes, got {block}", arg="block")
    stream = split_stream(seed, split)
    for lo in range(0, max(n, 1), block):
        scenes = generate(config, min(block, n - lo), stream, start=lo)
        # Unique across splits and datasets, as Argoverse 2 scenario ids are.
        ids = np.char.add(f"syn{seed}-{split}-", np.arange(lo, lo + len(scenes)).astype("U"))
        yield encode(replace(scenes, scenario_id=ids))


def config_shapes(config: SceneConfig) -> dict[str, int]:
    """H, T, L, P, M and A of the samples a scene config makes."""
    shapes = {"H": config.history_steps, "T": config.future_steps, "L": config.max_lanes}
    return shapes | {"P": config.lane_points, "M": config.max_neighbours, "A": MAX_ALTERNATIVES}


def check_memory(config: SceneConfig, n: int) -> None:
    """Refuse, before allocating, a dataset that cannot fit in this machine's memory."""
    # The world-frame scenes, the encoded ones and the generator's work arrays.
    need = 3 * n * sample_bytes(config_shapes(config), ID_BYTES)
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > available:
        raise TinypredError(
            f"{n} scenes need about {need / 2**30:.0f} GiB; this machine has {available / 2**30:.0f} GiB "
            "(`tinypred data generate` writes them to disk a block at a time)",
            arg="n_train",
        )


def check_disk(where: Path, sizes: dict[str, int], shapes: dict[str, int]) -> None:
    """Refuse, before generating, a dataset larger than the free space at `where` (the directory it is
    being written into); the error names the largest count."""
    need = sum(sizes.values()) * sample_bytes(shapes, ID_BYTES)
    free = shutil.disk_usage(where).free
    if need > free:
        split = max(sizes, key=sizes.__getitem__)
        raise TinypredError(
            f"{sum(sizes.values())} scenes need about {need / 2**30:.1f} GiB on disk; "
            f"{where.parent} has {free / 2**30:.1f} GiB free",
            arg=f"n_{split}",
        )
