"""`tinypred demo`, `ablate`, `bench`, `gradcheck` and `diagnose`: experiments and checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from tinypred.cli.app import Device, Split, announce, app, console
from tinypred.config import load_config
from tinypred.data import dataset
from tinypred.errors import TinypredError
from tinypred.report import tables


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="the folder to write (replaced as a whole)")] = Path(
        "runs/demo"
    ),
    seed: Annotated[int, typer.Option("--seed")] = 11,
    quick: Annotated[
        bool, typer.Option("--quick", help="smaller data and budgets, same pipeline", metavar="")
    ] = False,
    device: Annotated[Device, typer.Option("--device", help="where the models train")] = "auto",
) -> None:
    """The main job: data, baselines, training, test, ablation, device timing, figures and the report."""
    from tinypred.experiments.demo import run_demo

    announce(device)
    metrics = run_demo(out, seed=seed, quick=quick, device=device, progress=console.is_terminal)
    console.print(
        tables.metrics_table(
            f"test set, seed {seed}", {k: metrics["test"][k] for k in metrics["test"]}, slices=("decision",)
        )
    )
    for c in metrics["checks"]:
        console.print(f"{'PASS' if c['passed'] else 'FAIL'}: {c['claim']} ({c['detail']})", highlight=False)
    console.print(f"report: {out / 'report.html'} (and report.md, metrics.json)")


@app.command()
def ablate(
    data: Annotated[Path, typer.Option("--data", help="a dataset directory")],
    out: Annotated[Path, typer.Option("--out", help="a directory for the runs, the table and the figure")],
    config: Annotated[Path | None, typer.Option("--config", help="the base TrainConfig")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="[default: the config's]")] = None,
    split: Annotated[Split, typer.Option("--split")] = "test",
    seed: Annotated[int | None, typer.Option("--seed", help="[default: the config's]")] = None,
    device: Annotated[Device | None, typer.Option("--device", help="[default: the config's]")] = None,
) -> None:
    """L2 vs winner-take-all, with and without the classification term, and two learning rates."""
    from tinypred.experiments.ablation import run_ablation
    from tinypred.fileio import write_json
    from tinypred.report import figures as plots
    from tinypred.training import TrainConfig

    given = {"epochs": epochs, "seed": seed, "device": device}
    cfg = load_config(TrainConfig, config, {k: v for k, v in given.items() if v is not None})
    announce(cfg.device)
    ds = dataset.load(data)
    rows = run_ablation(
        ds,
        cfg,
        out,
        split=split,
        on_run=lambda r: console.print(
            f"{r['name']}: decision minFDE@6 {r['decision']['minFDE@6']:.2f}"
            f" m, mode spread {r['decision']['mode_spread']:.2f} m"
        ),
    )
    console.print(tables.ablation_table(f"ablation at decision points ({split} split)", rows))
    write_json(out / "ablation.json", rows)
    plots.ablation_bars(rows, out / "ablation.png")
    console.print(f"wrote {out / 'ablation.json'} and {out / 'ablation.png'}")


@app.command()
def bench(
    data: Annotated[Path, typer.Option("--data", help="a dataset directory")],
    steps: Annotated[int, typer.Option("--steps", min=1)] = 200,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 512,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the rows to this file")] = None,
) -> None:
    """Wall-clock training time and samples/s on every device (cpu, cuda, mps), fp32 and bf16."""
    from tinypred.experiments.devices import device_bench
    from tinypred.fileio import write_json
    from tinypred.training import TrainConfig

    rows = device_bench(dataset.load(data), TrainConfig(), steps=steps, batch_size=batch_size)
    console.print(tables.bench_table(f"{steps} training steps, batch {batch_size}", rows))
    if json_out is not None:
        write_json(json_out, rows)


@app.command()
def gradcheck(
    seed: Annotated[int, typer.Option("--seed", help="the random inputs of every case")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the rows to this file")] = None,
) -> None:
    """Every autodiff op and hand-derived gradient against central differences and torch (float64)."""
    from tinypred.backprop.battery import run_gradcheck_battery
    from tinypred.fileio import write_json

    rows = run_gradcheck_battery(seed)
    console.print(tables.gradcheck_table(rows))
    if json_out is not None:
        write_json(json_out, rows)
    failed = [r["op"] for r in rows if not r["passed"]]
    if failed:
        raise TinypredError(f"gradcheck: {len(failed)} of {len(rows)} checks failed: {', '.join(failed)}")
    console.print(f"all {len(rows)} checks passed")


@app.command()
def diagnose(
    check: Annotated[
        Literal["init", "overfit", "lr-range", "curvature", "saliency", "gradients", "toy"],
        typer.Argument(help="the check to run"),
    ],
    data: Annotated[Path, typer.Option("--data", help="a dataset directory")],
    config: Annotated[Path | None, typer.Option("--config", help="TrainConfig as .json or .toml")] = None,
    out: Annotated[Path, typer.Option("--out", help="where <check>.png and <check>.json go")] = Path(
        "runs/diagnose"
    ),
    seed: Annotated[int | None, typer.Option("--seed", help="[default: the config's, 0]")] = None,
) -> None:
    """A training-craft check: its numbers, a verdict in plain words and a figure. Exit 1 if it fails.
    The checks run on the CPU whatever the config's device: they are small, and so reproducible."""
    from tinypred.diagnostics import run_check
    from tinypred.fileio import write_json
    from tinypred.training import TrainConfig

    cfg = load_config(TrainConfig, config)
    if seed is not None:
        cfg = cfg.model_copy(update={"seed": seed})
    announce("cpu")
    result = run_check(check, dataset.load(data), cfg, out)
    write_json(out / f"{check}.json", result.to_json())
    console.print(f"{check}: {'PASSED' if result.passed else 'FAILED'}", style="bold")
    console.print(result.verdict, markup=False, highlight=False)
    for key, value in result.numbers.items():
        if isinstance(value, int | float | str | bool):
            console.print(
                f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}",
                markup=False,
                highlight=False,
            )
    console.print(f"wrote {out / (check + '.png')} and {out / (check + '.json')}", markup=False)
    if not result.passed:
        raise typer.Exit(1)
