"""The `tinypred` command line: a thin layer over the Python API.

User errors (bad flags, files, configs) print one line `tinypred: error: ...` and exit 1; typer's own
usage errors exit 2. Nothing else is caught: a traceback means a bug in tinypred. The library's errors
name Python arguments (`n_train`); this is the one place they become flags (`--n-train`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tinypred.config import load_config
from tinypred.data import dataset
from tinypred.data.scene_config import SceneConfig
from tinypred.errors import TinypredError
from tinypred.report import tables

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
    title = f"{directory}  (seed {ds.seed}, dt {ds.dt:g} s, schema {dataset.SCHEMA_VERSION})"
    console.print(tables.summary_table(title, dataset.summary(ds)))
    if plot is not None:
        from tinypred.report import figures as plots

        if plot.suffix.lower() != ".png":
            raise TinypredError(f"--plot {plot}: expected a .png file name")
        plots.scene_grid(ds.train if len(ds.train) else ds.test, plot, seed=seed)
        console.print(f"drew scenes to {plot}")


def _nonempty(ds: dataset.Dataset, split: str):
    """The split's scenes; an empty one is a user error (there is nothing to score)."""
    scenes = ds.split(split)
    if len(scenes) == 0:
        raise TinypredError(f"--split {split}: the {split} split of {ds.path} is empty")
    return scenes


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
    scenes = _nonempty(ds, split)
    results = {name: evaluate_scenes(b.predict(scenes), scenes) for name, b in fit_all(ds.train).items()}
    console.print(tables.metrics_table(f"baselines on {directory} ({split} split)", results))
    if json_out is not None:
        write_json(json_out, {"split": split, "data": str(directory), "results": results})
        console.print(f"wrote {json_out}")


