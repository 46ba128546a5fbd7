"""The scene generator: kinematic limits, the ground-truth mixture, determinism, config validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinypred.config import load_config
from tinypred.data.paths import path_pose, s_curve
from tinypred.data.scene_config import DECISION_FAMILIES, FAMILIES, INTENTS, MAX_ALTERNATIVES, SceneConfig
from tinypred.data.scenes import CHUNK, Scenes, generate
from tinypred.errors import TinypredError

NOISE_FREE = {"pos_noise": 0.0, "heading_noise": 0.0, "speed_noise": 0.0}
configs = st.builds(
    lambda hint, spread, seed: (SceneConfig(hint_strength=hint, style_spread=spread, **NOISE_FREE), seed),
    st.floats(0, 1),
    st.floats(0, 1),
    st.integers(0, 2**31 - 1),
)


def kinematics(traj: np.ndarray, dt: float = 0.1):
    """Speed (..., T-1), longitudinal and lateral acceleration (..., T-2) by finite differences."""
    vel = np.diff(traj, axis=-2) / dt
    acc = np.diff(vel, axis=-2) / dt
    mid = 0.5 * (vel[..., 1:, :] + vel[..., :-1, :])
    unit = mid / np.maximum(np.linalg.norm(mid, axis=-1), 1e-9)[..., None]
    along = (acc * unit).sum(-1)
    lateral = acc[..., 0] * unit[..., 1] - acc[..., 1] * unit[..., 0]
    return np.linalg.norm(vel, axis=-1), along, lateral


@settings(max_examples=12, deadline=None)
@given(configs)
def test_kinematic_limits_hold(cfg_seed):
    cfg, seed = cfg_seed
    s = generate(cfg, 400, seed)
    driven = np.concatenate([s.history[..., :2], s.future], 1)  # the noise-free past and the future
    for traj in (driven, s.alt_futures[s.alt_mask]):
        speed, along, lateral = kinematics(traj)
        assert speed.max() <= 20.0 + 0.05
        assert along.min() >= -5.0 - 0.05  # braking <= 5 m/s^2
        assert along.max() <= 1.0 + 0.1  # gentle acceleration
        assert np.abs(lateral).max() <= 4.0
    # Cruise speeds are 3-20 m/s: only a stop goes below 3, so the past never does -- but in traffic,
    # where a slow lead or a car crossing holds the target back (the interactive families).
    alone = ~s.is_interactive
    assert np.hypot(s.history[alone, :, 3], s.history[alone, :, 4]).min() >= 3.0 - 1e-9


@settings(max_examples=12, deadline=None)
@given(configs)
def test_mixture_shares_the_past_and_splits(cfg_seed):
    cfg, seed = cfg_seed
    s = generate(cfg, 400, seed)
    last = s.history[:, -1, :2]
    step = np.hypot(s.history[:, -1, 3], s.history[:, -1, 4]) * cfg.dt
    for m in range(MAX_ALTERNATIVES):
        ok = s.alt_mask[:, m]
        # Every alternative continues from the same last observed state: one step of travel away.
        first = np.linalg.norm(s.alt_futures[ok, m, 0] - last[ok], axis=-1)
        np.testing.assert_allclose(first, step[ok], atol=0.06)
    decision = np.isin(s.family, [FAMILIES.index(f) for f in DECISION_FAMILIES])
    single = ~decision & ~s.is_interactive
    assert np.all(s.alt_mask[single].sum(1) == 1)  # one alternative where nobody decides anything
    many = decision & (s.alt_mask.sum(1) >= 2)
    assert many.mean() > 0.8 * decision.mean()  # nearly every decision scene offers a choice
    end = s.alt_futures[many, :, -1]
    gap = np.linalg.norm(end[:, :, None] - end[:, None], axis=-1)
    pair = s.alt_mask[many][:, :, None] & s.alt_mask[many][:, None] & ~np.eye(MAX_ALTERNATIVES, dtype=bool)
    assert np.where(pair, gap, np.inf).min() >= 1.5  # every two branches are metres apart at the horizon
    assert np.median(np.where(pair, gap, -np.inf).max((1, 2))) >= 5.0


def test_probabilities_are_the_posterior_and_the_prior_without_a_hint():
    cfg = SceneConfig(hint_strength=0.0)
    s = generate(cfg, 3000, 1)
    np.testing.assert_allclose(s.alt_probs.sum(1), 1.0, atol=1e-12)
    for k, family in enumerate(FAMILIES):
        if family in ("intersection", "stop_or_go"):  # all of their intents always exist
            np.testing.assert_allclose(
                s.alt_probs[s.family == k], cfg.priors(family)[None].repeat((s.family == k).sum(), 0)
            )
    # With a strong hint, the chosen intent is more probable on average than its prior says.
    hinted = generate(SceneConfig(hint_strength=1.0), 3000, 1)
    dec = np.isin(hinted.family, [FAMILIES.index(f) for f in DECISION_FAMILIES])
    chosen = hinted.alt_probs[np.arange(len(hinted)), hinted.intent]
    flat = s.alt_probs[np.arange(len(s)), s.intent]
    assert chosen[dec].mean() > flat[dec].mean() + 0.1


def test_chosen_intent_follows_the_priors():
    cfg = SceneConfig(
        hint_strength=0.0,
        family_weights={"intersection": 1.0},
        intersection_priors={"straight": 0.2, "left": 0.5, "right": 0.3},
    )
    s = generate(cfg, 6000, 2)
    freq = np.bincount(s.intent, minlength=3) / len(s)
    np.testing.assert_allclose(freq, [0.2, 0.5, 0.3], atol=0.025)
    assert set(np.unique(s.alt_intent)) == {INTENTS.index(i) for i in ("straight", "left", "right")}


def test_same_seed_same_arrays_other_seed_other_arrays():
    cfg = SceneConfig()
    n = CHUNK + 7  # two chunks, made by two threads
    a, b, c = generate(cfg, n, 5), generate(cfg, n, 5), generate(cfg, n, 6)
    # ... and the same rows made piece by piece, as a dataset too large for memory is
    parts = Scenes.concatenate([generate(cfg, CHUNK, 5), generate(cfg, 7, 5, start=CHUNK)])
    for name in Scenes.array_names():
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        np.testing.assert_array_equal(getattr(a, name), getattr(parts, name), err_msg=name)
    assert not np.array_equal(a.future, c.future)
    assert not np.array_equal(a.future[:7], generate(cfg, 7, 5, start=CHUNK).future)  # start moves the stream
    with pytest.raises(TinypredError, match=f"multiple of {CHUNK}"):
        generate(cfg, 7, 5, start=3)


def test_family_weights_select_families():
    s = generate(SceneConfig(family_weights={"curve": 1.0, "cruise": 0.0}), 500, 0)
    assert set(np.unique(s.family)) == {FAMILIES.index("curve")}
    assert len(generate(SceneConfig(), 0, 0)) == 0


def test_path_geometry_is_exact():
    # A quarter circle of radius 10 from the origin heading +x ends at (10, 10) heading +y.
    start = np.array([[0.0, 0.0, 0.0]])
    z, heading = path_pose(
        start, np.array([[np.pi * 5, 0.0]]), np.array([[0.1, 0.0]]), np.array([[np.pi * 5, 100.0]])
    )
    np.testing.assert_allclose([z[0, 0].real, z[0, 0].imag, heading[0, 0]], [10, 10, np.pi / 2], atol=1e-12)
    # ... and carries on straight along +y after it.
    np.testing.assert_allclose([z[0, 1].real, z[0, 1].imag], [10, 10 + 100 - np.pi * 5], atol=1e-9)
    # An S-curve moves (dx, dy) and ends at its start heading.
    length, kappa = s_curve(np.array([40.0]), np.array([3.5]))
    z, heading = path_pose(
        start,
        np.stack([length, length, [0.0]], -1),
        np.stack([kappa, -kappa, [0.0]], -1),
        np.array([2 * length]),
    )
    np.testing.assert_allclose([z[0, 0].real, z[0, 0].imag, heading[0, 0]], [40, 3.5, 0], atol=1e-9)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"family_weights": {"roundabout": 1.0}}, "unknown family 'roundabout'"),
        ({"family_weights": {"curve": -1.0}}, "must be a finite number >= 0"),
        ({"family_weights": {"curve": 0.0}}, "at least one family"),
        ({"intersection_priors": {"straight": 0.5, "left": 0.3, "right": 0.3}}, "sum to 1"),
        ({"lane_change_priors": {"keep": 1.0}}, "expected exactly the keys"),
        ({"hint_strength": 1.5}, "hint_strength"),
        ({"history_steps": -3}, "history_steps"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, config, message):
    import json

    path = tmp_path / "scenes.json"
    path.write_text(json.dumps(config))
    with pytest.raises(TinypredError, match=message) as info:
        load_config(SceneConfig, path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_config_files_toml_and_broken(tmp_path):
    good = tmp_path / "s.toml"
    good.write_text("hint_strength = 0.7\n[family_weights]\ncurve = 1.0\n")
    assert load_config(SceneConfig, good).hint_strength == 0.7
    broken = tmp_path / "b.json"
    broken.write_text("{not json")
    with pytest.raises(TinypredError, match="not valid JSON"):
        load_config(SceneConfig, broken)
    with pytest.raises(TinypredError, match="no such config file"):
        load_config(SceneConfig, tmp_path / "missing.json")
