"""NAM's output normalisation (training.output_level_dbfs) and the chunked batch of the amp-modelling task."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml

import tinyverse.audio.training as training
from modelmaker.cli import main as cli_main
from modelmaker.config import ConfigError, load_config
from modelmaker.runner import run
from tinyverse.audio.nam import NAMLSTM, NAMLinear, NAMWaveNet
from tinyverse.audio.nam.container import NAMSlimmableContainer
from tinyverse.audio.nam.convnet import NAMConvNet
from tinyverse.audio.nam.presets import a1_wavenet_layers
from tinyverse.models import create_model
from tinyverse.registry import TASKS


def _models() -> list:
    torch.manual_seed(0)
    lin = NAMLinear(32, bias=True)
    with torch.no_grad():
        lin.conv.bias.fill_(0.1)  # a nonzero bias must scale too
    return [NAMWaveNet(a1_wavenet_layers("nano"), 0.02), NAMLSTM(8), lin,
            NAMConvNet(channels=4, dilations=[1, 2, 4], batchnorm=False, activation="Tanh"),
            NAMSlimmableContainer([(0.5, NAMWaveNet(a1_wavenet_layers("nano"), 0.02)),
                                   (1.0, NAMWaveNet(a1_wavenet_layers("feather"), 0.02))])]


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.nam_architecture)
def test_scale_output_scales_every_output_exactly(model) -> None:
    x = torch.randn(1, 6000) * 0.3
    with torch.no_grad():
        before = model.scored_outputs(x)
        model.scale_output(0.25)
        after = model.scored_outputs(x)
    assert before.keys() == after.keys()
    for k in before:
        assert before[k].abs().max() > 1e-4  # not a trivially zero output
        torch.testing.assert_close(after[k], before[k] * 0.25, rtol=1e-5, atol=1e-7)


def test_scale_output_refuses_a_nonlinear_post_stack_head() -> None:
    layers = a1_wavenet_layers("nano")
    layers[1]["head_size"] = 2
    m = NAMWaveNet(layers, 0.02, head={"channels": 2, "out_channels": 1, "kernel_sizes": [2],
                                       "activation": "ReLU"})
    with pytest.raises(NotImplementedError, match="post-stack head"):
        m.scale_output(0.5)


def test_output_gain_reaches_the_level() -> None:
    rms = 0.05
    g = training.output_gain(-18.0, rms)
    assert 20 * np.log10(rms * g) == pytest.approx(-18.0)
    assert training.output_gain(None, None) == 1.0
    with pytest.raises(ValueError, match="RMS"):
        training.output_gain(-18.0, 0.0)


def test_a_chunked_batch_has_the_same_loss_and_gradient(monkeypatch) -> None:
    torch.manual_seed(1)
    model = create_model("NAM_WaveNet_nano")
    rf = model.receptive_field
    x, y = torch.randn(6, 2048 + rf - 1) * 0.2, torch.randn(6, 2048) * 0.05
    task = TASKS.get("amp_modelling")(model=model, output_level_dbfs=-18.0, target_rms=0.05)
    results = []
    for chunk in (10**9, 2 * (2048 + rf - 1)):  # whole, then in chunks of two windows
        monkeypatch.setattr(training, "CHUNK_SAMPLES", chunk)
        model.zero_grad()
        loss = task.training_step((x, y), 0)
        loss.backward()
        results.append((float(loss), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])))
    (l0, g0), (l1, g1) = results
    assert l1 == pytest.approx(l0, rel=1e-5)
    torch.testing.assert_close(g1, g0, rtol=1e-4, atol=1e-9)


def _cfg(tmp_path, **training_keys) -> dict:
    return {"common": {"task_type": "amp_modelling", "modality": "audio", "projects_path": str(tmp_path / "p"),
                       "run_name": "lvl", "verbose": False},
            "dataset": {"name": "nam_capture", "generated_seconds": 6, "ny": 4096},
            "training": {"model_name": "NAM_WaveNet_nano", "epochs": 1, "batch_size": 4, "learning_rate": 0.004,
                         "lr_scheduler": "cosine", **training_keys},
            "compilation": {"enable": False}}


def test_a_run_at_a_normalised_level_outputs_the_capture_level(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TINYVERSE_CACHE", str(tmp_path / "cache"))
    scaled = []
    real = NAMWaveNet.scale_output

    def spy(self, gain):
        scaled.append(gain)
        return real(self, gain)

    monkeypatch.setattr(NAMWaveNet, "scale_output", spy)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_cfg(tmp_path, output_level_dbfs=-18.0)))
    summary = run(str(path))
    assert len(scaled) == 1 and scaled[0] != 1.0  # started at 1 / gain, once
    # The model is scored against the capture at its own level: a model left at the normalised level would be
    # off by the gain (ESR ≈ (g - 1)^2, far above 1 for these captures).
    assert summary["validation"]["esr"] < 1.0


def test_output_level_is_refused_where_it_means_nothing(tmp_path) -> None:
    path = tmp_path / "ts.yaml"
    path.write_text(yaml.safe_dump({"common": {"task_type": "classification"},
                                    "training": {"output_level_dbfs": -18.0, "model_name": "CLS_4k_NPU"}}))
    with pytest.raises(ConfigError, match="training.output_level_dbfs"):
        load_config(str(path))
    bad = copy.deepcopy(_cfg(tmp_path, output_level_dbfs=6.0))
    path.write_text(yaml.safe_dump(bad))
    assert cli_main(["run", str(path)]) == 2
