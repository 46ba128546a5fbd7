"""The `tinypred` command line: a thin layer over the Python API.

User errors (bad flags, files, configs) print one line `tinypred: error: ...` and exit 1; typer's own
usage errors exit 2. Nothing else is caught: a traceback means a bug in tinypred. The library's errors
name Python arguments (`n_train`); this is the one place they become flags (`--n-train`).

`app` holds the typer apps, the consoles and that translation; the commands live by subject in
`data_commands`, `model_commands` and `experiment_commands`. The top of the import order: the CLI may
import every part of tinypred, and nothing imports it.
"""

from __future__ import annotations

# Importing the command modules registers their commands on `app`.
from tinypred.cli import (  # noqa: F401
    data_commands,
    experiment_commands,
    model_commands,
    profile_command,
    ship_commands,
)
from tinypred.cli.app import app, main, whole_short_helps

whole_short_helps(app)

__all__ = ["app", "main"]
