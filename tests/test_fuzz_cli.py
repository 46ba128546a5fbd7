"""Every command against bad input: bad paths, damaged files, bad config values, NaN/inf/huge data.

The rule, checked for every case: exit code 1 and one line `tinypred: error: ...` on stderr naming the
path, field or flag (exit code 2 and the flag named where typer/click itself refuses the command line),
never a traceback, and no file that was there changed or removed and none added (half-written). Each
case runs the real CLI in a subprocess on copies of one small dataset and one tiny trained run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from safetensors import safe_open

from tinypred.data import dataset
from tinypred.data.av2.exporter import export_av2
from tinypred.data.scene_config import SceneConfig
from tinypred.predictors.model import ModelConfig
from tinypred.predictors.model_file import read_safetensors, write_safetensors
from tinypred.training import TrainConfig, train

Damage = Callable[[Path], None]
SHARD = "ds/train/00000"
FUZZ = settings(
    max_examples=4,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure is reproducible
    phases=(Phase.explicit, Phase.generate),  # no shrinking: every example is a subprocess
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    """A dataset of 300/100/100 scenes, a tiny run trained on it, 4 of its scenes as an AV2 split, and
    a small dataset of AV2's shape (50 + 60 steps) to submit."""
    root = tmp_path_factory.mktemp("fuzz")
    ds = dataset.make(SceneConfig(), 300, 100, 100, seed=1)
    dataset.save(ds, root / "ds")
    ds = dataset.load(root / "ds")
    train(
        ds,
        TrainConfig(epochs=1, device="cpu", model=ModelConfig(width=16, depth=1)),
        root / "run",
        progress=False,
    )
    export_av2(ds.val.subset(slice(0, 4)), root / "av2" / "val")
    dataset.save(
        dataset.make(SceneConfig(history_steps=50, future_steps=60), 30, 5, 5, seed=2), root / "av2ds"
    )
    return root


@pytest.fixture
def w(assets, tmp_path) -> Path:
    """A workspace: copies of the assets, a plain file, an empty and a foreign directory, a good JSON file."""
    for name in ("ds", "run", "av2", "av2ds"):
        shutil.copytree(assets / name, tmp_path / name)
    (tmp_path / "plain.txt").write_text("not a dataset\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine\n")
    (tmp_path / "good.json").write_text('{"keep": true}\n')
    return tmp_path


# Damage: each builds a function that damages a workspace; paths are relative to it.


def as_dir(rel: str) -> Damage:
    """A directory in place of the file."""

    def apply(w: Path) -> None:
        (w / rel).unlink()
        (w / rel).mkdir()

    return apply


def mkdir(rel: str) -> Damage:
    return lambda w: (w / rel).mkdir()


