"""The demo's report: its metrics.json turned into blocks (`render` writes them as Markdown and HTML).

Everything shown is read from the metrics dict the demo writes, so the report never says more than
metrics.json does.
"""

from __future__ import annotations

from pathlib import Path

from tinypred.data.scene_config import FAMILIES
from tinypred.evaluation.metrics import METRICS
from tinypred.report.render import Block

# What the ablation table shows per run, at decision points.
ABLATION_COLUMNS = (
    "minFDE@6",
    "MR@6",
    "NLL",
    "mode_spread",
    "endpoint_to_nearest_branch_m",
    "endpoint_to_mixture_mean_m",
)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _metric_rows(test: dict, slice_: str) -> list[list[str]]:
    return [[name, *(_fmt(by_slice[slice_][m]) for m in METRICS)] for name, by_slice in test.items()]


def demo_blocks(m: dict, figures: dict[str, Path]) -> list[Block]:
    """The demo report for metrics `m` (as in metrics.json) and its figures by name."""
    sizes = m["config"]["sizes"]
    scenes = m["config"]["scenes"]
    horizon_s = scenes["future_steps"] * scenes["dt"]
    init = m["init"]  # the demo's loss is wta+ce, so both parts are there
    dec_count = m["test"]["mlp"]["decision"]["count"]
    blocks: list[tuple] = [
        ("h1", "tinypred: a tiny learned multimodal trajectory predictor"),
        (
            "p",
            f"Seed {m['seed']}{' (quick run)' if m['quick'] else ''}. {sizes['n_train']} training, "
            f"{sizes['n_val']} validation and {sizes['n_test']} test scenes of synthetic driving, "
            f"{dec_count} of the test scenes at a decision point (intersection, lane change, stop or go). "
            f"An MLP predicts K = {m['config']['train']['model']['modes']} trajectories of {horizon_s:g} s "
            "and their probabilities; it is trained with a winner-take-all loss plus a mode-classification "
            "term.",
        ),
        ("h2", "What this run shows"),
        ("list", [f"{'PASS' if c['passed'] else 'FAIL'}: {c['claim']} ({c['detail']})" for c in m["checks"]]),
        ("h2", "Test metrics at decision points"),
        (
            "p",
            "minADE/minFDE in metres (the ADE of the mode with the lowest FDE, as in Argoverse 2); MR: miss "
            "rate at 2 m; @1 scores the most probable mode, @6 the six most probable; brier-minFDE adds "
            "(1 - p)^2 of the best mode; NLL in nats per scene under a Laplace mixture whose per-step scales "
            "are fitted by maximum likelihood on the training split, for every predictor alike.",
        ),
        ("table", ["predictor", *METRICS], _metric_rows(m["test"], "decision")),
        ("h2", "Test metrics, all scenes"),
        ("table", ["predictor", *METRICS], _metric_rows(m["test"], "all")),
        ("h2", "minFDE@6 per family (m)"),
        (
            "table",
            ["predictor", *FAMILIES],
            [
                [n, *(_fmt(by_family[f]["minFDE@6"]) if f in by_family else "" for f in FAMILIES)]
                for n, by_family in m["test_by_family"].items()
            ],
        ),
        ("h2", "Predictions at decision points"),
        (
            "p",
            "Purple: the learned model's modes (darker = more probable, the number is its probability). "
            "Green (on top, a star at its end): what the agent did. Dotted: the ground-truth alternatives "
            "with their probabilities. Stop-or-go scenes are drawn as distance over time, where stopping and "
            "going part. "
            "Dashed: constant velocity, and the top mode of the L2-trained model -- which lands between the "
            "branches.",
        ),
        ("img", figures["gallery"], "Decision-point scenes from the test split"),
        ("h2", "Training"),
        (
            "p",
            f"Loss at initialisation: {init['loss']:.3f} (classification term {init['ce']:.3f} against "
            f"log K = {init['expected_ce']:.3f}; regression {init['regression']:.3f} against "
            f"{init['expected_regression']:.3f} for predicting no motion). "
            f"Best epoch {m['training']['best_epoch']} of {m['training']['epochs_run']}, "
            f"{m['training']['train_seconds']:.1f} s of training."
            + (f" Warnings: {'; '.join(m['training']['warnings'])}." if m["training"]["warnings"] else ""),
        ),
        ("img", figures["loss"], "Train and validation loss"),
        ("img", figures["metrics"], "Validation metrics per epoch, with the baselines at decision points"),
        ("img", figures["gradients"], "Per-layer gradient norms and update-to-weight ratios"),
        ("h2", "Ablation: why the loss matters"),
        (
            "p",
            "Each run trains the same model on the same data with one thing changed. At decision points, "
            "'mode spread' is the mean distance between the predicted endpoints; the last two columns "
            "are the probability-weighted distance of the predicted endpoints to the nearest ground-truth "
            "branch and to the mixture's mean. An L2 loss pulls every mode to the mean of the branches: "
            "small spread, close to the mean, far from any branch.",
        ),
        (
            "table",
            [
                "run",
                "loss",
                "ce",
                "lr",
                "minFDE@6",
                "MR@6",
                "NLL",
                "mode spread",
                "to nearest branch",
                "to mixture mean",
            ],
            [
                [
                    r["name"],
                    r["loss"],
                    "yes" if r["ce"] else "no",
                    f"{r['lr']:g}",
                    *(_fmt(r["decision"][k]) for k in ABLATION_COLUMNS),
                ]
                for r in m["ablation"]
            ],
        ),
        ("img", figures["ablation"], "Ablation at decision points"),
        ("h2", "Training time per device"),
        (
            "p",
            f"{m['bench'][0].get('steps', '')} training steps of batch {m['bench'][0].get('batch_size', '')} "
            "on each device this machine has, fp32 and bfloat16 autocast; timed with "
            "torch.utils.benchmark.Timer after a warm-up, on this process's torch threads, the device "
            "synchronised.",
        ),
        (
            "table",
            ["device", "precision", "status", "seconds", "samples/s"],
            [
                [
                    r["device"],
                    r["precision"],
                    r["status"],
                    _fmt(r.get("seconds", "")),
                    f"{r['samples_per_s']:.0f}" if "samples_per_s" in r else "",
                ]
                for r in m["bench"]
            ],
        ),
        ("h2", "Where a training step's time goes"),
        (
            "p",
            f"torch.profiler over {m['profile']['batch']}-sample training steps of the model above: "
            f"{m['profile']['torch_ms_per_step']:.2f} ms per step in torch, "
            f"{m['profile']['engine_ms_per_step']:.2f} ms in the NumPy autodiff engine on the same batches; "
            "most of it "
            + ", ".join(f"{r['op']} {r['share_pct']:.0f}%" for r in m["profile"]["torch_top"])
            + " (torch) and "
            + ", ".join(f"{r['op']} {r['share_pct']:.0f}%" for r in m["profile"]["engine_top"])
            + " (engine). The Chrome traces are in profile/ (open them in ui.perfetto.dev).",
        ),
        ("img", figures["profile"], "Share of a training step per operator, torch and the engine"),
        ("h2", "The data"),
        (
            "img",
            figures["scenes"],
            "Random test scenes: lanes (grey), stop lines (red), alternatives (dotted)",
        ),
        ("h2", "Time per stage"),
        ("table", ["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in m["timing"].items()]),
        (
            "p",
            f"Reproduce: tinypred demo --seed {m['seed']}{' --quick' if m['quick'] else ''}. All numbers "
            "are in metrics.json beside this report.",
        ),
    ]
    return blocks
