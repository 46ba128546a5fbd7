"""Draws from the true conditional law of a split's futures: a replay of the generator, checked."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tinypred.data import dataset
from tinypred.data.scene_config import FAMILIES, SYNTHETIC_FAMILIES, SceneConfig
from tinypred.data.truth import future_samples
from tinypred.errors import TinypredError

S = 64


@pytest.fixture(scope="module")
def ds():
    return dataset.make(SceneConfig(), 50, 10, 800, seed=5)


def collect(ds, split="test", samples=S, seed=0):
    enc = ds.split(split)
    out = np.full((len(enc), samples, enc.future.shape[1], 2), np.nan, np.float32)
    for rows, drawn in future_samples(ds, split, samples, seed):
        out[rows] = drawn
    return out


def test_every_scene_gets_its_samples_in_its_own_frame_and_the_seed_decides(ds):
    drawn = collect(ds)
    assert np.isfinite(drawn).all()
    # Every family of the default config is there, each with a split future.
    assert set(np.unique(ds.test.family)) == {FAMILIES.index(f) for f in SYNTHETIC_FAMILIES}
    # Agent frame: every draw starts about where the past ended, heading roughly along +x.
    first = drawn[:, :, 0]
    assert np.abs(first).max() < 5.0
    np.testing.assert_array_equal(collect(ds), drawn)
    assert not np.array_equal(collect(ds, seed=1), drawn)


def test_the_draws_follow_the_mixture_the_scene_carries(ds):
    """Each draw belongs to the mixture slot whose nominal future ends nearest. Scene by scene, a slot's
    share of the draws is its posterior probability: regressed on it, the slope is 1 (drawing the
    intent from its prior instead gives about 0, since the prior is the posterior's average), and each
    family's mean share is its mean probability (styles blur the slots a little: tolerances 0.1)."""
    enc = ds.test
    drawn = collect(ds)
    end = drawn[:, :, -1]  # (N, S, 2)
    alt_end = np.where(enc.alt_mask[..., None], enc.alt_futures[:, :, -1], np.inf)  # (N, A, 2)
    nearest = np.linalg.norm(end[:, :, None] - alt_end[:, None], axis=-1).argmin(2)  # (N, S)
    share = np.stack([(nearest == a).mean(1) for a in range(enc.alt_probs.shape[1])], 1)
    split = enc.alt_mask.sum(1) >= 2
    slots = enc.alt_mask[split]
    slope, _ = np.polyfit(enc.alt_probs[split][slots], share[split][slots], 1)
    assert 0.9 < slope < 1.1, slope
    for f in np.unique(enc.family[split]):
        rows = split & (enc.family == f)
        np.testing.assert_allclose(
            share[rows].mean(0), enc.alt_probs[rows].mean(0), atol=0.1, err_msg=FAMILIES[f]
        )


def test_the_scenes_own_future_is_one_more_draw_of_the_same_law(ds):
    """Rank of the driven future's endpoint distance to the draws' median among the draws' own distances
    (ties, within 1 mm, count half: a merge's future is often exactly one of its draws): uniform if it is
    one more draw, so its mean over a family's scenes is 1/2, within 4 standard errors."""
    enc = ds.test
    drawn = collect(ds)
    centre = np.median(drawn[:, :, -1], 1)
    own = np.linalg.norm(enc.future[:, -1] - centre, axis=-1)[:, None]
    theirs = np.linalg.norm(drawn[:, :, -1] - centre[:, None], axis=-1)
    rank = ((theirs < own - 1e-3) + 0.5 * (np.abs(theirs - own) <= 1e-3)).mean(1)
    for f in np.unique(enc.family):
        r = rank[enc.family == f]
        assert abs(r.mean() - 0.5) < 4 * r.std() / np.sqrt(len(r)), (FAMILIES[f], r.mean())


def test_a_dataset_the_generator_did_not_make_is_refused(ds):
    other = replace(ds, seed=ds.seed + 1)
    with pytest.raises(TinypredError, match="not made by this version"):
        next(future_samples(other, "test", 4, 0))
    imported = replace(ds, config=None, seed=None)
    with pytest.raises(TinypredError, match="synthetic dataset"):
        next(future_samples(imported, "test", 4, 0))
    with pytest.raises(TinypredError, match="at least 1 sample"):
        next(future_samples(ds, "test", 0, 0))
