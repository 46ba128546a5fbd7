"""Predictions as an AV2 challenge submission: the city frame, 6 modes per focal track, AV2's checks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tinypred.data import dataset
from tinypred.data.av2.schema import SUBMISSION_COLUMNS, probs_sum_to_one
from tinypred.data.av2.submission import check_submission, submission_table, write_submission
from tinypred.data.scene_config import SceneConfig
from tinypred.errors import TinypredError

STEPS = np.arange(1, 61)


@pytest.fixture(scope="module")
def scenes():
    """Two focal samples of a 60-step, 10 Hz dataset, at known poses: scenario 'b' turned a quarter
    turn left at (10, 20), scenario 'a' a half turn at (-5, 3)."""
    test = dataset.make(SceneConfig(history_steps=50, future_steps=60), 1, 0, 2, seed=0).test
    return replace(
        test,
        pose=np.array([[10.0, 20.0, np.pi / 2], [-5.0, 3.0, np.pi]]),
        scenario_id=np.array(["b", "a"]),
        track_id=np.array(["t1", "t2"]),
    )


def hand_modes(k: int) -> np.ndarray:
    """(2, K, 60, 2): mode j of sample i goes along x at j + 1 m per step, at y = j - i."""
    modes = np.zeros((2, k, 60, 2))
    modes[..., 0] = np.arange(1, k + 1)[None, :, None] * STEPS
    modes[..., 1] = (np.arange(k)[None, :] - np.arange(2)[:, None])[..., None]
    return modes


def world(sample: int, j: int) -> np.ndarray:
    """The city-frame trajectory (60, 2) of hand_modes' mode j of `sample`, rotated and moved by hand."""
    x, y = (j + 1) * STEPS, np.full(60, j - sample, float)
    if sample == 0:  # (10, 20), +90 degrees: (x, y) -> (-y, x)
        return np.stack([10 - y, 20 + x], -1)
    return np.stack([-5 - x, 3 - y], -1)  # (-5, 3), 180 degrees: (x, y) -> (-x, -y)


def rows(table: pa.Table) -> list[tuple]:
    d = table.to_pydict()
    xy = np.stack([d["predicted_trajectory_x"], d["predicted_trajectory_y"]], -1)
    return list(zip(d["scenario_id"], d["track_id"], d["probability"], xy, strict=True))


def expect(table: pa.Table, expected: list[tuple]) -> None:
    got = rows(table)
    assert [(s, t) for s, t, *_ in got] == [(s, t) for s, t, *_ in expected]
    np.testing.assert_allclose([p for *_, p, _ in got], [p for *_, p, _ in expected], rtol=1e-12)
    np.testing.assert_allclose(
        np.stack([xy for *_, xy in got]), np.stack([xy for *_, xy in expected]), atol=1e-9
    )


def test_six_modes_per_focal_track_in_the_city_frame_most_probable_first(scenes):
    probs = np.array([[0.1, 0.3, 0.05, 0.25, 0.2, 0.1], [0.5, 0.0, 0.0, 0.0, 0.25, 0.25]])
    table = submission_table(hand_modes(6), probs, scenes)
    assert table.schema.equals(pa.schema(SUBMISSION_COLUMNS))
    expected = [("a", "t2", probs[1, j], world(1, j)) for j in (0, 4, 5, 1, 2, 3)]
    expected += [("b", "t1", probs[0, j], world(0, j)) for j in (1, 3, 4, 0, 5, 2)]
    expect(table, expected)
    check_submission(table)


def test_more_modes_keep_the_six_most_probable_renormalised(scenes):
    probs = np.array(
        [[0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05], [0.05, 0.05, 0.1, 0.1, 0.1, 0.1, 0.2, 0.3]]
    )
    table = submission_table(hand_modes(8), probs, scenes)
    expected = [("a", "t2", probs[1, j] / 0.9, world(1, j)) for j in (7, 6, 2, 3, 4, 5)]
    expected += [("b", "t1", probs[0, j] / 0.9, world(0, j)) for j in range(6)]
    expect(table, expected)
    check_submission(table)


def test_a_single_mode_is_padded_with_copies_at_probability_zero(scenes):
    table = submission_table(hand_modes(1), np.ones((2, 1)), scenes)
    expected = [("a", "t2", p, world(1, 0)) for p in (1, 0, 0, 0, 0, 0)]
    expected += [("b", "t1", p, world(0, 0)) for p in (1, 0, 0, 0, 0, 0)]
    expect(table, expected)
    check_submission(table)


