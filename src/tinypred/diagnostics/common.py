"""What every check shares: its result type, the data as tensors, endless training, log-ratios."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt  # the Agg backend: tinypred.report.figures selects it on import
import torch
from torch import nn

from tinypred.data.dataset import Dataset
from tinypred.errors import TinypredError
from tinypred.report.figures import save
from tinypred.training.config import TrainConfig
from tinypred.training.step import Split, train_step

CPU = torch.device("cpu")
log = logging.getLogger(__name__)


class Ticker:
    """Plain progress lines for a long check (logs and CI read them; a terminal too): at most one every
    `every` seconds, `what: 120/300 steps, 85 steps/s, ETA 2 s` (no total: no ETA)."""

    def __init__(self, what: str, total: int | None = None, every: float = 5.0) -> None:
        self.what, self.total, self.every = what, total, every
        self.done = 0
        self.start = self.last = time.perf_counter()

    def __call__(self, steps: int = 1) -> None:
        self.done += steps
        now = time.perf_counter()
        if now - self.last < self.every:
            return
        self.last = now
        rate = self.done / (now - self.start)
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        eta = f", ETA {(self.total - self.done) / rate:.0f} s" if self.total else ""
        log.info("%s: %s steps, %.0f steps/s%s", self.what, count, rate, eta)


@dataclass
class CheckResult:
    """What a check found. `numbers` holds only JSON types (floats, ints, bools, strings, lists, dicts)."""

    name: str
    passed: bool
    verdict: str  # one or two sentences, plain words
    numbers: dict[str, Any]
    figure: Path | None  # out_dir / f"{name}.png", or None without an out_dir

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (for `<out>/<check>.json`)."""
        return {
            "name": self.name,
            "passed": self.passed,
            "verdict": self.verdict,
            "numbers": self.numbers,
            "figure": str(self.figure) if self.figure else None,
        }


def make_result(
    name: str,
    passed: bool,
    verdict: str,
    numbers: dict[str, Any],
    out_dir: Path | None,
    draw: Callable[[], plt.Figure],
) -> CheckResult:
    """Bundle a check's findings; draw its figure into out_dir/name.png only when out_dir is given."""
    figure = save(draw(), Path(out_dir) / f"{name}.png") if out_dir is not None else None
    return CheckResult(name, passed, verdict, numbers, figure)


def sample_split(ds: Dataset, name: str, n: int | None = None) -> Split:
    """The first n samples of a split (all of them when n is None) as normalised CPU tensors."""
    scenes = ds.split(name)
    if len(scenes) == 0:
        raise TinypredError(f"{ds.path}: the {name} split is empty; the diagnostics need samples in it")
    return Split.of(scenes.subset(slice(0, n)), ds.normalizer, CPU)


def training_stream(
    model: nn.Module, opt: torch.optim.Optimizer, split: Split, cfg: TrainConfig, ticker: Ticker
) -> Iterator[float]:
    """Endless training on shuffled mini-batches of `split` (order seeded by cfg.seed), one `train_step`
    per `next`, which gives that step's loss and ticks `ticker`. The caller decides when to stop, change
    the lr or look."""
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(split.x)
    b = min(cfg.batch_size, n)
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - b + 1, b):  # whole batches only: every step sees b samples
            idx = perm[i : i + b]
            loss = train_step(model, opt, split.x[idx], split.y[idx], cfg)[0].item()
            ticker()
            yield loss


def log10_ratio(a: float, b: float) -> float:
    """log10(a / b) for norms a, b >= 0, each floored at 1e-300 so that an underflow to 0 stays finite."""
    return math.log10(max(a, 1e-300)) - math.log10(max(b, 1e-300))
