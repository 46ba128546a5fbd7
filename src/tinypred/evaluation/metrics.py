"""Motion-forecasting metrics, as in the Argoverse 2 (AV2) motion-forecasting benchmark.

Shapes: ``pred (N, K, T, 2)`` holds K candidate futures (modes) of T xy positions for each of N
samples, ``gt (N, T, 2)`` the future actually driven, ``probs (N, K)`` the mode probabilities (each row
sums to 1). Distances are in the units of the input (metres). All functions are vectorised over
samples and modes; float32 input stays float32 through the per-step arithmetic.

Every public function validates its input once and refuses bad input with a `TinypredError` (a
ValueError) whose one-line message names the argument and the problem. Probability rows count as
summing to 1 by AV2's own rule (``np.isclose(1, sum)``: rtol 1e-5, atol 1e-8), so that every valid
AV2 submission is accepted.

Ties: where several modes share the lowest FDE exactly, the endpoint minADE takes the lowest ADE among
them and brier-minFDE the highest probability, so no metric depends on the order of the modes. AV2
takes the first such mode; the two agree whenever the best endpoint is unique.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from tinypred.data.av2.schema import probs_sum_to_one
from tinypred.errors import TinypredError
from tinypred.evaluation.slices import slices_of
from tinypred.geometry import as_complex

Dist = Literal["laplace", "gaussian"]
DISTS = ("laplace", "gaussian")
MinAdeMode = Literal["endpoint", "independent"]
MIN_ADE_MODES = ("endpoint", "independent")
TOP_K = 6  # AV2 scores the 6 most probable modes
_LOG_2PI = float(np.log(2.0 * np.pi))


# --- validation -------------------------------------------------------------------------------------


def _real_array(name: str, x: object) -> np.ndarray:
    """`x` as a finite float array; float32/float64 kept as they are, other real numbers -> float64."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise TinypredError(f"{name} must be a real-valued array; got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise TinypredError(f"{name} contains NaN or Inf")
    return arr