def test_only_focal_samples_go_in_once_each(scenes):
    table = submission_table(
        hand_modes(6), np.full((2, 6), 1 / 6), replace(scenes, category=np.array([3, 2], np.int8))
    )
    assert set(table["scenario_id"].to_pylist()) == {"b"} and table.num_rows == 6
    with pytest.raises(TinypredError) as e:
        submission_table(
            hand_modes(6), np.full((2, 6), 1 / 6), replace(scenes, scenario_id=np.array(["a", "a"]))
        )
    assert e.value.arg == "scenes" and "scenario 'a' has 2 focal samples" in str(e.value)


def test_inputs_that_are_not_an_av2_submission_are_refused(scenes):
    with pytest.raises(TinypredError) as e:
        submission_table(hand_modes(6), np.full((2, 6), 0.1), scenes)
    assert e.value.arg == "probs" and "sum to 1" in str(e.value)
    with pytest.raises(TinypredError) as e:
        submission_table(hand_modes(6)[:, :, :30], np.full((2, 6), 1 / 6), scenes)
    assert e.value.arg == "modes"
    short = dataset.make(SceneConfig(), 1, 0, 2, seed=0).test  # 30 steps
    with pytest.raises(TinypredError) as e:
        submission_table(np.zeros((2, 6, 30, 2)), np.full((2, 6), 1 / 6), short)
    assert e.value.message == "AV2 submissions are 60 steps at 10 Hz; this dataset has 30 steps at 0.1 s"
    with pytest.raises(TinypredError) as e:
        submission_table(hand_modes(6), np.full((2, 6), 1 / 6), replace(scenes, dt=0.2))
    assert e.value.message == "AV2 submissions are 60 steps at 10 Hz; this dataset has 60 steps at 0.2 s"


def test_check_submission_applies_av2s_rules(scenes, tmp_path):
    table = submission_table(hand_modes(6), np.full((2, 6), 1 / 6), scenes)
    p = table["probability"].to_numpy()
    # AV2's np.isclose(1, sum), at its edges (the metrics use the same rule, probs_sum_to_one).
    scales = np.array([1 + 5e-6, 1 - 5e-6, 1 + 5e-5, 1 - 2e-5, 0.99])
    assert probs_sum_to_one(scales).tolist() == [True, True, False, False, False]
    for scale, ok in zip(scales, probs_sum_to_one(scales), strict=True):
        scaled = table.set_column(2, "probability", pa.array(p * scale))
        if ok:
            check_submission(scaled)
        else:
            with pytest.raises(TinypredError, match="probabilities sum to"):
                check_submission(scaled)
            with pytest.raises(TinypredError):
                write_submission(tmp_path / "bad.parquet", scaled)
    assert not list(tmp_path.iterdir())

    short = pa.array([list(range(59))] * table.num_rows, pa.list_(pa.float64()))
    with pytest.raises(TinypredError, match="predicted_trajectory_x has 59 steps, expected 60"):
        check_submission(table.set_column(3, "predicted_trajectory_x", short))
    missing = pa.array([None, *p[1:]], pa.float64())
    with pytest.raises(TinypredError, match="5 probabilities for 6 trajectories"):
        check_submission(table.set_column(2, "probability", missing))
    with pytest.raises(TinypredError, match="expected the columns"):
        check_submission(table.set_column(2, "probability", pa.array(p, pa.float32())))


def test_the_written_file_reads_back_with_the_exact_schema(scenes, tmp_path):
    probs = np.array([[0.1, 0.3, 0.05, 0.25, 0.2, 0.1], [0.5, 0.0, 0.0, 0.0, 0.25, 0.25]])
    table = submission_table(hand_modes(6), probs, scenes)
    path = write_submission(tmp_path / "sub" / "submission.parquet", table)
    back = pq.read_table(path)
    assert back.schema.equals(pa.schema(SUBMISSION_COLUMNS)) and back.equals(table)
    assert [p.name for p in path.parent.iterdir()] == ["submission.parquet"]
    # As ChallengeSubmission.from_parquet: sorted by probability, grouped by scenario and track.
    d = back.sort_by([("probability", "descending")]).to_pydict()
    for sid in ("a", "b"):
        mine = [i for i, s in enumerate(d["scenario_id"]) if s == sid]
        trajectories = np.stack(
            (
                np.stack([d["predicted_trajectory_x"][i] for i in mine]),
                np.stack([d["predicted_trajectory_y"][i] for i in mine]),
            ),
            -1,
        )
        assert trajectories.shape == (6, 60, 2) and {d["track_id"][i] for i in mine} == {
            "t1" if sid == "b" else "t2"
        }
        assert np.isclose(1, np.sum([d["probability"][i] for i in mine]))
