"""Figures (matplotlib, no screen needed). Each function draws into a PNG written atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from tinypred.encoding import EncodedScenes
from tinypred.fileio import atomic_open
from tinypred.scenes import FAMILIES, INTENTS, LANE_TYPES

ALT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c")


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Write `fig` as PNG to `path` atomically and close it."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def draw_scene(
    ax: plt.Axes,
    enc: EncodedScenes,
    i: int,
    modes: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Scene i in its agent frame: lanes, history, future, the ground-truth alternatives, and optionally
    predicted modes (K, T, 2) with probabilities (K,) and other single trajectories by name (T, 2)."""
    stop = LANE_TYPES.index("stop_line")
    for lane, ok, kind in zip(enc.lanes[i], enc.lane_mask[i], enc.lane_type[i], strict=True):
        if ok:
            ax.plot(
                *lane.T, color="crimson" if kind == stop else "0.75", lw=3 if kind == stop else 1.2, zorder=1
            )
    for m in np.flatnonzero(enc.alt_mask[i]):
        ax.plot(
            *enc.alt_futures[i, m].T,
            ls=":",
            lw=1.5,
            color=ALT_COLOURS[m],
            zorder=2,
            label=f"{INTENTS[enc.alt_intent[i, m]]} p={enc.alt_probs[i, m]:.2f}",
        )
    ax.plot(*enc.history[i, :, :2].T, "k.-", ms=2.5, lw=1, label="history", zorder=3)
    ax.plot(*enc.future[i].T, color="green", lw=2.5, label="future", zorder=3)
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
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"{FAMILIES[enc.family[i]]} #{enc.scene_id[i]}", fontsize=8)
    ax.tick_params(labelsize=6)


def scene_grid(enc: EncodedScenes, path: str | Path, n: int = 12, seed: int = 0) -> Path:
    """A grid of `n` random scenes (chosen with `seed`)."""
    idx = np.random.default_rng(seed).choice(len(enc), size=min(n, len(enc)), replace=False)
    cols = min(4, len(idx)) or 1
    rows = max(1, -(-len(idx) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
    for ax, i in zip(axes.flat, idx, strict=False):
        draw_scene(ax, enc, int(i))
        ax.legend(fontsize=5, loc="best")
    for ax in axes.flat[len(idx) :]:
        ax.axis("off")
    fig.suptitle(
        "Scenes in their agent frames: lanes (grey), stop lines (red), ground-truth alternatives (dotted)",
        fontsize=9,
    )
    return save(fig, path)
