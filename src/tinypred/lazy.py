"""A package's names imported from their modules on first use (PEP 562), so that importing one light
module of a package (a config) does not import its heavy ones (torch)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], object]:
    """The module `__getattr__` of `package` that imports `name` from its submodule `names[name]`."""

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{names[name]}"), name)

    return __getattr__
