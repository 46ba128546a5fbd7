"""`tinypred data ...` and `tinypred baselines`: datasets in and out, and the baselines on them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from tinypred.cli.app import app, console, data_app, nonempty_split
from tinypred.config import load_config
from tinypred.data import dataset
from tinypred.data.scene_config import SceneConfig
from tinypred.errors import TinypredError
from tinypred.report import tables


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
    title = f"{directory}  (seed {ds.seed}, dt {ds.dt:g} s, schema {dataset.SCHEMA_VERSION})"
    console.print(tables.summary_table(title, dataset.summary(ds)))
    if plot is not None:
        from tinypred.report import figures as plots

        if plot.suffix.lower() != ".png":
            raise TinypredError(f"--plot {plot}: expected a .png file name")
        plots.scene_grid(ds.train if len(ds.train) else ds.test, plot, seed=seed)
        console.print(f"drew scenes to {plot}")


@app.command()
def baselines(
    directory: Annotated[Path, typer.Argument(help="a dataset directory")],
    split: Annotated[str, typer.Option("--split", help="train, val or test")] = "test",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the results to this file")
    ] = None,
) -> None:
    """Fit every baseline on the training split and evaluate it on a split."""
    from tinypred.evaluation.tables import evaluate_scenes
    from tinypred.fileio import write_json
    from tinypred.predictors.baselines import fit_all

    ds = dataset.load(directory)
    scenes = nonempty_split(ds, split)
    results = {name: evaluate_scenes(b.predict(scenes), scenes) for name, b in fit_all(ds.train).items()}
    console.print(tables.metrics_table(f"baselines on {directory} ({split} split)", results))
    if json_out is not None:
        write_json(json_out, {"split": split, "data": str(directory), "results": results})
        console.print(f"wrote {json_out}")
