"""Result tables on scenes: the metrics of a prediction overall, at decision points and per family."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from tinypred.data.encoding import EncodedScenes
from tinypred.data.scene_config import FAMILIES
from tinypred.errors import TinypredError
from tinypred.evaluation.metrics import Dist, evaluate


class Scored(Protocol):
    """What a table scores: modes (N, K, T, 2) in the scenes' agent frames, probs (N, K), and the NLL's
    per-step scale broadcastable to (N, K, T). `tinypred.predictors.Prediction` is one."""

    modes: np.ndarray
    probs: np.ndarray
    scale: np.ndarray | None


def evaluate_scenes(
    prediction: Scored, scenes: EncodedScenes, dist: Dist = "laplace"
) -> dict[str, dict[str, float]]:
    """`evaluate` a prediction on EncodedScenes, sliced by decision / interactive / other and by family.
    Samples whose future is unknown (an Argoverse 2 test split) cannot be scored: that is an error, not a
    zero."""
    if prediction.scale is None:
        raise TinypredError("the prediction has no NLL scale (made for export only)", arg="prediction")
    if not scenes.has_future:
        raise TinypredError(
            "the futures of these samples are unknown (an Argoverse 2 test split?): they can be predicted "
            "and exported, not evaluated",
            arg="scenes",
        )
    return evaluate(
        prediction.modes,
        prediction.probs,
        scenes.future,
        prediction.scale,
        family=scenes.family.astype(np.int64),
        is_decision=scenes.is_decision,
        is_interactive=scenes.is_interactive,
        family_names=FAMILIES,
        dist=dist,
    )
