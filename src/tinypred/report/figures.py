"""Figures (matplotlib, no screen needed). Each function draws into a PNG written atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

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
    probabilities (K,) and other single trajectories by name (T, 2)."""
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
    if len(future):
        ax.plot(*future.T, color="green", lw=2.5, label="future", zorder=3)
    if modes is not None:
        weights = probs if probs is not None else np.full(len(modes), 1 / len(modes))
        for k, (mode, p) in enumerate(zip(modes, weights, strict=True)):
            ax.plot(
                *mode.T,
                color="purple",
                alpha=float(0.25 + 0.75 * p / max(weights.max(), 1e-9)),
                lw=1.5,
                label="modes" if k == 0 else None,
                zorder=4,
            )
            ax.annotate(f"{p:.2f}", mode[-1], fontsize=6, color="purple")
    for name, traj in (extra or {}).items():
        ax.plot(*traj.T, lw=1.2, ls="--", label=name, zorder=4)
    # Zoom to the motion (not the whole map, nor modes of almost no probability) and the neighbours
    # close by: a square around them, 4 m of margin.
    pts = [history, future, enc.alt_futures[i][enc.alt_mask[i]].reshape(-1, 2), *near]
    if modes is not None:
        pts.append(modes[weights >= 0.02].reshape(-1, 2))
    pts = np.concatenate(pts + [np.reshape(t, (-1, 2)) for t in (extra or {}).values()])
    lo, hi = pts.min(0), pts.max(0)
    centre, half = (lo + hi) / 2, (hi - lo).max() / 2 + 4.0
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal", adjustable="box")
    recorded = FAMILIES[enc.family[i]] == "recorded"
    title = (
        f"{enc.scenario_id[i]} / track {enc.track_id[i]}"
        if recorded
        else f"{FAMILIES[enc.family[i]]} #{enc.scene_id[i]}"
    )
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("x along the heading (m)", fontsize=6)
    ax.set_ylabel("y to the left (m)", fontsize=6)
    ax.tick_params(labelsize=6)


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
        "(red), neighbours (blue), ground-truth alternatives (dotted)",
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
    ax.set(xlabel="epoch", ylabel="loss", title="Loss per epoch")
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
        ax.set(xlabel="epoch", title=f"val {metric}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def gradient_norms(records: list[dict], path: str | Path) -> Path:
    """Per-layer gradient norm (log scale) and update-to-weight ratio over training."""
    steps = [r["step"] for r in records]
    layers = list(records[0]["layers"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    for name in layers:
        a.plot(steps, [r["layers"][name]["grad_norm"] for r in records], label=name)
        b.plot(steps, [r["layers"][name]["update_ratio"] for r in records], label=name)
    a.set(yscale="log", xlabel="step", title="gradient norm per layer")
    b.set(yscale="log", xlabel="step", title="update / weight norm per step")
    b.axhline(1e-3, color="k", ls=":", lw=1, label="1e-3 (healthy)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    b.legend(fontsize=7)
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
    for ax in axes.flat[len(idx) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="best")
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
        ax.set_title(f"{metric} at decision points" + (" (m)" if metric != "MR@6" else ""))
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save(fig, path)
