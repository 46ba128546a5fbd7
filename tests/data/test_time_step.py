"""The time step travels with the data: nothing that turns steps into seconds may assume 10 Hz."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinypred.data import dataset
from tinypred.data.scene_config import SceneConfig
from tinypred.errors import TinypredError
from tinypred.evaluation.tables import evaluate_scenes
from tinypred.predictors.baselines import fit_all

SECONDS_OF_HISTORY, SECONDS_OF_FUTURE = 2.0, 3.0


def cruise(dt: float, seed: int = 4) -> dataset.Dataset:
    """Cruise-only scenes at time step dt, over the same 2 s of history and 3 s of future."""
    cfg = SceneConfig(
        dt=dt,
        family_weights={"cruise": 1.0},
        history_steps=round(SECONDS_OF_HISTORY / dt),
        future_steps=round(SECONDS_OF_FUTURE / dt),
    )
    return dataset.make(cfg, 600, 100, 400, seed=seed)


def test_constant_velocity_scores_the_same_whatever_the_time_step():
    """The same motion sampled at 20, 10 and 5 Hz: CV's error at 3 s must not depend on the sampling
    (a baseline that assumed dt = 0.1 s is off by 2x in every velocity at dt = 0.2 s)."""
    fde = {}
    for dt in (0.05, 0.1, 0.2):
        ds = cruise(dt)
        assert ds.test.dt == dt and ds.test.future.shape[1] == round(SECONDS_OF_FUTURE / dt)
        cv = fit_all(ds.train, ("cv",))["cv"]
        fde[dt] = evaluate_scenes(cv.predict(ds.test), ds.test)["all"]["minFDE@1"]
    assert 0.5 < fde[0.1] < 5.0, fde  # about 2 m: CV's miss on cruise's gentle speed changes
    for dt in (0.05, 0.2):
        assert fde[dt] == pytest.approx(fde[0.1], rel=0.2), fde


def test_dt_is_written_to_meta_and_comes_back_with_every_split(tmp_path):
    ds = cruise(0.2)
    dataset.save(ds, tmp_path / "ds")
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert meta["dt"] == 0.2 and meta["shapes"]["H"] == 10 and meta["shapes"]["T"] == 15
    assert meta["config"]["dt"] == 0.2
    back = dataset.load(tmp_path / "ds")
    assert back.dt == 0.2 and {s.dt for s in (back.train, back.val, back.test)} == {0.2}
    assert back.test.subset(np.arange(3)).dt == 0.2


@pytest.mark.parametrize("bad", [0.1, -0.2, "0.2", None, float("nan")])
def test_a_dt_that_disagrees_or_is_not_a_time_is_refused(tmp_path, bad):
    dataset.save(cruise(0.2), tmp_path / "ds")
    meta_path = tmp_path / "ds" / "meta.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "dt": bad}))
    with pytest.raises(TinypredError, match="field 'dt'"):
        dataset.load(tmp_path / "ds")
