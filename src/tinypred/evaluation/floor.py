"""The solvers behind the `bayes` floor: for S equally likely futures of each of B scenes, the predictions
that minimise a metric's expectation, all scenes at once (loops run over iterations, never over scenes).

- `k_median`: k centres minimising the expected distance from a sample to its nearest centre, the distance
  the mean over P points of the Euclidean norms: minFDE on endpoints (P = 1), minADE on paths (P = T).
- `max_coverage`: k of the endpoints covering (within a radius: AV2's hit) the most samples, greedily.
The scores of the predictions they make, on the samples, are `floor_scores`.

Pure NumPy: float32 input is solved in float32 (about twice as fast), float64 in float64.
"""

from __future__ import annotations

import numpy as np

import tinypred.evaluation.metrics as metrics
from tinypred.errors import TinypredError
from tinypred.geometry import as_complex, as_points

# Elements of the largest temporary per chunk of scenes: enough that NumPy's per-call overhead vanishes,
# few enough to stay in cache (a pass then runs 2-3x faster).
CHUNK = 1 << 18
# Paths of more points are searched on this many, evenly spaced to the last (smooth paths close there are
# close all along: a P / 3 times cheaper search); each answer is then made exact on all P points.
SEARCH_POINTS = 3
OVER = 1.8  # Weiszfeld's over-relaxation (see `_weiszfeld`)
Array = np.ndarray


def _points(name: str, points: object, ndim: int) -> np.ndarray:
    """points as a finite float array of `ndim` dimensions, the last of 2 (x, y), none other empty."""
    arr = np.asarray(points)
    shape = "(B, S, P, 2)" if ndim == 4 else "(B, S, 2)"
    if arr.ndim != ndim or arr.shape[-1] != 2 or 0 in arr.shape[1:]:
        raise TinypredError(f"{name} must have shape {shape}, S and P >= 1; got {arr.shape}")
    return metrics._real_array(name, arr)