def validate(
    pred: object, gt: object, probs: object = None, scale: object = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Check shapes, finiteness and ranges; return the arrays as floats (probs/scale None if not given)."""
    pred_a, gt_a = np.asarray(pred), np.asarray(gt)
    if pred_a.ndim != 4 or pred_a.shape[-1] != 2:
        raise TinypredError(f"pred must have shape (N, K, T, 2); got {pred_a.shape}")
    if gt_a.ndim != 3 or gt_a.shape[-1] != 2:
        raise TinypredError(f"gt must have shape (N, T, 2); got {gt_a.shape}")
    n, k, t = pred_a.shape[:3]
    if gt_a.shape != (n, t, 2):
        raise TinypredError(
            f"gt must have shape (N, T, 2) = {(n, t, 2)} to match pred {pred_a.shape}; got {gt_a.shape}"
        )
    for size, what in ((n, "samples (N = 0)"), (k, "modes (K = 0)"), (t, "time steps (T = 0)")):
        if size == 0:
            raise TinypredError(f"pred has no {what}")
    pred_a, gt_a = _real_array("pred", pred_a), _real_array("gt", gt_a)

    probs_a = None
    if probs is not None:
        probs_a = _real_array("probs", probs)
        if probs_a.shape != (n, k):
            raise TinypredError(f"probs must have shape (N, K) = {(n, k)} to match pred; got {probs_a.shape}")
        if probs_a.min() < 0 or probs_a.max() > 1:
            raise TinypredError(
                f"probs must lie in [0, 1]; got values in [{probs_a.min():g}, {probs_a.max():g}]"
            )
        # Summed in float64 so that float32 probabilities are judged on their values, not on rounding;
        # the tolerance is AV2's (ChallengeSubmission: np.isclose(1, sum), rtol 1e-5, atol 1e-8).
        sums = probs_a.sum(axis=1, dtype=np.float64)
        bad = np.flatnonzero(~probs_sum_to_one(sums))
        if len(bad):
            raise TinypredError(
                f"probs rows must sum to 1 (np.isclose(1, sum), as AV2); row {bad[0]} sums to "
                f"{sums[bad[0]]:.9g}"
            )

    scale_a = None
    if scale is not None:
        scale_a = _real_array("scale", scale)
        try:
            ok = np.broadcast_shapes(scale_a.shape, (n, k, t)) == (n, k, t)
        except ValueError:
            ok = False
        if not ok:
            raise TinypredError(
                f"scale must be broadcastable to (N, K, T) = {(n, k, t)}; got shape {scale_a.shape}"
            )
        if scale_a.min() <= 0:
            raise TinypredError(f"scale must be > 0; got minimum {scale_a.min():g}")
    return pred_a, gt_a, probs_a, scale_a


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise TinypredError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def _check_threshold(name: str, value: object) -> None:
    if not isinstance(value, int | float | np.number) or not np.isfinite(value) or value < 0:
        raise TinypredError(f"{name} must be a finite number >= 0; got {value!r}")


# --- shared arithmetic (no validation) ----------------------------------------------------------------


def displacements(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, K, T) complex error dx + i dy of every mode at every step.

    Complex, because one contiguous subtraction and a hypot are twice as fast as strided x and y arrays.
    """
    return as_complex(pred) - as_complex(gt)[:, None]


def _norms(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, K, T) L2 displacement error of every mode at every step."""
    return np.abs(displacements(pred, gt))


def _fde(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, K) final displacement error, computed from the last step alone."""
    return _norms(pred[:, :, -1:], gt[:, -1:])[..., 0]


def _endpoint_choice(fde: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) lowest FDE over modes, and the (N, K) mask of the modes that reach it."""
    best = fde.min(axis=1)
    return best, fde == best[:, None]


def _endpoint_ade(ade: np.ndarray, is_best: np.ndarray) -> np.ndarray:
    """(N,) ADE of the lowest-FDE mode (the lowest such ADE on ties)."""
    return np.where(is_best, ade, np.inf).min(axis=1)


def _brier(best_fde: np.ndarray, probs: np.ndarray, is_best: np.ndarray) -> np.ndarray:
    """(N,) lowest FDE + (1 - p)^2, p the probability of that mode (the highest such p on ties)."""
    return best_fde + (1.0 - np.where(is_best, probs, 0.0).max(axis=1)) ** 2


def step_stat(disp: np.ndarray, dist: Dist, norms: np.ndarray | None = None) -> np.ndarray:
    """(N, K, T) all the NLL needs of each step's error: its squared L2 (Gaussian) or L1 (Laplace) norm.

    disp: the complex displacements; norms: their L2 norms, when the caller has them already.
    """
    if dist == "gaussian":
        return np.square(np.abs(disp) if norms is None else norms)
    return np.abs(disp.real) + np.abs(disp.imag)


def log_likelihood(stat: np.ndarray, scale: np.ndarray, dist: Dist) -> np.ndarray:
    """(N, K) log-density of gt under each mode: the sum over steps and both coordinates of 1-D log-pdfs.

    Per step, with s the scale: Gaussian -stat / (2 s^2) - 2 log s - log 2 pi; Laplace -stat / s - 2 log 2s.
    """
    t = stat.shape[-1]
    s = scale.reshape((1,) * (3 - scale.ndim) + scale.shape)  # (1|N, 1|K, 1|T)
    if dist == "gaussian":
        weight, log_norm = 0.5 / (s * s), 2.0 * np.log(s) + _LOG_2PI
    else:
        weight, log_norm = 1.0 / s, 2.0 * np.log(2.0 * s)
    # Broadcast the normaliser over T only: it is (T,) work for a per-step scale, not (N, K, T).
    norm_sum = np.broadcast_to(log_norm, (*s.shape[:2], t)).sum(axis=-1)
    # Keep float32 errors in float32 (twice as fast as promoting them), unless the weight overflows there.
    if weight.max() < np.finfo(stat.dtype).max:
        weight = weight.astype(stat.dtype)
    return -(stat * weight).sum(axis=-1) - norm_sum


def _mixture_nll(log_lik: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(N,) -log sum_k p_k exp(log_lik_k) by logsumexp, in float64; modes with p = 0 drop out exactly."""
    with np.errstate(divide="ignore"):  # log 0 = -inf is meant: exp(-inf) = 0 removes the mode
        x = np.log(probs.astype(np.float64)) + log_lik
    top = x.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)  # every mode underflowed: the sum is 0, the NLL +inf
    with np.errstate(divide="ignore"):
        return -(top[:, 0] + np.log(np.exp(x - top).sum(axis=1)))


