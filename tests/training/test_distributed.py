"""torchrun: two processes (gloo, real collectives) train to the weights of one process with the same
global batch, resume a run to them, and stop together on bad data with one line from rank 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
import torch
from conftest import train_killed_after_first_epoch
from safetensors.torch import load_file

from tinypred.data import dataset
from tinypred.data.scene_config import SceneConfig
from tinypred.errors import TinypredError
from tinypred.predictors.model import ModelConfig
from tinypred.training import TrainConfig, distributed, train
from tinypred.training.step import uses_cuda_graphs

# 211 samples: train shards of 30 and a last one of 1; global batches of 21 (11 and 10 a rank, uneven)
# and a last one of 1 sample (a stand-in of weight 0 on the other rank): 11 steps an epoch, 22 in all.
CFG = TrainConfig(
    epochs=2, batch_size=21, device="cpu", model=ModelConfig(width=32, depth=2), histogram_every=0
)
FLAGS = ["--epochs", "2", "--batch-size", "21", "--device", "cpu", "--set", "model.width=32"]
FLAGS += ["--set", "model.depth=2", "--set", "histogram_every=0", "--mmap"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "ds"
    dataset.save(dataset.make(SceneConfig(), 211, 40, 0, seed=5), out, shard_size=30)
    return out


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The same run in this one process (in memory, resident batches)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    train(dataset.load(data), CFG, out)
    return out


def torchrun(*args: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env_vars}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.run(
        [*command, "-m", "tinypred", *args], capture_output=True, text=True, timeout=300, env=env
    )


def assert_same_weights(a, b, atol=1e-5):
    for name in ("model.safetensors", "checkpoint.safetensors"):
        x, y = load_file(a / name), load_file(b / name)
        keys = [k for k in x if x[k].is_floating_point() and not k.startswith("rng.")]
        assert keys and set(keys) <= set(y), name
        for k in keys:
            torch.testing.assert_close(
                x[k], y[k], atol=atol, rtol=0, msg=lambda m, n=name, k=k: f"{n}: {k}: {m}"
            )


def test_two_processes_train_to_the_weights_of_one(data, reference, tmp_path):
    run = tmp_path / "run"
    proc = torchrun("train", "--data", str(data), "--out", str(run), *FLAGS)
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout.splitlines()
    assert "2 processes (gloo); rank 0 writes and prints" in said and sum("epoch 2/2" in s for s in said) == 1
    assert_same_weights(reference, run)
    assert not (run / "checkpoint.safetensors.1").exists() and sorted(
        p.name for p in run.iterdir()
    ) == sorted(p.name for p in reference.iterdir())


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_a_run_resumed_on_two_processes_ends_as_the_uninterrupted_one(data, reference, tmp_path, compiled):
    """Compiled: the second epoch's steps (batches of 11, 10 and a stand-in of 1 a rank) run through
    torch.compile under DDP, after an eager first epoch (--compile may change on a resume), and still end
    at the eager single process's weights."""
    run, kernels = tmp_path / "run", tmp_path / "inductor"
    train_killed_after_first_epoch(dataset.load(data), CFG, run)
    flags = ["--resume", "--mmap", *(["--compile"] if compiled else [])]
    proc = torchrun(
        "train", "--data", str(data), "--out", str(run), *flags, TORCHINDUCTOR_CACHE_DIR=str(kernels)
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{run}: resumed at step 11" in proc.stdout
    assert ("the first steps compile" in proc.stdout) == compiled
    assert any(kernels.rglob("*.py")) == compiled  # inductor wrote the step's kernels: it ran compiled
    assert_same_weights(reference, run)


def test_cuda_graphs_only_on_nvidia_cuda_in_one_process():
    assert uses_cuda_graphs(torch.device("cuda"), distributed=False) == (torch.version.hip is None)
    assert not uses_cuda_graphs(torch.device("cuda"), distributed=True)
    assert not uses_cuda_graphs(torch.device("cpu"), distributed=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine must lack CUDA")
def test_asking_torchrun_for_a_device_this_machine_lacks_is_a_user_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it: before any process group
    with (
        pytest.raises(TinypredError, match="cuda is not available on this machine"),
        distributed.from_env("cuda"),
    ):
        pass
    assert not torch.distributed.is_initialized()


def test_more_processes_on_a_machine_than_its_gpus_is_a_user_error_on_rank_0(monkeypatch):
    # Rank 0 (LOCAL_RANK 0 has a GPU) must say it: the others exit silently, and it would wait for them.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for name, value in {"WORLD_SIZE": "3", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "3"}.items():
        monkeypatch.setenv(name, value)
    with (
        pytest.raises(TinypredError, match="started 3 processes on this machine, which has 2 GPU"),
        distributed.from_env("cuda"),
    ):
        pass
    assert not torch.distributed.is_initialized()


LONG = ["--epochs", "12", *FLAGS[2:]]  # long enough that a SIGTERM sent after epoch 1 lands mid-run


@pytest.fixture(scope="module")
def long_reference(data, tmp_path_factory):
    # On one thread, as the runs it is compared with: a GEMM of a few rows (training encodes only the
    # neighbour slots present) may sum in another order on two threads than on one.
    out, threads = tmp_path_factory.mktemp("long") / "run", torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(dataset.load(data), CFG.model_copy(update={"epochs": 12}), out)
    finally:
        torch.set_num_threads(threads)
    return out


def stopped_by(command: list[str], sig: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
    """Run command, send it `sig` once its output says epoch 1 is done; (exit code, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:
            if "epoch 1/12" in line:
                proc.send_signal(sig)
                break
        proc.stdout.read()
        return proc.wait(timeout=120), proc.stderr.read()
    finally:
        proc.kill()


def test_sigterm_stops_every_rank_after_one_step_and_two_processes_resume_it(data, tmp_path):
    # torchrun forwards SIGTERM (a Slurm preemption, a kill) to its workers: they agree on the step inside
    # its all_reduce, checkpoint there, and a 2-process resume ends with the bits of the uninterrupted
    # 2-process run (against one process it would be 1e-5 at 22 steps, more over 132).
    whole, run = tmp_path / "whole", tmp_path / "run"
    proc = torchrun("train", "--data", str(data), "--out", str(whole), *LONG)
    assert proc.returncode == 0, proc.stderr
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    code, err = stopped_by(
        [*launch, "-m", "tinypred", "train", "--data", str(data), "--out", str(run), *LONG]
    )
    stopped = re.findall(
        r"tinypred: error: stopped by SIGTERM after step (\d+) \(epoch (\d+)\); checkpoint", err
    )
    assert code != 0 and len(stopped) == 1, err  # said once, by rank 0
    step = int(stopped[0][0])
    assert 11 <= step < 132
    proc = torchrun("train", "--data", str(data), "--out", str(run), "--resume", "--mmap")
    assert proc.returncode == 0, proc.stderr
    assert f"{run}: resumed at step {step}" in proc.stdout
    assert_same_weights(whole, run, atol=0)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_or_ctrl_c_stops_one_process_with_a_checkpoint(data, long_reference, tmp_path, sig, code):
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "tinypred", "train", "--data", str(data), "--out", str(run), *LONG]
    exit_code, err = stopped_by(cli, sig)
    step = re.fullmatch(
        rf"tinypred: error: stopped by {sig.name} after step (\d+) \(epoch \d+\); checkpoint.*\n", err
    )
    assert exit_code == code and step, err
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*cli, "--resume"], capture_output=True, text=True, timeout=300, env=one_thread)
    assert proc.returncode == 0 and f"resumed at step {step[1]}" in proc.stdout, proc.stderr
    assert_same_weights(long_reference, run, atol=0)


def _damaged(data, tmp_path, shard="00004", row=17):
    """A copy of the dataset with an infinite lane point in one sample of a shard."""
    import shutil

    import numpy as np

    d = tmp_path / "ds"
    shutil.copytree(data, d)
    file = d / "train" / shard / "lanes.npy"
    lanes = np.load(file)
    lanes[row, 0, 0, 0] = np.inf
    np.save(file, lanes)
    return d


def test_the_cli_stops_every_rank_with_one_line_from_rank_0(data, tmp_path):
    d = _damaged(data, tmp_path)
    proc = torchrun("train", "--data", str(d), "--out", str(tmp_path / "run"), *FLAGS)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("tinypred: error:")]
    assert errors == [f"tinypred: error: {d}/train/00004: array 'lanes' contains NaN or Inf"], proc.stderr
    assert proc.returncode != 0 and "[rank1]" not in proc.stderr  # rank 1 stopped with it, silently


# Every rank trains; each prints what it stopped with. A bad row, met in the loop by whichever rank reads
# it (past the first 4096, which rank 0 reads for validation), and a non-finite loss stop all alike.
SCRIPT = """
import dataclasses, sys
import numpy as np
from tinypred.data import dataset
from tinypred.errors import TinypredError
from tinypred.predictors.model import ModelConfig
from tinypred.training import TrainConfig, distributed, train

cfg = TrainConfig(epochs=1, batch_size=100, device="cpu", model=ModelConfig(width=8, depth=1))
with distributed.from_env("cpu") as group:
    bad, good = (dataset.load(p, mmap=True) for p in sys.argv[1:3])
    std = good.normalizer.std.copy()
    std[0] = 1e-45  # the oldest history x: any value but 0 over 1e-45 overflows float32
    blown = dataclasses.replace(good, normalizer=dataclasses.replace(good.normalizer, std=std))
    for ds, out in ((bad, "bad"), (blown, "blown")):
        try:
            train(ds, cfg, f"{sys.argv[3]}/{out}")
        except TinypredError as e:  # a file per rank: two processes' lines on one pipe can interleave
            with open(f"{sys.argv[3]}/said_{group.rank}.txt", "a") as f:
                print(f"rank {group.rank} of {group.world}: {e}", file=f)
"""


def test_bad_rows_or_a_non_finite_loss_on_any_rank_stop_every_rank_alike(tmp_path):
    data = tmp_path / "larger"
    dataset.save(dataset.make(SceneConfig(), 4300, 30, 0, seed=6), data, shard_size=1000)
    script = tmp_path / "ranks.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    args = [str(script), str(_damaged(data, tmp_path, "00004", 150)), str(data), str(tmp_path)]
    proc = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    files = (tmp_path / f"said_{rank}.txt" for rank in (0, 1))
    said = sorted(line for file in files for line in file.read_text().splitlines())
    assert len(said) == 4, said
    bad = "/train/00004: array 'lanes' contains NaN or Inf"
    assert [s.split(": ", 1)[0] for s in said[::2]] == ["rank 0 of 2", "rank 1 of 2"]
    for first, second in (said[0::2], said[1::2]):  # the same words on both ranks
        assert first.split(": ", 1)[1] == second.split(": ", 1)[1]
    assert sum(bad in s for s in said) == 2
    assert sum("training stopped at step 0 (epoch 1): non-finite loss" in s for s in said) == 2
