"""The encoded scene: agent frame, invariance to the world pose, the round trip, normalisation."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinypred.data.encoding import (
    Normalizer,
    encode,
    feature_count,
    feature_layout,
    feature_names,
    features,
    to_agent,
    to_world,
)
from tinypred.data.scene_config import LANE_TYPES, OBJECT_TYPES, SceneConfig
from tinypred.data.scenes import generate

CFG = SceneConfig()
SCENES = generate(CFG, 300, 3)


@settings(max_examples=25, deadline=None)
@given(st.floats(-np.pi, np.pi), st.floats(-5000, 5000), st.floats(-5000, 5000))
def test_encoding_is_invariant_to_the_world_pose(angle, dx, dy):
    a = encode(SCENES)
    b = encode(SCENES.rigid_transform(angle, np.array([dx, dy])))
    for name in ("history", "future", "lanes", "alt_futures"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=2e-3, err_msg=name)
    np.testing.assert_array_equal(a.lane_mask, b.lane_mask)


def test_agent_frame_origin_and_heading():
    enc = encode(SCENES)
    np.testing.assert_allclose(enc.history[:, -1, :2], 0.0, atol=1e-3)  # origin at the last observed step
    np.testing.assert_allclose(
        enc.history[:, -1, 4:], np.tile([0.0, 1.0], (len(enc), 1)), atol=1e-6
    )  # heading 0
    # Driving forward: the future lies ahead (+x) of the agent.
    assert np.median(enc.future[:, -1, 0]) > 5.0
    assert np.all(enc.lanes[~enc.lane_mask] == 0) and np.all(enc.alt_futures[~enc.alt_mask] == 0)


def test_round_trip_to_the_world_frame():
    enc = encode(SCENES)
    np.testing.assert_allclose(to_world(enc.future, enc.pose), SCENES.future, atol=2e-3)
    world = to_world(enc.alt_futures, enc.pose)
    np.testing.assert_allclose(world[SCENES.alt_mask], SCENES.alt_futures[SCENES.alt_mask], atol=2e-3)
    pts = np.random.default_rng(0).normal(size=(len(enc), 7, 2)) * 100
    np.testing.assert_allclose(to_agent(to_world(pts, enc.pose), enc.pose), pts, atol=1e-9)


def test_feature_layout_and_normaliser_fit_on_train_only():
    enc = encode(SCENES)
    x = features(enc)
    shapes = (CFG.history_steps, CFG.max_lanes, CFG.lane_points, CFG.max_neighbours)
    names, layout = feature_names(*shapes), feature_layout(*shapes)
    per_slot = 7 * CFG.history_steps + len(OBJECT_TYPES)
    assert x.shape == (len(enc), len(names)) == (len(enc), 288 + CFG.max_neighbours * per_slot)
    assert x.dtype == np.float32
    assert list(layout) == [
        "history",
        "history_mask",
        "lanes",
        "lane_mask",
        "lane_type",
        "lane_is_intersection",
        "neighbours",
        "neighbour_mask",
        "neighbour_type",
    ]
    assert layout["neighbour_type"].stop == len(names) == feature_count(*shapes)
    # The neighbour slots, in the target's frame: nearest first, an empty slot all zeros.
    seen = enc.neighbour_mask[:, 0, -1]
    assert seen.any() and not seen.all()
    np.testing.assert_array_equal(x[:, names.index("nb0.h19.x")], enc.neighbours[:, 0, -1, 0])
    np.testing.assert_array_equal(x[:, names.index("nb0.h19.mask")], seen)
    np.testing.assert_array_equal(x[:, names.index("nb0.is_vehicle")], seen)
    assert not x[~seen][:, layout["neighbour_type"]].any()
    np.testing.assert_array_equal(x[:, names.index("h19.vx")], enc.history[:, -1, 2])
    np.testing.assert_array_equal(x[:, names.index("h3.mask")], 1.0)
    np.testing.assert_array_equal(x[:, names.index("lane1.mask")], enc.lane_mask[:, 1])
    stop = (enc.lane_type == LANE_TYPES.index("stop_line")) & enc.lane_mask
    np.testing.assert_array_equal(x[:, names.index("lane1.is_stop_line")], stop[:, 1])
    assert stop.any() and not x[:, layout["lane_is_intersection"]].any()
    norm = Normalizer.fit(x[:200])
    z = norm(x[:200])
    # Flags (only ever 0 or 1) stay as they are: a mask still says "absent" exactly.
    flag = np.all((x[:200] == 0) | (x[:200] == 1), 0)
    assert flag[layout["neighbour_mask"]].all() and flag[layout["history_mask"]].all()
    np.testing.assert_array_equal(z[:, flag], x[:200, flag])
    np.testing.assert_allclose(z[:, ~flag].mean(0), 0.0, atol=1e-3)
    varying = (x[:200].std(0) > 1e-6) & ~flag
    np.testing.assert_allclose(z[:, varying].std(0), 1.0, atol=1e-3)
    assert np.all(norm.std[~varying] == 1.0)  # constant features are left unscaled, not divided by 0
    # Fitted on the first 200 only: the rest is not standardised exactly.
    assert not np.allclose(norm(x[200:]).mean(0)[varying], 0.0, atol=1e-3)


def test_each_sample_is_encoded_as_it_would_be_alone():
    # A mixed batch moves only the scenes with neighbours through the neighbour path: every sample must
    # still come out exactly as when encoded on its own (and neighbours, pasts and futures, in its frame).
    enc = encode(SCENES)
    with_neighbours = np.flatnonzero(SCENES.neighbour_mask.any((1, 2)))
    assert 0 < len(with_neighbours) < len(SCENES)
    for i in (*with_neighbours[:3], *np.flatnonzero(~SCENES.neighbour_mask.any((1, 2)))[:2]):
        alone = encode(SCENES.subset(slice(i, i + 1)))
        for name in ("history", "neighbours", "neighbour_future", "lanes", "future"):
            np.testing.assert_array_equal(getattr(enc, name)[i], getattr(alone, name)[0], err_msg=name)
    i = with_neighbours[0]
    seen = SCENES.neighbour_mask[i, :, -1]
    np.testing.assert_allclose(
        to_world(enc.neighbours[i : i + 1, seen, -1, :2], enc.pose[i : i + 1]),
        SCENES.neighbours[i : i + 1, seen, -1, :2],
        atol=2e-3,
    )


def test_the_neighbour_slots_are_standardised_alike_so_an_agent_reads_the_same_in_any_slot():
    from tinypred.data import dataset
    from tinypred.data.encoding import slot_groups
    from tinypred.data.synthetic import config_shapes

    ds = dataset.make(CFG, 600, 10, 10, seed=4)
    groups = slot_groups(config_shapes(CFG))
    for group, m in groups:
        for stat in (ds.normalizer.mean, ds.normalizer.std):
            per_slot = stat[group].reshape(m, -1)
            np.testing.assert_array_equal(per_slot, np.broadcast_to(per_slot[0], per_slot.shape))
    # Reversing the slots of every sample permutes its normalised slot features, nothing more: with the
    # model's shared encoder and symmetric pooling, the prediction is the same.
    enc = ds.train
    flipped = {name: getattr(enc, name) for name in ("neighbours", "neighbour_mask", "neighbour_type")}
    flipped = {name: a[:, ::-1] for name, a in flipped.items()}
    x = ds.normalizer(features(enc))
    y = ds.normalizer(features(dataclasses.replace(enc, **flipped)))
    for group, m in groups:
        np.testing.assert_array_equal(
            y[:, group].reshape(len(y), m, -1), x[:, group].reshape(len(x), m, -1)[:, ::-1]
        )
    assert enc.neighbour_mask[:, 1].any()  # slots past the first are filled in some samples
