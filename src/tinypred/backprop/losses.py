"""The trajectory-prediction head's split and its winner-take-all loss, on engine Tensors.

The same definitions as :func:`tinypred.backprop.handgrad.wta_loss`, built from engine ops so that the
engine derives the gradient the hand-written version spells out.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from tinypred.backprop.engine import Tensor, _binary_op
from tinypred.backprop.numerics import DISPLACEMENT_EPS, Regression, winning_mode


def huber(pred: Tensor, target: Tensor | ArrayLike, delta: float = 1.0) -> Tensor:
    """Element-wise Huber loss of r = pred - target (broadcasting): r^2/2 if |r| <= delta, else
    delta (|r| - delta/2). Quadratic near 0, linear (outlier-robust) beyond delta.

    dl/dr = clip(r, -delta, delta). Huber is C1: both pieces have slope +-delta at |r| = delta, so the
    seam is no kink and needs no choice of subgradient (torch's huber_loss gives the same there).
    """
    target = pred._operand(target)
    r = pred.data - target.data
    abs_r = np.abs(r)
    out = np.where(abs_r <= delta, 0.5 * r * r, delta * (abs_r - 0.5 * delta))
    slope = np.clip(r, -delta, delta)
    return _binary_op(out, pred, target, lambda g: g * slope, lambda g: -(g * slope))


def split_modes(out: Tensor, modes: int, steps: int) -> tuple[Tensor, Tensor]:
    """Split a head output (B, modes*steps*2 + modes [+ anything after, e.g. the scales of the project's
    model]) into pred (B, modes, steps, 2) and logits (B, modes)."""
    n_traj = modes * steps * 2
    return out[:, :n_traj].reshape(out.shape[0], modes, steps, 2), out[:, n_traj : n_traj + modes]


def wta_loss(
    pred: Tensor,
    logits: Tensor,
    gt: ArrayLike,
    ce_weight: float = 1.0,
    reg: Regression = "l2",
    delta: float = 1.0,
) -> Tensor:
    """Winner-take-all loss on Tensors; the same definition as ``handgrad.wta_loss``.

    pred: (B, K, T, 2), logits: (B, K), gt: (B, T, 2) (data, no gradient). The winner is the mode with
    the lowest ADE; loss = mean_b [mean over T*2 of reg(pred[b, winner] - gt[b]) (over T for the
    displacement) + ce_weight * CE].
    """
    gt = np.asarray(gt, dtype=pred.dtype)
    rows = np.arange(pred.shape[0])
    winner = winning_mode(pred.data, gt)  # a discrete choice: no gradient flows through it
    target = gt[:, None]
    if reg == "l2":
        elementwise = (pred - target) ** 2
    elif reg == "l1":
        elementwise = (pred - target).abs()
    elif reg == "huber":
        elementwise = huber(pred, target, delta)
    elif reg == "displacement":  # one value per step: (B, K, T, 1)
        elementwise = (((pred - target) ** 2).sum(axis=3, keepdims=True) + DISPLACEMENT_EPS) ** 0.5
    else:
        raise ValueError(f"reg must be 'l2', 'l1', 'huber' or 'displacement', got {reg!r}")
    # Regress every mode, then pick the winner's row of a (B, K) table: a gather on B*K scalars is much
    # cheaper to differentiate (np.add.at) than one on B whole (T, 2) trajectories.
    regression = elementwise.mean(axis=(2, 3))[rows, winner].mean()
    cross_entropy = -logits.log_softmax(axis=1)[rows, winner].mean()
    return regression + ce_weight * cross_entropy