def cut(rel: str) -> Damage:
    """The file truncated to half its size."""

    def apply(w: Path) -> None:
        data = (w / rel).read_bytes()
        (w / rel).write_bytes(data[: len(data) // 2])

    return apply


def put(rel: str, content: str | bytes) -> Damage:
    def apply(w: Path) -> None:
        if isinstance(content, str):
            (w / rel).write_text(content)
        else:
            (w / rel).write_bytes(content)

    return apply


def copy(src: str, dst: str) -> Damage:
    """Another file (of another type) in place of `dst`."""
    return lambda w: shutil.copyfile(w / src, w / dst)


def remove(rel: str) -> Damage:
    return lambda w: shutil.rmtree(w / rel) if (w / rel).is_dir() else (w / rel).unlink()


def seq(*damages: Damage) -> Damage:
    def apply(w: Path) -> None:
        for damage in damages:
            damage(w)

    return apply


def json_set(rel: str, key: str, value: object) -> Damage:
    """Set a dotted key (list items by index) of a JSON file; NaN and Infinity written as `json` does."""

    def apply(w: Path) -> None:
        data = json.loads((w / rel).read_text())
        *parents, leaf = key.split(".")
        node = data
        for k in parents:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[int(leaf) if isinstance(node, list) else leaf] = value
        (w / rel).write_text(json.dumps(data))

    return apply


def npy(rel: str, change: Callable[[np.ndarray], np.ndarray]) -> Damage:
    """Rewrite a .npy array through `change`."""
    return lambda w: np.save(w / rel, change(np.load(w / rel)), allow_pickle=True)


def first(value: float) -> Callable[[np.ndarray], np.ndarray]:
    """The array with its first element set to `value`."""

    def change(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a.reshape(-1)[0] = value
        return a

    return change


def nan_in(rel: str) -> Damage:
    return npy(rel, first(np.nan))


def resealed(rel: str, name: str, value: float) -> Damage:
    """A safetensors file with one tensor's first element set to `value`, its checksum made to match."""

    def apply(w: Path) -> None:
        tensors, meta = read_safetensors(w / rel, "file")
        tensors[name].reshape(-1)[0] = value
        write_safetensors(w / rel, tensors, {k: v for k, v in meta.items() if k != "sha256"})

    return apply


def scenario_file(kind: str, damage: Callable[[str], Damage]) -> Damage:
    """`damage` applied to the first AV2 scenario's parquet ("scenario") or map ("map") file."""

    def apply(w: Path) -> None:
        folder = sorted(p for p in (w / "av2" / "val").iterdir() if p.is_dir())[0]
        pattern = "scenario_*.parquet" if kind == "scenario" else "log_map_archive_*.json"
        damage(str(next(folder.glob(pattern)).relative_to(w)))(w)

    return apply


def flipped_after(rel: str, text: bytes, mask: int) -> Damage:
    """The file with the byte after the first `text` in it XORed with `mask` (one bit: a flip)."""

    def apply(w: Path) -> None:
        data = (w / rel).read_bytes()
        flip(w / rel, data.index(text) + len(text), mask)

    return apply


def flip(path: Path, offset: int, mask: int) -> None:
    """XOR one byte of the file (a negative offset counts from the end)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


@dataclass(frozen=True)
class Case:
    id: str
    args: str  # split on spaces; placeholders {w} (the workspace), {ds} and {run} (its dataset and run)
    names: tuple[str, ...]  # each must appear in the message ("a|b": either)
    damage: Damage | None = None
    code: int = 1


def C(id: str, args: str, *names: str, damage: Damage | None = None, code: int = 1) -> Case:
    """A case: its id, its command line, the names its message must hold, the damage done first."""
    return Case(id, args, names, damage, code)


META = "{ds}/meta.json"
HISTORY = "{ds}/train/00000/history.npy"
MODEL = "{run}/model.safetensors"
GEN = "data generate --n-train 5 --n-val 2 --n-test 2 --out"
INSPECT = "data inspect {ds}"
RESUME = "train --data {ds} --out {run} --resume"
EVAL = "eval {run} --data {ds}"
PREDICT = "predict {run} --data {ds} --out {w}/p.parquet"
SUBMIT = "predict --baseline cv --data {w}/av2ds --format av2 --out"
IMPORT = "data import-av2 {w}/av2 --history 20 --future 30"
EXPORT = "data export-av2 {ds} --out"

# fmt: off
CASES = [
    # data generate: paths, config files (NaN, inf, negative, bool for int, huge, unknown key), flags
    C("generate-out-a-file", GEN + " {w}/plain.txt", "{w}/plain.txt"),
    C("generate-out-under-a-file", GEN + " {w}/plain.txt/ds", "{w}/plain.txt/ds"),
    C("generate-out-under-proc", GEN + " /proc/tinypred/ds", "/proc/tinypred/ds"),
    C("generate-out-a-foreign-dir", GEN + " {w}/foreign", "--out", "{w}/foreign"),
    C("generate-config-missing", GEN + " {w}/o --config {w}/no.toml", "{w}/no.toml"),
    C("generate-config-a-dir", GEN + " {w}/o --config {w}/empty", "{w}/empty"),
    C("generate-config-proc", GEN + " {w}/o --config /proc/self/status", "/proc/self/status"),
    C("generate-config-a-list", GEN + " {w}/o --config {w}/c.json", "{w}/c.json",
      damage=put("c.json", "[1]")),
    C("generate-config-bad-toml", GEN + " {w}/o --config {w}/c.toml", "{w}/c.toml",
      damage=put("c.toml", "dt =")),
    C("generate-config-nan", GEN + " {w}/o --config {w}/c.json", "{w}/c.json", "hint_strength",
      damage=put("c.json", '{"hint_strength": NaN}')),
    C("generate-config-inf", GEN + " {w}/o --config {w}/c.toml", "{w}/c.toml", "style_spread",
      damage=put("c.toml", "style_spread = inf\n")),
    C("generate-config-negative", GEN + " {w}/o --config {w}/c.json", "{w}/c.json", "pos_noise",
      damage=put("c.json", '{"pos_noise": -1}')),
    C("generate-config-bool-for-int", GEN + " {w}/o --config {w}/c.json", "{w}/c.json", "history_steps",
      damage=put("c.json", '{"history_steps": true}')),
    C("generate-config-huge", GEN + " {w}/o --config {w}/c.json", "{w}/c.json", "max_lanes",
      damage=put("c.json", '{"max_lanes": 1e300}')),
    C("generate-config-unknown-key", GEN + " {w}/o --config {w}/c.json", "{w}/c.json", "bogus",
      damage=put("c.json", '{"bogus": 1}')),
    C("generate-config-nan-weight", GEN + " {w}/o --config {w}/c.json", "{w}/c.json", "family_weights",
      damage=put("c.json", '{"family_weights": {"intersection": NaN, "cruise": 1}}')),
    C("generate-n-train-negative", "data generate --out {w}/o --n-train -1", "--n-train"),
    C("generate-n-train-huge", "data generate --out {w}/o --n-train 10000000000000", "--n-train"),
    C("generate-n-val-not-an-int", "data generate --out {w}/o --n-val abc", "--n-val", code=2),
    C("generate-no-out", "data generate --n-train 5", "--out", code=2),
    C("generate-unknown-flag", GEN + " {w}/o --bogus 1", "--bogus", code=2),
    # data inspect: paths; meta.json damaged, wrong type, bad fields; arrays damaged or of a wrong type
    C("inspect-missing", "data inspect {w}/missing", "{w}/missing"),
    C("inspect-a-file", "data inspect {w}/plain.txt", "{w}/plain.txt"),
    C("inspect-under-a-file", "data inspect {w}/plain.txt/ds", "{w}/plain.txt/ds"),
    C("inspect-proc", "data inspect /proc/self", "/proc/self"),
    C("inspect-markup-in-path", "data inspect {w}/a[/b]", "{w}/a[/b]"),
    C("inspect-meta-truncated", INSPECT, META, damage=cut("ds/meta.json")),
    C("inspect-meta-a-dir", INSPECT, META, damage=as_dir("ds/meta.json")),
    C("inspect-meta-a-list", INSPECT, META, damage=put("ds/meta.json", "[]")),
    C("inspect-meta-normalization-x", INSPECT, META, "normalization",
      damage=json_set("ds/meta.json", "normalization", "x")),
    C("inspect-meta-std-overflows", INSPECT, META, "normalization",
      damage=json_set("ds/meta.json", "normalization.std.0", 1e39)),
    C("inspect-meta-seed-abc", INSPECT, META, "seed", damage=json_set("ds/meta.json", "seed", "abc")),
    C("inspect-meta-dt-huge", INSPECT, META, "dt", damage=json_set("ds/meta.json", "dt", 1e308)),
    C("inspect-meta-config-nan", INSPECT, META, "hint_strength",
      damage=json_set("ds/meta.json", "config.hint_strength", float("nan"))),
    C("inspect-meta-shards-bool", INSPECT, META, "splits",
      damage=json_set("ds/meta.json", "splits.train.shards", [True])),
    C("inspect-history-a-text-file", INSPECT, HISTORY, damage=put(f"{SHARD}/history.npy", "1,2\n")),
    C("inspect-history-header-bit-flipped", INSPECT, HISTORY,
      damage=lambda w: flip(w / SHARD / "history.npy", 10, 0xF1)),  # "{" of the header dict -> 0x8a
    C("inspect-history-float64", INSPECT, "{ds}/train/00000", "history",
      damage=npy(f"{SHARD}/history.npy", lambda a: a.astype(np.float64))),
    C("inspect-family-out-of-range", INSPECT, "{ds}/train/00000", "family",
      damage=npy(f"{SHARD}/family.npy", first(99))),
    C("inspect-extra-file", INSPECT, "{ds}/train/00000", damage=put(f"{SHARD}/x.npy", b"")),
    C("inspect-shard-a-file", INSPECT, "{ds}/val/00000",
      damage=seq(remove("ds/val/00000"), put("ds/val/00000", "x"))),
    C("inspect-plot-not-png", INSPECT + " --plot {w}/g.jpg", "--plot"),
    C("inspect-plot-a-dir", INSPECT + " --plot {w}/d.png", "{w}/d.png", damage=mkdir("d.png")),
    C("inspect-plot-under-a-file", INSPECT + " --plot {w}/plain.txt/g.png", "{w}/plain.txt/g.png"),
    C("inspect-plot-run-model-truncated", INSPECT + " --plot {w}/g.png --run {run}", MODEL,
      damage=cut("run/model.safetensors")),
    # baselines [--json]
    C("baselines-history-nan", "baselines {ds}", "{ds}/train/00000", "history",
      damage=nan_in(f"{SHARD}/history.npy")),
    C("baselines-split-bogus", "baselines {ds} --split bogus --json {w}/good.json", "--split", code=2),
    C("baselines-json-under-a-file", "baselines {ds} --json {w}/plain.txt/b.json", "{w}/plain.txt/b.json"),
    C("baselines-json-under-proc", "baselines {ds} --json /proc/tinypred.json", "/proc/tinypred.json"),
    # train: paths, flags and --set (NaN, inf, negative, bool for int, huge, unknown key), config files, data
    C("train-out-under-a-file", "train --data {ds} --out {w}/plain.txt/r --epochs 1", "{w}/plain.txt/r"),
    C("train-lr-nan", "train --data {ds} --out {w}/new --lr nan", "--lr"),
    C("train-checkpoint-every-bogus", "train --data {ds} --out {w}/new --checkpoint-every 5h",
      "--checkpoint-every"),
    C("train-set-bool-for-int", "train --data {ds} --out {w}/new --set model.width=true",
      "--set model.width"),
    C("train-config-nan", "train --data {ds} --out {w}/new --config {w}/c.json", "{w}/c.json", "weight_decay",
      damage=put("c.json", '{"weight_decay": NaN}')),
    C("train-meta-mean-huge", "train --data {ds} --out {w}/new --epochs 1", META, "normalization",
      damage=json_set("ds/meta.json", "normalization.mean.0", 1e30)),
    # train --resume: config.json, checkpoint.safetensors and init.json damaged or of a wrong type
    C("resume-config-bad-json", RESUME, "{run}/config.json", damage=put("run/config.json", "{")),
    C("resume-config-without-train", RESUME, "{run}/config.json",
      damage=put("run/config.json", '{"data": "x"}')),
    C("resume-config-a-dir", RESUME, "{run}/config.json", damage=as_dir("run/config.json")),
    C("resume-config-nan", RESUME, "{run}/config.json", "lr",
      damage=json_set("run/config.json", "train.lr", np.nan)),
    C("resume-config-unknown-key", RESUME, "{run}/config.json", "bogus",
      damage=json_set("run/config.json", "train.bogus", 1)),
    C("resume-checkpoint-truncated", RESUME, "{run}/checkpoint.safetensors",
      damage=cut("run/checkpoint.safetensors")),
    C("resume-checkpoint-a-dir", RESUME, "{run}/checkpoint.safetensors",
      damage=as_dir("run/checkpoint.safetensors")),
    C("resume-checkpoint-a-model", RESUME, "{run}/checkpoint.safetensors",
      damage=copy("run/model.safetensors", "run/checkpoint.safetensors")),
    C("resume-checkpoint-metadata-bit-flipped", RESUME, "{run}/checkpoint.safetensors",
      damage=flipped_after("run/checkpoint.safetensors", b'\\"epoch\\": ', 0x01)),  # 1 -> 0 epochs done
    C("resume-init-bad-json", RESUME, "{run}/init.json", damage=put("run/init.json", "{")),
    C("resume-init-a-dir", RESUME, "{run}/init.json", damage=as_dir("run/init.json")),
    # eval [--json]: the run's model file damaged, of a wrong type, non-finite; the data; the output
    C("eval-model-a-dir", EVAL, "{run}/model.safetensors", damage=as_dir("run/model.safetensors")),
    C("eval-model-a-checkpoint", EVAL + " --json {w}/good.json", "{run}/model.safetensors",
      damage=copy("run/checkpoint.safetensors", "run/model.safetensors")),
    C("eval-model-nan-weight", EVAL, "{run}/model.safetensors",
      damage=resealed("run/model.safetensors", "model.body.0.weight", np.nan)),
    C("eval-model-normalizer-inf", EVAL, "{run}/model.safetensors",
      damage=resealed("run/model.safetensors", "normalizer.std", np.inf)),
    C("eval-data-pose-huge", EVAL, "{ds}/test/00000", "pose",
      damage=npy("ds/test/00000/pose.npy", first(1e12))),
    C("eval-json-a-dir", EVAL + " --json {w}/empty", "{w}/empty"),
    # predict [--format av2]
    C("predict-no-run-nor-baseline", "predict --data {ds} --out {w}/p.parquet", "RUN"),
    C("predict-run-and-baseline", "predict {run} --baseline cv --data {ds} --out {w}/p.parquet", "RUN"),
    C("predict-format-bogus", PREDICT + " --format csv", "--format", code=2),
    C("predict-out-not-parquet", "predict {run} --data {ds} --out {w}/p.csv", "--out"),
    C("predict-out-a-dir", PREDICT, "{w}/p.parquet", damage=mkdir("p.parquet")),
    C("predict-out-under-a-file", "predict {run} --data {ds} --out {w}/plain.txt/p.parquet",
      "{w}/plain.txt/p.parquet"),
    C("predict-baseline-bogus", "predict --baseline bogus --data {ds} --out {w}/p.parquet", "--baseline"),
    C("predict-split-bogus", PREDICT + " --split bogus", "--split", code=2),
    C("predict-data-missing", "predict {run} --data {w}/missing --out {w}/p.parquet", "{w}/missing"),
    C("predict-history-a-dir", PREDICT, HISTORY, damage=as_dir(f"{SHARD}/history.npy")),
    C("predict-history-pickled", PREDICT, HISTORY,
      damage=npy(f"{SHARD}/history.npy", lambda a: np.array([{"x": 1}] * len(a), dtype=object))),
    C("predict-meta-seed-negative", PREDICT, META, "seed", damage=json_set("ds/meta.json", "seed", -1)),
    C("predict-test-shard-missing", PREDICT, "{ds}/test/00000", damage=remove("ds/test/00000")),
    C("predict-av2-on-30-steps", PREDICT + " --format av2", "--format|--data|{ds}"),
    C("predict-av2-out-under-proc", SUBMIT + " /proc/tinypred.parquet", "/proc/tinypred.parquet"),
    C("predict-av2-pose-nan", SUBMIT + " {w}/s.parquet", "{w}/av2ds/test/00000", "pose",
      damage=nan_in("av2ds/test/00000/pose.npy")),
    # data export-av2
    C("export-missing", "data export-av2 {w}/missing --out {w}/ex", "{w}/missing"),
    C("export-out-a-file", EXPORT + " {w}/plain.txt", "{w}/plain.txt"),
    C("export-out-foreign", EXPORT + " {w}/foreign", "--out", "{w}/foreign"),
    C("export-out-under-a-file", EXPORT + " {w}/plain.txt/ex", "{w}/plain.txt/ex"),
    C("export-split-bogus", EXPORT + " {w}/ex --split bogus", "--split", code=2),
    C("export-meta-dt-nan", EXPORT + " {w}/ex", META, "dt", damage=json_set("ds/meta.json", "dt", np.nan)),
    C("export-lanes-inf", EXPORT + " {w}/ex", "{ds}/test/00000", "lanes",
      damage=npy("ds/test/00000/lanes.npy", first(-np.inf))),
    # data import-av2: the source, the options, the output, damaged scenario and map files
    C("import-src-missing", "data import-av2 {w}/missing --out {w}/im", "{w}/missing"),
    C("import-src-a-file", "data import-av2 {w}/plain.txt --out {w}/im", "{w}/plain.txt"),
    C("import-src-empty", "data import-av2 {w}/empty --out {w}/im", "{w}/empty"),
    C("import-src-proc", "data import-av2 /proc/self --out {w}/im", "/proc/self"),
    C("import-split-bogus", "data import-av2 {w}/av2/val --split bogus --out {w}/im", "--split", code=2),
    C("import-agents-bogus", IMPORT + " --agents all --out {w}/im", "--agents", code=2),
    C("import-history-zero", "data import-av2 {w}/av2 --history 0 --out {w}/im", "--history"),
    C("import-future-huge", "data import-av2 {w}/av2 --future 1000 --out {w}/im", "--future"),
    C("import-workers-zero", IMPORT + " --workers 0 --out {w}/im", "--workers"),
    C("import-out-a-file", IMPORT + " --out {w}/plain.txt", "{w}/plain.txt"),
    C("import-out-foreign", IMPORT + " --out {w}/foreign", "--out", "{w}/foreign"),
    C("import-out-under-a-file", IMPORT + " --out {w}/plain.txt/im", "{w}/plain.txt/im"),
    C("import-parquet-truncated", IMPORT + " --strict --out {w}/im", "scenario_",
      damage=scenario_file("scenario", cut)),
    C("import-parquet-a-dir", IMPORT + " --strict --out {w}/im", "scenario_",
      damage=scenario_file("scenario", as_dir)),
    C("import-map-bad-json", IMPORT + " --strict --out {w}/im", "log_map_archive_",
      damage=scenario_file("map", lambda rel: put(rel, "{"))),
    C("import-map-a-list", IMPORT + " --strict --out {w}/im", "log_map_archive_",
      damage=scenario_file("map", lambda rel: put(rel, "[]"))),
    # demo
    C("demo-seed-negative", "demo --quick --seed -1 --out {w}/demo", "--seed"),
    C("demo-out-a-file", "demo --quick --out {w}/plain.txt", "{w}/plain.txt"),
    C("demo-out-under-proc", "demo --quick --out /proc/tinypred", "/proc/tinypred"),
    # ablate
    C("ablate-epochs-zero", "ablate --data {ds} --out {w}/ab --epochs 0", "epochs"),
    C("ablate-config-inf", "ablate --data {ds} --out {w}/ab --config {w}/c.json", "{w}/c.json", "lr",
      damage=put("c.json", '{"lr": Infinity}')),
    # bench
    C("bench-steps-zero", "bench --data {ds} --steps 0", "--steps", code=2),
    C("bench-json-under-a-file", "bench --data {ds} --steps 1 --batch-size 8 --json {w}/plain.txt/b.json",
      "{w}/plain.txt/b.json"),
    # gradcheck --json
    C("gradcheck-json-a-dir", "gradcheck --json {w}/empty", "{w}/empty"),
    C("gradcheck-json-under-a-file", "gradcheck --json {w}/plain.txt/g.json", "{w}/plain.txt/g.json"),
    C("gradcheck-seed-negative", "gradcheck --seed -1 --json {w}/g.json", "--seed"),
    # diagnose
    C("diagnose-check-bogus", "diagnose bogus --data {ds} --out {w}/dg", "check", code=2),
    C("diagnose-config-bool-for-int", "diagnose init --data {ds} --out {w}/dg --config {w}/c.json",
      "{w}/c.json",
      "epochs", damage=put("c.json", '{"epochs": true}')),
    C("diagnose-neighbours-nan", "diagnose init --data {ds} --out {w}/dg", "{ds}/train/00000", "neighbours",
      damage=nan_in(f"{SHARD}/neighbours.npy")),
    C("diagnose-out-a-file", "diagnose init --data {ds} --out {w}/plain.txt", "{w}/plain.txt"),
]
# fmt: on


def snapshot(w: Path) -> dict[str, str]:
    """Every file under the workspace and the hash of its bytes (the run lock's pid aside)."""
    return {
        str(p.relative_to(w)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(w.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def check_refused(w: Path, args: list[str], names: list[str], code: int = 1) -> None:
    """Run the command and check the rule: the exit code, one line naming `names`, nothing changed."""
    before = snapshot(w)
    proc = run_cli(*args)
    check_message(proc, f"tinypred {' '.join(args)}", names, code)
    after = snapshot(w)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"tinypred {' '.join(args)}\nchanged, removed or added: {changed}"


def check_message(proc: subprocess.CompletedProcess, command: str, names: list[str], code: int = 1) -> None:
    """No traceback, exit code `code`; for 1, one line `tinypred: error: ...`; every name in it."""
    err = proc.stderr.strip()
    shown = f"{command}\nexit {proc.returncode}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr, shown
    assert proc.returncode == code, shown
    if code == 1:
        assert err.startswith("tinypred: error: ") and "\n" not in err, f"{shown}\nnot one line"
    missing = [n for n in names if not any(alt in err for alt in n.split("|"))]
    assert not missing, f"{shown}\nthe message does not name {missing}"


def fill(text: str, w: Path) -> str:
    return text.format(w=w, ds=w / "ds", run=w / "run")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_naming_it_and_changes_nothing(case, w):
    if case.damage is not None:
        case.damage(w)
    check_refused(w, [fill(a, w) for a in case.args.split()], [fill(n, w) for n in case.names], case.code)


def test_every_command_is_fuzzed():
    commands = {
        "data generate", "data inspect", "data import-av2", "data export-av2", "baselines", "train", "eval",
        "predict", "demo", "ablate", "bench", "gradcheck", "diagnose",
    }  # fmt: skip
    words = [c.args.split() for c in CASES]
    assert commands == {" ".join(a[:2]) if a[0] == "data" else a[0] for a in words}
    for flag in ("--plot", "--json", "--format", "--resume", "--config", "--set"):
        assert any(flag in a for a in words), flag


# Random damage: a flipped byte, a non-finite or huge value at a random place.


def contents(path: Path) -> object:
    """What a file says, parsed: a flip that leaves this unchanged harmed nothing."""
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as f:
            return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    return np.load(path, allow_pickle=False) if path.suffix == ".npy" else json.loads(path.read_text())


def same(a: object, b: object) -> bool:
    """Equal, bit for bit where tensors and arrays are concerned."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        a, b = a.numpy(), b.numpy()
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a == b


def header_size(path: Path) -> int:
    """The bytes before the data: a safetensors or .npy header; all of a JSON file."""
    data = path.read_bytes()
    if path.suffix == ".safetensors":
        return 8 + int.from_bytes(data[:8], "little")
    return 10 + int.from_bytes(data[8:10], "little") if path.suffix == ".npy" else len(data)


# file -> (the command that reads it, whether it is checksummed, what its message must name): a flip
# is caught in one line, or the command succeeds; in a checksummed file, only if it changed nothing.
FLIPPED = {
    "run/model.safetensors": ("eval {run} --data {ds} --json {w}/e.json", True, MODEL),
    "run/checkpoint.safetensors": (
        "train --data {ds} --out {run} --resume",
        True,
        "{run}/checkpoint.safetensors",
    ),
    "ds/meta.json": ("data inspect {ds}", False, META),
    f"{SHARD}/history.npy": ("data inspect {ds}", False, "{ds}/train/00000"),
}


@pytest.mark.slow
@pytest.mark.parametrize("rel", FLIPPED)
@settings(FUZZ, max_examples=3)
@given(in_header=st.booleans(), where=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_a_flipped_byte_is_caught_or_changes_nothing(assets, tmp_path_factory, rel, in_header, where, mask):
    """One byte of the file XORed (in its header, or anywhere), then the command that reads it."""
    command, checksummed, name = FLIPPED[rel]
    w = tmp_path_factory.mktemp("flip")
    for folder in ("ds", "run"):
        shutil.copytree(assets / folder, w / folder)
    path = w / rel
    good = contents(path)
    offset = int(where * (header_size(path) if in_header else path.stat().st_size))
    flip(path, offset, mask)
    before = snapshot(w)
    args = [fill(a, w) for a in command.split()]
    proc = run_cli(*args)
    shown = f"tinypred {' '.join(args)} ({rel}: byte {offset} ^ {mask})"
    if proc.returncode != 0:
        check_message(proc, shown, [fill(name, w)])
        assert snapshot(w) == before, f"{shown}\na file changed"
    elif checksummed:
        try:
            damaged = contents(path)
        except Exception as e:  # unreadable, yet used
            raise AssertionError(f"{shown}\nexit 0 with a file safetensors cannot read: {e}") from None
        assert same(good, damaged), f"{shown}\nexit 0: the damage went unnoticed and the file was used"


FLOAT_ARRAYS = ("history", "future", "lanes", "neighbours", "alt_futures", "alt_probs", "pose")


@FUZZ
@given(
    array=st.sampled_from(FLOAT_ARRAYS),
    split=st.sampled_from(("train", "val", "test")),
    where=st.floats(0, 1, exclude_max=True),
    value=st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -3e38]),
)
def test_non_finite_or_huge_array_values_are_named(assets, tmp_path_factory, array, split, where, value):
    w = tmp_path_factory.mktemp("value")
    shutil.copytree(assets / "ds", w / "ds")
    rel = w / "ds" / split / "00000" / f"{array}.npy"
    a = np.load(rel)
    a.reshape(-1)[int(where * a.size)] = value
    np.save(rel, a)
    check_refused(w, ["data", "inspect", str(w / "ds")], [str(rel.parent), array])


@FUZZ
@given(
    key=st.sampled_from(("mean", "std")),
    where=st.floats(0, 1, exclude_max=True),
    value=st.sampled_from([np.nan, np.inf, -np.inf, 1e39, 0.0, -1.0]),
)
def test_a_bad_normaliser_is_named(assets, tmp_path_factory, key, where, value):
    if key == "mean" and value in (0.0, -1.0):
        value = np.nan  # any finite mean is fine; only a std must be > 0
    w = tmp_path_factory.mktemp("norm")
    shutil.copytree(assets / "ds", w / "ds")
    meta = json.loads((w / "ds" / "meta.json").read_text())
    values = meta["normalization"][key]
    values[int(where * len(values))] = value
    (w / "ds" / "meta.json").write_text(json.dumps(meta))
    check_refused(w, ["data", "inspect", str(w / "ds")], [str(w / "ds" / "meta.json"), "normalization"])
