"""Mode averaging, measured: do the predicted modes sit on the branches of the future, or between them?

At a decision point the future splits into branches (the ground-truth mixture). A predictor trained
with an L2 loss on every mode puts all of them near the mixture's mean, which no agent drives:
its modes collapse (small `mode_spread`), close to the mean and far from every branch.
"""

from __future__ import annotations

import numpy as np

from tinypred.data.encoding import EncodedScenes
from tinypred.evaluation.tables import Scored


def mode_spread(modes: np.ndarray) -> np.ndarray:
    """(N,) mean pairwise distance between the K predicted endpoints of modes (N, K, T, 2); 0 for K = 1."""
    end = modes[:, :, -1]
    k = end.shape[1]
    if k < 2:
        return np.zeros(len(end))
    dist = np.linalg.norm(end[:, :, None] - end[:, None], axis=-1)
    return dist.sum((1, 2)) / (k * (k - 1))


def branch_distances(prediction: Scored, scenes: EncodedScenes) -> tuple[np.ndarray, np.ndarray]:
    """(N,) probability-weighted distance of the predicted endpoints to the nearest ground-truth branch,
    and (N,) the same to the mixture's mean endpoint. Mode averaging: near the mean, far from branches."""
    end = prediction.modes[:, :, -1]  # (N, K, 2)
    branches = scenes.alt_futures[:, :, -1]  # (N, M, 2)
    to_branch = np.linalg.norm(end[:, :, None] - branches[:, None], axis=-1)  # (N, K, M)
    nearest = np.where(scenes.alt_mask[:, None], to_branch, np.inf).min(-1)
    mean = (scenes.alt_probs[..., None] * branches).sum(1)  # (N, 2)
    to_mean = np.linalg.norm(end - mean[:, None], axis=-1)
    return (prediction.probs * nearest).sum(1), (prediction.probs * to_mean).sum(1)


def averaging_stats(prediction: Scored, scenes: EncodedScenes) -> dict[str, float]:
    """Mode-averaging measures at decision points (scenes whose mixture has two or more branches)."""
    split = scenes.is_decision & (scenes.alt_mask.sum(1) >= 2)
    nearest, mean = branch_distances(prediction, scenes)
    return {
        "mode_spread": float(mode_spread(prediction.modes)[split].mean()),
        "endpoint_to_nearest_branch_m": float(nearest[split].mean()),
        "endpoint_to_mixture_mean_m": float(mean[split].mean()),
    }
