"""Batches for the training loop: an order that is a function of (seed, epoch) only, each process's part
of every batch, normalised on the fly and prepared ahead, so that the device is never kept waiting.

    order = epoch_order(n, seed, epoch)           a permutation of the n samples
    global batch i = order[i * B : (i + 1) * B]   B = TrainConfig.batch_size; the epoch's last may be short
    rank r of W takes rank_part(len(batch), r, W)  the r-th of W contiguous pieces, sizes differing by <= 1

The order depends on nothing else, so a resumed run recomputes it (a checkpoint stores only the step
within the epoch) and the ranks of a distributed run agree on it without a word. Each `Batch` carries
its `share` of the global batch: the loop weights the rank's mean loss by it, so that the gradient is
the mean over the global batch however it was divided. A rank whose piece is empty (an epoch's last
batch smaller than W) gets a stand-in sample of weight 0.

Two ways to the same batches, bit for bit:
    resident  the split's normalised features and futures go to the device once; a batch is indexed
              there. For data in memory whose features fit in RESIDENT_BYTES: the fastest.
    streamed  a thread gathers each batch's rows (from memory-mapped shards, or from data too large to
              hold twice), checks their values (a bad row names its shard), computes and normalises the
              features, pins them on CUDA, and keeps `prefetch` batches ready; the copy to the GPU is
              non_blocking, on a side stream, a batch ahead. The cost of a batch grows with the batch,
              not with the dataset.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from tinypred.data.dataset import shapes_of
from tinypred.data.encoding import FEATURE_ARRAYS, EncodedScenes, Normalizer, features
from tinypred.data.shards import ShardedScenes
from tinypred.predictors.prediction import model_inputs

ORDER_STREAM = 0x5EED_0BA7C4  # mixed into the seed: the batch order's own random stream
RESIDENT_BYTES = 1 << 30  # features and futures up to this size live on the device for the whole run
_READ = (*FEATURE_ARRAYS, "future")


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch `epoch` (from 0) visits n samples: a permutation of range(n) that is a
    function of (seed, epoch) only (PCG64 seeded by a SeedSequence of both)."""
    return np.random.default_rng([ORDER_STREAM, seed, epoch]).permutation(n)


