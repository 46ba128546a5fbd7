"""The demo's report: its metrics.json turned into blocks (`render` writes them as Markdown and HTML).

Everything shown is read from the metrics dict the demo writes, so the report never says more than
metrics.json does.
"""

from __future__ import annotations

from pathlib import Path

from tinypred.data.scene_config import FAMILIES
from tinypred.evaluation.metrics import METRICS
from tinypred.report.render import Block

# The floor tables' metrics, each beside its model/floor ratio: @6 and @1 each against its own floor.
FLOOR_COLUMNS = ("minFDE@6", "minFDE@1", "MR@6", "minADE@6")
SLICE_TITLES = {
    "decision": "Decision points (the target's own choice)",
    "interactive": "Interactive scenes (the neighbours decide)",
    "other": "Other scenes (no decision point, not interactive)",
    "all": "All scenes",
}
ABLATION_HEADERS = ("run", "loss", "ce", "lr", "neighbours", "minFDE@6", "MR@6", "NLL", "mode spread")
ABLATION_HEADERS += ("to nearest branch", "to mixture mean", "interactive minFDE@6")
# The "Neighbours matter" table: the ablation's runs with and without them, (slice, metric) per column.
NEIGHBOUR_COLUMNS = (("interactive", "minFDE@6"), ("interactive", "MR@6"), ("decision", "minFDE@6"))
# What the ablation table shows per run, at decision points.
ABLATION_COLUMNS = (
    "minFDE@6",
    "MR@6",
    "NLL",
    "mode_spread",
    "endpoint_to_nearest_branch_m",
    "endpoint_to_mixture_mean_m",
)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _metric_rows(test: dict, slice_: str) -> list[list[str]]:
    return [
        [name, *(_fmt(by_slice[slice_][m]) for m in METRICS)]
        for name, by_slice in test.items()
        if slice_ in by_slice
    ]


def _ratio(value: float, floor: float) -> str:
    """value / floor as "1.23×"; a dash where the floor is 0 (a miss rate nobody need miss)."""
    return f"{value / floor:.2f}×" if floor > 0 else "–"


def _floor_rows(m: dict, part: str) -> list[list[str]]:
    """The floor of slice `part` (value ± mc_se), then each predictor's expected metric and its ratio to
    the floor, the model first."""
    floor = m["floor"][part]
    value = {k: floor[k]["value"] for k in FLOOR_COLUMNS}
    first = (c for k in FLOOR_COLUMNS for c in (f"{value[k]:.3f} ± {floor[k]['mc_se']:.3f}", "1.00×"))
    rows = [["bayes (the floor)", *first]]
    names = sorted((n for n in m["expected"] if n != "bayes"), key=lambda n: n != "mlp")
    for name in names:
        got = m["expected"][name].get(part)
        if got is not None:
            cells = (c for k in FLOOR_COLUMNS for c in (_fmt(got[k]), _ratio(got[k], value[k])))
            rows.append([name, *cells])
    return rows


