"""How the `bayes` floor's predictions score on the sampled futures they were chosen for.

- `metric_samples`: every metric of `metrics.METRICS` for every (scene, sample) pair, by the very code
  `metrics.evaluate` scores with, a chunk of scenes at a time;
- `floor_summary`: their mean (the floor) and its two standard errors.
"""

from __future__ import annotations

import numpy as np

import tinypred.evaluation.metrics as metrics
from tinypred.errors import TinypredError
from tinypred.evaluation.floor import chunk_rows


def metric_samples(
    modes: np.ndarray,
    probs: np.ndarray,
    scale: np.ndarray | float,
    samples: np.ndarray,
    dist: metrics.Dist = "laplace",
    miss_threshold_m: float = 2.0,
) -> dict[str, np.ndarray]:
    """Every metric of `metrics.METRICS` for every (scene, sample) pair: name -> (B, S) array.

    modes (B, K, T, 2), probs (B, K), scale broadcastable to (B, K, T) as for `metrics.nll`, samples
    (B, S, T, 2). Entry [b, s] is what `metrics.evaluate` scores for scene b if samples[b, s] is its
    ground truth, by `metrics.per_sample`'s own code, run on the pairs a chunk of scenes at a time (each
    scene's modes repeated S times would not fit in memory at once). The "MR" arrays are bool."""
    metrics.check_choice("dist", dist, metrics.DISTS)
    metrics._check_threshold("miss_threshold_m", miss_threshold_m)
    smp = np.asarray(samples)
    if smp.ndim != 4 or smp.shape[-1] != 2 or smp.shape[1] == 0:
        raise TinypredError(f"samples must have shape (B, S, T, 2), S >= 1; got {smp.shape}")
    smp = metrics._real_array("samples", smp)
    # Validated once, with the first sample standing in for the ground truth (its shape is all that counts).
    modes, _, probs, scale = metrics.validate(modes, smp[:, 0], probs, scale)
    b, s, t, _ = smp.shape
    per_scene = scale.ndim == 3 and scale.shape[0] == b > 1  # else it broadcasts over the pairs as it is
    out: dict[str, np.ndarray] = {}
    step = chunk_rows(s * modes.shape[1] * t)
    for lo in range(0, b, step):
        hi = min(lo + step, b)
        values = metrics._per_sample(
            np.repeat(modes[lo:hi], s, axis=0),
            np.repeat(probs[lo:hi], s, axis=0),
            smp[lo:hi].reshape(-1, t, 2),
            np.repeat(scale[lo:hi], s, axis=0) if per_scene else scale,
            dist,
            miss_threshold_m,
        )
        for name, value in values.items():
            out.setdefault(name, np.empty((b, s), value.dtype))[lo:hi] = value.reshape(hi - lo, s)
    return out


def floor_summary(values: np.ndarray) -> dict[str, float]:
    """The floor that a metric's values (B, S) (B scenes, S sampled futures each) estimate, and its errors.

    value: the floor, the mean over scenes and samples: the metric's expectation on these B scenes.
    mc_se: its Monte-Carlo standard error given the scenes, sqrt(sum_b s_b^2 / S) / B with s_b^2 the
        variance (ddof 1) of scene b's S values; it shrinks as 1 / sqrt(S). NaN for S = 1.
    se: the standard error of a metric's mean over B scenes with one future each, as on a test set: the
        chance noise of one predictor's score (a paired difference of two is up to sqrt 2 noisier, less
        where they err alike). One future's variance is the within-scene variance plus that of the scene
        means m_b; var(m_b) (ddof 1) overstates the latter by mean(s_b^2) / S, so the unbiased
        V = (1 - 1 / S) mean_b(s_b^2) + var(m_b), and se = sqrt(V / B). NaN for B = 1.
    Also scenes (B) and samples (S).
    """
    if np.ndim(values) != 2 or 0 in np.shape(values):
        raise TinypredError(f"values must have shape (B, S) with B, S >= 1; got {np.shape(values)}")
    v = metrics._real_array("values", values).astype(np.float64)
    b, s = v.shape
    within = v.var(axis=1, ddof=1).mean() if s > 1 else 0.0
    between = v.mean(axis=1).var(ddof=1) if b > 1 else np.nan
    mc_se = float(np.sqrt(within / s / b)) if s > 1 else np.nan
    se = float(np.sqrt(((1 - 1 / s) * within + between) / b))
    return {"value": float(v.mean()), "mc_se": mc_se, "se": se, "scenes": b, "samples": s}
