"""The project's own trajectory predictor, trained by torch and by the engine in lockstep."""

from __future__ import annotations

import numpy as np
import torch

from tinypred.backprop import MLP, AdamW, Tensor, split_modes, wta_loss
from tinypred.data import dataset
from tinypred.data.encoding import features
from tinypred.predictors.losses import LossConfig, loss
from tinypred.predictors.model import ModelConfig, TrajectoryMLP
from tinypred.training import TrainConfig, make_optimizer


def test_trajectory_predictor_trains_exactly_like_torch(small_dataset):
    """The project's own model (tinypred.predictors.model, a smaller config), loss
    (tinypred.predictors.losses: WTA + CE) and optimizer (tinypred.training.make_optimizer: AdamW), on real
    encoded scenes, in float64 -- and the same network built from engine Tensors: after 50 steps on the
    same batches the parameters agree."""
    ds = dataset.load(small_dataset)
    x_all = ds.normalizer(features(ds.train)).astype(np.float64)
    y_all = ds.train.future.astype(np.float64)
    cfg = TrainConfig(
        lr=3e-3,
        weight_decay=1e-4,
        model=ModelConfig(modes=3, width=32, depth=2),
        loss=LossConfig(kind="wta", regression="l2", ce_weight=0.5),
    )
    torch.manual_seed(0)
    model = TrajectoryMLP(x_all.shape[1], y_all.shape[1], cfg.model).double()
    torch_opt = make_optimizer(model, cfg)
    # The engine twin: the same weights (transposed: the engine stores W as (in, out)).
    layers = [m for _, m in model.linear_layers()]
    mlp = MLP([layers[0].in_features, *(m.out_features for m in layers)], "relu")
    for mine, theirs in zip(mlp.layers, layers, strict=True):
        mine.weight.data[...] = theirs.weight.detach().numpy().T
        mine.bias.data[...] = theirs.bias.detach().numpy()
    opt = AdamW(mlp.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    k, steps = cfg.model.modes, y_all.shape[1]
    rng = np.random.default_rng(3)
    losses, torch_losses = [], []
    for _ in range(50):
        idx = rng.choice(len(x_all), 16, replace=False)
        x, gt = x_all[idx], y_all[idx]

        opt.zero_grad()
        pred, logits = split_modes(mlp(Tensor(x)), k, steps)
        engine_loss = wta_loss(pred, logits, gt, cfg.loss.ce_weight, reg="l2")
        engine_loss.backward()
        opt.step()
        losses.append(engine_loss.item())

        torch_opt.zero_grad()
        torch_loss, _ = loss(model(torch.from_numpy(x)), torch.from_numpy(gt), cfg.loss)
        torch_loss.backward()
        torch_opt.step()
        torch_losses.append(torch_loss.item())

    np.testing.assert_allclose(losses, torch_losses, rtol=1e-10)
    for mine, theirs in zip(mlp.layers, layers, strict=True):
        np.testing.assert_allclose(mine.weight.data, theirs.weight.detach().numpy().T, rtol=0, atol=1e-8)
        np.testing.assert_allclose(mine.bias.data, theirs.bias.detach().numpy(), rtol=0, atol=1e-8)
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
