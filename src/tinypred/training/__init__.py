"""Training: the loop, one training step, checkpoints and resume, the run log.

`config` (TrainConfig, the device), `step` (the model as training builds it, the optimizer, the
schedule, `train_step`: the only place a gradient step is taken), `checkpoint` (TrainState and exact
resume), `log` (CSV/JSONL/TensorBoard), `validation` (the loss at initialisation, each epoch's
validation row) and `loop` (`train`, plain and linear). May import the shared
utilities, `tinypred.data`, `tinypred.evaluation` and `tinypred.predictors`.
"""

from tinypred.lazy import lazy_exports

# Imported on first use: `training.config` (TrainConfig: a config file, --help) loads without torch.
_MODULES = {
    "TrainState": "checkpoint",
    "TrainConfig": "config",
    "resolve_device": "config",
    "RunResult": "loop",
    "train": "loop",
    "Split": "step",
    "build_model": "step",
    "make_optimizer": "step",
    "train_step": "step",
    "init_report": "validation",
}
__getattr__ = lazy_exports(__name__, _MODULES)
__all__ = sorted(_MODULES)
