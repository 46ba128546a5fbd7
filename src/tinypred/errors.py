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
    """Training stopped on SIGTERM or SIGINT after writing a checkpoint (`training.preemption`): resume it.
    The CLI exits as a process the signal ended would (128 + its number: 143 for SIGTERM, which is what
    a scheduler reads)."""

    def __init__(self, message: str, exit_code: int = 143) -> None:
        super().__init__(message)
        self.exit_code = exit_code