def _count(name: str, value: object, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise TinypredError(f"{name} must be an integer >= {least}; got {value!r}")
    return int(value)


def chunk_rows(per_row: int) -> int:  # scenes per chunk, for work of `per_row` elements per scene
    return max(1, CHUNK // max(per_row, 1))


# --- k-median: internals ---------------------------------------------------------------------------------
# Layout: samples last. x (n, P, S) complex, centres (n, j, P) complex, per-sample arrays (n, S): summing
# over the P points adds whole rows of S, and per-cluster sums are a matmul with the (n, S, j) membership.


def _assign(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """assign (n, S), the nearest centre (the lowest index on ties), dist (n, S), the distance to it, and
    norms (n, j, P, S), every |complex difference|: `metrics`' arithmetic, so that the distance, their
    mean over P, is FDE (P = 1) or ADE (P = T)."""
    norms = np.abs(x[:, None] - centres[..., None])
    total = norms.mean(axis=2)  # (n, j, S)
    dist = total.min(axis=1)
    assign = np.zeros(dist.shape, np.intp)  # argmin along a short middle axis is ten times slower
    for c in range(total.shape[1] - 1, -1, -1):  # downwards: the lowest tied index wins
        assign = np.where(total[:, c] == dist, c, assign)
    return assign, dist, norms


def _nearest(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """assign and dist of `_assign` for all B scenes, a chunk of scenes at a time."""
    b, p, s = x.shape
    assign, dist = np.empty((b, s), np.intp), np.empty((b, s), x.real.dtype)
    step = chunk_rows(centres.shape[1] * p * s)
    for lo in range(0, b, step):
        hi = lo + step
        assign[lo:hi], dist[lo:hi] = _assign(x[lo:hi], centres[lo:hi])[:2]
    return assign, dist


def _members(x: np.ndarray, centres: np.ndarray, member: np.ndarray) -> np.ndarray:
    """(n, P, S) per-point norms of each sample to its own centre; member (n, S, j), 0/1 floats:
    the gather is a matmul with it, with BLAS 3x faster than fancy indexing."""
    p = x.shape[1]
    parts = np.concatenate([centres.real, centres.imag], axis=2).transpose(0, 2, 1)  # (n, 2P, j)
    own = parts.astype(member.dtype) @ member.transpose(0, 2, 1)  # (n, 2P, S)
    diff = np.empty_like(x)
    np.subtract(x.real, own[:, :p], out=diff.real)
    np.subtract(x.imag, own[:, p:], out=diff.imag)
    return np.abs(diff)


def _weiszfeld(
    x: np.ndarray, centres: np.ndarray, member: np.ndarray, norms: np.ndarray, near: np.ndarray, over: float
) -> np.ndarray:
    """One Weiszfeld step of every centre towards the geometric median of its members, per point index.

    x (n, P, S), centres (n, j, P); member (n, S, j) 0/1; norms (n, P, S) = |x - own centre|; near (n,):
    closer, a centre sits on a sample and the step T = sum(x_i / d_i) / sum(1 / d_i) is undefined (as at
    every seed): Vardi and Zhang's fix steps off only if the unit pull R of the other members beats the
    weight eta of those it sits on, y' = (1 - eta/|R|)^+ T + min(1, eta/|R|) y. Elsewhere the step is
    over-relaxed, y' = y + over (T - y): T minimises a quadratic bound of the cost that touches it at y,
    so any factor in [0, 2] lowers the cost too (1.8 takes a third of the steps on elongated clusters).
    """
    n, p, s = x.shape
    j = centres.shape[1]
    on = norms <= near[:, None, None]
    some = bool(on.any())  # rare but for seeds: without, the weight eta is 0 and needs no sum
    feats = np.empty((n, 3 + some, p, s), norms.dtype)  # the sums a step needs, in one matmul
    with np.errstate(divide="ignore", over="ignore"):  # where it sits on a sample: set to 0 below
        inv = np.divide(1, norms, out=feats[:, 2])
    if some:
        inv[on] = 0
        feats[:, 3] = on
    np.multiply(x.real, inv, out=feats[:, 0])
    np.multiply(x.imag, inv, out=feats[:, 1])
    f = feats.shape[1]
    sums = (feats.reshape(n, f * p, s) @ member).reshape(n, f, p, j).transpose(1, 0, 3, 2)  # (f, n, j, P)
    num, den = sums[0] + 1j * sums[1], sums[2]
    eta = sums[3] if some else np.zeros_like(den)
    moved = den > 0  # else every member sits on the centre (or it has none): it stays
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # eta / |R|: inf if R ~ 0
        ratio = np.where(eta > 0, eta / np.abs(num - centres * den), 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = num / np.where(moved, den, 1)
        fixed = np.maximum(0, 1 - ratio) * step + np.minimum(1, ratio) * centres
    new = np.where(eta > 0, fixed, centres + over * (step - centres))
    return np.where(moved, new, centres).astype(centres.dtype)


def _reseed_empty(x: np.ndarray, centres: np.ndarray, assign: np.ndarray, dist: np.ndarray) -> None:
    """Move each centre without members onto the sample farthest from its centre (its distance drops to
    0), in place. Where all samples sit on centres (k > distinct samples), empty ones stay: mass 0."""
    rows = np.arange(len(x))
    empty = np.ones((len(x), centres.shape[1]), bool)
    empty[rows[:, None], assign] = False
    for c in np.flatnonzero(empty.any(axis=0)):
        far = dist.argmax(axis=1)
        fix = empty[:, c] & (dist[rows, far] > 0)
        r, i = rows[fix], far[fix]
        centres[r, c] = x[r, :, i]
        assign[r, i], dist[r, i] = c, 0


def _steps(
    x: Array, centres: Array, assign: Array, steps: int, near: Array, norms: Array | None = None, over=OVER
) -> Array:
    """`steps` Weiszfeld steps of all centres (n, j, P) for a fixed assignment (n, S); norms (n, P, S):
    those to the given centres, where the caller has them."""
    member = (assign[:, :, None] == np.arange(centres.shape[1])).astype(x.real.dtype)  # (n, S, j)
    for i in range(steps):
        own = norms if i == 0 and norms is not None else _members(x, centres, member)
        centres = _weiszfeld(x, centres, member, own, near, over)
    return centres


def _lloyd(
    x: Array, centres: Array, rounds: int, steps: int, tol: float, near: Array, over: float = OVER
) -> tuple[Array, Array, Array]:
    """Lloyd's alternation from centres (B, j, P): assign, re-seed empty clusters, `steps` Weiszfeld steps
    (neither half raises the objective), until a scene's assignment repeats and its objective fell by at
    most `tol` (relative; one centre: it moved by at most `tol` x objective), or `rounds` times: per scene.
    Returns centres, assign (B, S) and dist (B, S), consistent (the last round only assigns)."""
    b, p, s = x.shape
    j = centres.shape[1]
    centres = centres.copy()
    assign, dist = np.zeros((b, s), np.intp), np.zeros((b, s), x.real.dtype)
    previous, shift = np.full(b, np.inf), np.full(b, np.inf)
    live = np.arange(b)
    step = chunk_rows(j * p * s)
    for r in range(rounds + 1):
        done = np.zeros(len(live), bool)
        for lo in range(0, len(live), step):
            rows = live[lo : lo + step]
            xs, cs = x[rows], centres[rows]
            a, d, norms = _assign(xs, cs)
            objective = d.mean(axis=1, dtype=np.float64)
            if j > 1:
                stop = (a == assign[rows]).all(axis=1) & (previous[rows] - objective <= tol * objective)
            else:  # the objective is flat near a median: its step size tells the distance to it
                stop = shift[rows] <= tol * objective
            stop |= r == rounds
            done[lo : lo + step] = stop
            assign[rows], dist[rows], previous[rows] = a, d, objective
            if stop.all():
                continue
            go = ~stop
            xs, cs, a, d = xs[go], cs[go], a[go], d[go]
            _reseed_empty(xs, cs, a, d)
            own = norms[go, 0] if j == 1 else None  # one centre: the norms at hand are the members'
            centres[rows[go]] = new = _steps(xs, cs, a, steps, near[rows[go]], own, over)
            shift[rows[go]] = np.abs(new - cs).max(axis=(1, 2))
        live = live[~done]
        if not len(live):
            break
    return centres, assign, dist


def _candidate(x: np.ndarray, dist: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(B,) the best of len(u) samples drawn with probability proportional to their distance dist (B, S)
    to the centres so far: k-means++'s seeding with D, not D^2 (the k-median objective is linear in D),
    and the best of several draws as in scikit-learn's greedy k-means++. u (L, B) uniform in [0, 1)."""
    (b, _, s), rows = x.shape, np.arange(len(x))
    cum = np.cumsum(dist, axis=1, dtype=np.float64)
    best, best_obj = np.zeros(b, np.intp), np.full(b, np.inf)
    for draw in u:
        # The first index whose running sum exceeds the draw: a sample at distance > 0 unless all are 0.
        i = np.minimum((cum <= (draw * cum[:, -1])[:, None]).sum(axis=1), s - 1)
        new = _nearest(x, x[rows, :, i][:, None])[1]
        obj = np.minimum(dist, new).mean(axis=1, dtype=np.float64)
        best, best_obj = np.where(obj < best_obj, i, best), np.minimum(obj, best_obj)
    return best


def _medians(x: np.ndarray, assign: np.ndarray, j: int, steps: int, near: np.ndarray) -> np.ndarray:
    """(B, j, P) centres for an assignment: `steps` Weiszfeld steps from each cluster's mean (or sample 0)."""
    b, p, s = x.shape
    out = np.empty((b, j, p), x.dtype)
    step = chunk_rows(4 * p * s)
    for lo in range(0, b, step):
        xs, a = x[lo : lo + step], assign[lo : lo + step]
        count = (member := (a[:, :, None] == np.arange(j)).astype(x.real.dtype)).sum(axis=1)[..., None]
        mean = (xs @ member.astype(x.dtype)).transpose(0, 2, 1) / np.maximum(count, 1)
        cs = np.where(count > 0, mean, xs[:, None, :, 0]).astype(x.dtype)
        out[lo : lo + step] = _steps(xs, cs, a, steps, near[lo : lo + step])
    return out


def _median(x: np.ndarray, tol: float, near: np.ndarray) -> np.ndarray:
    """(B, 1, P) the geometric median of all samples, per point: Weiszfeld from the mean until it stalls
    (by `tol`); three plain steps (over-relaxed ones circle a median that lies on a sample, plain ones
    close in on it); then the best of it, the sample point nearest to it and the nearest other one (they
    only crawl to a median on a sample, the slower the more samples sit there, and may stall nearer to
    another point)."""
    centres = _lloyd(x, x.mean(axis=2)[:, None], 100, 1, tol, near)[0]
    centres = _lloyd(x, centres, 3, 1, 0.0, near, over=1.0)[0]
    norms = np.abs(x - centres[:, 0, :, None])  # (B, P, S)
    best, cost = centres[:, 0], norms.sum(axis=2)  # (B, P)
    first = np.take_along_axis(x, norms.argmin(axis=2)[..., None], axis=2)  # (B, P, 1)
    second = np.take_along_axis(x, np.where(x == first, np.inf, norms).argmin(axis=2)[..., None], axis=2)
    for point in (first[..., 0], second[..., 0]):
        at = np.abs(x - point[..., None]).sum(axis=2)
        better = at < cost
        best, cost = np.where(better, point, best), np.where(better, at, cost)
    return best[:, None]


def k_median(
    points: np.ndarray,
    k: int,
    rng: np.random.Generator,
    rounds: int = 5,
    steps: int = 2,
    trials: int = 16,
    tol: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k centres that minimise the mean distance from each sample to its nearest centre.

    points (B, S, P, 2): B problems of S equally likely samples of P points. A sample's distance to a
    centre is the mean over P of the Euclidean norms, as in `metrics`: on endpoints (P = 1) the objective
    is the expected minFDE of the k centres as predictions, on paths (P = T) the expected minADE (the
    independent one: AV2's endpoint minADE of the same centres is never lower).

    k = 1 is the geometric median per point (the objective separates over the P points): convex, and
    Weiszfeld's iteration from the mean converges to it, so no single sample does better. Each further
    centre is seeded as greedy k-means++ does: the best of `trials` samples drawn with probability
    proportional to their distance from the centres so far. Lloyd's alternation then refines all
    centres, at most `rounds` times: assign each sample to its nearest centre; move each centre `steps`
    Weiszfeld steps (Vardi and Zhang's where it sits on a sample) towards the geometric median of its
    members; move a centre without members onto the sample farthest from its centre. Paths of more than
    SEARCH_POINTS points are searched on SEARCH_POINTS of them, then each centre becomes the median of its
    cluster on all P points (`steps` Weiszfeld steps from the mean).

    Refining after every new centre makes the answer for k + 1 start from the answer for k, and a scene
    where refining did worse keeps that start: with the same rng state, the objective never rises with k.
    It also finds better minima than seeding all k first (on mixtures of manoeuvres, that ended 5 %
    higher on average, 45 % at worst). Still a local minimum: other seeds land within ~1 % (5 % at worst).

    Returns centres (B, k, P, 2) in the input's float type; mass (B, k), the share of samples nearest to
    each centre (rows sum to 1; ties go to the lower index, so where k exceeds the distinct samples a
    duplicate centre has mass 0); objective (B,) float64, the mean distance to the nearest centre.
    Deterministic given `rng`'s state.
    """
    arr = _points("points", points, 4)
    k, trials = _count("k", k), _count("trials", trials)
    rounds, steps = _count("rounds", rounds, 0), _count("steps", steps, 0)
    x = np.ascontiguousarray(as_complex(arr).transpose(0, 2, 1))  # (B, P, S); float32 stays complex64
    b, p, _ = x.shape
    if b == 0:
        return np.zeros((0, k, p, 2), arr.dtype), np.zeros((0, k)), np.zeros(0)
    # A centre within a few ulps of the largest coordinate sits on the sample (1 / distance stays finite).
    near = 8 * np.finfo(x.real.dtype).eps * (1 + np.abs(x).max(axis=(1, 2)))
    rows = np.arange(b)
    search = np.unique(np.round(np.linspace(0, p - 1, SEARCH_POINTS + 1)[1:]).astype(int))
    search = np.arange(p) if p <= SEARCH_POINTS else search
    coarse = np.ascontiguousarray(x[:, search])
    centres = _median(x, tol, near)
    assign, dist = _nearest(x, centres)
    for j in range(2, k + 1):
        chosen = _candidate(coarse, _nearest(coarse, centres[:, :, search])[1], rng.random((trials, b)))
        seeded = np.concatenate([centres, x[rows, :, chosen][:, None]], axis=1)
        found, found_assign, found_dist = _lloyd(coarse, seeded[:, :, search], rounds, steps, tol, near)
        if p > SEARCH_POINTS:  # the medians of the clusters found, on all points
            found = _medians(x, found_assign, j, steps, near)
            found_assign, found_dist = _nearest(x, found)
        # Where refining did worse than its start (on the search points it can), keep the start: so the
        # answer is never worse than the one for k = j - 1.
        new_dist = _nearest(x, seeded[:, -1:])[1]
        seeded_assign, seeded_dist = np.where(new_dist < dist, j - 1, assign), np.minimum(new_dist, dist)
        keep = found_dist.mean(axis=1, dtype=np.float64) <= seeded_dist.mean(axis=1, dtype=np.float64)
        centres = np.where(keep[:, None, None], found, seeded)
        assign = np.where(keep[:, None], found_assign, seeded_assign)
        dist = np.where(keep[:, None], found_dist, seeded_dist)
    mass = (assign[:, None, :] == np.arange(k)[:, None]).mean(axis=2)
    return as_points(np.ascontiguousarray(centres)), mass, dist.mean(axis=1, dtype=np.float64)


def max_coverage(points: np.ndarray, k: int, radius: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """The k samples that, as endpoints, cover the most samples, chosen greedily.

    points (B, S, 2): S equally likely endpoints per scene. A centre covers a sample within `radius`
    (distance <= radius, as `metrics` computes FDE: AV2's hit, the complement of its miss). k times, the
    greedy choice takes the sample that covers the most samples not yet covered (ties: the lowest index,
    so once all are covered, sample 0); it covers at least 1 - 1/e of what the best k samples cover
    (Nemhauser, Wolsey and Fisher). The (S, S) cover matrices are built a chunk of scenes at a time.
    Returns index (B, k) into S, and mass (B, k), the share of samples each newly covers: mass.sum(1) is
    the hit rate, 1 - MR, of those k endpoints on these samples.
    """
    x, k = as_complex(_points("points", points, 3)), _count("k", k)  # (B, S)
    metrics._check_threshold("radius", radius)
    (b, s), step = x.shape, chunk_rows(4 * x.shape[1] ** 2)  # the float32 cover matrix dominates
    index, mass = np.zeros((b, k), np.intp), np.zeros((b, k))
    for lo in range(0, b, step):
        xs = x[lo : lo + step]
        rows = np.arange(len(xs))
        # float32, so that counting the uncovered samples a candidate covers is one matmul (BLAS).
        cover = (np.abs(xs[:, :, None] - xs[:, None, :]) <= radius).astype(np.float32)  # (n, S, S)
        uncovered = np.ones((len(xs), s, 1), np.float32)
        for c in range(k):
            count = (cover @ uncovered)[..., 0]  # (n, S) exact integers: at most S < 2^24
            best = count.argmax(axis=1)
            index[lo : lo + step, c], mass[lo : lo + step, c] = best, count[rows, best] / s
            uncovered *= 1 - cover[rows, best][..., None]
    return index, mass
