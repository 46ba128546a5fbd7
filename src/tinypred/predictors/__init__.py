"""Predictors: the Prediction type and predicting on a split, the baselines, the learned MLP, its losses.

`prediction` (Prediction, model inputs, `predict_split`), `baselines` (constant velocity and friends,
the intent mixture), `bayes` (the floor: the best any predictor can do, from the generator itself),
`config` (ModelConfig, LossConfig: no torch), `model` (TrajectoryMLP), `losses` (l2, winner-take-all,
mixture NLL) and `model_file` (the safetensors file a trained model lives in). May import the shared
utilities, `tinypred.data` and `tinypred.evaluation` (the baselines' NLL scales are fitted by
`evaluation.fit_scales`).
"""

from tinypred.lazy import lazy_exports

# Imported on first use: `predictors.config` (what TrainConfig and --help read) loads without torch.
_MODULES = {
    "BASELINES": "baselines",
    "Baseline": "baselines",
    "fit_all": "baselines",
    "LossConfig": "config",
    "ModelConfig": "config",
    "loss": "losses",
    "ModelOutput": "model",
    "TrajectoryMLP": "model",
    "LoadedModel": "model_file",
    "load_model": "model_file",
    "load_run": "model_file",
    "save_model": "model_file",
    "Prediction": "prediction",
    "model_inputs": "prediction",
    "model_prediction": "prediction",
    "predict_split": "prediction",
}
__getattr__ = lazy_exports(__name__, _MODULES)
__all__ = sorted(_MODULES)
