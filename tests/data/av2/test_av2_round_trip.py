"""Argoverse 2 both ways: synthetic -> export -> import gives the same encoded arrays; an AV2 split ->
import -> export gives back its own ids, city and city-frame tracks; and the user's path through the
real CLI: import-av2 -> train -> eval -> predict --format av2 (a model and a baseline) -> a submission."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from av2_fixtures import LAST, write_scenario
from conftest import run_cli

from tinypred.data import dataset
from tinypred.data.av2.exporter import export_av2
from tinypred.data.av2.importer import import_av2
from tinypred.data.av2.schema import SUBMISSION_COLUMNS, scenario_files
from tinypred.data.av2.submission import check_submission
from tinypred.data.encoding import to_world
from tinypred.data.scene_config import SceneConfig

IDS = ("scenario_id", "track_id", "city", "category", "object_type", "family", "intent")


def _by_scenario(enc) -> np.ndarray:
    return np.argsort(enc.scenario_id, kind="stable")


def test_synthetic_export_then_import_gives_the_same_encoded_arrays(tmp_path):
    cfg = SceneConfig()
    ds = dataset.make(cfg, 1, 1, 300, seed=4)
    export_av2(ds, tmp_path / "av2" / "test", split="test")
    back, report = _import_with(tmp_path, cfg)
    assert report["splits"]["test"]["imported"] == 300 and not report["skipped"]
    a, b = ds.test.subset(_by_scenario(ds.test)), back.test.subset(_by_scenario(back.test))
    np.testing.assert_array_equal(a.scenario_id, b.scenario_id)
    np.testing.assert_array_equal(a.track_id, b.track_id)
    np.testing.assert_array_equal(a.city, b.city)
    for name in ("history", "future", "pose"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), atol=1e-4, rtol=0, err_msg=name)
    for name in ("history_mask", "future_mask", "lane_mask", "neighbour_mask", "category", "object_type"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
    # The importer lists map elements nearest first; the generator in its own order: the same elements,
    # each within 1e-4 m, up to that order.
    for i in range(len(a)):
        mine, theirs = a.lanes[i][a.lane_mask[i]], b.lanes[i][b.lane_mask[i]]
        gap = np.abs(mine[:, None] - theirs[None]).max((2, 3))  # (L, L) worst point distance per pair
        match = gap.argmin(1)
        assert sorted(match) == list(range(len(theirs))) and gap.min(1).max() < 1e-4, i
        np.testing.assert_array_equal(a.lane_type[i][a.lane_mask[i]], b.lane_type[i][b.lane_mask[i]][match])


def _import_with(tmp_path: Path, cfg: SceneConfig):
    report = import_av2(
        tmp_path / "av2",
        tmp_path / "back",
        history=cfg.history_steps,
        future=cfg.future_steps,
        lanes=cfg.max_lanes,
        lane_points=cfg.lane_points,
        neighbours=cfg.max_neighbours,
    )
    return dataset.load(tmp_path / "back"), report


def test_an_imported_split_exports_back_with_its_ids_city_and_tracks(tmp_path):
    split = tmp_path / "av2" / "val"
    for k in range(3):
        write_scenario(
            split, f"scn-{k}", pose=(2500.0 + 40 * k, -1300.0, 0.6 + k), city=("PIT", "MIA")[k % 2]
        )
    import_av2(split, tmp_path / "ds", split="val", agents="scored")
    export_av2(dataset.load(tmp_path / "ds"), tmp_path / "out", split="val")
    for k in range(3):
        sid = f"scn-{k}"
        name = scenario_files(sid)[0]
        orig = pq.read_table(split / sid / name).to_pydict()
        back = pq.read_table(tmp_path / "out" / sid / name).to_pydict()
        assert set(back["scenario_id"]) == {sid} and set(back["city"]) == set(orig["city"])
        assert back["focal_track_id"][0] == orig["focal_track_id"][0] == "F"
        # Every exported row is the original track at that step, in the city frame (the export numbers
        # the steps of its window: history H = 50 steps ending at the last observed one, AV2's step 49).
        where = {
            (t, s): (x, y)
            for t, s, x, y in zip(
                orig["track_id"], orig["timestep"], orig["position_x"], orig["position_y"], strict=True
            )
        }
        for t, s, x, y in zip(
            back["track_id"], back["timestep"], back["position_x"], back["position_y"], strict=True
        ):
            assert np.hypot(x - where[t, s + LAST - 49][0], y - where[t, s + LAST - 49][1]) < 1e-3, (t, s)
        assert {"F", "A", "H"} <= set(back["track_id"])  # the focal and the scored targets, and neighbours


@pytest.fixture(scope="module")
def av2_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("av2")
    for split, n, steps in (("train", 24, 110), ("val", 6, 110), ("test", 5, 50)):
        for k in range(n):
            write_scenario(
                root / split,
                f"{split}-{k:03d}",
                pose=(1000.0 * k, -300.0 * k, 0.3 * k),
                num_timestamps=steps,
            )
    return root


@pytest.mark.slow
def test_the_users_path_import_train_eval_predict_submit(av2_root, tmp_path):
    data, run = tmp_path / "ds", tmp_path / "run"
    proc = run_cli(
        "data",
        "import-av2",
        str(av2_root),
        "--out",
        str(data),
        "--lanes",
        "6",
        "--lane-points",
        "5",
        check=True,
    )
    assert "train: 24 of 24 scenarios imported" in proc.stdout and "test: 5 of 5" in proc.stdout
    report = json.loads((data / "import_report.json").read_text())
    assert report["splits"]["test"]["samples"] == 5 and not report["skipped"]
    run_cli(
        "train",
        "--data",
        str(data),
        "--out",
        str(run),
        "--epochs",
        "2",
        "--set",
        "model.width=32",
        check=True,
    )
    evaluated = run_cli("eval", str(run), "--data", str(data), "--split", "val", check=True)
    assert "minFDE@6" in evaluated.stdout
    refused = run_cli("eval", str(run), "--data", str(data), "--split", "test")
    assert refused.returncode == 1 and "futures" in refused.stderr and "Traceback" not in refused.stderr
    ds = dataset.load(data)
    for who in (["predict", str(run)], ["predict", "--baseline", "cv"]):
        out = tmp_path / f"{who[-1].replace('/', '_')}.parquet"
        run_cli(
            *who, "--data", str(data), "--split", "test", "--format", "av2", "--out", str(out), check=True
        )
        table = pq.read_table(out)
        check_submission(table)
        assert table.schema.names == list(SUBMISSION_COLUMNS)
        assert sorted(set(table["scenario_id"].to_pylist())) == sorted(ds.test.scenario_id)
        assert table.num_rows == 6 * len(ds.test)
        # City frame: the first predicted point is next to where the focal track was last seen.
        first = table.slice(0, 1).to_pylist()[0]
        row = list(ds.test.scenario_id).index(first["scenario_id"])
        start = to_world(np.zeros((1, 1, 2)), ds.test.pose[row : row + 1])[0, 0]
        assert (
            np.hypot(
                first["predicted_trajectory_x"][0] - start[0], first["predicted_trajectory_y"][0] - start[1]
            )
            < 5
        )


def test_cli_export_and_bad_input(small_dataset, tmp_path):
    run_cli(
        "data", "export-av2", str(small_dataset), "--split", "val", "--out", str(tmp_path / "x"), check=True
    )
    assert len([p for p in (tmp_path / "x").iterdir() if p.is_dir()]) == 300
    cases = [
        (["data", "import-av2", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")], "SRC"),
        (["predict", "--data", str(small_dataset), "--out", str(tmp_path / "p.parquet")], "--baseline"),
        (
            [
                "predict",
                "--baseline",
                "cv",
                "--data",
                str(small_dataset),
                "--format",
                "av2",
                "--out",
                str(tmp_path / "p.parquet"),
            ],
            "60 steps at 10 Hz",
        ),
        (
            [
                "predict",
                "--baseline",
                "nope",
                "--data",
                str(small_dataset),
                "--out",
                str(tmp_path / "p.parquet"),
            ],
            "--baseline",
        ),
    ]
    for args, message in cases:
        proc = run_cli(*args)
        assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, (
            args,
            proc.stderr,
        )
        assert proc.stderr.strip().count("\n") == 0
    for flag, value in (("--split", "dev"), ("--agents", "all")):  # not a choice: a usage error, exit 2
        proc = run_cli("data", "import-av2", str(tmp_path / "x"), flag, value, "--out", str(tmp_path / "o"))
        assert proc.returncode == 2 and f"Invalid value for '{flag}'" in proc.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "p.parquet").exists()
