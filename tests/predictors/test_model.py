"""The model: its neighbour encoder reads a set of agents, and its reported probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinypred.data.scene_config import OBJECT_TYPES
from tinypred.predictors.model import ModelConfig, ModelOutput, TrajectoryMLP, agent_features

H, M, BASE, T = 5, 3, 40, 4


def model(**cfg) -> TrajectoryMLP:
    torch.manual_seed(0)
    return TrajectoryMLP(BASE + M * agent_features(H), T, ModelConfig(width=32, **cfg), False, M, H)


def inputs(present: list[list[bool]], seed: int = 0) -> torch.Tensor:
    """(B, D) features: random target and map, and random neighbour slots, empty where not present."""
    g = torch.Generator().manual_seed(seed)
    b = len(present)
    states = torch.randn(b, M, H * 6, generator=g)
    mask = torch.tensor(present, dtype=torch.float32)[:, :, None].expand(b, M, H)
    kinds = torch.zeros(b, M, len(OBJECT_TYPES))
    kinds[..., 0] = mask[..., 0]
    states = states * mask.repeat_interleave(6, -1)
    base = torch.randn(b, BASE, generator=g)
    return torch.cat([base, states.reshape(b, -1), mask.reshape(b, -1), kinds.reshape(b, -1)], 1)


def slots(x: torch.Tensor, order: list[int]) -> torch.Tensor:
    """x with its neighbour slots reordered."""
    b = len(x)
    groups = x[:, BASE:].split([M * H * 6, M * H, M * len(OBJECT_TYPES)], 1)
    moved = [g.reshape(b, M, -1)[:, order].reshape(b, -1) for g in groups]
    return torch.cat([x[:, :BASE], *moved], 1)


def test_the_neighbours_are_a_set_and_empty_slots_say_nothing():
    m = model().eval()
    x = inputs([[True, True, False], [True, False, False], [False, False, False]])
    out = m(x)
    # Any order of the slots gives the same prediction: max and mean pooling over the agents present.
    torch.testing.assert_close(m(slots(x, [2, 0, 1])).modes, out.modes)
    # An empty slot's numbers are never read, whatever they hold.
    noisy = x.clone()
    noisy[2, BASE : BASE + M * H * 6] = 7.0
    torch.testing.assert_close(m(noisy).modes[2], out.modes[2])
    # A present one is.
    moved = x.clone()
    moved[0, BASE : BASE + 6] += 1.0
    assert (m(moved).modes[0] - out.modes[0]).abs().max() > 1e-6


def masked_pool(encoded: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """The reference: max over the present slots (-inf elsewhere, 0 where none is) and their mean."""
    count = present.sum(1)
    top = encoded.masked_fill(~present, float("-inf")).amax(1)
    top = torch.where(count > 0, top, torch.zeros_like(top))
    return torch.cat([top, (encoded * present).sum(1) / count.clamp(min=1)], 1)


presence = st.lists(st.lists(st.booleans(), min_size=M, max_size=M), min_size=1, max_size=6)


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal to float32 rounding: training encodes the present slots as a GEMM of fewer rows, whose
    gradients sum the rows in another order (values here are of order 1)."""
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(presence, st.integers(0, 99), st.booleans())
def test_the_pooling_is_a_masked_max_and_mean_in_values_and_gradients(present, seed, training):
    """The model zeroes the absent slots of its (ReLU, >= 0) encoder output and takes the plain max
    (training on the CPU: it encodes only the present slots): the same numbers, and the same gradients
    for the weights and the inputs, as a masked max over every slot encoded."""
    m = model().train(training)
    x = inputs(present, seed).requires_grad_()
    block = x[:, BASE:]
    pooled = m._pooled_neighbours(block)
    weight = torch.randn(pooled.shape, generator=torch.Generator().manual_seed(seed))
    got = torch.autograd.grad((pooled * weight).sum(), [x, *m.agent_encoder.parameters()])
    states, mask, kinds = block.split([M * H * 6, M * H, M * len(OBJECT_TYPES)], 1)
    mask = mask.view(-1, M, H)
    encoded = m.agent_encoder(
        torch.cat([states.view(-1, M, H * 6), mask, kinds.view(-1, M, len(OBJECT_TYPES))], -1)
    )
    reference = masked_pool(encoded, mask[..., -1:] > 0.5)
    close(pooled, reference)
    expected = torch.autograd.grad((reference * weight).sum(), [x, *m.agent_encoder.parameters()])
    for a, b in zip(got, expected, strict=True):
        close(a, b)


@settings(max_examples=20, deadline=None)
@given(presence, st.integers(0, 99))
def test_training_encodes_only_the_present_slots_and_predicts_the_same(present, seed):
    """On the CPU a training forward runs the agent encoder on the present slots alone (none, some or
    all of them); evaluation, compiled and exported graphs encode every slot: the same modes, logits and
    weight gradients."""
    m, x = model(), inputs(present, seed)
    rows = []
    hook = m.agent_encoder.register_forward_hook(lambda _m, i, _o: rows.append(i[0].shape[:-1].numel()))
    outs, grads = [], []
    for training in (True, False):
        out = m.train(training)(x)
        (out.modes.square().mean() + out.logits.square().mean()).backward()
        outs.append(out)
        grads.append([p.grad.clone() for p in m.parameters()])
        m.zero_grad()
    hook.remove()
    assert rows == [sum(map(sum, present)), len(present) * M]
    close(outs[0].modes, outs[1].modes)
    close(outs[0].logits, outs[1].logits)
    for a, b in zip(*grads, strict=True):
        close(a, b)


def test_without_neighbours_the_model_reads_the_target_and_map_alone():
    blind = model(neighbours=False).eval()
    assert blind.agent_encoder is None
    x = inputs([[True, True, True]])
    y = x.clone()
    y[:, BASE:] = torch.randn_like(y[:, BASE:])
    torch.testing.assert_close(blind(y).modes, blind(x).modes)
    seeing = model()
    seeing(inputs([[True, False, False]] * 4)).modes.square().mean().backward()
    assert seeing.agent_encoder[0].weight.grad.abs().sum() > 0  # it learns from them


def test_reported_probabilities_are_the_mass_each_mode_covers():
    """Three modes of one intent close together (0.2 each) and a lone branch (0.4): the softmax makes
    the lone one most probable, the smoothed probabilities the cluster's middle."""
    ends = torch.tensor([[[0.0, 10.0], [0.5, 10.0], [-0.5, 10.0], [10.0, 0.0]]])
    modes = ends[:, :, None].expand(1, 4, T, 2)
    logits = torch.tensor([[0.2, 0.2, 0.2, 0.4]]).log()
    plain = ModelOutput(modes, logits, None, 0.0).probs
    torch.testing.assert_close(plain, torch.tensor([[0.2, 0.2, 0.2, 0.4]]))
    smooth = ModelOutput(modes, logits, None, 2.0).probs
    assert smooth.argmax().item() == 0 and smooth.sum().item() == pytest.approx(1.0)
    e = ends[0].numpy().astype(np.float64)
    covered = (np.exp(-((e[:, None] - e[None]) ** 2).sum(-1) / 4.0) * [0.2, 0.2, 0.2, 0.4]).sum(1)
    np.testing.assert_allclose(smooth[0].numpy(), covered / covered.sum(), rtol=1e-5)
    assert smooth[0, 0] > smooth[0, 1] > smooth[0, 3]