def demo_blocks(m: dict, figures: dict[str, Path]) -> list[Block]:
    """The demo report for metrics `m` (as in metrics.json) and its figures by name."""
    sizes = m["config"]["sizes"]
    scenes = m["config"]["scenes"]
    horizon_s = scenes["future_steps"] * scenes["dt"]
    init = m["init"]  # the demo's loss is wta+ce, so both parts are there
    dec_count = m["test"]["mlp"]["decision"]["count"]
    int_count = m["test"]["mlp"].get("interactive", {}).get("count", 0)
    blocks: list[tuple] = [
        ("h1", "tinypred: a tiny learned multimodal trajectory predictor"),
        (
            "p",
            f"Seed {m['seed']}{' (quick run)' if m['quick'] else ''}. {sizes['n_train']} training, "
            f"{sizes['n_val']} validation and {sizes['n_test']} test scenes of synthetic driving. "
            f"{dec_count} of the test scenes are at a decision point, where the target's own choice decides "
            f"its future (intersection, lane change, stop or go: the decision slice); {int_count} are "
            "interactive, where other agents' moves decide it (follow: a lead brakes, cruises or turns off; "
            "yield: cross traffic at an unsignalised junction goes first or waits; merge: the target's lane "
            "ends, into the gap ahead of a car in the next lane or behind it: the interactive slice); the "
            "rest (curve, cruise) have one intent. "
            f"An MLP reads the target's past, the map and its neighbours' pasts and predicts "
            f"K = {m['config']['train']['model']['modes']} trajectories of {horizon_s:g} s and their "
            "probabilities; it is trained with a winner-take-all loss plus a mode-classification term. "
            "Every predictor is also measured against the bayes floor: the best any predictor can do, "
            "computed from the generator's own distribution of each scene's future.",
        ),
        ("h2", "What this run shows"),
        ("list", [f"{'PASS' if c['passed'] else 'FAIL'}: {c['claim']} ({c['detail']})" for c in m["checks"]]),
        ("h2", "Test metrics at decision points"),
        (
            "p",
            "minADE/minFDE in metres (the ADE of the mode with the lowest FDE, as in Argoverse 2); MR: miss "
            "rate at 2 m; @1 scores the most probable mode, @6 the six most probable; brier-minFDE adds "
            "(1 - p)^2 of the best mode; NLL in nats per scene under a Laplace mixture whose per-step scales "
            "are fitted by maximum likelihood on the training split, for every predictor alike. The bayes "
            "row is the floor's predictions scored like every other row, on the one future each test scene "
            "drove: a predictor may beat it on this test set by chance, by about the floor's standard error "
            "(see 'How far from the best achievable').",
        ),
        ("table", ["predictor", *METRICS], _metric_rows(m["test"], "decision")),
        *_top_mode_note(m),
        ("h2", "Test metrics on the interactive scenes"),
        (
            "p",
            "Follow, yield and merge: the scenes where the neighbours' moves decide the target's future, so "
            "a predictor that does not read them has only the target's own past to go on (same metrics "
            "as above).",
        ),
        ("table", ["predictor", *METRICS], _metric_rows(m["test"], "interactive")),
        ("h2", "Test metrics, all scenes"),
        ("table", ["predictor", *METRICS], _metric_rows(m["test"], "all")),
        ("h2", "minFDE@6 per family (m)"),
        (
            "table",
            ["predictor", *FAMILIES],
            [
                [n, *(_fmt(by_family[f]["minFDE@6"]) if f in by_family else "" for f in FAMILIES)]
                for n, by_family in m["test_by_family"].items()
            ],
        ),
        ("h2", "Predictions at decision points and in interactive scenes"),
        (
            "p",
            "Purple: the learned model's modes (darker = more probable, the number is its probability). "
            "Green (on top, a star at its end): what the agent did. Dotted: the ground-truth alternatives "
            "with their probabilities. Blue tones: the neighbours, each in its own colour, their pasts "
            "solid (a dot where last seen) and what they drove next dashed. Stop-or-go scenes are drawn as "
            "distance over time, where stopping and going part (with any neighbour in the lane). "
            "Dashed: constant velocity, and the top mode of the L2-trained model -- which lands between the "
            "branches.",
        ),
        ("img", figures["gallery"], "Decision-point and interactive scenes from the test split"),
        *_floor_section(m, figures),
        *_neighbour_section(m, figures),
        ("h2", "Training"),
        (
            "p",
            f"Loss at initialisation: {init['loss']:.3f} (classification term {init['ce']:.3f} against "
            f"log K = {init['expected_ce']:.3f}; regression {init['regression']:.3f} against "
            f"{init['expected_regression']:.3f} for predicting no motion). "
            f"Best epoch {m['training']['best_epoch']} of {m['training']['epochs_run']}, "
            f"{m['training']['train_seconds']:.1f} s of training."
            + (f" Warnings: {'; '.join(m['training']['warnings'])}." if m["training"]["warnings"] else ""),
        ),
        ("img", figures["loss"], "Train and validation loss"),
        ("img", figures["metrics"], "Validation metrics per epoch, with the baselines at decision points"),
        ("img", figures["gradients"], "Per-layer gradient norms and update-to-weight ratios"),
        ("h2", "Ablation: why the loss matters"),
        (
            "p",
            "Each run trains the same model on the same data with one thing changed. At decision points, "
            "'mode spread' is the mean distance between the predicted endpoints; 'to nearest branch' and "
            "'to mixture mean' are the probability-weighted distance of the predicted endpoints to the "
            "nearest ground-truth branch and to the mixture's mean. An L2 loss pulls every mode to the "
            "mean of the branches: small spread, close to the mean, far from any branch. The last column "
            "is minFDE@6 on the interactive scenes, where the run without neighbours pays.",
        ),
        (
            "table",
            list(ABLATION_HEADERS),
            [
                [
                    r["name"],
                    r["loss"],
                    "yes" if r["ce"] else "no",
                    f"{r['lr']:g}",
                    "yes" if r["neighbours"] else "no",
                    *(_fmt(r["decision"][k]) for k in ABLATION_COLUMNS),
                    _fmt(r["interactive"]["minFDE@6"]) if "interactive" in r else "",
                ]
                for r in m["ablation"]
            ],
        ),
        ("img", figures["ablation"], "Ablation at decision points (and on the interactive scenes)"),
        ("h2", "Training time per device"),
        (
            "p",
            f"{m['bench'][0].get('steps', '')} training steps of batch {m['bench'][0].get('batch_size', '')} "
            "on each device this machine has, fp32 and bfloat16 autocast; timed with "
            "torch.utils.benchmark.Timer after a warm-up, on this process's torch threads, the device "
            "synchronised.",
        ),
        (
            "table",
            ["device", "precision", "status", "seconds", "samples/s"],
            [
                [
                    r["device"],
                    r["precision"],
                    r["status"],
                    _fmt(r.get("seconds", "")),
                    f"{r['samples_per_s']:.0f}" if "samples_per_s" in r else "",
                ]
                for r in m["bench"]
            ],
        ),
        ("h2", "Where a training step's time goes"),
        (
            "p",
            f"torch.profiler over {m['profile']['batch']}-sample training steps of the model above: "
            f"{m['profile']['torch_ms_per_step']:.2f} ms per step in torch, "
            f"{m['profile']['engine_ms_per_step']:.2f} ms in the NumPy autodiff engine on the same batches; "
            "most of it "
            + ", ".join(f"{r['op']} {r['share_pct']:.0f}%" for r in m["profile"]["torch_top"])
            + " (torch) and "
            + ", ".join(f"{r['op']} {r['share_pct']:.0f}%" for r in m["profile"]["engine_top"])
            + " (engine). The Chrome traces are in profile/ (open them in ui.perfetto.dev).",
        ),
        ("img", figures["profile"], "Share of a training step per operator, torch and the engine"),
        ("h2", "The data"),
        (
            "img",
            figures["scenes"],
            "Random test scenes: lanes (grey), stop lines (red), neighbours (blue; dashed: what they drove "
            "next), alternatives (dotted)",
        ),
        ("h2", "Time per stage"),
        ("table", ["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in m["timing"].items()]),
        (
            "p",
            f"Reproduce: tinypred demo --seed {m['seed']}{' --quick' if m['quick'] else ''}. All numbers "
            "are in metrics.json beside this report.",
        ),
    ]
    return blocks


def _top_mode_note(m: dict) -> list[tuple]:
    """Whether the model's top mode beats constant velocity at decision points (minFDE@1), and, where it
    does not, why: the @1-optimal guess at a split lies between the branches, a WTA mode on one."""
    mlp, cv = m["test"]["mlp"]["decision"]["minFDE@1"], m["test"]["cv"]["decision"]["minFDE@1"]
    floor = m["floor"].get("decision", {}).get("minFDE@1")
    at_floor = f"; the @1 floor {floor['value']:.2f} m" if floor else ""
    if mlp < cv:
        why = ""
    else:
        why = (
            " That is what the loss asks for, not a fault: the minFDE@1-optimal single guess at a split is "
            "the geometric median of the futures (the bayes @1 prediction), which lies between the "
            "branches, while a winner-take-all mode commits to one branch and pays the whole distance to "
            "another whenever the agent took it. Constant velocity carries straight on, which at an "
            "intersection or a lane change is the middle branch, near that median. The model's six modes "
            "are scored by minFDE@6, against the @6 floor."
        )
    verdict = "beats" if mlp < cv else "does not beat"
    return [
        (
            "p",
            f"At decision points the model's most probable mode {verdict} constant velocity (minFDE@1 "
            f"{mlp:.2f} m vs {cv:.2f} m{at_floor}).{why}",
        )
    ]


def _floor_section(m: dict, figures: dict[str, Path]) -> list[tuple]:
    """'How far from the best achievable': what each floor is a floor of, then per slice the floor and
    each predictor's expected metrics and their ratio to it."""
    floor = m["floor"]
    parts = [part for part in SLICE_TITLES if part in floor]
    blocks: list[tuple] = [
        ("h2", "How far from the best achievable"),
        (
            "p",
            "For every test scene the generator is asked for futures from the law its own future was drawn "
            "from, given everything its past shows (the intent, or the neighbour's intent, from its "
            "posterior; every driver style the past does not show from its prior). "
            f"{floor['samples']} of them per scene choose the bayes predictions, {floor['held_out']} "
            "held-out ones score them and every other predictor. Per metric, the bayes prediction is the "
            "one that minimises that metric's expectation: for minFDE@K the K-median of the endpoints, for "
            "minADE@K the K-median of whole trajectories, for MR@K the K samples whose 2 m discs cover the "
            "most samples; K = 6, and K = 1 (the best single guess).",
        ),
        (
            "list",
            [
                "The floor (first row of each table, ± its Monte-Carlo standard error): each metric's "
                "expectation over the held-out samples, averaged over the scenes: what no predictor can "
                "beat in expectation. k-median and max coverage are solved approximately, so the floor "
                "is an upper bound on the true one, a tight one.",
                "The other rows: each predictor's expected metric on the same held-out samples, and its "
                "ratio to the floor (1.00× is the best achievable).",
                "The bayes row of the test tables above: the same predictions scored like every other "
                "row, on the one future each test scene drove; a predictor may beat it on one test set by "
                "chance, by about the floor's standard error over scenes (se" + _se_note(floor) + ").",
                "NLL is not floored: the true density of a scene is no K-mode Laplace mixture; the bayes "
                "row's NLL is that of the endpoint K-median with scales fitted on samples.",
                "Compare like with like: @1 with the @1 floor, @6 with the @6 floor. The @1 floor is far "
                "above the @6 one wherever the future branches; a single guess cannot be near every branch.",
            ],
        ),
    ]
    mlp = m["expected"].get("mlp", {})
    summary = [
        f"{mlp[part][k] / floor[part][k]['value']:.2f}× its floor on {k} {where}"
        for part, k, where in (
            ("decision", "minFDE@6", "at decision points"),
            ("interactive", "minFDE@6", "on the interactive scenes"),
            ("decision", "minFDE@1", "at decision points"),
        )
        if part in mlp and part in floor and floor[part][k]["value"] > 0
    ]
    if summary:
        blocks.append(("p", f"In expectation the model is at {'; '.join(summary)}."))
    headers = ["predictor"] + [c for k in FLOOR_COLUMNS for c in (_with_unit(k), "× floor")]
    for part in parts:
        blocks += [("p", f"{SLICE_TITLES[part]}:"), ("table", headers, _floor_rows(m, part))]
    if "floor" in figures:
        blocks.append(
            ("img", figures["floor"], "Expected minFDE@6 and minFDE@1 of each predictor against the floor")
        )
    return blocks


def _with_unit(metric: str) -> str:
    return metric if metric.startswith("MR") else f"{metric} (m)"


def _se_note(floor: dict) -> str:
    """An example of the floor's standard error over scenes (from the decision slice, where there is one)."""
    if "decision" not in floor:
        return ""
    return f", e.g. {floor['decision']['minFDE@6']['se']:.3f} m for minFDE@6 at decision points"


def _neighbour_section(m: dict, figures: dict[str, Path]) -> list[tuple]:
    """'Neighbours matter': the model that reads its neighbours against the same model blind to them, on
    the interactive scenes (the ablation's "wta+ce" and "wta+ce no neighbours" rows)."""
    by_name = {r["name"]: r for r in m["ablation"]}
    seeing, blind = by_name.get("wta+ce"), by_name.get("wta+ce no neighbours")
    blocks: list[tuple] = [("h2", "Neighbours matter")]
    if not (seeing and blind and "interactive" in seeing and "interactive" in blind):
        return [*blocks, ("p", "This run has no ablation without neighbours on interactive scenes.")]
    s, b = seeing["interactive"], blind["interactive"]
    fde_ratio = b["minFDE@6"] / s["minFDE@6"]
    rows = [
        [r["name"], "yes" if r["neighbours"] else "no", *(_fmt(r[part][k]) for part, k in NEIGHBOUR_COLUMNS)]
        for r in (seeing, blind)
    ]
    rows.append(["blind / seeing", "", *(_ratio(blind[p][k], seeing[p][k]) for p, k in NEIGHBOUR_COLUMNS)])
    blocks += [
        (
            "p",
            "The same model, data and loss, once reading the neighbours' pasts and once blind to them "
            "(its agent encoder off), on the interactive test scenes, where the neighbours decide what the "
            f"target does: minFDE@6 {b['minFDE@6']:.2f} m without them vs {s['minFDE@6']:.2f} m with them "
            f"(ratio {fde_ratio:.2f}), MR@6 {b['MR@6']:.3f} vs {s['MR@6']:.3f}. At decision points, where "
            f"the target's own choice decides, {blind['decision']['minFDE@6']:.2f} m vs "
            f"{seeing['decision']['minFDE@6']:.2f} m.",
        ),
        ("table", ["run", "neighbours", *(f"{part} {k}" for part, k in NEIGHBOUR_COLUMNS)], rows),
    ]
    if "neighbours" in figures:
        blocks.append(
            (
                "img",
                figures["neighbours"],
                "Interactive test scenes where the blind model misses most: the model reading its "
                "neighbours (left) and the one blind to them (right)",
            )
        )
    return blocks
