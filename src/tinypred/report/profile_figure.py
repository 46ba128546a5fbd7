"""The profile figure: where a training step's time goes, in torch and in the NumPy autodiff engine.

Reads the plain dict `tinypred profile` writes as profile.json (see `tinypred.experiments.profile`), so
it needs nothing of torch or the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tinypred.report.figures import save

SHOWN = 10  # bars per panel; the rest are summed into one "other" bar
PARTS = (  # engine row field, legend label, colour
    ("forward_ms", "forward", "#1f77b4"),
    ("backward_ms", "backward", "#ff7f0e"),
    ("update_ms", "optimizer", "#2ca02c"),
)


def _top(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """The SHOWN largest rows by share, and the others summed into one row (shares and `fields`)."""
    rows = sorted(rows, key=lambda r: -r["share_pct"])
    shown, rest = rows[:SHOWN], rows[SHOWN:]
    if rest:
        other = {"op": f"other ({len(rest)} ops)", "share_pct": sum(r["share_pct"] for r in rest)}
        other |= {f: sum(r.get(f, 0.0) for r in rest) for f in fields}
        shown.append(other)
    return shown


def profile_figure(profile: dict[str, Any], path: str | Path) -> Path:
    """Two bar charts side by side, in % of a training step: torch's operators by self CPU time (the
    training phase of the profile) and the engine's op types, split into forward, backward and the
    optimizer. Each bar is labelled with its milliseconds per step."""
    train, engine = profile["torch"]["train"], profile["engine"]
    torch_rows = _top(train["rows"], ("self_cpu_ms",))
    engine_rows = _top(engine["rows"], tuple(f for f, _, _ in PARTS))
    height = 0.45 * max(len(torch_rows), len(engine_rows)) + 1.6
    fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(13, height), constrained_layout=True)

    names = [r["op"] for r in torch_rows][::-1]
    shares = [r["share_pct"] for r in torch_rows][::-1]
    ax_t.barh(names, shares, color="#7f7f7f", label="self CPU time")
    for y, r in enumerate(torch_rows[::-1]):
        ax_t.annotate(f" {r['self_cpu_ms']:.3g} ms", (r["share_pct"], y), va="center", fontsize=8)
    ax_t.set_title(
        f"torch on {profile['device']}, batch {train['batch']}: {train['ms_per_step']:.3g} ms per step\n"
        "operators by self CPU time (ProfilerStep*: Python between ops)",
        fontsize=10,
    )

    names = [r["op"] for r in engine_rows][::-1]
    left = [0.0] * len(engine_rows)
    for field, label, colour in PARTS:
        # A part's bar length: its share of the row's share, in proportion to its milliseconds.
        widths = [
            r["share_pct"] * r.get(field, 0.0) / max(sum(r.get(f, 0.0) for f, _, _ in PARTS), 1e-12)
            for r in engine_rows[::-1]
        ]
        ax_e.barh(names, widths, left=left, color=colour, label=label)
        left = [a + w for a, w in zip(left, widths, strict=True)]
    for y, r in enumerate(engine_rows[::-1]):
        ms = sum(r.get(f, 0.0) for f, _, _ in PARTS)
        ax_e.annotate(f" {ms:.3g} ms", (r["share_pct"], y), va="center", fontsize=8)
    ax_e.set_title(
        f"NumPy autodiff engine, batch {engine['batch']}: {engine['ms_per_step']:.3g} ms per step\n"
        "op types, forward and backward closures",
        fontsize=10,
    )
    ax_e.legend(loc="lower right", fontsize=8)

    for ax in (ax_t, ax_e):
        ax.set_xlabel("% of a training step (bar labels: ms per step)")
        ax.set_xlim(0, max(ax.get_xlim()[1], 1) * 1.18)  # room for the ms labels
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    return save(fig, path)
