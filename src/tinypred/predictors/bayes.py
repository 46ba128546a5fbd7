"""The `bayes` floor: the best any predictor can do on each metric, computed from the generator itself.

For every scene of a synthetic split, `data.truth.future_samples` draws futures from the law its own
future was drawn from, given everything its past shows (the intent, or the neighbour's intent, from its
posterior; every driver style the past does not show from its prior). Half of them (S, default 512)
choose the predictions; the other half (S', held out) score them. Per metric, the predictions that
minimise that metric's expectation over the samples:

    minFDE@K         the K-median of the endpoints (`evaluation.floor.k_median`, P = 1); each mode's
                     path the mean of its samples', ending at its endpoint
    minADE@K         the K-median of whole trajectories (P = T)
    MR@K             the K samples whose 2 m discs cover the most samples (greedy max coverage)
    brier-minFDE@6   the best over k' = 1..6 of the k'-median of the endpoints with the probabilities
                     that minimise the expected (1 - p)^2 of the winning mode (the rest at p = 0): the
                     penalty rewards fewer, surer modes, so the floor may use fewer than six

with K = 6 and K = 1 (the @1 floor: the most probable future's best single guess), and probabilities the
share of samples each mode wins (but for brier). What each is a floor of:

    floor (expected)   each metric's expectation over the held-out samples, averaged over the scenes,
                       with its Monte-Carlo standard error: what no predictor can beat in expectation
                       (up to the solvers' optimality: k-median and max coverage are solved
                       approximately, so the floor is an upper bound on the true one, a tight one)
    bayes row          the same predictions scored like every other row, on the one future each test
                       scene drove: a predictor may beat it on one test set by chance, by about `se`
    NLL                not floored: the true density of a scene is no K-mode Laplace mixture; the row's
                       NLL is that of the endpoint K-median with scales fitted on samples

Only synthetic datasets have a generator to ask; an imported one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinypred.data.dataset import Dataset
from tinypred.data.encoding import EncodedScenes
from tinypred.data.scene_config import FAMILIES
from tinypred.data.truth import future_samples
from tinypred.errors import TinypredError
from tinypred.evaluation.floor import k_median, max_coverage
from tinypred.evaluation.floor_scores import floor_summary, metric_samples
from tinypred.evaluation.metrics import METRICS
from tinypred.evaluation.scales import fit_scales
from tinypred.evaluation.tables import evaluate_scenes
from tinypred.predictors.prediction import Prediction

OBJECTIVES = ("fde@6", "ade@6", "mr@6", "brier@6", "fde@1", "ade@1", "mr@1")
# Which prediction scores each metric of the row and the floor.
SOURCE = {
    "minADE@1": "ade@1",
    "minFDE@1": "fde@1",
    "MR@1": "mr@1",
    "minADE@6": "ade@6",
    "minFDE@6": "fde@6",
    "MR@6": "mr@6",
    "brier-minFDE@6": "brier@6",
    "NLL": "fde@6",
}
MISS_M = 2.0
SCALE_PAIRS = 2  # samples per scene that fit the NLL's per-step scales
NLL_SAMPLES = 64  # held-out samples per scene that score the NLL (not a floor: fewer will do)


@dataclass
class BayesFloor:
    """predictions: objective -> Prediction (N scenes); floor: slice -> metric -> {"value", "se",
    "mc_se"} (see `evaluation.floor_scores.floor_summary`); expected: predictor name -> slice -> metric -> the
    mean over scenes of its expected value on the held-out samples ("bayes" and every `compare`d one)."""

    predictions: dict[str, Prediction]
    floor: dict[str, dict[str, dict[str, float]]]
    expected: dict[str, dict[str, dict[str, float]]]
    samples: int
    held_out: int
    seed: int
    notes: dict[str, str] = field(default_factory=dict)

    def row(self, scenes: EncodedScenes) -> dict[str, dict[str, float]]:
        """The bayes row, as `evaluate_scenes` gives every predictor's: each metric from its own
        prediction, scored on the futures the scenes drove."""
        tables = {name: evaluate_scenes(p, scenes) for name, p in self.predictions.items()}
        first = tables[OBJECTIVES[0]]
        return {
            part: {m: tables[SOURCE[m]][part][m] for m in METRICS} | {"count": first[part]["count"]}
            for part in first
        }


def slices(scenes: EncodedScenes) -> dict[str, np.ndarray]:
    """The row's slices as (N,) masks: all, decision, interactive, other, family/<name> (non-empty)."""
    n = len(scenes)
    decision, interactive = scenes.is_decision, scenes.is_interactive
    out = {"all": np.ones(n, bool), "decision": decision, "interactive": interactive}
    out["other"] = ~(decision | interactive)
    out |= {f"family/{name}": scenes.family == i for i, name in enumerate(FAMILIES)}
    return {name: mask for name, mask in out.items() if mask.any()}


