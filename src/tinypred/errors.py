"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class TinypredError(ValueError):
    """Bad user input: a file, field or flag and what was expected. Never a bug in tinypred."""