# --- public metrics -----------------------------------------------------------------------------------


def ade(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, K) average displacement error of each mode: the mean over the T steps of the L2 error.

    pred (N, K, T, 2), gt (N, T, 2).
    """
    pred, gt, _, _ = validate(pred, gt)
    return _norms(pred, gt).mean(axis=-1)


def fde(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, K) final displacement error of each mode: the L2 error at the last step.

    pred (N, K, T, 2), gt (N, T, 2).
    """
    pred, gt, _, _ = validate(pred, gt)
    return _fde(pred, gt)


def min_fde(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N,) lowest FDE over the K modes. pred (N, K, T, 2), gt (N, T, 2)."""
    pred, gt, _, _ = validate(pred, gt)
    return _fde(pred, gt).min(axis=1)


def min_ade(pred: np.ndarray, gt: np.ndarray, mode: MinAdeMode = "endpoint") -> np.ndarray:
    """(N,) minADE over the K modes. pred (N, K, T, 2), gt (N, T, 2).

    mode="endpoint" (AV2): the ADE of the mode with the lowest FDE, so minADE and minFDE score the same
    trajectory. mode="independent": the lowest ADE of any mode, chosen separately from minFDE; it is
    never larger than the endpoint one.
    """
    check_choice("mode", mode, MIN_ADE_MODES)
    pred, gt, _, _ = validate(pred, gt)
    norms = _norms(pred, gt)
    ades = norms.mean(axis=-1)
    if mode == "independent":
        return ades.min(axis=1)
    return _endpoint_ade(ades, _endpoint_choice(norms[..., -1])[1])


def miss(pred: np.ndarray, gt: np.ndarray, threshold_m: float = 2.0) -> np.ndarray:
    """(N,) bool: True where every mode's FDE is strictly greater than `threshold_m` (AV2's miss).

    pred (N, K, T, 2), gt (N, T, 2).
    """
    _check_threshold("threshold_m", threshold_m)
    pred, gt, _, _ = validate(pred, gt)
    return _fde(pred, gt).min(axis=1) > threshold_m


def brier_min_fde(pred: np.ndarray, probs: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N,) brier-minFDE: the lowest FDE plus (1 - p)^2, p the probability of that same mode.

    pred (N, K, T, 2), probs (N, K), gt (N, T, 2).
    """
    pred, gt, probs, _ = validate(pred, gt, probs)
    best, is_best = _endpoint_choice(_fde(pred, gt))
    return _brier(best, probs, is_best)


def nll(
    pred: np.ndarray, probs: np.ndarray, gt: np.ndarray, scale: np.ndarray | float, dist: Dist = "laplace"
) -> np.ndarray:
    """(N,) negative log-likelihood of gt, in nats per sample, under the mixture the prediction defines.

    pred (N, K, T, 2), probs (N, K), gt (N, T, 2), scale broadcastable to (N, K, T): e.g. (T,) fitted per
    step (see `fit_scales`) or (N, K, T) predicted. Component k is a product over the T steps and the two
    coordinates of independent 1-D densities f centred on pred[n, k, t]: Gaussian with std s = scale[n, k, t]
    or Laplace with b = s. Then

        NLL_n = -log sum_k p_nk prod_t prod_{c in x, y} f(gt[n, t, c] - pred[n, k, t, c]; s_nkt),

    evaluated in log space (logsumexp) so it neither underflows nor overflows; modes with p = 0 contribute
    nothing. The Laplace density is a product over x and y (an L1 norm), so unlike the Gaussian it changes
    when the frame is rotated by other than a multiple of 90 degrees. It is a density per metre^(2T): compare
    it only between predictors scored on the same data.
    """
    check_choice("dist", dist, DISTS)
    pred, gt, probs, scale = validate(pred, gt, probs, scale)
    return _mixture_nll(log_likelihood(step_stat(displacements(pred, gt), dist), scale, dist), probs)


# --- the benchmark table ------------------------------------------------------------------------------

METRICS = ("minADE@1", "minFDE@1", "MR@1", "minADE@6", "minFDE@6", "MR@6", "brier-minFDE@6", "NLL")


