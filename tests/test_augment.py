"""Training-batch augmenters: each changes a batch as its docstring says, is validated, and never runs outside
training steps (validation, test, prediction and exported models see the data untouched)."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from modelmaker.config import ConfigError, config_from_dict
from tinyverse.training.augment import BatchAugment
from tinyverse.training.tasks import build_task

N, C, L = 16, 2, 64


def batch(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, C, L, 1, generator=g)


def test_time_warp_is_a_smooth_monotonic_resampling():
    torch.manual_seed(0)
    ramp = torch.arange(L, dtype=torch.float32).expand(N, C, L)[..., None].clone()  # x[n] = n: out = read position
    out = BatchAugment(time_warp=0.5)(ramp)
    assert out.shape == ramp.shape
    assert not torch.allclose(out, ramp)  # the time axis moved
    torch.testing.assert_close(out[:, :, 0], ramp[:, :, 0])  # first and last sample stay in place
    torch.testing.assert_close(out[:, :, -1], ramp[:, :, -1])
    step = out[:, 0, 1:, 0] - out[:, 0, :-1, 0]  # local speed
    assert (step > 0).all()  # monotonic: no sample is read twice or backwards
    assert (step.amax(dim=1) / step.amin(dim=1) <= 1.5 / 0.5 + 1e-4).all()  # speeds in [1 - 0.5, 1 + 0.5], rescaled
    assert (step[:, 1:] - step[:, :-1]).abs().max() < 0.2  # smooth: the speed changes slowly
    torch.testing.assert_close(out[:, 0], out[:, 1])  # channels of one series warp alike
    x = batch()
    warped = BatchAugment(time_warp=0.3)(x)
    assert warped.min() >= x.min() and warped.max() <= x.max()  # linear interpolation of the series' own values
    assert torch.equal(BatchAugment(time_warp=0.0)(x), x)


def test_magnitude_warp_multiplies_by_a_smooth_curve():
    torch.manual_seed(0)
    x = batch().abs() + 1.0
    out = BatchAugment(magnitude_warp=0.3)(x)
    ratio = (out / x)[:, :, :, 0]
    assert ratio.min() >= 0.7 - 1e-6 and ratio.max() <= 1.3 + 1e-6
    torch.testing.assert_close(ratio[:, 0], ratio[:, 1])  # one curve per series
    assert (ratio.amax(dim=2) - ratio.amin(dim=2)).max() > 0.05  # varies along time, unlike `scale`
    assert (ratio[:, :, 1:] - ratio[:, :, :-1]).abs().max() < 0.6 / (L / 5) + 1e-5  # smooth: <= 2*s per knot gap


def test_shift_scale_noise_as_documented():
    torch.manual_seed(0)
    x = batch()
    shifted = BatchAugment(time_shift=0.1)(x)
    moved = [min(range(-7, 8), key=lambda s: (torch.roll(x[i], s, 1) - shifted[i])[:, 7:-7].abs().sum().item())
             for i in range(N)]
    for i, s in enumerate(moved):
        torch.testing.assert_close(shifted[i][:, 7:-7], torch.roll(x[i], s, 1)[:, 7:-7])
    scaled = BatchAugment(scale=0.2)(x)
    factor = scaled[:, 0, 0, 0] / x[:, 0, 0, 0]
    torch.testing.assert_close(scaled, x * factor[:, None, None, None])
    assert ((factor >= 0.8 - 1e-6) & (factor <= 1.2 + 1e-6)).all()
    noisy = BatchAugment(noise=0.05)(x)
    assert 0.04 < (noisy - x).std().item() < 0.06


@pytest.mark.parametrize("name", ["time_shift", "scale", "noise", "time_warp", "magnitude_warp"])
def test_strength_is_validated(name):
    with pytest.raises(ValueError, match=rf"augmentation\.{name} must be in \[0, 1\)"):
        BatchAugment(**{name: 1.0})
    base = {"dataset": {"ucr_name": "GunPoint"}, "training": {"model_name": "CLS_1k_NPU"}}
    with pytest.raises(ConfigError, match=rf"training\.augmentation\.{name}"):
        config_from_dict({**base, "training": {**base["training"], "augmentation": {name: 1.5}}})
    cfg = config_from_dict({**base, "training": {**base["training"], "augmentation": {name: 0.25}}})
    assert cfg.training.augmentation.model_dump()[name] == 0.25


class Recorder(nn.Module):
    """A tiny classifier that remembers the inputs it was called with."""

    num_classes = 2

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(C * L, 2)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.fc(x.flatten(1))


def test_augmentation_runs_in_training_steps_only():
    every = {"time_shift": 0.1, "scale": 0.2, "noise": 0.05, "time_warp": 0.3, "magnitude_warp": 0.3}
    model = Recorder()
    task = build_task("classification", model, augmentation=every)
    x, y = batch(), torch.randint(0, 2, (N,))
    with warnings.catch_warnings():  # self.log outside a Trainer only warns
        warnings.simplefilter("ignore")
        task.training_step((x, y), 0)
        assert not torch.allclose(model.seen[-1], x)
        task.validation_step((x, y), 0)
        assert torch.equal(model.seen[-1], x)
        task.test_step((x, y), 0)
        assert torch.equal(model.seen[-1], x)
        task.predict_step((x, y), 0)
        assert torch.equal(model.seen[-1], x)
    assert torch.equal(task(x), model(x))  # forward (what export traces) has no augmentation
    assert not any(isinstance(m, BatchAugment) for m in task.model.modules())
