"""`Drawn`: one family's batch of scenes as its builder simulated it, in the canonical frame.

Positions are complex (x + iy), metres; no observation noise and no world pose yet (`scenes` adds
both). B scenes, H history and T future steps, A = MAX_ALTERNATIVES mixture slots, L map elements of
P points, R other agents (the family's own count; `scenes` sorts them into the neighbour slots).

`resample` is what makes the `bayes` floor honest: called with a random generator of its own, it returns
one fresh draw (B, T) of the target's future from the generator's true conditional distribution given
everything the past shows: the intent (the target's, or a neighbour's that decides the target's future)
from its posterior, every driver style the past does not show from its prior, a style the past shows
kept as it was, simulated by the same code that drew `future`. The scene's own `future` is one such draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Drawn:
    hist_z: np.ndarray  # (B, H) complex: the target's past, the last step the last observed one
    hist_heading: np.ndarray  # (B, H) rad
    hist_speed: np.ndarray  # (B, H) m/s, >= 0
    future: np.ndarray  # (B, T) complex: the future actually driven
    lanes: np.ndarray  # (B, L, P) complex, zeros where absent
    lane_mask: np.ndarray  # (B, L) bool
    lane_type: np.ndarray  # (B, L) int8 index into LANE_TYPES
    alt_futures: np.ndarray  # (B, A, T) complex: the noise-free future of each mixture slot, 0 if masked
    alt_probs: np.ndarray  # (B, A) posterior of each slot given the past, 0 where masked; rows sum to 1
    alt_mask: np.ndarray  # (B, A) bool
    intent: np.ndarray  # (B,) int: the slot the future actually drawn belongs to
    resample: Callable[[np.random.Generator], np.ndarray]  # -> (B, T) complex, see the module docstring
    # The other agents, each observed like the target (scenes adds the same noise). R may be 0.
    nb_z: np.ndarray | None = None  # (B, R, H) complex past
    nb_heading: np.ndarray | None = None  # (B, R, H) rad
    nb_speed: np.ndarray | None = None  # (B, R, H) m/s
    nb_future: np.ndarray | None = None  # (B, R, T) complex: what each actually drove next
    nb_mask: np.ndarray | None = None  # (B, R) bool: the agent exists in this scene

    @property
    def agents(self) -> int:
        """R: the other agents this family draws."""
        return 0 if self.nb_mask is None else self.nb_mask.shape[1]