def _per_sample(
    pred: np.ndarray,
    probs: np.ndarray,
    gt: np.ndarray,
    scale: np.ndarray,
    dist: Dist,
    miss_threshold_m: float,
) -> dict[str, np.ndarray]:
    """`per_sample` on input already validated: the one implementation of every metric of METRICS."""
    k = probs.shape[1]
    # One pass over the (N, K, T) errors; everything after works on (N, K) per-mode summaries.
    disp = displacements(pred, gt)
    norms = np.abs(disp)
    ades, fdes = norms.mean(axis=-1), norms[..., -1]
    neg_log_lik = _mixture_nll(log_likelihood(step_stat(disp, dist, norms), scale, dist), probs)

    first = probs.argmax(axis=1)[:, None]
    ade1, fde1 = (np.take_along_axis(a, first, axis=1)[:, 0] for a in (ades, fdes))
    if k > TOP_K:
        top = np.argsort(-probs, axis=1, kind="stable")[:, :TOP_K]
        ades, fdes, probs = (np.take_along_axis(a, top, axis=1) for a in (ades, fdes, probs))
    best, is_best = _endpoint_choice(fdes)
    return {
        "minADE@1": ade1,
        "minFDE@1": fde1,
        "MR@1": fde1 > miss_threshold_m,
        "minADE@6": _endpoint_ade(ades, is_best),
        "minFDE@6": best,
        "MR@6": best > miss_threshold_m,
        "brier-minFDE@6": _brier(best, probs, is_best),
        "NLL": neg_log_lik,
    }


def per_sample(
    pred: np.ndarray,
    probs: np.ndarray,
    gt: np.ndarray,
    scale: np.ndarray | float,
    dist: Dist = "laplace",
    miss_threshold_m: float = 2.0,
) -> dict[str, np.ndarray]:
    """Every metric of METRICS for each sample: name -> (N,) array (the "MR" ones bool), in that order.

    pred (N, K, T, 2), probs (N, K), gt (N, T, 2), scale broadcastable to (N, K, T) (see `nll`).
    "@1" scores the most probable mode (the first on ties); "@6" the 6 most probable modes (all of them
    when K <= 6), with minADE the endpoint one (see `min_ade`) and brier on their raw probabilities; "MR"
    is the miss at `miss_threshold_m` (see `miss`); "NLL" is `nll` of the full K-mode mixture. `evaluate`
    averages these over the samples of each slice.
    """
    check_choice("dist", dist, DISTS)
    _check_threshold("miss_threshold_m", miss_threshold_m)
    pred, gt, probs, scale = validate(pred, gt, probs, scale)
    return _per_sample(pred, probs, gt, scale, dist, miss_threshold_m)


def evaluate(
    pred: np.ndarray,
    probs: np.ndarray,
    gt: np.ndarray,
    scale: np.ndarray | float,
    *,
    family: np.ndarray | None = None,
    is_decision: np.ndarray | None = None,
    is_interactive: np.ndarray | None = None,
    family_names: Sequence[str] | None = None,
    dist: Dist = "laplace",
    miss_threshold_m: float = 2.0,
) -> dict[str, dict[str, float]]:
    """The AV2 table, overall and per slice: {"all", "decision", "interactive", "other", "family/<name>"}
    -> metrics.

    pred (N, K, T, 2), probs (N, K), gt (N, T, 2), scale broadcastable to (N, K, T) (see `nll`);
    family (N,) int index into family_names (default names "0", "1", ...); is_decision and
    is_interactive (N,) bool. With is_decision alone the samples split into "decision" and "other" (the
    rest); with is_interactive too, into "decision", "interactive" and "other" (neither), which must not
    overlap: a sample that is both is refused. is_interactive needs is_decision.
    A slice is left out when its array was not given or it holds no sample. Each slice maps to the mean
    over its samples of METRICS as `per_sample` defines them, and "count" (its number of samples, an int).
    """
    per = per_sample(pred, probs, gt, scale, dist, miss_threshold_m)
    n = len(per["NLL"])
    slices = slices_of(n, family, is_decision, family_names, is_interactive)
    out = {}
    for name, mask in slices.items():
        rows = per if mask is None else {m: v[mask] for m, v in per.items()}
        out[name] = {m: float(v.mean(dtype=np.float64)) for m, v in rows.items()}
        out[name]["count"] = n if mask is None else int(mask.sum())
    return out
