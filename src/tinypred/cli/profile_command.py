"""`tinypred profile`: where a trained run's time goes, in torch and in the NumPy autodiff engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from tinypred.cli.app import Device, announce, app, console, err_console


def _table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=Text(title))  # Text: a path with brackets is not markup
    for i, col in enumerate(columns):
        # fold: a long operator name wraps inside its cell, never cut short with an ellipsis
        table.add_column(col, justify="left" if i == 0 else "right", overflow="fold")
    return table


def torch_table(name: str, phase: dict[str, Any], top: int) -> Table:
    """The `top` operators of a phase by self CPU time, the rest summed into one row."""
    cuda = bool(phase["rows"]) and "self_device_ms" in phase["rows"][0]
    columns = ("operator", "self CPU ms", "share %", "calls") + (("self CUDA ms",) if cuda else ())
    table = _table(
        f"torch, {name} (batch {phase['batch']}): {phase['ms_per_step']:.3f} ms per step, "
        f"mean of {phase['steps']} steps",
        columns,
    )
    rows, rest = phase["rows"][:top], phase["rows"][top:]
    if rest:
        keys = ("self_cpu_ms", "share_pct", "calls") + (("self_device_ms",) if cuda else ())
        rows = [*rows, {"op": f"({len(rest)} other operators)", **{k: sum(r[k] for r in rest) for k in keys}}]
    for r in rows:
        cells = [r["op"], f"{r['self_cpu_ms']:.3f}", f"{r['share_pct']:.1f}", f"{r['calls']:g}"]
        table.add_row(*cells, *([f"{r['self_device_ms']:.3f}"] if cuda else []))
    return table


def engine_table(engine: dict[str, Any], top: int) -> Table:
    """The engine's op types by share of the step: forward, backward (closures) and total ms."""
    table = _table(
        f"NumPy engine, training step (batch {engine['batch']}): {engine['ms_per_step']:.2f} ms per step, "
        f"mean of {engine['steps']} steps",
        ("op", "forward ms", "backward ms", "total ms", "calls", "share %"),
    )
    rows = sorted(engine["rows"], key=lambda r: -r["share_pct"])
    shown, rest = rows[:top], rows[top:]
    for r in shown:
        total = r["forward_ms"] + r["backward_ms"] + r["update_ms"]
        table.add_row(
            r["op"],
            f"{r['forward_ms']:.3f}" if r["forward_ms"] else "",
            f"{r['backward_ms']:.3f}" if r["backward_ms"] else "",
            f"{total:.3f}",
            f"{r['calls']:g}" if r["calls"] else "",
            f"{r['share_pct']:.1f}",
        )
    if rest:
        total = sum(r["forward_ms"] + r["backward_ms"] + r["update_ms"] for r in rest)
        share = sum(r["share_pct"] for r in rest)
        table.add_row(f"({len(rest)} other ops)", "", "", f"{total:.3f}", "", f"{share:.1f}")
    return table


@app.command("profile")
def profile_(
    run: Annotated[Path, typer.Argument(help="a run directory (holding model.safetensors)")],
    data: Annotated[Path, typer.Option("--data", help="the dataset whose training split feeds the model")],
    out: Annotated[
        Path, typer.Option("--out", help="the folder for the traces, profile.json and profile.png")
    ],
    device: Annotated[Device, typer.Option("--device", help="where torch runs (the engine: NumPy, CPU)")] = (
        "auto"
    ),
    steps: Annotated[
        int, typer.Option("--steps", min=1, help="steps profiled per phase, after 3 warm-up")
    ] = 20,
    top: Annotated[int, typer.Option("--top", min=1, help="operators printed per table")] = 15,
) -> None:
    """torch.profiler over inference (batch 1 and 512) and training steps, and the NumPy engine's
    training step per op type: Chrome traces (trace_<phase>.json, open in ui.perfetto.dev), the top
    operators by self time, profile.json and profile.png."""
    from tinypred.experiments.profile import FIGURE_FILE, PROFILE_FILE, run_profile

    announce(device)
    result = run_profile(run, data, out, device, steps)
    phases = result["torch"]
    for name, phase in phases.items():
        console.print(torch_table(name, phase, top))
    console.print(engine_table(result["engine"], top))
    for note in result["engine"]["notes"]:
        err_console.print(f"note: {note}")
    traces = ", ".join(str(out / p["trace"]) for p in phases.values())
    console.print(f"wrote {traces}, {out / PROFILE_FILE} and {out / FIGURE_FILE}")
