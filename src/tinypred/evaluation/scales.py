"""Maximum-likelihood NLL scales: each predictor's per-step uncertainty, fitted so its NLL is fair.

A predictor that gives only trajectories (a baseline, a model trained without a scale head) needs a
per-step scale before its NLL means anything; `fit_scales` chooses the one that maximises exactly the
likelihood `metrics.nll` reports, on the training split.
"""

from __future__ import annotations

import numpy as np

from tinypred.evaluation.metrics import (
    DISTS,
    Dist,
    check_choice,
    displacements,
    log_likelihood,
    step_stat,
    validate,
)

MIN_SCALE = 1e-6  # the floor: a step predicted without error would otherwise get scale 0
EM_MAX_ITER = 500
EM_RTOL = 1e-9


def _m_step(resp: np.ndarray, stat: np.ndarray, dist: Dist) -> np.ndarray:
    """(T,) ML scale given mode responsibilities resp (N, K): the closed form on the weighted errors."""
    n, k, t = stat.shape
    # Mean per coordinate of |error| (Laplace) or error^2 (Gaussian); each step has 2 coordinates.
    mean = resp.reshape(n * k) @ stat.reshape(n * k, t) / (2 * n)
    return np.maximum(np.sqrt(mean) if dist == "gaussian" else mean, MIN_SCALE)


def fit_scales(
    pred: np.ndarray, gt: np.ndarray, probs: np.ndarray | None = None, dist: Dist = "laplace"
) -> np.ndarray:
    """(T,) float64 maximum-likelihood per-step scale of `nll` for a predictor, to give each one a fair NLL.

    pred (N, K, T, 2), gt (N, T, 2), probs (N, K) or None for uniform (pass the probabilities you will
    evaluate with: the fit maximises exactly the likelihood `nll` reports). With K = 1 this is the closed
    form over the N samples and both coordinates: Laplace b_t = mean |error|, Gaussian
    sigma_t = sqrt(mean error^2). With K > 1 the mixture likelihood has no closed form, so EM maximises it:
    start from the closed form on each sample's most probable mode; E-step: r_nk = posterior of mode k
    given gt under the current scales; M-step: the closed form with every mode's errors weighted by r_nk.
    EM never lowers the likelihood; it stops at a (local) maximum, when no scale moves by more than
    EM_RTOL relative. Scales are floored at MIN_SCALE (a step predicted exactly would otherwise get 0).
    """
    check_choice("dist", dist, DISTS)
    pred, gt, probs, _ = validate(pred, gt, probs)
    n, k, _ = pred.shape[:3]
    stat = step_stat(displacements(pred, gt), dist).astype(np.float64)
    if probs is None:
        log_p = np.full((n, k), -np.log(k))
    else:
        with np.errstate(divide="ignore"):  # p = 0: log p = -inf, responsibility exactly 0
            log_p = np.log(probs.astype(np.float64))
    resp = (np.arange(k) == log_p.argmax(axis=1)[:, None]).astype(np.float64)
    scale = _m_step(resp, stat, dist)
    for _ in range(EM_MAX_ITER):
        log_post = log_p + log_likelihood(stat, scale, dist)
        resp = np.exp(log_post - log_post.max(axis=1, keepdims=True))
        resp /= resp.sum(axis=1, keepdims=True)
        new = _m_step(resp, stat, dist)
        converged = bool(np.all(np.abs(new - scale) <= EM_RTOL * scale))
        scale = new
        if converged:
            break
    return scale
