"""`tinypred profile`: torch.profiler traces and tables, the engine's time per op, the figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_cli

from tinypred.backprop import engine, losses
from tinypred.backprop.engine import Tensor
from tinypred.backprop.profiling import EngineStep, build, forward_loss, op_timer, tensor_ops
from tinypred.experiments import profile as prof
from tinypred.predictors.losses import loss

STEPS = 3


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


@pytest.fixture(scope="module")
def profiled(run, small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("profile") / "out"
    proc = run_cli(
        "profile", str(run), "--data", str(small_dataset), "--out", str(out), "--steps", str(STEPS),
        "--top", "5", "--device", "cpu", check=True,
    )  # fmt: skip
    return proc, out, json.loads((out / "profile.json").read_text())


def test_each_phase_writes_a_chrome_trace_of_real_operators(profiled):
    _, out, result = profiled
    assert set(result["torch"]) == {"infer_b1", "infer_b512", "train"}
    for name, phase in result["torch"].items():
        trace = json.loads((out / phase["trace"]).read_text())
        names = {e.get("name") for e in trace["traceEvents"]}
        assert "aten::addmm" in names, name  # every phase runs the Linear layers' forward
        if name == "train":
            assert any("Backward" in str(n) for n in names)  # and training their backward


def test_the_tables_shares_sum_to_100_and_name_the_work(profiled):
    proc, _, result = profiled
    for name, phase in result["torch"].items():
        assert phase["steps"] == STEPS and phase["ms_per_step"] > 0
        assert sum(r["share_pct"] for r in phase["rows"]) == pytest.approx(100, abs=1e-6), name
        assert phase["ms_per_step"] == pytest.approx(sum(r["self_cpu_ms"] for r in phase["rows"]))
    assert result["torch"]["infer_b512"]["batch"] == 512 and result["torch"]["train"]["batch"] == 128
    assert "profiler_start" not in proc.stderr + proc.stdout  # kineto's own log lines stay quiet
    rows = {r["op"]: r for r in result["engine"]["rows"]}
    assert sum(r["share_pct"] for r in rows.values()) == pytest.approx(100, abs=1e-6)
    # The engine's rows are ops it has (or the three named parts of a step that are no op).
    known = set(tensor_ops().values()) | {"huber"}
    assert {op for op in rows if not op.startswith("(")} <= known
    for op in ("matmul", "relu", "log_softmax"):
        assert rows[op]["forward_ms"] > 0 and rows[op]["backward_ms"] > 0 and rows[op]["calls"] > 0, op
    assert rows["(optimizer: clip + step)"]["update_ms"] > 0
    # Printed: a table per torch phase and the engine's, with real operator names.
    for text in ("infer_b1", "infer_b512", "train (batch 128)", "aten::addmm", "NumPy engine", "matmul"):
        assert text in proc.stdout, text
    assert "…" not in proc.stdout  # folded, never cut short


def test_the_figure_is_a_png(profiled):
    _, out, _ = profiled
    assert (out / "profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_engine_copy_computes_the_runs_loss(run, small_dataset):
    """The engine profiles the same model: the run's weights give torch's loss on the same batch."""
    ds, loaded, cfg = prof.load(run, small_dataset, "cpu")
    spec, notes = prof.engine_spec(loaded, cfg)
    assert notes == ["the agent encoder runs once in torch: the engine trains the MLP on its pooled output"]
    x, y = prof.engine_batches(ds, loaded, cfg, 1)[0]
    full, _ = prof.engine_batches(ds, loaded, cfg, 1, trunk=False)[0]
    mlp, _ = build(EngineStep(**spec))
    with torch.no_grad():
        expected, _ = loss(loaded.model(torch.from_numpy(full)), torch.from_numpy(y), loaded.loss)
    assert forward_loss(mlp, EngineStep(**spec), x, y).item() == pytest.approx(expected.item(), rel=1e-4)


def _graph(x: np.ndarray) -> tuple[Tensor, Tensor]:
    w = Tensor(x, requires_grad=True)
    out = ((w @ w.T).relu() - 1).mean()
    out.backward()
    return w, out


def test_the_op_timer_times_forward_and_backward_without_changing_a_result():
    x = np.random.default_rng(0).normal(size=(4, 3))
    plain_w, plain = _graph(x)
    with op_timer() as times:
        w, out = _graph(x)
    assert out.item() == plain.item() and np.array_equal(w.grad, plain_w.grad)
    assert set(times.ops) == {"matmul", "T", "relu", "sub", "mean"}  # mean's sum and division are its own
    for op, s in times.ops.items():
        assert s.calls == 1 and s.forward > 0 and s.backward > 0 and s.backward_calls >= 1, op


def test_the_op_timer_puts_the_engine_back_even_after_an_error():
    before = dict(vars(Tensor))
    make_op, huber = engine.make_op, losses.huber
    with pytest.raises(RuntimeError, match="inside"), op_timer():
        assert Tensor.__matmul__ is not before["__matmul__"] and engine.make_op is not make_op
        raise RuntimeError("inside")
    assert engine.make_op is make_op and losses.huber is huber
    for attr in tensor_ops():
        assert vars(Tensor)[attr] is before[attr], attr
    assert isinstance(vars(Tensor)["T"], property)


def test_a_bad_run_is_one_line_and_writes_nothing(small_dataset, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("profile", str(tmp_path / "nope"), "--data", str(small_dataset), "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("tinypred: error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "model.safetensors" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
    (tmp_path / "file").write_text("x")
    proc = run_cli(
        "profile", str(tmp_path / "nope"), "--data", str(small_dataset), "--out", str(tmp_path / "file")
    )
    assert proc.returncode == 1 and "is a file" in proc.stderr
