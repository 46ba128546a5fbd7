"""The slices a result table is reported on: all, decision / interactive / other, and per family."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tinypred.errors import TinypredError


def _mask(name: str, value: object, n: int) -> np.ndarray:
    mask = np.asarray(value)
    if mask.dtype != bool or mask.shape != (n,):
        raise TinypredError(f"{name} must be a bool array of shape ({n},); got {mask.dtype} {mask.shape}")
    return mask


def slices_of(
    n: int,
    family: object,
    is_decision: object,
    family_names: Sequence[str] | None,
    is_interactive: object = None,
) -> dict[str, np.ndarray | None]:
    """Slice name -> (N,) bool mask ("all": None) of each slice whose array was given, minus empty ones."""
    slices: dict[str, np.ndarray | None] = {"all": None}
    if is_interactive is not None and is_decision is None:
        raise TinypredError("is_interactive was given without is_decision")
    if is_decision is not None:
        decision = _mask("is_decision", is_decision, n)
        if is_interactive is None:
            slices |= {"decision": decision, "other": ~decision}
        else:
            interactive = _mask("is_interactive", is_interactive, n)
            both = np.flatnonzero(decision & interactive)
            if len(both):
                raise TinypredError(
                    f"is_decision and is_interactive must not overlap (the slices partition the samples); "
                    f"{len(both)} samples are both, the first {both[0]}"
                )
            slices |= {"decision": decision, "interactive": interactive, "other": ~(decision | interactive)}
    if family is None:
        if family_names is not None:
            raise TinypredError("family_names was given without family")
    else:
        fam = np.asarray(family)
        if fam.dtype.kind not in "iu" or fam.shape != (n,):
            raise TinypredError(f"family must be integers of shape ({n},); got {fam.dtype} {fam.shape}")
        names = [str(i) for i in range(int(fam.max()) + 1)] if family_names is None else list(family_names)
        if len(set(names)) != len(names):
            raise TinypredError(f"family_names has duplicates: {names}")
        if fam.min() < 0 or fam.max() >= len(names):
            raise TinypredError(
                f"family holds indices in [{fam.min()}, {fam.max()}]; family_names has {len(names)} names"
            )
        slices |= {f"family/{name}": fam == i for i, name in enumerate(names)}
    return {name: mask for name, mask in slices.items() if mask is None or mask.any()}
