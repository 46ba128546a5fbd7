"""The demo report's text: the floor and neighbour sections read their numbers from metrics.json."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from report_fixtures import fake_metrics

from tinypred.report.document import demo_blocks
from tinypred.report.render import render_html, render_markdown

FIGURES = ("gallery", "loss", "metrics", "gradients", "ablation", "profile", "scenes", "floor", "neighbours")


@pytest.fixture
def figures(tmp_path) -> dict[str, Path]:
    """A stand-in PNG per figure: the text is under test here, the drawings in test_report_figures."""
    out = {}
    for name in FIGURES:
        out[name] = tmp_path / f"{name}.png"
        matplotlib.image.imsave(out[name], np.zeros((2, 2)))
    return out


def _report(m: dict, figures: dict[str, Path]) -> tuple[str, str]:
    blocks = demo_blocks(m, figures)
    return render_markdown(blocks), render_html(blocks, next(iter(figures.values())).parent)


def _table(md: str, after: str) -> list[list[str]]:
    """The rows of the first Markdown table after the line `after`, cells stripped."""
    lines = md[md.index(after) :].splitlines()
    start = next(j for j, line in enumerate(lines) if line.startswith("| "))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_the_report_shows_the_floor_with_each_predictors_ratio(figures):
    m = fake_metrics()
    md, page = _report(m, figures)
    assert "## How far from the best achievable" in md
    decision = _table(md, "Decision points (the target's own choice):")
    assert decision[0][:3] == ["bayes (the floor)", "1.000 ± 0.004", "1.00×"]
    assert decision[1][:3] == ["mlp", "1.370", "1.37×"]  # the model first, its ratio to the floor
    assert {row[0] for row in decision} == {"bayes (the floor)", *(n for n in m["expected"] if n != "bayes")}
    for part in ("Interactive scenes (the neighbours decide):", "Other scenes"):
        assert part in md
    # What each floor is a floor of; NLL is none; the bayes row can be beaten by chance by about se.
    assert "NLL is not floored" in md and "by about the floor's standard error" in md and "0.031 m" in md
    assert "@1 with the @1 floor, @6 with the @6 floor" in md
    assert "512 of them per scene choose the bayes predictions, 512 held-out" in md
    assert page.count("data:image/png;base64,") == len(FIGURES)
    assert "1.37×" in page


def test_the_report_shows_what_the_neighbours_are_worth(figures):
    md, _ = _report(fake_metrics(), figures)
    assert "## Neighbours matter" in md
    assert "minFDE@6 1.52 m without them vs 1.00 m with them (ratio 1.52)" in md
    rows = _table(md, "## Neighbours matter")
    assert [r[:2] for r in rows] == [
        ["wta+ce", "yes"],
        ["wta+ce no neighbours", "no"],
        ["blind / seeing", ""],
    ]
    assert rows[2][2] == "1.52×"
    ablation = _table(md, "## Ablation: why the loss matters")
    assert ablation[-1][0] == "wta+ce no neighbours" and ablation[-1][4] == "no" and ablation[0][4] == "yes"
    assert ablation[-1][-1] == "1.520" and ablation[0][-1] == "1.000"  # interactive minFDE@6


def test_the_report_has_the_interactive_slice_and_keeps_the_checks(figures):
    m = fake_metrics()
    md, page = _report(m, figures)
    assert "130 are interactive" in md and "150 of the test scenes are at a decision point" in md
    interactive = _table(md, "## Test metrics on the interactive scenes")
    assert [r[0] for r in interactive] == list(m["test"])
    assert "- PASS: The fake model beats nobody (fake detail 42)" in md
    assert "<li class='fail'>FAIL: A claim that fails (fake detail 43)</li>" in page


@pytest.mark.parametrize("beats", [False, True])
def test_the_report_says_why_the_top_mode_loses_to_cv_only_when_it_does(figures, beats):
    md, _ = _report(fake_metrics(top_mode_beats_cv=beats), figures)
    assert ("does not beat constant velocity" in md) is not beats
    assert ("geometric median" in md) is not beats
    assert f"minFDE@1 {2.5 if beats else 3.4:.2f} m vs 3.00 m" in md


def test_the_fake_metrics_are_what_the_demo_checks_read():
    """The fake is the demo's shape: its checks run on it (so the report tests read real keys)."""
    from tinypred.experiments.demo import checks as demo_checks

    checks = demo_checks(fake_metrics())
    assert checks and all({"claim", "detail", "passed"} <= set(c) for c in checks)
