"""Every command and snippet of the README runs as written, in order, in a fresh folder.

The README's fenced ```bash and ```python blocks run top to bottom in one temporary folder that holds only
`.venv` (this interpreter's environment) and the repository's `examples/`: the state a reader has after
`make install`. A block is skipped only where an HTML comment right above it says
`<!-- not run by tests/test_readme.py: <why> -->`; the AV2 block gets its `av2/` folder first, as its
text asks (the AV2 data on disk), written by tinypred's own exporter.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(?:<!--(?P<note>[^>]*)-->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)


def blocks() -> list[tuple[str, str, str]]:
    """(language, body, the comment right above it or "") of every fenced block, in order."""
    text = (ROOT / "README.md").read_text()
    return [(m["lang"], m["body"], (m["note"] or "").strip()) for m in BLOCK.finditer(text)]


def test_every_block_is_run_or_says_why_not():
    found = blocks()
    assert found
    for lang, body, note in found:
        run = lang in ("bash", "python") and not note.startswith("not run by")
        # Not run: a tree (no language) or a block whose comment says why (a synopsis, a file's contents).
        assert run or lang == "" or re.fullmatch(r"not run by tests/test_readme\.py: .{10,}", note), body


def write_av2(folder: Path, env: dict[str, str]) -> None:
    """av2/{train,val,test}/<id>/ as on disk after downloading AV2: 5 s + 6 s synthetic scenes, exported."""
    config = folder / "av2_scenes.toml"
    config.write_text("history_steps = 50\nfuture_steps = 60\n")
    sh = f"""
    tinypred data generate --out av2_src --n-train 200 --n-val 50 --n-test 50 --seed 5 --config {config}
    for split in train val test; do tinypred data export-av2 av2_src --split $split --out av2/$split; done
    rm -r av2_src {config}
    """
    subprocess.run(["bash", "-euc", sh], cwd=folder, env=env, check=True, capture_output=True, timeout=300)


@pytest.mark.slow
def test_the_readme_runs_as_written_in_order(tmp_path):
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").exists():
        pytest.skip(f"{venv} is not a virtual environment: the README's `. .venv/bin/activate` needs one")
    (tmp_path / ".venv").symlink_to(venv)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    # What `. .venv/bin/activate` leaves in the reader's shell for the blocks after the first.
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    ran = 0
    for lang, body, note in blocks():
        if note.startswith("not run by") or lang not in ("bash", "python"):
            continue
        if "writes av2/ first" in note:
            write_av2(tmp_path, env)
        command = ["bash", "-euo", "pipefail", "-c", body] if lang == "bash" else [sys.executable, "-c", body]
        proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        failed = f"README block failed:\n{body}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        assert proc.returncode == 0, failed
        ran += 1
    assert ran >= 3  # the first hour, Argoverse 2 and the Python API at least
    # What the first hour says it makes, it made.
    for made in ("runs/mlp/model.safetensors", "runs/mlp/eval_ds_test.json", "runs/mlp/predictions.parquet"):
        assert (tmp_path / made).is_file(), made
