"""Hypothesis helpers shared by the backprop tests (a plain module: pytest puts this folder on sys.path)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

VALUES = st.floats(-3, 3, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def raw_arrays(data: st.DataObject, shapes: tuple[tuple[int, ...], ...]) -> list[np.ndarray]:
    """Hypothesis-drawn float64 arrays with values in [-3, 3] (a case's domain then moves them off kinks)."""
    return [data.draw(hnp.arrays(np.float64, shape, elements=VALUES)) for shape in shapes]
