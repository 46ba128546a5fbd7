"""The batch loader: an order that is a function of (seed, epoch) only, ranks that share every global
batch out exactly, and one set of batches whichever way they are made (resident or streamed, from
memory or from memory-mapped shards, whole or resumed mid-epoch)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinypred.data import dataset
from tinypred.data.scene_config import SceneConfig
from tinypred.training.loader import BatchLoader, epoch_order, rank_part

CPU = torch.device("cpu")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 3000), seed=st.integers(0, 2**32 - 1), epoch=st.integers(0, 10_000))
def test_the_order_is_a_permutation_fixed_by_seed_and_epoch(n, seed, epoch):
    order = epoch_order(n, seed, epoch)
    assert order.dtype == np.int64 and np.array_equal(np.sort(order), np.arange(n))
    assert np.array_equal(order, epoch_order(n, seed, epoch))
    if n >= 20:  # 20! orders: a repeat would be a bug, not chance
        assert not np.array_equal(order, epoch_order(n, seed, epoch + 1))
        assert not np.array_equal(order, epoch_order(n, seed + 1, epoch))


@settings(max_examples=80, deadline=None)
@given(size=st.integers(1, 600), world=st.integers(1, 9))
def test_the_ranks_pieces_cover_a_batch_once_in_order_within_one_sample(size, world):
    pieces = [rank_part(size, r, world) for r in range(world)]
    assert pieces[0].start == 0 and pieces[-1].stop == size
    assert all(a.stop == b.start for a, b in itertools.pairwise(pieces))
    lengths = [p.stop - p.start for p in pieces]
    assert max(lengths) - min(lengths) <= 1


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("loader") / "ds"
    dataset.save(dataset.make(SceneConfig(), 103, 5, 0, seed=4), out, shard_size=16)  # last shard: 7
    return dataset.load(out), dataset.load(out, mmap=True)


def _epoch(loader: BatchLoader, epoch: int, start: int = 0) -> list:
    return [(b.x.clone(), b.y.clone(), b.share) for b in loader.epoch(epoch, start)]


def test_resident_and_streamed_batches_are_the_same_bits_from_memory_or_mapped_shards(data):
    ram, mapped = data
    ways = [
        BatchLoader(ram.train, ram.normalizer, 20, 3, CPU, resident=True),
        BatchLoader(ram.train, ram.normalizer, 20, 3, CPU, resident=False),
        BatchLoader(mapped.train, mapped.normalizer, 20, 3, CPU),  # streamed: mapped data is never resident
    ]
    assert [w.resident for w in ways] == [True, False, False] and len(ways[0]) == 6  # 5 x 20 + 3
    first = _epoch(ways[0], 1)
    assert [len(x) for x, _, _ in first] == [20] * 5 + [3]
    for other in ways[1:]:
        for (x, y, s), (x2, y2, s2) in zip(first, _epoch(other, 1), strict=True):
            assert torch.equal(x, x2) and torch.equal(y, y2) and s == s2 == 1.0
    again, later = _epoch(ways[2], 1), _epoch(ways[2], 2)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][0], later[0][0])
    # A resumed epoch continues with exactly the batches it had left.
    tail = _epoch(ways[2], 1, start=4)
    assert len(tail) == 2 and all(torch.equal(a[0], b[0]) for a, b in zip(first[4:], tail, strict=True))


def test_the_ranks_batches_make_up_the_global_batch_with_their_shares(data):
    ram, mapped = data
    whole = _epoch(BatchLoader(ram.train, ram.normalizer, 21, 0, CPU), 0)  # 4 x 21 + 19
    ranks = [
        _epoch(BatchLoader(mapped.train, ram.normalizer, 21, 0, CPU, rank=r, world=4), 0) for r in range(4)
    ]
    for step, (x, y, _) in enumerate(whole):
        parts = [ranks[r][step] for r in range(4)]
        assert torch.equal(torch.cat([p[0] for p in parts]), x)
        assert torch.equal(torch.cat([p[1] for p in parts]), y)
        assert [len(p[0]) for p in parts] == ([5, 5, 5, 6] if step < 4 else [4, 5, 5, 5])
        assert sum(p[2] for p in parts) == pytest.approx(1.0)
    # A last global batch smaller than the ranks: the empty ones get a stand-in of weight 0.
    tiny = [BatchLoader(ram.train, ram.normalizer, 50, 0, CPU, rank=r, world=4) for r in range(4)]
    last = [_epoch(t, 0)[-1] for t in tiny]  # 103 = 2 x 50 + 3
    assert [len(x) for x, _, _ in last] == [1, 1, 1, 1]
    assert [s for _, _, s in last] == [0.0, 1 / 3, 1 / 3, 1 / 3]
    assert not last[0][0].any()