@app.command()
def train(
    data: Annotated[Path, typer.Option("--data", help="a dataset directory")],
    out: Annotated[Path, typer.Option("--out", help="the run directory to write")],
    config: Annotated[Path | None, typer.Option("--config", help="TrainConfig as .json or .toml")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs")] = None,
    lr: Annotated[float | None, typer.Option("--lr")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size")] = None,
    loss: Annotated[str | None, typer.Option("--loss", help="l2, wta or nll")] = None,
    ce_weight: Annotated[float | None, typer.Option("--ce-weight")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or mps")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    bf16: Annotated[bool | None, typer.Option("--bf16/--no-bf16", help="bfloat16 autocast")] = None,
    patience: Annotated[int | None, typer.Option("--patience", help="early stopping; 0 = off")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="any config key, e.g. model.width=128")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out")] = False,
) -> None:
    """Train the K-mode MLP predictor; logs, TensorBoard events and checkpoints go to --out."""
    from tinypred.config import parse_assignments
    from tinypred.evaluation.tables import evaluate_scenes
    from tinypred.predictors.baselines import fit_all
    from tinypred.training import TrainConfig
    from tinypred.training import train as run_training

    values = {
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "loss.kind": loss,
        "loss.ce_weight": ce_weight,
        "device": device,
        "seed": seed,
        "bf16": bf16,
        "patience": patience,
    }
    overrides = {k: v for k, v in values.items() if v is not None} | parse_assignments(set_ or [])
    try:
        cfg = load_config(TrainConfig, config, overrides)
    except TinypredError as e:  # an override's key -> the flag that set it
        if e.arg is None or e.arg == "overrides":
            raise
        flag = TRAIN_FLAGS.get(e.arg) if e.arg in values and values[e.arg] is not None else None
        raise TinypredError(e.message, arg=flag or f"--set {e.arg}") from None
    ds = dataset.load(data)
    refs = {
        n: evaluate_scenes(b.predict(ds.val), ds.val) for n, b in fit_all(ds.train, ("cv", "cv_fan")).items()
    }
    result = run_training(
        ds,
        cfg,
        out,
        resume=resume,
        progress=console.is_terminal,
        baselines=refs,
        on_epoch=lambda r: console.print(
            f"epoch {r['epoch'] + 1}: train loss {r['train_loss']:.3f}  val loss {r['val_loss']:.3f}"
            f"  val minFDE@6 {r['val_minFDE@6']:.2f}  MR@6 {r['val_MR@6']:.3f}",
            highlight=False,
        ),
    )
    for w in result.warnings:
        err_console.print(f"warning: {w}", highlight=False)
    console.print(
        f"best epoch {result.best_epoch + 1}: val minFDE@6 {result.best_val['minFDE@6']:.3f} m "
        f"(cv {refs['cv']['all']['minFDE@6']:.3f}, cv_fan {refs['cv_fan']['all']['minFDE@6']:.3f}); "
        f"{result.train_seconds:.1f} s of training; wrote {out}"
    )


@app.command("eval")
def eval_(
    run: Annotated[Path, typer.Argument(help="a run directory")],
    data: Annotated[Path, typer.Option("--data", help="a dataset directory")],
    split: Annotated[str, typer.Option("--split")] = "test",
    json_out: Annotated[Path | None, typer.Option("--json", help="default: RUN/eval_<split>.json")] = None,
) -> None:
    """Evaluate a trained run on a split: the metrics table and a JSON file."""
    from tinypred.evaluation.tables import evaluate_scenes
    from tinypred.fileio import write_json
    from tinypred.predictors.model_file import load_run
    from tinypred.predictors.prediction import predict_split

    ds = dataset.load(data)
    scenes = _nonempty(ds, split)
    loaded = load_run(run, ds)
    results = {"mlp": evaluate_scenes(predict_split(loaded, ds, split), scenes)}
    console.print(tables.metrics_table(f"{run} on {data} ({split} split)", results))
    path = json_out or run / f"eval_{split}.json"
    write_json(path, {"run": str(run), "data": str(data), "split": split, "results": results})
    console.print(f"wrote {path}")


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="a run directory")],
    data: Annotated[Path, typer.Option("--data", help="a dataset directory")],
    out: Annotated[Path, typer.Option("--out", help="a .parquet file")],
    split: Annotated[str, typer.Option("--split")] = "test",
) -> None:
    """Write the K modes of every scene, in the world frame, as Parquet (one row per scene and mode)."""
    from tinypred.data.export import prediction_table, write_parquet
    from tinypred.predictors.model_file import load_run
    from tinypred.predictors.prediction import predict_split

    if out.suffix != ".parquet":
        raise TinypredError(f"--out {out}: expected a .parquet file name")
    ds = dataset.load(data)
    scenes = _nonempty(ds, split)
    loaded = load_run(run, ds)
    pred = predict_split(loaded, ds, split)
    table = prediction_table(pred.modes, pred.probs, scenes)
    write_parquet(out, table)
    console.print(
        f"wrote {table.num_rows} rows ({len(scenes)} scenes x {loaded.model.cfg.modes} modes) to {out}"
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out")] = Path("runs/demo"),
    seed: Annotated[int, typer.Option("--seed")] = 11,
    quick: Annotated[bool, typer.Option("--quick", help="smaller data and budgets, same pipeline")] = False,
) -> None:
    """The main job: data, baselines, training, test, ablation, device timing, figures and the report."""
    from tinypred.experiments.demo import run_demo

    metrics = run_demo(
        out,
        seed=seed,
        quick=quick,
        log=lambda s: console.print(s, markup=False, highlight=False),
        progress=console.is_terminal,
    )
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
    epochs: Annotated[int | None, typer.Option("--epochs")] = None,
    split: Annotated[str, typer.Option("--split")] = "test",
) -> None:
    """L2 vs winner-take-all, with and without the classification term, and two learning rates."""
    from tinypred.experiments.ablation import run_ablation
    from tinypred.fileio import write_json
    from tinypred.report import figures as plots
    from tinypred.training import TrainConfig

    cfg = load_config(TrainConfig, config, {"epochs": epochs} if epochs is not None else None)
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
        str, typer.Argument(help="init, overfit, lr-range, curvature, saliency, gradients or toy")
    ],
    data: Annotated[Path, typer.Option("--data", help="a dataset directory")],
    config: Annotated[Path | None, typer.Option("--config", help="TrainConfig as .json or .toml")] = None,
    out: Annotated[Path, typer.Option("--out", help="where <check>.png and <check>.json go")] = Path(
        "runs/diagnose"
    ),
) -> None:
    """A training-craft check: its numbers, a verdict in plain words and a figure. Exit 1 if it fails."""
    from tinypred.diagnostics import run_check
    from tinypred.fileio import write_json
    from tinypred.training import TrainConfig

    cfg = load_config(TrainConfig, config)
    result = run_check(check, dataset.load(data), cfg, out)
    write_json(out / f"{check}.json", result.to_json())
    console.print(f"[bold]{check}[/bold]: {'PASSED' if result.passed else 'FAILED'}")
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


# The library's argument names, as this command line spells them.
ARG_FLAGS = {
    "n_train": "--n-train",
    "n_val": "--n-val",
    "n_test": "--n-test",
    "seed": "--seed",
    "split": "--split",
    "out": "--out",
    "out_dir": "--out",
    "device": "--device",
    "resume": "--resume",
    "check": "CHECK",
    "overrides": "--set",
}
# `train`'s own flags, by the config key each one sets.
TRAIN_FLAGS = {
    "epochs": "--epochs",
    "lr": "--lr",
    "batch_size": "--batch-size",
    "loss.kind": "--loss",
    "loss.ce_weight": "--ce-weight",
    "device": "--device",
    "seed": "--seed",
    "bf16": "--bf16",
    "patience": "--patience",
}


def user_message(e: TinypredError) -> str:
    """The error as the command line reports it: the library's argument name replaced by its flag."""
    if e.arg is None:
        return e.message
    return f"{ARG_FLAGS.get(e.arg, e.arg)}: {e.message}"


def main() -> None:
    try:
        app()
    except TinypredError as e:
        err_console.print(f"tinypred: error: {user_message(e)}", highlight=False, soft_wrap=True)
        sys.exit(1)
