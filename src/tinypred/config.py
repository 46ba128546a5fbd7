"""Reading config files (JSON or TOML) into validated pydantic models, with one-line errors."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tinypred.errors import TinypredError

M = TypeVar("M", bound=BaseModel)


def one_line(err: ValidationError) -> str:
    """The first pydantic error as 'field.path: message'."""
    first = err.errors()[0]
    msg = first["msg"].removeprefix("Value error, ")
    loc = ".".join(str(x) for x in first["loc"])
    return f"field '{loc}': {msg}" if loc else msg


def read_mapping(path: str | Path) -> dict[str, Any]:
    """A JSON (.json) or TOML (.toml) file holding one table/object."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise TinypredError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TinypredError(f"{path}: cannot read ({e})") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise TinypredError(f"{path}: not valid {kind} ({e})") from None
    if not isinstance(data, dict):
        raise TinypredError(f"{path}: expected a JSON object / TOML table at the top")
    return data


def build(model: type[M], data: dict[str, Any], source: str | None = None) -> M:
    """Validate `data` as `model`. Errors name `source` (a file) and the field; without a source the
    field itself is the error's `arg` (so that the CLI can name the flag that set it)."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        if source is not None:
            raise TinypredError(f"{source}: {one_line(e)}") from None
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or None
        raise TinypredError(first["msg"].removeprefix("Value error, "), arg=loc) from None


def load_config(
    model: type[M],
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
    base_source: str | None = None,
) -> M:
    """Defaults, then the file (if any; else `base`, read from `base_source`), then `overrides` (dotted keys
    such as "model.width"). A run's own config.json is accepted as a file: its settings are under
    "train". An error in the file or base names it; one in an override names its key as the `arg`."""
    data = read_mapping(path) if path is not None else dict(base or {})
    if "train" in data and isinstance(data["train"], dict) and "train" not in model.model_fields:
        data = data["train"]  # a run directory's config.json: {"train": {...}, "data": ..., ...}
    source = str(path) if path is not None else base_source
    cfg = build(model, data, source if (path is not None or base is not None) else None)
    if overrides:
        merged = cfg.model_dump()
        for dotted, value in overrides.items():
            *parents, leaf = dotted.split(".")
            node = merged
            for key in parents:
                if not isinstance(node.get(key), dict):
                    raise TinypredError(f"{key!r} is not a section of the config", arg=dotted)
                node = node[key]
            node[leaf] = value
        cfg = build(model, merged)
    return cfg


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """['model.width=128', 'loss.kind=nll'] -> {'model.width': 128, 'loss.kind': 'nll'} (values as JSON if
    they parse, else as strings)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TinypredError(f"{item!r}: expected KEY=VALUE, e.g. model.width=128", arg="overrides")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
