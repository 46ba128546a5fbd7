"""The Prediction every predictor returns, and the one way to predict with the model on a split.

Baselines predict with `Baseline.predict(scenes)`. The learned model predicts through `model_prediction`
(tensors already on a device: the training loop's validation) or `predict_split` (a model file and a
dataset split: evaluation, the demo, the ablation, the CLI); both end in the same code, so a fix to how
the model predicts lands everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tinypred.data.dataset import Dataset
from tinypred.data.encoding import EncodedScenes, Normalizer, features
from tinypred.errors import TinypredError
from tinypred.evaluation.scales import fit_scales
from tinypred.predictors.model import TrajectoryMLP
from tinypred.predictors.model_file import LoadedModel

EVAL_BATCH = 8192
SCALE_FIT_SAMPLES = 4096  # training samples whose predictions fit the NLL scales of a model without them


@dataclass(frozen=True)
class Prediction:
    """What every predictor (baseline or model) returns, in the agent frame.

    modes (N, K, T, 2), probs (N, K) summing to 1, scale (T,) or (N, K, T): the per-step scale of the
    NLL's Laplace/Gaussian components (fitted on the training split for the baselines); None when it was
    not fitted (a prediction for export only: it cannot be scored).
    """

    modes: np.ndarray
    probs: np.ndarray
    scale: np.ndarray | None


def model_inputs(scenes: EncodedScenes, normalizer: Normalizer, device: torch.device) -> torch.Tensor:
    """(N, D) float32 normalised features of `scenes` on `device`: what the model reads."""
    return torch.from_numpy(normalizer(features(scenes))).to(device)


@torch.inference_mode()
def model_outputs(
    model: TrajectoryMLP, x: torch.Tensor, batch: int = EVAL_BATCH
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """modes (N, K, T, 2), probs (N, K) and scale (N, K, T) -- None without a scale head -- as NumPy
    arrays, in eval mode, in batches; the model is left in the mode it was in."""
    was_training = model.training
    if was_training:  # switching walks every module: worth skipping on a planner's batch of one
        model.eval()
    parts = [model(x)] if len(x) <= batch else [model(x[i : i + batch]) for i in range(0, len(x), batch)]
    if was_training:
        model.train()

    def cat(name: str) -> np.ndarray | None:
        tensors = [getattr(p, name) for p in parts]  # once each: `probs` is computed on access
        if tensors[0] is None:
            return None
        whole = tensors[0] if len(tensors) == 1 else torch.cat(tensors)
        return whole.float().numpy(force=whole.device.type != "cpu")

    return cat("modes"), cat("probs"), cat("scale")


def model_prediction(
    model: TrajectoryMLP, x: torch.Tensor, fit_x: torch.Tensor, fit_future: np.ndarray
) -> Prediction:
    """The model's prediction on inputs x (N, D). Its NLL uses the predicted scales when the model has a
    scale head (trained by the nll loss); otherwise per-step scales fitted by maximum likelihood on its
    predictions for up to SCALE_FIT_SAMPLES training inputs fit_x with their futures fit_future (N', T, 2),
    exactly as the baselines' scales are fitted."""
    modes, probs, scale = model_outputs(model, x)
    if scale is None:
        n = min(len(fit_x), SCALE_FIT_SAMPLES)
        fit_modes, fit_probs, _ = model_outputs(model, fit_x[:n])
        scale = fit_scales(fit_modes, fit_future[:n], fit_probs)
    return Prediction(modes, probs, scale)


def predict_split(
    loaded: LoadedModel, ds: Dataset, split: str = "test", with_scale: bool = True
) -> Prediction:
    """A loaded model's prediction on a split of `ds` (its NLL scales, if fitted, from ds.train).
    `with_scale=False` skips fitting the scales (nothing to score: an export); scale is then None."""
    device = next(loaded.model.parameters()).device
    if not with_scale:
        modes, probs, scale = model_outputs(
            loaded.model, model_inputs(ds.split(split), loaded.normalizer, device)
        )
        return Prediction(modes, probs, scale)
    if len(ds.train) == 0 and not loaded.model.scales:
        raise TinypredError(
            f"the NLL scales of this model are fitted on a training split, and {ds.path} has none (imported "
            "with --split?): evaluate on a dataset that has one, or train with --loss nll, whose model "
            "predicts its own scales"
        )
    fit = ds.train.subset(slice(0, SCALE_FIT_SAMPLES))
    return model_prediction(
        loaded.model,
        model_inputs(ds.split(split), loaded.normalizer, device),
        model_inputs(fit, loaded.normalizer, device),
        fit.future,
    )
