"""Predictors: the Prediction type and predicting on a split, the baselines, the learned MLP, its losses.

`prediction` (Prediction, model inputs, `predict_split`), `baselines` (constant velocity and friends,
the intent mixture), `bayes` (the floor: the best any predictor can do, from the generator itself),
`model` (TrajectoryMLP), `losses` (l2, winner-take-all, mixture NLL) and `model_file` (the safetensors
file a trained model lives in). May import the shared utilities, `tinypred.data` and
`tinypred.evaluation` (the baselines' NLL scales are fitted by `evaluation.fit_scales`).
"""

from tinypred.predictors.baselines import BASELINES, Baseline, fit_all
from tinypred.predictors.losses import LossConfig, loss
from tinypred.predictors.model import ModelConfig, ModelOutput, TrajectoryMLP
from tinypred.predictors.model_file import LoadedModel, load_model, load_run, save_model
from tinypred.predictors.prediction import Prediction, model_inputs, model_prediction, predict_split

__all__ = [
    "BASELINES",
    "Baseline",
    "LoadedModel",
    "LossConfig",
    "ModelConfig",
    "ModelOutput",
    "Prediction",
    "TrajectoryMLP",
    "fit_all",
    "load_model",
    "load_run",
    "loss",
    "model_inputs",
    "model_prediction",
    "predict_split",
    "save_model",
]
