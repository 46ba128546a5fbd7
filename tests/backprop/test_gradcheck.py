"""gradcheck itself (it must catch a broken derivative), the battery, and the `tinypred gradcheck` CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import run_cli

from tinypred.backprop import Tensor, compare_gradients, gradcheck, make_op
from tinypred.backprop.battery import HAND_CASES, OP_CASES, run_gradcheck_battery

ALL_CASES = (*OP_CASES, *HAND_CASES)


def test_gradcheck_catches_a_broken_derivative():
    def tanh_right(x: Tensor) -> Tensor:
        out = np.tanh(x.data)
        return make_op(out, (x,), lambda g: (g * (1 - out * out),))

    def tanh_broken(x: Tensor) -> Tensor:
        out = np.tanh(x.data)
        return make_op(out, (x,), lambda g: (g * (1 - out),))  # forgot the square

    x0 = np.array([[0.3, -1.2], [2.0, 0.7]])
    assert gradcheck(lambda x: tanh_right(x).sum(), [x0]).passed
    result = gradcheck(lambda x: tanh_broken(x).sum(), [x0])
    assert not result.passed
    i = result.index
    assert result.analytic == pytest.approx(1 - np.tanh(x0[i]))
    assert result.numeric == pytest.approx(1 - np.tanh(x0[i]) ** 2, rel=1e-8)


def test_compare_gradients_reports_the_worst_element():
    analytic = [np.array([1.0, 2.0]), np.array([[0.0, 5.0]])]
    reference = [np.array([1.0, 2.0 + 1e-9]), np.array([[0.0, 4.0]])]
    result = compare_gradients(analytic, reference, tol=1e-6)
    assert (result.passed, result.input, result.index) == (False, 1, (0, 1))
    assert (result.analytic, result.numeric, result.rel_error) == (5.0, 4.0, pytest.approx(0.2))
    both_zero = compare_gradients([np.zeros(2)], [np.zeros(2)])
    assert both_zero.passed and both_zero.rel_error == 0.0
    assert not compare_gradients([np.array([np.nan])], [np.array([1.0])]).passed
    with pytest.raises(ValueError, match="input 0"):
        compare_gradients([np.zeros(2)], [np.zeros(3)])


def test_battery_rows_all_pass():
    rows = run_gradcheck_battery()
    names = [case.name for case in ALL_CASES]
    assert len(set(names)) == len(names), "case names must be unique"
    assert [row["op"] for row in rows] == names  # every case exactly once, in order
    assert [row["kind"] for row in rows] == ["autodiff"] * len(OP_CASES) + ["handgrad"] * len(HAND_CASES)
    for row in rows:
        errors = [row[key] for key in ("numeric_rel_error", "torch_rel_error", "worst_rel_error")]
        assert all(isinstance(e, float) and math.isfinite(e) and e >= 0 for e in errors), row
        assert row["worst_rel_error"] == max(row["numeric_rel_error"], row["torch_rel_error"]), row
    failed = [row for row in rows if not row["passed"]]
    assert not failed, failed


def test_battery_depends_only_on_its_seed():
    assert run_gradcheck_battery(3) == run_gradcheck_battery(3)


def test_gradcheck_command(tmp_path):
    n = len(ALL_CASES)
    proc = run_cli("gradcheck", "--json", str(tmp_path / "g.json"), check=True)
    assert f"all {n} checks passed" in proc.stdout and "matmul" in proc.stdout
    rows = json.loads((tmp_path / "g.json").read_text())
    assert [r["op"] for r in rows] == [case.name for case in ALL_CASES] and all(r["passed"] for r in rows)
