"""Console tables (rich): datasets, metrics, the ablation, device timing and the gradient checks."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from tinypred.evaluation.metrics import METRICS
from tinypred.report.document import ABLATION_COLUMNS


def _table(title: str | None, columns: tuple[str, ...], left: tuple[str, ...]) -> Table:
    table = Table(title=Text(title) if title else None)  # Text: a path with brackets is not markup
    for col in columns:
        # fold: on a narrow terminal a cell wraps onto a second line, never ends in an ellipsis
        table.add_column(col, justify="left" if col in left else "right", overflow="fold")
    return table


def summary_table(title: str, rows: list[dict]) -> Table:
    """`data.dataset.summary` rows: counts, speeds and displacements per split and family."""
    cols = (
        "split",
        "family",
        "count",
        "share",
        "decision",
        "alts",
        "neighbours",
        "speed m/s",
        "disp. m",
        "p95",
    )
    table = _table(title, cols, ("split", "family"))
    for r in rows:
        table.add_row(
            r["split"],
            r["family"],
            str(r["count"]),
            f"{r['share']:.2f}",
            "yes" if r["decision"] else "",
            f"{r['alternatives']:.2f}",
            f"{r['neighbours']:.1f}",
            f"{r['speed_mean']:.1f}±{r['speed_std']:.1f}",
            "unknown" if r["disp_mean"] is None else f"{r['disp_mean']:.1f}",
            "" if r["disp_p95"] is None else f"{r['disp_p95']:.1f}",
        )
    return table


def metrics_table(
    title: str,
    results: dict[str, dict[str, dict[str, float]]],
    slices: tuple[str, ...] = ("all", "decision", "interactive", "other"),
) -> Table:
    """One row per (predictor, slice) of `evaluate_scenes` tables by predictor, one column per metric."""
    table = _table(title, ("predictor", "slice", *METRICS), ("predictor", "slice"))
    for name, by_slice in results.items():
        for sl in slices:
            if sl in by_slice:
                row = by_slice[sl]
                table.add_row(
                    name,
                    f"{sl} ({row['count']})",
                    *(f"{row[m]:.3f}" if m.startswith("MR") else f"{row[m]:.2f}" for m in METRICS),
                )
        table.add_section()
    return table


def floor_table(title: str, floor: dict[str, dict[str, dict[str, float]]]) -> Table:
    """`predictors.bayes.BayesFloor.floor`: per slice, each metric's floor with its Monte-Carlo error."""
    table = _table(title, ("slice", *METRICS), ("slice",))
    for name, by_metric in floor.items():
        if not name.startswith("family/"):
            table.add_row(
                name, *(f"{by_metric[m]['value']:.3f} ± {by_metric[m]['mc_se']:.3f}" for m in METRICS)
            )
    return table


def ablation_table(title: str, rows: list[dict]) -> Table:
    """`experiments.ablation.run_ablation` rows, at decision points."""
    table = _table(title, ("run", "loss", "ce", "lr", *ABLATION_COLUMNS), ("run",))
    for r in rows:
        table.add_row(
            r["name"],
            r["loss"],
            "yes" if r["ce"] else "no",
            f"{r['lr']:g}",
            *(f"{r['decision'][c]:.3f}" for c in ABLATION_COLUMNS),
        )
    return table


def bench_table(title: str, rows: list[dict]) -> Table:
    """`experiments.devices.device_bench` rows."""
    table = _table(
        title, ("device", "precision", "status", "seconds", "samples/s"), ("device", "precision", "status")
    )
    for r in rows:
        table.add_row(
            r["device"],
            r["precision"],
            r["status"],
            f"{r['seconds']:.2f}" if "seconds" in r else "",
            f"{r['samples_per_s']:.0f}" if "samples_per_s" in r else "",
        )
    return table


def gradcheck_table(rows: list[dict]) -> Table:
    """`backprop.battery.run_gradcheck_battery` rows."""
    cols = ("op", "kind", "vs finite differences", "vs torch", "worst rel. error", "result")
    table = _table(
        "gradients against central differences and torch autograd (float64)", cols, ("op", "kind", "result")
    )
    for r in rows:
        table.add_row(
            r["op"],
            r["kind"],
            f"{r['numeric_rel_error']:.1e}",
            f"{r['torch_rel_error']:.1e}",
            f"{r['worst_rel_error']:.1e}",
            Text("pass") if r["passed"] else Text("FAIL", style="red"),
        )
    return table
