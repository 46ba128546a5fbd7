"""The training-craft checks: each passes on a healthy setup and fails on a broken one built on purpose."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tinypred.data import dataset
from tinypred.diagnostics import CHECKS, CheckResult, run_check
from tinypred.diagnostics.curvature import check_curvature, top_hessian_eigenvalue
from tinypred.diagnostics.gradients import check_gradients
from tinypred.diagnostics.initialisation import check_init
from tinypred.diagnostics.lr_range import check_lr_range
from tinypred.diagnostics.overfit import check_overfit
from tinypred.diagnostics.saliency import check_saliency, cross_example_gradients
from tinypred.diagnostics.toy import check_toy
from tinypred.errors import TinypredError
from tinypred.predictors.losses import LossConfig
from tinypred.predictors.model import ModelConfig, ModelOutput, TrajectoryMLP
from tinypred.training import Split, TrainConfig, build_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ds(small_dataset):
    return dataset.load(small_dataset)


def assert_png(result: CheckResult, out_dir) -> None:
    assert result.figure == out_dir / f"{result.name}.png"
    assert result.figure.read_bytes()[:8] == PNG_MAGIC


class _NegatedGradient(torch.autograd.Function):
    """Identity forward, negated backward: the kind of sign error a hand-written backward can have."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return -grad


class WrongGradientMLP(TrajectoryMLP):
    """The real model with a wrong gradient through its modes and logits: every step climbs the loss."""

    def forward(self, x: torch.Tensor) -> ModelOutput:
        out = super().forward(x)
        modes, logits = _NegatedGradient.apply(out.modes), _NegatedGradient.apply(out.logits)
        return ModelOutput(modes, logits, out.scale, out.prob_radius)


def wrong_gradient_model(ds, cfg: TrainConfig) -> WrongGradientMLP:
    """The model the checks would build from cfg (same weights and scales), with a wrong gradient."""
    healthy = build_model(ds, cfg)
    wrong = WrongGradientMLP(
        healthy.in_features,
        healthy.horizon,
        cfg.model,
        neighbour_slots=healthy.neighbour_slots,
        history_steps=healthy.history_steps,
    )
    wrong.load_state_dict(healthy.state_dict())
    return wrong


# ----------------------------------------------------------------------------------------------------
# init


def test_init_matches_the_expected_loss_and_keeps_activations_in_scale(ds, tmp_path):
    res = check_init(ds, TrainConfig(), tmp_path)
    assert res.passed, res.verdict
    init = res.numbers["init"]
    assert init["ce"] == pytest.approx(math.log(6), abs=0.1) and init["expected_ce"] == math.log(6)
    assert init["regression"] == pytest.approx(init["expected_regression"], rel=0.25)
    assert list(res.numbers["layers"]) == ["hidden1", "hidden2", "hidden3", "head"]  # every Linear, in order
    assert 0.1 <= res.numbers["std_ratio_last_first"] <= 10
    assert all(layer["grad_norm"] > 0 for layer in res.numbers["layers"].values())
    assert res.numbers["zero_input_loss"] == pytest.approx(init["loss"], rel=0.1)  # nothing learnt yet
    assert_png(res, tmp_path)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_init_fails_when_tiny_weights_collapse_the_activations(ds, activation):
    cfg = TrainConfig(model=ModelConfig(init="normal001", activation=activation))
    res = check_init(ds, cfg)
    assert not res.passed and "collapse" in res.verdict
    assert res.numbers["std_ratio_last_first"] < 0.1
    assert res.figure is None  # no out_dir, no figure


# ----------------------------------------------------------------------------------------------------
# overfit


def test_overfit_memorises_a_batch(ds, tmp_path):
    res = check_overfit(ds, TrainConfig(), tmp_path)
    assert res.passed and res.numbers["ratio"] <= 0.01, res.verdict
    assert res.numbers["steps"] == len(res.numbers["curve"]) - 1 < 1000
    assert_png(res, tmp_path)


def test_overfit_fails_with_a_wrong_gradient(ds):
    cfg = TrainConfig()
    res = check_overfit(ds, cfg, max_steps=100, model=wrong_gradient_model(ds, cfg))
    assert not res.passed and "wrong gradient" in res.verdict
    assert res.numbers["ratio"] > 1  # the steps climb the loss
    assert res.numbers["steps"] == 100


# ----------------------------------------------------------------------------------------------------
# lr-range


def test_lr_range_finds_a_clear_minimum(ds, tmp_path):
    res = check_lr_range(ds, TrainConfig(), tmp_path)
    assert res.passed, res.verdict
    n = res.numbers
    assert 1e-6 < n["suggested_lr"] < n["lr_at_min"] < n["divergence_lr"] <= 1.0
    assert 1e-5 < n["suggested_lr"] < 1e-2  # AdamW on this model: around 1e-4 .. 1e-3
    assert n["min_loss"] <= 0.8 * n["start_loss"]
    assert len(n["lrs"]) == len(n["losses"]) == len(n["smoothed"])
    assert_png(res, tmp_path)


