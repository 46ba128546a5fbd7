"""The kill/resume soak: SIGKILL `tinypred train`, `data generate` and `demo --quick` at random moments.

    .venv/bin/python benchmarks/soak.py [--kills 10] [--seed 0] [--json]      # a few minutes on 2 cores

(a) training: an uninterrupted reference run with mid-epoch checkpoints; then --kills times the same
    command into a fresh run directory, SIGKILLed at a random moment (in turn: before the first
    checkpoint, mid-epoch, and during a checkpoint write, caught by watching for its temporary file),
    resumed with the same command and --resume (killed once more on the way for about half of them),
    then resumed to completion. Each ends bitwise-identical to the reference or not: every `model.*`
    and `optim.*` tensor of model.safetensors and checkpoint.safetensors (torch.equal), and the epoch
    log but its timings. Where each kill landed is read from the run directory afterwards.
(b) `data generate` replacing an existing dataset, killed at random moments and, in turn, at set points
    of its write (as the old one is moved aside, at its first array, at meta.json, ...): it must load
    as the old or the new dataset (by its seed), and a re-run must succeed and leave no
    `.<name>.tmp-*` / `.<name>.old-*`.
(c) `demo --quick`: killed into a fresh folder, run to completion, killed while re-running over that
    result (which must stay as it was), re-run to completion (no leftovers, the same test metrics).

One JSON line with --json (else indented); progress goes to stderr. Exit code 1 if any check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from tinypred.data import dataset

CLI = [sys.executable, "-c", "from tinypred.cli import main; main()"]
PHASES = ("before first checkpoint", "mid-epoch", "during a checkpoint write")
EARLY = 0.8  # aim kills within this share of a reference's time: a later run may well go faster


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tinypred(*args: object, logs: Path) -> subprocess.Popen:
    """Start `tinypred ARGS`, its stdout and stderr going to logs.out / logs.err."""
    logs.parent.mkdir(parents=True, exist_ok=True)
    with logs.with_suffix(".out").open("w") as out, logs.with_suffix(".err").open("w") as err:
        return subprocess.Popen([*CLI, *map(str, args)], stdout=out, stderr=err)


def finish(*args: object, logs: Path) -> tuple[int, float, str]:
    """Run `tinypred ARGS` to the end: its exit code, seconds and the last line of its stderr."""
    start = time.perf_counter()
    code = tinypred(*args, logs=logs).wait()
    return code, time.perf_counter() - start, last_line(logs.with_suffix(".err"))


def last_line(path: Path) -> str:
    lines = path.read_text().strip().splitlines()
    return lines[-1] if lines else ""


def kill_when(proc: subprocess.Popen, delay: float, watch: Path | None = None, pattern: str = "") -> float:
    """SIGKILL the process `delay` s after now, or (with `watch`) at the first new file matching `pattern`
    in `watch` after that; returns the seconds it ran, or -1 if it ended on its own first."""
    start, there = time.perf_counter(), set(watch.glob(pattern)) if watch is not None else set()
    while proc.poll() is None:
        elapsed = time.perf_counter() - start
        if elapsed >= delay and (watch is None or set(watch.glob(pattern)) - there):
            proc.kill()
            proc.wait()
            return elapsed
        time.sleep(0.0005 if watch is not None and elapsed >= delay else 0.005)
    return -1.0


def leftovers(folder: Path, name: str) -> list[str]:
    """The temporary siblings an atomic directory write of `folder/name` leaves when killed."""
    return sorted(p.name for p in folder.glob(f".{name}.*-*"))


def tree_hash(path: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            digest.update(str(p.relative_to(path)).encode() + p.read_bytes())
    return digest.hexdigest()


# (a) training -----------------------------------------------------------------------------------------


def checkpoint_state(run: Path) -> dict[str, Any] | None:
    """The TrainState in the run's checkpoint (None if there is none)."""
    path = run / "checkpoint.safetensors"
    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["state"])


def temporaries(run: Path) -> list[str]:
    """The temporary files of atomic writes in the run directory (a kill mid-write leaves one)."""
    return sorted(p.name for p in run.glob(".*.tmp"))


