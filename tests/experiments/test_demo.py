"""The main job and its parts: mode-averaging measures, the device benchmark, ablate, the demo report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

from tinypred.data import dataset
from tinypred.data.encoding import EncodedScenes
from tinypred.evaluation.averaging import averaging_stats, branch_distances, mode_spread
from tinypred.evaluation.metrics import METRICS
from tinypred.evaluation.tables import evaluate_scenes
from tinypred.experiments.ablation import ablation_grid, run_config
from tinypred.experiments.devices import device_bench
from tinypred.predictors.losses import LossConfig
from tinypred.predictors.model_file import load_model
from tinypred.predictors.prediction import Prediction, predict_split
from tinypred.training import TrainConfig


def test_mode_spread_by_hand():
    modes = np.zeros((2, 3, 4, 2))
    modes[0, 1, -1] = [
        3.0,
        4.0,
    ]  # endpoints (0,0), (3,4), (0,0): pairwise 5, 0, 5 -> mean over 6 ordered pairs
    assert mode_spread(modes) == pytest.approx([20 / 6, 0.0])
    assert mode_spread(modes[:, :1]).tolist() == [0.0, 0.0]


def test_branch_distances_tell_averaging_from_branches(small_dataset):
    scenes: EncodedScenes = dataset.load(small_dataset).test
    two = scenes.alt_mask.sum(1) >= 2
    branches = scenes.alt_futures
    # A predictor that puts its modes on the branches, and one that puts every mode on their mean.
    on_branches = Prediction(branches, scenes.alt_probs, np.ones(30))
    mean = (scenes.alt_probs[:, :, None, None] * branches).sum(1, keepdims=True).repeat(3, 1)
    averaged = Prediction(mean, scenes.alt_probs, np.ones(30))
    near_b, mean_b = branch_distances(on_branches, scenes)
    near_a, mean_a = branch_distances(averaged, scenes)
    np.testing.assert_allclose(near_b, 0.0, atol=1e-5)
    np.testing.assert_allclose(mean_a, 0.0, atol=1e-4)
    assert near_a[two].mean() > 1.0 and mean_b[two].mean() > 1.0


def test_ablation_grid_is_the_spec_and_each_run_changes_one_thing():
    base = TrainConfig(lr=2e-3, loss=LossConfig(ce_weight=0.7))
    grid = ablation_grid(base)
    assert [(r["name"], r["loss"], r["ce"], r["lr"], r["neighbours"]) for r in grid] == [
        ("wta+ce", "wta", True, 2e-3, True),
        ("wta", "wta", False, 2e-3, True),
        ("l2+ce", "l2", True, 2e-3, True),
        ("l2", "l2", False, 2e-3, True),
        ("nll", "nll", False, 2e-3, True),
        ("wta+ce lr x10 (0.02)", "wta", True, 2e-2, True),
        ("wta+ce lr /10 (0.0002)", "wta", True, 2e-4, True),
        ("wta+ce no neighbours", "wta", True, 2e-3, False),
    ]
    for run in grid:
        cfg = run_config(base, run)
        assert (cfg.loss.kind, cfg.lr, cfg.model.neighbours) == (run["loss"], run["lr"], run["neighbours"])
        assert cfg.loss.ce_weight == (0.7 if run["ce"] else 0.0)
        # Everything else is the base's: one thing changes per run.
        assert cfg.model_copy(update={"loss": base.loss, "lr": base.lr, "model": base.model}) == base


def test_device_bench_times_the_real_training_step(small_dataset):
    rows = device_bench(dataset.load(small_dataset), TrainConfig(), steps=3, batch_size=64)
    by_key = {(r["device"], r["precision"]): r for r in rows}
    assert set(by_key) == {(d, p) for d in ("cpu", "cuda", "mps") for p in ("fp32", "bf16")}
    for precision in ("fp32", "bf16"):  # the CPU is always there, and bf16 autocast works on it
        cpu = by_key[("cpu", precision)]
        assert cpu["status"] == "ok" and (cpu["steps"], cpu["batch_size"]) == (3, 64)
        assert cpu["samples_per_s"] == pytest.approx(3 * 64 / cpu["seconds"])
        assert 0 < cpu["final_loss"] < 100  # a finite loss of the wta+ce kind, not a placeholder
    absent = "unavailable" if not torch.cuda.is_available() else "ok"
    assert by_key[("cuda", "fp32")]["status"] == absent


@pytest.mark.slow
def test_ablate_and_bench_commands(small_dataset, tmp_path):
    out = tmp_path / "abl"
    proc = run_cli("ablate", "--data", str(small_dataset), "--out", str(out), "--epochs", "1", check=True)
    rows = json.loads((out / "ablation.json").read_text())
    assert [r["name"] for r in rows] == [r["name"] for r in ablation_grid(TrainConfig())]
    ds = dataset.load(small_dataset)
    for r in rows:  # each row is its own run's model on the test split, with its averaging measures
        pred = predict_split(load_model(Path(r["dir"]) / "model.safetensors"), ds, "test")
        table = evaluate_scenes(pred, ds.test)
        assert r["decision"]["minFDE@6"] == pytest.approx(table["decision"]["minFDE@6"])
        assert r["decision"]["mode_spread"] == pytest.approx(averaging_stats(pred, ds.test)["mode_spread"])
    assert (out / "ablation.png").read_bytes()[:4] == b"\x89PNG" and "l2+ce" in proc.stdout
    # Piped (as in CI logs), the widest table keeps every column whole: no ellipsis, no folded header.
    assert "…" not in proc.stdout and "endpoint_to_nearest_branch_m" in proc.stdout
    bench = run_cli(
        "bench", "--data", str(small_dataset), "--steps", "2", "--json", str(tmp_path / "b.json"), check=True
    )
    bench_rows = json.loads((tmp_path / "b.json").read_text())
    assert len(bench_rows) == 6
    for r in bench_rows:  # the table shows what the JSON says, a row per device and precision
        assert re.search(rf"{r['device']}\s.*{r['precision']}\s.*{r['status']}", bench.stdout), r
    cpu = next(r for r in bench_rows if (r["device"], r["precision"]) == ("cpu", "fp32"))
    assert cpu["status"] == "ok" and cpu["steps"] == 2


@pytest.mark.slow
def test_quick_demo_shows_the_weeks_result(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--quick", "--seed", "5", "--out", str(out), check=True)
    m = json.loads((out / "metrics.json").read_text())
    assert m["schema"] == 1 and m["seed"] == 5 and m["quick"] is True
    assert set(m["test"]) == {"cv", "ca", "ctrv", "cv_fan", "lane_follow", "intent_mixture", "bayes", "mlp"}
    for by_slice in m["test"].values():
        assert {"all", "decision", "interactive", "other"} <= set(by_slice)
        assert set(METRICS) <= set(by_slice["decision"])
    assert {r["loss"] for r in m["ablation"]} == {"l2", "wta", "nll"}
    assert all("mode_spread" in r["decision"] and isinstance(r["ce"], bool) for r in m["ablation"])
    assert [r["neighbours"] for r in m["ablation"]] == [True] * 7 + [False]
    assert {"data", "baselines", "train", "evaluate", "floor", "ablation", "bench", "figures"} <= set(
        m["timing"]
    )
    # The floor: below every predictor in expectation on the same held-out draws, per slice.
    for part in ("decision", "interactive", "other"):
        floor = m["floor"][part]
        for name, expected in m["expected"].items():
            for metric in ("minFDE@6", "minFDE@1", "MR@6", "brier-minFDE@6"):
                assert expected[part][metric] >= floor[metric]["value"] - 3 * floor[metric]["mc_se"], name
    # The claims, checked on this seed's numbers (and recomputed here, not trusted).
    dec = {k: v["decision"] for k, v in m["test"].items()}
    abl = {r["name"]: r for r in m["ablation"]}
    assert dec["mlp"]["MR@6"] < dec["cv_fan"]["MR@6"] and dec["mlp"]["minFDE@6"] < dec["cv_fan"]["minFDE@6"]
    assert dec["mlp"]["minFDE@1"] < dec["cv"]["minFDE@1"]
    assert abl["l2"]["decision"]["mode_spread"] < 0.25 * abl["wta+ce"]["decision"]["mode_spread"]
    assert abl["l2"]["decision"]["minFDE@6"] > abl["wta+ce"]["decision"]["minFDE@6"]
    checks = {c["claim"]: c["passed"] for c in m["checks"]}
    assert proc.stdout.count("PASS") + proc.stdout.count("FAIL") == len(checks) == 6
    # The reported test numbers are the saved model's, on the saved data.
    ds = dataset.load(out / "data")
    mlp = evaluate_scenes(predict_split(load_model(out / "run" / "model.safetensors"), ds, "test"), ds.test)
    for metric in METRICS:
        assert m["test"]["mlp"]["decision"][metric] == pytest.approx(mlp["decision"][metric], rel=1e-9)
    # The report: self-contained HTML (every image inline, nothing fetched), Markdown with the figures.
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 9
    assert not re.search(r"(src|href)=['\"]https?:", page)
    md = (out / "report.md").read_text()
    figures = (
        "gallery",
        "loss",
        "metrics",
        "gradients",
        "ablation",
        "profile",
        "scenes",
        "floor",
        "neighbours",
    )
    for fig in (f"{name}.png" for name in figures):
        assert f"({fig})" in md and (out / fig).exists()
    # Run again into the same folder: it replaces its own output as a whole, with the same numbers.
    again = run_cli("demo", "--quick", "--seed", "5", "--out", str(out), check=True)
    assert again.returncode == 0
    m2 = json.loads((out / "metrics.json").read_text())
    assert _numbers(m2) == _numbers(m)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temporary left beside it


def _numbers(m: dict) -> dict:
    """metrics.json without what the clock decides."""
    timed = ("seconds", "samples_per_s", "train_seconds")
    return {
        "test": m["test"],
        "by_family": m["test_by_family"],
        "ablation": [{k: v for k, v in r.items() if k not in timed} for r in m["ablation"]],
        "bench": [{k: v for k, v in r.items() if k not in timed} for r in m["bench"]],
        "init": m["init"],
        "best_epoch": m["training"]["best_epoch"],
        "checks": m["checks"],
    }


def test_the_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep")
    proc = run_cli("demo", "--quick", "--out", str(tmp_path / "mine"))
    assert (
        proc.returncode == 1 and "--out: " in proc.stderr and "not a folder tinypred demo made" in proc.stderr
    )
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
