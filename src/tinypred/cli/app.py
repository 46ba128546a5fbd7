"""The command line's shared parts: the typer apps, the consoles, and the one place where the
library's errors become command-line messages (its argument names become flags)."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from typing import Annotated, Literal

import typer
from rich.console import Console

from tinypred.data.dataset import Dataset
from tinypred.data.encoding import EncodedScenes
from tinypred.errors import TinypredError

app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help text: wrapped, never cut short with an ellipsis
    add_completion=False,
    pretty_exceptions_enable=False,
    help="tinypred: a tiny learned multimodal trajectory predictor, and backprop you can read.",
)
data_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Datasets: generate, inspect, import from and export to Argoverse 2.",
    short_help="Datasets: generate, inspect, import from and export to Argoverse 2",
)
app.add_typer(data_app, name="data")


def whole_short_helps(typer_app: typer.Typer) -> None:
    """Give every command its docstring's first sentence as the line `--help` lists it with: click would
    cut the docstring at 45 characters and end it with an ellipsis."""
    for command in typer_app.registered_commands:
        if command.short_help is None and command.callback is not None and command.callback.__doc__:
            first = re.split(r"\.\s", command.callback.__doc__.strip().split("\n\n")[0])[0]
            command.short_help = " ".join(first.split()).removesuffix(".")
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            whole_short_helps(group.typer_instance)


def _version(value: bool) -> None:
    if value:
        from tinypred import __version__

        print(f"tinypred {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and stop", metavar=""
        ),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="CPU threads for torch [default: $OMP_NUM_THREADS, else the CPUs this process may use]",
        ),
    ] = None,
) -> None:
    """tinypred: a tiny learned multimodal trajectory predictor, and backprop you can read."""
    # The library logs (the "tinypred" logger) and prints nothing; the command line shows its INFO lines.
    logger = logging.getLogger("tinypred")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    use_threads(threads or default_threads())


def use_threads(n: int) -> None:
    """torch's CPU threads for this command. A command that never imports torch (the data commands, 2 s
    of its start) pays nothing: torch takes $OMP_NUM_THREADS as it loads (so do the processes a command
    starts); a torch imported already is set."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def default_threads() -> int:
    """$OMP_NUM_THREADS when set (torchrun sets it to 1 per process), else the CPUs this process may use:
    torch's own default counts every core of the machine, not those a taskset, container or job
    scheduler allows, and two processes on 2 cores then fight over 4 threads."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else len(os.sched_getaffinity(0))


# markup=False: paths and messages are printed as they are ("a[/b]" is a file name, not a closing tag).
console = Console(markup=False)
if not console.is_terminal:  # piped or captured: rich would squeeze tables into 80 columns and cut
    console.width = 1000  # them; a log file has no width, so a table keeps its natural one...
    console.soft_wrap = True  # ... and a long line stays one line
err_console = Console(stderr=True, soft_wrap=True, markup=False)  # a message is one line, however long


Device = Literal["auto", "cpu", "cuda", "mps"]
Split = Literal["train", "val", "test"]


def typed(ctx: typer.Context, name: str) -> bool:
    """Whether the option `name` was given on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def announce(device: str) -> None:
    """The first line of a long command: where it runs, on how many threads."""
    from tinypred.training.config import resolve_device

    n = torch_threads()
    console.print(f"device {resolve_device(device)}, {n} CPU thread{'' if n == 1 else 's'}")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


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
    "run": "RUN",
    "data": "--data",
    "dataset": "DATASET",
    "batch_size": "--batch-size",
    "shard_size": "--shard-size",
}


def user_message(e: TinypredError) -> str:
    """The error as the command line reports it: the library's argument name replaced by its flag."""
    if e.arg is None:
        return e.message
    return f"{ARG_FLAGS.get(e.arg, e.arg)}: {e.message}"


class _Terminated(BaseException):
    """SIGTERM outside a training (which stops politely by itself: `training.preemption`): the command
    unwinds, and the outputs it was still writing (temporary files and directories) are removed on the
    way. A BaseException, so that no `except Exception` on the way swallows it."""


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends the process at once
    raise _Terminated


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        return default


def _rank() -> int:
    """This process's rank under torchrun (0 without it), read before any process group exists."""
    return _env_int("RANK", 0)


def _command(argv: list[str]) -> str | None:
    """The command named in argv (the arguments after the program), past the global options."""
    rest = iter(argv)
    for token in rest:
        if token == "--threads":
            next(rest, None)
        elif not token.startswith("-"):
            return token
    return None


def _quiet_rank() -> bool:
    """A training process of several, not rank 0: it prints nothing of its own (rank 0 speaks for all)."""
    return _env_int("WORLD_SIZE", 1) > 1 and _rank() > 0 and _command(sys.argv[1:]) == "train"


def _app_as_a_quiet_rank() -> None:
    """The app on a `_quiet_rank`: not --help, and not a usage error (each rank parses the same flags:
    rank 0 says it once), with rank 0's exit code. Its failures that are not user errors still reach
    stderr."""
    # click's ClickException, the base of usage errors, which typer does not export under that name (it
    # vendors click since 0.16)
    click_exception = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- for the rest of the process
    try:
        app(standalone_mode=False)
    except click_exception as e:
        sys.exit(e.exit_code)
    except typer.Abort:  # rank 0 prints "Aborted!" and exits with 1
        sys.exit(1)


def main() -> None:
    if _env_int("WORLD_SIZE", 1) <= 1:  # under torchrun SIGTERM keeps its default: it ends a rank at once
        signal.signal(signal.SIGTERM, _terminate)
    try:
        _app_as_a_quiet_rank() if _quiet_rank() else app()
    except _Terminated:
        fail("stopped by SIGTERM before it finished; an output it was still writing was removed", 143)
    except TinypredError as e:
        # Under torchrun every rank meets the same user error (the same data and flags; a training stop is
        # agreed among them): rank 0 reports it, once. Other failures are a rank's own: each says its own.
        if _rank() > 0:
            sys.exit(e.exit_code)
        fail(user_message(e), e.exit_code)
    except OSError as e:  # a path the system refused: read-only, a directory, not a directory, full disk
        where = f"{e.filename}: " if e.filename else ""
        fail(f"{where}{e.strerror or e}")
    except MemoryError:
        fail("not enough memory for this; ask for less (fewer scenes, a smaller batch)")


def fail(message: str, code: int = 1) -> None:
    """One line on stderr, exit code `code`: a user error, never a traceback."""
    err_console.print(f"tinypred: error: {message}", highlight=False, soft_wrap=True)
    sys.exit(code)
