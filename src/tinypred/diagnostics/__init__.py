"""Training-craft diagnostics: the checks to run before trusting a training curve.

"Most 'the model won't learn' bugs are a wrong loss, a data/label mismatch, or a learning rate off by an
order of magnitude." Each check below looks for one of them and returns a `CheckResult`: its numbers
(JSON-serialisable), a verdict in plain words, whether it passed, and a figure (a PNG in `out_dir`).

    init        loss at initialisation vs its expected value; activations and gradients per layer
    overfit     memorise one batch: the loop, the loss and the gradient can learn at all
    lr-range    an exponential learning-rate sweep: where the loss falls fastest, where it diverges
    curvature   the sharpest direction of the loss (Hessian lambda_max) vs the step size 2 / lr
    saliency    which inputs the loss depends on; no example may depend on another one in the batch
    gradients   vanishing / exploding gradients through a deep MLP (the lectures' demonstration)
    toy         contradictory 1-D data: MSE averages, a Gaussian NLL widens, K = 2 modes recover both

One check per file; `common` holds what they share. Every check builds its models like `train` does,
takes its gradient steps with the same `training.step.train_step` (so `cfg.bf16` autocast applies) and
is seeded by `cfg.seed`: the same call gives the same numbers. The checks run on the CPU (they are
small, and so reproducible), whatever `cfg.device` says. May import the shared utilities, `data`,
`evaluation`, `predictors`, `training` and `report` (for saving figures).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tinypred.data.dataset import Dataset
from tinypred.diagnostics.common import CheckResult
from tinypred.diagnostics.curvature import check_curvature
from tinypred.diagnostics.gradients import check_gradients
from tinypred.diagnostics.initialisation import check_init
from tinypred.diagnostics.lr_range import check_lr_range
from tinypred.diagnostics.overfit import check_overfit, overfit_one_batch
from tinypred.diagnostics.saliency import check_saliency
from tinypred.diagnostics.toy import check_toy
from tinypred.errors import TinypredError
from tinypred.training.config import TrainConfig

CHECKS: dict[str, Callable[..., CheckResult]] = {
    "init": check_init,
    "overfit": check_overfit,
    "lr-range": check_lr_range,
    "curvature": check_curvature,
    "saliency": check_saliency,
    "gradients": check_gradients,
    "toy": check_toy,
}


def run_check(name: str, ds: Dataset, cfg: TrainConfig, out_dir: str | Path | None = None) -> CheckResult:
    """Run the check called `name` with its default knobs; the figure goes to out_dir/name.png."""
    if name not in CHECKS:
        raise TinypredError(f"unknown check {name!r}; expected one of: {', '.join(CHECKS)}", arg="check")
    return CHECKS[name](ds, cfg, Path(out_dir) if out_dir is not None else None)


__all__ = ["CHECKS", "CheckResult", "overfit_one_batch", "run_check"]
