"""`tinypred data ...` and `tinypred baselines`: datasets in and out, and the baselines on them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Literal

import typer

from tinypred.cli.app import Split, app, console, data_app, nonempty_split
from tinypred.config import load_config
from tinypred.data import dataset
from tinypred.data.scene_config import SceneConfig
from tinypred.data.store import SHARD_SIZE
from tinypred.errors import TinypredError
from tinypred.report import tables


@data_app.command("generate")
def data_generate(
    out: Annotated[Path, typer.Option("--out", help="the dataset directory to write (replaced as a whole)")],
    n_train: Annotated[int, typer.Option("--n-train")] = 20000,
    n_val: Annotated[int, typer.Option("--n-val")] = 4000,
    n_test: Annotated[int, typer.Option("--n-test")] = 4000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    config: Annotated[Path | None, typer.Option("--config", help="scene config, .json or .toml")] = None,
    shard_size: Annotated[
        int, typer.Option("--shard-size", help="samples per shard: one directory of .npy files each")
    ] = SHARD_SIZE,
) -> None:
    """Generate the three splits of synthetic scenes, written shard by shard (memory stays bounded)."""
    cfg = load_config(SceneConfig, config)
    start = time.perf_counter()
    dataset.write(cfg, n_train, n_val, n_test, seed, out, shard_size=shard_size)
    total = n_train + n_val + n_test
    console.print(
        f"wrote {total} scenes to {out} (train {n_train}, val {n_val}, test {n_test}, seed {seed}) "
        f"in {time.perf_counter() - start:.1f} s"
    )


@data_app.command("import-av2")
def data_import_av2(
    src: Annotated[Path, typer.Argument(help="an AV2 root (train/ val/ test/), or one split with --split")],
    out: Annotated[Path, typer.Option("--out", help="the dataset directory to write (replaced as a whole)")],
    split: Annotated[Split | None, typer.Option("--split", help="SRC is this one split")] = None,
    agents: Annotated[
        Literal["focal", "scored"], typer.Option("--agents", help="scored: the focal and every scored track")
    ] = "focal",
    history: Annotated[int, typer.Option("--history", help="observed steps per sample")] = 50,
    future: Annotated[int, typer.Option("--future", help="steps to predict")] = 60,
    lanes: Annotated[int, typer.Option("--lanes", help="L: nearest map elements per sample")] = 16,
    lane_points: Annotated[int, typer.Option("--lane-points", help="P: points per map element")] = 10,
    neighbours: Annotated[int, typer.Option("--neighbours", help="M: nearest other agents per sample")] = 8,
    workers: Annotated[int, typer.Option("--workers", help="processes reading scenarios")] = 1,
    limit: Annotated[
        int | None, typer.Option("--limit", help="at most this many scenarios per split")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="stop at the first bad scenario", metavar="")
    ] = False,
) -> None:
    """Import Argoverse 2 scenarios and maps into a tinypred dataset (bad scenarios are skipped and listed
    in OUT/import_report.json)."""
    from tinypred.data.av2.importer import import_av2

    with _import_progress() as progress:
        report = import_av2(
            src,
            out,
            split=split,
            agents=agents,
            history=history,
            future=future,
            lanes=lanes,
            lane_points=lane_points,
            neighbours=neighbours,
            workers=workers,
            limit=limit,
            strict=strict,
            progress=progress,
        )
    for name, row in report["splits"].items():
        console.print(
            f"{name}: {row['imported']} of {row['scenarios']} scenarios imported ({row['samples']} samples), "
            f"{row['skipped']} skipped",
            highlight=False,
        )
    console.print(
        f"wrote {out}; skipped scenarios and their reasons: {out / 'import_report.json'}", highlight=False
    )


@data_app.command("export-av2")
def data_export_av2(
    directory: Annotated[Path, typer.Argument(help="a dataset directory")],
    out: Annotated[Path, typer.Option("--out", help="the folder of scenario folders to write")],
    split: Annotated[Split, typer.Option("--split")] = "test",
) -> None:
    """Write every sample of a split as Argoverse 2 scenario folders (scenario parquet + map JSON)."""
    from tinypred.data.av2.exporter import export_av2

    ds = dataset.load(directory)
    summary = export_av2(ds, out, split=split)
    console.print(f"wrote {summary['scenarios']} scenarios ({split} split of {directory}) to {out}")


@contextlib.contextmanager
def _import_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback(split, done, total) for the import: a rich bar with scenarios/s on a terminal,
    otherwise a plain line per tenth of each split (logs and CI read those)."""
    start: dict[str, float] = {}
    last = [time.perf_counter()]  # a split's clock starts when the previous one's last chunk ended

    def rate(split: str, done: int) -> float:
        now = time.perf_counter()
        start.setdefault(split, last[0])
        last[0] = now
        return done / max(now - start[split], 1e-9)

    if console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        )
        tasks: dict[str, int] = {}

        def update(split: str, done: int, total: int) -> None:
            speed = rate(split, done)
            if split not in tasks:
                tasks[split] = bar.add_task(split, total=total)
            bar.update(tasks[split], completed=done, description=f"{split} ({speed:.0f} scenarios/s)")

        with bar:
            yield update
        return
    shown: dict[str, int] = {}

    def show(split: str, done: int, total: int) -> None:
        speed = rate(split, done)
        tenth = 10 * done // max(total, 1)
        if tenth > shown.get(split, -1) or done == total:
            shown[split] = tenth
            console.print(f"  {split}: {done}/{total} scenarios, {speed:.0f}/s", highlight=False)

    yield show


