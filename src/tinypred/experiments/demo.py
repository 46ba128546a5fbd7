"""The main job (`tinypred demo`): data -> baselines -> training -> test -> the bayes floor -> ablation
-> figures -> report.

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
from tinypred.evaluation.metrics import min_fde
from tinypred.evaluation.tables import evaluate_scenes
from tinypred.experiments.ablation import run_ablation
from tinypred.experiments.devices import device_bench
from tinypred.experiments.profile import run_profile
from tinypred.fileio import atomic_directory, write_json, write_text
from tinypred.predictors.baselines import fit_all
from tinypred.predictors.bayes import BayesFloor, bayes_floor
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
PREDICTORS = ("cv", "ca", "ctrv", "cv_fan", "lane_follow", "intent_mixture", "bayes", "mlp")
SLICES = ("all", "decision", "interactive", "other")


@dataclass(frozen=True)
class DemoSizes:
    """Sizes of a demo: scenes per split, training epochs, steps per device in the benchmark, and the
    floor's draws per test scene (to choose its predictions; as many again score them)."""

    n_train: int
    n_val: int
    n_test: int
    epochs: int
    bench_steps: int
    floor_samples: int


SIZES = {
    # 60k scenes x 25 epochs: the model's minFDE@6 at decision points, in expectation, against a floor of
    # 0.317 m (displacement loss; seeds 11 and 12): 15 epochs 0.388 and 0.396 m, 20: 0.392 and 0.384,
    # 25: 0.377 and 0.380; 100k scenes x 15 gave no more (0.387), nor lr 2e-3 or 3e-3.
    "default": DemoSizes(60000, 4000, 4000, 25, 200, 512),
    # 128 draws at least: with 64 the bayes predictions, chosen on too few, lose to the intent mixture.
    "quick": DemoSizes(8000, 1500, 1500, 12, 50, 128),
}


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
    with stage("floor"):
        compare = {name: b.predict(ds.test) for name, b in baselines.items()} | {"mlp": mlp_pred}
        draws = sizes.floor_samples
        bayes = bayes_floor(ds, "test", draws, draws, seed, compare=compare)
        test["bayes"] = bayes.row(ds.test)
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
        figures = _figures(out, ds, result.history, mlp_pred, baselines, ablation, bayes, seed)
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
        "test": {name: {k: v for k, v in test[name].items() if k in SLICES} for name in PREDICTORS},
        "floor": {
            "samples": bayes.samples,
            "held_out": bayes.held_out,
            **{part: bayes.floor[part] for part in SLICES if part in bayes.floor},
        },
        "expected": {
            name: {part: by[part] for part in SLICES if part in by} for name, by in bayes.expected.items()
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


FLOORED = ("minFDE@1", "MR@1", "minFDE@6", "MR@6", "brier-minFDE@6")


def checks(m: dict) -> list[dict]:
    """What the run must show, each checked on this run's numbers; @1 is compared with @1, @6 with @6."""
    dec = {name: m["test"][name]["decision"] for name in PREDICTORS}
    floor, mlp_expected = m["floor"]["decision"], m["expected"]["mlp"]["decision"]
    by_name = {r["name"]: r for r in m["ablation"]}
    wta, l2 = by_name["wta+ce"]["decision"], by_name["l2"]["decision"]
    seeing, blind = by_name["wta+ce"]["interactive"], by_name["wta+ce no neighbours"]["interactive"]
    ratio = mlp_expected["minFDE@6"] / floor["minFDE@6"]["value"]
    # Every predictor but bayes itself (its row is the floor's own predictions on one future each: it
    # sits on the floor and crosses 2 se by chance once in 40), on the headline metrics.
    beaten = []
    for name in (n for n in PREDICTORS if n != "bayes"):
        for part in (p for p in SLICES if p in m["floor"] and p in m["test"][name]):
            for metric in FLOORED:
                got, best = m["test"][name][part][metric], m["floor"][part][metric]
                if got < best["value"] - 2 * best["se"]:
                    beaten.append(
                        f"{name} {part} {metric} {got:.3f} < {best['value']:.3f} - 2 x {best['se']:.3f}"
                    )
    return [
        {
            "claim": "At decision points the learned model beats the cv fan, six modes each (minFDE@6, MR@6)",
            "detail": f"mlp minFDE@6 {dec['mlp']['minFDE@6']:.2f} m vs {dec['cv_fan']['minFDE@6']:.2f} m, "
            f"MR@6 {dec['mlp']['MR@6']:.3f} vs {dec['cv_fan']['MR@6']:.3f}",
            "passed": dec["mlp"]["minFDE@6"] < dec["cv_fan"]["minFDE@6"]
            and dec["mlp"]["MR@6"] < dec["cv_fan"]["MR@6"],
        },
        {
            "claim": "At decision points the model's most probable mode beats constant velocity (minFDE@1)",
            "detail": f"mlp {dec['mlp']['minFDE@1']:.2f} m vs cv {dec['cv']['minFDE@1']:.2f} m (ratio "
            f"{dec['mlp']['minFDE@1'] / dec['cv']['minFDE@1']:.2f}); the @1 floor "
            f"{floor['minFDE@1']['value']:.2f} m",
            "passed": dec["mlp"]["minFDE@1"] < dec["cv"]["minFDE@1"],
        },
        {
            "claim": "The L2 ablation mode-averages: its modes collapse and its minFDE@6 is worse",
            "detail": f"mode spread {l2['mode_spread']:.2f} m vs {wta['mode_spread']:.2f} m for wta+ce "
            f"(ratio {l2['mode_spread'] / max(wta['mode_spread'], 1e-9):.3f}, must be < 0.25); "
            f"minFDE@6 {l2['minFDE@6']:.2f} vs {wta['minFDE@6']:.2f} m",
            "passed": l2["mode_spread"] < 0.25 * wta["mode_spread"] and l2["minFDE@6"] > wta["minFDE@6"],
        },
        {
            "claim": "At decision points the learned model's minFDE@6 is within 1.25x of the bayes floor",
            "detail": f"in expectation over {m['floor']['held_out']} held-out futures per scene: mlp "
            f"{mlp_expected['minFDE@6']:.3f} m vs floor {floor['minFDE@6']['value']:.3f} m (ratio "
            f"{ratio:.2f}, Monte-Carlo se {floor['minFDE@6']['mc_se']:.4f} m)",
            "passed": ratio <= 1.25,
        },
        {
            # With six modes a blind model still covers the two or three outcomes (its minFDE@6 barely
            # moves); what it cannot know is which one the neighbour makes likely: its most probable mode.
            "claim": "On the interactive scenes the model blind to its neighbours is >= 20% worse at @1",
            "detail": f"minFDE@1 {blind['minFDE@1']:.2f} m without neighbours vs {seeing['minFDE@1']:.2f} m "
            f"with them (ratio {blind['minFDE@1'] / seeing['minFDE@1']:.2f}); minFDE@6 "
            f"{blind['minFDE@6']:.2f} vs {seeing['minFDE@6']:.2f} m, MR@6 {blind['MR@6']:.3f} vs "
            f"{seeing['MR@6']:.3f}",
            "passed": blind["minFDE@1"] >= 1.2 * seeing["minFDE@1"],
        },
        {
            "claim": "No predictor beats the bayes floor on the test futures by more than 2 standard errors",
            "detail": "; ".join(beaten)
            if beaten
            else f"{len(PREDICTORS) - 1} rows x {len(FLOORED)} metrics x {len(SLICES)} slices checked",
            "passed": not beaten,
        },
    ]


def _figures(
    out: Path,
    ds: dataset.Dataset,
    history: list[dict],
    mlp_pred: Prediction,
    baselines: dict,
    ablation: list,
    bayes: BayesFloor,
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
        "floor": plots.floor_bars(bayes.expected, bayes.floor, out / "floor.png"),
    }
    # The gallery: scenes with a real choice, a few of each family, picked by the seed.
    rng = np.random.default_rng(seed)
    scenes = ds.test
    counts = (
        ("intersection", 2),
        ("lane_change", 1),
        ("stop_or_go", 1),
        ("follow", 1),
        ("yield", 2),
        ("merge", 1),
    )
    idx = np.concatenate(
        [
            rng.permutation(
                np.flatnonzero((scenes.family == FAMILIES.index(f)) & (scenes.alt_mask.sum(1) >= 2))
            )[:n]
            for f, n in counts
        ]
    )
    cv = baselines["cv"].predict(scenes).modes[:, 0]
    runs = {r["name"]: Path(r["dir"]) for r in ablation}
    l2 = predict_split(load_model(runs["l2"] / MODEL_FILE), ds, "test")
    l2_top = np.take_along_axis(l2.modes, l2.probs.argmax(1)[:, None, None, None], 1)[:, 0]
    figs["gallery"] = plots.gallery(
        scenes,
        idx,
        mlp_pred.modes,
        mlp_pred.probs,
        out / "gallery.png",
        extra={"cv": cv, "l2 model (top mode)": l2_top},
    )
    # Where reading the neighbours changes the prediction most: the interactive test scenes whose
    # minFDE@6 the blind model misses by the most, one or two of each family.
    blind = predict_split(load_model(runs["wta+ce no neighbours"] / MODEL_FILE), ds, "test")
    gain = min_fde(blind.modes, scenes.future) - min_fde(mlp_pred.modes, scenes.future)
    picked = [
        np.flatnonzero(scenes.family == FAMILIES.index(f))[
            np.argsort(-gain[scenes.family == FAMILIES.index(f)])[:n]
        ]
        for f, n in (("follow", 2), ("yield", 1), ("merge", 1))
    ]
    figs["neighbours"] = plots.neighbour_effect(
        scenes, np.concatenate(picked), mlp_pred, blind, out / "neighbours.png"
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