def test_lr_range_fails_with_a_wrong_gradient(ds):
    cfg = TrainConfig()
    res = check_lr_range(ds, cfg, steps=100, model=wrong_gradient_model(ds, cfg))
    assert not res.passed and "wrong gradient" in res.verdict
    assert res.numbers["min_loss"] > 0.8 * res.numbers["start_loss"]


# ----------------------------------------------------------------------------------------------------
# curvature


def test_power_iteration_finds_the_top_eigenvalue_of_a_known_hessian():
    # loss = 1/2 w^T A w has Hessian A; its eigenvalues are set by construction.
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(1)))
    a = q @ torch.diag(torch.tensor([7.0, 3.0, 1.0, 0.5, -2.0, 0.1])) @ q.T
    w = torch.randn(6, requires_grad=True)
    lam, iters, converged = top_hessian_eigenvalue(0.5 * w @ a @ w, [w], iters=200, tol=1e-7)
    assert converged and iters < 200
    assert lam == pytest.approx(7.0, rel=1e-4)


def test_curvature_is_stable_at_the_default_lr_with_huber(ds, tmp_path):
    # Huber's second derivative is at most 1; the default displacement's is 1 / distance, so near a fit its
    # curvature is sharper (here 1.6x plain SGD's limit at lr 1e-3: Adam, which rescales, trains it).
    res = check_curvature(ds, TrainConfig(loss={"regression": "huber"}), tmp_path, checkpoints=(0, 50))
    assert res.passed and res.verdict.startswith("stable"), res.verdict
    n = res.numbers
    assert [p["step"] for p in n["points"]] == [0, 50]
    assert all(p["converged"] and p["lambda_max"] > 0 for p in n["points"])
    assert n["two_over_lambda"] > n["lr"] and n["max_ratio"] < 1
    assert n["max_ratio"] == pytest.approx(n["lr"] * n["max_lambda"] / 2)
    assert_png(res, tmp_path)


@pytest.mark.slow
def test_curvature_flags_a_learning_rate_100x_too_high(ds):
    res = check_curvature(ds, TrainConfig(lr=0.1), checkpoints=(0, 50))
    assert not res.passed and res.verdict.startswith("unstable"), res.verdict
    assert res.numbers["max_ratio"] > 1 and res.numbers["two_over_lambda"] < 0.1


# ----------------------------------------------------------------------------------------------------
# saliency and the dependency check


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["none", "layernorm"])
def test_saliency_maps_onto_the_feature_layout_and_examples_stay_independent(ds, tmp_path, norm):
    res = check_saliency(ds, TrainConfig(model=ModelConfig(norm=norm)), tmp_path, steps=20, samples=300)
    assert res.passed, res.verdict
    dep = res.numbers["dependency"]
    assert dep["max_cross_gradient"] == 0.0 and dep["max_self_gradient"] > 0  # exactly zero, not just small
    c = ds.config
    for key in ("loss_saliency", "endpoint_saliency"):
        assert len(res.numbers[key]["history_by_step"]) == c.history_steps
        lanes = res.numbers[key]["lanes_by_point"]
        assert len(lanes) == c.max_lanes and all(len(lane) == c.lane_points for lane in lanes)
    assert sum(res.numbers["shares"].values()) == pytest.approx(1.0)
    assert len(res.numbers["top_features"]) == 5
    assert_png(res, tmp_path)


@pytest.mark.slow
def test_batchnorm_in_train_mode_fails_the_dependency_check(ds):
    res = check_saliency(ds, TrainConfig(model=ModelConfig(norm="batchnorm")), steps=20, samples=300)
    assert not res.passed and "depend on each other" in res.verdict
    assert res.numbers["dependency"]["max_cross_gradient"] > 1e-6


def test_cross_example_gradients_are_exactly_zero_off_the_diagonal(ds):
    cfg = TrainConfig()
    split = Split.of(ds.train.subset(slice(0, 8)), ds.normalizer, torch.device("cpu"))
    for norm, mixes in (("none", False), ("batchnorm", True)):
        cross = cross_example_gradients(build_model(ds, cfg, norm=norm), split.x, split.y, cfg)
        off = cross[~torch.eye(8, dtype=torch.bool)]
        assert cross.shape == (8, 8) and (cross.diagonal() > 0).all()
        assert (off > 0).all() if mixes else (off == 0).all()


# ----------------------------------------------------------------------------------------------------
# gradients


def test_gradients_show_the_lectures_vanishing_and_exploding(ds, tmp_path):
    res = check_gradients(ds, TrainConfig(), tmp_path)
    assert res.passed, res.verdict
    orders = res.numbers["orders"]
    assert orders["sigmoid, N(0, 0.01²)"] < -10  # sigma' <= 1/4 times tiny weights, at every layer
    # Scaled identity: the backpropagated gradient is multiplied by alpha at each of the 9 steps down.
    assert orders["relu, 1.5·I"] == pytest.approx(9 * math.log10(1.5), abs=0.01)
    assert orders["relu, 0.5·I"] == pytest.approx(9 * math.log10(0.5), abs=0.01)
    assert abs(orders["relu, kaiming"]) < 1
    assert all(len(n) == 10 for n in res.numbers["grad_norms"].values())
    assert "vanishes" in res.verdict and "explodes" in res.verdict
    assert_png(res, tmp_path)