@data_app.command("inspect")
def data_inspect(
    directory: Annotated[Path, typer.Argument(help="a dataset directory")],
    plot: Annotated[
        Path | None, typer.Option("--plot", help="draw a grid of random scenes to this PNG")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="which random scenes to draw")] = 0,
    split: Annotated[
        Split | None, typer.Option("--split", help="draw from this split [default: train]")
    ] = None,
    run: Annotated[Path | None, typer.Option("--run", help="draw this run's predicted modes too")] = None,
) -> None:
    """Counts per family and split, speed and displacement statistics; optionally a picture of samples
    (map elements, neighbours, past, future and, with --run, the predicted modes)."""
    ds = dataset.load(directory)
    source = f"seed {ds.seed}" if ds.source == "synthetic" else ds.source
    title = f"{directory}  ({source}, dt {ds.dt:g} s, schema {dataset.SCHEMA_VERSION})"
    console.print(tables.summary_table(title, dataset.summary(ds)))
    if plot is not None:
        from tinypred.report import figures as plots

        if plot.suffix.lower() != ".png":
            raise TinypredError(f"--plot {plot}: expected a .png file name")
        name = split or next((s for s in ("train", "val", "test") if len(ds.split(s))), "train")
        scenes = nonempty_split(ds, name)
        modes = probs = None
        if run is not None:
            from tinypred.predictors.model_file import load_run
            from tinypred.predictors.prediction import predict_split

            pred = predict_split(load_run(run, ds), ds, name, with_scale=False)
            modes, probs = pred.modes, pred.probs
        plots.scene_grid(scenes, plot, seed=seed, modes=modes, probs=probs)
        console.print(f"drew {name} samples to {plot}")


@data_app.command("verify")
def data_verify(
    directory: Annotated[Path, typer.Argument(help="a dataset directory")],
) -> None:
    """Check every value of every shard (what training on a memory-mapped dataset checks only for the rows
    it reads), one shard in memory at a time; a damaged shard is named in one line, exit code 1."""
    start = time.perf_counter()
    counts = dataset.verify(directory)
    console.print(
        f"{directory}: {counts['samples']} samples in {counts['shards']} shards, every value checked "
        f"({time.perf_counter() - start:.1f} s)",
        highlight=False,
    )


@app.command()
def baselines(
    directory: Annotated[Path, typer.Argument(help="a dataset directory")],
    split: Annotated[Split, typer.Option("--split")] = "test",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the results to this file")
    ] = None,
    floor: Annotated[
        bool,
        typer.Option(
            "--floor",
            help="add the bayes row and floor (synthetic data only): the best any predictor can do, from "
            "the generator itself; about a minute per 4000 scenes",
        ),
    ] = False,
    samples: Annotated[int, typer.Option("--samples", min=6, help="--floor: draws per scene")] = 512,
    seed: Annotated[int, typer.Option("--seed", min=0, help="--floor: the draws' seed")] = 0,
) -> None:
    """Fit every baseline on the training split and evaluate it on a split."""
    from tinypred.evaluation.tables import evaluate_scenes
    from tinypred.fileio import write_json
    from tinypred.predictors.baselines import fit_all
    from tinypred.predictors.bayes import bayes_floor

    ds = dataset.load(directory)
    scenes = nonempty_split(ds, split)
    predictions = {name: b.predict(scenes) for name, b in fit_all(ds.train).items()}
    results = {name: evaluate_scenes(p, scenes) for name, p in predictions.items()}
    payload: dict = {"split": split, "data": str(directory), "results": results}
    if floor:
        found = bayes_floor(ds, split, samples, samples, seed, compare=predictions)
        results["bayes"] = found.row(scenes)
        payload |= {"floor": found.floor, "expected": found.expected}
    console.print(tables.metrics_table(f"baselines on {directory} ({split} split)", results))
    if floor:
        console.print(
            tables.floor_table(f"the floor: expected over {samples} held-out draws per scene", found.floor)
        )
    if json_out is not None:
        write_json(json_out, payload)
        console.print(f"wrote {json_out}")
