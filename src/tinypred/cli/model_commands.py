"""`tinypred train`, `eval` and `predict`: the learned predictor."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from tinypred.cli.app import Device, Split, announce, app, console, err_console, nonempty_split, typed
from tinypred.config import load_config
from tinypred.data import dataset
from tinypred.errors import TinypredError
from tinypred.report import tables
from tinypred.training.config import TrainConfig, resolve_device

if TYPE_CHECKING:
    from tinypred.training.distributed import Group

_T = TrainConfig()  # the defaults --help shows
# Each train flag and the TrainConfig key it sets; only flags typed on the command line override.
TRAIN_FLAGS = {
    "epochs": ("--epochs", "epochs"),
    "lr": ("--lr", "lr"),
    "batch_size": ("--batch-size", "batch_size"),
    "loss": ("--loss", "loss.kind"),
    "ce_weight": ("--ce-weight", "loss.ce_weight"),
    "grad_clip": ("--grad-clip", "grad_clip"),
    "patience": ("--patience", "patience"),
    "device": ("--device", "device"),
    "seed": ("--seed", "seed"),
    "bf16": ("--bf16", "bf16"),
    "compile_": ("--compile", "compile"),
    "log_every": ("--log-every", "log_every"),
    "checkpoint_every": ("--checkpoint-every", "checkpoint_every"),
}


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="the dataset directory to train on")],
    out: Annotated[Path, typer.Option("--out", help="the run directory to write")],
    config: Annotated[
        Path | None, typer.Option("--config", help="TrainConfig as .json or .toml (or a run's config.json)")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs")] = _T.epochs,
    lr: Annotated[float, typer.Option("--lr", help="peak learning rate")] = _T.lr,
    batch_size: Annotated[int, typer.Option("--batch-size")] = _T.batch_size,
    loss: Annotated[Literal["l2", "wta", "nll"], typer.Option("--loss")] = _T.loss.kind,
    ce_weight: Annotated[float, typer.Option("--ce-weight", help="the mode-classification term")] = (
        _T.loss.ce_weight
    ),
    grad_clip: Annotated[
        float,
        typer.Option("--grad-clip", help="max global gradient norm (Lightning's gradient_clip_val); 0: off"),
    ] = _T.grad_clip,
    patience: Annotated[int, typer.Option("--patience", help="early stopping on val minFDE@6; 0: off")] = (
        _T.patience
    ),
    device: Annotated[Device, typer.Option("--device")] = _T.device,
    seed: Annotated[int, typer.Option("--seed")] = _T.seed,
    bf16: Annotated[
        bool, typer.Option("--bf16/--no-bf16", help="bfloat16 autocast (Lightning's bf16-mixed)", metavar="")
    ] = _T.bf16,
    compile_: Annotated[
        bool,
        typer.Option(
            "--compile/--no-compile",
            help="torch.compile the forward and loss (CUDA graphs on one NVIDIA GPU); slow first steps",
            metavar="",
        ),
    ] = _T.compile,
    log_every: Annotated[int, typer.Option("--log-every", help="steps between gradient records")] = (
        _T.log_every
    ),
    checkpoint_every: Annotated[
        str, typer.Option("--checkpoint-every", help="mid-epoch checkpoints: N steps (500) or minutes (5min)")
    ] = _T.checkpoint_every,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="any config key, e.g. model.width=128 (repeatable)"),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the run in --out, with its own settings", metavar="")
    ] = False,
    print_config: Annotated[
        bool,
        typer.Option(
            "--print-config", help="print the resolved config (JSON, for --config) and stop", metavar=""
        ),
    ] = False,
    mmap: Annotated[
        bool | None,
        typer.Option(
            "--mmap/--no-mmap",
            help="memory-map the dataset's shards instead of reading them into memory [default: when the "
            "dataset is over a quarter of this machine's memory per process]",
            metavar="",
        ),
    ] = None,
) -> None:
    """Train the K-mode MLP predictor; logs, TensorBoard events and checkpoints go to --out.
    Under torchrun (`torchrun --nproc_per_node N -m tinypred train ...`) with DistributedDataParallel:
    --batch-size is the global batch, divided among the processes; rank 0 writes and prints."""
    from tinypred.config import parse_assignments
    from tinypred.training import distributed
    from tinypred.training.run_dir import read_identity

    given = {name: key for name, (_, key) in TRAIN_FLAGS.items() if typed(ctx, name)}
    overrides = {key: ctx.params[name] for name, key in given.items()} | parse_assignments(set_ or [])
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
        flag = next((TRAIN_FLAGS[name][0] for name, key in given.items() if key == e.arg), None)
        raise TinypredError(e.message, arg=flag or f"--set {e.arg}") from None
    if print_config:
        if distributed.env_rank() == 0:
            console.print(cfg.model_dump_json(indent=2))
        return
    with distributed.from_env(cfg.device) as group:
        ds = dataset.load(data, mmap=_should_map(data, group.world) if mmap is None else mmap)
        _train(ds, cfg, out, resume, group)


BASELINE_FIT_ROWS = 100_000  # of a memory-mapped training split: the reference baselines' fit


def _should_map(data: Path, processes: int) -> bool:
    """Whether to memory-map a dataset for training: when its arrays, held by every process on this
    machine, would take over a quarter of its memory."""
    import os

    from tinypred.training.distributed import local_world

    size = sum(f.stat().st_size for f in data.rglob("*.npy")) if data.is_dir() else 0
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return size * min(processes, local_world()) > memory / 4


def _train(ds: dataset.Dataset, cfg: TrainConfig, out: Path, resume: bool, group: Group) -> None:
    """`train` once the dataset is open: the baselines for reference, the run, the lines to print (rank 0)."""
    import torch.distributed as dist

    from tinypred.data.shards import ShardedScenes
    from tinypred.evaluation.tables import evaluate_scenes
    from tinypred.predictors.baselines import fit_all
    from tinypred.training import distributed
    from tinypred.training import train as run_training
    from tinypred.training.loop import check_trainable
    from tinypred.training.step import uses_cuda_graphs

    refs, error = {}, None
    if group.main:
        announce(cfg.device)
        if cfg.compile:
            graphs = " with CUDA graphs" if uses_cuda_graphs(resolve_device(cfg.device), group.active) else ""
            console.print(f"torch.compile{graphs}: the first steps compile (and an epoch's short last one)")
        if group.active:
            console.print(f"{group.world} processes ({dist.get_backend()}); rank 0 writes and prints")
        try:
            check_trainable(ds)  # before the baselines read the splits
            train_rows, val = ds.train, ds.val
            if isinstance(ds.train, ShardedScenes):  # fitted on a part: a mapped split is never read whole
                train_rows = ds.train.subset(slice(0, BASELINE_FIT_ROWS), check=True)
                val = ds.val.subset(slice(None), check=True)
            fitted = fit_all(train_rows, ("cv", "cv_fan"))
            refs = {name: evaluate_scenes(b.predict(val), val) for name, b in fitted.items()}
        except TinypredError as e:  # the other ranks wait for this: they stop with it
            error = e
    distributed.raise_first(group, error)
    start, first = time.perf_counter(), []

    def epoch_line(r: dict) -> None:
        """One line per epoch (the progress bar covers the steps on a terminal): the losses, the metrics,
        the speed and the time left."""
        first.append(r["epoch"])
        left = (time.perf_counter() - start) / (r["epoch"] - first[0] + 1) * (cfg.epochs - r["epoch"])
        console.print(
            f"epoch {r['epoch']}/{cfg.epochs}: train loss {r['train_loss']:.3f}  val loss {r['val_loss']:.3f}"
            f"  val minFDE@6 {r['val_minFDE@6']:.2f} m  MR@6 {r['val_MR@6']:.3f}"
            f"  ({r['step'] / max(r['seconds'], 1e-9):.0f} steps/s, about {left:.0f} s left)"
        )

    def start_line(started: str) -> None:  # before the first step: a resume that found nothing says so
        if started != "new":
            console.print(f"{out}: {started}")

    result = run_training(
        ds,
        cfg,
        out,
        resume=resume,
        progress=console.is_terminal,
        baselines=refs,
        on_epoch=epoch_line,
        on_start=start_line,
    )
    if not group.main:
        return
    for w in result.warnings:
        err_console.print(f"warning: {w}")
    console.print(
        f"best epoch {result.best_epoch}: val minFDE@6 {result.best_val['minFDE@6']:.3f} m "
        f"(cv {refs['cv']['all']['minFDE@6']:.3f}, cv_fan {refs['cv_fan']['all']['minFDE@6']:.3f}); "
        f"{result.train_seconds:.1f} s of training; wrote {out}"
    )


@app.command("eval")
def eval_(
    run: Annotated[Path, typer.Argument(help="a run directory")],
    data: Annotated[Path, typer.Option("--data", help="the dataset to evaluate on")],
    split: Annotated[Split, typer.Option("--split")] = "test",
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="the results file [default: RUN/eval_<dataset>_<split>.json]"),
    ] = None,
    device: Annotated[
        Device, typer.Option("--device", help="cpu: the same numbers on every machine")
    ] = "cpu",
) -> None:
    """Evaluate a trained run on a split: the metrics table and a JSON file."""
    from tinypred.evaluation.tables import evaluate_scenes
    from tinypred.fileio import write_json
    from tinypred.predictors.model_file import load_run
    from tinypred.predictors.prediction import predict_split

    ds = dataset.load(data)
    scenes = nonempty_split(ds, split)
    loaded = load_run(run, ds, resolve_device(device))
    results = {"mlp": evaluate_scenes(predict_split(loaded, ds, split), scenes)}
    console.print(tables.metrics_table(f"{run} on {data} ({split} split)", results))
    # Named by the dataset too: an evaluation on other data never overwrites this one.
    path = json_out or run / f"eval_{Path(data).resolve().name}_{split}.json"
    write_json(path, {"run": str(run), "data": str(data), "split": split, "results": results})
    console.print(f"wrote {path}")


@app.command()
def predict(
    data: Annotated[Path, typer.Option("--data", help="the dataset to predict")],
    out: Annotated[Path, typer.Option("--out", help="the .parquet file to write")],
    run: Annotated[Path | None, typer.Argument(help="a run directory (or give --baseline)")] = None,
    split: Annotated[Split, typer.Option("--split")] = "test",
    format_: Annotated[
        Literal["tinypred", "av2"],
        typer.Option("--format", help="tinypred: every mode, world frame; av2: a challenge submission"),
    ] = "tinypred",
    device: Annotated[
        Device, typer.Option("--device", help="cpu: the same numbers on every machine")
    ] = "cpu",
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="predict with this baseline, not a run")
    ] = None,
) -> None:
    """Predict a split and write it as Parquet: tinypred's table (one row per sample and mode, world
    frame) or an Argoverse 2 challenge submission (focal tracks, 6 modes, city frame)."""
    from tinypred.data.export import prediction_table, write_parquet

    if (run is None) == (baseline is None):
        raise TinypredError("give a run directory or --baseline NAME, not both or neither", arg="RUN")
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

        pred = predict_split(load_run(run, ds, resolve_device(device)), ds, split, with_scale=False)
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