def rank_part(size: int, rank: int, world: int) -> slice:
    """Rank `rank`'s piece of a global batch of `size` samples split over `world` ranks: contiguous, the
    pieces' sizes differing by at most one (the first ranks get the smaller ones)."""
    return slice(size * rank // world, size * (rank + 1) // world)


@dataclass(frozen=True)
class Batch:
    """This rank's part of a global batch, on the device: x (b, D) normalised features, y (b, T, 2)
    futures, and `share` = b / (the global batch's size): the weight of this rank's mean loss."""

    x: torch.Tensor
    y: torch.Tensor
    share: float


class BatchLoader:
    """The batches of a training split for one rank: `epoch(e, start)` yields them from step `start` on.

    `scenes` is a split in memory (`EncodedScenes`) or memory-mapped (`ShardedScenes`); `resident`
    (default: in memory and small enough) picks the way, which changes nothing but the speed.
    """

    def __init__(
        self,
        scenes: EncodedScenes | ShardedScenes,
        normalizer: Normalizer,
        batch_size: int,
        seed: int,
        device: torch.device,
        *,
        rank: int = 0,
        world: int = 1,
        resident: bool | None = None,
        prefetch: int = 3,
    ) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} of {world}")
        self.scenes, self.normalizer, self.device = scenes, normalizer, torch.device(device)
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.n = len(scenes)
        self.steps = math.ceil(self.n / batch_size)
        self.prefetch = prefetch
        self.features = normalizer.mean.shape[0]
        self.horizon = shapes_of(scenes)["T"]
        size = self.n * (self.features + 2 * self.horizon) * 4
        if resident is None:
            resident = isinstance(scenes, EncodedScenes) and size <= RESIDENT_BYTES
        if resident and isinstance(scenes, ShardedScenes):
            scenes = scenes.in_memory()
        self.resident = resident
        if resident:
            self._x = model_inputs(scenes, normalizer, self.device)
            self._y = torch.from_numpy(scenes.future).to(self.device)

    def __len__(self) -> int:
        """Steps per epoch."""
        return self.steps

    def indices(self, order: np.ndarray, step: int) -> np.ndarray:
        """This rank's sample indices at `step` of the epoch whose order is `order`."""
        batch = order[step * self.batch_size : (step + 1) * self.batch_size]
        return batch[rank_part(len(batch), self.rank, self.world)]

    def share(self, step: int) -> float:
        """This rank's share of the global batch at `step`."""
        size = min(self.batch_size, self.n - step * self.batch_size)
        part = rank_part(size, self.rank, self.world)
        return (part.stop - part.start) / size

    def stand_in(self) -> Batch:
        """One zero sample of weight 0: what a rank without samples computes, to take part in the step."""
        x = torch.zeros(1, self.features, device=self.device)
        return Batch(x, torch.zeros(1, self.horizon, 2, device=self.device), 0.0)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """This rank's batches of epoch `epoch` (from 0), from step `start` on."""
        order = epoch_order(self.n, self.seed, epoch)
        if self.resident:
            return self._resident(order, start)
        return self._on_device(self._streamed(order, start))

    def _resident(self, order: np.ndarray, start: int) -> Iterator[Batch]:
        on_device = torch.from_numpy(order).to(self.device)
        for step in range(start, self.steps):
            batch = on_device[step * self.batch_size : (step + 1) * self.batch_size]
            idx = batch[rank_part(len(batch), self.rank, self.world)]
            if len(idx) == 0:
                yield self.stand_in()
            else:
                # index_select, not x[idx]: the same rows in 40% of the time (0.16 against 0.40 ms
                # for a batch of 512 on the CPU)
                yield Batch(self._x.index_select(0, idx), self._y.index_select(0, idx), self.share(step))

    def read(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The normalised features (b, D) and futures (b, T, 2) of samples idx, as NumPy arrays."""
        if isinstance(self.scenes, ShardedScenes):
            rows = self.scenes.gather(idx, _READ, check=True)
        else:
            rows = {name: getattr(self.scenes, name)[idx] for name in _READ}
        return self.normalizer(features(rows)), rows["future"]

    def _streamed(self, order: np.ndarray, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
        """Host batches (pinned on CUDA), prepared by a thread `prefetch` batches ahead; an error there
        (a damaged row) is raised here, at the batch it concerns."""
        ready: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        pin = self.device.type == "cuda"

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for step in range(start, self.steps):
                    idx = self.indices(order, step)
                    if len(idx) == 0:
                        item: object = None
                    else:
                        x, y = (torch.from_numpy(a) for a in self.read(idx))
                        item = (
                            (x.pin_memory(), y.pin_memory(), self.share(step))
                            if pin
                            else (x, y, self.share(step))
                        )
                    if not put(item):
                        return
            except BaseException as e:  # handed to the consumer, raised there
                put(_Failed(e))

        worker = threading.Thread(target=produce, name="tinypred-loader", daemon=True)
        worker.start()
        try:
            for _ in range(start, self.steps):
                item = ready.get()
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            stop.set()
            worker.join()

    def _on_device(self, host: Generator) -> Iterator[Batch]:
        """Host batches as device batches. On CUDA each copy is issued a batch ahead on a side stream and
        the compute stream waits only for that batch's copy (an event)."""
        if self.device.type != "cuda":
            with contextlib.closing(host):  # stops the reading thread when the loop stops early
                for item in host:
                    yield self.stand_in() if item is None else Batch(*item)
            return
        side = torch.cuda.Stream(self.device)
        compute = torch.cuda.current_stream(self.device)

        def upload(item: tuple | None) -> tuple:
            if item is None:
                return (None,)
            x, y, share = item
            with torch.cuda.stream(side):
                xd, yd = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                done = torch.cuda.Event()
                done.record(side)
            return xd, yd, share, done

        def ready(up: tuple) -> Batch:
            if up[0] is None:
                return self.stand_in()
            xd, yd, share, done = up
            compute.wait_event(done)
            xd.record_stream(compute)  # the caching allocator must not reuse them before compute is done
            yd.record_stream(compute)
            return Batch(xd, yd, share)

        pending = None
        try:
            for item in host:
                up = upload(item)
                if pending is not None:
                    yield ready(pending)
                pending = up
            if pending is not None:
                yield ready(pending)
        finally:
            host.close()  # stops the reading thread when the loop stops early


@dataclass(frozen=True)
class _Failed:
    error: BaseException