def bayes_floor(
    ds: Dataset,
    split: str = "test",
    samples: int = 512,
    held_out: int = 512,
    seed: int = 0,
    compare: dict[str, Prediction] | None = None,
) -> BayesFloor:
    """The bayes predictions and floor of a synthetic split (module docstring), and the expected metrics
    of the `compare`d predictions (name -> Prediction on the whole split) on the same held-out samples."""
    if samples < 6 or held_out < 2:
        raise TinypredError(f"expected >= 6 samples and >= 2 held out, got {samples} and {held_out}")
    scenes = ds.split(split)
    n, t = scenes.future.shape[:2]
    compare = compare or {}
    for name, p in compare.items():
        if len(p.modes) != n:
            raise TinypredError(f"{name}: a prediction of {len(p.modes)} scenes for a split of {n}")
    modes = {o: np.zeros((n, int(o[-1]), t, 2), np.float32) for o in OBJECTIVES}
    probs = {o: np.zeros((n, int(o[-1])), np.float32) for o in OBJECTIVES}
    values = {m: np.zeros((n, held_out), np.float32) for m in METRICS if m != "NLL"}
    means = {name: {m: np.zeros(n) for m in METRICS} for name in compare}
    fit = {"modes": [], "probs": [], "future": []}
    kept = np.zeros((n, min(NLL_SAMPLES, held_out), t, 2), np.float32)

    for block, (rows, drawn) in enumerate(future_samples(ds, split, samples + held_out, seed)):
        choose, score = drawn[:, :samples], drawn[:, samples:]
        rng = np.random.default_rng([seed, block])
        for o, (m, p) in _solve(choose, rng).items():
            modes[o][rows], probs[o][rows] = m, p
        fit["modes"].append(np.repeat(modes["fde@6"][rows], SCALE_PAIRS, 0))
        fit["probs"].append(np.repeat(probs["fde@6"][rows], SCALE_PAIRS, 0))
        # The scales are part of the prediction: fitted on the samples that chose it.
        fit["future"].append(choose[:, :SCALE_PAIRS].reshape(-1, t, 2))
        kept[rows] = score[:, : kept.shape[1]]
        for o in OBJECTIVES:
            wanted = [m for m in METRICS if SOURCE[m] == o and m != "NLL"]
            got = metric_samples(modes[o][rows], probs[o][rows], 1.0, score)
            for m in wanted:
                values[m][rows] = got[m]
        for name, p in compare.items():
            scale = 1.0 if p.scale is None else (p.scale if p.scale.ndim == 1 else p.scale[rows])
            got = metric_samples(p.modes[rows], p.probs[rows], scale, score)
            for m in METRICS:
                means[name][m][rows] = got[m].mean(1)

    scale = fit_scales(*(np.concatenate(fit[k]) for k in ("modes", "future", "probs")))
    predictions = {o: Prediction(modes[o], probs[o], scale) for o in OBJECTIVES}
    # The NLL needs the fitted scales: scored now, on held-out samples kept for it.
    values["NLL"] = metric_samples(modes["fde@6"], probs["fde@6"], scale, kept)["NLL"]

    parts = slices(scenes)
    floor = {part: {m: floor_summary(values[m][mask]) for m in METRICS} for part, mask in parts.items()}
    expected = {"bayes": {part: {m: v["value"] for m, v in f.items()} for part, f in floor.items()}}
    for name in compare:
        expected[name] = {
            part: {m: float(means[name][m][mask].mean()) for m in METRICS} for part, mask in parts.items()
        }
    return BayesFloor(predictions, floor, expected, samples, held_out, seed)


