"""`tinypred train`, `eval` and `predict`: the learned predictor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tinypred.cli.app import app, console, err_console, nonempty_split
from tinypred.config import load_config
from tinypred.data import dataset
from tinypred.errors import TinypredError
from tinypred.report import tables


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
    checkpoint_every: Annotated[
        str | None,
        typer.Option("--checkpoint-every", help="mid-epoch checkpoints: N steps (500) or minutes (5min)"),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the run in --out, with its own settings")
    ] = False,
) -> None:
    """Train the K-mode MLP predictor; logs, TensorBoard events and checkpoints go to --out."""
    from tinypred.config import parse_assignments
    from tinypred.evaluation.tables import evaluate_scenes
    from tinypred.predictors.baselines import fit_all
    from tinypred.training import TrainConfig
    from tinypred.training import train as run_training
    from tinypred.training.run_dir import read_identity

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
        "checkpoint_every": checkpoint_every,
    }
    overrides = {k: v for k, v in values.items() if v is not None} | parse_assignments(set_ or [])
    # A resume starts from the run's own settings: only what is given again is compared with them.
    saved = read_identity(out) if resume and config is None else None
    try:
        cfg = load_config(
            TrainConfig,
            config,
            overrides,
            base=saved["train"] if saved else None,
            base_source=f"{out / 'config.json'}: train",
        )
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
    if result.started != "new":
        console.print(f"{out}: {result.started}", highlight=False)
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
    scenes = nonempty_split(ds, split)
    loaded = load_run(run, ds)
    results = {"mlp": evaluate_scenes(predict_split(loaded, ds, split), scenes)}
    console.print(tables.metrics_table(f"{run} on {data} ({split} split)", results))
    path = json_out or run / f"eval_{split}.json"
    write_json(path, {"run": str(run), "data": str(data), "split": split, "results": results})
    console.print(f"wrote {path}")


@app.command()
def predict(
    run: Annotated[Path | None, typer.Argument(help="a run directory (or give --baseline)")] = None,
    data: Annotated[Path, typer.Option("--data", help="a dataset directory")] = Path("data/ds"),
    out: Annotated[Path, typer.Option("--out", help="the .parquet file to write")] = Path(
        "predictions.parquet"
    ),
    split: Annotated[str, typer.Option("--split")] = "test",
    format_: Annotated[
        str,
        typer.Option("--format", help="tinypred (every mode, world frame) or av2 (a challenge submission)"),
    ] = "tinypred",
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="predict with this baseline, not a run")
    ] = None,
) -> None:
    """Predict a split and write it as Parquet: tinypred's table (one row per sample and mode, world
    frame) or an Argoverse 2 challenge submission (focal tracks, 6 modes, city frame)."""
    from tinypred.data.export import prediction_table, write_parquet

    if (run is None) == (baseline is None):
        raise TinypredError("give a run directory or --baseline NAME, not both or neither", arg="RUN")
    if format_ not in ("tinypred", "av2"):
        raise TinypredError(f"expected tinypred or av2, got {format_!r}", arg="--format")
    if out.suffix != ".parquet":
        raise TinypredError(f"{out}: expected a .parquet file name", arg="--out")
    ds = dataset.load(data)
    scenes = nonempty_split(ds, split)
    if baseline is not None:
        from tinypred.predictors.baselines import fit_all

        if len(ds.train) == 0 or not ds.train.has_future:
            raise TinypredError(
                f"{data} has no training split with known futures to fit it on", arg="--baseline"
            )
        pred = fit_all(ds.train, (baseline,))[baseline].predict(scenes)
    else:
        from tinypred.predictors.model_file import load_run
        from tinypred.predictors.prediction import predict_split

        pred = predict_split(load_run(run, ds), ds, split, with_scale=False)
    if format_ == "av2":
        from tinypred.data.av2.submission import submission_table, write_submission

        table = submission_table(pred.modes, pred.probs, scenes)
        write_submission(out, table)
    else:
        table = prediction_table(pred.modes, pred.probs, scenes)
        write_parquet(out, table)
    console.print(
        f"wrote {table.num_rows} rows ({len(scenes)} samples, {format_} format) to {out}", highlight=False
    )


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
    "checkpoint_every": "--checkpoint-every",
}
