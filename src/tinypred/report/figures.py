"""Figures (matplotlib, no screen needed). Each function draws into a PNG written atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patheffects

from tinypred.data.encoding import EncodedScenes
from tinypred.data.scene_config import FAMILIES, INTENTS, LANE_TYPES
from tinypred.fileio import atomic_open

ALT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c")


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Write `fig` as PNG to `path` atomically and close it."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


ELEMENT_STYLE = {  # map element type -> colour, line width
    "lane": ("0.75", 1.2),
    "stop_line": ("crimson", 3.0),
    "bike_lane": ("#8fbc8f", 1.2),
    "bus_lane": ("#d2a24c", 1.2),
}
NEIGHBOUR_RANGE = 40.0  # m: neighbours whose last position is this close widen the view


def draw_scene(
    ax: plt.Axes,
    enc: EncodedScenes,
    i: int,
    modes: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Sample i in its agent frame, the way people look at Argoverse 2: the map elements (intersection
    lanes dashed), the neighbours' pasts, the target's observed past and its future where known, the
    ground-truth alternatives where there is a mixture, and optionally predicted modes (K, T, 2) with
    probabilities (K,) and other single trajectories by name (T, 2). A stop-or-go scene is drawn as
    distance over time instead (`draw_progress`): from above, stopping and going lie on one line."""
    if FAMILIES[enc.family[i]] == "stop_or_go":
        draw_progress(ax, enc, i, modes, probs, extra)
        return
    for lane, ok, kind, crossing in zip(
        enc.lanes[i], enc.lane_mask[i], enc.lane_type[i], enc.lane_is_intersection[i], strict=True
    ):
        if ok:
            colour, width = ELEMENT_STYLE[LANE_TYPES[kind]]
            ax.plot(*lane.T, color=colour, lw=width, ls="--" if crossing else "-", zorder=1)
    near = []  # the pasts of the neighbours close enough to frame
    for m in np.flatnonzero(enc.neighbour_mask[i].any(-1)):
        past = enc.neighbours[i, m, enc.neighbour_mask[i, m], :2]
        label = "neighbours" if m == 0 else None
        ax.plot(*past.T, color="steelblue", lw=1, alpha=0.7, zorder=2, label=label)
        ax.plot(*past[-1], "o", color="steelblue", ms=3, zorder=2)
        if np.linalg.norm(past[-1]) < NEIGHBOUR_RANGE:
            near.append(past)
    for m in np.flatnonzero(enc.alt_mask[i]):
        ax.plot(
            *enc.alt_futures[i, m].T,
            ls=":",
            lw=1.5,
            color=ALT_COLOURS[m],
            zorder=2,
            label=f"{INTENTS[enc.alt_intent[i, m]]} p={enc.alt_probs[i, m]:.2f}",
        )
    history = enc.history[i, enc.history_mask[i], :2]
    future = enc.future[i, enc.future_mask[i]]
    ax.plot(*history.T, "k.-", ms=2.5, lw=1, label="history", zorder=3)
    if modes is not None:
        weights = probs if probs is not None else np.full(len(modes), 1 / len(modes))
        for k, (mode, p) in enumerate(zip(modes, weights, strict=True)):
            ax.plot(
                *mode.T,
                color="purple",
                alpha=float(0.25 + 0.75 * p / max(weights.max(), 1e-9)),
                lw=1.5,
                label="modes (p at the end)" if k == weights.argmax() else None,
                zorder=4,
            )
    for name, traj in (extra or {}).items():
        ax.plot(*traj.T, lw=1.2, ls="--", label=name, zorder=4)
    if len(future):  # on top of everything, outlined: the answer must stay visible under the modes
        ax.plot(
            *future.T,
            color="green",
            lw=2.5,
            label="future (ground truth)",
            zorder=6,
            path_effects=[patheffects.Stroke(linewidth=4, foreground="white"), patheffects.Normal()],
        )
        ax.plot(*future[-1], "*", color="green", ms=8, mec="white", mew=0.6, zorder=6)
    # Zoom to the motion (not the whole map, nor modes of almost no probability) and the neighbours
    # close by: a square around them, 4 m of margin.
    pts = [history, future, enc.alt_futures[i][enc.alt_mask[i]].reshape(-1, 2), *near]
    if modes is not None:
        pts.append(modes[weights >= 0.02].reshape(-1, 2))
    pts = np.concatenate(pts + [np.reshape(t, (-1, 2)) for t in (extra or {}).values()])
    lo, hi = pts.min(0), pts.max(0)
    if modes is not None:  # room on the right for the probability labels
        hi = hi + np.array([0.15 * (hi - lo).max(), 0.0])
    centre, half = (lo + hi) / 2, (hi - lo).max() / 2 + 4.0
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal", adjustable="box")
    if modes is not None:
        _probability_labels(ax, modes[:, -1], weights, gap=0.1 * half, dx=0.08 * half)
    recorded = FAMILIES[enc.family[i]] == "recorded"
    title = (
        f"{enc.scenario_id[i]} / track {enc.track_id[i]}"
        if recorded
        else f"{FAMILIES[enc.family[i]]} #{enc.scene_id[i]}"
    )
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("x along the heading (m)", fontsize=7)
    ax.set_ylabel("y to the left (m)", fontsize=7)
    ax.tick_params(labelsize=6)


