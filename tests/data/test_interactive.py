"""The interactive families (follow, yield, merge) and the traffic models they are made of: the models'
known values, constructed cases of each rule, the Drawn contract, no collisions, and resample's law."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tinypred.data.families import BUILDERS as FAMILY_BUILDERS
from tinypred.data.families import S_END
from tinypred.data.gap_acceptance import B_SAFE, CRITICAL_GAP, STOP_BACK
from tinypred.data.interactive import BUILDERS
from tinypred.data.interactive_kit import V_TOP, Y_LANE
from tinypred.data.scene_config import FAMILY_INTENTS, MAX_ALTERNATIVES, SceneConfig
from tinypred.data.traffic import (
    A_HARD,
    IDM_A,
    IDM_S0,
    IDM_T,
    LENGTH,
    ballistic_step,
    boxes_overlap,
    follow_leader,
    gap_accepted,
    idm_accel,
    idm_equilibrium_gap,
    mobil_safe,
    p_gap_accepted,
    p_mobil_safe,
)

FAMILIES = tuple(BUILDERS)
configs = st.builds(
    lambda hint, spread, dt, seed: (SceneConfig(hint_strength=hint, style_spread=spread, dt=dt), seed),
    st.floats(0, 1),
    st.floats(0, 1),
    st.sampled_from([0.05, 0.1, 0.2]),
    st.integers(0, 2**31 - 1),
)


def headings(z: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Headings (B, N) of a track z (B, N): the known ones of its past, then its direction of travel."""
    step = np.diff(z, axis=1)
    out = np.angle(np.concatenate([step[:, :1], step], 1))
    out[:, : known.shape[1]] = known
    return out


def collisions(d) -> np.ndarray:
    """(B,) bool: the target's body (grown 0.25 m on every side) meets another agent's, past or future."""
    target = np.concatenate([d.hist_z, d.future], 1)
    t_heading = headings(target, d.hist_heading)
    hit = np.zeros(len(target), bool)
    for j in range(d.agents):
        other = np.concatenate([d.nb_z[:, j], d.nb_future[:, j]], 1)
        hit |= boxes_overlap(target, t_heading, other, headings(other, d.nb_heading[:, j]), margin=0.25).any(
            1
        )
    return hit


