"""The main job (`tinypred demo`): data -> baselines -> training -> test -> ablation -> figures -> report.

Writes into DIR: data/ (the dataset), run/ (the trained predictor), ablation/ (one run each), the figures
(PNG), metrics.json, report.md and report.html (self-contained: images embedded, opens offline). The
report's content is one list of blocks rendered twice, so the two formats always agree.
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tinypred import dataset, plots
from tinypred.baselines import fit_all
from tinypred.errors import TinypredError
from tinypred.experiments import ABLATION_COLUMNS, averaging_stats, device_bench, run_ablation
from tinypred.fileio import write_json, write_text
from tinypred.metrics import METRICS, evaluate_scenes
from tinypred.scenes import FAMILIES, SceneConfig
from tinypred.train import Split, TrainConfig, as_prediction, load_model, train

SCHEMA = 1
PREDICTORS = ("cv", "ca", "ctrv", "cv_fan", "lane_follow", "oracle", "mlp")


@dataclass(frozen=True)
class Plan:
    """Sizes of a demo: scenes per split, training epochs, steps per device in the benchmark."""

    n_train: int
    n_val: int
    n_test: int
    epochs: int
    bench_steps: int


PLANS = {"default": Plan(20000, 4000, 4000, 20, 200), "quick": Plan(8000, 1500, 1500, 12, 50)}


def run_demo(
    out: str | Path = "runs/demo",
    seed: int = 11,
    quick: bool = False,
    log: Callable[[str], None] = print,
    progress: bool = False,
) -> dict:
    """Run the whole pipeline into `out` and return what metrics.json holds."""
    if seed < 0:
        raise TinypredError(f"--seed: expected an integer >= 0, got {seed}")
    out = Path(out)
    plan = PLANS["quick" if quick else "default"]
    timing: dict[str, float] = {}

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        log(f"[{name}] ...")
        start = time.perf_counter()
        yield
        timing[name] = round(time.perf_counter() - start, 2)
        log(f"[{name}] done in {timing[name]:.1f} s")

    scene_cfg = SceneConfig()
    train_cfg = TrainConfig(epochs=plan.epochs, seed=seed)
    with stage("data"):
        ds = dataset.make(scene_cfg, plan.n_train, plan.n_val, plan.n_test, seed)
        dataset.save(ds, out / "data")
        ds = dataset.load(out / "data")
    with stage("baselines"):
        baselines = fit_all(ds.train)
        test = {name: evaluate_scenes(b.predict(ds.test), ds.test) for name, b in baselines.items()}
        refs = {n: evaluate_scenes(baselines[n].predict(ds.val), ds.val) for n in ("cv", "cv_fan")}
    with stage("train"):
        result = train(
            ds,
            train_cfg,
            out / "run",
            progress=progress,
            baselines=refs,
            on_epoch=lambda r: log(
                f"  epoch {r['epoch'] + 1}/{plan.epochs}: val minFDE@6 "
                f"{r['val_minFDE@6']:.2f} m, MR@6 {r['val_MR@6']:.3f}"
            ),
        )
    with stage("evaluate"):
        mlp_pred = _predict(out / "run", ds, ds.test)
        test["mlp"] = evaluate_scenes(mlp_pred, ds.test)
        test["mlp"]["decision"] |= averaging_stats(mlp_pred, ds.test)
    with stage("ablation"):
        ablation = run_ablation(
            ds,
            train_cfg,
            out / "ablation",
            done={"wta+ce": out / "run"},
            on_run=lambda r: log(
                f"  {r['name']}: decision minFDE@6 "
                f"{r['decision']['minFDE@6']:.2f} m, mode spread "
                f"{r['decision']['mode_spread']:.2f} m"
            ),
        )
    with stage("bench"):
        bench = device_bench(ds, train_cfg, steps=plan.bench_steps)
    with stage("figures"):
        figures = _figures(out, ds, result.history, mlp_pred, baselines, ablation, seed)

    metrics = {
        "schema": SCHEMA,
        "seed": seed,
        "quick": quick,
        "config": {
            "scenes": scene_cfg.model_dump(),
            "train": json.loads(train_cfg.model_dump_json()),
            "sizes": plan.__dict__,
        },
        "test": {
            name: {k: v for k, v in test[name].items() if k in ("all", "decision", "other")}
            for name in PREDICTORS
        },
        "test_by_family": {
            name: {k[7:]: v for k, v in test[name].items() if k.startswith("family/")} for name in PREDICTORS
        },
        "ablation": [{k: v for k, v in r.items() if k != "dir"} for r in ablation],
        "bench": bench,
        "init": result.init,
        "training": {
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "train_seconds": result.train_seconds,
            "warnings": result.warnings,
        },
        "timing": timing,
    }
    metrics["checks"] = checks(metrics)
    write_json(out / "metrics.json", metrics)
    blocks = _blocks(metrics, figures, ds)
    write_text(out / "report.md", render_markdown(blocks))
    write_text(out / "report.html", render_html(blocks, out))
    return metrics


def _predict(run_dir: Path, ds: dataset.Dataset, scenes):
    loaded = load_model(run_dir / "model.safetensors")
    cpu = torch.device("cpu")
    return as_prediction(
        loaded.model,
        Split.of(scenes, loaded.normalizer, cpu),
        loaded.config.loss,
        Split.of(ds.train, loaded.normalizer, cpu),
    )


def checks(m: dict) -> list[dict]:
    """What the week's result must show, each checked on this run's numbers."""
    dec = {name: m["test"][name]["decision"] for name in PREDICTORS}
    by_name = {r["name"]: r["decision"] for r in m["ablation"]}
    wta, l2 = by_name["wta+ce"], by_name["l2"]
    return [
        {
            "claim": "At decision points the learned model misses less than constant velocity and the cv fan",
            "detail": f"mlp MR@6 {dec['mlp']['MR@6']:.3f} vs cv MR@1 {dec['cv']['MR@1']:.3f} and cv_fan MR@6 "
            f"{dec['cv_fan']['MR@6']:.3f}",
            "passed": dec["mlp"]["MR@6"] < min(dec["cv"]["MR@1"], dec["cv_fan"]["MR@6"]),
        },
        {
            "claim": "The L2 ablation mode-averages: its modes collapse and its minFDE@6 is worse",
            "detail": f"mode spread {l2['mode_spread']:.2f} m vs {wta['mode_spread']:.2f} m for wta+ce "
            f"(ratio {l2['mode_spread'] / max(wta['mode_spread'], 1e-9):.3f}, must be < 0.25); "
            f"minFDE@6 {l2['minFDE@6']:.2f} vs {wta['minFDE@6']:.2f} m",
            "passed": l2["mode_spread"] < 0.25 * wta["mode_spread"] and l2["minFDE@6"] > wta["minFDE@6"],
        },
        {
            "claim": "At decision points the learned model is within 1.25x of the oracle's minFDE@6",
            "detail": f"mlp {dec['mlp']['minFDE@6']:.2f} m vs oracle {dec['oracle']['minFDE@6']:.2f} m "
            f"(ratio {dec['mlp']['minFDE@6'] / dec['oracle']['minFDE@6']:.2f})",
            "passed": dec["mlp"]["minFDE@6"] <= 1.25 * dec["oracle"]["minFDE@6"],
        },
    ]


def _figures(out: Path, ds, history, mlp_pred, baselines, ablation, seed: int) -> dict[str, Path]:
    figs = {
        "scenes": plots.scene_grid(ds.test, out / "scenes.png", n=8, seed=seed),
        "loss": plots.training_curves(history, out / "loss.png"),
        "metrics": plots.metric_curves(history, out / "metrics.png"),
        "gradients": plots.gradient_norms(
            [json.loads(line) for line in (out / "run" / "gradients.jsonl").read_text().splitlines()],
            out / "gradients.png",
        ),
        "ablation": plots.ablation_bars(ablation, out / "ablation.png"),
    }
    # The gallery: decision points with a real choice, a few of each family, picked by the seed.
    rng = np.random.default_rng(seed)
    scenes = ds.test
    idx = np.concatenate(
        [
            rng.permutation(
                np.flatnonzero((scenes.family == FAMILIES.index(f)) & (scenes.alt_mask.sum(1) >= 2))
            )[:n]
            for f, n in (("intersection", 3), ("lane_change", 2), ("stop_or_go", 1))
        ]
    )
    cv = baselines["cv"].predict(scenes).modes[:, 0]
    l2_run = next(r for r in ablation if r["name"] == "l2")
    l2 = _predict(Path(l2_run["dir"]), ds, scenes)
    l2_top = np.take_along_axis(l2.modes, l2.probs.argmax(1)[:, None, None, None], 1)[:, 0]
    figs["gallery"] = plots.gallery(
        scenes,
        idx,
        mlp_pred.modes,
        mlp_pred.probs,
        out / "gallery.png",
        extra={"cv": cv, "l2 model (top mode)": l2_top},
    )
    return figs


# ----------------------------------------------------------------------------------------------------
# The report: blocks -> Markdown and HTML


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _metric_rows(test: dict, slice_: str) -> list[list[str]]:
    return [[name, *(_fmt(test[name][slice_][m]) for m in METRICS)] for name in PREDICTORS]


def _blocks(m: dict, figures: dict[str, Path], ds) -> list[tuple]:
    sizes = m["config"]["sizes"]
    init = m["init"]  # the demo's loss is wta+ce, so both parts are there
    dec_count = m["test"]["mlp"]["decision"]["count"]
    blocks: list[tuple] = [
        ("h1", "tinypred: a tiny learned multimodal trajectory predictor"),
        (
            "p",
            f"Seed {m['seed']}{' (quick run)' if m['quick'] else ''}. {sizes['n_train']} training, "
            f"{sizes['n_val']} validation and {sizes['n_test']} test scenes of synthetic driving, "
            f"{dec_count} of the test scenes at a decision point (intersection, lane change, stop or go). "
            f"An MLP predicts K = {m['config']['train']['model']['modes']} trajectories of 3 s and their "
            "probabilities; it is trained with a winner-take-all loss plus a mode-classification term.",
        ),
        ("h2", "What this run shows"),
        ("list", [f"{'PASS' if c['passed'] else 'FAIL'}: {c['claim']} ({c['detail']})" for c in m["checks"]]),
        ("h2", "Test metrics at decision points"),
        (
            "p",
            "minADE/minFDE in metres (the ADE of the mode with the lowest FDE, as in Argoverse 2); MR: miss "
            "rate at 2 m; @1 scores the most probable mode, @6 the six most probable; brier-minFDE adds "
            "(1 - p)^2 of the best mode; NLL in nats per scene under a Laplace mixture whose per-step scales "
            "are fitted by maximum likelihood on the training split, for every predictor alike.",
        ),
        ("table", ["predictor", *METRICS], _metric_rows(m["test"], "decision")),
        ("h2", "Test metrics, all scenes"),
        ("table", ["predictor", *METRICS], _metric_rows(m["test"], "all")),
        ("h2", "minFDE@6 per family (m)"),
        (
            "table",
            ["predictor", *FAMILIES],
            [[n, *(_fmt(m["test_by_family"][n][f]["minFDE@6"]) for f in FAMILIES)] for n in PREDICTORS],
        ),
        ("h2", "Predictions at decision points"),
        (
            "p",
            "Purple: the learned model's modes (darker = more probable, the number is its probability). "
            "Green: what the agent did. Dotted: the ground-truth alternatives with their probabilities. "
            "Dashed: constant velocity, and the top mode of the L2-trained model -- which lands between the "
            "branches.",
        ),
        ("img", figures["gallery"], "Decision-point scenes from the test split"),
        ("h2", "Training"),
        (
            "p",
            f"Loss at initialisation: {init['loss']:.3f} (classification term {init['ce']:.3f} against "
            f"log K = {init['expected_ce']:.3f}; regression {init['regression']:.3f} against "
            f"{init['expected_regression']:.3f} for predicting no motion). "
            f"Best epoch {m['training']['best_epoch'] + 1} of {m['training']['epochs_run']}, "
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
            "'mode spread' is the mean distance between the predicted endpoints; the last two columns "
            "are the probability-weighted distance of the predicted endpoints to the nearest ground-truth "
            "branch and to the mixture's mean. An L2 loss pulls every mode to the mean of the branches: "
            "small spread, close to the mean, far from any branch.",
        ),
        (
            "table",
            [
                "run",
                "loss",
                "ce",
                "lr",
                "minFDE@6",
                "MR@6",
                "NLL",
                "mode spread",
                "to nearest branch",
                "to mixture mean",
            ],
            [
                [
                    r["name"],
                    r["loss"],
                    "yes" if r["ce"] else "no",
                    f"{r['lr']:g}",
                    *(_fmt(r["decision"][k]) for k in ABLATION_COLUMNS),
                ]
                for r in m["ablation"]
            ],
        ),
        ("img", figures["ablation"], "Ablation at decision points"),
        ("h2", "Training time per device"),
        (
            "p",
            f"{m['bench'][0].get('steps', '')} training steps of batch {m['bench'][0].get('batch_size', '')} "
            "on each device this machine has, fp32 and bfloat16 autocast; wall clock after a warm-up.",
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
        ("h2", "The data"),
        (
            "img",
            figures["scenes"],
            "Random test scenes: lanes (grey), stop lines (red), alternatives (dotted)",
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


def render_markdown(blocks: list[tuple]) -> str:
    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2"):
            out.append(f"{'#' if kind == 'h1' else '##'} {rest[0]}")
        elif kind == "p":
            out.append(rest[0])
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in rest[0]))
        elif kind == "table":
            headers, rows = rest
            out.append(
                "\n".join(
                    [
                        "| " + " | ".join(headers) + " |",
                        "|" + "---|" * len(headers),
                        *("| " + " | ".join(row) + " |" for row in rows),
                    ]
                )
            )
        elif kind == "img":
            out.append(f"![{rest[1]}]({Path(rest[0]).name})")
    return "\n\n".join(out) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.85em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f2f2f2}img{max-width:100%}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}li{margin:.3em 0}
.pass{color:#1a7f37}.fail{color:#c00}"""


def render_html(blocks: list[tuple], base: Path) -> str:
    """A self-contained page: every image inlined as a data URI, no external resource."""
    esc = html.escape
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>tinypred report</title>",
        f"<style>{CSS}</style></head><body>",
    ]
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "p"):
            out.append(f"<{kind}>{esc(rest[0])}</{kind}>")
        elif kind == "list":
            items = "".join(
                f"<li class='{'pass' if item.startswith('PASS') else 'fail'}'>{esc(item)}</li>"
                if item.startswith(("PASS", "FAIL"))
                else f"<li>{esc(item)}</li>"
                for item in rest[0]
            )
            out.append(f"<ul>{items}</ul>")
        elif kind == "table":
            headers, rows = rest
            head = "".join(f"<th>{esc(h)}</th>" for h in headers)
            body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((base / Path(rest[0]).name).read_bytes()).decode()
            out.append(
                f"<figure><img alt='{esc(rest[1])}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{esc(rest[1])}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
