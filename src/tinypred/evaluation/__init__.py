"""Evaluation: the motion-forecasting metrics, NLL scale fitting and result tables.

`metrics` holds pure vectorised functions on arrays (pred (N, K, T, 2), probs (N, K), gt (N, T, 2)),
as in the Argoverse 2 benchmark; `scales` fits each predictor's per-step NLL scale by maximum
likelihood; `slices` names the slices a table reports (decision, interactive, other, per family);
`tables` scores a prediction on encoded scenes per slice;
`averaging` measures mode averaging; `floor` solves for the predictions that minimise each metric's
expectation over sampled futures (the `bayes` floor), `floor_scores` scores them on those futures.
May import the shared utilities and `tinypred.data` (for the scenes a table is sliced by); `metrics`
itself imports nothing of tinypred but errors, geometry, `slices` and the AV2 rule for probabilities
that sum to 1 (`data.av2.schema.probs_sum_to_one`).
"""

from tinypred.evaluation.averaging import averaging_stats, branch_distances, mode_spread
from tinypred.evaluation.floor import k_median, max_coverage
from tinypred.evaluation.floor_scores import floor_summary, metric_samples
from tinypred.evaluation.metrics import (
    METRICS,
    ade,
    brier_min_fde,
    evaluate,
    fde,
    min_ade,
    min_fde,
    miss,
    nll,
    per_sample,
)
from tinypred.evaluation.scales import fit_scales
from tinypred.evaluation.tables import Scored, evaluate_scenes

__all__ = [
    "METRICS",
    "Scored",
    "ade",
    "averaging_stats",
    "branch_distances",
    "brier_min_fde",
    "evaluate",
    "evaluate_scenes",
    "fde",
    "fit_scales",
    "floor_summary",
    "k_median",
    "max_coverage",
    "metric_samples",
    "min_ade",
    "min_fde",
    "miss",
    "mode_spread",
    "nll",
    "per_sample",
]