def along_track(z: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Speed (B, N-1) and along-track acceleration (B, N-2) of tracks z by finite differences."""
    vel = np.diff(z, axis=1) / dt
    acc = np.diff(vel, axis=1) / dt
    mid = 0.5 * (vel[:, 1:] + vel[:, :-1])
    return np.abs(vel), (acc * np.conj(mid / np.maximum(np.abs(mid), 1e-9))).real


# ----------------------------------------------------------------------------------------------------
# The models


def test_idm_known_values():
    # Free road: a at standstill, a (1 - 1/16) at half the desired speed, 0 at it, braking above it.
    np.testing.assert_allclose(idm_accel(0.0, 15.0, np.inf, 0.0), IDM_A)
    np.testing.assert_allclose(idm_accel(7.5, 15.0, np.inf, 0.0), IDM_A * (1 - 1 / 16))
    np.testing.assert_allclose(idm_accel(15.0, 15.0, np.inf, 0.0), 0.0, atol=1e-12)
    assert idm_accel(16.0, 15.0, np.inf, 0.0) < 0
    # At the desired gap s* = s0 + v T (no approach), the interaction term is exactly -a.
    np.testing.assert_allclose(idm_accel(10.0, 20.0, IDM_S0 + 10.0 * IDM_T, 0.0), -IDM_A * (10 / 20) ** 4)
    # No gap at all: -inf, whatever the speeds.
    assert idm_accel(10.0, 20.0, 0.0, 0.0) == -np.inf and idm_accel(0.0, 20.0, -3.0, -5.0) == -np.inf


@given(st.floats(0.0, 19.5), st.floats(20.0, 40.0))
def test_idm_equilibrium_gap_holds_its_speed(v, v0):
    gap = idm_equilibrium_gap(v, v0)
    np.testing.assert_allclose(idm_accel(v, v0, gap, 0.0), 0.0, atol=1e-9)
    assert idm_accel(v, v0, gap * 0.9, 0.0) < 0 < idm_accel(v, v0, gap * 1.1, 0.0)


@given(st.floats(0, 30), st.floats(-6, 3), st.floats(0.01, 1.0))
def test_ballistic_step_never_reverses(v, acc, dt):
    x, v_next = ballistic_step(np.array([0.0]), np.array([v]), np.array([acc]), dt)
    assert v_next[0] >= 0
    if v + acc * dt >= 0:
        np.testing.assert_allclose(x[0], v * dt + 0.5 * acc * dt**2, atol=1e-9)
    else:  # it stops inside the step, where it reaches zero speed
        np.testing.assert_allclose([x[0], v_next[0]], [v * v / (-2 * acc), 0.0], atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 20.0), st.floats(0.0, 100.0), st.floats(10.0, 20.0))
def test_a_stopped_lead_makes_the_follower_stop_behind_it(v, extra, v0):
    # A standing car; the follower starts far enough to stop braking at most 2.5 m/s^2 (and extra more).
    gap0 = v * v / (2 * 2.5) + IDM_S0 + 1.0 + extra
    lead = np.zeros((600, 1))
    x, speed = follow_leader(np.array([-gap0 - LENGTH]), np.array([v]), v0, lead, lead, 0.1)
    gap = -x[:, 0] - LENGTH
    assert speed.min() >= 0 and speed[-1, 0] < 1e-3  # stopped
    # Never a collision; the minimum gap s0 kept up to the 10 Hz discretisation (5 cm).
    assert gap.min() >= IDM_S0 - 0.05
    acc = np.diff(np.concatenate([[v], speed[:, 0]])) / 0.1
    assert acc.min() >= -A_HARD - 1e-9 and acc.max() <= IDM_A + 1e-9


def test_gap_acceptance_rule():
    lo, hi = CRITICAL_GAP
    t_crit = np.linspace(lo, hi, 101)
    # A car arriving well inside every possible critical gap: wait; a large gap: go.
    assert not gap_accepted(lo - 0.5, t_crit).any() and p_gap_accepted(np.array(lo - 0.5), lo, hi) == 0
    assert gap_accepted(hi + 0.5, t_crit).all() and p_gap_accepted(np.array(hi + 0.5), lo, hi) == 1
    # In between, P(go) is the share of drivers whose critical gap is shorter.
    tta = np.array([4.5, 5.0, 6.0])
    np.testing.assert_allclose(
        p_gap_accepted(tta, lo, hi), gap_accepted(tta[:, None], t_crit).mean(1), atol=0.01
    )
    np.testing.assert_array_equal(p_gap_accepted(tta, 5.0, 5.0), [0.0, 0.0, 1.0])  # no spread: a step


def test_no_gap_forbids_the_merge():
    # The lag alongside the target (net gap <= 0): unsafe for every threshold.
    acc_lag = idm_accel(15.0, 18.0, -1.0, 2.0)
    assert not mobil_safe(acc_lag, 0.0, np.linspace(*B_SAFE, 11)).any()
    assert p_mobil_safe(acc_lag, 0.0, *B_SAFE) == 0
    # Large gaps both sides at equal speeds: safe for every threshold.
    acc_lag, acc_self = idm_accel(15.0, 18.0, 80.0, 0.0), idm_accel(15.0, 18.0, 80.0, 0.0)
    assert mobil_safe(acc_lag, acc_self, np.linspace(*B_SAFE, 11)).all()
    assert p_mobil_safe(acc_lag, acc_self, *B_SAFE) == 1
    # A tight gap: the share of thresholds it passes, and the slower of the two decides.
    need = np.array([1.5, 2.5])
    np.testing.assert_allclose(p_mobil_safe(-need, np.zeros(2), *B_SAFE), (B_SAFE[1] - need) / 2)
    np.testing.assert_allclose(p_mobil_safe(np.zeros(2), -need, *B_SAFE), (B_SAFE[1] - need) / 2)


def test_boxes_overlap_cases():
    z0, h0 = np.array(0j), np.array(0.0)
    assert boxes_overlap(z0, h0, 4.9 + 0j, h0) and not boxes_overlap(z0, h0, 5.1 + 0j, h0)  # nose to tail
    assert not boxes_overlap(z0, h0, 3.5j, h0)  # side by side in adjacent lanes
    assert boxes_overlap(z0, h0, 3.5j, h0, margin=0.8)  # ... unless grown by 0.8 m a side
    # Crossing at right angles: the side of one reaches 1 m, the nose of the other 2.5 m.
    assert boxes_overlap(z0, h0, 3.4 + 0j, np.array(np.pi / 2))
    assert not boxes_overlap(z0, h0, 3.6 + 0j, np.array(np.pi / 2))
    # A diagonal body reaches further than an aligned one.
    assert boxes_overlap(z0, h0, 0.0 + 2.9j, np.array(np.pi / 4)) and not boxes_overlap(z0, h0, 2.9j, h0)


# ----------------------------------------------------------------------------------------------------
# The builders: the Drawn contract


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=6, deadline=None)
@given(configs)
def test_builder_keeps_the_contract(family, cfg_seed):
    cfg, seed = cfg_seed
    b, H, T, A = 600, cfg.history_steps, cfg.future_steps, MAX_ALTERNATIVES
    d = BUILDERS[family](np.random.default_rng(seed), cfg, b)
    R = d.agents
    assert 1 <= R <= 3
    shapes = {
        "hist_z": (b, H), "hist_heading": (b, H), "hist_speed": (b, H), "future": (b, T),
        "lanes": (b, cfg.max_lanes, cfg.lane_points), "lane_mask": (b, cfg.max_lanes),
        "lane_type": (b, cfg.max_lanes), "alt_futures": (b, A, T), "alt_probs": (b, A), "alt_mask": (b, A),
        "intent": (b,), "nb_z": (b, R, H), "nb_heading": (b, R, H), "nb_speed": (b, R, H),
        "nb_future": (b, R, T), "nb_mask": (b, R),
    }  # fmt: skip
    for name, shape in shapes.items():
        value = getattr(d, name)
        assert value.shape == shape, name
        kind = {"lane_mask": "b", "alt_mask": "b", "nb_mask": "b", "lane_type": "i", "intent": "i"}.get(name)
        assert value.dtype.kind == (kind or ("c" if np.iscomplexobj(value) else "f")), name
        assert np.isfinite(value).all() if value.dtype.kind in "fc" else True, name
    assert d.nb_mask.all() and set(np.unique(d.lane_type)) <= {0, 1}
    assert np.all(d.lanes[~d.lane_mask] == 0) and d.lane_mask[:, 0].all()
    # The target at S_END heading +x at its last observed step.
    np.testing.assert_allclose(d.hist_z[:, -1].real, S_END, atol=1e-9)
    np.testing.assert_allclose(d.hist_heading[:, -1], 0.0, atol=1e-12)
    # The mixture: rows sum to 1 over the mask, nothing where masked, the slot driven is in it.
    names = FAMILY_INTENTS[family]
    assert not d.alt_mask[:, len(names) :].any()
    np.testing.assert_allclose(np.where(d.alt_mask, d.alt_probs, 0).sum(1), 1.0, atol=1e-12)
    assert np.all(d.alt_probs[~d.alt_mask] == 0) and np.all(d.alt_futures[~d.alt_mask] == 0)
    rows = np.arange(b)
    assert d.alt_mask[rows, d.intent].all() and (d.alt_probs[rows, d.intent] > 0).all()
    # Physical: no collisions, speeds >= 0 (<= 20), accelerations in [-5, 1] m/s^2 (the target's).
    assert not collisions(d).any()
    assert d.hist_speed.min() >= 0 and d.nb_speed.min() >= 0
    tracks = [np.concatenate([d.hist_z, d.future], 1)]
    tracks += [
        np.concatenate([d.hist_z[d.alt_mask[:, m]], d.alt_futures[d.alt_mask[:, m], m]], 1) for m in range(A)
    ]
    for track in (t for t in tracks if len(t)):
        speed, along = along_track(track, cfg.dt)
        assert speed.max() <= V_TOP + 0.05 and along.min() >= -A_HARD - 0.05 and along.max() <= IDM_A + 0.1
    resampled = d.resample(np.random.default_rng(1))
    assert resampled.shape == (b, T) and np.iscomplexobj(resampled) and np.isfinite(resampled).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_scenes_and_resample_leaves_the_scene_rng_alone(family):
    cfg = SceneConfig()
    rng = np.random.default_rng(3)
    a, b = BUILDERS[family](rng, cfg, 300), BUILDERS[family](np.random.default_rng(3), cfg, 300)
    state = rng.bit_generator.state
    for name in ("hist_z", "future", "lanes", "alt_futures", "alt_probs", "intent", "nb_z", "nb_future"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.resample(np.random.default_rng(9)), b.resample(np.random.default_rng(9)))
    assert rng.bit_generator.state == state  # resample drew nothing from the scene's generator
    c = BUILDERS[family](np.random.default_rng(4), cfg, 300)
    assert not np.array_equal(a.future, c.future)
    assert not np.array_equal(a.resample(np.random.default_rng(9)), a.resample(np.random.default_rng(10)))


@pytest.mark.parametrize("family", FAMILIES)
def test_long_horizons_and_histories_stay_collision_free(family):
    # 15 s ahead: the merged car's new follower must have braked for it, every lead stopped or gone.
    cfg = SceneConfig(history_steps=60, future_steps=150)
    d = BUILDERS[family](np.random.default_rng(13), cfg, 1500)
    assert not collisions(d).any()
    assert np.isfinite(d.future).all() and d.hist_speed.min() >= 0 and d.nb_speed.min() >= 0
    speed, along = along_track(np.concatenate([d.hist_z, d.future], 1), cfg.dt)
    assert speed.max() <= V_TOP + 0.05 and along.min() >= -A_HARD - 0.05 and along.max() <= IDM_A + 0.1


# ----------------------------------------------------------------------------------------------------
# The builders: constructed cases of the rules


def test_yield_waits_inside_every_critical_gap_and_goes_beyond_them():
    cfg = SceneConfig(yield_priors={"straight": 1.0, "turn_off": 0.0})  # the cross car always crosses
    d = BUILDERS["yield"](np.random.default_rng(5), cfg, 4000)
    # Its time to arrival as the past shows it: distance to the target's lane / speed, both now.
    cross = d.nb_z[:, 0, -1]
    tta = (cross.imag - Y_LANE) / d.nb_speed[:, 0, -1]
    soon, late = tta < CRITICAL_GAP[0] - 0.2, tta > CRITICAL_GAP[1] + 0.2
    assert soon.sum() > 300 and late.sum() > 300
    assert np.all(d.intent[soon] == 1) and np.all(d.alt_probs[soon, 0] == 0)  # wait, go_first ruled out
    assert np.all(d.intent[late] == 0) and np.all(d.alt_probs[late, 0] == 1)
    # Waiting, the target stops before the conflict point (the cross car's lane) until the car clears.
    conflict = cross.real
    crossing = d.nb_future[:, 0].imag > Y_LANE - 4.5  # the car not yet clear of the target's lane
    ahead = np.where(crossing[soon], d.future[soon].real - conflict[soon, None], -np.inf)
    assert ahead.max() <= -STOP_BACK + 1e-6


def test_merge_without_a_gap_goes_behind_the_lag():
    d = BUILDERS["merge"](np.random.default_rng(6), SceneConfig(), 4000)
    lag_now = d.nb_z[:, 1, -1].real
    alongside = np.abs(lag_now - S_END) < LENGTH  # no gap ahead of the lag at all
    assert alongside.sum() > 30
    assert np.all(d.alt_probs[alongside, 0] == 0) and np.all(d.intent[alongside] == 1)
    # It enters the next lane only once the lag is ahead of it by more than a body and s0.
    over = d.future.imag > Y_LANE + 0.5
    lead_by = d.nb_future[:, 1].real - d.future.real
    assert np.all(lead_by[alongside][over[alongside]] >= LENGTH + IDM_S0)
    # Both ways happen in the family.
    assert 0.2 < (d.intent == 0).mean() < 0.8


def test_follow_stops_behind_a_stopping_lead():
    stop = {"keep_gap": 0.0, "stop_behind": 1.0, "speed_up": 0.0}
    cfg = SceneConfig(hint_strength=0.0, follow_priors=stop, future_steps=120)  # 12 s: every lead stops
    d = BUILDERS["follow"](np.random.default_rng(7), cfg, 1000)
    gap = np.abs(d.nb_future[:, 0] - d.future) - LENGTH
    assert gap.min() >= IDM_S0 - 0.05
    speed, _ = along_track(d.future, cfg.dt)
    assert speed[:, -1].max() < 0.05 and np.all(d.intent == 1) and np.all(d.alt_mask.sum(1) == 1)


# ----------------------------------------------------------------------------------------------------
# resample: the generator's true conditional law


@pytest.mark.parametrize("family", FAMILIES)
def test_resamples_land_on_each_slot_as_often_as_its_probability(family):
    # Without style spread every future is its slot's nominal one: the shares are exact.
    cfg = SceneConfig(hint_strength=1.0, style_spread=0.0)
    b, draws = 2000, 20
    d = BUILDERS[family](np.random.default_rng(8), cfg, b)
    counts = np.zeros(MAX_ALTERNATIVES)
    for k in range(draws):
        future = d.resample(np.random.default_rng(100 + k))
        dist = np.where(d.alt_mask, np.abs(future[:, None] - d.alt_futures).max(-1), np.inf)
        assert np.all(dist.min(1) < 1e-6)  # a nominal future exactly
        counts += np.bincount(dist.argmin(1), minlength=MAX_ALTERNATIVES)
    share, p = counts / (b * draws), d.alt_probs.mean(0)
    se = np.sqrt((d.alt_probs * (1 - d.alt_probs)).sum(0) / draws) / b
    assert np.all(np.abs(share - p) <= 4 * se + 1e-9), (share, p, se)


def check_calibrated(p: np.ndarray, hits: np.ndarray, draws: int) -> None:
    """Scenes sorted by their probability p (B,) of a slot, in five equal groups: in each, the share of
    draws on that slot (hits (B,) of draws each) is the group's mean p, within 4 standard errors."""
    for group in np.array_split(np.argsort(p, kind="stable"), 5):
        expected = p[group].mean()
        se = np.sqrt(np.clip(p[group] * (1 - p[group]), 0, None).sum() / draws) / len(group)
        assert abs(hits[group].sum() / (draws * len(group)) - expected) <= 4 * se + 1e-9, (expected, se)


@pytest.mark.parametrize("family", FAMILIES)
def test_resamples_follow_each_scenes_posterior(family):
    # Not just on average (the mean posterior is the prior): scene by scene, grouped by probability.
    cfg = SceneConfig(hint_strength=1.0, style_spread=0.0)
    b, draws = 3000, 16
    d = BUILDERS[family](np.random.default_rng(12), cfg, b)
    hits = np.zeros((b, MAX_ALTERNATIVES))
    for k in range(draws):
        future = d.resample(np.random.default_rng(300 + k))
        dist = np.where(d.alt_mask, np.abs(future[:, None] - d.alt_futures).max(-1), np.inf)
        hits[np.arange(b), dist.argmin(1)] += 1
    for m in range(len(FAMILY_INTENTS[family])):
        check_calibrated(d.alt_probs[:, m], hits[:, m], draws)
        check_calibrated(d.alt_probs[:, m], (d.intent == m).astype(float), 1)  # the scene's own intent


@pytest.mark.parametrize("family", FAMILIES)
def test_the_scene_future_is_one_more_resample(family):
    # With every style hidden trait drawn, the scene's own future is exchangeable with resamples: its
    # rank among them (by how far it goes) is uniform, and it lands on each slot as often as they do.
    cfg = SceneConfig(hint_strength=0.6)
    b, draws = 3000, 19
    d = BUILDERS[family](np.random.default_rng(11), cfg, b)
    rng = np.random.default_rng(0)

    def summary(future):
        return np.abs(np.diff(np.concatenate([d.hist_z[:, -1:], future], 1), axis=1)).sum(1)

    def slot(future):
        return np.where(d.alt_mask, np.abs(future[:, None] - d.alt_futures).mean(-1), np.inf).argmin(1)

    own, others = summary(d.future), []
    own_slot, other_slots = np.bincount(slot(d.future), minlength=3), np.zeros(3)
    for k in range(draws):
        future = d.resample(np.random.default_rng(200 + k))
        others.append(summary(future))
        other_slots += np.bincount(slot(future), minlength=3)
    others = np.array(others)
    rank = (others < own).sum(0) + rng.integers(0, (others == own).sum(0) + 1)  # a tie: any place in it
    quarter = np.bincount(rank // 5, minlength=4) / b  # ranks 0-19 in four equal bins
    assert np.all(np.abs(quarter - 0.25) < 4 * np.sqrt(0.25 * 0.75 / b)), quarter
    np.testing.assert_allclose(own_slot / b, other_slots / (b * draws), atol=4 * np.sqrt(0.25 / b))
    if family != "follow":  # its stop and turn-off styles overlap; the others' slots stay apart
        np.testing.assert_allclose(other_slots / (b * draws), d.alt_probs.mean(0), atol=0.01)


# ----------------------------------------------------------------------------------------------------
# The knobs


def test_follow_priors_and_the_hint():
    cfg = SceneConfig(hint_strength=0.0, follow_priors={"keep_gap": 0.2, "stop_behind": 0.5, "speed_up": 0.3})
    d = BUILDERS["follow"](np.random.default_rng(2), cfg, 6000)
    np.testing.assert_allclose(d.alt_probs, np.broadcast_to([0.2, 0.5, 0.3], (6000, 3)), atol=1e-12)
    np.testing.assert_allclose(np.bincount(d.intent) / 6000, [0.2, 0.5, 0.3], atol=0.025)
    hinted = BUILDERS["follow"](np.random.default_rng(2), SceneConfig(hint_strength=1.0), 6000)
    chosen = hinted.alt_probs[np.arange(6000), hinted.intent]
    assert chosen.mean() > d.alt_probs[np.arange(6000), d.intent].mean() + 0.1


@pytest.mark.parametrize(
    ("knob", "value", "message"),
    [
        ("follow_priors", {"keep_gap": 1.0}, "expected exactly the keys"),
        ("follow_priors", {"keep_gap": 0.5, "stop_behind": 0.6, "speed_up": -0.1}, "sum to 1"),
        ("yield_priors", {"straight": 0.5, "go_first": 0.5}, "expected exactly the keys"),
        ("yield_priors", {"straight": 0.5, "turn_off": 0.6}, "sum to 1"),
    ],
)
def test_bad_priors_are_refused(knob, value, message):
    with pytest.raises(ValidationError, match=message):
        SceneConfig(**{knob: value})


def test_rule_families_have_no_slot_prior_and_old_families_do_not_move():
    with pytest.raises(ValueError, match="rule decides"):
        SceneConfig().priors("yield")
    assert SceneConfig().priors("follow").tolist() == [0.5, 0.25, 0.25]
    knobs = {"follow_priors": {"keep_gap": 1.0, "stop_behind": 0.0, "speed_up": 0.0}}
    knobs["yield_priors"] = {"straight": 0.0, "turn_off": 1.0}
    for name, build in FAMILY_BUILDERS.items():
        a = vars(build(np.random.default_rng(1), SceneConfig(), 50))
        b = vars(build(np.random.default_rng(1), SceneConfig(**knobs), 50))
        for key, value in a.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, b[key], err_msg=f"{name}.{key}")