def landed(run: Path, ran: float, before: tuple[dict | None, list[str]], epochs: int) -> dict[str, Any]:
    """Where a kill landed, from what the attempt left in the run directory beside what was there
    `before` it (the checkpoint's state, the temporaries)."""
    state, temps = checkpoint_state(run), [t for t in temporaries(run) if t not in before[1]]
    where: dict[str, Any] = {"killed_after_s": round(ran, 3), "temporaries": temps}
    if state is not None:
        where["checkpoint"] = {k: state[k] for k in ("epoch", "step", "epoch_step")}
    if ran < 0:
        place = "after the end"
    elif any(t.startswith(".checkpoint.safetensors.") for t in temps):
        place = "during a checkpoint write"
    elif temps:
        place = "during another write"
    elif state == before[0]:
        place = "before first checkpoint"
    else:
        place = "after the last checkpoint" if state["epoch"] >= epochs else "mid-epoch"
    return {"landed": place, **where}


def weights_and_log(run: Path) -> tuple[dict[str, dict[str, torch.Tensor]], list[dict[str, Any]]]:
    """The model.* and optim.* tensors of both files, and the epoch log without its timings."""
    tensors = {
        name: {k: v for k, v in load_file(run / name).items() if k.startswith(("model.", "optim."))}
        for name in ("model.safetensors", "checkpoint.safetensors")
    }
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return tensors, [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def differences(reference: tuple, run: Path) -> list[str]:
    """What differs from the reference: 'file: tensor' names, or 'metrics.jsonl'."""
    (ref_tensors, ref_log), (tensors, rows) = reference, weights_and_log(run)
    diff = [
        f"{name}: {key}"
        for name, ref in ref_tensors.items()
        for key in sorted(ref.keys() | tensors[name].keys())
        if key not in ref or key not in tensors[name] or not torch.equal(ref[key], tensors[name][key])
    ]
    return diff + (["metrics.jsonl"] if rows != ref_log else [])


def reference_run(work: Path, command: list[object]) -> dict[str, Any]:
    """Train uninterrupted, noting when each checkpoint appeared (s after the start)."""
    run = work / "reference"
    proc = tinypred(*command, "--out", run, logs=work / "logs" / "reference")
    start, seen, last = time.perf_counter(), [], None
    while proc.poll() is None:
        path = run / "checkpoint.safetensors"
        stamp = path.stat().st_mtime_ns if path.exists() else None
        if stamp is not None and stamp != last:
            seen.append(time.perf_counter() - start)
            last = stamp
        time.sleep(0.002)
    if proc.returncode != 0:
        raise SystemExit(f"the reference run failed: {last_line(work / 'logs' / 'reference.err')}")
    return {"seconds": time.perf_counter() - start, "checkpoints": seen, "dir": run}


def killed_and_resumed(
    command: list[object], run: Path, phase: str, rng: random.Random, ref: dict[str, Any], reference: tuple
) -> dict[str, Any]:
    """One run: killed aiming at `phase`, maybe killed again while resuming, resumed to the end, compared."""
    logs, times, epochs = run.parent / "logs" / run.name, ref["checkpoints"], ref["epochs"]
    proc = tinypred(*command, "--out", run, logs=logs / "0")
    if phase == "before first checkpoint":
        ran = kill_when(proc, rng.uniform(0, times[0]))
    elif phase == "mid-epoch":
        ran = kill_when(proc, rng.uniform(times[0], EARLY * times[-1]))
    else:  # at the first checkpoint temporary seen after a random moment
        ran = kill_when(proc, rng.uniform(0, EARLY * times[-1]), run, ".checkpoint.safetensors.*.tmp")
    kills = [{"aimed": phase, **landed(run, ran, (None, []), epochs)}]
    if rng.random() < 0.5:  # the resume killed too, anywhere
        before = checkpoint_state(run), temporaries(run)
        proc = tinypred(*command, "--out", run, "--resume", logs=logs / "1")
        ran = kill_when(proc, rng.uniform(0, ref["seconds"]))
        kills.append({"aimed": "anywhere", **landed(run, ran, before, epochs)})
    code, _, err = finish(*command, "--out", run, "--resume", logs=logs / "end")
    said = [line for line in (logs / "end.out").read_text().splitlines() if line.startswith(f"{run}: ")]
    row = {"run": run.name, "kills": kills, "resume_exit": code, "resume_said": said[0] if said else "new"}
    if code != 0:
        return row | {"identical": False, "error": err}
    diff = differences(reference, run)
    return row | {"identical": not diff, "differences": diff[:10], "temporaries_left": temporaries(run)}


def soak_training(work: Path, rng: random.Random, args: argparse.Namespace) -> dict[str, Any]:
    data = work / "train-data"
    sizes = ("--n-train", args.n_train, "--n-val", args.n_train // 10, "--n-test", 10, "--seed", 5)
    code, _, err = finish("data", "generate", "--out", data, *sizes, logs=work / "logs" / "data")
    if code != 0:
        raise SystemExit(f"data generate failed: {err}")
    command: list[object] = ["train", "--data", data, "--epochs", args.epochs, "--batch-size", 32]
    command += ["--device", "cpu", "--checkpoint-every", args.checkpoint_every]
    ref = reference_run(work, command) | {"epochs": args.epochs}
    times = ref["checkpoints"]
    log(f"reference: {ref['seconds']:.1f} s, {len(times)} checkpoints, the first at {times[0]:.1f} s")
    reference = weights_and_log(ref["dir"])
    runs = []
    for i in range(args.kills):
        row = killed_and_resumed(command, work / f"run{i:02d}", PHASES[i % 3], rng, ref, reference)
        runs.append(row)
        log(f"{row['run']}: {', '.join(k['landed'] for k in row['kills'])} -> identical {row['identical']}")
    places = Counter(k["landed"] for row in runs for k in row["kills"])
    return {
        "identical": sum(r["identical"] for r in runs),
        "runs": len(runs),
        "kills_landed": dict(places),
        "reference_seconds": round(ref["seconds"], 1),
        "reference_checkpoints": len(times),
        "detail": runs,
    }


# (b) data generate ------------------------------------------------------------------------------------

# Where in the write of the new dataset to kill `data generate`, in turn: the first new file beside it
# matching (the old one moved aside, the first array written, meta.json written last, ...).
WRITING = ("{old}", "{tmp}/train/00000/*.npy", "{tmp}/meta.json", "{tmp}", "{tmp}/val", "{tmp}/test")


def soak_generate(work: Path, rng: random.Random, kills: int) -> dict[str, Any]:
    out, logs = work / "gen" / "ds", work / "logs" / "gen"
    sizes = ("--n-train", 20000, "--n-val", 2000, "--n-test", 2000)
    code, full, err = finish("data", "generate", "--out", out, *sizes, "--seed", 100, logs=logs / "first")
    if code != 0:
        raise SystemExit(f"data generate failed: {err}")
    current, rows = 100, []
    for i in range(kills):
        new = 101 + i
        proc = tinypred("data", "generate", "--out", out, *sizes, "--seed", new, logs=logs / f"kill{i}")
        if i % 2 == 0:
            aimed, ran = "anywhere", kill_when(proc, rng.uniform(0, 1.2 * full))
        else:
            aimed = WRITING[i // 2 % len(WRITING)].format(tmp=f".{out.name}.tmp-*", old=f".{out.name}.old-*")
            ran = kill_when(proc, 0, out.parent, aimed)
        try:
            seed, error = dataset.load(out).seed, None
        except Exception as e:  # a mixed or missing dataset: what this soak looks for
            seed, error = None, f"{type(e).__name__}: {e}"
        row = {"aimed": aimed, "killed_after_s": round(ran, 3), "leftovers": leftovers(out.parent, out.name)}
        row["dataset"] = "old" if seed == current else "new" if seed == new else f"neither ({error})"
        rows.append(row)
        log(f"generate kill {i} (at {aimed}): the {row['dataset']} dataset, leftovers {row['leftovers']}")
        current = seed if seed is not None else current
    code, _, err = finish("data", "generate", "--out", out, *sizes, "--seed", 200, logs=logs / "final")
    rerun = {"exit": code, "error": err if code else None, "leftovers": leftovers(out.parent, out.name)}
    rerun["seed"] = dataset.load(out).seed if code == 0 else None
    ok = all(r["dataset"] in ("old", "new") for r in rows) and rerun["seed"] == 200 and not rerun["leftovers"]
    return {"ok": ok, "kills": rows, "rerun": rerun, "full_seconds": round(full, 1)}


# (c) demo --quick -------------------------------------------------------------------------------------


def soak_demo(work: Path, rng: random.Random) -> dict[str, Any]:
    out, logs = work / "demo", work / "logs" / "demo"
    demo = ("demo", "--quick", "--out", out)

    def completed(name: str) -> dict[str, Any]:
        code, seconds, err = finish(*demo, logs=logs / name)
        row = {"exit": code, "seconds": round(seconds, 1), "leftovers": leftovers(work, out.name)}
        return row | ({"error": err} if code else {})

    ran = kill_when(tinypred(*demo, logs=logs / "kill-fresh"), rng.uniform(1, 20))
    fresh = {
        "killed_after_s": round(ran, 1),
        "folder_exists": out.exists(),
        "leftovers": leftovers(work, out.name),
    }
    log(f"demo killed into a fresh folder: {fresh}")
    complete = completed("complete")
    log(f"demo to completion: {complete}")
    if complete["exit"] != 0:
        return {"ok": False, "killed_fresh": fresh, "complete": complete}
    before, metrics = tree_hash(out), json.loads((out / "metrics.json").read_text())["test"]
    ran = kill_when(tinypred(*demo, logs=logs / "kill-rerun"), rng.uniform(0, EARLY * complete["seconds"]))
    rerun = {
        "killed_after_s": round(ran, 1),
        "old_output_intact": tree_hash(out) == before if out.exists() else False,
    }
    rerun["leftovers"] = leftovers(work, out.name)
    log(f"demo killed while re-running over its output: {rerun}")
    final = completed("final")
    final["same_test_metrics"] = (
        final["exit"] == 0 and json.loads((out / "metrics.json").read_text())["test"] == metrics
    )
    log(f"demo re-run to completion: {final}")
    ok = (fresh["killed_after_s"] < 0 or not fresh["folder_exists"]) and (
        ran < 0 or rerun["old_output_intact"]
    )
    ok = ok and final["exit"] == 0 and not final["leftovers"]
    return {"ok": ok, "killed_fresh": fresh, "complete": complete, "killed_rerun": rerun, "final": final}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=10, help="killed training runs (a)")
    parser.add_argument("--generate-kills", type=int, default=6, help="killed `data generate` runs (b)")
    parser.add_argument("--no-demo", action="store_true", help="skip (c)")
    parser.add_argument("--seed", type=int, default=0, help="the random kill moments")
    parser.add_argument("--n-train", type=int, default=20000, help="training scenes of (a)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--checkpoint-every", default="50", help="steps between mid-epoch checkpoints")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="one JSON line")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    start = time.perf_counter()
    keep = contextlib.nullcontext(args.workdir) if args.workdir else None
    with keep or tempfile.TemporaryDirectory(prefix="tinypred-soak-") as folder:
        work = Path(folder)
        report: dict[str, Any] = {"seed": args.seed, "training": soak_training(work, rng, args)}
        report["generate"] = soak_generate(work, rng, args.generate_kills)
        if not args.no_demo:
            report["demo"] = soak_demo(work, rng)
    report["seconds"] = round(time.perf_counter() - start, 1)
    training = report["training"]
    report["ok"] = training["identical"] == training["runs"] and all(
        report[k]["ok"] for k in ("generate", "demo") if k in report
    )
    print(json.dumps(report, default=str) if args.json else json.dumps(report, indent=2, default=str))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
