"""The `tinypred` command line: a thin layer over the Python API.

User errors (bad flags, files, configs) print one line `tinypred: error: ...` and exit 1; typer's own
usage errors exit 2. Nothing else is caught: a traceback means a bug in tinypred.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tinypred import dataset
from tinypred.config import load_config
from tinypred.errors import TinypredError
from tinypred.scenes import SceneConfig

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="tinypred: a tiny learned multimodal trajectory predictor, and backprop you can read.",
)
data_app = typer.Typer(no_args_is_help=True, help="Generate and inspect synthetic driving scenes.")
app.add_typer(data_app, name="data")

console = Console()
if not console.is_terminal:  # piped or captured: rich would squeeze tables into 80 columns
    console.width = 120
err_console = Console(stderr=True)


@data_app.command("generate")
def data_generate(
    out: Annotated[Path, typer.Option("--out", help="directory to write train/val/test .npz + meta.json")],
    n_train: Annotated[int, typer.Option("--n-train")] = 20000,
    n_val: Annotated[int, typer.Option("--n-val")] = 4000,
    n_test: Annotated[int, typer.Option("--n-test")] = 4000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    config: Annotated[Path | None, typer.Option("--config", help="scene config, .json or .toml")] = None,
) -> None:
    """Generate the three splits of synthetic scenes."""
    cfg = load_config(SceneConfig, config)
    start = time.perf_counter()
    ds = dataset.make(cfg, n_train, n_val, n_test, seed)
    dataset.save(ds, out)
    total = n_train + n_val + n_test
    console.print(
        f"wrote {total} scenes to {out} (train {n_train}, val {n_val}, test {n_test}, seed {seed}) "
        f"in {time.perf_counter() - start:.1f} s"
    )


@data_app.command("inspect")
def data_inspect(
    directory: Annotated[Path, typer.Argument(help="a dataset directory")],
    plot: Annotated[
        Path | None, typer.Option("--plot", help="draw a grid of random scenes to this PNG")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="which random scenes to draw")] = 0,
) -> None:
    """Counts per family and split, speed and displacement statistics; optionally a picture."""
    ds = dataset.load(directory)
    table = Table(title=f"{directory}  (seed {ds.seed}, schema {dataset.SCHEMA_VERSION})")
    for col in ("split", "family", "count", "share", "decision", "alts", "speed m/s", "disp. m", "p95"):
        table.add_column(col, justify="left" if col in ("split", "family") else "right", no_wrap=True)
    for r in dataset.summary(ds):
        table.add_row(
            r["split"],
            r["family"],
            str(r["count"]),
            f"{r['share']:.2f}",
            "yes" if r["decision"] else "",
            f"{r['alternatives']:.2f}",
            f"{r['speed_mean']:.1f}±{r['speed_std']:.1f}",
            f"{r['disp_mean']:.1f}",
            f"{r['disp_p95']:.1f}",
        )
    console.print(table)
    if plot is not None:
        from tinypred import plots

        if plot.suffix.lower() != ".png":
            raise TinypredError(f"--plot {plot}: expected a .png file name")
        plots.scene_grid(ds.train if len(ds.train) else ds.test, plot, seed=seed)
        console.print(f"drew scenes to {plot}")


def metrics_table(
    title: str,
    results: dict[str, dict[str, dict[str, float]]],
    slices: tuple[str, ...] = ("all", "decision", "other"),
) -> Table:
    """A rich table: one row per (predictor, slice), one column per metric."""
    from tinypred.metrics import METRICS

    table = Table(title=title)
    table.add_column("predictor", no_wrap=True)
    table.add_column("slice", no_wrap=True)
    for m in METRICS:
        table.add_column(m, justify="right", no_wrap=True)
    for name, by_slice in results.items():
        for sl in slices:
            if sl in by_slice:
                row = by_slice[sl]
                table.add_row(
                    name,
                    f"{sl} ({row['count']})",
                    *(f"{row[m]:.3f}" if m.startswith("MR") else f"{row[m]:.2f}" for m in METRICS),
                )
        table.add_section()
    return table


@app.command()
def baselines(
    directory: Annotated[Path, typer.Argument(help="a dataset directory")],
    split: Annotated[str, typer.Option("--split", help="train, val or test")] = "test",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the results to this file")
    ] = None,
) -> None:
    """Fit every baseline on the training split and evaluate it on a split."""
    from tinypred.baselines import fit_all
    from tinypred.fileio import write_json
    from tinypred.metrics import evaluate_scenes

    ds = dataset.load(directory)
    scenes = ds.split(split)
    if len(scenes) == 0:
        raise TinypredError(f"--split {split}: the split of {directory} is empty")
    results = {name: evaluate_scenes(b.predict(scenes), scenes) for name, b in fit_all(ds.train).items()}
    console.print(metrics_table(f"baselines on {directory} [{split}]", results))
    if json_out is not None:
        write_json(json_out, {"split": split, "data": str(directory), "results": results})
        console.print(f"wrote {json_out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out")] = Path("runs/demo"),
    seed: Annotated[int, typer.Option("--seed")] = 11,
    quick: Annotated[bool, typer.Option("--quick", help="smaller data, same pipeline")] = False,
) -> None:
    """The main job. For now: the data part only (training and the report come with later issues)."""
    console.print(
        "[bold]tinypred demo[/bold]: data part only for now -- baselines, training and the report "
        "are not built yet."
    )
    n = (2000, 500, 500) if quick else (20000, 4000, 4000)
    ds = dataset.make(SceneConfig(), *n, seed=seed)
    dataset.save(ds, out / "data")
    from tinypred import plots

    plots.scene_grid(ds.train, out / "scenes.png", seed=seed)
    data_inspect(out / "data", plot=None, seed=seed)
    console.print(f"wrote {out / 'data'} and {out / 'scenes.png'}")


def main() -> None:
    try:
        app()
    except TinypredError as e:
        err_console.print(f"tinypred: error: {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
