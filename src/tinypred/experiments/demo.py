"""The main job (`tinypred demo`): data -> baselines -> training -> test -> ablation -> figures -> report.

Writes into DIR: data/ (the dataset), run/ (the trained predictor), ablation/ (one run each), the figures
(PNG), metrics.json, report.md and report.html (self-contained: images embedded, opens offline). The
report's content is one list of blocks rendered twice, so the two formats always agree.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinypred.data import dataset
from tinypred.data.scene_config import FAMILIES, SceneConfig
from tinypred.errors import TinypredError
from tinypred.evaluation.averaging import averaging_stats
from tinypred.evaluation.tables import evaluate_scenes
from tinypred.experiments.ablation import run_ablation
from tinypred.experiments.devices import device_bench
from tinypred.experiments.profile import run_profile
from tinypred.fileio import atomic_directory, write_json, write_text
from tinypred.predictors.baselines import fit_all
from tinypred.predictors.model_file import MODEL_FILE, load_model
from tinypred.predictors.prediction import Prediction, predict_split
from tinypred.report import figures as plots
from tinypred.report.document import demo_blocks
from tinypred.report.profile_figure import profile_figure
from tinypred.report.render import render_html, render_markdown
from tinypred.training.config import TrainConfig
from tinypred.training.loop import train

SCHEMA = 1
log = logging.getLogger("tinypred")
PREDICTORS = ("cv", "ca", "ctrv", "cv_fan", "lane_follow", "oracle", "mlp")


@dataclass(frozen=True)
class DemoSizes:
    """Sizes of a demo: scenes per split, training epochs, steps per device in the benchmark."""

    n_train: int
    n_val: int
    n_test: int
    epochs: int
    bench_steps: int


SIZES = {"default": DemoSizes(20000, 4000, 4000, 20, 200), "quick": DemoSizes(8000, 1500, 1500, 12, 50)}


MARKER = ".tinypred-demo"  # marks a folder the demo made, and may replace


def is_demo_dir(path: Path) -> bool:
    """An empty folder, or one an earlier demo wrote: the demo's to replace."""
    return (path / MARKER).exists() or not any(path.iterdir())


def run_demo(
    out: str | Path = "runs/demo",
    seed: int = 11,
    quick: bool = False,
    device: str = "auto",
    progress: bool = False,
) -> dict:
    """Run the whole pipeline into `out` and return what metrics.json holds.

    `out` is written as a whole: into a temporary sibling, swapped in when everything is done. A re-run
    replaces an earlier demo's output; an interrupted one leaves it as it was (and the next run clears
    the leftovers); a folder the demo did not make is refused before anything is touched. Its stages are
    logged (the "tinypred" logger, INFO); `progress` draws training's progress bar.
    """
    if seed < 0:
        raise TinypredError(f"expected an integer >= 0, got {seed}", arg="seed")
    out = Path(out)
    if out.exists() and not (out.is_dir() and is_demo_dir(out)):
        raise TinypredError(
            f"{out} exists and is not a folder tinypred demo made; refusing to replace it", arg="out"
        )
    with atomic_directory(out, is_demo_dir) as work:
        write_json(work / MARKER, {"seed": seed, "quick": quick})
        return _pipeline(work, seed, quick, device, progress)


def _pipeline(out: Path, seed: int, quick: bool, device: str, progress: bool) -> dict:
    """Every stage of the demo, written into the folder `out`."""
    sizes = SIZES["quick" if quick else "default"]
    timing: dict[str, float] = {}

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        log.info(f"[{name}] ...")
        start = time.perf_counter()
        yield
        timing[name] = round(time.perf_counter() - start, 2)
        log.info(f"[{name}] done in {timing[name]:.1f} s")

    scene_cfg = SceneConfig()
    train_cfg = TrainConfig(epochs=sizes.epochs, seed=seed, device=device)
    with stage("data"):
        ds = dataset.make(scene_cfg, sizes.n_train, sizes.n_val, sizes.n_test, seed)
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
            on_epoch=lambda r: log.info(
                f"  epoch {r['epoch']}/{sizes.epochs}: val minFDE@6 "
                f"{r['val_minFDE@6']:.2f} m, MR@6 {r['val_MR@6']:.3f}"
            ),
        )
    with stage("evaluate"):
        mlp_pred = predict_split(load_model(out / "run" / MODEL_FILE), ds, "test")
        test["mlp"] = evaluate_scenes(mlp_pred, ds.test)
        test["mlp"]["decision"] |= averaging_stats(mlp_pred, ds.test)
    with stage("ablation"):
        ablation = run_ablation(
            ds,
            train_cfg,
            out / "ablation",
            done={"wta+ce": out / "run"},
            on_run=lambda r: log.info(
                f"  {r['name']}: decision minFDE@6 "
                f"{r['decision']['minFDE@6']:.2f} m, mode spread "
                f"{r['decision']['mode_spread']:.2f} m"
            ),
        )
    with stage("bench"):
        bench = device_bench(ds, train_cfg, steps=sizes.bench_steps)
    with stage("profile"):
        profile = run_profile(out / "run", out / "data", out / "profile", device, steps=10)
    with stage("figures"):
        figures = _figures(out, ds, result.history, mlp_pred, baselines, ablation, seed)
        figures["profile"] = profile_figure(profile, out / "profile.png")  # beside the report, as all are

    metrics = {
        "schema": SCHEMA,
        "seed": seed,
        "quick": quick,
        "config": {
            "scenes": scene_cfg.model_dump(),
            "train": json.loads(train_cfg.model_dump_json()),
            "sizes": asdict(sizes),
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
        "profile": _profile_summary(profile),
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
    blocks = demo_blocks(metrics, figures)
    write_text(out / "report.md", render_markdown(blocks))
    write_text(out / "report.html", render_html(blocks, out))
    return metrics


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


def _figures(
    out: Path,
    ds: dataset.Dataset,
    history: list[dict],
    mlp_pred: Prediction,
    baselines: dict,
    ablation: list,
    seed: int,
) -> dict[str, Path]:
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
    l2 = predict_split(load_model(Path(l2_run["dir"]) / MODEL_FILE), ds, "test")
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


def _profile_summary(profile: dict) -> dict:
    """Where a training step's time goes, in brief: ms per step and the top 3 ops, torch and engine."""
    train, engine = profile["torch"]["train"], profile["engine"]
    top = sorted(engine["rows"], key=lambda r: -r["share_pct"])[:3]
    return {
        "torch_ms_per_step": train["ms_per_step"],
        "torch_top": [{"op": r["op"], "share_pct": r["share_pct"]} for r in train["rows"][:3]],
        "engine_ms_per_step": engine["ms_per_step"],
        "engine_top": [{"op": r["op"], "share_pct": r["share_pct"]} for r in top],
        "batch": train["batch"],
    }