def _solve(drawn: np.ndarray, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Objective -> modes (B, K, T, 2) and probs (B, K) minimising its expectation over drawn (B, S, T, 2)."""
    end = drawn[:, :, -1]
    out = {}
    for k in (6, 1):
        centres, mass, _ = k_median(drawn, k, rng)
        out[f"ade@{k}"] = centres, mass
        index, mass = max_coverage(end, k, MISS_M)
        # The samples no disc covers still belong somewhere: to the discs, in proportion.
        total = mass.sum(1, keepdims=True)
        probs = np.where(total > 0, mass / np.where(total > 0, total, 1.0), 1.0 / k)
        out[f"mr@{k}"] = np.take_along_axis(drawn, index[:, :, None, None], 1), probs
    medians = {k: k_median(end[:, :, None], k, rng) for k in range(1, 7)}
    for k in (6, 1):
        centres, mass, _ = medians[k]
        out[f"fde@{k}"] = _paths(drawn, centres[:, :, 0]), mass
    out["brier@6"] = _brier_solution(drawn, medians)
    return {o: (m.astype(np.float32), p.astype(np.float32)) for o, (m, p) in out.items()}


def _paths(drawn: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(B, K, T, 2) paths to the endpoints ends (B, K, 2): the mean of the samples drawn (B, S, T, 2)
    nearest each endpoint (the nearest sample where none is), ending exactly there."""
    dist = np.linalg.norm(drawn[:, :, None, -1] - ends[:, None], axis=-1)  # (B, S, K)
    member = dist == dist.min(2, keepdims=True)
    member &= np.cumsum(member, 2) == 1  # one endpoint per sample on ties
    count = member.sum(1)  # (B, K)
    paths = np.einsum("bsk,bstc->bktc", member.astype(np.float64), drawn)
    paths /= np.maximum(count, 1)[..., None, None]
    nearest = np.take_along_axis(drawn, dist.argmin(1)[:, :, None, None], 1)
    paths = np.where((count > 0)[..., None, None], paths, nearest)
    paths[:, :, -1] = ends
    return paths


def brier_probs(wins: np.ndarray) -> np.ndarray:
    """(B, K) probabilities minimising sum_k wins_k (1 - p_k)^2 over the simplex, wins (B, K) each mode's
    chance to be the best: p_k = 1 - lambda / (2 wins_k) on the modes that stay positive (water filling,
    dropping the least likely mode while one goes negative), 0 on the others."""
    active = wins > 1e-12  # a mode that (almost) never wins gets nothing; 1 / wins stays finite
    for _ in range(wins.shape[1]):
        inverse = np.where(active, 1.0 / np.where(active, wins, 1.0), 0.0).sum(1, keepdims=True)
        lam = 2 * (active.sum(1, keepdims=True) - 1) / inverse
        p = np.where(active, 1 - lam / (2 * np.where(active, wins, 1.0)), 0.0)
        negative = active & (p < 0)
        if not negative.any():
            break
        # Drop the least likely active mode of each row that has a negative one.
        least = np.where(active, wins, np.inf).argmin(1)
        drop = negative.any(1)
        active[drop, least[drop]] = False
    return np.clip(p, 0.0, 1.0)


def _brier_solution(drawn: np.ndarray, medians: dict) -> tuple[np.ndarray, np.ndarray]:
    """The brier-minFDE@6 predictions: per scene the best k' of the k'-medians with `brier_probs`."""
    b = len(drawn)
    end = drawn[:, :, -1]
    best_cost = np.full(b, np.inf)
    ends, probs = np.zeros((b, 6, 2)), np.zeros((b, 6))
    for k, (centres, _, objective) in medians.items():
        dist = np.linalg.norm(end[:, :, None] - centres[:, None, :, 0], axis=-1)  # (B, S, k)
        wins = np.stack([(dist.argmin(2) == j).mean(1) for j in range(k)], 1)
        p = brier_probs(wins)
        cost = objective + (wins * (1 - p) ** 2).sum(1)
        better = cost < best_cost
        best_cost = np.where(better, cost, best_cost)
        # The unused slots sit on the first centre at p = 0: a tie there goes to the surer mode.
        padded = np.concatenate([centres[:, :, 0], np.repeat(centres[:, :1, 0], 6 - k, 1)], 1)
        ends[better] = padded[better]
        probs[better] = np.pad(p, ((0, 0), (0, 6 - k)))[better]
    return _paths(drawn, ends), probs
