"""`tinypred export`: a trained model as one self-contained ONNX graph or torch.export program."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from tinypred.cli.app import app, console
from tinypred.errors import TinypredError

SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2"}


@app.command("export")
def export_(
    run: Annotated[Path, typer.Argument(help="a run directory or its model.safetensors")],
    out: Annotated[Path, typer.Option("--out", help="the file to write (.onnx or .pt2)")],
    format_: Annotated[
        Literal["onnx", "pt2"],
        typer.Option("--format", help="onnx: for onnxruntime; pt2: a torch.export program"),
    ] = "onnx",
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="check the export on this dataset's samples [default: scenes drawn at the model's shapes]",
        ),
    ] = None,
    samples: Annotated[int, typer.Option("--samples", min=2, help="samples to check the export on")] = 256,
) -> None:
    """Export a trained model (encoded arrays in; modes in the agent frame and probs out), normaliser and
    feature flattening inside; written only if it matches the model within 1e-4 + 1e-5 x |value| on a
    batch."""
    from tinypred.predictors.api import Predictor
    from tinypred.predictors.export import RELATIVE, TOLERANCE, export

    if out.suffix != SUFFIXES[format_]:
        raise TinypredError(
            f"{out}: expected a {SUFFIXES[format_]} file name for --format {format_}", arg="--out"
        )
    try:
        predictor = Predictor.load(run)
    except TinypredError as e:
        raise TinypredError(e.message, arg=None if e.arg in (None, "path") else "RUN") from None
    try:
        check = export(predictor, format_, out, data, samples)
    except TinypredError as e:
        raise TinypredError(
            e.message, arg={"data": "--data", "samples": "--samples"}.get(e.arg or "", e.arg)
        ) from None
    console.print(
        f"checked on {check.samples} samples ({check.source}): max |difference| from the model "
        f"{check.max_abs_diff:.2e} (limit {TOLERANCE:g} + {RELATIVE:g} x |value|)",
        highlight=False,
    )
    console.print(f"wrote {out} ({format_}, {out.stat().st_size / 1e6:.2f} MB)", highlight=False)
