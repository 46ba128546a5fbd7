"""One scene drawn into a matplotlib Axes: from above (`draw_scene`) or, for stop-or-go, as distance over
time (`draw_progress`). No files are written here (`figures` lays scenes out and saves them); this module
needs no pyplot, so it imports nothing of `figures`.
"""

from __future__ import annotations

import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes

from tinypred.data.encoding import EncodedScenes
from tinypred.data.scene_config import FAMILIES, INTENTS, LANE_TYPES

ALT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c")
# One colour per neighbour slot, its past and its future alike, so a future is matched to its past at a
# glance; cool tones, none of them the modes' purple, the truth's green or the alternatives' colours.
NEIGHBOUR_COLOURS = ("steelblue", "teal", "slategrey", "darkcyan", "royalblue", "cadetblue", "navy", "c")
ELEMENT_STYLE = {  # map element type -> colour, line width
    "lane": ("0.75", 1.2),
    "stop_line": ("crimson", 3.0),
    "bike_lane": ("#8fbc8f", 1.2),
    "bus_lane": ("#d2a24c", 1.2),
}
NEIGHBOUR_RANGE = 40.0  # m: neighbours whose last position is this close widen the view
IN_LANE_M = 2.0  # m: a neighbour this close to the target's heading line shares its lane (distance plot)
OUTLINE = [patheffects.Stroke(linewidth=4, foreground="white"), patheffects.Normal()]


def neighbour_tracks(enc: EncodedScenes, i: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Sample i's neighbours that were seen: (slot, past (h, 2), future (t, 2)), agent frame; the future is
    the steps `neighbour_future_mask` marks (empty where unknown)."""
    tracks = []
    for m in np.flatnonzero(enc.neighbour_mask[i].any(-1)):
        past = enc.neighbours[i, m, enc.neighbour_mask[i, m], :2]
        future = enc.neighbour_future[i, m, enc.neighbour_future_mask[i, m]]
        tracks.append((int(m), past, future))
    return tracks


def _draw_neighbours(ax: Axes, enc: EncodedScenes, i: int) -> list[np.ndarray]:
    """The neighbours' pasts (solid, a dot where last seen) and futures (dashed, thin, from that dot);
    returns the points of those close enough to frame."""
    near, labels = [], ["neighbours (past)", "neighbours (future)"]  # each label once in the legend
    for m, past, future in neighbour_tracks(enc, i):
        colour = NEIGHBOUR_COLOURS[m % len(NEIGHBOUR_COLOURS)]
        ax.plot(*past.T, color=colour, lw=1, alpha=0.8, zorder=2, label=labels[0])
        ax.plot(*past[-1], "o", color=colour, ms=3, zorder=2)
        labels[0] = None
        if len(future):  # starts at the last seen position, so the dashes continue the past
            track = np.concatenate([past[-1:], future])
            ax.plot(*track.T, color=colour, lw=0.9, ls="--", alpha=0.8, zorder=2, label=labels[1])
            labels[1] = None
        if np.linalg.norm(past[-1]) < NEIGHBOUR_RANGE:
            near.append(np.concatenate([past, future]))
    return near


def draw_scene(
    ax: Axes,
    enc: EncodedScenes,
    i: int,
    modes: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Sample i in its agent frame, the way people look at Argoverse 2: the map elements (intersection
    lanes dashed), the neighbours' pasts and futures (dashed, each neighbour its own colour), the target's
    observed past and its future where known, the ground-truth alternatives where there is a mixture, and
    optionally predicted modes (K, T, 2) with probabilities (K,) and other single trajectories by name
    (T, 2). A stop-or-go scene is drawn as distance over time instead (`draw_progress`): from above,
    stopping and going lie on one line."""
    if FAMILIES[enc.family[i]] == "stop_or_go":
        draw_progress(ax, enc, i, modes, probs, extra)
        return
    for lane, ok, kind, crossing in zip(
        enc.lanes[i], enc.lane_mask[i], enc.lane_type[i], enc.lane_is_intersection[i], strict=True
    ):
        if ok:
            colour, width = ELEMENT_STYLE[LANE_TYPES[kind]]
            ax.plot(*lane.T, color=colour, lw=width, ls="--" if crossing else "-", zorder=1)
    near = _draw_neighbours(ax, enc, i)
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
            *future.T, color="green", lw=2.5, label="future (ground truth)", zorder=6, path_effects=OUTLINE
        )
        ax.plot(*future[-1], "*", color="green", ms=8, mec="white", mew=0.6, zorder=6)
    # Zoom to the motion (not the whole map, nor modes of almost no probability) and the neighbours
    # close by, their futures too: a square around them, 4 m of margin.
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
    ax: Axes,
    enc: EncodedScenes,
    i: int,
    modes: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Sample i as distance along its heading (m) over time (s): the past at t <= 0, the future, the
    alternatives, the modes, the stop lines (horizontal) and the neighbours in the target's lane (their
    distance, past solid and future dashed), same styles as `draw_scene`."""
    dt, h = enc.dt, enc.history.shape[1]
    past_t = dt * (np.arange(h) - (h - 1))
    t = dt * np.arange(1, enc.future.shape[1] + 1)
    for lane, ok, kind in zip(enc.lanes[i], enc.lane_mask[i], enc.lane_type[i], strict=True):
        if ok and LANE_TYPES[kind] == "stop_line":
            ax.axhline(lane[:, 0].mean(), color="crimson", lw=2, label="stop line", zorder=1)
    # Only a neighbour in the lane shares the axis's meaning (distance along the target's way): a lead
    # car's line is the gap the target keeps, or closes.
    near = []
    for m in np.flatnonzero(enc.neighbour_mask[i].any(-1)):
        seen, ahead = enc.neighbour_mask[i, m], enc.neighbour_future_mask[i, m]
        last = enc.neighbours[i, m, seen][-1, :2]
        if abs(last[1]) > IN_LANE_M or np.linalg.norm(last) > NEIGHBOUR_RANGE:
            continue
        colour = NEIGHBOUR_COLOURS[m % len(NEIGHBOUR_COLOURS)]
        label = "neighbour in the lane" if not near else None
        ax.plot(past_t[seen], enc.neighbours[i, m, seen, 0], color=colour, lw=1, zorder=2, label=label)
        ax.plot(past_t[seen][-1], last[0], "o", color=colour, ms=3, zorder=2)
        ax.plot(
            np.r_[past_t[seen][-1], t[ahead]],
            np.r_[last[0], enc.neighbour_future[i, m, ahead, 0]],
            color=colour,
            lw=0.9,
            ls="--",
            zorder=2,
        )
        near += [enc.neighbours[i, m, seen, 0], enc.neighbour_future[i, m, ahead, 0]]
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
        future = enc.future[i, known, 0]
        ax.plot(
            t[known],
            future,
            color="green",
            lw=2.5,
            label="future (ground truth)",
            zorder=6,
            path_effects=OUTLINE,
        )
    ax.set_xlim(past_t[0], t[-1] * 1.25)  # room on the right for the probability labels
    # Zoom to the motion and the lane's neighbours, not to modes of almost no probability.
    shown = [
        enc.history[i, seen, 0],
        enc.future[i, known, 0],
        enc.alt_futures[i, enc.alt_mask[i], :, 0].ravel(),
        *near,
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


def _probability_labels(ax: Axes, ends: np.ndarray, probs: np.ndarray, gap: float, dx: float) -> None:
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
