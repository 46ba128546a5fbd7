"""The one exception type the CLI turns into a one-line message instead of a traceback."""

from __future__ import annotations


class TinypredError(ValueError):
    """Bad user input: a file, field or argument and what was expected. Never a bug in tinypred.

    `arg` names the Python argument (or config field) at fault, in the library's own words; the message
    then reads "arg: message". The CLI, and only the CLI, translates `arg` into its flag (`n_train` ->
    `--n-train`), so the library never speaks of flags.
    """

    exit_code = 1  # what the CLI exits with

    def __init__(self, message: str, *, arg: str | None = None) -> None:
        self.arg, self.message = arg, message
        super().__init__(f"{arg}: {message}" if arg else message)


class Stopped(TinypredError):
    """Training stopped on SIGTERM after writing a checkpoint (`training.preemption`): resume it. The CLI
    exits as a process SIGTERM ended would (128 + 15), which is what a scheduler reads."""

    exit_code = 143
