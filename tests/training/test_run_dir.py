"""Run directories that cannot be mixed up: one training at a time, a resume only of the same run,
damaged files caught, a restart when there is nothing to resume, mid-epoch checkpoints resumed exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from safetensors import safe_open
from safetensors.torch import load_file

from tinypred.config import load_config
from tinypred.data import dataset
from tinypred.data.scene_config import SceneConfig
from tinypred.errors import TinypredError
from tinypred.fileio import write_json
from tinypred.predictors.model import ModelConfig
from tinypred.predictors.model_file import load_model, save_model
from tinypred.training import TrainConfig, train
from tinypred.training.checkpoint import CHECKPOINT_FILE
from tinypred.training.run_dir import identity, locked

TINY = TrainConfig(epochs=2, batch_size=64, device="cpu", model=ModelConfig(width=16, depth=1))


@pytest.fixture(scope="module")
def ds(small_dataset):
    return dataset.load(small_dataset)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    tensors = load_file(run / CHECKPOINT_FILE)
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "optim."))}


def test_a_second_training_into_a_locked_directory_is_refused(small_dataset, tmp_path):
    run = tmp_path / "run"
    with locked(run):  # a training in progress holds the lock
        proc = run_cli("train", "--data", str(small_dataset), "--out", str(run), "--epochs", "1")
    assert proc.returncode == 1 and "in use by another training (pid" in proc.stderr
    assert f"pid {os.getpid()}" in proc.stderr and "Traceback" not in proc.stderr
    assert not (run / "config.json").exists()  # it wrote nothing


def test_the_lock_of_a_killed_training_is_released(small_dataset, tmp_path):
    run = tmp_path / "run"
    code = (
        "import pathlib, time\nfrom tinypred.training.run_dir import locked\n"
        f"with locked(pathlib.Path({str(run)!r})):\n    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while not (run / ".lock").exists() or not (run / ".lock").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(TinypredError, match="in use"), locked(run):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with locked(run):  # the kernel released it with the process
        pass


def test_resume_refuses_other_data_another_seed_and_another_model(ds, tmp_path):
    run = tmp_path / "run"
    train(ds, TINY.model_copy(update={"epochs": 1}), run, progress=False)
    other = dataset.make(SceneConfig(), 1200, 300, 300, seed=8)
    with pytest.raises(TinypredError, match=r"resume: .* was trained on other data .*fingerprint"):
        train(other, TINY.model_copy(update={"epochs": 1}), run, resume=True, progress=False)
    with pytest.raises(TinypredError, match=r"was started with seed = 0; this call asks for 3"):
        train(ds, TINY.model_copy(update={"epochs": 1, "seed": 3}), run, resume=True, progress=False)
    wider = TINY.model_copy(update={"epochs": 1, "model": ModelConfig(width=32, depth=1)})
    with pytest.raises(TinypredError, match=r"model\.width = 16; this call asks for 32"):
        train(ds, wider, run, resume=True, progress=False)
    # The checkpoint interval decides when the run is saved, not what it computes: free to change.
    longer = TINY.model_copy(update={"epochs": 1, "checkpoint_every": "7"})
    assert train(ds, longer, run, resume=True, progress=False).started == "resumed at step 19"


def test_a_cli_resume_reuses_the_runs_own_settings(small_dataset, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--data", str(small_dataset), "--out", str(run)]
    run_cli(
        *args,
        "--epochs",
        "1",
        "--set",
        "model.width=16",
        "--set",
        "model.depth=1",
        "--device",
        "cpu",
        check=True,
    )
    proc = run_cli(*args, "--resume", check=True)  # no flag repeated
    assert "resumed at step" in proc.stdout
    clash = run_cli(*args, "--resume", "--epochs", "4")
    assert (
        clash.returncode == 1
        and "--resume: " in clash.stderr
        and "epochs = 1; this call asks for 4" in clash.stderr
    )
    # The run's own config.json is a valid --config (its settings are under "train").
    assert load_config(TrainConfig, run / "config.json").model.width == 16


def test_without_a_checkpoint_a_resume_starts_from_scratch_and_says_so(ds, tmp_path):
    run = tmp_path / "run"
    cfg = TINY.model_copy(update={"epochs": 1})
    run.mkdir()
    write_json(run / "config.json", identity(ds, cfg))  # what a kill before the first checkpoint leaves
    (run / "tb").mkdir()
    stale = run / "tb" / "events.out.tfevents.1.killed"  # ... with its curves so far
    stale.write_bytes(b"")
    result = train(ds, cfg, run, resume=True, progress=False)
    assert result.started.startswith("no checkpoint yet") and len(result.history) == 1
    # The new run's curves alone: TensorBoard would draw the killed attempt's beside them as one run.
    assert not stale.exists() and list((run / "tb").glob("events.out.tfevents.*"))
    # A directory no run of ours was killed in (no config.json): its event files are someone else's.
    shared = tmp_path / "shared"
    (shared / "tb").mkdir(parents=True)
    (shared / "tb" / "events.out.tfevents.2.other").write_bytes(b"")
    train(ds, cfg, shared, progress=False)
    assert (shared / "tb" / "events.out.tfevents.2.other").exists()
    reference = train(ds, cfg, tmp_path / "straight", progress=False)
    assert all(
        torch.equal(a, b)
        for a, b in zip(_weights(run).values(), _weights(reference.out_dir).values(), strict=True)
    )


@pytest.mark.parametrize("every", ["0", "0min"])
def test_a_checkpoint_interval_of_0_checkpoints_at_the_end_of_each_epoch_only(ds, tmp_path, every):
    cfg = TINY.model_copy(update={"epochs": 1, "checkpoint_every": every})
    result = train(ds, cfg, tmp_path / "run", progress=False)
    with safe_open(str(tmp_path / "run" / CHECKPOINT_FILE), framework="pt") as f:
        state = json.loads(f.metadata()["state"])
    assert len(result.history) == 1 and state["epoch_step"] == 0 and state["epoch"] == 1


def test_a_mid_epoch_kill_resumes_to_the_same_weights(small_dataset, tmp_path):
    cfg = TINY.model_copy(update={"batch_size": 8, "checkpoint_every": "5"})  # 150 steps per epoch
    config = tmp_path / "cfg.json"
    config.write_text(cfg.model_dump_json())
    args = ["train", "--data", str(small_dataset), "--config", str(config)]
    run_cli(*args, "--out", str(tmp_path / "straight"), check=True)
    run = tmp_path / "killed"
    command = [sys.executable, "-c", "from tinypred.cli import main; main()", *args, "--out", str(run)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    step = 0
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with safe_open(str(run / CHECKPOINT_FILE), framework="pt") as f:
                step = json.loads(f.metadata()["state"])["epoch_step"]
        except Exception:  # not written yet, or being replaced: try again
            step = 0
        if step:  # a checkpoint from the middle of an epoch: kill now
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert step > 0, "the training ended before a mid-epoch checkpoint could be caught"
    resumed = run_cli(*args, "--out", str(run), "--resume", check=True)
    lines = resumed.stdout.splitlines()
    said = next(i for i, line in enumerate(lines) if "resumed at step" in line)
    assert said < next(i for i, line in enumerate(lines) if line.startswith("epoch ")), (
        lines
    )  # before, not after
    a, b = _weights(tmp_path / "straight"), _weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_damaged_files_are_caught_not_used(ds, tmp_path):
    run = tmp_path / "run"
    train(ds, TINY.model_copy(update={"epochs": 1}), run, progress=False)
    model = run / "model.safetensors"
    raw = bytearray(model.read_bytes())
    raw[-5] ^= 0x40  # one bit of one weight
    model.write_bytes(bytes(raw))
    with pytest.raises(TinypredError, match=r"model\.safetensors: damaged"):
        load_model(model)
    ckpt = run / CHECKPOINT_FILE
    raw = bytearray(ckpt.read_bytes())
    raw[-9] ^= 0x01
    ckpt.write_bytes(bytes(raw))
    with pytest.raises(TinypredError, match=r"checkpoint\.safetensors: damaged"):
        train(ds, TINY.model_copy(update={"epochs": 1}), run, resume=True, progress=False)
    # A file written whole but with an unusable normaliser is refused too.
    good = train(ds, TINY.model_copy(update={"epochs": 1}), tmp_path / "good", progress=False)
    m = load_model(good.out_dir / "model.safetensors")
    bad = type(m.normalizer)(m.normalizer.mean, m.normalizer.std * 0)
    save_model(tmp_path / "zero.safetensors", m.model, bad, m.config, m.info, ds.dt)
    with pytest.raises(TinypredError, match="normaliser: std must be > 0"):
        load_model(tmp_path / "zero.safetensors")


def test_divergence_names_the_layer_and_a_useless_model_is_flagged(small_dataset, tmp_path):
    proc = run_cli(
        "train",
        "--data",
        str(small_dataset),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "2",
        "--lr",
        "10",
        "--set",
        "grad_clip=0",
        "--set",
        "model.width=16",
        "--set",
        "model.depth=1",
    )
    said = proc.stderr
    if proc.returncode == 1:  # it diverged: the step, the epoch counted from 1, the layer, what is kept
        assert "non-finite" in said and "(epoch " in said and "parameters)" in said, said
    else:  # it did not diverge, but learned nothing: a loud warning, not silence
        assert "worse than constant velocity" in said, said
    assert "Traceback" not in said


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "nan"], "--lr: Input should be a finite number"),
        (["--epochs", "0"], "--epochs: Input should be greater than or equal to 1"),
        (["--set", "epochs=true"], "--set epochs: Input should be a valid integer"),
        (["--checkpoint-every", "often"], "--checkpoint-every: expected a number of steps"),
    ],
)
def test_flag_errors_name_the_flag(small_dataset, tmp_path, flags, message):
    proc = run_cli("train", "--data", str(small_dataset), "--out", str(tmp_path / "run"), *flags)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_stale_temporary_of_a_killed_write_is_removed_by_the_next(tmp_path):
    target = tmp_path / "x.json"
    dead = tmp_path / ".x.json.999999999.abcd.tmp"  # no process has that id
    alive = tmp_path / f".x.json.{os.getpid()}.efgh.tmp"  # this one's writer is still running
    dead.write_text("half")
    alive.write_text("half")
    write_json(target, {"a": 1})
    assert not dead.exists() and alive.exists() and json.loads(target.read_text()) == {"a": 1}
