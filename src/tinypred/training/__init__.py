"""Training: the loop, one training step, checkpoints and resume, the run log.

`config` (TrainConfig, the device), `step` (the model as training builds it, the optimizer, the
schedule, `train_step`: the only place a gradient step is taken), `checkpoint` (TrainState and exact
resume), `log` (CSV/JSONL/TensorBoard), `validation` (the loss at initialisation, each epoch's
validation row) and `loop` (`train`, plain and linear). May import the shared
utilities, `tinypred.data`, `tinypred.evaluation` and `tinypred.predictors`.
"""

from tinypred.training.checkpoint import TrainState
from tinypred.training.config import TrainConfig, resolve_device
from tinypred.training.loop import RunResult, train
from tinypred.training.step import Split, build_model, make_optimizer, train_step
from tinypred.training.validation import init_report

__all__ = [
    "RunResult",
    "Split",
    "TrainConfig",
    "TrainState",
    "build_model",
    "init_report",
    "make_optimizer",
    "resolve_device",
    "train",
    "train_step",
]
