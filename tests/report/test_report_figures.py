"""The report's figures: neighbours' futures in the scene drawings, the floor bars, the neighbour effect."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from report_fixtures import CROSSING, FAR, FAR_X, LEAD, fake_metrics, prediction, scenes

from tinypred.report import figures as plots
from tinypred.report.scene_figures import draw_scene

PNG = b"\x89PNG\r\n\x1a\n"


def _dashed(ax: plt.Axes) -> list[np.ndarray]:
    return [np.asarray(line.get_xydata()) for line in ax.get_lines() if line.get_linestyle() == "--"]


def test_draw_scene_draws_each_neighbours_known_future_from_where_it_was_last_seen():
    enc, idx = scenes()
    i = int(idx[0])
    fig, ax = plt.subplots()
    draw_scene(ax, enc, i)
    dashed = _dashed(ax)
    for slot in (LEAD, CROSSING, FAR):
        known = enc.neighbour_future[i, slot, enc.neighbour_future_mask[i, slot]]
        expected = np.concatenate([enc.neighbours[i, slot, -1:, :2], known])
        assert any(d.shape == expected.shape and np.allclose(d, expected) for d in dashed), slot
    # The crossing car's future is known for half the horizon: the other half is not drawn at (0, 0).
    assert enc.neighbour_future_mask[i, CROSSING].sum() == enc.future.shape[1] // 2
    # The near neighbours' futures are in view (the lead's end, 15 + 6 x 3 s = 33 m); the far one does
    # not widen it.
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    lead_end = enc.neighbour_future[i, LEAD, -1]
    assert x0 <= lead_end[0] <= x1 and y0 <= lead_end[1] <= y1
    assert x1 < FAR_X
    labels = ax.get_legend_handles_labels()[1]
    assert labels.count("neighbours (past)") == 1 and labels.count("neighbours (future)") == 1
    plt.close(fig)


def test_draw_progress_shows_the_lead_in_the_lane_and_not_the_crossing_car():
    enc, idx = scenes()
    i = int(idx[2])  # stop_or_go: distance over time
    fig, ax = plt.subplots()
    draw_scene(ax, enc, i)
    lead_end = enc.neighbour_future[i, LEAD, -1, 0]
    assert any(np.isclose(d[-1, 1], lead_end) for d in _dashed(ax))
    # The crossing car is off the lane (y = -10 m): its x (20 m, constant) is not a distance along it.
    flat_at_20 = [d for d in _dashed(ax) if np.allclose(d[:, 1], 20.0)]
    assert not flat_at_20
    assert "neighbour in the lane" in ax.get_legend_handles_labels()[1]
    plt.close(fig)


def test_floor_bars_writes_a_png_of_one_row_per_slice(tmp_path, monkeypatch):
    m = fake_metrics()
    drawn = _keep_figures(monkeypatch)
    path = plots.floor_bars(m["expected"], m["floor"], tmp_path / "floor.png")  # with "all" and the sizes
    assert path.read_bytes().startswith(PNG) and path.stat().st_size > 20_000
    (fig,) = drawn
    titles = [ax.get_title() for ax in fig.axes]
    # decision, interactive, other (not "all"), each @6 beside @1.
    assert (
        len(titles) == 6 and titles[0].startswith("minFDE@6, decision") and titles[1].startswith("minFDE@1")
    )
    assert not any("All" in t or "all scenes" in t for t in titles)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches if p.get_width() == pytest.approx(0.7)]
    mlp = list(m["expected"]).index("mlp")
    assert heights[mlp] == pytest.approx(1.37)
    assert "1.37×" in [t.get_text() for t in ax.texts]
    assert any(line.get_ydata()[0] == 1.0 and line.get_linestyle() == "--" for line in ax.get_lines())


def test_neighbour_effect_draws_both_models_on_the_same_view(tmp_path, monkeypatch):
    enc, idx = scenes()
    drawn = _keep_figures(monkeypatch)
    seeing, blind = prediction(enc, 0.5), prediction(enc, 4.0, seed=1)
    path = plots.neighbour_effect(enc, idx[:2], seeing, blind, tmp_path / "neighbours.png")
    assert path.read_bytes().startswith(PNG) and path.stat().st_size > 20_000
    (fig,) = drawn
    left, right = fig.axes[0], fig.axes[1]
    assert "reading its neighbours" in left.get_title() and "blind to its neighbours" in right.get_title()
    assert "follow" in left.get_title() and "minFDE@6" in left.get_title()
    assert left.get_xlim() == right.get_xlim() and left.get_ylim() == right.get_ylim()
    assert len(_dashed(left)) >= 3  # the three neighbours' futures


def _keep_figures(monkeypatch) -> list:
    """The figures `figures.save` writes, kept to look into after."""
    drawn, real = [], plots.save
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.append(fig) or real(fig, path))
    return drawn
