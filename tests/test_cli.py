"""The command line's global options: --version, --threads and the thread default."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import run_cli

import tinypred
from tinypred.cli.app import default_threads


def test_version():
    proc = run_cli("--version", check=True)
    assert proc.stdout == f"tinypred {tinypred.__version__}\n"


def test_threads_default_to_omp_num_threads_else_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    for unset in ("", "0", "many"):  # not a positive count: as if unset
        monkeypatch.setenv("OMP_NUM_THREADS", unset)
        assert default_threads() == len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() == len(os.sched_getaffinity(0))


def test_a_long_command_says_where_it_runs_on_how_many_threads(small_dataset, tmp_path):
    proc = run_cli("--threads", "1", "diagnose", "init", "--data", str(small_dataset), "--out", str(tmp_path))
    assert proc.returncode == 0 and proc.stdout.startswith("device cpu, 1 CPU thread\n")
    bad = run_cli("--threads", "0", "gradcheck")
    assert bad.returncode == 2 and "--threads" in bad.stderr


def test_help_lists_every_command_whole():
    """click cuts a command's help at 45 characters with "..."; every command's first sentence shows whole."""
    for args in (("--help",), ("data", "--help")):
        listing = run_cli(*args, check=True).stdout.split("Commands:")[1]
        assert "..." not in listing and "Argoverse" in listing


def test_the_data_commands_start_without_torch(tmp_path):
    """torch takes 2 s to import: the command line loads it only for a command that uses it, and still
    gives it the threads asked for."""
    probe = "import atexit, sys; atexit.register(lambda: print('torch:', 'torch' in sys.modules)); "

    def run(*args: str) -> str:
        code = probe + "from tinypred.cli import main; main()"
        command = [sys.executable, "-c", code, *args]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    out = tmp_path / "ds"
    for args in (
        ("data", "generate", "--out", str(out), "--n-train", "40", "--n-val", "8", "--n-test", "8"),
        ("data", "verify", str(out)),
        ("data", "inspect", str(out)),
        ("--version",),
    ):
        assert run(*args).endswith("torch: False\n"), args
    threads = "import torch; print('threads', torch.get_num_threads())"
    proc = subprocess.run(
        [sys.executable, "-c", f"from tinypred.cli.app import use_threads; use_threads(1); {threads}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.stdout == "threads 1\n", proc.stderr


def test_under_torchrun_only_rank_0_prints_usage_errors_and_help():
    # Every rank parses the same flags: a typo or --help printed by each of 8 processes is 8 copies.
    for args, code in (
        (["train", "--bogus", "1"], 2),
        (["train", "--loss", "mse"], 2),
        (["train", "--help"], 0),
    ):
        runs = {
            rank: subprocess.run(
                [sys.executable, "-m", "tinypred", *args],
                capture_output=True,
                text=True,
                env={**os.environ, "RANK": rank, "WORLD_SIZE": "2"},
                timeout=60,
            )
            for rank in ("0", "1")
        }
        assert runs["0"].returncode == runs["1"].returncode == code, args
        assert (runs["0"].stdout + runs["0"].stderr).strip(), args  # rank 0 says it
        assert runs["1"].stdout == runs["1"].stderr == "", (args, runs["1"].stderr)

    # Only a training's ranks: another command (a script's subprocess under torchrun, say) still prints.
    other = subprocess.run(
        [sys.executable, "-m", "tinypred", "--threads", "1", "--version"],
        capture_output=True,
        text=True,
        env={**os.environ, "RANK": "1", "WORLD_SIZE": "2"},
        timeout=60,
    )
    assert other.returncode == 0 and other.stdout.startswith("tinypred "), other.stderr