def draw_progress(
    ax: plt.Axes,
    enc: EncodedScenes,
    i: int,
    modes: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Sample i as distance along its heading (m) over time (s): the past at t <= 0, the future, the
    alternatives, the modes and the stop lines (horizontal), same styles as `draw_scene`."""
    dt, h = enc.dt, enc.history.shape[1]
    past_t = dt * (np.arange(h) - (h - 1))
    t = dt * np.arange(1, enc.future.shape[1] + 1)
    for lane, ok, kind in zip(enc.lanes[i], enc.lane_mask[i], enc.lane_type[i], strict=True):
        if ok and LANE_TYPES[kind] == "stop_line":
            ax.axhline(lane[:, 0].mean(), color="crimson", lw=2, label="stop line", zorder=1)
    for m in np.flatnonzero(enc.alt_mask[i]):
        label = f"{INTENTS[enc.alt_intent[i, m]]} p={enc.alt_probs[i, m]:.2f}"
        ax.plot(t, enc.alt_futures[i, m, :, 0], ls=":", lw=1.5, color=ALT_COLOURS[m], zorder=2, label=label)
    seen = enc.history_mask[i]
    ax.plot(past_t[seen], enc.history[i, seen, 0], "k.-", ms=2.5, lw=1, label="history", zorder=3)
    if modes is not None:
        weights = probs if probs is not None else np.full(len(modes), 1 / len(modes))
        for k, (mode, p) in enumerate(zip(modes, weights, strict=True)):
            alpha = float(0.25 + 0.75 * p / max(weights.max(), 1e-9))
            label = "modes (p at the end)" if k == weights.argmax() else None
            ax.plot(t, mode[:, 0], color="purple", alpha=alpha, lw=1.5, label=label, zorder=4)
    for name, traj in (extra or {}).items():
        ax.plot(t, traj[:, 0], lw=1.2, ls="--", label=name, zorder=4)
    known = enc.future_mask[i]
    if known.any():
        outline = [patheffects.Stroke(linewidth=4, foreground="white"), patheffects.Normal()]
        future = enc.future[i, known, 0]
        ax.plot(
            t[known],
            future,
            color="green",
            lw=2.5,
            label="future (ground truth)",
            zorder=6,
            path_effects=outline,
        )
    ax.set_xlim(past_t[0], t[-1] * 1.25)  # room on the right for the probability labels
    # Zoom to the motion, not to modes of almost no probability (as `draw_scene` does).
    shown = [
        enc.history[i, seen, 0],
        enc.future[i, known, 0],
        enc.alt_futures[i, enc.alt_mask[i], :, 0].ravel(),
    ]
    shown += [np.ravel(traj[:, 0]) for traj in (extra or {}).values()]
    if modes is not None:
        shown.append(modes[weights >= 0.02, :, 0].ravel())
    y = np.concatenate(shown)
    margin = 0.08 * (y.max() - y.min()) + 1.0
    ax.set_ylim(y.min() - margin, y.max() + margin)
    if modes is not None:
        lo, hi = ax.get_ylim()
        ends = np.stack([np.full(len(modes), t[-1]), modes[:, -1, 0]], -1)
        _probability_labels(ax, ends, weights, gap=0.05 * (hi - lo), dx=0.04 * (t[-1] - past_t[0]))
    ax.set_title(f"{FAMILIES[enc.family[i]]} #{enc.scene_id[i]} (distance over time)", fontsize=8)
    ax.set_xlabel("time (s; 0 = now)", fontsize=7)
    ax.set_ylabel("distance along the heading (m)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3)


def _probability_labels(ax: plt.Axes, ends: np.ndarray, probs: np.ndarray, gap: float, dx: float) -> None:
    """Each mode's probability `dx` to the right of its endpoint ends (K, 2), pushed apart vertically so
    that no two labels are closer than `gap` (data units), with a thin leader back to the endpoint."""
    order = np.argsort(ends[:, 1])
    ys = ends[order, 1].copy()
    for j in range(1, len(ys)):  # upwards pass: each label at least `gap` above the one below
        ys[j] = max(ys[j], ys[j - 1] + gap)
    ys -= (ys - ends[order, 1]).mean()  # then re-centre the column on the endpoints
    for j, k in enumerate(order):
        ax.annotate(
            f"{probs[k]:.2f}",
            ends[k],
            xytext=(ends[k, 0] + dx, ys[j]),
            fontsize=6,
            color="purple",
            va="center",
            zorder=5,
            arrowprops={"arrowstyle": "-", "color": "purple", "lw": 0.4, "alpha": 0.6},
        )


def scene_grid(
    enc: EncodedScenes,
    path: str | Path,
    n: int = 12,
    seed: int = 0,
    modes: np.ndarray | None = None,
    probs: np.ndarray | None = None,
) -> Path:
    """A grid of `n` random samples (chosen with `seed`), with predicted modes (N, K, T, 2) and their
    probabilities (N, K) for every sample of `enc` when given."""
    idx = np.random.default_rng(seed).choice(len(enc), size=min(n, len(enc)), replace=False)
    cols = min(4, len(idx)) or 1
    rows = max(1, -(-len(idx) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
    for ax, i in zip(axes.flat, idx, strict=False):
        shown = (None, None) if modes is None else (modes[i], probs[i])
        draw_scene(ax, enc, int(i), *shown)
        ax.legend(fontsize=5, loc="best")
    for ax in axes.flat[len(idx) :]:
        ax.axis("off")
    fig.suptitle(
        "Samples in their agent frames: lanes (grey; dashed in an intersection), stop lines and crossings "
        "(red), neighbours (blue), ground-truth alternatives (dotted); stop-or-go as distance over time",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))  # room for the title; no row's labels under the next's title
    return save(fig, path)


def training_curves(history: list[dict], path: str | Path) -> Path:
    """Train and val loss per epoch."""
    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax.plot(epochs, [r["val_loss"] for r in history], "s-", label="val")
    ax.set(xlabel="epoch", ylabel="training loss (per sample)", title="Loss per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, path)


def metric_curves(
    history: list[dict], path: str | Path, baselines: tuple[str, ...] = ("cv", "cv_fan")
) -> Path:
    """Val minADE@6 / minFDE@6 / MR@6 per epoch, overall and at decision points, baselines as lines."""
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, metric in zip(axes, ("minADE@6", "minFDE@6", "MR@6"), strict=True):
        for prefix, style, label in (("val_", "o-", "all"), ("val_decision_", "s-", "decision points")):
            if prefix + metric in history[0]:
                ax.plot(epochs, [r[prefix + metric] for r in history], style, label=f"mlp, {label}")
        for j, name in enumerate(baselines):
            key = f"{name}_decision_{metric}"
            if key in history[0]:
                ax.axhline(history[0][key], ls="--", color=f"C{j + 2}", label=f"{name}, decision points")
        unit = "fraction of samples" if metric.startswith("MR") else "m"
        ax.set(xlabel="epoch", ylabel=f"{metric} ({unit})", title=f"val {metric}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def gradient_norms(rows: list[dict], path: str | Path) -> Path:
    """Per-layer gradient norm (log scale) and update-to-weight ratio over training, from the flat
    `gradients.jsonl` rows (step, layer, grad_norm, update_ratio)."""
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    for name in layers:
        mine = [r for r in rows if r["layer"] == name]
        a.plot([r["step"] for r in mine], [r["grad_norm"] for r in mine], label=name)
        b.plot([r["step"] for r in mine], [r["update_ratio"] for r in mine], label=name)
    a.set(
        yscale="log",
        xlabel="optimizer step",
        ylabel="||grad|| (L2, log scale)",
        title="gradient norm per layer",
    )
    b.set(
        yscale="log",
        xlabel="optimizer step",
        ylabel="||update|| / ||weight|| (log scale)",
        title="update / weight norm per step",
    )
    b.axhline(1e-3, color="k", ls=":", lw=1, label="1e-3 (healthy)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def gallery(
    enc: EncodedScenes,
    idx: np.ndarray,
    modes: np.ndarray,
    probs: np.ndarray,
    path: str | Path,
    extra: dict[str, np.ndarray] | None = None,
    cols: int = 3,
) -> Path:
    """Scenes idx with the predicted modes (N, K, T, 2), their probabilities (N, K) and other predictors'
    single trajectories by name (N, T, 2), over lanes, history, future and the ground-truth alternatives."""
    rows = max(1, -(-len(idx) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.2 * rows), squeeze=False)
    for ax, i in zip(axes.flat, idx, strict=False):
        draw_scene(ax, enc, int(i), modes[i], probs[i], {k: v[i] for k, v in (extra or {}).items()})
        ax.legend(fontsize=5.5, loc="best")  # every panel: its alternatives' probabilities are its own
    for ax in axes.flat[len(idx) :]:
        ax.axis("off")
    fig.tight_layout()
    return save(fig, path)


def ablation_bars(rows: list[dict], path: str | Path) -> Path:
    """minFDE@6, MR@6 and mode spread at decision points, one bar per ablation run."""
    names = [r["name"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, metric in zip(axes, ("minFDE@6", "MR@6", "mode_spread"), strict=True):
        values = [r["decision"][metric] for r in rows]
        ax.bar(range(len(names)), values, color=[f"C{i}" for i in range(len(names))])
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
        ax.set_title(f"{metric} at decision points")
        ax.set_ylabel("fraction of samples" if metric == "MR@6" else "m")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save(fig, path)
