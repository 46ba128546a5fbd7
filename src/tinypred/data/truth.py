"""Draws from the true conditional distribution of a synthetic split's futures: what no predictor can
beat, and what the `bayes` floor is computed from.

A synthetic split is a pure function of (scene config, seed, split): `future_samples` generates it again
with the generator's `Resampler`s and draws, for every scene, S futures of its target from the law the
scene's own future was drawn from, given everything its past shows (`Drawn.resample`). It first checks
that the replay gives back the split's own futures: a dataset made by another version of the generator
is refused, not silently floored with the wrong law.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tinypred.data.dataset import Dataset
from tinypred.data.encoding import EncodedScenes, to_agent
from tinypred.data.scenes import Resampler, generate_with_resamplers
from tinypred.data.synthetic import split_stream
from tinypred.errors import TinypredError

REPLAY_TOLERANCE = 1e-3  # m: float32 agent-frame futures of a replay agree to about 1e-5 m


def replay(ds: Dataset, split: str) -> list[Resampler]:
    """The resamplers of a synthetic split of `ds`, after checking that the replay is that split."""
    if ds.config is None or ds.seed is None:
        raise TinypredError(
            "the bayes floor needs a synthetic dataset (its scene config and seed); this one is imported",
            arg="dataset",
        )
    enc = ds.split(split)
    if not isinstance(enc, EncodedScenes):
        raise TinypredError("the bayes floor needs the split in memory (load the dataset without mmap)")
    scenes, resamplers = generate_with_resamplers(ds.config, len(enc), split_stream(ds.seed, split))
    moved = to_agent(scenes.future, enc.pose, np.float32)
    if len(enc) and not np.abs(moved - enc.future).max() <= REPLAY_TOLERANCE:
        raise TinypredError(
            f"the {split} split was not made by this version of the scene generator (its futures differ "
            "from a replay of its config and seed): remake the dataset to compute the bayes floor",
            arg="dataset",
        )
    return resamplers


def future_samples(
    ds: Dataset, split: str, samples: int, seed: int, batch: int = 1024
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (rows (B,), futures (B, samples, T, 2) float32 in each sample's agent frame): `samples`
    independent draws of the future of every scene of the split, a block of at most `batch` rows at a
    time (bounded memory); the same (dataset, split, samples, seed) gives the same draws."""
    if samples < 1:
        raise TinypredError(f"expected at least 1 sample per scene, got {samples}", arg="samples")
    enc = ds.split(split)
    resamplers = replay(ds, split)
    for resampler, stream in zip(
        resamplers, np.random.SeedSequence(seed).spawn(len(resamplers)), strict=True
    ):
        rng = np.random.default_rng(stream)
        drawn = np.stack([resampler.resample(rng) for _ in range(samples)], 1).astype(np.complex64)
        for lo in range(0, len(resampler.rows), batch):
            part = slice(lo, lo + batch)
            rows = resampler.rows[part]
            world = Resampler(rows, resampler.resample, resampler.turn[part], resampler.shift[part])
            yield rows, to_agent(world.world(drawn[part]), enc.pose[rows], np.float32)
