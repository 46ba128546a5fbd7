"""The command line's shared parts: the typer apps, the consoles, and the one place where the
library's errors become command-line messages (its argument names become flags)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from tinypred.data.dataset import Dataset
from tinypred.data.encoding import EncodedScenes
from tinypred.errors import TinypredError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="tinypred: a tiny learned multimodal trajectory predictor, and backprop you can read.",
)
data_app = typer.Typer(
    no_args_is_help=True, help="Datasets: generate, inspect, import from and export to Argoverse 2."
)
app.add_typer(data_app, name="data")

# markup=False: paths and messages are printed as they are ("a[/b]" is a file name, not a closing tag).
console = Console(markup=False)
if not console.is_terminal:  # piped or captured: rich would squeeze tables into 80 columns...
    console.width = 120
    console.soft_wrap = True  # ... and cut a long line into two
err_console = Console(stderr=True, soft_wrap=True, markup=False)  # a message is one line, however long


def nonempty_split(ds: Dataset, split: str) -> EncodedScenes:
    """The split's scenes; an empty one is a user error (there is nothing to score)."""
    scenes = ds.split(split)
    if len(scenes) == 0:
        raise TinypredError(f"--split {split}: the {split} split of {ds.path} is empty")
    return scenes


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
    "baseline": "--baseline",
    "epochs": "--epochs",
    "scenes": "--data",
    "src": "SRC",
    "agents": "--agents",
    "history": "--history",
    "future": "--future",
    "lanes": "--lanes",
    "lane_points": "--lane-points",
    "neighbours": "--neighbours",
    "workers": "--workers",
    "limit": "--limit",
    "overrides": "--set",
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
        fail(user_message(e))
    except OSError as e:  # a path the system refused: read-only, a directory, not a directory, full disk
        where = f"{e.filename}: " if e.filename else ""
        fail(f"{where}{e.strerror or e}")
    except MemoryError:
        fail("not enough memory for this; ask for less (fewer scenes, a smaller batch)")


def fail(message: str) -> None:
    """One line on stderr, exit code 1: a user error, never a traceback."""
    err_console.print(f"tinypred: error: {message}", highlight=False, soft_wrap=True)
    sys.exit(1)
