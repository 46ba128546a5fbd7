"""The `tinypred data` commands as a user runs them: real subprocesses, real files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from conftest import run_cli


def test_generate_then_inspect_with_a_plot(tmp_path):
    out = tmp_path / "ds"
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("hint_strength = 0.5\n")
    run_cli(
        "data",
        "generate",
        "--out",
        str(out),
        "--n-train",
        "300",
        "--n-val",
        "50",
        "--n-test",
        "50",
        "--seed",
        "3",
        "--config",
        str(cfg),
        "--shard-size",
        "128",
        check=True,
    )
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["hint_strength"] == 0.5 and meta["counts"] == {"train": 300, "val": 50, "test": 50}
    assert meta["splits"]["train"]["shards"] == [128, 128, 44] and meta["splits"]["val"]["shards"] == [50]
    proc = run_cli("data", "inspect", str(out), "--plot", str(tmp_path / "g.png"), check=True)
    assert "intersection" in proc.stdout and "lane_change" in proc.stdout
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_user_errors_are_one_line_and_write_nothing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"intersection_priors": {"straight": 0.9, "left": 0.3, "right": 0.3}}')
    cases = [
        (["data", "generate", "--out", str(tmp_path / "a"), "--config", str(bad)], "sum to 1"),
        (["data", "generate", "--out", str(tmp_path / "b"), "--n-train", "-4"], "--n-train"),
        (["data", "generate", "--out", str(tmp_path / "b"), "--shard-size", "0"], "--shard-size: expected"),
        (["data", "inspect", str(tmp_path / "missing")], "not a dataset directory"),
    ]
    for args, message in cases:
        proc = run_cli(*args)
        assert proc.returncode == 1, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert proc.stderr.strip().count("\n") == 0
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert run_cli("data", "generate").returncode == 2  # a missing required flag is a usage error


def test_a_generation_stopped_by_sigterm_leaves_nothing_behind(tmp_path):
    # What Slurm and `timeout` send: the half-written dataset (a hidden temporary directory) is removed.
    out = tmp_path / "ds"
    command = [sys.executable, "-c", "from tinypred.cli import main; main()", "data", "generate"]
    command += ["--out", str(out), "--n-train", "300000", "--n-val", "10", "--n-test", "10"]  # 5 shards
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(tmp_path.glob(".ds.tmp-*/train/00000")) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the first shard is being written
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    said = "stopped by SIGTERM before it finished; an output it was still writing was removed"
    assert stderr == f"tinypred: error: {said}\n"
    assert list(tmp_path.iterdir()) == []
