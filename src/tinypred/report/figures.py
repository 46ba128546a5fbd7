"""Figures (matplotlib, no screen needed). Each function draws into a PNG written atomically; one scene
is drawn into its panel by `scene_figures`."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from tinypred.data.encoding import EncodedScenes
from tinypred.fileio import atomic_open
from tinypred.report.scene_figures import draw_scene


class Modes(Protocol):
    """What a prediction shows in a picture: modes (N, K, T, 2) and their probabilities (N, K)."""

    @property
    def modes(self) -> np.ndarray: ...

    @property
    def probs(self) -> np.ndarray: ...


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Write `fig` as PNG to `path` atomically and close it."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


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
        "(red), neighbours (blue; dashed: what they drove next), ground-truth alternatives (dotted); "
        "stop-or-go as distance over time",
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
    """minFDE@6, MR@6 and mode spread at decision points, one bar per ablation run, and minFDE@6 on the
    interactive scenes where every run has them (where the run blind to its neighbours pays)."""
    names = [r["name"] for r in rows]
    panels = [("decision", "minFDE@6"), ("decision", "MR@6"), ("decision", "mode_spread")]
    if rows and all("interactive" in r for r in rows):
        panels.append(("interactive", "minFDE@6"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.7 * len(panels), 3.8), squeeze=False)
    for ax, (part, metric) in zip(axes[0], panels, strict=True):
        values = [r[part][metric] for r in rows]
        ax.bar(range(len(names)), values, color=[f"C{i}" for i in range(len(names))])
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
        ax.set_title(f"{metric} {'at decision points' if part == 'decision' else 'on interactive scenes'}")
        ax.set_ylabel("fraction of samples" if metric == "MR@6" else "m")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save(fig, path)


FLOOR_SLICES = {  # the slices `floor_bars` draws, and how a reader knows them
    "decision": "decision points (the target's own choice)",
    "interactive": "interactive scenes (the neighbours decide)",
    "other": "other scenes",
}
FLOOR_METRICS = ("minFDE@6", "minFDE@1")  # @6 beside @1: each against its own floor


def floor_bars(
    expected: dict[str, dict[str, dict[str, float]]],
    floor: dict[str, dict[str, dict[str, float]]],
    path: str | Path,
) -> Path:
    """Per slice (decision, interactive, other; a row each), minFDE@6 and minFDE@1 side by side: each
    predictor's expected value over held-out futures (`expected`: name -> slice -> metric) as bars, the
    bayes floor (`floor`: slice -> metric -> value, se, mc_se) as a dashed line in its Monte-Carlo band,
    and above each bar its ratio to the floor. Other slices (all, family/...) are not drawn."""
    parts = [part for part in FLOOR_SLICES if part in floor]
    names = list(expected)
    # One colour per predictor in every panel; bayes grey, as the floor it equals, and no other grey.
    palette = [f"C{j}" for j in range(10) if j != 7]
    colours = ["0.6" if name == "bayes" else palette[j % len(palette)] for j, name in enumerate(names)]
    fig, axes = plt.subplots(max(1, len(parts)), 2, figsize=(12, 3.6 * max(1, len(parts))), squeeze=False)
    if not parts:
        for ax in axes.flat:
            ax.axis("off")
        axes[0, 0].text(0, 0.5, "no decision, interactive or other scenes: no floor to draw")
    for row, part in zip(axes, parts, strict=False):
        for ax, metric in zip(row, FLOOR_METRICS, strict=True):
            f = floor[part][metric]
            x = np.arange(len(names))
            values = np.array([expected[n].get(part, {}).get(metric, np.nan) for n in names], float)
            ax.bar(x, values, color=colours, width=0.7)
            ax.axhspan(
                f["value"] - f["mc_se"],
                f["value"] + f["mc_se"],
                color="k",
                alpha=0.18,
                lw=0,
                label=f"± Monte-Carlo se ({f['mc_se']:.3f} m)",
            )
            ax.axhline(f["value"], color="k", ls="--", lw=1.2, label=f"bayes floor {f['value']:.2f} m")
            for xi, v in zip(x, values, strict=True):
                if np.isfinite(v) and f["value"] > 0:
                    ax.annotate(
                        f"{v / f['value']:.2f}×",
                        (xi, v),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=6.5,
                    )
            top = np.nanmax(np.r_[values, f["value"]])
            ax.set_ylim(0, 1.15 * top if np.isfinite(top) and top > 0 else 1.0)  # room for the ratios
            ax.set_xticks(x, names, rotation=30, ha="right", fontsize=7)
            ax.set_ylabel(f"expected {metric} (m)", fontsize=8)
            ax.set_title(f"{metric}, {FLOOR_SLICES[part]}", fontsize=9)
            ax.grid(alpha=0.3, axis="y")
            ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(
        "Expected minFDE over held-out futures of the true distribution, against the best achievable "
        "(dashed: the bayes floor); above each bar its ratio to the floor. @6 against the @6 floor, "
        "@1 against the @1 floor.",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return save(fig, path)


def neighbour_effect(
    scenes: EncodedScenes, idx: np.ndarray, seeing: Modes, blind: Modes, path: str | Path
) -> Path:
    """One row per scene of idx: the modes of the model that reads the neighbours (`seeing`: .modes
    (N, K, T, 2), .probs (N, K) on all of `scenes`) and of the one blind to them (`blind`), each over the
    same scene drawn by `draw_scene` (the neighbours' pasts and futures), in the same view."""
    rows = max(1, len(idx))
    fig, axes = plt.subplots(rows, 2, figsize=(10, 4.3 * rows), squeeze=False)
    if not len(idx):
        for ax in axes.flat:
            ax.axis("off")
        axes[0, 0].text(0, 0.5, "no scenes to show")
    for (left, right), i in zip(axes, np.asarray(idx, int), strict=False):
        for ax, pred, who in (
            (left, seeing, "model reading its neighbours"),
            (right, blind, "model blind to its neighbours"),
        ):
            draw_scene(ax, scenes, int(i), pred.modes[i], pred.probs[i])
            ax.set_title(f"{ax.get_title()}: {who}{_fde_note(scenes, int(i), pred.modes[i])}", fontsize=8)
            ax.legend(fontsize=5.5, loc="best")
        # One view for both panels, the union of the two: the predictions compare point for point.
        for get, put in ((Axes.get_xlim, Axes.set_xlim), (Axes.get_ylim, Axes.set_ylim)):
            lims = np.array([get(left), get(right)])
            for ax in (left, right):
                put(ax, lims[:, 0].min(), lims[:, 1].max())
    fig.suptitle(
        "The same scene, two models: left reads the other agents, right does not see them "
        "(neighbours' pasts solid, what they drove next dashed; purple: the modes; green: the truth)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return save(fig, path)


def _fde_note(scenes: EncodedScenes, i: int, modes: np.ndarray) -> str:
    """The title's note on modes (K, T, 2) for sample i: their minFDE, or nothing when the end is unknown."""
    if not scenes.future_mask[i, -1]:
        return ""
    best = np.linalg.norm(modes[:, -1] - scenes.future[i, -1], axis=-1).min()
    return f", minFDE@{len(modes)} {best:.2f} m"