def test_gradients_fail_for_sigmoid_with_tiny_weights(ds):
    res = check_gradients(ds, TrainConfig(model=ModelConfig(activation="sigmoid", init="normal001")))
    assert not res.passed and "your setting (sigmoid, normal001, norm none) vanishes" in res.verdict
    assert res.numbers["orders"]["yours: sigmoid, normal001, norm none"] < -10


# ----------------------------------------------------------------------------------------------------
# toy


@pytest.mark.slow
def test_toy_mse_averages_nll_widens_and_wta_recovers_both_curves(ds, tmp_path):
    res = check_toy(ds, TrainConfig(), tmp_path)
    assert res.passed, res.verdict
    n = res.numbers
    assert n["mse_distance_to_nearer_curve"] > 0.6 and n["mse_distance_to_mean_curve"] < 0.1  # gap/2 = 0.75
    assert n["nll_mean_std"] > 10 * n["noise"] and n["nll_mean_std"] == pytest.approx(0.75, abs=0.1)
    assert max(n["modes_error_per_curve"].values()) < 0.05
    assert_png(res, tmp_path)


def test_toy_fails_when_the_loss_averages_the_modes(ds):
    res = check_toy(ds, TrainConfig(loss=LossConfig(kind="l2")))
    assert not res.passed and "averages the modes" in res.verdict
    assert min(res.numbers["modes_error_per_curve"].values()) > 0.5  # both modes sit between the curves


# ----------------------------------------------------------------------------------------------------
# registry, JSON, reproducibility


def test_registry_and_run_check(ds, tmp_path):
    assert list(CHECKS) == ["init", "overfit", "lr-range", "curvature", "saliency", "gradients", "toy"]
    with pytest.raises(TinypredError, match="init, overfit, lr-range, curvature, saliency, gradients, toy"):
        run_check("nope", ds, TrainConfig())
    res = run_check("gradients", ds, TrainConfig(), tmp_path)
    assert res.name == "gradients"
    assert_png(res, tmp_path)
    assert json.loads(json.dumps(res.to_json(), allow_nan=False))["figure"] == str(tmp_path / "gradients.png")


FAST_KNOBS = {
    "init": {},
    "overfit": {"max_steps": 30},
    "lr-range": {"steps": 40},
    "curvature": {"checkpoints": (0, 10), "iters": 8},
    "saliency": {"steps": 10, "samples": 200},
    "gradients": {"depth": 4},
    "toy": {"steps": 100},
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_every_check_gives_the_same_json_numbers_twice(ds, name):
    cfg = TrainConfig(seed=3, model=ModelConfig(width=64, depth=2))
    first, second = (CHECKS[name](ds, cfg, **FAST_KNOBS[name]) for _ in range(2))
    assert first.numbers == second.numbers and first.verdict == second.verdict
    json.dumps(first.to_json(), allow_nan=False)  # plain JSON: no NaN, no tensors, no NumPy scalars


def test_diagnose_command(small_dataset, tmp_path):
    from conftest import run_cli

    ok = run_cli("diagnose", "init", "--data", str(small_dataset), "--out", str(tmp_path), check=True)
    assert "init: PASSED" in ok.stdout
    saved = json.loads((tmp_path / "init.json").read_text())
    assert saved["passed"] is True and (tmp_path / "init.png").read_bytes()[:4] == b"\x89PNG"
    bad = run_cli("diagnose", "nope", "--data", str(small_dataset), "--out", str(tmp_path))
    # An unknown check is a usage error (exit 2), listing the checks there are.
    assert (
        bad.returncode == 2 and "'nope' is not one of 'init'" in bad.stderr and "Traceback" not in bad.stderr
    )
    config = tmp_path / "sigmoid.toml"
    config.write_text('[model]\nactivation = "sigmoid"\ninit = "normal001"\n')
    failed = run_cli(
        "diagnose", "init", "--data", str(small_dataset), "--config", str(config), "--out", str(tmp_path)
    )
    assert failed.returncode == 1 and "init: FAILED" in failed.stdout


def test_long_checks_print_progress_lines(ds, caplog, monkeypatch):
    """A long check says how far it is (steps/s, ETA) in plain log lines, not silence."""
    from tinypred.diagnostics import common

    monkeypatch.setattr(common.Ticker.__init__, "__defaults__", (None, 0.0))  # a line every step
    with caplog.at_level("INFO", logger="tinypred"):
        check_lr_range(ds, TrainConfig(), steps=5)
    lines = [r.getMessage() for r in caplog.records if r.name == "tinypred.diagnostics.common"]
    assert len(lines) == 5 and lines[-1].startswith("lr-range: 5/5 steps, ")
    assert "steps/s, ETA 0 s" in lines[-1]
