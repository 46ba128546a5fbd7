"""The learned predictor: loss at init, overfitting, beating the baselines, resume, bad input, export."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import run_cli, train_killed_after_first_epoch
from safetensors.torch import load_file

from tinypred.data import dataset
from tinypred.data.encoding import to_world
from tinypred.data.scene_config import SceneConfig
from tinypred.diagnostics import overfit_one_batch
from tinypred.errors import TinypredError
from tinypred.evaluation.tables import evaluate_scenes
from tinypred.predictors import losses
from tinypred.predictors.baselines import fit_all
from tinypred.predictors.losses import LossConfig
from tinypred.predictors.model import ModelConfig, TrajectoryMLP
from tinypred.predictors.model_file import load_model
from tinypred.predictors.prediction import predict_split
from tinypred.training import TrainConfig, train

FAST = TrainConfig(epochs=2, batch_size=128, device="cpu", model=ModelConfig(width=64, depth=2))


@pytest.fixture(scope="module")
def ds(small_dataset):
    return dataset.load(small_dataset)


@pytest.fixture(scope="module")
def bigger(tmp_path_factory):
    out = tmp_path_factory.mktemp("bigger") / "ds"
    dataset.save(dataset.make(SceneConfig(), 6000, 1000, 1000, seed=3), out)
    return dataset.load(out)


def test_output_shapes_and_loss_at_init():
    model = TrajectoryMLP(256, 30, ModelConfig(modes=6), scales=True)
    out = model(torch.randn(16, 256))
    assert (
        out.modes.shape == (16, 6, 30, 2) and out.logits.shape == (16, 6) and out.scale.shape == (16, 6, 30)
    )
    assert torch.all(out.scale > 0)
    gt = torch.randn(16, 30, 2)
    _, parts = losses.loss(out, gt, LossConfig(kind="wta", ce_weight=1.0))
    assert parts["ce"].item() == pytest.approx(math.log(6), abs=0.01)  # uniform at init


def test_the_closest_mode_is_by_ade_not_by_endpoint():
    # Mode 0 ends exactly on the ground truth but is 3 m off before (ADE 2, FDE 0); mode 1 is 0.5 m off in
    # x and y all along (ADE 0.71, FDE 0.71). WTA trains the one closest on average: mode 1.
    gt = torch.zeros(1, 3, 2)
    off_then_exact = torch.tensor([[3.0, 0.0], [3.0, 0.0], [0.0, 0.0]])
    modes = torch.stack([off_then_exact, torch.full((3, 2), 0.5)])[None]
    assert losses.closest_mode(modes, gt).tolist() == [1]
    assert losses.closest_mode(modes.flip(1), gt).tolist() == [0]


def test_l2_pulls_every_mode_to_the_mean_and_wta_does_not():
    # Two futures for the same input: y = +1 and y = -1 (the lectures' contradictory data, in 2-D).
    torch.manual_seed(0)
    x = torch.zeros(64, 4)
    gt = torch.zeros(64, 1, 2)
    gt[::2, 0, 1], gt[1::2, 0, 1] = 1.0, -1.0
    ends = {}
    for kind in ("l2", "wta"):
        model = TrajectoryMLP(4, 1, ModelConfig(modes=2, width=16, depth=1))
        model.head.bias.data[:4] = torch.tensor([0.1, 0.1, -0.1, -0.1])  # break the modes' symmetry
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(300):
            total, _ = losses.loss(model(x), gt, LossConfig(kind=kind, regression="l2", ce_weight=0.0))
            opt.zero_grad()
            total.backward()
            opt.step()
        ends[kind] = model(x[:1]).modes[0, :, 0, 1].detach()
    assert torch.allclose(ends["l2"], torch.zeros(2), atol=0.05)  # both modes at the mean, 0
    assert torch.allclose(ends["wta"].sort().values, torch.tensor([-1.0, 1.0]), atol=0.05)  # one per branch


def test_the_displacement_regression_finds_the_median_the_metrics_reward():
    # One mode, three futures for the same input: 0, 0 and 3 m to the left. The expected minFDE is least
    # at their median, 0 (1 m in expectation), not at their mean, 1 (1.33 m), where L2 puts the mode.
    torch.manual_seed(0)
    x, gt = torch.zeros(96, 4), torch.zeros(96, 1, 2)
    gt[2::3, 0, 1] = 3.0
    ends = {}
    for regression in ("l2", "displacement"):
        model = TrajectoryMLP(4, 1, ModelConfig(modes=1, width=16, depth=1))
        opt = torch.optim.Adam(model.parameters(), lr=0.02)
        for _ in range(400):
            total, _ = losses.loss(model(x), gt, LossConfig(regression=regression, ce_weight=0.0))
            opt.zero_grad()
            total.backward()
            opt.step()
        ends[regression] = model(x[:1]).modes[0, 0, 0].detach()
    assert torch.allclose(ends["l2"], torch.tensor([0.0, 1.0]), atol=0.05)
    assert torch.allclose(ends["displacement"], torch.zeros(2), atol=0.05)


def test_overfit_one_batch_reaches_one_percent(ds):
    result = overfit_one_batch(ds, TrainConfig())
    assert result.passed and result.ratio < 0.01, result.verdict
    assert result.losses[0] > 1.0 and result.steps < 1000


@pytest.mark.slow
def test_learned_model_beats_cv_and_cv_fan_at_decision_points(bigger, tmp_path):
    result = train(bigger, TrainConfig(epochs=8, device="cpu"), tmp_path / "run", progress=False)
    pred = predict_split(load_model(tmp_path / "run" / "model.safetensors"), bigger, "test")
    mlp = evaluate_scenes(pred, bigger.test)["decision"]
    refs = {
        n: evaluate_scenes(b.predict(bigger.test), bigger.test)["decision"]
        for n, b in fit_all(bigger.train, ("cv", "cv_fan")).items()
    }
    for name, ref in refs.items():
        assert mlp["MR@6"] < ref["MR@6"] and mlp["minFDE@6"] < ref["minFDE@6"], (name, mlp, ref)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(ds, tmp_path):
    cfg = FAST.model_copy(update={"epochs": 3})
    train(ds, cfg, tmp_path / "straight", progress=False)

    train_killed_after_first_epoch(ds, cfg, tmp_path / "resumed")
    result = train(ds, cfg, tmp_path / "resumed", resume=True, progress=False)
    assert [r["epoch"] for r in result.history] == [1, 2, 3]  # counted from 1
    a = load_file(tmp_path / "straight" / "checkpoint.safetensors")
    b = load_file(tmp_path / "resumed" / "checkpoint.safetensors")
    for key in a:
        if key.startswith(("model.", "optim.")):
            assert torch.equal(a[key], b[key]), key
    rows = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3]


def test_logs_checkpoints_and_instruments(ds, tmp_path):
    result = train(ds, FAST, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in (
        "config.json",
        "init.json",
        "metrics.csv",
        "metrics.jsonl",
        "gradients.jsonl",
        "model.safetensors",
        "checkpoint.safetensors",
    ):
        assert (run / name).exists(), name
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tb").iterdir())
    init = json.loads((run / "init.json").read_text())
    assert init["ce"] == pytest.approx(init["expected_ce"], abs=0.05)
    assert init["regression"] == pytest.approx(init["expected_regression"], rel=0.1)
    grads = [json.loads(line) for line in (run / "gradients.jsonl").read_text().splitlines()]
    model = load_model(run / "model.safetensors").model
    names = [name for name, _ in model.linear_layers()]
    assert len(names) == FAST.model.depth + 1 and names[-1] == "head"
    steps_per_epoch = -(-len(ds.train) // FAST.batch_size)
    # Flat rows, one per (step, layer), for pandas.read_json(lines=True) as they are.
    logged = list(range(0, FAST.epochs * steps_per_epoch, FAST.log_every))
    assert [(g["step"], g["layer"]) for g in grads] == [(step, name) for step in logged for name in names]
    for g in grads:
        assert set(g) == {"step", "epoch", "layer", "loss", "grad_norm", "update_ratio"}
        assert g["grad_norm"] > 0 and 0 < g["update_ratio"] < 1
        assert g["epoch"] == 1 + g["step"] // steps_per_epoch
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows == result.history and [r["epoch"] for r in rows] == [1, 2]
    with (run / "metrics.csv").open() as f:
        table = list(csv.DictReader(f))
    # metrics.csv writes 6 significant digits (%.6g): equal to within half a unit of the sixth
    csv_fde, fde = [float(r["val_minFDE@6"]) for r in table], [r["val_minFDE@6"] for r in rows]
    assert csv_fde == pytest.approx(fde, rel=1e-5)
    assert {"train_loss", "val_loss", "val_minADE@6", "val_MR@6", "val_NLL", "lr"} <= set(table[0])
    # The model file holds the epoch with the lowest validation minFDE@6, and says so.
    best = min(rows, key=lambda r: r["val_minFDE@6"])
    assert result.best_epoch == best["epoch"] == load_model(run / "model.safetensors").info["epoch"]
    assert result.best_val["minFDE@6"] == best["val_minFDE@6"]


def test_tensorboard_uses_the_tags_pytorch_users_know(ds, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cv = {"all": {"minFDE@6": 4.0, "MR@6": 0.5}, "decision": {"minFDE@6": 4.5, "MR@6": 0.6}}
    cfg = FAST.model_copy(update={"histogram_every": 5})
    train(ds, cfg, tmp_path / "run", baselines={"cv_fan": cv})
    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    tags = events.Tags()
    scalars, histograms = set(tags["scalars"]), set(tags["histograms"])
    assert {"train/loss", "val/loss", "val/minFDE@6", "val/decision/MR@6", "lr", "train/loss_step"} <= scalars
    assert {"grad_norm/hidden1", "grad_norm/hidden2", "grad_norm/head", "update_ratio/head"} <= scalars
    assert {"weights/hidden1", "grads/head"} <= histograms
    # A baseline is a constant: one point, at step 0, under baseline/<name>/..., never cv/fan_...
    once = events.Scalars("baseline/cv_fan/decision/minFDE@6")
    assert [(e.step, e.value) for e in once] == [(0, 4.5)] and len(events.Scalars("val/minFDE@6")) == 2
    assert not any(t.startswith("cv/") or "cv_fan_" in t for t in scalars)
    steps_per_epoch = -(-len(ds.train) // cfg.batch_size)
    assert [e.step for e in events.Histograms("weights/head")] == list(range(0, 2 * steps_per_epoch, 5))
    # The hparams entry (TensorBoard's HPARAMS tab) carries the knobs and the best epoch's metrics.
    hparams = EventAccumulator(str(tmp_path / "run" / "tb"))
    hparams.Reload()
    plugin = hparams.PluginTagToContent("hparams")
    assert plugin and any(b"model.width" in content for content in plugin.values())
    assert "hparam/val_minFDE@6" in scalars


def test_vanishing_gradients_are_named(ds, tmp_path):
    deep = FAST.model_copy(
        update={
            "model": ModelConfig(width=32, depth=8, activation="sigmoid", init="normal001"),
            "epochs": 1,
            "log_every": 1,
        }
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(ds, deep, tmp_path / "run", progress=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    first = load_model(tmp_path / "run" / "model.safetensors").model.linear_layers()[0][0]
    assert any(re.search(rf"vanishing gradient in layer {re.escape(first)} ", m) for m in messages), messages
    assert any(first in w for w in result.warnings)


def test_non_finite_training_stops_with_the_step_and_layer(ds, tmp_path):
    # One ground-truth point so far out that its squared error overflows float32: the loss becomes inf.
    future = ds.train.future.copy()
    future[5, -1] = 1e30
    bad = dataclasses.replace(ds, train=dataclasses.replace(ds.train, future=future))
    cfg = FAST.model_copy(update={"loss": LossConfig(regression="l2")})
    with pytest.raises(
        TinypredError,
        match=r"training stopped at step \d+ \(epoch 1\): non-finite loss, first in body\.0\.weight",
    ) as info:
        train(bad, cfg, tmp_path / "run", progress=False)
    assert "no model had been saved yet" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow
def test_cli_train_eval_predict_and_bad_input(small_dataset, tmp_path):
    run = tmp_path / "run"
    run_cli(
        "train",
        "--data",
        str(small_dataset),
        "--out",
        str(run),
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--set",
        "model.width=32",
        "--set",
        "model.depth=1",
        check=True,
    )
    proc = run_cli("eval", str(run), "--data", str(small_dataset), "--split", "val", check=True)
    assert "minFDE@6" in proc.stdout
    # The default file is named by the dataset and the split.
    results = json.loads((run / f"eval_{small_dataset.name}_val.json").read_text())["results"]["mlp"]
    assert {"all", "decision", "other"} <= set(results)
    ds = dataset.load(small_dataset)
    expected = evaluate_scenes(predict_split(load_model(run / "model.safetensors"), ds, "val"), ds.val)
    assert results["all"]["minFDE@6"] == pytest.approx(expected["all"]["minFDE@6"], rel=1e-6)
    out = tmp_path / "pred.parquet"
    run_cli("predict", str(run), "--data", str(small_dataset), "--out", str(out), check=True)
    table = pq.read_table(out)
    assert table.num_rows == len(ds.test) * 6
    assert table.column_names == ["scene_id", "scenario_id", "track_id", "mode", "probability", "x", "y"]
    first = table.slice(0, 6).to_pydict()
    np.testing.assert_allclose(sum(first["probability"]), 1.0, atol=1e-5)
    assert len(first["x"][0]) == 30
    # The world-frame trajectories come back to the agent frame's origin side: near the scene's pose.
    start = np.array([first["x"][0][0], first["y"][0][0]])
    assert np.linalg.norm(start - ds.test.pose[0, :2]) < 5.0
    np.testing.assert_allclose(to_world(np.zeros((1, 1, 2)), ds.test.pose[:1])[0, 0], ds.test.pose[0, :2])

    no_val = tmp_path / "no_val"
    dataset.save(dataset.make(SceneConfig(), 20, 0, 5, seed=1), no_val)
    no_train = tmp_path / "no_train"  # as an import of one split: nothing to fit the NLL scales on
    made = dataset.make(SceneConfig(), 20, 10, 5, seed=1)
    dataset.save(dataclasses.replace(made, train=made.train.subset(slice(0, 0))), no_train)
    cases = [
        (["train", "--data", str(small_dataset), "--out", str(run)], "already holds a run"),
        (
            ["train", "--data", str(no_val), "--out", str(tmp_path / "x")],
            f"the val split of {no_val} is empty: training needs samples in it",
        ),
        (
            ["train", "--data", str(small_dataset), "--out", str(tmp_path / "x"), "--set", "model.widht=3"],
            "--set model.widht:",
        ),
        (["train", "--data", str(small_dataset), "--out", str(tmp_path / "x"), "--lr", "0"], "--lr:"),
        (["train", "--data", str(tmp_path), "--out", str(tmp_path / "x")], "meta.json"),
        (["predict", str(run), "--data", str(small_dataset), "--out", str(tmp_path / "p.csv")], ".parquet"),
        (["eval", str(tmp_path / "nope"), "--data", str(small_dataset)], "model.safetensors: missing"),
        (
            ["eval", str(run), "--data", str(no_train), "--split", "val"],
            f"fitted on a training split, and {no_train} has none",
        ),
    ]
    for args, message in cases:
        proc = run_cli(*args)
        assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, (
            args,
            proc.stderr,
        )
    # A value that is not one of the choices is a usage error: exit 2, the choices listed.
    choice = run_cli("train", "--data", str(small_dataset), "--out", str(tmp_path / "x"), "--loss", "mse")
    assert choice.returncode == 2 and "'mse' is not one of 'l2', 'wta', 'nll'" in choice.stderr
    assert not (tmp_path / "x").exists()


def test_a_model_that_does_not_match_the_data_is_refused(ds, tmp_path):
    train(ds, FAST.model_copy(update={"epochs": 1}), tmp_path / "run", progress=False)
    other = tmp_path / "other"
    dataset.save(dataset.make(SceneConfig(lane_points=8), 50, 20, 20, seed=1), other)
    proc = run_cli("eval", str(tmp_path / "run"), "--data", str(other))
    assert proc.returncode == 1 and "features" in proc.stderr
    (tmp_path / "run" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(TinypredError, match="not a tinypred model or damaged"):
        load_model(tmp_path / "run" / "model.safetensors")


def test_same_seed_same_weights_other_seed_other_weights(ds, tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(ds, FAST.model_copy(update={"epochs": 1, "seed": seed}), tmp_path / name, progress=False)
    a, b, c = (load_file(tmp_path / n / "model.safetensors") for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.head.weight"], c["model.head.weight"])
