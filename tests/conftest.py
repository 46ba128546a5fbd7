"""Shared fixtures: small real datasets written by the real code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinypred.data import dataset
from tinypred.data.scene_config import SceneConfig

os.environ.setdefault("MPLBACKEND", "Agg")
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # Each of the workers shares the cores with the others: one torch thread apiece (and in every CLI
    # subprocess, through OMP_NUM_THREADS), not each as many as there are cores, which oversubscribes
    # them and slows small-op work several times over.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A dataset directory of 1200/300/300 scenes, seed 7, written by `dataset.save`."""
    out = tmp_path_factory.mktemp("data") / "small"
    dataset.save(dataset.make(SceneConfig(), 1200, 300, 300, seed=7), out)
    return out


@pytest.fixture(scope="session")
def tiny_run(small_dataset, tmp_path_factory) -> Path:
    """A run directory of a tiny model (1 epoch, 2 hidden layers of 32) trained on `small_dataset`."""
    from tinypred.predictors.model import ModelConfig
    from tinypred.training import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny") / "run"
    cfg = TrainConfig(epochs=1, batch_size=128, device="cpu", model=ModelConfig(width=32, depth=2))
    train(dataset.load(small_dataset), cfg, out)
    return out


def train_killed_after_first_epoch(ds, cfg, out: Path) -> None:
    """Train into `out` and stop it (as a kill would) right after the first epoch's checkpoint."""
    from tinypred.training import train

    class Killed(Exception):
        pass

    def kill(row: dict) -> None:
        if row["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        train(ds, cfg, out, on_epoch=kill)


def run_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    """Run the real `tinypred` console entry point in a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-c", "from tinypred.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tinypred {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc
